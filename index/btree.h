// BTree: a persistent, copy-on-write B+tree of byte-string keys and values over a PageCache.
//
// Keys are 1 to max_key_size() bytes (MaxKeySize(block_size): 1024 for 4 KiB blocks), values 0
// to kMaxValueSize bytes (256 MiB); values longer than max_inline_value() live out of line in
// extents of kOverflow blocks (index/overflow.h). Node layout: index/node.h, docs/FORMAT.md.
// A put of a within-limits key never fails because of page layout: a node splits, and splits
// again, until the entry fits (docs/FORMAT.md "Limits" gives the argument).
//
// Copy-on-write: a page whose header generation is older than BlockSource::generation() belongs
// to the last durable checkpoint and is never written again. A writer that must change such a
// page moves it to a newly allocated block first, frees the old one (reuse deferred by the
// source), and repoints its parent, which is itself moved the same way, up to the root: so
// root() changes. A checkpoint (orchestrated by vde) is: stop the writers of every tree on the
// cache, PageCache::FlushAll(), make the device durable, record each tree's root(), then advance
// the generation. A tree reopened with Open(root) sees exactly what that checkpoint held.
//
// Thread safety: readers never block readers. Get, MultiGet and iterators take no tree-wide
// lock: they couple shared page latches from the root down (a child is latched before its
// parent is released), and validate the root they started from after latching it (a writer
// changes root() only while it holds the old root exclusively). Writers (Put, Delete) are
// serialized by a per-tree mutex; a writer latches exclusively only the pages it changes, always
// parent before child and never a parent while holding its child, so latch waits cannot form a
// cycle with the readers' top-down coupling. GetStats, Verify, FlushAll and Destroy hold the
// writer mutex for their whole walk. Destroy REQUIRES that no other thread uses the tree. Several
// trees may share one PageCache, SnapshotRegistry and BlockSource; writers of trees that share a
// BlockSource must be serialized by the caller unless the source allows concurrent calls.
//
// Snapshots: with BTreeOptions::snapshots set, every iterator reads the tree as of its creation
// while writers go on (snapshot.h describes the epochs that make this work). Without it an
// iterator sees each leaf as of the moment it reached it and re-seeks from its current key after
// a change, and an out-of-line value it reads may have been replaced meanwhile.
//
// Ownership: the cache and the source are not owned and must outlive the tree; the tree must
// outlive its iterators.
//
// Errors: InvalidArgument for a key or value outside the limits (the message names the limit)
// and for any call after Destroy; NotFound from Get and Delete for an absent key; Corruption
// naming the file and block for a page or overflow block that fails verification (checksum,
// block number, layout, or disagreement with its parent); NoSpace, IOError and Busy as the
// source, device and cache return them. A failed Put or Delete leaves the tree consistent
// (every change is applied page by page in an order that keeps it valid), though some pages
// may have been copied. NoSpace from Put or Delete means the change was not made: a merge that
// follows a delete and finds no block is skipped (the pages stay valid, underfull). Any other
// error that comes from the merge says so ("the change itself was made").
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "blockdev/block_header.h"
#include "blockdev/status.h"
#include "index/block_source.h"
#include "index/node.h"
#include "index/overflow.h"
#include "index/page_cache.h"
#include "index/snapshot.h"

