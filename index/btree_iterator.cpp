// BTree::Iterator. It keeps a copy of the current leaf, so stepping within a leaf touches
// neither the lock nor the cache beyond a version check. It crosses to the next or previous leaf
// through the parent its last descent went through, while no change to the tree has begun since
// that descent (BTree::modifications_, a sequence count; a snapshot never changes), and else by
// re-descending from the root with the leaf's fence key (no sibling pointers: under
// copy-on-write a moved page would have to update both neighbours).
//
// Read-ahead. Each descent records the inner pages it went through and the child slot taken in
// each (path_), so the iterator knows where its leaf sits among its parent's children. Once a
// scan has stepped over kReadAheadAfter leaves in one direction, it collects the next `window`
// leaves from the parent's child list (moving on through the grandparent, and higher, at the
// parent's end) and hands the missing ones to the cache's read-ahead threads
// (PageCache::PrefetchAsync); the window doubles from kFirstWindow up to
// IteratorOptions::readahead_max (capped at frames/8, so read-ahead never floods the cache). It
// keeps one window requested beyond the one it walks; while the leaves lie in sequence on disk,
// windows grow to kSequentialFactor times the limit (up to 1 MiB) and kSequentialLead
// full-size windows are kept ahead. Each is collected from where the last one ended (ra_end_).
// Each request also names the parent pages the next few windows will cross, so that windows
// cross into parents that are already resident. While the scan is ahead of its next leaf, the
// walk never reads an inner page itself nor waits for one still being read: it stops there
// (ra_blocked_) and goes on once the page is in, so a scan never waits behind its own
// read-ahead to plan more of it. A Seek or a change of direction starts over; Get and MultiGet
// never read ahead.
#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "index/btree.h"

