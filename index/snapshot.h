// SnapshotRegistry: the live read snapshots of the trees that share one page cache, and the
// epoch counter that tells a writer whether a snapshot may still see a page.
//
// A snapshot is a tree's root as of a moment. It stays readable while writers go on because a
// writer never changes, in place, a page that a live snapshot may reach: every page a writer
// creates (PinNew, or the new copy of a copy-on-write) is stamped, in the page cache frame, with
// the current epoch; taking a snapshot returns the current epoch and advances it. A snapshot
// of epoch s can reach only pages created in an epoch <= s, so a writer copies a page before
// changing it when MayReference(its epoch) (a page read back from the device has epoch 0: its
// epoch is unknown, and it is copied whenever any snapshot is live). The old copy keeps its
// block: it stays in the cache (or is written back to its block on eviction), and the block
// is not reused while a snapshot that may reach it lives (the block source holds such frees;
// see vde's StoreBlockSource).
//
// Thread safety: every method may be called from any thread. Acquire must be serialized with
// the writers of the trees it snapshots (the caller holds their writer lock), so that the root
// it records and the epoch agree. Release may run at any time; a writer that sees a stale
// (larger) newest epoch only copies a page it could have changed in place.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <set>

namespace vde::index {

class SnapshotRegistry {
 public:
  // The epoch of pages created now (>= 1).
  uint64_t current_epoch() const { return epoch_.load(std::memory_order_acquire); }
  // Registers a snapshot of the state as of now and returns its epoch. Later page creations
  // get a later epoch, unless nothing was created since the last snapshot (NoteCreated), in
  // which case the new snapshot shares the last one's epoch.
  uint64_t Acquire();
  void Release(uint64_t epoch);
  // Called by writers when they create a page in the current epoch.
  void NoteCreated() {
    if (!created_.load(std::memory_order_relaxed)) created_.store(true, std::memory_order_relaxed);
  }
  // Whether a live snapshot may reach a page created in `page_epoch`.
  bool MayReference(uint64_t page_epoch) const {
    const uint64_t newest = newest_.load(std::memory_order_acquire);
    return newest != 0 && page_epoch <= newest;
  }
  bool any_live() const { return newest_.load(std::memory_order_acquire) != 0; }
  // The oldest live snapshot's epoch, 0 when none is live.
  uint64_t oldest_live() const { return oldest_.load(std::memory_order_acquire); }
  uint64_t live() const;

 private:
  mutable std::mutex mu_;
  std::multiset<uint64_t> live_;      // under mu_
  std::atomic<uint64_t> epoch_{1};    // changed under mu_
  std::atomic<uint64_t> newest_{0};   // max of live_, 0 if empty; changed under mu_
  std::atomic<uint64_t> oldest_{0};   // min of live_, 0 if empty; changed under mu_
  std::atomic<bool> created_{false};  // a page was created in the current epoch
};

// A registered snapshot: released when destroyed. Move-only.
class SnapshotHandle {
 public:
  SnapshotHandle() = default;
  SnapshotHandle(SnapshotRegistry* r, uint64_t epoch) : reg_(r), epoch_(epoch) {}
  SnapshotHandle(SnapshotHandle&& o) noexcept : reg_(o.reg_), epoch_(o.epoch_) { o.reg_ = nullptr; }
  SnapshotHandle& operator=(SnapshotHandle&& o) noexcept {
    if (this != &o) {
      Reset();
      reg_ = o.reg_;
      epoch_ = o.epoch_;
      o.reg_ = nullptr;
    }
    return *this;
  }
  SnapshotHandle(const SnapshotHandle&) = delete;
  SnapshotHandle& operator=(const SnapshotHandle&) = delete;
  ~SnapshotHandle() { Reset(); }
  void Reset() {
    if (reg_ != nullptr) reg_->Release(epoch_);
    reg_ = nullptr;
  }
  bool valid() const { return reg_ != nullptr; }
  uint64_t epoch() const { return epoch_; }

 private:
  SnapshotRegistry* reg_ = nullptr;
  uint64_t epoch_ = 0;
};

}  // namespace vde::index
