// PageCache: the buffer pool between the B+trees and a BlockDevice.
//
// A fixed set of frames (one block each) is allocated once, aligned to the device's alignment,
// and registered with the device (BlockDevice::RegisterMemory), so a page read lands in its
// frame with no copy (READ_FIXED on io_uring). A page table (open addressing, sized up front)
// maps a page id -- the block number -- to its frame. Nothing is allocated per access: frame
// count and page table size follow from PageCacheOptions::budget_bytes, and memory_bytes()
// (frames + frame descriptors + page table) never exceeds the budget.
//
// Pages are pinned through move-only RAII guards: SharedGuard (many readers) or ExclusiveGuard
// (one writer). A moved-from guard is reset. A pinned page is never evicted. Eviction is CLOCK
// (second chance), its hand sweeping the frames in memory order; free frames wait on a
// Boost.Intrusive list. A miss that finds no free frame evicts a batch and writes its dirty
// pages back with one WriteBatch. Every page read
// from the device is checked with VerifyBlock (checksum and its own block number) and then by
// the caller's PageCheck (for B+tree nodes: slot counts, offsets, lengths), which also runs when
// a resident page is pinned with a check it has not passed yet; on write-back the checksum is
// recomputed under the page's exclusive latch, which is then downgraded to shared for the write
// (the header's type, block and generation fields belong to the caller).
//
// Each frame carries one atomic state word, vmcache-style: the low 8 bits are the latch state
// (unlocked, 1..252 shared holders, locked exclusively, evicted) and the high 56 bits a version
// bumped on every exclusive unlock and on eviction, so optimistic (validate-after-read) latching
// can be added without changing the frame layout.
//
// Hits take no lock: the page table's slots are atomics, so a pin looks the page up without the
// mutex, pins the frame with a compare-and-swap that fails once the frame is being freed (its
// pin count holds a "dead" mark from the moment an evictor decides until the frame is reused),
// latches it, and then checks that the frame still holds the page; any disagreement (a racing
// eviction, relocation or failed load) falls back to the locked path, which is exact.
//
// Eviction favours inner B+tree pages: a frame whose page has block type kBTreeInner (noted when
// the page is read, and when an exclusive guard on it is released) is skipped by the CLOCK hand
// while inner pages hold at most PageCacheOptions::inner_share_percent of the frames, and taken
// only when no other page can be evicted. With the inner levels resident, a cold lookup costs one
// leaf read.
//
// Batched reads: PinSharedBatch pins many pages, reading all the missing ones with one ReadBatch
// straight into their frames (B+tree MultiGet); Prefetch does the same and leaves them unpinned
// (scan read-ahead). Prefetched pages count as used when first pinned and as wasted when evicted
// unpinned.
//
// Thread safety: every method may be called from any number of threads at once. One mutex
// guards the page table's writers, the free list and the CLOCK hand (held only for table and
// list operations, never across I/O); hits do not take it; the latches are per frame. A thread
// must not pin a page it holds exclusively, nor pin exclusively a page it holds, and must hold no
// guard when calling FlushAll (write-back waits for a moment when nobody holds a dirty page).
//
// Ownership: the device must be alive whenever the cache is used; the cache must outlive every
// guard. With PageCacheOptions::register_memory (the default) the frames are registered with the
// device, and a registered region must outlive the device: destroy the device before the cache.
// Reads started by PrefetchAsync use the device until they complete, on the read-ahead threads,
// and the destructor finishes any still queued: call WaitForReadAhead before destroying the
// device first. The cache does not write back dirty pages on destruction: call
// FlushAll first (vde's checkpoint does).
//
// Errors: pins return the device's error for a failed read, Corruption ("block B of <path>:
// ...") for a page that fails verification, Busy when every frame stays pinned (for 20 ms),
// and the write-back error when a dirty victim cannot be written. Create returns InvalidArgument
// for a budget below kMinFrames frames.
#pragma once

#include <array>
#include <atomic>
#include <boost/intrusive/list.hpp>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "blockdev/aligned_buffer.h"
#include "blockdev/block_device.h"
#include "blockdev/status.h"
#include "blockdev/striped.h"

