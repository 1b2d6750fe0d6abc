// Store: vde's embedded key-value API. A store lives in one virtual disk file and holds named
// indexes (ordered maps of byte-string keys to byte-string values, each a copy-on-write B+tree);
// every store has the index "default", which the calls without an index argument use.
// docs/API.md is the guide, with an example.
//
// Durability: checkpoints. A checkpoint makes everything written before it durable at once; a
// crash at any moment reopens the store at the last checkpoint, exactly. Checkpoints happen on
// request (Checkpoint), at Close, and every Options::checkpoint_interval if set.
//
// Thread safety: every method may be called from any number of threads at once. Writes
// (Put, Delete, Write, CreateIndex, DropIndex) are serialized with each other and with
// checkpoints; reads (Get, MultiGet, iterators) take no store-wide lock that a writer holds and
// wait only, page by page, for a writer changing that page. Iterators read snapshots. Ownership:
// the Store owns the disk and the page cache; Index handles and Iterators must not outlive it.
//
// Errors (Status codes):
//   NotFound         Get of an absent key; an index that does not exist ("index 'x' ...");
//                    Open of a missing file without create_if_missing
//   AlreadyExists    CreateIndex of an existing name; Open with error_if_exists
//   InvalidArgument  a key or value outside the limits (the message names the limit), a bad
//                    index name or option, a handle from another store, a call after Close
//   ReadOnly         a write-type call on a store opened read-only
//   NoSpace          the disk is full (fixed-size, or growable at its maximum)
//   Corruption       a block that fails verification: the message names the file and block
//   IOError, Busy    as the device and the page cache report them
// A write that fails leaves nothing of itself visible. Should undoing it fail too (the disk full
// and an I/O error at once), the store refuses every further call with that error, and reopening
// it returns to the last checkpoint.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "blockdev/status.h"
#include "vde/iterator.h"
#include "vde/options.h"
#include "vde/write_batch.h"

namespace vde {

class StoreImpl;

// A handle naming one index of a store, from Store::CreateIndex, OpenIndex or default_index().
// Cheap to copy. After DropIndex, calls through it return NotFound. Must not outlive the store.
class Index {
 public:
  Index() = default;  // names no index: calls through it are InvalidArgument
  const std::string& name() const;
  bool valid() const { return state_ != nullptr; }

 private:
  friend class Store;
  friend class StoreImpl;
  friend class WriteBatch;
  explicit Index(std::shared_ptr<IndexState> s) : state_(std::move(s)) {}
  std::shared_ptr<IndexState> state_;
};

struct IndexStats {
  std::string name;
  uint64_t id = 0;  // unique within the store, never reused
  uint64_t entries = 0;
  uint32_t height = 0;                    // levels; 1 for a lone root leaf
  std::vector<uint64_t> pages_per_level;  // [0] = leaves, [height - 1] = the root
  double fill_factor = 0;                 // mean over pages of bytes used / block size
  uint64_t overflow_values = 0;           // values stored out of line
  uint64_t overflow_blocks = 0;
  uint64_t root = 0;  // the root page's block now
  // Fill: the mean over leaves, over inner pages (0 for a lone root leaf), and per level.
  double leaf_fill_factor = 0;
  double inner_fill_factor = 0;
  std::vector<double> fill_per_level;  // [0] = leaves, [height - 1] = the root
  // Pages by node encoding (docs/FORMAT.md, "Encodings"): variable; fixed-width keys with the
  // values in the heap; fixed-width keys and values.
  uint64_t variable_pages = 0, fixed_key_pages = 0, fixed_entry_pages = 0;
  // Since the store was opened: node splits by where they split (at the end of an ascending
  // run, at the start of a descending one, near the middle).
  uint64_t splits_ascending = 0, splits_descending = 0, splits_middle = 0;
  // Since the store was opened: MultiGet calls and the keys they were given; batched leaf
  // reads (one device batch each), the leaves they read and the most in one; iterator
  // read-ahead windows, the leaves they named and the largest window.
  uint64_t multi_gets = 0, multi_get_keys = 0;
  uint64_t leaf_batches = 0, leaves_read = 0, max_leaves_per_batch = 0;
  uint64_t readahead_windows = 0, readahead_leaves = 0, readahead_max_window = 0;
};

struct StoreStats {
  uint64_t gets = 0, puts = 0, deletes = 0, batches = 0;  // calls since open
  // Page cache.
  uint64_t cache_hits = 0, cache_misses = 0;
  uint64_t pages_read = 0, pages_written = 0, evictions = 0;
  uint64_t cache_bytes = 0;  // memory the cache holds (fixed, <= Options::cache_bytes)
  uint32_t cache_pages = 0, cache_dirty_pages = 0;
  uint32_t cache_inner_pages = 0;  // resident inner B+tree pages
  // Batched reads (MultiGet's pages): device batches, the pages they read, the most in one,
  // and how many batches read 1, 2-3, 4-7, 8-15, 16-31, 32-63, 64-127, >= 128 pages.
  uint64_t batch_reads = 0, batch_pages = 0, max_batch_pages = 0;
  std::array<uint64_t, 8> batch_pages_log2{};
  // Read-ahead (iterators): device batches, pages read, and of those the pages used later and
  // the pages dropped before any use.
  uint64_t prefetch_reads = 0, prefetch_pages = 0, prefetch_used = 0, prefetch_wasted = 0;
  // Checkpoints completed since open (requested, periodic and at Close), and the generation of
  // the last durable one. The last failed checkpoint's error, OK if none failed.
  uint64_t checkpoints = 0;
  uint64_t generation = 0;
  Status last_checkpoint_error;
  // Device.
  uint64_t device_reads = 0, device_writes = 0;  // requests
  uint64_t blocks_read = 0, blocks_written = 0, flushes = 0;
  std::string backend;         // "io_uring" or "file"
  std::string backend_reason;  // why, e.g. "io_uring available", plus any fallback notes
  // Space, in blocks.
  uint32_t block_size = 0;
  uint64_t disk_blocks = 0, used_blocks = 0, free_blocks = 0;
  uint64_t pending_blocks = 0;  // freed, reusable after the next checkpoint
  uint64_t indexes = 0;
};

// What Store::Verify walked.
struct VerifyReport {
  uint64_t indexes = 0;
  uint64_t pages = 0;            // B+tree pages, catalog included
  uint64_t overflow_blocks = 0;  // blocks of out-of-line values
  uint64_t metadata_blocks = 0;  // superblocks, catalog header, allocator map
  uint64_t owned_blocks = 0;     // all of the above
  uint64_t allocated_blocks = 0;
  uint64_t pending_blocks = 0;  // allocated, owned by nothing: freed since the last checkpoint
};

class Store {
 public:
  static constexpr std::string_view kDefaultIndex = "default";
  static constexpr size_t kMaxIndexName = 255;

