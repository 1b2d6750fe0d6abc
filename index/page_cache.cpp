#include "index/page_cache.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cassert>
#include <chrono>
#include <cstring>
#include <new>
#include <string>
#include <thread>

#include "blockdev/block_header.h"

namespace vde::index {

namespace {

// Dirty pages written per WriteBatch call, and the most frames one eviction round takes.
constexpr size_t kWriteBatch = 64;
constexpr size_t kMaxEvictBatch = 64;
// How long a miss waits for another thread to unpin a frame before it returns Busy.
constexpr std::chrono::milliseconds kBusyWait{20};

// Rounds of Backoff a latch waiter goes through before it sleeps on an exclusive holder.
constexpr int kSleepAfter = 128;

// Asks for every cache line of `block` at once, before a pass over it. A page just read from
// the device is in no CPU cache, and a pass that misses line after line waits for each in turn
// (the hardware prefetcher starts afresh at every 4 KiB page): asked for together, the lines
// come in parallel. The checksum of a page read ahead took 0.47 us without this and 0.21 us
// with it (docs/READ_PATH.md, "Read-ahead threads and the scheduler").
void PrefetchLines(std::span<const std::byte> block) {
  for (size_t off = 0; off < block.size(); off += 64) __builtin_prefetch(block.data() + off);
}

void Backoff(int round) {
  if (round < 64) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  } else {
    std::this_thread::yield();
  }
}

}  // namespace

// ---- FrameLatch ----

bool FrameLatch::TryLockShared() {
  uint64_t w = word_.load(std::memory_order_acquire);
  uint64_t s = StateOf(w);
  if (s >= kMaxShared) return false;  // locked, evicted or saturated
  return word_.compare_exchange_strong(w, w + 1, std::memory_order_acquire);
}

bool FrameLatch::TryLockExclusive() {
  uint64_t w = word_.load(std::memory_order_acquire);
  if (StateOf(w) != kUnlocked) return false;
  return word_.compare_exchange_strong(w, (w & ~uint64_t{0xFF}) | kLocked,
                                       std::memory_order_acquire);
}

// A waiter spins, then yields, and past kSleepAfter rounds sleeps (futex, through
// std::atomic::wait) while the latch is held exclusively: that is a page being read from the
// device (often by the read-ahead thread), which can take a while. Shared holders are waited
// out by spinning and yielding, since UnlockShared does not wake sleepers.
template <typename TryLock>
void FrameLatch::WaitFor(TryLock try_lock) {
  for (int i = 0; !try_lock(); i++) {
    const uint64_t w = Load();
    if (i >= kSleepAfter && StateOf(w) == kLocked) {
      word_.wait(w, std::memory_order_acquire);
    } else {
      Backoff(i);
    }
  }
}

void FrameLatch::LockShared() {
  WaitFor([this] { return TryLockShared(); });
}

void FrameLatch::LockExclusive() {
  WaitFor([this] { return TryLockExclusive(); });
}

void FrameLatch::UnlockShared() {
  assert(StateOf(Load()) >= 1 && StateOf(Load()) <= kMaxShared);
  word_.fetch_sub(1, std::memory_order_release);
}

void FrameLatch::UnlockExclusive() {
  uint64_t w = word_.load(std::memory_order_relaxed);
  assert(StateOf(w) == kLocked);
  word_.store(((VersionOf(w) + 1) << 8) | kUnlocked, std::memory_order_release);
  word_.notify_all();
}

void FrameLatch::DowngradeToShared() {
  uint64_t w = word_.load(std::memory_order_relaxed);
  assert(StateOf(w) == kLocked);
  word_.store(((VersionOf(w) + 1) << 8) | 1, std::memory_order_release);
  word_.notify_all();
}

void FrameLatch::MarkEvicted() {
  uint64_t w = word_.load(std::memory_order_relaxed);
  word_.store(((VersionOf(w) + 1) << 8) | kEvicted, std::memory_order_release);
}

void FrameLatch::ResetUnlockedExclusive() {
  uint64_t w = word_.load(std::memory_order_relaxed);
  word_.store(((VersionOf(w) + 1) << 8) | kLocked, std::memory_order_release);
}

// ---- PageTable ----

PageCache::PageTable::PageTable(uint32_t capacity_pow2)
    : slots_(new Slot[capacity_pow2]), mask_(capacity_pow2 - 1) {}

size_t PageCache::PageTable::Home(uint64_t page) const {
  uint64_t h = page;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return static_cast<size_t>(h) & mask_;
}