namespace vde::index {

inline constexpr uint64_t kNoPage = ~uint64_t{0};

struct PageCacheOptions {
  // Memory for frames, frame descriptors and the page table together, in bytes.
  uint64_t budget_bytes = 64ull << 20;
  // Register the frames with the device (BlockDevice::RegisterMemory: io_uring fixed buffers).
  // A registered region must outlive the device, so with this set the device must be destroyed
  // before the cache (or never do I/O again), and no second cache may be created on the same
  // device while it lives. Turn it off to create caches on a device that outlives them.
  bool register_memory = true;
  // Eviction spares inner B+tree pages (block type kBTreeInner) while they hold at most this
  // share of the frames, in percent; 0 treats them like any other page.
  uint32_t inner_share_percent = 50;
  // Threads that run PrefetchAsync's reads (started on first use). Two keep one window's reads
  // in flight while the other's pages are being verified; 0 makes PrefetchAsync read in the
  // calling thread, as Prefetch does. At most 8.
  uint32_t readahead_threads = 2;
};

struct PageCacheStats {
  uint64_t hits = 0;           // pins of a resident page
  uint64_t misses = 0;         // pins that had to read the page
  uint64_t pages_read = 0;     // pages read from the device (misses and prefetches)
  uint64_t pages_written = 0;  // dirty pages written back (eviction and FlushAll)
  uint64_t evictions = 0;      // resident pages dropped to make room
  uint64_t write_batches = 0;  // WriteBatch calls made for write-back
  uint64_t read_batches = 0;   // Read/ReadBatch calls made for misses and prefetches
  // PinSharedBatch: ReadBatch calls it made (each reading >= 1 page), the pages they read, the
  // largest, and how many batches read 1, 2-3, 4-7, ..., 64-127, >= 128 pages.
  uint64_t batch_reads = 0;
  uint64_t batch_pages = 0;
  uint64_t max_batch_pages = 0;
  std::array<uint64_t, 8> batch_pages_log2{};
  // Prefetch: ReadBatch calls (each reading >= 1 page), pages read, and of those, pages pinned
  // later (used) and pages evicted or dropped before any pin (wasted).
  uint64_t prefetch_reads = 0;
  uint64_t prefetch_pages = 0;
  uint64_t prefetch_used = 0;
  uint64_t prefetch_wasted = 0;
  uint64_t prefetch_async = 0;  // PrefetchAsync calls that queued reads for the read-ahead thread
  uint32_t frames = 0;          // frame count (fixed)
  uint32_t resident = 0;        // frames holding a page now
  uint32_t dirty = 0;           // resident pages not yet written back
  uint32_t inner_pages = 0;     // frames holding an inner B+tree page (kBTreeInner)
  uint64_t memory_bytes = 0;    // frames + descriptors + page table (fixed, <= budget)
};

// Checks a page's layout before a caller sees it: once when the page is read from the device
// (after VerifyBlock passed), and again when a caller pins a resident page with a different
// check than the one it last passed (so a page cached by one kind of user is never handed
// unchecked to another, whatever a corrupt pointer says). Must not modify the page. Returns
// Corruption naming `path` and `page` to reject it.
using PageCheck = Status (*)(std::span<const std::byte> page, uint64_t page_id,
                             std::string_view path);

// The per-frame state word (see the file comment).
class FrameLatch {
 public:
  static constexpr uint64_t kUnlocked = 0;
  static constexpr uint64_t kMaxShared = 252;
  static constexpr uint64_t kLocked = 253;
  static constexpr uint64_t kEvicted = 255;

  static uint64_t StateOf(uint64_t word) { return word & 0xFF; }
  static uint64_t VersionOf(uint64_t word) { return word >> 8; }

  uint64_t Load() const { return word_.load(std::memory_order_acquire); }
  bool TryLockShared();
  bool TryLockExclusive();
  void LockShared();     // waits
  void LockExclusive();  // waits
  void UnlockShared();
  void UnlockExclusive();         // bumps the version
  void DowngradeToShared();       // exclusive -> one shared holder, bumps the version
  void MarkEvicted();             // REQUIRES: no holder; bumps the version
  void ResetUnlockedExclusive();  // evicted/free -> locked exclusively (frame reuse)

 private:
  // Retries try_lock until it succeeds (LockShared, LockExclusive): see page_cache.cpp.
  template <typename TryLock>
  void WaitFor(TryLock try_lock);

  std::atomic<uint64_t> word_{kEvicted};
};

class PageCache {
 private:
  struct Frame;