namespace vde::index {

struct BTreeOptions {
  // Values longer than this many bytes are stored out of line. 0 (the default) and anything
  // larger mean MaxInlineValueSize(block_size). Only affects new puts; each entry records
  // where its value lives, so a tree may be reopened with a different setting.
  uint32_t max_inline_value = 0;
  // Not owned; outlives the tree. When set, iterators read snapshots and writers copy the pages
  // that a live snapshot may reach instead of changing them in place (see the file comment).
  SnapshotRegistry* snapshots = nullptr;
};

struct IteratorOptions {
  // Keys >= lower_bound and < upper_bound; an empty string means unbounded.
  std::string lower_bound;
  std::string upper_bound;
  // Read-ahead: once a scan has crossed two leaves in one direction, it keeps the next window
  // of leaves (found through the parent pages) requested from the cache's read-ahead threads
  // beyond the one it walks, the window doubling from 2 up to this many leaves, or 4 times as
  // many while the leaves lie in sequence on disk (read then in a few large requests); at most
  // frames/8 of the cache. A Seek or a change of direction starts over. 0 turns it off.
  uint32_t readahead_max = 64;
};

// Counters of the batched read path since this BTree object was created or opened (relaxed;
// they may be read while other threads use the tree).
struct BTreeReadStats {
  uint64_t multi_gets = 0;            // MultiGet calls
  uint64_t multi_get_keys = 0;        // keys they were given
  uint64_t leaf_batches = 0;          // batched leaf reads (one ReadBatch each, >= 1 leaf)
  uint64_t leaves_read = 0;           // leaves those batches read
  uint64_t max_leaves_per_batch = 0;  // the largest of them
  uint64_t inner_batches = 0;         // batched inner-page reads (inner pages not resident)
  uint64_t inner_pages_read = 0;
  uint64_t overflow_batches = 0;  // ReadBatch calls for out-of-line values
  uint64_t overflow_values_read = 0;
  uint64_t readahead_windows = 0;     // read-ahead batches iterators asked for
  uint64_t readahead_leaves = 0;      // leaves they named (resident ones are not read again)
  uint64_t readahead_max_window = 0;  // the largest window reached
};

struct BTreeStats {
  uint64_t entries = 0;
  uint32_t height = 0;                    // levels, 1 for a lone root leaf
  std::vector<uint64_t> pages_per_level;  // [0] = leaves, [height - 1] = the root
  double fill_factor = 0;                 // mean over pages of compacted bytes / block size
  std::vector<double> fill_per_level;     // the same per level, [0] = leaves
  double leaf_fill_factor = 0;            // mean over leaves
  double inner_fill_factor = 0;           // mean over inner pages; 0 for a lone root leaf
  // Pages by node encoding (docs/FORMAT.md, "Encodings").
  uint64_t variable_pages = 0;
  uint64_t fixed_key_pages = 0;    // fixed-width keys, payloads in the heap
  uint64_t fixed_entry_pages = 0;  // fixed-width keys and payloads
  uint64_t overflow_values = 0;
  uint64_t overflow_blocks = 0;
  // Node splits (leaves and inner pages) since this BTree object was created or opened, by where
  // they split: at the end of an ascending run, at the start of a descending one, or near the
  // middle.
  uint64_t splits_ascending = 0;
  uint64_t splits_descending = 0;
  uint64_t splits_middle = 0;
};

struct VerifyOptions {
  // Also read every out-of-line value and verify each of its blocks.
  bool read_values = false;
  // Called for every block the tree owns: each page (count 1, kBTreeLeaf or kBTreeInner) and
  // each overflow extent (kOverflow). Lets fsck account for allocated blocks.
  std::function<void(uint64_t first, uint32_t count, BlockType type)> on_blocks;
};

class BTree {
 public:
  class Iterator;

  // A new empty tree (one root leaf, allocated from `source`).
  static Result<std::unique_ptr<BTree>> Create(PageCache* cache, BlockSource* source,
                                               const BTreeOptions& options = {});
  // The tree whose root page is `root` (a root() recorded by a checkpoint).
  static Result<std::unique_ptr<BTree>> Open(PageCache* cache, BlockSource* source, uint64_t root,
                                             const BTreeOptions& options = {});
  ~BTree();
  BTree(const BTree&) = delete;
  BTree& operator=(const BTree&) = delete;

