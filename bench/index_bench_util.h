// Shared by the index_bench sources: a block source for trees built on a bare device, and the
// benchmarks' key format.
#pragma once

#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

#include "blockdev/block_device.h"
#include "index/block_source.h"

namespace vde::index::bench {

// Hands out blocks from the end of a growing device; frees are dropped (the benchmark never
// checkpoints, so nothing would be reused before it ends anyway).
class BumpSource final : public BlockSource {
 public:
  explicit BumpSource(blockdev::BlockDevice* d) : device_(d) {}
  Result<uint64_t> Allocate(uint32_t count) override {
    std::lock_guard lk(mu_);
    uint64_t start = next_;
    next_ += count;
    if (next_ > device_->block_count()) VDE_RETURN_IF_ERROR(device_->Grow(next_ * 2));
    return start;
  }
  Status Free(uint64_t, uint32_t) override { return Status::OK(); }
  uint64_t generation() const override { return 1; }
  // The first block not handed out yet.
  uint64_t next() {
    std::lock_guard lk(mu_);
    return next_;
  }

 private:
  blockdev::BlockDevice* device_;
  std::mutex mu_;
  uint64_t next_ = 1;
};

inline std::string Key(uint64_t i) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "key%016llx", static_cast<unsigned long long>(i));
  return buf;
}

}  // namespace vde::index::bench
