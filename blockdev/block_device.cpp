#include "blockdev/block_device.h"

#include <cstdint>
#include <string>

namespace vde::blockdev {

Status BlockDevice::Read(uint64_t block, uint32_t count, std::span<std::byte> buf) {
  if (buf.size() != static_cast<size_t>(count) * block_size()) {
    return Status::InvalidArgument(path() + ": read of " + std::to_string(count) +
                                   " blocks at block " + std::to_string(block) + " given a " +
                                   std::to_string(buf.size()) + "-byte buffer");
  }
  ReadRequest r{block, count, buf.data(), Status::OK()};
  return ReadBatch({&r, 1});
}

Status BlockDevice::ReadBatchNotify(std::span<ReadRequest> reqs, RequestCallback done) {
  Status s = ReadBatch(reqs);
  for (size_t i = 0; i < reqs.size(); ++i) done(i);
  return s;
}

Status BlockDevice::Write(uint64_t block, uint32_t count, std::span<const std::byte> buf) {
  if (buf.size() != static_cast<size_t>(count) * block_size()) {
    return Status::InvalidArgument(path() + ": write of " + std::to_string(count) +
                                   " blocks at block " + std::to_string(block) + " given a " +
                                   std::to_string(buf.size()) + "-byte buffer");
  }
  WriteRequest w{block, count, buf.data(), Status::OK()};
  return WriteBatch({&w, 1});
}

Status BlockDevice::RegisterMemory(std::span<std::byte> /*region*/) {
  return Status::OK();
}

DeviceStats BlockDevice::stats() const noexcept {
  auto ld = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  DeviceStats s;
  s.reads = ld(counters_.reads);
  s.writes = ld(counters_.writes);
  s.blocks_read = ld(counters_.blocks_read);
  s.blocks_written = ld(counters_.blocks_written);
  s.batches = ld(counters_.batches);
  s.submissions = ld(counters_.submissions);
  s.waits = ld(counters_.waits);
  s.flushes = ld(counters_.flushes);
  s.fixed_ops = ld(counters_.fixed_ops);
  s.retries = ld(counters_.retries);
  return s;
}

Status BlockDevice::CheckWritable(std::string_view what) const {
  if (!read_only_) return Status::OK();
  return Status::ReadOnly(path_ + ": " + std::string(what) + " on a device opened read-only");
}

Status BlockDevice::CheckRequest(uint64_t block, uint32_t count, const void* buf,
                                 bool is_write) const {
  if (is_write) VDE_RETURN_IF_ERROR(CheckWritable("write of block " + std::to_string(block)));
  if (count == 0) {
    return Status::InvalidArgument(path_ + ": request of 0 blocks at block " +
                                   std::to_string(block));
  }
  if (buf == nullptr) {
    return Status::InvalidArgument(path_ + ": null buffer for block " + std::to_string(block));
  }
  uint64_t n = block_count();
  if (block >= n || count > n - block) {
    return Status::OutOfRange(path_ + ": block " + std::to_string(block) + " count " +
                              std::to_string(count) + " past end (" + std::to_string(n) +
                              " blocks)");
  }
  if (alignment_ > 1 && (reinterpret_cast<uintptr_t>(buf) % alignment_) != 0) {
    return Status::InvalidArgument(path_ + ": buffer for block " + std::to_string(block) +
                                   " is not aligned to " + std::to_string(alignment_) +
                                   " bytes, as O_DIRECT requires");
  }
  return Status::OK();
}

}  // namespace vde::blockdev
