// The write path: every Put, Delete and WriteBatch goes through StoreImpl::Apply, which
// validates the whole write and applies it to the trees. A batch records each touched key's
// previous state and restores them all when any part fails; the block source's reserve makes
// that undo safe from NoSpace (see StoreBlockSource). A single operation needs no undo
// (ApplyOne).
#include <limits>
#include <mutex>
#include <unordered_set>

#include "index/overflow.h"
#include "vde/store_impl.h"
#include "vde/varint.h"

namespace vde {

namespace {

enum : uint8_t { kTagPut = 1, kTagDelete = 2 };

// Identifies one (index, key) pair in a write, to record its undo image once.
struct Touch {
  const IndexState* index;
  std::string_view key;
  bool operator==(const Touch&) const = default;
};
struct TouchHash {
  size_t operator()(const Touch& t) const {
    return std::hash<std::string_view>()(t.key) ^ (std::hash<const void*>()(t.index) << 1);
  }
};

}  // namespace

// ---- Block source -------------------------------------------------------------------------------

StoreBlockSource::StoreBlockSource(Disk* disk, bool growable, uint64_t max_blocks,
                                   const index::SnapshotRegistry* snapshots)
    : disk_(disk), snapshots_(snapshots), growable_(growable), max_blocks_(max_blocks) {}

uint64_t StoreBlockSource::Available() const {
  const AllocatorStats s = disk_->allocator().stats();
  const uint64_t free = s.free_blocks > s.reserved_blocks ? s.free_blocks - s.reserved_blocks : 0;
  if (!growable_) return free;
  if (max_blocks_ == 0) return std::numeric_limits<uint64_t>::max() / 4;
  return free + (max_blocks_ > s.block_count ? max_blocks_ - s.block_count : 0);
}

bool StoreBlockSource::TakeFrom(std::vector<Extent>* pool, uint64_t count, uint64_t* start) {
  // Best fit: the smallest extent that holds `count`; the rest of it stays in the pool.
  auto best = pool->end();
  for (auto it = pool->begin(); it != pool->end(); ++it) {
    if (it->count >= count && (best == pool->end() || it->count < best->count)) best = it;
  }
  if (best == pool->end()) return false;
  *start = best->start;
  best->start += count;
  best->count -= count;
  if (best->count == 0) pool->erase(best);
  return true;
}

Result<uint64_t> StoreBlockSource::AllocateFromDisk(uint64_t count) {
  const uint64_t keep = keep_.load(std::memory_order_relaxed);
  if (keep != 0) {
    const uint64_t avail = Available();
    if (avail < count + keep) {
      return Status::NoSpace(disk_->path() + ": no room for " + std::to_string(count) +
                             " blocks: " + std::to_string(avail) + " available, " +
                             std::to_string(keep) +
                             " of them kept to undo the write in progress and for the next " +
                             "checkpoint (checkpoint to reuse freed blocks)");
    }
  }
  VDE_ASSIGN_OR_RETURN(Extent e, disk_->allocator().Allocate(count));
  return e.start;
}

Result<uint64_t> StoreBlockSource::Allocate(uint32_t count) {
  {
    std::lock_guard lk(mu_);
    uint64_t start = 0;
    if (undo_ && TakeFrom(&reserved_, count, &start)) return start;
    if (TakeFrom(&spares_, count, &start)) return start;
  }
  return AllocateFromDisk(count);
}

Status StoreBlockSource::Free(uint64_t block, uint32_t count) {
  const Extent e{block, count};
  if (snapshots_ == nullptr || !snapshots_->any_live()) return disk_->allocator().Free(e);
  // A live snapshot may still read it: free in the map, reusable only once every snapshot
  // that may reach it (those older than the current epoch) is gone.
  VDE_RETURN_IF_ERROR(disk_->allocator().FreeHeld(e));
  std::lock_guard lk(mu_);
  held_.push_back({snapshots_->current_epoch(), e});
  held_blocks_ += count;
  return Status::OK();
}

Status StoreBlockSource::ReleaseHeld(index::PageCache* cache) {
  std::vector<Extent> done;
  {
    std::lock_guard lk(mu_);
    if (held_.empty()) return Status::OK();
    const uint64_t oldest = snapshots_->oldest_live();
    for (size_t i = 0; i < held_.size();) {
      if (oldest == 0 || oldest >= held_[i].epoch) {
        done.push_back(held_[i].extent);
        held_blocks_ -= held_[i].extent.count;
        held_[i] = held_.back();
        held_.pop_back();
      } else {
        i++;
      }
    }
  }
  Status first;
  for (const Extent& e : done) {
    // A copy kept for the snapshots (or read back by one) is stale from now on. Pages are
    // freed one block at a time; longer extents are out-of-line values, which are read around
    // the cache and never resident, so only single blocks are looked up.
    if (e.count == 1) cache->DropIfResident(e.start);
    Status s = disk_->allocator().Unhold(e);
    if (first.ok()) first = s;
  }
  return first;
}

uint64_t StoreBlockSource::held_blocks() const {
  std::lock_guard lk(mu_);
  return held_blocks_;
}

Status StoreBlockSource::Reserve(uint64_t count) {
  std::lock_guard lk(mu_);
  uint64_t start = 0;
  if (!TakeFrom(&spares_, count, &start)) {
    VDE_ASSIGN_OR_RETURN(start, AllocateFromDisk(count));
  }
  reserved_.push_back(Extent{start, count});
  return Status::OK();
}

void StoreBlockSource::set_undo(bool on) {
  std::lock_guard lk(mu_);
  undo_ = on;
}

void StoreBlockSource::EndWrite() {
  std::lock_guard lk(mu_);
  undo_ = false;
  spares_.insert(spares_.end(), reserved_.begin(), reserved_.end());
  reserved_.clear();
}

Status StoreBlockSource::ReleaseSpares() {
  std::lock_guard lk(mu_);
  Status first;
  for (const Extent& e : spares_) {
    Status s = disk_->allocator().Free(e);
    if (first.ok()) first = s;
  }
  spares_.clear();
  return first;
}

uint64_t StoreBlockSource::spare_blocks() const {
  std::lock_guard lk(mu_);
  uint64_t n = 0;
  for (const Extent& e : spares_) n += e.count;
  for (const Extent& e : reserved_) n += e.count;
  return n;
}

// ---- Apply --------------------------------------------------------------------------------------

// The state of one key before the write touched it.
struct StoreImpl::Undo {
  IndexState* index = nullptr;
  std::string_view key;
  bool existed = false;
  std::string old;
};

Status StoreImpl::Decode(const WriteBatch& batch, std::vector<WriteOp>* ops) const {
  ops->clear();
  ops->reserve(batch.count_);
  std::string_view in(batch.rep_);
  while (!in.empty()) {
    WriteOp op;
    const auto tag = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    uint64_t slot = 0;
    bool ok = (tag == kTagPut || tag == kTagDelete) && GetVarint64(&in, &slot) &&
              slot <= batch.indexes_.size() && GetLengthPrefixed(&in, &op.key);
    op.put = tag == kTagPut;
    if (ok && op.put) ok = GetLengthPrefixed(&in, &op.value);
    if (!ok) return Status::InvalidArgument("write batch: malformed operation");
    const IndexState* want = slot == 0 ? nullptr : batch.indexes_[slot - 1].get();
    if (slot != 0 && want == nullptr) {
      return Status::InvalidArgument("write batch operation " + std::to_string(ops->size()) +
                                     ": the Index handle names no index");
    }
    Result<IndexState*> st = Resolve(want);
    if (!st.has_value()) {
      return st.error().WithContext("write batch operation " + std::to_string(ops->size()));
    }
    op.index = *st;
    ops->push_back(op);
  }
  return Status::OK();
}

Status StoreImpl::Apply(std::span<const WriteOp> ops) {
  VDE_RETURN_IF_ERROR(CheckWritable());
  // Blocks that snapshots no longer need become reusable (after the next checkpoint).
  VDE_RETURN_IF_ERROR(source_->ReleaseHeld(cache_.get()));
  const uint32_t bs = block_size_;
  const uint32_t max_key = index::MaxKeySize(bs);
  for (size_t i = 0; i < ops.size(); i++) {
    const WriteOp& op = ops[i];
    std::string err;
    if (op.key.empty() || op.key.size() > max_key) {
      err = "key of " + std::to_string(op.key.size()) + " bytes is outside the limit of 1 to " +
            std::to_string(max_key) + " bytes (Store::max_key_size for " + std::to_string(bs) +
            "-byte blocks)";
    } else if (op.put && op.value.size() > index::kMaxValueSize) {
      err = "value of " + std::to_string(op.value.size()) + " bytes exceeds the limit of " +
            std::to_string(index::kMaxValueSize) + " bytes (Store::max_value_size)";
    }
    if (!err.empty()) {
      if (ops.size() > 1) err = "write batch operation " + std::to_string(i) + ": " + err;
      return Status::InvalidArgument(err);
    }
  }
  if (ops.empty()) return Status::OK();
  // The write-ahead log will append the write here: validated, not yet applied.

  dirty_.store(true, std::memory_order_relaxed);
  if (ops.size() == 1) return ApplyOne(ops[0]);
  std::vector<Undo> undo;
  std::unordered_set<Touch, TouchHash> seen;
  uint64_t keep = checkpoint_reserve_;
  Status s;
  for (const WriteOp& op : ops) {
    index::BTree& tree = *op.index->tree;
    if (seen.insert(Touch{op.index, op.key}).second) {
      Undo u;
      u.index = op.index;
      u.key = op.key;
      Status g = tree.Get(op.key, &u.old);
      if (!g.ok() && !g.IsNotFound()) {
        s = g;
        break;
      }
      u.existed = g.ok();
      // What restoring this key could allocate, at most. Every page on its path is already
      // new in this generation (the write copied it), so no copy is needed there. Removing a
      // key the write added may merge a page on each level with a sibling that is still
      // shared with the checkpoint (one copy per level). Putting an old value back may also
      // split a leaf twice (docs/FORMAT.md, "Limits"), each split climbing to a new root.
      // The tree may grow a level meanwhile, hence h + 1. Those pages are kept back from the
      // allocations that follow; the old value's out-of-line extent, which must be
      // contiguous, is set aside now.
      const uint64_t h = tree.height() + 1;
      keep += g.ok() ? 3 * (h + 1) : h + 1;
      source_->set_keep(keep);
      if (u.existed && u.old.size() > tree.max_inline_value()) {
        s = source_->Reserve(index::OverflowBlocksFor(u.old.size(), bs));
        if (!s.ok()) break;
      }
      undo.push_back(std::move(u));
      if (!op.put && !undo.back().existed) continue;  // deleting an absent key: nothing to do
    }
    s = op.put ? tree.Put(op.key, op.value) : tree.Delete(op.key);
    if (!op.put && s.IsNotFound()) s = Status::OK();
    if (!s.ok()) break;
  }
  source_->set_keep(0);
  if (s.ok()) {
    source_->EndWrite();
    return Status::OK();
  }
  source_->set_undo(true);
  Status u = Rollback(undo);
  source_->EndWrite();
  if (!u.ok()) {
    return Poison(s.WithContext(
        "a write failed and undoing it failed too (" + u.ToString() +
        "); the store refuses every call: reopen it to return to the last checkpoint"));
  }
  return ops.size() > 1 ? s.WithContext("write batch not applied") : s;
}

// One operation needs no undo image: a tree put or delete either fails before it changes the
// key (nothing to undo) or after (in a merge that tidies the tree up, which leaves the tree
// consistent and the operation complete). Which one is told by looking the key up.
Status StoreImpl::ApplyOne(const WriteOp& op) {
  index::BTree& tree = *op.index->tree;
  source_->set_keep(checkpoint_reserve_);
  Status s = op.put ? tree.Put(op.key, op.value) : tree.Delete(op.key);
  source_->set_keep(0);
  if (s.ok() || (!op.put && s.IsNotFound())) return Status::OK();
  std::string cur;
  Status g = tree.Get(op.key, &cur);
  if (g.ok() || g.IsNotFound()) {
    const bool done = op.put ? g.ok() && cur == op.value : g.IsNotFound();
    return done ? Status::OK() : s;
  }
  return Poison(s.WithContext("a write failed and looking up whether it took effect failed too (" +
                              g.ToString() +
                              "); the store refuses every call: reopen it to return to the "
                              "last checkpoint"));
}

Status StoreImpl::Rollback(std::span<const Undo> undo) {
  std::string cur;
  for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
    index::BTree& tree = *it->index->tree;
    auto restored = [&]() -> Result<bool> {
      Status g = tree.Get(it->key, &cur);
      if (g.IsNotFound()) return !it->existed;
      VDE_RETURN_IF_ERROR(g);
      return it->existed && cur == it->old;
    };
    VDE_ASSIGN_OR_RETURN(bool done, restored());
    if (done) continue;
    Status s = it->existed ? tree.Put(it->key, it->old) : tree.Delete(it->key);
    if (s.ok()) continue;
    // A put or delete may fail after its change (in a merge that follows it): the key may be
    // restored all the same.
    VDE_ASSIGN_OR_RETURN(done, restored());
    if (!done) return s;
  }
  return Status::OK();
}