uint32_t PageCache::PageTable::Find(uint64_t page) const {
  // Bounded: a reader racing a backward shift may skip over the empty slot that ends its probe.
  size_t i = Home(page);
  for (size_t steps = 0; steps <= mask_; steps++, i = (i + 1) & mask_) {
    const uint64_t p = PageAt(i);
    if (p == page) return slots_[i].frame.load(std::memory_order_relaxed);
    if (p == kNoPage) return kNone;
  }
  return kNone;
}

void PageCache::PageTable::Insert(uint64_t page, uint32_t frame) {
  size_t i = Home(page);
  while (PageAt(i) != kNoPage) {
    assert(PageAt(i) != page);
    i = (i + 1) & mask_;
  }
  slots_[i].frame.store(frame, std::memory_order_relaxed);
  slots_[i].page.store(page, std::memory_order_release);
}

void PageCache::PageTable::Erase(uint64_t page) {
  size_t i = Home(page);
  while (PageAt(i) != page) {
    if (PageAt(i) == kNoPage) return;
    i = (i + 1) & mask_;
  }
  // Backward-shift deletion: no tombstones, so lookups never degrade.
  for (size_t j = (i + 1) & mask_; PageAt(j) != kNoPage; j = (j + 1) & mask_) {
    size_t k = Home(PageAt(j));
    bool stays = (i < j) ? (k > i && k <= j) : (k > i || k <= j);
    if (!stays) {
      slots_[i].page.store(kNoPage, std::memory_order_relaxed);
      slots_[i].frame.store(slots_[j].frame.load(std::memory_order_relaxed),
                            std::memory_order_relaxed);
      slots_[i].page.store(PageAt(j), std::memory_order_release);
      i = j;
    }
  }
  slots_[i].page.store(kNoPage, std::memory_order_relaxed);
  slots_[i].frame.store(kNone, std::memory_order_relaxed);
}

// ---- Guards ----

PageCache::SharedGuard& PageCache::SharedGuard::operator=(SharedGuard&& o) noexcept {
  if (this != &o) {
    Release();
    cache_ = std::exchange(o.cache_, nullptr);
    frame_ = std::exchange(o.frame_, nullptr);
  }
  return *this;
}

uint64_t PageCache::SharedGuard::page_id() const {
  return frame_->page.load(std::memory_order_relaxed);
}

uint64_t PageCache::SharedGuard::epoch() const {
  return frame_->epoch.load(std::memory_order_relaxed);
}

void PageCache::SharedGuard::Release() {
  if (frame_ == nullptr) return;
  frame_->latch.UnlockShared();
  cache_->Unpin(frame_);
  frame_ = nullptr;
  cache_ = nullptr;
}

PageCache::ExclusiveGuard& PageCache::ExclusiveGuard::operator=(ExclusiveGuard&& o) noexcept {
  if (this != &o) {
    Release();
    cache_ = std::exchange(o.cache_, nullptr);
    frame_ = std::exchange(o.frame_, nullptr);
  }
  return *this;
}

uint64_t PageCache::ExclusiveGuard::page_id() const {
  return frame_->page.load(std::memory_order_relaxed);
}

void PageCache::ExclusiveGuard::MarkDirty() {
  cache_->SetDirty(frame_, true);
}

uint64_t PageCache::ExclusiveGuard::epoch() const {
  return frame_->epoch.load(std::memory_order_relaxed);
}

void PageCache::ExclusiveGuard::Release() {
  if (frame_ == nullptr) return;
  // The holder may have made the page an inner node (or stopped it being one).
  const uint16_t type = GetU16(cache_->FrameData(frame_).data() + 8);
  cache_->SetInner(frame_, type == static_cast<uint16_t>(BlockType::kBTreeInner));
  frame_->latch.UnlockExclusive();
  cache_->Unpin(frame_);
  frame_ = nullptr;
  cache_ = nullptr;
}

// ---- PageCache ----

uint64_t PageCache::BudgetFor(uint32_t frames, uint32_t block_size) {
  // The page table holds at most 4 slots per frame (capacity: the power of two >= 2 frames).
  return uint64_t{frames} * (block_size + sizeof(Frame) + 4 * PageTable::kSlotBytes);
}

