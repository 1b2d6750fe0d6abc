// MemoryBlockDevice: a BlockDevice held in memory, for tests and tools that need no file.
//
// Behaves like the file-backed devices (bounds, read-only, alignment checks, counters) so the
// conformance suite runs against it. Thread-safe: a reader-writer lock guards the bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "blockdev/block_device.h"

namespace vde::blockdev {

class MemoryBlockDevice final : public BlockDevice {
 public:
  // A device of `block_count` zeroed blocks. `alignment` is enforced on buffers like O_DIRECT's.
  static Result<std::unique_ptr<MemoryBlockDevice>> Create(uint32_t block_size,
                                                           uint64_t block_count,
                                                           size_t alignment = 1,
                                                           bool read_only = false);

  std::string Describe() const override { return "memory"; }
  Status ReadBatch(std::span<ReadRequest> reqs) override;
  Status WriteBatch(std::span<WriteRequest> reqs) override;
  Status Flush() override;
  Status Grow(uint64_t new_block_count) override;

 private:
  MemoryBlockDevice(uint32_t bs, uint64_t n, size_t alignment, bool read_only);

  mutable std::shared_mutex mu_;
  std::vector<std::byte> bytes_;
};

}  // namespace vde::blockdev