  // Opens the store in the virtual disk at `path`, creating the file when it is missing and
  // options.create_if_missing is set. A disk without a store (fresh from `vdisk create`) gets
  // an empty catalog and the default index, checkpointed, unless opened read-only. Validates
  // the superblock, the allocator map and the catalog before anything is written.
  static Result<std::unique_ptr<Store>> Open(const std::string& path, const Options& options);

  // Closes the store if Close was not called, ignoring its error (call Close to see it).
  // REQUIRES: no iterator of the store is left.
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Stores the value of `key` in *value. NotFound when the key is absent.
  Status Get(std::string_view key, std::string* value) const;
  Status Get(const Index& index, std::string_view key, std::string* value) const;
  // Looks up every key at once: (*values)[i] and (*statuses)[i] answer keys[i] (OK, NotFound,
  // InvalidArgument for a key outside the limits, or the read error on its path); both are
  // resized to keys.size(). Keys may repeat and come in any order. Returns OK when every status
  // is OK or NotFound, else the first other error in key order; an error of the whole call (a
  // dropped or bad index, a closed store) is returned and answers every key. The leaves one call
  // needs are read with one device submission per chunk of up to cache_pages/4 keys.
  Status MultiGet(std::span<const std::string_view> keys, std::vector<std::string>* values,
                  std::vector<Status>* statuses) const;
  Status MultiGet(const Index& index, std::span<const std::string_view> keys,
                  std::vector<std::string>* values, std::vector<Status>* statuses) const;
  // Inserts or replaces. Keys are 1 to max_key_size() bytes, values 0 to max_value_size().
  Status Put(std::string_view key, std::string_view value);
  Status Put(const Index& index, std::string_view key, std::string_view value);
  // Removes the key; OK whether or not it was there.
  Status Delete(std::string_view key);
  Status Delete(const Index& index, std::string_view key);
  // Applies the batch atomically (write_batch.h). An empty batch is OK.
  Status Write(const WriteBatch& batch);

  // An iterator over the index, not yet positioned (call a Seek first).
  std::unique_ptr<Iterator> NewIterator(const ReadOptions& options = {}) const;
  std::unique_ptr<Iterator> NewIterator(const Index& index, const ReadOptions& options = {}) const;

  // Named indexes. Names are 1 to kMaxIndexName bytes. CreateIndex: AlreadyExists if it exists.
  // OpenIndex: NotFound naming it. DropIndex frees every block of the index (reusable after the
  // next checkpoint); the default index cannot be dropped (InvalidArgument).
  Result<Index> CreateIndex(std::string_view name, const IndexOptions& options = {});
  Result<Index> OpenIndex(std::string_view name) const;
  Status DropIndex(std::string_view name);
  std::vector<std::string> ListIndexes() const;  // sorted
  Index default_index() const;

  // Makes everything written so far durable (see the file comment). Writers wait meanwhile;
  // readers do not. After an I/O error here the store refuses further writes: reopen it.
  Status Checkpoint();
  // Stops the background checkpoints, checkpoints if anything changed, and releases the disk.
  // Returns that checkpoint's error (what it would have saved is then lost). Busy, without
  // closing, while iterators are left. A second call returns OK.
  Status Close();

  StoreStats GetStats() const;
  // Walks the whole index (reads every page).
  Result<IndexStats> GetIndexStats(std::string_view name) const;
  // Walks every index and the catalog checking every page (and, with read_values, every
  // out-of-line value), then checks the allocator: every owned block allocated and owned once,
  // and no allocated block owned by nothing beyond those freed since the last checkpoint.
  // Corruption naming the block otherwise. Writers wait meanwhile.
  Result<VerifyReport> Verify(bool read_values = false) const;

  uint32_t max_key_size() const;  // 1024 for 4 KiB blocks
  static uint64_t max_value_size();

 private:
  explicit Store(std::unique_ptr<StoreImpl> impl);
  std::unique_ptr<StoreImpl> impl_;
};

}  // namespace vde
