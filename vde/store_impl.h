// StoreImpl: the state behind vde::Store (vde/include/vde/store.h), shared by the store's source
// files: store.cpp (open, close, indexes, point reads), store_multiget.cpp, store_stats.cpp,
// store_write.cpp (the write path and its undo), store_checkpoint.cpp (checkpoints and the
// background thread), store_verify.cpp and store_iterator.cpp.
//
// Locking (docs/ARCHITECTURE.md, "Concurrency"). Readers (Get, MultiGet, iterator steps) take
// only mu_ shared, which nothing holds exclusively but Close and, for an instant, DropIndex: the
// trees' page latches do the rest. Writers are serialized by write_mu_; a write also holds
// apply_mu_ while it changes the trees, which iterator creation takes so that a snapshot never
// sees half a batch. Checkpoints, Verify and DropIndex hold write_mu_ (writers wait, readers do
// not). Lock order: cp_mu_, write_mu_, apply_mu_, mu_, then a tree's own writer mutex, then
// map_mu_ / stats_mu_. Everything a checkpoint changes (the catalog, IndexState::record.root,
// the block source's mode) is touched only under write_mu_.
//
// Ownership: StoreImpl owns the disk, the page cache, the block source, the catalog and the
// trees (through IndexState, which handles, batches and iterators share). Destruction order is
// trees, catalog, cache, disk. Errors follow vde/include/vde/store.h.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "blockdev/striped.h"
#include "index/block_source.h"
#include "index/btree.h"
#include "index/page_cache.h"
#include "vde/catalog.h"
#include "vde/disk.h"
#include "vde/store.h"

namespace vde {

// One named index. Shared by the store's map, Index handles, batches and iterators, so that a
// handle to a dropped index fails cleanly instead of dangling.
struct IndexState {
  const StoreImpl* owner = nullptr;
  std::string name;
  CatalogRecord record;  // id, created_generation, max_inline_value; root as last recorded
  std::unique_ptr<index::BTree> tree;
  std::atomic<bool> dropped{false};  // set under owner->write_mu_
};

// The index layer's block source over the disk's allocator. Besides handing out blocks it keeps
// room for undoing a write:
//   - keep(): while nonzero, an allocation from the allocator that would leave fewer than keep()
//     blocks available fails with NoSpace. The write path raises it by the pages that undoing
//     each operation could need, plus what the next checkpoint needs for the catalog; undo and
//     the checkpoint run with keep() zero.
//   - Reserve(): extents set aside for the out-of-line values an undo may have to put back
//     (contiguous, so free space alone would not do: it may be fragmented). In undo mode,
//     allocations take from them first.
//   - spares: reserved extents a write did not use. They were allocated after the last
//     checkpoint and are referenced by nothing, so they are handed out again at once (not held
//     back like freed blocks); ReleaseSpares gives them back to the allocator before each
//     checkpoint, so no checkpoint records them as allocated.
// Thread safety: all calls are made under the store's writer exclusion; the mutex only keeps
// concurrent readers of stats() honest.
//   - held: blocks freed while a snapshot that may read them is live (index/snapshot.h). They
//     are free in the allocator's map (FreeHeld), so a crash leaks nothing, but not reusable
//     until ReleaseHeld finds every such snapshot gone.
class StoreBlockSource final : public index::BlockSource {
 public:
  StoreBlockSource(Disk* disk, bool growable, uint64_t max_blocks,
                   const index::SnapshotRegistry* snapshots);

  Result<uint64_t> Allocate(uint32_t count) override;
  Status Free(uint64_t block, uint32_t count) override;
  // Cached: it changes only inside a checkpoint, when no writer runs; Refresh() after one.
  uint64_t generation() const override { return generation_.load(std::memory_order_acquire); }
  void Refresh() { generation_.store(disk_->next_generation(), std::memory_order_release); }

  void set_keep(uint64_t blocks) { keep_.store(blocks, std::memory_order_relaxed); }
  uint64_t keep() const { return keep_.load(std::memory_order_relaxed); }
  // Blocks an allocation could still get from the allocator: free now (less the allocator's
  // checkpoint reserve) plus what the disk may still grow by.
  uint64_t Available() const;

  // Sets aside `count` contiguous blocks for the write in progress (from spares if one fits).
  Status Reserve(uint64_t count);
  // Undo mode: allocations come from the reserved extents first.
  void set_undo(bool on);
  // The write is over: reserved extents become spares.
  void EndWrite();
  // Frees every spare to the allocator (reuse deferred to after the next checkpoint).
  Status ReleaseSpares();
  uint64_t spare_blocks() const;
  // Ends the hold of the held blocks no live snapshot may read, dropping any cached copy.
  // REQUIRES: the store's write_mu_.
  Status ReleaseHeld(index::PageCache* cache);
  uint64_t held_blocks() const;

 private:
  static bool TakeFrom(std::vector<Extent>* pool, uint64_t count, uint64_t* start);
  Result<uint64_t> AllocateFromDisk(uint64_t count);

