// FaultDevice: a BlockDevice over sparse in-memory media that survives the device (so a test can
// "reboot": destroy the Disk, crash the media, and open a new device on it), with faults in the
// manner of LevelDB's fault_injection_test:
//   - writes since the last Flush() are "unsynced": Crash() drops, keeps or tears them;
//   - the device can die at the Nth written block or the Nth flush: that call and every later
//     write and flush fail with IOError (what was written before stays unsynced until a crash).
// Blocks never written read as zeros. Thread-safe (one mutex).
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <unordered_map>
#include <vector>

#include "blockdev/block_device.h"

namespace vde::testing {

enum class CrashMode {
  kDropUnsynced,  // every write since the last flush is lost
  kKeepUnsynced,  // every write made it
  kRandom,        // each unsynced block kept or lost at random; one may be torn at 512 bytes
};

struct FaultMedia {
  FaultMedia(uint32_t bs, uint64_t count) : block_size(bs), block_count(count) {}

  // Undoes unsynced writes as `mode` says. Clears the fault settings.
  void Crash(CrashMode mode, std::mt19937_64& rng) {
    std::lock_guard lock(mu);
    if (mode != CrashMode::kKeepUnsynced) {
      // Undo newest first, so an older unsynced write of the same block is judged after.
      for (size_t i = unsynced.size(); i-- > 0;) {
        Undo& u = unsynced[i];
        bool keep = mode == CrashMode::kRandom && (rng() & 1) != 0;
        if (keep) continue;
        auto& cur = blocks[u.block];
        if (mode == CrashMode::kRandom && (rng() % 4) == 0 && block_size > 512) {
          // Torn: a prefix of 512-byte sectors of the new content survives.
          size_t keep_bytes = 512 * (1 + rng() % (block_size / 512 - 1));
          std::vector<std::byte> mixed = u.had ? u.old : std::vector<std::byte>(block_size);
          std::memcpy(mixed.data(), cur.data(), keep_bytes);
          cur = std::move(mixed);
        } else if (u.had) {
          cur = u.old;
        } else {
          blocks.erase(u.block);
        }
      }
    }
    unsynced.clear();
    writes_until_fail = -1;
    flushes_until_fail = -1;
    dead = false;
  }

  // Counts of what has been done (for choosing crash points).
  uint64_t blocks_written = 0;
  uint64_t flushes = 0;

  // Fault settings: the device dies at the write of the (n+1)th block / the (n+1)th flush.
  int64_t writes_until_fail = -1;
  int64_t flushes_until_fail = -1;
  bool dead = false;

  const uint32_t block_size;
  uint64_t block_count;
  struct Undo {
    uint64_t block;
    bool had;
    std::vector<std::byte> old;
  };
  std::unordered_map<uint64_t, std::vector<std::byte>> blocks;
  std::vector<Undo> unsynced;
  std::mutex mu;
};

class FaultDevice final : public blockdev::BlockDevice {
 public:
  explicit FaultDevice(std::shared_ptr<FaultMedia> media, bool read_only = false)
      : BlockDevice("fault.vdisk", media->block_size, media->block_count, 1, read_only),
        media_(std::move(media)) {}

  std::string Describe() const override { return "fault-injecting memory"; }

  Status ReadBatch(std::span<blockdev::ReadRequest> reqs) override {
    std::lock_guard lock(media_->mu);
    Status first;
    for (auto& r : reqs) {
      r.status = CheckRequest(r.block, r.count, r.buf, false);
      if (r.status.ok()) {
        for (uint32_t i = 0; i < r.count; i++) {
          std::byte* dst = r.buf + size_t{i} * block_size();
          auto it = media_->blocks.find(r.block + i);
          if (it == media_->blocks.end()) {
            std::memset(dst, 0, block_size());
          } else {
            std::memcpy(dst, it->second.data(), block_size());
          }
        }
      } else if (first.ok()) {
        first = r.status;
      }
    }
    return first;
  }

  Status WriteBatch(std::span<blockdev::WriteRequest> reqs) override {
    std::lock_guard lock(media_->mu);
    Status first;
    for (auto& w : reqs) {
      w.status = CheckRequest(w.block, w.count, w.buf, true);
      for (uint32_t i = 0; w.status.ok() && i < w.count; i++) {
        if (media_->dead || media_->writes_until_fail == 0) {
          media_->dead = true;
          w.status = Status::IOError(
              path() + ": injected write failure at block " + std::to_string(w.block + i), 5);
          break;
        }
        if (media_->writes_until_fail > 0) media_->writes_until_fail--;
        uint64_t b = w.block + i;
        auto it = media_->blocks.find(b);
        FaultMedia::Undo u{b, it != media_->blocks.end(), {}};
        if (u.had) u.old = it->second;
        media_->unsynced.push_back(std::move(u));
        const std::byte* src = w.buf + size_t{i} * block_size();
        media_->blocks[b].assign(src, src + block_size());
        media_->blocks_written++;
      }
      if (!w.status.ok() && first.ok()) first = w.status;
    }
    return first;
  }

  Status Flush() override {
    VDE_RETURN_IF_ERROR(CheckWritable("flush"));
    std::lock_guard lock(media_->mu);
    if (media_->dead || media_->flushes_until_fail == 0) {
      media_->dead = true;
      return Status::IOError(path() + ": injected flush failure", 5);
    }
    if (media_->flushes_until_fail > 0) media_->flushes_until_fail--;
    media_->unsynced.clear();
    media_->flushes++;
    return Status::OK();
  }

  Status Grow(uint64_t n) override {
    VDE_RETURN_IF_ERROR(CheckWritable("grow"));
    std::lock_guard lock(media_->mu);
    if (media_->dead) return Status::IOError(path() + ": injected failure (grow)", 5);
    if (n > media_->block_count) media_->block_count = n;
    set_block_count(media_->block_count);
    return Status::OK();
  }

 private:
  std::shared_ptr<FaultMedia> media_;
};

}  // namespace vde::testing