 public:
  static constexpr uint32_t kMinFrames = 16;

  // Pins one page for reading. Not copyable; movable (the source is reset).
  class SharedGuard {
   public:
    SharedGuard() = default;
    SharedGuard(SharedGuard&& o) noexcept
        : cache_(std::exchange(o.cache_, nullptr)), frame_(std::exchange(o.frame_, nullptr)) {}
    SharedGuard& operator=(SharedGuard&& o) noexcept;
    SharedGuard(const SharedGuard&) = delete;
    SharedGuard& operator=(const SharedGuard&) = delete;
    ~SharedGuard() { Release(); }

    bool valid() const { return frame_ != nullptr; }
    uint64_t page_id() const;
    std::span<const std::byte> data() const;
    uint64_t epoch() const;  // as ExclusiveGuard::epoch
    void Release();

   private:
    friend class PageCache;
    SharedGuard(PageCache* c, Frame* f) : cache_(c), frame_(f) {}
    PageCache* cache_ = nullptr;
    Frame* frame_ = nullptr;
  };

  // Pins one page for writing. Call MarkDirty after changing the bytes.
  class ExclusiveGuard {
   public:
    ExclusiveGuard() = default;
    ExclusiveGuard(ExclusiveGuard&& o) noexcept
        : cache_(std::exchange(o.cache_, nullptr)), frame_(std::exchange(o.frame_, nullptr)) {}
    ExclusiveGuard& operator=(ExclusiveGuard&& o) noexcept;
    ExclusiveGuard(const ExclusiveGuard&) = delete;
    ExclusiveGuard& operator=(const ExclusiveGuard&) = delete;
    ~ExclusiveGuard() { Release(); }

    bool valid() const { return frame_ != nullptr; }
    uint64_t page_id() const;
    std::span<std::byte> data() const;
    void MarkDirty();
    // The epoch given to PinNew or Relocate for this page, 0 if it was read from the device.
    uint64_t epoch() const;
    void Release();

   private:
    friend class PageCache;
    ExclusiveGuard(PageCache* c, Frame* f) : cache_(c), frame_(f) {}
    PageCache* cache_ = nullptr;
    Frame* frame_ = nullptr;
  };

  // A cache over `device` (not owned). InvalidArgument when the budget holds fewer than
  // kMinFrames frames; the device's error when it refuses to register the frame memory.
  static Result<std::unique_ptr<PageCache>> Create(blockdev::BlockDevice* device,
                                                   const PageCacheOptions& options);
  // The smallest budget that gives `frames` frames of `block_size` bytes.
  static uint64_t BudgetFor(uint32_t frames, uint32_t block_size);
  ~PageCache();
  PageCache(const PageCache&) = delete;
  PageCache& operator=(const PageCache&) = delete;

  // Pins `page`, reading it (and checking it with VerifyBlock and then `check`, if given) when
  // it is not resident. A resident page that has not passed `check` yet (read ahead with
  // another check, or none) is checked under its latch now, once: a page that fails is not
  // handed out, and fails every pin that asks for the check.
  Result<SharedGuard> PinShared(uint64_t page, PageCheck check = nullptr);
  Result<ExclusiveGuard> PinExclusive(uint64_t page, PageCheck check = nullptr);
  // Pins `page` shared only if that needs neither a read nor a wait: it is resident, checked
  // with `check` (as PinShared would have), and nobody holds its latch exclusively (a read in
  // flight, or a writer). Read-ahead walks inner pages this way, so that it never stops behind
  // its own earlier reads.
  enum class Ready : uint8_t {
    kPinned,  // *out holds the pin
    kBusy,    // resident but latched, or not yet checked with `check`
    kAbsent,  // not resident
  };
  Ready TryPinShared(uint64_t page, PageCheck check, SharedGuard* out);
  // Pins a page that is new on disk: a zero-filled frame, already dirty, never read, created in
  // snapshot epoch `epoch` (see ExclusiveGuard::epoch). A resident copy of `page` is stale (its
  // block was freed and handed out again; a reader that raced a root change may have read it
  // back): it is dropped first, waiting for its pins. REQUIRES: the caller holds no guard on
  // `page`.
  Result<ExclusiveGuard> PinNew(uint64_t page, uint64_t epoch = 0);