  // Stores the value of `key` in *value; NotFound when absent.
  Status Get(std::string_view key, std::string* value) const;
  // Looks up every key of `keys` at once: (*values)[i] and (*statuses)[i] answer keys[i] (OK,
  // NotFound, InvalidArgument for a key outside the limits, or the read error of a page or value
  // on its path); both vectors are resized to keys.size(). Keys may repeat and come in any
  // order. The keys are sorted, the inner levels walked level by level, and the leaves that are
  // not resident read with one ReadBatch per chunk of up to max(1, frames/4) keys (so one batch
  // when keys.size() <= frames/4), then the out-of-line values with one more. Returns OK when
  // every status is OK or NotFound, else the first other error in key order.
  Status MultiGet(std::span<const std::string_view> keys, std::vector<std::string>* values,
                  std::vector<Status>* statuses) const;
  // Counters of MultiGet and iterator read-ahead.
  BTreeReadStats read_stats() const;
  // Inserts or replaces.
  Status Put(std::string_view key, std::string_view value);
  // NotFound when absent.
  Status Delete(std::string_view key);

  // An iterator, not yet positioned.
  std::unique_ptr<Iterator> NewIterator(IteratorOptions options = {}) const;

  // Walks the whole tree (reads every page).
  Result<BTreeStats> GetStats() const;
  // Walks the whole tree checking every page and every parent/child agreement (levels, fences),
  // and reports the tree's blocks through options.on_blocks.
  Status Verify(const VerifyOptions& options = {}) const;

  // Frees every page and out-of-line value. The tree is unusable afterwards (InvalidArgument).
  Status Destroy();

  // PageCache::FlushAll() while holding this tree's lock exclusively.
  Status FlushAll();

  // The root page's block number. Changes when the root is copied, split or collapsed.
  uint64_t root() const { return root_.load(std::memory_order_acquire); }
  uint32_t height() const { return height_.load(std::memory_order_acquire); }
  uint32_t max_key_size() const { return MaxKeySize(block_size_); }
  uint32_t max_inline_value() const { return max_inline_; }
  static constexpr uint64_t max_value_size() { return kMaxValueSize; }

 private:
  using SharedGuard = PageCache::SharedGuard;
  using ExclusiveGuard = PageCache::ExclusiveGuard;

  // One step of a root-to-leaf path: the page, the child slot taken in it, its generation.
  struct PathStep {
    uint64_t page = 0;
    uint32_t slot = 0;
    uint64_t generation = 0;
    uint64_t epoch = 0;
  };
  struct Path {
    std::array<PathStep, kMaxLevels> steps;
    uint32_t depth = 0;
  };
  enum class Descent { kLowerBound, kUpperBound, kRightmost };
  enum class SplitKind { kMiddle = 0, kAscending = 1, kDescending = 2 };
  struct SplitPlan {
    uint32_t pos = 0;       // leaf: first slot of the right half; inner: the promoted slot
    std::string separator;  // full key
    SplitKind kind = SplitKind::kMiddle;
  };

  BTree(PageCache* cache, BlockSource* source, const BTreeOptions& options, uint64_t root,
        uint32_t height);

  // OK unless the tree was destroyed (DropIndex). Inline: every iterator step checks it.
  Status CheckUsable() const {
    if (destroyed_.load(std::memory_order_acquire)) [[unlikely]]
      return DestroyedError();
    return Status::OK();
  }
  static Status DestroyedError();
  Status CheckKey(std::string_view key) const;
  Result<SharedGuard> PinShared(uint64_t page) const;
  Result<ExclusiveGuard> PinExclusive(uint64_t page) const;
  Status CheckChildPointer(uint64_t parent, uint64_t child) const;
  Status CheckChild(const Node& parent, uint64_t parent_id, uint32_t slot, const Node& child,
                    uint64_t child_id) const;
  Status CheckRoot(const Node& root, uint64_t id) const;
  Status Corrupt(uint64_t block, const std::string& what) const;

  Result<SharedGuard> DescendShared(std::string_view key, Descent how) const;
  Result<ExclusiveGuard> DescendExclusive(std::string_view key, Path* path);
  Status GetLocked(std::string_view key, std::string* value) const;

