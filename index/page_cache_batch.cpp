// PageCache's batched reads: PinSharedBatch (B+tree MultiGet) and Prefetch (scan read-ahead).
// Both claim a frame for every missing page under the page-table mutex, release it, read all of
// them with one ReadBatch straight into the (registered) frames, and verify each page as a
// single miss would.
#include <algorithm>
#include <bit>
#include <cassert>
#include <deque>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "index/page_cache.h"

namespace vde::index {

uint32_t PageCache::PinSharedBatch(std::span<const uint64_t> pages, PageCheck check,
                                   std::span<SharedGuard> guards, std::span<Status> statuses) {
  const size_t n = pages.size();
  assert(guards.size() >= n && statuses.size() >= n);
  enum : uint8_t { kPending, kResident, kLoading, kDone };
  std::vector<uint8_t> state(n, kPending);
  std::vector<Frame*> frames(n, nullptr);
  size_t pending = 0;

  // 1. Resident pages, without the mutex.
  for (size_t i = 0; i < n; i++) {
    guards[i].Release();
    statuses[i] = Status::OK();
    if (pages[i] == kNoPage) {
      statuses[i] = Status::InvalidArgument(device_->path() + ": pin of the invalid page id");
      state[i] = kDone;
      continue;
    }
    Status failed;
    if (Frame* f = FixResident(pages[i], false, check, &failed)) {
      guards[i] = SharedGuard(this, f);
      state[i] = kDone;
    } else if (!failed.ok()) {
      statuses[i] = std::move(failed);
      state[i] = kDone;
    } else {
      pending++;
    }
  }
  if (pending == 0) return 0;

  // 2. Under the mutex: pin what became resident, claim a frame for each missing page. A frame
  // claimed for a page is in the table at once, so a duplicate later in the batch (or another
  // thread) pins it and waits on its latch for our read.
  std::vector<size_t> loads;
  {
    std::unique_lock lk(mu_);
    Status no_frame;
    for (size_t i = 0; i < n; i++) {
      if (state[i] != kPending) continue;
      for (;;) {
        const uint32_t idx = table_.Find(pages[i]);
        if (idx != PageTable::kNone) {
          frames[i] = &frames_[idx];
          frames[i]->pins.fetch_add(1, std::memory_order_acq_rel);  // not dead under mu_
          state[i] = kResident;
          break;
        }
        if (!no_frame.ok()) {  // eviction found nothing: fail the rest, read what we have
          statuses[i] = no_frame;
          state[i] = kDone;
          break;
        }
        Result<Frame*> r = AcquireFrame(lk);
        if (!r.has_value()) {
          no_frame = r.error();
          continue;
        }
        Frame* f = *r;
        if (table_.Find(pages[i]) != PageTable::kNone) {  // loaded by another thread meanwhile
          ReturnUnusedFrame(f);
          continue;
        }
        f->page.store(pages[i], std::memory_order_release);
        table_.Insert(pages[i], f->index);
        resident_++;
        frames[i] = f;
        state[i] = kLoading;
        loads.push_back(i);
        break;
      }
    }
  }

  // 3. One ReadBatch for every missing page, straight into the frames.
  if (!loads.empty()) {
    const uint64_t m = loads.size();
    std::vector<blockdev::ReadRequest> reqs(m);
    for (size_t k = 0; k < m; k++) {
      reqs[k].block = pages[loads[k]];
      reqs[k].buf = FrameData(frames[loads[k]]).data();
    }
    counters_.misses.fetch_add(m, std::memory_order_relaxed);
    counters_.read_batches.fetch_add(1, std::memory_order_relaxed);
    counters_.batch_reads.fetch_add(1, std::memory_order_relaxed);
    counters_.batch_pages.fetch_add(m, std::memory_order_relaxed);
    counters_.batch_pages_log2[std::min<size_t>(7, std::bit_width(m) - 1)].fetch_add(
        1, std::memory_order_relaxed);
    uint64_t seen = counters_.max_batch_pages.load(std::memory_order_relaxed);
    while (seen < m &&
           !counters_.max_batch_pages.compare_exchange_weak(seen, m, std::memory_order_relaxed)) {
    }
    // Each page is verified as its read completes, while the others are still in flight.
    auto loaded = [&](size_t k) {
      const size_t i = loads[k];
      Frame* f = frames[i];
      Status s = reqs[k].status;
      if (s.ok()) {
        counters_.pages_read.fetch_add(1, std::memory_order_relaxed);
        s = LoadFrame(f, pages[i], check);
      }
      if (s.ok()) {
        f->latch.DowngradeToShared();
        guards[i] = SharedGuard(this, f);
      } else {
        FailLoad(f);
        statuses[i] = std::move(s);
      }
    };
    (void)device_->ReadBatchNotify(reqs, loaded);  // per-request statuses are checked above
  }

  // 4. Latch the pages found resident under the mutex. Done last: some may be loading in
  // another thread (or earlier in this batch), and we hold no exclusive latch while we wait.
  for (size_t i = 0; i < n; i++) {
    if (state[i] != kResident) continue;
    Status failed;
    if (LatchPinned(frames[i], pages[i], false, check, &failed)) {
      guards[i] = SharedGuard(this, frames[i]);
    } else if (!failed.ok()) {
      statuses[i] = std::move(failed);
    } else {
      Result<Frame*> r = Fix(pages[i], false, check);  // its load failed elsewhere: retry alone
      if (r.has_value()) {
        guards[i] = SharedGuard(this, *r);
      } else {
        statuses[i] = r.error();
      }
    }
  }
  return static_cast<uint32_t>(loads.size());
}

std::vector<PageCache::Frame*> PageCache::ClaimForPrefetch(std::span<const uint64_t> pages,
                                                           size_t limit, size_t* covered) {
  std::vector<Frame*> loading;
  size_t done = 0;
  std::unique_lock lk(mu_);
  for (; done < pages.size(); done++) {
    const uint64_t page = pages[done];
    if (page == kNoPage || table_.Find(page) != PageTable::kNone) continue;
    if (loading.size() >= limit) break;
    Result<Frame*> r = AcquireFrame(lk);
    if (!r.has_value()) break;  // advisory: stop when no frame comes free
    Frame* f = *r;
    if (table_.Find(page) != PageTable::kNone) {
      ReturnUnusedFrame(f);
      continue;
    }
    f->page.store(page, std::memory_order_release);
    table_.Insert(page, f->index);
    resident_++;
    loading.push_back(f);
  }
  if (covered != nullptr) *covered = done;
  return loading;
}

Status PageCache::ReadPrefetched(std::span<Frame* const> loading, PageCheck check) {
  if (loading.empty()) return Status::OK();
  std::vector<blockdev::ReadRequest> reqs(loading.size());
  for (size_t i = 0; i < loading.size(); i++) {
    reqs[i].block = loading[i]->page.load(std::memory_order_relaxed);
    reqs[i].buf = FrameData(loading[i]).data();
  }
  counters_.read_batches.fetch_add(1, std::memory_order_relaxed);
  counters_.prefetch_reads.fetch_add(1, std::memory_order_relaxed);
  Status first;
  // Each page is verified and released as its read completes: a scan waiting for the first
  // pages of a window gets them while the rest are in flight.
  auto loaded = [&](size_t i) {
    Frame* f = loading[i];
    Status s = reqs[i].status;
    if (s.ok()) {
      counters_.pages_read.fetch_add(1, std::memory_order_relaxed);
      s = LoadFrame(f, reqs[i].block, check);
    }
    if (s.ok()) {
      counters_.prefetch_pages.fetch_add(1, std::memory_order_relaxed);
      // Unreferenced until used twice (NoteUse). A frame the hand has just freed lies behind
      // it, and is reached again only after a full sweep.
      f->referenced.store(false, std::memory_order_relaxed);
      f->prefetched.store(true, std::memory_order_relaxed);
      f->latch.UnlockExclusive();
      Unpin(f);
    } else {
      FailLoad(f);
      if (first.ok()) first = s;
    }
  };
  (void)device_->ReadBatchNotify(reqs, loaded);  // per-request statuses are checked above
  return first;
}

Status PageCache::Prefetch(std::span<const uint64_t> pages, PageCheck check) {
  const std::vector<Frame*> loading =
      ClaimForPrefetch(pages, std::max<size_t>(1, frame_count_ / 4), nullptr);
  return ReadPrefetched(loading, check);
}

size_t PageCache::ReadAheadRoom() const {
  const size_t limit = ReadAheadLimit();
  const size_t claimed = ra_claimed_.load(std::memory_order_relaxed);
  return claimed >= limit ? 0 : limit - claimed;
}

uint32_t PageCache::PrefetchAsync(std::span<const uint64_t> all, PageCheck check) {
  // Pages already resident need nothing. A scan over cached leaves (a warm one) then takes
  // neither of the cache-wide mutexes below, which scans on several threads would all queue on.
  // Lock-free lookups (Resident): a page evicted meanwhile is read when it is pinned.
  size_t resident = 0;
  while (resident < all.size() && (all[resident] == kNoPage || Resident(all[resident]))) {
    resident++;
  }
  if (resident == all.size()) return static_cast<uint32_t>(resident);
  const std::span<const uint64_t> pages = all.subspan(resident);
  const size_t limit = ReadAheadLimit();
  std::unique_lock lk(ra_mu_);
  if (ra_stop_) return 0;
  while (ra_threads_.size() < ra_thread_count_) {
    try {
      ra_threads_.emplace_back([this] { ReadAheadLoop(); });
    } catch (const std::system_error&) {
      ra_thread_count_ = static_cast<uint32_t>(ra_threads_.size());  // make do with these
      break;
    }
  }
  if (ra_threads_.empty()) {
    // No read-ahead thread (none configured, or none to be had): read them now, as Prefetch.
    lk.unlock();
    size_t covered = 0;
    const std::vector<Frame*> loading = ClaimForPrefetch(pages, limit, &covered);
    (void)ReadPrefetched(loading, check);  // advisory, as below
    return static_cast<uint32_t>(resident + covered);
  }
  if (ra_claimed_ >= limit) return 0;  // enough in flight
  const size_t budget = limit - ra_claimed_;
  ra_claimed_ += budget;  // reserved while claiming (which may write back evicted pages)
  lk.unlock();
  // Frames are claimed here, so that a pin of one of these pages waits for its read (on the
  // frame's latch) instead of reading it a second time.
  size_t covered = 0;
  std::vector<Frame*> loading = ClaimForPrefetch(pages, budget, &covered);
  const size_t n = loading.size();
  lk.lock();
  ra_claimed_ -= budget - n;
  if (n == 0) {
    if (ra_claimed_ == 0) ra_idle_cv_.notify_all();
    return static_cast<uint32_t>(resident + covered);
  }
  ra_queue_.push_back({std::move(loading), check});
  lk.unlock();
  ra_cv_.notify_one();
  // Let the read-ahead thread just woken run now. The scheduler tends to queue a woken thread
  // on the waker's CPU, here the scan's, where it waits until the scan blocks (its reads not
  // yet submitted, the device idle); so do threads woken by completions when the device's
  // interrupts land on that CPU. One yield per window hands them the CPU (docs/READ_PATH.md,
  // "Read-ahead threads and the scheduler").
  std::this_thread::yield();
  counters_.prefetch_async.fetch_add(1, std::memory_order_relaxed);
  return static_cast<uint32_t>(resident + covered);
}

void PageCache::ReadAheadLoop() {
  std::unique_lock lk(ra_mu_);
  for (;;) {
    ra_cv_.wait(lk, [&] { return ra_stop_ || !ra_queue_.empty(); });
    if (ra_queue_.empty()) return;  // stopping, and nothing left to read
    // Everything queued goes out together (per check): the device sees one deep batch.
    std::deque<ReadAheadJob> jobs;
    jobs.swap(ra_queue_);
    lk.unlock();
    while (!jobs.empty()) {
      const PageCheck check = jobs.front().check;
      std::vector<Frame*> frames;
      for (auto it = jobs.begin(); it != jobs.end();) {
        if (it->check != check) {
          ++it;
          continue;
        }
        frames.insert(frames.end(), it->frames.begin(), it->frames.end());
        it = jobs.erase(it);
      }
      // Advisory: a page that failed here fails again, with its error, when it is pinned.
      (void)ReadPrefetched(frames, check);
      lk.lock();
      ra_claimed_ -= frames.size();
      if (ra_claimed_ == 0) ra_idle_cv_.notify_all();
      lk.unlock();
    }
    lk.lock();
  }
}

void PageCache::WaitForReadAhead() {
  std::unique_lock lk(ra_mu_);
  ra_idle_cv_.wait(lk, [&] { return ra_claimed_ == 0; });
}

void PageCache::StopReadAhead() {
  {
    std::lock_guard lk(ra_mu_);
    ra_stop_ = true;
  }
  ra_cv_.notify_all();
  for (std::thread& t : ra_threads_) t.join();
}

}  // namespace vde::index