  // Pins every page of `pages` shared into guards[i], reading all those that are not resident
  // with one ReadBatch straight into their frames (each checked as PinShared does). statuses[i]
  // is OK or that page's error (guards[i] then stays invalid). Duplicates get a pin each.
  // Returns how many pages were read from the device. REQUIRES: guards and statuses are as long
  // as pages; pages.size() stays well below frames() (a batch that needs more free frames than
  // eviction can give fails its remaining misses with Busy). The caller must hold no exclusive
  // guard on any of the pages.
  uint32_t PinSharedBatch(std::span<const uint64_t> pages, PageCheck check,
                          std::span<SharedGuard> guards, std::span<Status> statuses);

  // Reads the pages of `pages` that are not resident with one ReadBatch and leaves them
  // resident and unpinned (and unreferenced for the CLOCK hand until their second use: pages
  // read ahead and used once are evicted first). Reads at most frames()/4 pages per call; stops
  // early (OK) when no frame is free. Returns the first read or verification error; failed pages
  // are not cached.
  Status Prefetch(std::span<const uint64_t> pages, PageCheck check = nullptr);

  // As Prefetch, but returns at once: the frames are claimed now (a pin of one of these pages
  // waits on its latch for the read instead of reading it again), and the cache's read-ahead
  // threads (PageCacheOptions::readahead_threads, started on first use) read them: one thread
  // takes everything queued by then, reads it with one ReadBatch, verifies each page as its
  // read completes and leaves it resident and unpinned. Pages in flight this way are capped at
  // frames()/4 altogether. Returns how many of `pages`, from the first, are now resident or on
  // their way (0 when the cap is reached, or no frame came free). A page whose read or check fails
  // is not cached: its pin reads it again and gets the error. With `check` null the read-ahead
  // threads verify only the block (VerifyBlock: checksum, address, type), and the first pin
  // that asks for a check runs it, on its own thread (PinShared). Leading pages already resident
  // are passed over without any lock (when all are, nothing is locked at all: a warm scan's
  // read-ahead costs page-table lookups only).
  uint32_t PrefetchAsync(std::span<const uint64_t> pages, PageCheck check = nullptr);
  // How many more pages PrefetchAsync would take now (0: enough is in flight). Advisory.
  size_t ReadAheadRoom() const;
  // Whether `page` is in the cache (or being read into it), by a lock-free lookup. Advisory: it
  // may be evicted, or arrive, right after.
  bool Resident(uint64_t page) const { return table_.Find(page) != PageTable::kNone; }
  // Waits until every read PrefetchAsync started before this call (and any queued meanwhile)
  // has completed. For benchmarks and tests that must not overlap the read-ahead thread.
  void WaitForReadAhead();

  // Moves the pinned page to id `new_page` (copy-on-write relocation): the page table entry
  // changes, the bytes stay, the page becomes dirty. The caller stamps the new block number into
  // the header. The page's epoch becomes `epoch`. A resident copy of `new_page` is stale and
  // dropped first, as in PinNew.
  Status Relocate(ExclusiveGuard& guard, uint64_t new_page, uint64_t epoch = 0);
  // Drops the pinned page without writing it back (its block was freed); resets the guard.
  void Discard(ExclusiveGuard& guard);
  // Drops `page` if it is resident, without writing it back: its block is being handed out
  // again and any cached copy is stale. Waits for the page's pins to go. REQUIRES: the caller
  // holds no guard on it.
  void DropIfResident(uint64_t page);

  // Writes back every page that is dirty when called, in sorted batches through WriteBatch. No
  // flush/fsync: the caller (vde's checkpoint) does that. REQUIRES: the calling thread holds no
  // guard. Returns the first write error; pages that failed stay dirty.
  Status FlushAll();

  PageCacheStats stats() const;
  uint32_t frames() const { return frame_count_; }
  uint32_t block_size() const { return block_size_; }
  uint64_t memory_bytes() const { return memory_bytes_; }
  blockdev::BlockDevice* device() const { return device_; }