  // Whether `page` must be copied before it changes: it belongs to the last checkpoint
  // (generation older than `gen`) or a live snapshot may reach it.
  bool MustCopy(uint64_t generation, uint64_t epoch, uint64_t gen) const;
  // The epoch to stamp on a page created now (0 without snapshots).
  uint64_t CreationEpoch() const;
  // Moves the page to a newly allocated block (copy-on-write) and returns it; `page` then
  // guards the new block. When a live snapshot may reach the old page, the old frame is kept
  // (cached, or written back on eviction) and the bytes copied; otherwise the frame moves.
  Result<uint64_t> RelocatePage(ExclusiveGuard& page);
  // The page's block was freed: drop it from the cache unless a live snapshot may read it.
  void DropFreedPage(ExclusiveGuard& page);
  // Pins the root shared, retrying while root() changes under it.
  Result<SharedGuard> PinRoot(uint64_t* id) const;
  Result<ExclusiveGuard> MakeWritable(Path* path, ExclusiveGuard leaf);
  Status PutPayload(std::string_view key, std::string_view payload, uint8_t flags);
  // Where to split `node` to make room for an entry (key, payload of payload_size bytes).
  Status PlanSplit(const Node& node, uint64_t id, std::string_view key, size_t payload_size,
                   SplitPlan* plan) const;
  void BuildSplit(const Node& node, const SplitPlan& plan, std::byte* left, std::byte* right);
  Status SplitNode(Path* path, uint32_t index, std::string_view key, size_t payload_size);
  bool MergeFits(const Node& a, const Node& b, std::string_view separator) const;
  Status Rebalance(Path* path);
  // Rebalance after a delete or a shrinking replace: NoSpace is OK (see btree.cpp).
  Status RebalanceAfterChange(Path* path);
  Status CollapseRoot();
  bool Underfull(const Node& n) const;

  Status DestroySubtree(uint64_t page, uint32_t level);
  // Depth-first walk with parent/child checks; `visit` sees every page, pinned shared.
  using PageVisitor = std::function<Status(const Node& node, uint64_t page)>;
  Status Walk(const PageVisitor& visit) const;
  Status WalkSubtree(const Node& parent, uint64_t parent_id, uint32_t slot,
                     const PageVisitor& visit) const;

  PageCache* const cache_;
  BlockSource* const source_;
  const uint32_t block_size_;
  const uint32_t max_inline_;
  SnapshotRegistry* const snapshots_;
  std::atomic<uint64_t> root_;
  std::atomic<uint32_t> height_;
  std::atomic<bool> destroyed_{false};
  // A sequence count of changes: a writer makes it odd before it touches a page and even again
  // once the change is complete (WriteScope, below). An iterator whose leaf copy is older
  // re-seeks; one that read pages while it stayed even and unchanged read them as of one
  // moment between changes.
  std::atomic<uint64_t> modifications_{0};
  class WriteScope;
  // Splits by SplitKind (written under mu_ held exclusively, read by GetStats).
  std::array<std::atomic<uint64_t>, 3> splits_{};
  // Serializes writers (and snapshot creation, GetStats, Verify, FlushAll, Destroy).
  mutable std::mutex write_mu_;
  // Three block-sized buffers for building split and merged nodes and compacting (writers).
  std::unique_ptr<std::byte[]> scratch_;

  // MultiGet's counters and iterators' read-ahead counters (btree_multiget.cpp).
  struct ReadCounters {
    std::atomic<uint64_t> multi_gets{0}, multi_get_keys{0}, leaf_batches{0}, leaves_read{0},
        max_leaves_per_batch{0}, inner_batches{0}, inner_pages_read{0}, overflow_batches{0},
        overflow_values_read{0}, readahead_windows{0}, readahead_leaves{0}, readahead_max_window{0};
  };
  mutable ReadCounters read_counters_;
  struct MultiGetRun;  // one MultiGet call (btree_multiget.cpp)