Result<std::unique_ptr<PageCache>> PageCache::Create(blockdev::BlockDevice* device,
                                                     const PageCacheOptions& options) {
  const uint64_t bs = device->block_size();
  const uint64_t per_frame = BudgetFor(1, device->block_size());
  uint64_t n = options.budget_bytes / per_frame;
  if (n < kMinFrames) {
    return Status::InvalidArgument(
        device->path() + ": page cache budget of " + std::to_string(options.budget_bytes) +
        " bytes holds " + std::to_string(n) + " frames of " + std::to_string(bs) +
        " bytes; at least " + std::to_string(kMinFrames) + " are needed");
  }
  n = std::min<uint64_t>(n, uint64_t{1} << 30);
  // Frames registered with the kernel (BlockDevice::RegistersMemory) fill whole huge pages when
  // that costs at most 1/8 of them (the buffer's tail past the last whole huge page would be in
  // ordinary pages). The kernel then registers the buffer as huge pages, and a read into adjacent
  // frames is one segment per huge page instead of one per frame: on a virtio disk that is a
  // descriptor each, out of a queue of a few hundred, so a read-ahead of scattered 4 KiB segments
  // holds the whole queue, and its requests stay under 1 MiB.
  const uint64_t per_huge = AlignedBuffer::kHugePageBytes / bs;
  if (options.register_memory && device->RegistersMemory() && per_huge > 1 && n >= 8 * per_huge) {
    n = n / per_huge * per_huge;
  }
  uint64_t capacity = std::bit_ceil(2 * n);
  std::unique_ptr<PageCache> cache;
  try {
    cache.reset(new PageCache(device, static_cast<uint32_t>(n), static_cast<uint32_t>(capacity),
                              std::min<uint32_t>(options.inner_share_percent, 100)));
  } catch (const std::bad_alloc&) {
    return Status::NoSpace(device->path() + ": cannot allocate a page cache of " +
                           std::to_string(options.budget_bytes) + " bytes");
  }
  cache->ra_thread_count_ = std::min<uint32_t>(options.readahead_threads, 8);
  cache->memory_bytes_ = n * bs + n * sizeof(Frame) + capacity * PageTable::kSlotBytes;
  assert(cache->memory_bytes_ <= options.budget_bytes);
  if (options.register_memory) VDE_RETURN_IF_ERROR(device->RegisterMemory(cache->buffer_.span()));
  return cache;
}

PageCache::PageCache(blockdev::BlockDevice* device, uint32_t frame_count, uint32_t table_capacity,
                     uint32_t inner_share_percent)
    : device_(device),
      block_size_(device->block_size()),
      frame_count_(frame_count),
      buffer_(static_cast<size_t>(frame_count) * device->block_size(),
              std::max<size_t>(device->alignment(), 64), AlignedBuffer::Pages::kHuge),
      base_(buffer_.data()),
      frames_(new Frame[frame_count]),
      table_(table_capacity),
      inner_limit_(static_cast<uint32_t>(uint64_t{frame_count} * inner_share_percent / 100)) {
  for (uint32_t i = 0; i < frame_count_; i++) {
    frames_[i].index = i;
    free_.push_back(frames_[i]);
  }
}

PageCache::~PageCache() {
  StopReadAhead();
  free_.clear();
}

bool PageCache::TryPin(Frame* f) {
  uint32_t p = f->pins.load(std::memory_order_relaxed);
  do {
    if ((p & kDead) != 0) return false;
  } while (!f->pins.compare_exchange_weak(p, p + 1, std::memory_order_acq_rel,
                                          std::memory_order_relaxed));
  return true;
}

