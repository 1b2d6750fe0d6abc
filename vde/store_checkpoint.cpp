// Checkpoints: the copy-on-write order that ties the B+trees, the catalog and the disk together,
// and the background thread that runs them periodically.
//
// Order (writers are stopped throughout; readers go on):
//   1. record each index's current root in the catalog's names tree (only those that moved);
//   2. write a new catalog header block if the names tree, count or next id changed, and point
//      the disk's catalog root at it;
//   3. PageCache::FlushAll: every dirty page (index and catalog pages) goes to its block, which
//      is new in this generation (copy-on-write), so nothing the last checkpoint references is
//      overwritten;
//   4. Disk::Checkpoint: the allocator map, flush, the superblock naming the new catalog root,
//      flush. The superblock write is the commit point: before it a crash reopens the previous
//      checkpoint, after it this one.
// The generation then advances, so the next change to any page copies it first.
#include <mutex>
#include <shared_mutex>

#include "vde/store_impl.h"

namespace vde {

Status Store::Checkpoint() {
  return impl_->Checkpoint(/*only_if_dirty=*/false);
}

Status StoreImpl::Checkpoint(bool only_if_dirty) {
  std::lock_guard cp(cp_mu_);
  std::lock_guard w(write_mu_);
  std::shared_lock lk(mu_);
  VDE_RETURN_IF_ERROR(CheckOpen());
  if (disk_->read_only()) {
    return Status::ReadOnly(disk_->path() + ": checkpoint of a store opened read-only");
  }
  if (only_if_dirty && !dirty_.load()) return Status::OK();
  return CheckpointLocked();
}

Status StoreImpl::CheckpointLocked() {
  {
    std::lock_guard sl(stats_mu_);
    if (!disk_failed_.ok()) return disk_failed_;
  }
  source_->set_keep(0);  // the checkpoint may use the room writers keep back for it
  dirty_.store(false);
  bool disk_failed = false;
  Status s = [&]() -> Status {
    for (auto& [name, st] : indexes_) {
      const uint64_t root = st->tree->root();
      if (root == st->record.root) continue;
      CatalogRecord r = st->record;
      r.root = root;
      VDE_RETURN_IF_ERROR(catalog_->Put(name, r, /*is_new=*/false));
      st->record.root = root;
    }
    VDE_RETURN_IF_ERROR(catalog_->WriteHeaderIfChanged(disk_->next_generation()));
    // Spare blocks belong to nothing: give them back so that the checkpoint records them free.
    VDE_RETURN_IF_ERROR(source_->ReleaseSpares());
    VDE_RETURN_IF_ERROR(source_->ReleaseHeld(cache_.get()));
    VDE_RETURN_IF_ERROR(cache_->FlushAll());
    Status d = disk_->Checkpoint();
    // NoSpace from the disk means nothing was written; anything else leaves the disk refusing
    // further checkpoints.
    disk_failed = !d.ok() && !d.IsNoSpace();
    return d;
  }();
  source_->Refresh();
  std::lock_guard sl(stats_mu_);
  last_checkpoint_error_ = s;
  if (!s.ok()) {
    dirty_.store(true);
    if (disk_failed) {
      disk_failed_ = s.WithContext(
          "a checkpoint failed; the store takes no more writes (reopen it: it opens at the last "
          "good checkpoint)");
    }
    return s;
  }
  checkpoints_.fetch_add(1, std::memory_order_relaxed);
  return Status::OK();
}

void StoreImpl::StartBackground() {
  const auto interval = options_.checkpoint_interval;
  if (interval.count() <= 0 || disk_->read_only()) return;
  bg_thread_ = std::thread([this, interval] {
    std::unique_lock lk(bg_mu_);
    auto next = std::chrono::steady_clock::now() + interval;
    while (!bg_stop_) {
      if (bg_cv_.wait_until(lk, next, [this] { return bg_stop_; })) break;
      lk.unlock();
      // Errors are kept in last_checkpoint_error_ (StoreStats); the next round tries again.
      Status s = Checkpoint(/*only_if_dirty=*/true);
      (void)s;
      lk.lock();
      next = std::chrono::steady_clock::now() + interval;
    }
  });
}

void StoreImpl::StopBackground() {
  {
    std::lock_guard lk(bg_mu_);
    bg_stop_ = true;
  }
  bg_cv_.notify_all();
  if (bg_thread_.joinable()) bg_thread_.join();
}

}  // namespace vde