  friend class Iterator;
};

// Marks a change in progress in modifications_ (odd) for its lifetime. Writers hold write_mu_.
class BTree::WriteScope {
 public:
  explicit WriteScope(BTree* t) : t_(t) {
    // Ordered before the change's page writes, which readers acquire through the latches.
    t_->modifications_.fetch_add(1, std::memory_order_relaxed);
  }
  ~WriteScope() { t_->modifications_.fetch_add(1, std::memory_order_release); }
  WriteScope(const WriteScope&) = delete;
  WriteScope& operator=(const WriteScope&) = delete;

 private:
  BTree* t_;
};

// Positions over the tree's keys in order, within IteratorOptions' bounds. With a
// SnapshotRegistry, a snapshot of the tree as of NewIterator (it holds the snapshot until it is
// destroyed); without, after a change to the tree Next and Prev continue from the current key.
class BTree::Iterator {
 public:
  bool Valid() const { return valid_ && status_.ok(); }
  void SeekToFirst();
  void SeekToLast();
  // The first key >= key.
  void Seek(std::string_view key);
  // The last key <= key.
  void SeekForPrev(std::string_view key);
  // REQUIRES: Valid(). Inline while the step stays inside the copy of the current leaf (a scan
  // takes that path for every entry but the first of each leaf).
  void Next() {
    if (tree_->destroyed_.load(std::memory_order_acquire) || !TryStepInLeaf(+1)) NextSlow();
  }
  void Prev() {
    if (tree_->destroyed_.load(std::memory_order_acquire) || !TryStepInLeaf(-1)) PrevSlow();
  }
  // REQUIRES: Valid(). Views stay good until the iterator moves.
  std::string_view key() const { return key_; }
  // Reads an out-of-line value on first use; on failure returns an empty view and sets
  // status() (which makes the iterator invalid). Inline for a value held in the leaf.
  std::string_view value() const {
    if (Valid()) {
      const Node n = leaf();
      if ((n.flags(slot_) & kSlotFlagOverflow) == 0) return n.payload(slot_);
      if (value_loaded_) return value_;
    }
    return LoadValue();
  }
  // OK unless positioning or value() failed (not-found positions are OK and !Valid()).
  Status status() const { return status_; }
  // Next (dir > 0) or Prev when the step stays inside the copy of the current leaf and touches
  // neither the tree nor the cache; false (nothing done) when the step needs them.
  bool TryStepInLeaf(int dir) {
    if (!Valid() || leaf_version_ != TreeVersion()) return false;
    if (dir > 0 ? slot_ + 1 >= leaf_count_ : slot_ == 0) return false;
    StepInLeaf(dir > 0 ? 1 : -1);
    return true;
  }
  // Whether value() would read from the device (an out-of-line value not yet read).
  bool ValueNeedsRead() const {
    return Valid() && (leaf().flags(slot_) & kSlotFlagOverflow) != 0 && !value_loaded_;
  }

 private:
  friend class BTree;
  Iterator(const BTree* tree, IteratorOptions options);