  Disk* disk_;
  const index::SnapshotRegistry* const snapshots_;
  const bool growable_;
  const uint64_t max_blocks_;  // growable: 0 = no limit
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> keep_{0};
  mutable std::mutex mu_;
  bool undo_ = false;
  std::vector<Extent> reserved_;  // for the write in progress
  std::vector<Extent> spares_;    // allocated since the last checkpoint, owned by nothing
  struct Held {
    uint64_t epoch;  // the epoch current when freed: snapshots older than it may read it
    Extent extent;
  };
  std::vector<Held> held_;
  uint64_t held_blocks_ = 0;
};

// One operation of a write, viewing its key and value.
struct WriteOp {
  bool put = true;
  IndexState* index = nullptr;
  std::string_view key;
  std::string_view value;
};

class StoreImpl {
 public:
  StoreImpl() = default;
  ~StoreImpl();

  // ---- store.cpp
  Status Init(const std::string& path, const Options& options);
  // Checkpoints if needed and releases everything. Busy while iterators are left, unless
  // `force` (the destructor).
  Status CloseImpl(bool force);
  // OK when reads may proceed: open, not poisoned. REQUIRES: mu_ held (either way).
  Status CheckOpen() const;
  // Makes every later call fail with `s` (a write that could not be undone); returns s.
  Status Poison(Status s);
  // Also not read-only and no failed checkpoint. REQUIRES: mu_ held.
  Status CheckWritable() const;
  // The live state of `index` (the default when null), or NotFound / InvalidArgument.
  // REQUIRES: mu_ held.
  Result<IndexState*> Resolve(const IndexState* index) const;
  Status RecomputeReserve();
  static Status CheckHandle(const Index& index);  // InvalidArgument for a default-made handle
  Status GetOne(const IndexState* index, std::string_view key, std::string* value) const;
  // Creates an index and its catalog record. REQUIRES: mu_ held exclusively, name not in use.
  Result<std::shared_ptr<IndexState>> CreateIndexLocked(std::string_view name,
                                                        const IndexOptions& options);

  // ---- store_write.cpp: the one write path
  // Applies `ops` atomically. REQUIRES: mu_ held exclusively. The write-ahead log's append goes
  // here, after validation and before the first tree changes.
  Status Apply(std::span<const WriteOp> ops);
  Status ApplyOne(const WriteOp& op);  // Apply of a single operation: no undo image needed
  Status WriteOne(const IndexState* index, bool put, std::string_view key, std::string_view value);
  Status Decode(const WriteBatch& batch, std::vector<WriteOp>* ops) const;
  struct Undo;
  Status Rollback(std::span<const Undo> undo);

  // ---- store_checkpoint.cpp
  Status Checkpoint(bool only_if_dirty);
  Status CheckpointLocked();  // REQUIRES: cp_mu_, and mu_ either way
  void StartBackground();
  void StopBackground();

  // ---- store_iterator.cpp
  // An iterator over `index` (the default when null); one that reports the error when the
  // index cannot be used.
  std::unique_ptr<Iterator> NewIteratorImpl(std::shared_ptr<IndexState> index,
                                            const ReadOptions& options) const;

  // ---- store_verify.cpp
  Result<VerifyReport> Verify(bool read_values) const;

  Options options_;
  uint32_t block_size_ = 0;
  std::unique_ptr<Disk> disk_;
  index::SnapshotRegistry snapshots_;  // the index trees' (not the catalog's)
  std::unique_ptr<index::PageCache> cache_;
  std::unique_ptr<StoreBlockSource> source_;
  std::unique_ptr<Catalog> catalog_;
  // Live indexes. Changed under write_mu_ and map_mu_; read under either.
  std::map<std::string, std::shared_ptr<IndexState>, std::less<>> indexes_;
  mutable std::mutex map_mu_;
  std::shared_ptr<IndexState> default_;  // null on a read-only disk without a store
  // Blocks kept back for the next checkpoint's catalog writes (RecomputeReserve).
  uint64_t checkpoint_reserve_ = 0;

  mutable StripedSharedMutex mu_;  // every read takes it shared (blockdev/striped.h)
  mutable std::mutex cp_mu_;
  mutable std::mutex write_mu_;
  mutable std::mutex apply_mu_;
  bool created_ = false;                    // Init created the disk file
  bool closed_ = false;                     // set under mu_ held exclusively
  std::atomic<bool> poisoned_flag_{false};  // poisoned_ is set
  Status poisoned_;     // a write could not be undone: every call fails; under stats_mu_
  Status disk_failed_;  // a checkpoint failed past its first write: writes fail; stats_mu_
  std::atomic<bool> dirty_{false};  // anything changed since the last checkpoint
  mutable std::atomic<int64_t> live_iterators_{0};

  // Statistics.
  mutable StripedCounter gets_;  // every Get of every thread adds one
  std::atomic<uint64_t> puts_{0}, deletes_{0}, batches_{0}, checkpoints_{0};
  Status last_checkpoint_error_;  // under stats_mu_
  mutable std::mutex stats_mu_;   // guards last_checkpoint_error_ and disk_failed_

  // Background checkpoints.
  std::thread bg_thread_;
  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  bool bg_stop_ = false;  // under bg_mu_
};

}  // namespace vde