 private:
  using Hook = boost::intrusive::list_member_hook<>;
  // Pin count of a frame that is free or being freed: TryPin fails on it. Set under mu_ by
  // CAS from 0 (or from an evictor's claim of 1), cleared only by whoever took the frame.
  static constexpr uint32_t kDead = 0x80000000u;
  // One cache line each (64 bytes; the fields in this order, 72 before): every pin and latch
  // writes its frame's line, and no two frames share one, so threads on neighbouring frames
  // never contend. (No change measured in warm gets on two threads: the root's own line is
  // what they share.)
  struct alignas(64) Frame {
    Hook hook;  // in free_, or not (resident, or discarded/failed while still pinned)
    FrameLatch latch;
    std::atomic<uint64_t> page{kNoPage};      // written under mu_
    std::atomic<PageCheck> checked{nullptr};  // the check the page last passed
    // The snapshot epoch the page was created in (PinNew, Relocate); 0 for a page read from the
    // device, whose epoch is unknown. Written and read under the exclusive latch.
    std::atomic<uint64_t> epoch{0};
    std::atomic<uint32_t> pins{kDead};  // kDead while free; see TryPin
    uint32_t index = 0;
    std::atomic<bool> dirty{false};       // changed through SetDirty
    std::atomic<bool> referenced{false};  // CLOCK bit
    std::atomic<bool> inner{false};       // holds a kBTreeInner page (counted in inner_)
    std::atomic<bool> prefetched{false};  // read by Prefetch and not pinned since
  };
  static_assert(sizeof(Frame) == 64, "a frame is one cache line");
  using FrameList =
      boost::intrusive::list<Frame, boost::intrusive::member_hook<Frame, Hook, &Frame::hook>,
                             boost::intrusive::constant_time_size<true>>;

  // Open-addressing map page id -> frame index, capacity fixed at construction. Insert and
  // Erase run under mu_; Find may run without it, racing them: it then may miss a page or name
  // a frame that no longer holds it (callers validate through the frame), but never loops.
  class PageTable {
   public:
    explicit PageTable(uint32_t capacity_pow2);
    uint32_t Find(uint64_t page) const;  // kNone when absent
    void Insert(uint64_t page, uint32_t frame);
    void Erase(uint64_t page);
    static constexpr uint32_t kNone = ~uint32_t{0};
    static constexpr size_t kSlotBytes = 16;

   private:
    struct Slot {
      std::atomic<uint64_t> page{kNoPage};
      std::atomic<uint32_t> frame{kNone};
    };
    static_assert(sizeof(Slot) == kSlotBytes);
    size_t Home(uint64_t page) const;
    uint64_t PageAt(size_t i) const { return slots_[i].page.load(std::memory_order_relaxed); }
    std::unique_ptr<Slot[]> slots_;
    size_t mask_;
  };

  PageCache(blockdev::BlockDevice* device, uint32_t frame_count, uint32_t table_capacity,
            uint32_t inner_share_percent);

  std::span<std::byte> FrameData(const Frame* f) const {
    return {base_ + static_cast<size_t>(f->index) * block_size_, block_size_};
  }
  Result<Frame*> Fix(uint64_t page, bool exclusive, PageCheck check);
  // The lock-free hit: the frame holding `page`, pinned and latched, or null (take the locked
  // path). *failed is set when the page is resident but fails `check`.
  Frame* FixResident(uint64_t page, bool exclusive, PageCheck check, Status* failed);
  // Pins the frame holding `page` if the page table has it and the frame is not being freed or
  // reused; nullptr otherwise, with *in_table saying whether the table had the page. No latch.
  Frame* PinIfResident(uint64_t page, bool* in_table);
  // Latches a frame pinned under mu_ (or by TryPin) and checks it holds `page`, running
  // `check` when the page has not passed it yet. False (unlatched, unpinned) when the frame no
  // longer holds the page; *failed set (unlatched, unpinned) when the check rejects it.
  bool LatchPinned(Frame* f, uint64_t page, bool exclusive, PageCheck check, Status* failed);
  // Pins a frame unless it is dead (free or being freed).
  static bool TryPin(Frame* f);
  // Notes a pin of `f` for the CLOCK bit and the prefetch accounting.
  void NoteUse(Frame* f);
  // The inner-page mark, kept in step with inner_; the dirty bit, in step with dirty_.
  void SetInner(Frame* f, bool inner);
  void SetDirty(Frame* f, bool dirty);
  Status LoadFrame(Frame* f, uint64_t page, PageCheck check);  // verification after the read
  void FailLoad(Frame* f);                                     // REQUIRES: frame latched X
  void Unpin(Frame* f);
  // Puts a dead frame on the free list. REQUIRES: mu_ held, f->pins == kDead.
  void FreeFrameLocked(Frame* f);
  // Gives back a frame from AcquireFrame that was not used (its page turned up meanwhile).
  // REQUIRES: mu_ held.
  void ReturnUnusedFrame(Frame* f);
  // Returns a free frame (pins 1, latch reset to exclusive), evicting a batch if needed.
  // REQUIRES: lk holds mu_; may release and retake it.
  Result<Frame*> AcquireFrame(std::unique_lock<std::mutex>& lk);
  // Claims a frame (latched exclusively, pinned, in the page table) for each page of `pages`
  // that is not resident, up to `limit`; stops early when no frame comes free. *covered (if
  // given) is how many of `pages`, from the first, are now resident or claimed.
  std::vector<Frame*> ClaimForPrefetch(std::span<const uint64_t> pages, size_t limit,
                                       size_t* covered);
  // Reads claimed frames with one ReadBatchNotify, verifies each as it completes, and leaves
  // it resident, unlatched and unpinned (or drops it). Returns the first error.
  Status ReadPrefetched(std::span<Frame* const> loading, PageCheck check);
  // The read-ahead thread's body, and its end (drains the queue first).
  void ReadAheadLoop();
  void StopReadAhead();
  // Seals the given frames (each latched exclusively by the caller), downgrades their latches
  // to shared, and writes them; the caller releases the shared latches.
  Status WriteBack(std::span<Frame*> frames);