namespace vde::index {

namespace {

constexpr uint32_t kReadAheadAfter = 2;
constexpr uint32_t kFirstWindow = 2;
// While the leaves lie in sequence on disk (at least 3 in 4 adjacent to the one before), windows
// may grow to kSequentialFactor times the limit, but no larger than kSequentialWindowBytes
// (unless the limit itself is), and kSequentialLead of them are kept requested ahead; otherwise
// windows stop at the limit and one is kept ahead.
constexpr uint32_t kSequentialFactor = 4;
constexpr uint32_t kSequentialWindowBytes = 1u << 20;
constexpr uint32_t kSequentialLead = 4;
// Each window also names the parent pages that about this many more windows will cross, at most
// kMaxParentsAhead of them.
constexpr uint32_t kParentWindows = 4;
constexpr uint32_t kMaxParentsAhead = 16;

void RaiseMax(std::atomic<uint64_t>& max, uint64_t v) {
  uint64_t seen = max.load(std::memory_order_relaxed);
  while (seen < v && !max.compare_exchange_weak(seen, v, std::memory_order_relaxed)) {
  }
}

}  // namespace

std::unique_ptr<BTree::Iterator> BTree::NewIterator(IteratorOptions options) const {
  std::unique_ptr<Iterator> it(new Iterator(this, std::move(options)));
  if (snapshots_ != nullptr) {
    // Serialized with writers, so that the root and the epoch agree (snapshot.h).
    std::lock_guard lock(write_mu_);
    it->snapshot_ = SnapshotHandle(snapshots_, snapshots_->Acquire());
    it->snapshot_root_ = root_.load(std::memory_order_acquire);
  }
  return it;
}

BTree::Iterator::Iterator(const BTree* tree, IteratorOptions options)
    : tree_(tree),
      options_(std::move(options)),
      leaf_(new std::byte[tree->block_size_]),
      has_bounds_(!options_.lower_bound.empty() || !options_.upper_bound.empty()) {
  std::memset(leaf_.get(), 0, tree->block_size_);
}

void BTree::Iterator::CopyLeaf(const SharedGuard& g) {
  // The header and entry array, and the heap: not the free gap between them (a third of a
  // leaf split in the middle), which nothing reads. The page passed its check when it was
  // loaded and changes only under its exclusive latch, so its bounds hold; a full copy if not.
  const std::byte* src = g.data().data();
  const uint32_t bs = tree_->block_size_;
  const Node n(src, bs);
  const uint32_t front = n.EntryArrayEnd();
  const uint32_t heap = n.heap_start();
  if (front <= heap && heap <= bs) {
    std::memcpy(leaf_.get(), src, front);
    std::memcpy(leaf_.get() + heap, src + heap, bs - heap);
  } else {
    std::memcpy(leaf_.get(), src, bs);
  }
  leaf_version_ = TreeVersion();
  leaf_page_ = g.page_id();
  leaf_count_ = leaf().count();
}

Result<BTree::SharedGuard> BTree::Iterator::Descend(std::string_view key, Descent how) {
  path_.clear();
  path_version_ = ~uint64_t{0};
  const uint64_t version = TreeVersion();
  uint64_t id = snapshot_root_;
  SharedGuard g;
  if (snapshot_.valid()) {
    VDE_ASSIGN_OR_RETURN(g, tree_->PinShared(id));
    VDE_RETURN_IF_ERROR(tree_->CheckRoot(Node(g.data().data(), tree_->block_size_), id));
  } else {
    VDE_ASSIGN_OR_RETURN(g, tree_->PinRoot(&id));
  }
  Node n(g.data().data(), tree_->block_size_);
  while (!n.is_leaf()) {
    bool found;
    const uint32_t slot = how == Descent::kRightmost    ? n.count()
                          : how == Descent::kUpperBound ? n.UpperBound(key)
                                                        : n.LowerBound(key, &found);
    path_.push_back({id, slot});
    const uint64_t child = n.child(slot);
    VDE_RETURN_IF_ERROR(tree_->CheckChildPointer(id, child));
    VDE_ASSIGN_OR_RETURN(SharedGuard c, tree_->PinShared(child));
    Node cn(c.data().data(), tree_->block_size_);
    VDE_RETURN_IF_ERROR(tree_->CheckChild(n, id, slot, cn, child));
    g = std::move(c);
    n = cn;
    id = child;
  }
  path_version_ = version;
  return g;
}

Result<bool> BTree::Iterator::StepThroughParent(int dir, SharedGuard* out) {
  // The path must be as the descent saw it: taken between changes (even) and none since. A
  // snapshot's pages never change.
  if (path_.empty() || path_version_ % 2 != 0 || path_version_ != TreeVersion()) return false;
  PathLevel& up = path_.back();
  VDE_ASSIGN_OR_RETURN(SharedGuard pg, tree_->PinShared(up.page));
  const Node p(pg.data().data(), tree_->block_size_);
  if (p.level() != 1 || up.slot > p.count() || p.child(up.slot) != leaf_page_) return false;
  if (dir > 0 ? up.slot == p.count() : up.slot == 0) return false;  // the parent's last child
  const uint32_t slot = up.slot + dir;
  const uint64_t id = p.child(slot);
  VDE_RETURN_IF_ERROR(tree_->CheckChildPointer(up.page, id));
  step_missed_ = !tree_->cache_->Resident(id);
  VDE_ASSIGN_OR_RETURN(SharedGuard c, tree_->PinShared(id));
  const Node cn(c.data().data(), tree_->block_size_);
  VDE_RETURN_IF_ERROR(tree_->CheckChild(p, up.page, slot, cn, id));
  // Still no change begun: the parent was the tree's, so the leaf is too (a writer that made
  // the count odd after this check changes the leaf only once our latch is gone, and Next
  // then sees the count moved on from the copy's). No fence needed before the load: a writer
  // makes the count odd before it changes a page, and releases that page's latch after, before
  // we could take ours (an acquire): a change our pages show is one whose count this load sees.
  if (path_version_ != TreeVersion()) return false;
  up.slot = slot;
  *out = std::move(c);
  return true;
}

void BTree::Iterator::ResetReadAhead() {
  ra_dir_ = 0;
  ra_run_ = 0;
  ra_window_ = 0;
  ra_ahead_ = 0;
  ra_sequential_ = false;
  ra_end_.clear();
  ra_blocked_ = kNoPage;
  ra_warm_ = false;
  step_missed_ = false;
}

void BTree::Iterator::NoteLeafStep(int dir) {
  if (ra_dir_ != dir) {
    ResetReadAhead();
    ra_dir_ = dir;
  }
  ra_run_++;
  // ra_ahead_ counts the leaves requested beyond the current one; this step's target is the
  // first of them.
  const bool target_requested = ra_ahead_ > 0;
  if (target_requested) ra_ahead_--;
  if (options_.readahead_max == 0 || ra_run_ < kReadAheadAfter || path_.empty() ||
      path_version_ != TreeVersion()) {
    return;
  }
  if (ra_warm_) {
    if (!step_missed_) return;
    // Out of the cached part: read ahead again, from the first window on.
    ra_warm_ = false;
    ra_window_ = 0;
    ra_ahead_ = 0;
    ra_end_.clear();
  }
  // Keep windows requested beyond the target, so that the read-ahead threads read the next
  // while the scan walks this one: one, or kSequentialLead while the leaves lie in sequence on
  // disk. Those are read in a few large requests, which the device completes about together,
  // after a time that grows with the window: several windows of about 1 MiB in flight keep it
  // busy and hand the scan its first pages sooner than one large window would. The lead only
  // once windows are full size: until then a short scan wastes no more than the doubling does.
  uint32_t max = options_.readahead_max;
  if (ra_sequential_) {
    const uint32_t bytes_cap = std::max(1u, kSequentialWindowBytes / tree_->block_size_);
    max = std::max(max, std::min(max * kSequentialFactor, bytes_cap));
  }
  max = std::min(max, std::max(1u, tree_->cache_->frames() / 8));
  const uint32_t lead = ra_sequential_ && ra_window_ >= max ? kSequentialLead : 1;
  if (target_requested && ra_ahead_ >= ra_window_ * lead) return;
  uint32_t window = std::min(ra_window_ == 0 ? kFirstWindow : 2 * ra_window_, max);
  // The last walk stopped at an inner page still being read: wait until it is in, unless the
  // scan has caught up (its next leaf was not read ahead), when the walk waits for it as the
  // scan itself would.
  if (ra_blocked_ != kNoPage && target_requested) {
    SharedGuard g;
    if (tree_->cache_->TryPinShared(ra_blocked_, &ValidateNode, &g) == PageCache::Ready::kBusy) {
      return;
    }
  }
  ra_blocked_ = kNoPage;
  // The cache takes only so much read-ahead in flight: wait for room for half a window rather
  // than collect leaves it would refuse.
  const size_t room = tree_->cache_->ReadAheadRoom();
  if (room < window) {
    if (room == 0 || room < window / 2) return;
    window = static_cast<uint32_t>(room);
  }
  // Collect from where the last window ended when that is known (the tree unchanged since);
  // else from the target on, skipping those already requested (the target and ra_ahead_ after
  // it).
  const bool resume = target_requested && !ra_end_.empty() && ra_end_version_ == path_version_;
  const uint32_t skip = resume || !target_requested ? 0 : ra_ahead_ + 1;
  std::vector<uint64_t> leaves;
  std::vector<uint64_t> parents;
  std::vector<PathLevel> end;
  // With the parents the next kParentWindows windows may cross.
  CollectLeaves(dir, resume ? ra_end_ : path_, skip + window, &leaves, kParentWindows * window,
                &parents, &end, target_requested ? &ra_blocked_ : nullptr);
  if (leaves.size() <= skip) {
    // Nothing new: the walk stopped at an inner page still being read (ra_blocked_, retried
    // once it is), or at the end. Keep where the last window ended.
    if (!parents.empty()) (void)tree_->cache_->PrefetchAsync(parents, &ValidateNode);
    return;
  }
  const size_t fresh = leaves.size() - skip;
  // The leaves already cached at the front of the window need nothing (PrefetchAsync would
  // look each up again).
  const auto first = leaves.begin() + static_cast<ptrdiff_t>(skip);
  const auto cached = static_cast<size_t>(
      std::find_if_not(first, leaves.end(),
                       [&](uint64_t leaf) { return tree_->cache_->Resident(leaf); }) -
      first);
  if (cached == fresh) {
    ra_warm_ = true;  // nothing to read: stop collecting until a step misses
    return;
  }
  ra_end_.clear();
  size_t adjacent = 0;
  for (size_t i = skip + 1; i < leaves.size(); i++) {
    adjacent += dir > 0 ? leaves[i] == leaves[i - 1] + 1 : leaves[i] + 1 == leaves[i - 1];
  }
  ra_sequential_ = fresh >= 2 && adjacent * 4 >= (fresh - 1) * 3;
  // Advisory: a page that fails here fails again, with its error, when the scan pins it.
  // The parents first, checked whole by the read-ahead threads: the next walks pin them with
  // TryPinShared, which takes only a page already checked. The leaves only by their block
  // checksum there: each is checked whole (ValidateNode) when the scan first pins it, on the
  // scan's thread. The read-ahead threads then hand each page over sooner after its read,
  // which a scan in key order waits for (docs/READ_PATH.md, "What a page read costs to check").
  if (!parents.empty()) (void)tree_->cache_->PrefetchAsync(parents, &ValidateNode);
  const uint32_t queued = tree_->cache_->PrefetchAsync(
      std::span<const uint64_t>(leaves).subspan(skip + cached), nullptr);
  if (queued == 0) return;  // the cache has enough in flight: try again at the next step
  const auto covered = static_cast<uint32_t>(std::min<size_t>(fresh, cached + queued));
  if (covered == fresh) {  // the next window starts after the last of these
    ra_end_ = std::move(end);
    ra_end_version_ = path_version_;
  }
  ra_window_ = window;
  // Leaves requested beyond the target (which is the first of `fresh` when it was not yet).
  ra_ahead_ = target_requested ? ra_ahead_ + covered : covered - 1;
  ReadCounters& rc = tree_->read_counters_;
  rc.readahead_windows.fetch_add(1, std::memory_order_relaxed);
  rc.readahead_leaves.fetch_add(covered, std::memory_order_relaxed);
  RaiseMax(rc.readahead_max_window, window);
}

void BTree::Iterator::CollectLeaves(int dir, const std::vector<PathLevel>& from, uint32_t want,
                                    std::vector<uint64_t>* out, uint32_t parent_leaves,
                                    std::vector<uint64_t>* parents, std::vector<PathLevel>* end,
                                    uint64_t* blocked) {
  const uint32_t bs = tree_->block_size_;
  struct Level {
    uint64_t page;
    uint32_t slot;
    SharedGuard guard;
  };
  // The path was current when checked (path_version_), but without a snapshot a writer may
  // have changed the tree since. Re-latch it from the root, coupled, and stop at the first page
  // that is no longer where the descent saw it: a page latched here is then always one the tree
  // still references (never a freed block, which a writer waits to reuse).
  std::vector<Level> lv;
  lv.reserve(from.size());
  for (const PathLevel& p : from) {
    Result<SharedGuard> g = tree_->PinShared(p.page);
    if (!g.has_value()) return;
    bool moved;
    if (lv.empty()) {
      moved = !snapshot_.valid() && tree_->root_.load(std::memory_order_acquire) != p.page;
    } else {
      const Node up(lv.back().guard.data().data(), bs);
      moved = up.is_leaf() || lv.back().slot > up.count() || up.child(lv.back().slot) != p.page;
    }
    if (moved) return;
    lv.push_back({p.page, p.slot, std::move(*g)});
  }
  // Moves level l to its next child in direction dir, crossing into the neighbouring page
  // (through the level above) at the end of this one. False at the end of the tree.
  auto step = [&](auto&& self, size_t l) -> bool {
    const Node n(lv[l].guard.data().data(), bs);
    if (dir > 0 ? lv[l].slot < n.count() : lv[l].slot > 0) {
      lv[l].slot += dir;
      return true;
    }
    if (l == 0 || !self(self, l - 1)) return false;
    const Node up(lv[l - 1].guard.data().data(), bs);
    const uint64_t id = up.child(lv[l - 1].slot);
    if (!tree_->CheckChildPointer(lv[l - 1].page, id).ok()) return false;
    // Never read or wait here: a page still being read (named by an earlier window) ends this
    // window, and one not resident is read ahead with it.
    SharedGuard g;
    if (blocked == nullptr) {  // the scan has caught up: read or wait as it would
      Result<SharedGuard> r = tree_->PinShared(id);
      if (!r.has_value()) return false;
      g = std::move(*r);
    } else {
      switch (tree_->cache_->TryPinShared(id, &ValidateNode, &g)) {
        case PageCache::Ready::kPinned:
          break;
        case PageCache::Ready::kAbsent:
          parents->push_back(id);
          return false;
        case PageCache::Ready::kBusy:
          *blocked = id;
          return false;
      }
    }
    const Node cn(g.data().data(), bs);
    if (!tree_->CheckChild(up, lv[l - 1].page, lv[l - 1].slot, cn, id).ok()) return false;
    lv[l] = {id, dir > 0 ? 0 : cn.count(), std::move(g)};
    return true;
  };
  const size_t last = lv.size() - 1;  // the leaves' parent
  const std::string& lb = options_.lower_bound;
  const std::string& ub = options_.upper_bound;
  while (out->size() < want && step(step, last)) {
    const Node p(lv[last].guard.data().data(), bs);
    const uint32_t j = lv[last].slot;
    // Child j holds keys in (lower, upper]: stop once it lies wholly outside the bounds.
    if (dir > 0 && !ub.empty()) {
      const bool beyond =
          j == 0 ? !p.lower_fence().empty() && p.lower_fence() >= ub : p.CompareKey(j - 1, ub) >= 0;
      if (beyond) return;
    }
    if (dir < 0 && !lb.empty()) {
      const bool before = j == p.count() ? !p.upper_fence().empty() && p.upper_fence() < lb
                                         : p.CompareKey(j, lb) < 0;
      if (before) return;
    }
    const uint64_t leaf = p.child(j);
    if (!tree_->CheckChildPointer(lv[last].page, leaf).ok()) return;
    out->push_back(leaf);
    end->resize(lv.size());
    for (size_t l = 0; l < lv.size(); l++) (*end)[l] = {lv[l].page, lv[l].slot};
  }
  // The parents after the one the window ends in, as many as the next window may cross, to be
  // read ahead too, so that later windows cross into parents that are already resident.
  // Otherwise a cold scan reads inner pages in its own thread, one at a time, each waiting
  // behind the read-ahead in the device's queue.
  if (last == 0 || parent_leaves == 0) return;
  const Node gp(lv[last - 1].guard.data().data(), bs);
  const uint32_t s = lv[last - 1].slot;
  // At the fan-out of the parent the window ends in, and one more: the next window is collected
  // as soon as this one is requested, and must not find its first parent still in flight.
  const uint32_t fanout = Node(lv[last].guard.data().data(), bs).count() + 1;
  const uint32_t parents_want = std::min<uint32_t>(kMaxParentsAhead, parent_leaves / fanout + 2);
  for (uint32_t k = 1; k <= parents_want; k++) {
    if (dir > 0 ? s + k > gp.count() : s < k) return;
    const uint32_t c = dir > 0 ? s + k : s - k;
    // Child c holds keys in (key c-1, key c]: stop once that lies wholly outside the bounds, as
    // for the leaves above.
    if (dir > 0 && !ub.empty() && gp.CompareKey(c - 1, ub) >= 0) return;
    if (dir < 0 && !lb.empty() && gp.CompareKey(c, lb) < 0) return;
    const uint64_t next = gp.child(c);
    if (!tree_->CheckChildPointer(lv[last - 1].page, next).ok()) return;
    parents->push_back(next);
  }
}

void BTree::Iterator::Finish(Status s) {
  value_loaded_ = false;
  value_.clear();
  status_ = std::move(s);
  if (!status_.ok()) valid_ = false;
  if (!valid_) return;
  leaf().CopyKey(slot_, &key_);
  if ((!options_.lower_bound.empty() && key_ < options_.lower_bound) ||
      (!options_.upper_bound.empty() && key_ >= options_.upper_bound)) {
    valid_ = false;
  }
}

Status BTree::Iterator::AtOrAfter(std::string_view key, bool strict) {
  valid_ = false;
  VDE_ASSIGN_OR_RETURN(SharedGuard g, Descend(key, Descent::kLowerBound));
  CopyLeaf(g);
  g.Release();
  Node n = leaf();
  bool found;
  uint32_t pos = n.LowerBound(key, &found);
  if (strict && found) pos++;
  if (pos < n.count()) {
    slot_ = pos;
    valid_ = true;
    return Status::OK();
  }
  return NextLeaf();
}

Status BTree::Iterator::AtOrBefore(std::string_view key, bool strict) {
  valid_ = false;
  VDE_ASSIGN_OR_RETURN(SharedGuard g, Descend(key, Descent::kLowerBound));
  CopyLeaf(g);
  g.Release();
  Node n = leaf();
  bool found;
  uint32_t pos = n.LowerBound(key, &found);
  if (found && !strict) {
    slot_ = pos;
    valid_ = true;
    return Status::OK();
  }
  if (pos > 0) {
    slot_ = pos - 1;
    valid_ = true;
    return Status::OK();
  }
  return PrevLeaf();
}

Status BTree::Iterator::AtLast() {
  valid_ = false;
  VDE_ASSIGN_OR_RETURN(SharedGuard g, Descend({}, Descent::kRightmost));
  CopyLeaf(g);
  g.Release();
  if (leaf().count() > 0) {
    slot_ = leaf().count() - 1;
    valid_ = true;
    return Status::OK();
  }
  return PrevLeaf();
}

Status BTree::Iterator::NextLeaf() {
  valid_ = false;
  for (;;) {
    // A view into the copy, which stays as it is until CopyLeaf below.
    const std::string_view fence = leaf().upper_fence();
    // No next leaf, or every key beyond this leaf is past the upper bound.
    if (fence.empty()) return Status::OK();
    if (!options_.upper_bound.empty() && fence >= options_.upper_bound) return Status::OK();
    NoteLeafStep(+1);
    SharedGuard g;
    VDE_ASSIGN_OR_RETURN(const bool stepped, StepThroughParent(+1, &g));
    if (!stepped) {
      VDE_ASSIGN_OR_RETURN(g, Descend(fence, Descent::kUpperBound));
    }
    if (Node(g.data().data(), tree_->block_size_).lower_fence() != fence) {
      return tree_->Corrupt(g.page_id(), "the leaf after fence key does not start at it");
    }
    CopyLeaf(g);
    if (leaf().count() > 0) {
      slot_ = 0;
      valid_ = true;
      return Status::OK();
    }
  }
}

Status BTree::Iterator::PrevLeaf() {
  valid_ = false;
  for (;;) {
    const std::string_view fence = leaf().lower_fence();
    if (fence.empty()) return Status::OK();
    if (!options_.lower_bound.empty() && fence < options_.lower_bound) return Status::OK();
    NoteLeafStep(-1);
    SharedGuard g;
    VDE_ASSIGN_OR_RETURN(const bool stepped, StepThroughParent(-1, &g));
    if (!stepped) {
      VDE_ASSIGN_OR_RETURN(g, Descend(fence, Descent::kLowerBound));
    }
    if (Node(g.data().data(), tree_->block_size_).upper_fence() != fence) {
      return tree_->Corrupt(g.page_id(), "the leaf before fence key does not end at it");
    }
    CopyLeaf(g);
    if (leaf().count() > 0) {
      slot_ = leaf().count() - 1;
      valid_ = true;
      return Status::OK();
    }
  }
}

void BTree::Iterator::SeekToFirst() {
  ResetReadAhead();
  Status s = tree_->CheckUsable();
  Finish(s.ok() ? AtOrAfter(options_.lower_bound, false) : s);
}

void BTree::Iterator::SeekToLast() {
  ResetReadAhead();
  Status s = tree_->CheckUsable();
  if (!s.ok()) return Finish(s);
  Finish(options_.upper_bound.empty() ? AtLast() : AtOrBefore(options_.upper_bound, true));
}

void BTree::Iterator::Seek(std::string_view key) {
  ResetReadAhead();
  Status s = tree_->CheckUsable();
  if (!s.ok()) return Finish(s);
  std::string target(key < options_.lower_bound ? options_.lower_bound : key);
  Finish(AtOrAfter(target, false));
}

void BTree::Iterator::SeekForPrev(std::string_view key) {
  ResetReadAhead();
  Status s = tree_->CheckUsable();
  if (!s.ok()) return Finish(s);
  if (!options_.upper_bound.empty() && key >= options_.upper_bound) {
    Finish(AtOrBefore(options_.upper_bound, true));
  } else {
    std::string target(key);
    Finish(AtOrBefore(target, false));
  }
}

void BTree::Iterator::CheckStepBound(int dir) {
  // Keys only grow going forward and shrink going back: one bound can be crossed.
  if (dir > 0 ? !options_.upper_bound.empty() && key_ >= options_.upper_bound
              : !options_.lower_bound.empty() && key_ < options_.lower_bound) {
    valid_ = false;
  }
}

void BTree::Iterator::NextSlow() {
  if (!Valid()) return;
  Status s = tree_->CheckUsable();
  if (!s.ok()) return Finish(s);
  if (leaf_version_ == TreeVersion()) {
    if (slot_ + 1 < leaf_count_) return StepInLeaf(+1);
    return Finish(NextLeaf());
  }
  const std::string current = key_;  // the tree changed: continue after the current key
  Finish(AtOrAfter(current, true));
}

void BTree::Iterator::PrevSlow() {
  if (!Valid()) return;
  Status s = tree_->CheckUsable();
  if (!s.ok()) return Finish(s);
  if (leaf_version_ == TreeVersion()) {
    if (slot_ > 0) return StepInLeaf(-1);
    return Finish(PrevLeaf());
  }
  const std::string current = key_;
  Finish(AtOrBefore(current, true));
}

std::string_view BTree::Iterator::LoadValue() const {
  if (!Valid()) return {};
  const Node n = leaf();
  if (!(n.flags(slot_) & kSlotFlagOverflow)) return n.payload(slot_);
  if (value_loaded_) return value_;
  Status s = tree_->CheckUsable();
  if (s.ok()) {
    if (leaf_version_ == TreeVersion()) {
      OverflowRef ref =
          DecodeOverflowRef(reinterpret_cast<const std::byte*>(n.payload(slot_).data()));
      s = ReadOverflowValue(tree_->cache_->device(), ref, &value_);
    } else {
      // The extent may have been freed since the leaf was copied: look the key up afresh.
      s = tree_->GetLocked(key_, &value_);
    }
  }
  if (!s.ok()) {
    status_ = s;
    value_.clear();
    return {};
  }
  value_loaded_ = true;
  return value_;
}

}  // namespace vde::index