  void Finish(Status s);
  // Next and Prev when the step leaves the leaf copy (or the tree changed since it was taken).
  void NextSlow();
  void PrevSlow();
  // value() for an out-of-line value not yet read, or an invalid iterator.
  std::string_view LoadValue() const;
  // REQUIRES: Valid(), the leaf copy current, slot_ + dir inside it. Moves there. key_ holds a
  // key of this leaf, so its first prefix_len() bytes are the leaf's prefix: only the suffix
  // changes.
  void StepInLeaf(int dir) {
    slot_ += dir;
    value_loaded_ = false;
    const Node n = leaf();
    const std::string_view suf = n.suffix(slot_);
    const size_t pre = n.prefix_len();
    if (key_.size() != pre + suf.size()) key_.resize(pre + suf.size());
    std::memcpy(key_.data() + pre, suf.data(), suf.size());
    if (has_bounds_) CheckStepBound(dir);
  }
  // After a step within the leaf: invalid once the key crossed the bound ahead of it.
  void CheckStepBound(int dir);
  Status AtOrAfter(std::string_view key, bool strict);
  Status AtOrBefore(std::string_view key, bool strict);
  Status AtLast();
  Status NextLeaf();
  Status PrevLeaf();
  void CopyLeaf(const SharedGuard& leaf);
  struct PathLevel {
    uint64_t page = 0;
    uint32_t slot = 0;
  };
  // DescendShared that also records path_ (btree_iterator.cpp).
  Result<SharedGuard> Descend(std::string_view key, Descent how);
  // The leaf next to the current one in direction dir, through the parent the last descent
  // went through, when no change to the tree may have moved it; false (nothing pinned) when
  // the caller must descend instead.
  Result<bool> StepThroughParent(int dir, SharedGuard* out);
  // Read-ahead: called before each step to the neighbouring leaf in direction dir (+1 / -1).
  void NoteLeafStep(int dir);
  void ResetReadAhead();
  // Appends to *out the leaves at distance 1..want in direction dir from the leaf `from` leads
  // to (path_, or where the last window ended), within the bounds, and sets *end to the path of
  // the last of them. Appends to *parents the parent pages after the one the last leaf hangs
  // from, enough to hold about `parent_leaves` more leaves (within the bounds, under the same
  // grandparent), and any parent the walk found missing. With `blocked`, never reads or waits
  // for an inner page beyond `from`: the walk ends at one still being read, which it names in
  // *blocked; without, it reads and waits as PinShared does. Advisory: stops early on any
  // error.
  void CollectLeaves(int dir, const std::vector<PathLevel>& from, uint32_t want,
                     std::vector<uint64_t>* out, uint32_t parent_leaves,
                     std::vector<uint64_t>* parents, std::vector<PathLevel>* end,
                     uint64_t* blocked);
  Node leaf() const { return Node(leaf_.get(), tree_->block_size_); }
  // The tree's modification count, or 0 for a snapshot (which never changes).
  uint64_t TreeVersion() const {
    return snapshot_.valid() ? 0 : tree_->modifications_.load(std::memory_order_acquire);
  }

  const BTree* tree_;
  IteratorOptions options_;
  SnapshotHandle snapshot_;            // valid for a snapshot iterator
  uint64_t snapshot_root_ = 0;         // the root as of the snapshot
  std::unique_ptr<std::byte[]> leaf_;  // a copy of the current leaf page
  uint64_t leaf_version_ = 0;          // tree modifications_ when copied
  uint64_t leaf_page_ = kNoPage;       // the page the copy came from
  uint32_t slot_ = 0;
  uint32_t leaf_count_ = 0;  // entries in the leaf copy
  bool valid_ = false;
  bool has_bounds_ = false;  // options_ has a lower or an upper bound
  std::string key_;
  mutable Status status_;
  mutable bool value_loaded_ = false;
  mutable std::string value_;
  // The inner pages of the last descent, root first, and the child slot taken in each; valid
  // while path_version_ equals the tree's modifications_ (and is even: no change was under way).
  std::vector<PathLevel> path_;
  uint64_t path_version_ = ~uint64_t{0};
  // Read-ahead state: direction of the current run of leaf steps, its length, the last window,
  // and how many leaves beyond the current one were read ahead.
  int ra_dir_ = 0;
  uint32_t ra_run_ = 0;
  uint32_t ra_window_ = 0;
  uint32_t ra_ahead_ = 0;
  bool ra_sequential_ = false;  // the last window's leaves lay in sequence on disk
  // The path to the last leaf read ahead, taken at tree version ra_end_version_ (empty when not
  // known): the next window is collected from there.
  std::vector<PathLevel> ra_end_;
  uint64_t ra_end_version_ = 0;
  uint64_t ra_blocked_ = kNoPage;  // the inner page the last walk found still being read
  // The last window the scan collected was cached whole: no more windows while its steps find
  // their leaves cached (a warm scan pays no read-ahead walks); the first that does not ends it.
  bool ra_warm_ = false;
  bool step_missed_ = false;  // the last step through the parent found its leaf not cached
};

}  // namespace vde::index