  blockdev::BlockDevice* device_;
  const uint32_t block_size_;
  const uint32_t frame_count_;
  uint64_t memory_bytes_ = 0;
  AlignedBuffer buffer_;
  std::byte* base_;  // buffer_.data(): frame i is [base_ + i * block_size_, +block_size_)
  std::unique_ptr<Frame[]> frames_;

  mutable std::mutex mu_;
  PageTable table_;        // changed under mu_; read by hits without it
  FrameList free_;         // under mu_
  uint32_t resident_ = 0;  // under mu_: frames holding a page (or being read into)
  uint32_t hand_ = 0;      // under mu_: the CLOCK hand, an index into frames_
  uint32_t evictors_ = 0;  // under mu_: threads between choosing and dropping victims

  std::atomic<uint32_t> inner_{0};  // frames marked inner
  std::atomic<uint32_t> dirty_{0};  // frames marked dirty
  const uint32_t inner_limit_;      // inner frames the CLOCK hand spares

  // The read-ahead thread (PrefetchAsync): its queue, and the frames claimed for it and not
  // yet read; all under ra_mu_.
  struct ReadAheadJob {
    std::vector<Frame*> frames;
    PageCheck check;
  };
  std::mutex ra_mu_;
  std::condition_variable ra_cv_;
  std::condition_variable ra_idle_cv_;  // ra_claimed_ fell to 0
  std::deque<ReadAheadJob> ra_queue_;
  // At most this many pages are claimed for read-ahead at once.
  size_t ReadAheadLimit() const { return std::max<size_t>(1, frame_count_ / 4); }
  std::atomic<size_t> ra_claimed_{0};  // changed under ra_mu_; read without it by ReadAheadRoom
  bool ra_stop_ = false;
  uint32_t ra_thread_count_ = 0;         // PageCacheOptions::readahead_threads
  std::vector<std::thread> ra_threads_;  // started by the first PrefetchAsync

  // Every pin of every thread counts a hit: striped (blockdev/striped.h).
  mutable StripedCounter hits_;

  struct Counters {
    std::atomic<uint64_t> misses{0}, pages_read{0}, pages_written{0}, evictions{0},
        write_batches{0}, read_batches{0};
    std::atomic<uint64_t> batch_reads{0}, batch_pages{0}, max_batch_pages{0};
    std::array<std::atomic<uint64_t>, 8> batch_pages_log2{};
    std::atomic<uint64_t> prefetch_reads{0}, prefetch_pages{0}, prefetch_used{0},
        prefetch_wasted{0}, prefetch_async{0};
  };
  mutable Counters counters_;
};

// Every page access goes through these: inline, so a hit costs no call for them.
inline std::span<const std::byte> PageCache::SharedGuard::data() const {
  return cache_->FrameData(frame_);
}
inline std::span<std::byte> PageCache::ExclusiveGuard::data() const {
  return cache_->FrameData(frame_);
}

}  // namespace vde::index
