#include "blockdev/memory_block_device.h"

#include <cstring>
#include <mutex>

namespace vde::blockdev {

MemoryBlockDevice::MemoryBlockDevice(uint32_t bs, uint64_t n, size_t alignment, bool read_only)
    : BlockDevice("<memory>", bs, n, alignment, read_only), bytes_(n * bs) {}

Result<std::unique_ptr<MemoryBlockDevice>> MemoryBlockDevice::Create(uint32_t block_size,
                                                                     uint64_t block_count,
                                                                     size_t alignment,
                                                                     bool read_only) {
  if (!IsValidBlockSize(block_size)) {
    return Status::InvalidArgument("<memory>: block size " + std::to_string(block_size) +
                                   " is not a power of two between 512 and 65536");
  }
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    return Status::InvalidArgument("<memory>: alignment must be a power of two");
  }
  return std::unique_ptr<MemoryBlockDevice>(
      new MemoryBlockDevice(block_size, block_count, alignment, read_only));
}

Status MemoryBlockDevice::ReadBatch(std::span<ReadRequest> reqs) {
  Status first;
  std::shared_lock lock(mu_);
  counters_.batches.fetch_add(1, std::memory_order_relaxed);
  for (auto& r : reqs) {
    r.status = CheckRequest(r.block, r.count, r.buf, false);
    if (r.status.ok()) {
      std::memcpy(r.buf, bytes_.data() + r.block * block_size(),
                  static_cast<size_t>(r.count) * block_size());
      counters_.reads.fetch_add(1, std::memory_order_relaxed);
      counters_.blocks_read.fetch_add(r.count, std::memory_order_relaxed);
    } else if (first.ok()) {
      first = r.status;
    }
  }
  return first;
}

Status MemoryBlockDevice::WriteBatch(std::span<WriteRequest> reqs) {
  Status first;
  std::unique_lock lock(mu_);
  counters_.batches.fetch_add(1, std::memory_order_relaxed);
  for (auto& w : reqs) {
    w.status = CheckRequest(w.block, w.count, w.buf, true);
    if (w.status.ok()) {
      std::memcpy(bytes_.data() + w.block * block_size(), w.buf,
                  static_cast<size_t>(w.count) * block_size());
      counters_.writes.fetch_add(1, std::memory_order_relaxed);
      counters_.blocks_written.fetch_add(w.count, std::memory_order_relaxed);
    } else if (first.ok()) {
      first = w.status;
    }
  }
  return first;
}

Status MemoryBlockDevice::Flush() {
  VDE_RETURN_IF_ERROR(CheckWritable("flush"));
  counters_.flushes.fetch_add(1, std::memory_order_relaxed);
  return Status::OK();
}

Status MemoryBlockDevice::Grow(uint64_t new_block_count) {
  VDE_RETURN_IF_ERROR(CheckWritable("grow"));
  std::unique_lock lock(mu_);
  uint64_t n = block_count();
  if (new_block_count <= n) return Status::OK();
  bytes_.resize(new_block_count * block_size());
  set_block_count(new_block_count);
  return Status::OK();
}

}  // namespace vde::blockdev