// ---- Store: writes ------------------------------------------------------------------------------

Status StoreImpl::WriteOne(const IndexState* index, bool put, std::string_view key,
                           std::string_view value) {
  std::lock_guard w(write_mu_);
  std::lock_guard a(apply_mu_);
  std::shared_lock lk(mu_);
  VDE_RETURN_IF_ERROR(CheckWritable());
  VDE_ASSIGN_OR_RETURN(IndexState * st, Resolve(index));
  (put ? puts_ : deletes_).fetch_add(1, std::memory_order_relaxed);
  const WriteOp op{put, st, key, value};
  return Apply({&op, 1});
}

Status Store::Put(std::string_view key, std::string_view value) {
  return impl_->WriteOne(nullptr, true, key, value);
}

Status Store::Put(const Index& index, std::string_view key, std::string_view value) {
  VDE_RETURN_IF_ERROR(StoreImpl::CheckHandle(index));
  return impl_->WriteOne(index.state_.get(), true, key, value);
}

Status Store::Delete(std::string_view key) {
  return impl_->WriteOne(nullptr, false, key, {});
}

Status Store::Delete(const Index& index, std::string_view key) {
  VDE_RETURN_IF_ERROR(StoreImpl::CheckHandle(index));
  return impl_->WriteOne(index.state_.get(), false, key, {});
}

Status Store::Write(const WriteBatch& batch) {
  std::lock_guard w(impl_->write_mu_);
  std::lock_guard a(impl_->apply_mu_);
  std::shared_lock lk(impl_->mu_);
  VDE_RETURN_IF_ERROR(impl_->CheckWritable());
  std::vector<WriteOp> ops;
  VDE_RETURN_IF_ERROR(impl_->Decode(batch, &ops));
  impl_->batches_.fetch_add(1, std::memory_order_relaxed);
  return impl_->Apply(ops);
}

}  // namespace vde
