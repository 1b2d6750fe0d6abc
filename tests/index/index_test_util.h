// Test doubles for index/: a BlockSource with deferred frees and checkpoints, and a device
// wrapper that records writes (to catch copy-on-write violations) over a MemoryBlockDevice.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "blockdev/block_device.h"
#include "blockdev/memory_block_device.h"
#include "index/block_source.h"

namespace vde::index::testing {

inline bool LongTests() {
  const char* v = std::getenv("VDE_TEST_LONG");
  return v != nullptr && *v != '\0' && *v != '0';
}

// A BlockDevice over a MemoryBlockDevice that counts its own stats and flags every write to a
// block in the protected set (the blocks live at the last checkpoint).
class RecordingDevice final : public blockdev::BlockDevice {
 public:
  static std::unique_ptr<RecordingDevice> Make(uint32_t block_size, uint64_t blocks,
                                               size_t alignment = 512) {
    auto inner = blockdev::MemoryBlockDevice::Create(block_size, blocks, alignment);
    EXPECT_TRUE(inner.has_value());
    return std::unique_ptr<RecordingDevice>(new RecordingDevice(std::move(*inner)));
  }

  std::string Describe() const override { return "recording memory"; }

  Status ReadBatch(std::span<blockdev::ReadRequest> reqs) override {
    Status s = inner_->ReadBatch(reqs);
    counters_.batches.fetch_add(1);
    for (auto& r : reqs) {
      if (r.status.ok()) {
        counters_.reads.fetch_add(1);
        counters_.blocks_read.fetch_add(r.count);
      }
    }
    return s;
  }

  Status WriteBatch(std::span<blockdev::WriteRequest> reqs) override {
    {
      std::lock_guard lk(mu_);
      for (auto& w : reqs) {
        for (uint32_t i = 0; i < w.count; i++) {
          if (protected_.count(w.block + i) != 0) violations_.push_back(w.block + i);
        }
        largest_batch_ = std::max<uint64_t>(largest_batch_, reqs.size());
      }
    }
    Status s = inner_->WriteBatch(reqs);
    counters_.batches.fetch_add(1);
    for (auto& w : reqs) {
      if (w.status.ok()) {
        counters_.writes.fetch_add(1);
        counters_.blocks_written.fetch_add(w.count);
      }
    }
    return s;
  }

  Status Flush() override { return inner_->Flush(); }

  Status RegisterMemory(std::span<std::byte> region) override {
    std::lock_guard lk(mu_);
    registered_.push_back(region);
    return Status::OK();
  }
  // It records regions as a device that registers them would take them.
  bool RegistersMemory() const noexcept override { return true; }
  // True when [p, p + n) lies inside a region given to RegisterMemory.
  bool IsRegistered(const std::byte* p, size_t n) const {
    std::lock_guard lk(mu_);
    for (auto r : registered_) {
      if (p >= r.data() && p + n <= r.data() + r.size()) return true;
    }
    return false;
  }

  Status Grow(uint64_t n) override {
    VDE_RETURN_IF_ERROR(inner_->Grow(n));
    set_block_count(inner_->block_count());
    return Status::OK();
  }

  void Protect(std::set<uint64_t> blocks) {
    std::lock_guard lk(mu_);
    protected_ = std::move(blocks);
  }
  std::vector<uint64_t> violations() const {
    std::lock_guard lk(mu_);
    return violations_;
  }
  uint64_t largest_write_batch() const {
    std::lock_guard lk(mu_);
    return largest_batch_;
  }
  blockdev::BlockDevice* inner() { return inner_.get(); }

 private:
  explicit RecordingDevice(std::unique_ptr<blockdev::MemoryBlockDevice> inner)
      : BlockDevice("test.vdisk", inner->block_size(), inner->block_count(), inner->alignment(),
                    false),
        inner_(std::move(inner)) {}

  std::unique_ptr<blockdev::MemoryBlockDevice> inner_;
  mutable std::mutex mu_;
  std::set<uint64_t> protected_;
  std::vector<uint64_t> violations_;
  std::vector<std::span<std::byte>> registered_;
  uint64_t largest_batch_ = 0;
};

// First-fit allocator over a device, growing it as needed. Frees are deferred until
// Checkpoint(), which also advances the generation. Every Free must match an allocated extent
// exactly (double or partial frees are reported as InvalidArgument).
class TestBlockSource final : public BlockSource {
 public:
  explicit TestBlockSource(blockdev::BlockDevice* device, uint64_t first_block = 1)
      : device_(device), end_(first_block) {}

  Result<uint64_t> Allocate(uint32_t count) override {
    std::lock_guard lk(mu_);
    if (count == 0) return Status::InvalidArgument("allocate of 0 blocks");
    if (fail_allocations_) return Status::NoSpace("test source: allocation refused");
    uint64_t start = 0;
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->second >= count) {
        start = it->first;
        uint64_t len = it->second;
        free_.erase(it);
        if (len > count) free_[start + count] = len - count;
        break;
      }
    }
    if (start == 0) {
      start = end_;
      end_ += count;
      if (end_ > device_->block_count()) {
        VDE_RETURN_IF_ERROR(device_->Grow(end_ + end_ / 4 + 64));
      }
    }
    allocated_[start] = count;
    allocations_++;
    return start;
  }

  Status Free(uint64_t block, uint32_t count) override {
    std::lock_guard lk(mu_);
    auto it = allocated_.find(block);
    if (it == allocated_.end() || it->second != count) {
      return Status::InvalidArgument("test source: free of " + std::to_string(count) +
                                     " blocks at " + std::to_string(block) +
                                     " that were not allocated as one extent");
    }
    allocated_.erase(it);
    pending_.emplace_back(block, count);
    return Status::OK();
  }

  uint64_t generation() const override { return generation_; }

  // Releases deferred frees and advances the generation. Returns the blocks live now (those a
  // checkpoint taken at this point references).
  std::set<uint64_t> Checkpoint() {
    std::lock_guard lk(mu_);
    for (auto [b, n] : pending_) free_[b] = n;
    pending_.clear();
    // Coalesce neighbours.
    for (auto it = free_.begin(); it != free_.end();) {
      auto next = std::next(it);
      if (next != free_.end() && it->first + it->second == next->first) {
        it->second += next->second;
        free_.erase(next);
      } else {
        it = next;
      }
    }
    generation_++;
    return LiveLocked();
  }

  std::set<uint64_t> Live() const {
    std::lock_guard lk(mu_);
    return LiveLocked();
  }
  uint64_t allocated_blocks() const {
    std::lock_guard lk(mu_);
    uint64_t n = 0;
    for (auto [b, c] : allocated_) n += c;
    return n;
  }
  uint64_t allocations() const {
    std::lock_guard lk(mu_);
    return allocations_;
  }
  void set_fail_allocations(bool v) {
    std::lock_guard lk(mu_);
    fail_allocations_ = v;
  }

 private:
  std::set<uint64_t> LiveLocked() const {
    std::set<uint64_t> live;
    for (auto [b, c] : allocated_) {
      for (uint32_t i = 0; i < c; i++) live.insert(b + i);
    }
    return live;
  }

  blockdev::BlockDevice* device_;
  mutable std::mutex mu_;
  uint64_t end_;
  uint64_t generation_ = 1;
  uint64_t allocations_ = 0;
  bool fail_allocations_ = false;
  std::map<uint64_t, uint64_t> free_;       // start -> length, reusable now
  std::map<uint64_t, uint32_t> allocated_;  // start -> length
  std::vector<std::pair<uint64_t, uint32_t>> pending_;
};

}  // namespace vde::index::testing