void PageCache::NoteUse(Frame* f) {
  if (f->prefetched.load(std::memory_order_relaxed) &&
      f->prefetched.exchange(false, std::memory_order_relaxed)) {
    // The use read-ahead predicted: the page stays unreferenced, so a scan's pages, used once,
    // go before pages used again (and all go in the hand's next pass, together: the frames a
    // window refills stay adjacent).
    counters_.prefetch_used.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (!f->referenced.load(std::memory_order_relaxed)) {
    f->referenced.store(true, std::memory_order_relaxed);
  }
}

void PageCache::SetDirty(Frame* f, bool dirty) {
  // Writers set the bit under the exclusive latch, write-back clears it under a shared one: the
  // exchange keeps dirty_ exact without the mutex.
  if (f->dirty.exchange(dirty, std::memory_order_acq_rel) == dirty) return;
  if (dirty) {
    dirty_.fetch_add(1, std::memory_order_relaxed);
  } else {
    dirty_.fetch_sub(1, std::memory_order_relaxed);
  }
}

void PageCache::SetInner(Frame* f, bool inner) {
  if (f->inner.load(std::memory_order_relaxed) == inner) return;
  if (f->inner.exchange(inner, std::memory_order_relaxed) == inner) return;
  if (inner) {
    inner_.fetch_add(1, std::memory_order_relaxed);
  } else {
    inner_.fetch_sub(1, std::memory_order_relaxed);
  }
}

void PageCache::Unpin(Frame* f) {
  if (f->pins.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  if (f->page.load(std::memory_order_acquire) != kNoPage) return;
  // The last pin of a discarded (or failed) frame returns it to the free list. It is in neither
  // the page table nor the free list, so only a stale lock-free lookup can pin it meanwhile,
  // and that pin's own Unpin then frees it.
  std::lock_guard lk(mu_);
  uint32_t zero = 0;
  if (!f->hook.is_linked() && f->page.load(std::memory_order_relaxed) == kNoPage &&
      f->pins.compare_exchange_strong(zero, kDead, std::memory_order_acq_rel)) {
    FreeFrameLocked(f);
  }
}

void PageCache::FreeFrameLocked(Frame* f) {
  if (f->prefetched.exchange(false, std::memory_order_relaxed)) {
    counters_.prefetch_wasted.fetch_add(1, std::memory_order_relaxed);
  }
  SetInner(f, false);
  f->latch.MarkEvicted();
  free_.push_back(*f);
}

void PageCache::ReturnUnusedFrame(Frame* f) {
  f->page.store(kNoPage, std::memory_order_release);
  f->latch.UnlockExclusive();
  if (f->pins.fetch_sub(1, std::memory_order_acq_rel) != 1) return;  // a stale pin frees it
  uint32_t zero = 0;
  if (f->pins.compare_exchange_strong(zero, kDead, std::memory_order_acq_rel)) FreeFrameLocked(f);
}

Result<PageCache::Frame*> PageCache::AcquireFrame(std::unique_lock<std::mutex>& lk) {
  const size_t batch_limit = std::clamp<size_t>(frame_count_ / 8, 1, kMaxEvictBatch);
  std::chrono::steady_clock::time_point busy_since{};
  for (int round = 0;; round++) {
    if (!free_.empty()) {
      Frame& f = free_.front();
      free_.pop_front();
      f.latch.ResetUnlockedExclusive();
      SetDirty(&f, false);  // free frames are clean; kept exact regardless
      f.referenced.store(true, std::memory_order_relaxed);
      f.pins.store(1, std::memory_order_release);  // alive again: stale lookups may pin it now
      return &f;
    }
    // CLOCK: sweep the frames in memory order from the hand, giving referenced frames a
    // second chance. Inner pages are passed over while they stay within their share; a second
    // sweep takes them too when nothing else can go. Memory order, not the order pages came
    // in: frames evicted together lie next to each other, so the reads that refill them (a
    // read-ahead window, merged into large requests) land in few runs of memory, which the
    // device transfers markedly faster than pages scattered over the cache.
    const bool spare_inner = inner_.load(std::memory_order_relaxed) <= inner_limit_;
    std::array<Frame*, kMaxEvictBatch> victims;
    size_t n = 0;
    for (int pass = 0; pass < (spare_inner ? 2 : 1) && n == 0; pass++) {
      for (size_t steps = 2 * size_t{frame_count_}; steps > 0 && n < batch_limit; steps--) {
        Frame& f = frames_[hand_];
        hand_ = hand_ + 1 == frame_count_ ? 0 : hand_ + 1;
        // Resident exactly when it has a page, under mu_; free and discarded frames have
        // none.
        if (f.page.load(std::memory_order_relaxed) == kNoPage) continue;
        if (f.pins.load(std::memory_order_relaxed) != 0) continue;
        if (pass == 0 && spare_inner && f.inner.load(std::memory_order_relaxed)) continue;
        if (f.referenced.load(std::memory_order_relaxed)) {
          f.referenced.store(false, std::memory_order_relaxed);
          continue;
        }
        uint32_t zero = 0;
        if (!f.pins.compare_exchange_strong(zero, 1, std::memory_order_acq_rel)) continue;
        victims[n++] = &f;  // claimed: nobody else evicts it
      }
    }
    if (n == 0) {
      // Every frame is pinned. Frames other threads are writing back come free soon; pins
      // held by other threads' operations usually do too, so retry a while before Busy.
      if (evictors_ == 0) {
        auto now = std::chrono::steady_clock::now();
        if (busy_since == std::chrono::steady_clock::time_point{}) busy_since = now;
        if (now - busy_since >= kBusyWait) {
          return Status::Busy(device_->path() + ": page cache: all " +
                              std::to_string(frame_count_) + " frames are pinned");
        }
      }
      lk.unlock();
      Backoff(round);
      lk.lock();
      continue;
    }
    evictors_++;
    lk.unlock();

    // Write the dirty victims back together. A victim latched by someone who pinned it since
    // is skipped (it will not be evicted: its pin count or CLOCK bit says it is in use).
    std::array<Frame*, kMaxEvictBatch> dirty;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
      Frame* f = victims[i];
      if (f->dirty.load(std::memory_order_acquire) && f->latch.TryLockExclusive()) {
        dirty[m++] = f;
      }
    }
    Status write_status = m > 0 ? WriteBack({dirty.data(), m}) : Status::OK();
    for (size_t i = 0; i < m; i++) dirty[i]->latch.UnlockShared();

    lk.lock();
    evictors_--;
    size_t freed = 0;
    for (size_t i = 0; i < n; i++) {
      Frame* f = victims[i];
      // Our claim is the only pin: mark the frame dead, so no lock-free lookup can pin it,
      // and only then look at its bits (a pin taken and dropped since may have set them).
      uint32_t one = 1;
      if (!f->pins.compare_exchange_strong(one, kDead, std::memory_order_acq_rel)) {
        f->pins.fetch_sub(1, std::memory_order_acq_rel);  // in use; a discarded one is freed
        continue;                                         // by its last Unpin
      }
      if (f->page.load(std::memory_order_relaxed) == kNoPage) {
        // Discarded by another thread while we held the claim: it is ours to free (our
        // claim kept its last Unpin from freeing it, so it is not on the free list).
        assert(!f->hook.is_linked());
        FreeFrameLocked(f);
        freed++;
        continue;
      }
      if (f->referenced.load(std::memory_order_relaxed) ||
          f->dirty.load(std::memory_order_acquire)) {
        f->pins.store(0, std::memory_order_release);  // keep it
        continue;
      }
      table_.Erase(f->page.load(std::memory_order_relaxed));
      resident_--;
      f->page.store(kNoPage, std::memory_order_release);
      FreeFrameLocked(f);
      freed++;
      counters_.evictions.fetch_add(1, std::memory_order_relaxed);
    }
    if (freed == 0 && !write_status.ok()) return write_status;
  }
}

Status PageCache::WriteBack(std::span<Frame*> frames) {
  std::sort(frames.begin(), frames.end(), [](const Frame* a, const Frame* b) {
    return a->page.load(std::memory_order_relaxed) < b->page.load(std::memory_order_relaxed);
  });
  // Seal every page under its exclusive latch (so no reader ever sees the checksum field
  // change), then let readers back in for the write itself.
  Status first;
  std::vector<uint8_t> sendable(frames.size(), 0);
  for (size_t i = 0; i < frames.size(); i++) {
    Frame* f = frames[i];
    std::span<std::byte> data = FrameData(f);
    const uint64_t page = f->page.load(std::memory_order_relaxed);
    const BlockHeader h = DecodeBlockHeader(data);
    if (h.block == page) {
      PutU64(data.data(), ComputeBlockChecksum(data));
      sendable[i] = 1;
    } else if (first.ok()) {
      // The owner forgot to stamp a relocated page: writing it would plant a block that fails
      // verification. Keep it dirty and report.
      first = Status::Corruption("block " + std::to_string(page) + " of " + device_->path() +
                                 ": cached page names block " + std::to_string(h.block) +
                                 "; not written back");
    }
    f->latch.DowngradeToShared();
  }
  for (size_t base = 0; base < frames.size(); base += kWriteBatch) {
    const size_t n = std::min(kWriteBatch, frames.size() - base);
    std::array<blockdev::WriteRequest, kWriteBatch> reqs;
    std::array<Frame*, kWriteBatch> sent;
    size_t m = 0;
    for (size_t i = base; i < base + n; i++) {
      if (!sendable[i]) continue;
      reqs[m] = blockdev::WriteRequest{frames[i]->page.load(std::memory_order_relaxed), 1,
                                       FrameData(frames[i]).data(), Status::OK()};
      sent[m++] = frames[i];
    }
    if (m == 0) continue;
    Status s = device_->WriteBatch({reqs.data(), m});
    counters_.write_batches.fetch_add(1, std::memory_order_relaxed);
    for (size_t i = 0; i < m; i++) {
      if (reqs[i].status.ok()) {
        SetDirty(sent[i], false);
        counters_.pages_written.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

Status PageCache::LoadFrame(Frame* f, uint64_t page, PageCheck check) {
  std::span<std::byte> data = FrameData(f);
  PrefetchLines(data);
  BlockHeader h;
  VDE_RETURN_IF_ERROR(VerifyBlock(data, page, BlockType::kFree, device_->path(), &h));
  if (check != nullptr) VDE_RETURN_IF_ERROR(check(data, page, device_->path()));
  f->checked.store(check, std::memory_order_release);
  f->epoch.store(0, std::memory_order_relaxed);
  SetInner(f, h.type == BlockType::kBTreeInner);
  return Status::OK();
}

void PageCache::FailLoad(Frame* f) {
  {
    std::lock_guard lk(mu_);
    table_.Erase(f->page.load(std::memory_order_relaxed));
    resident_--;
    f->page.store(kNoPage, std::memory_order_release);
  }
  f->latch.UnlockExclusive();
  Unpin(f);
}

bool PageCache::LatchPinned(Frame* f, uint64_t page, bool exclusive, PageCheck check,
                            Status* failed) {
  if (exclusive) {
    f->latch.LockExclusive();
  } else {
    f->latch.LockShared();
  }
  Status s;
  if (f->page.load(std::memory_order_acquire) == page) {
    if (check == nullptr || f->checked.load(std::memory_order_acquire) == check) {
      NoteUse(f);
      hits_.Add();
      return true;
    }
    s = check(FrameData(f), page, device_->path());
    if (s.ok()) {
      f->checked.store(check, std::memory_order_release);
      NoteUse(f);
      hits_.Add();
      return true;
    }
    *failed = std::move(s);
  }
  // Rejected, or its load failed or it was discarded while we waited.
  if (exclusive) {
    f->latch.UnlockExclusive();
  } else {
    f->latch.UnlockShared();
  }
  Unpin(f);
  return false;
}

PageCache::Frame* PageCache::PinIfResident(uint64_t page, bool* in_table) {
  const uint32_t idx = table_.Find(page);
  *in_table = idx < frame_count_;
  if (!*in_table) return nullptr;
  Frame* f = &frames_[idx];
  if (f->page.load(std::memory_order_acquire) != page || !TryPin(f)) return nullptr;
  // Pinned, the frame cannot be reused; check again that it holds our page before waiting on
  // its latch (a stale lookup must not wait on a latch held for another page).
  if (f->page.load(std::memory_order_acquire) != page) {
    Unpin(f);
    return nullptr;
  }
  return f;
}

PageCache::Frame* PageCache::FixResident(uint64_t page, bool exclusive, PageCheck check,
                                         Status* failed) {
  bool in_table;
  Frame* f = PinIfResident(page, &in_table);
  if (f == nullptr) return nullptr;
  return LatchPinned(f, page, exclusive, check, failed) ? f : nullptr;
}

Result<PageCache::Frame*> PageCache::Fix(uint64_t page, bool exclusive, PageCheck check) {
  if (page == kNoPage) {
    return Status::InvalidArgument(device_->path() + ": pin of the invalid page id");
  }
  {
    Status failed;
    if (Frame* f = FixResident(page, exclusive, check, &failed)) return f;
    if (!failed.ok()) return failed;
  }
  std::unique_lock lk(mu_);
  for (;;) {
    uint32_t idx = table_.Find(page);
    if (idx != PageTable::kNone) {
      Frame* f = &frames_[idx];
      f->pins.fetch_add(1, std::memory_order_acq_rel);  // in the table: not dead under mu_
      lk.unlock();
      Status failed;
      if (LatchPinned(f, page, exclusive, check, &failed)) return f;
      if (!failed.ok()) return failed;
      lk.lock();  // look again
      continue;
    }
    VDE_ASSIGN_OR_RETURN(Frame * f, AcquireFrame(lk));
    if (table_.Find(page) != PageTable::kNone) {  // loaded by another thread meanwhile
      ReturnUnusedFrame(f);
      continue;
    }
    f->page.store(page, std::memory_order_release);
    table_.Insert(page, f->index);
    resident_++;
    lk.unlock();
    counters_.misses.fetch_add(1, std::memory_order_relaxed);
    counters_.read_batches.fetch_add(1, std::memory_order_relaxed);
    Status s = device_->Read(page, 1, FrameData(f));
    if (s.ok()) {
      counters_.pages_read.fetch_add(1, std::memory_order_relaxed);
      s = LoadFrame(f, page, check);
    }
    if (!s.ok()) {
      FailLoad(f);
      return s;
    }
    if (!exclusive) f->latch.DowngradeToShared();
    return f;
  }
}

Result<PageCache::SharedGuard> PageCache::PinShared(uint64_t page, PageCheck check) {
  VDE_ASSIGN_OR_RETURN(Frame * f, Fix(page, false, check));
  return SharedGuard(this, f);
}

PageCache::Ready PageCache::TryPinShared(uint64_t page, PageCheck check, SharedGuard* out) {
  if (page == kNoPage) return Ready::kAbsent;
  bool in_table;
  Frame* f = PinIfResident(page, &in_table);
  if (f == nullptr) return in_table ? Ready::kBusy : Ready::kAbsent;
  if (!f->latch.TryLockShared()) {
    Unpin(f);
    return Ready::kBusy;
  }
  if (f->page.load(std::memory_order_acquire) == page &&
      (check == nullptr || f->checked.load(std::memory_order_acquire) == check)) {
    NoteUse(f);
    hits_.Add();
    *out = SharedGuard(this, f);
    return Ready::kPinned;
  }
  f->latch.UnlockShared();
  Unpin(f);
  return Ready::kBusy;
}

Result<PageCache::ExclusiveGuard> PageCache::PinExclusive(uint64_t page, PageCheck check) {
  VDE_ASSIGN_OR_RETURN(Frame * f, Fix(page, true, check));
  return ExclusiveGuard(this, f);
}

Result<PageCache::ExclusiveGuard> PageCache::PinNew(uint64_t page, uint64_t epoch) {
  if (page == kNoPage) {
    return Status::InvalidArgument(device_->path() + ": new page with the invalid page id");
  }
  std::unique_lock lk(mu_);
  for (;;) {
    if (table_.Find(page) != PageTable::kNone) {
      lk.unlock();
      DropIfResident(page);
      lk.lock();
      continue;
    }
    VDE_ASSIGN_OR_RETURN(Frame * f, AcquireFrame(lk));
    if (table_.Find(page) != PageTable::kNone) {
      ReturnUnusedFrame(f);
      continue;
    }
    f->page.store(page, std::memory_order_release);
    SetDirty(f, true);
    f->checked.store(nullptr, std::memory_order_release);
    f->epoch.store(epoch, std::memory_order_relaxed);
    table_.Insert(page, f->index);
    resident_++;
    lk.unlock();
    std::span<std::byte> data = FrameData(f);
    std::memset(data.data(), 0, data.size());
    return ExclusiveGuard(this, f);
  }
}

Status PageCache::Relocate(ExclusiveGuard& guard, uint64_t new_page, uint64_t epoch) {
  assert(guard.valid() && guard.cache_ == this);
  Frame* f = guard.frame_;
  if (new_page == kNoPage || new_page == f->page.load(std::memory_order_relaxed)) {
    return Status::InvalidArgument("block " + std::to_string(new_page) + " of " + device_->path() +
                                   ": invalid relocation target");
  }
  std::unique_lock lk(mu_);
  while (table_.Find(new_page) != PageTable::kNone) {
    lk.unlock();
    DropIfResident(new_page);
    lk.lock();
  }
  table_.Erase(f->page.load(std::memory_order_relaxed));
  table_.Insert(new_page, f->index);
  f->page.store(new_page, std::memory_order_release);
  f->epoch.store(epoch, std::memory_order_relaxed);
  SetDirty(f, true);
  return Status::OK();
}

void PageCache::Discard(ExclusiveGuard& guard) {
  assert(guard.valid() && guard.cache_ == this);
  Frame* f = std::exchange(guard.frame_, nullptr);
  guard.cache_ = nullptr;
  {
    std::lock_guard lk(mu_);
    table_.Erase(f->page.load(std::memory_order_relaxed));
    resident_--;
    f->page.store(kNoPage, std::memory_order_release);
    SetDirty(f, false);
  }
  f->latch.UnlockExclusive();
  Unpin(f);
}

void PageCache::DropIfResident(uint64_t page) {
  for (;;) {
    Status failed;
    Frame* f = FixResident(page, true, nullptr, &failed);
    if (f == nullptr) {
      // Not resident, or a racing eviction or load: the locked lookup is exact.
      std::unique_lock lk(mu_);
      const uint32_t idx = table_.Find(page);
      if (idx == PageTable::kNone) return;
      Frame* g = &frames_[idx];
      g->pins.fetch_add(1, std::memory_order_acq_rel);  // in the table: not dead under mu_
      lk.unlock();
      if (!LatchPinned(g, page, true, nullptr, &failed)) continue;
      f = g;
    }
    ExclusiveGuard guard(this, f);
    Discard(guard);
    return;
  }
}

Status PageCache::FlushAll() {
  // Collect the dirty pages' ids, then pin, latch and write them a chunk at a time, so a
  // flush never holds more than a chunk of frames away from eviction.
  std::vector<uint64_t> pages;
  {
    std::lock_guard lk(mu_);
    for (uint32_t i = 0; i < frame_count_; i++) {
      const Frame& f = frames_[i];
      const uint64_t page = f.page.load(std::memory_order_relaxed);  // exact under mu_
      if (page != kNoPage && f.dirty.load(std::memory_order_acquire)) pages.push_back(page);
    }
  }
  std::sort(pages.begin(), pages.end());
  const size_t chunk = std::clamp<size_t>(frame_count_ / 2, 1, kWriteBatch);
  Status first;
  std::vector<Frame*> pinned, batch, waiting;
  for (size_t base = 0; base < pages.size(); base += chunk) {
    pinned.clear();
    {
      std::lock_guard lk(mu_);
      for (size_t i = base; i < std::min(pages.size(), base + chunk); i++) {
        uint32_t idx = table_.Find(pages[i]);
        if (idx == PageTable::kNone) continue;  // evicted (so written) or discarded since
        Frame* f = &frames_[idx];
        if (!f->dirty.load(std::memory_order_acquire)) continue;
        f->pins.fetch_add(1, std::memory_order_acq_rel);  // in the table: not dead under mu_
        pinned.push_back(f);
      }
    }
    for (int round = 0; !pinned.empty(); round++) {
      batch.clear();
      waiting.clear();
      for (Frame* f : pinned) {
        if (!f->dirty.load(std::memory_order_acquire)) {
          Unpin(f);
        } else if (!f->latch.TryLockExclusive()) {
          waiting.push_back(f);  // a writer, readers, or an evictor's write-back hold it
        } else if (!f->dirty.load(std::memory_order_acquire)) {
          f->latch.UnlockExclusive();  // written back meanwhile
          Unpin(f);
        } else {
          batch.push_back(f);
        }
      }
      if (!batch.empty()) {
        Status s = WriteBack(batch);
        if (!s.ok() && first.ok()) first = s;
        for (Frame* f : batch) {
          f->latch.UnlockShared();
          Unpin(f);  // written, or failed: a failed page is reported, not retried
        }
      } else if (!waiting.empty()) {
        // Wait for the first busy page while holding no latch ourselves.
        waiting.front()->latch.LockExclusive();
        waiting.front()->latch.UnlockExclusive();
        Backoff(round);
      }
      pinned.swap(waiting);
    }
  }
  return first;
}

PageCacheStats PageCache::stats() const {
  PageCacheStats s;
  auto ld = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  s.hits = hits_.Load();
  s.misses = ld(counters_.misses);
  s.pages_read = ld(counters_.pages_read);
  s.pages_written = ld(counters_.pages_written);
  s.evictions = ld(counters_.evictions);
  s.write_batches = ld(counters_.write_batches);
  s.read_batches = ld(counters_.read_batches);
  s.batch_reads = ld(counters_.batch_reads);
  s.batch_pages = ld(counters_.batch_pages);
  s.max_batch_pages = ld(counters_.max_batch_pages);
  for (size_t i = 0; i < s.batch_pages_log2.size(); i++) {
    s.batch_pages_log2[i] = ld(counters_.batch_pages_log2[i]);
  }
  s.prefetch_reads = ld(counters_.prefetch_reads);
  s.prefetch_pages = ld(counters_.prefetch_pages);
  s.prefetch_used = ld(counters_.prefetch_used);
  s.prefetch_wasted = ld(counters_.prefetch_wasted);
  s.prefetch_async = ld(counters_.prefetch_async);
  s.frames = frame_count_;
  s.memory_bytes = memory_bytes_;
  s.inner_pages = inner_.load(std::memory_order_relaxed);
  s.dirty = dirty_.load(std::memory_order_relaxed);
  std::lock_guard lk(mu_);
  s.resident = resident_;
  return s;
}

}  // namespace vde::index
