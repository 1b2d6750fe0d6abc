// Striped state for what every thread touches on every operation: a statistics counter
// (StripedCounter) and a reader-writer lock whose readers never write a shared cache line
// (StripedSharedMutex).
//
// One std::atomic that every thread changes is one cache line that passes from core to core at
// each change, and slows every thread that reads anything else on that line: warm gets on two
// threads ran at 1.12-1.26x one thread with the page cache's hit counter, the store's get counter
// and the store's std::shared_mutex each a single shared word (docs/PERFORMANCE.md). Here each
// thread uses one of kStripes slots, each on a cache line of its own. Slots are handed out to
// threads in turn, on a thread's first use of any striped object, so up to kStripes threads
// never share one.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>

namespace vde {

inline constexpr size_t kStripes = 16;

// The calling thread's slot, in [0, kStripes).
inline size_t ThreadStripe() noexcept {
  static std::atomic<uint32_t> next{0};
  static thread_local const uint32_t stripe =
      next.fetch_add(1, std::memory_order_relaxed) % kStripes;
  return stripe;
}

// One slot: a count alone on its cache line.
struct alignas(64) StripeSlot {
  std::atomic<uint64_t> n{0};
};

// A counter many threads add to at once. Thread-safe. Load() is not a snapshot across slots:
// with Adds in flight it returns a value between the count before and after them, as a relaxed
// atomic read would.
class StripedCounter {
 public:
  void Add(uint64_t n = 1) noexcept {
    stripes_[ThreadStripe()].n.fetch_add(n, std::memory_order_relaxed);
  }
  uint64_t Load() const noexcept {
    uint64_t sum = 0;
    for (const StripeSlot& s : stripes_) sum += s.n.load(std::memory_order_relaxed);
    return sum;
  }

 private:
  std::array<StripeSlot, kStripes> stripes_{};
};

// A reader-writer lock for many readers and rare writers (the standard's SharedMutex: lock,
// try_lock, unlock, lock_shared, try_lock_shared, unlock_shared; use it with std::shared_lock
// and std::unique_lock). A reader
// counts itself in its thread's slot and then checks that no writer has come; a writer
// announces itself and then waits until every slot is empty, while readers that arrive meanwhile
// step back and wait for it. Both orders are sequentially consistent, so a reader and a writer
// that come at once cannot both go on. Writers take turns (one std::mutex) and go before
// readers that arrive after them. As with std::shared_mutex, a thread unlocks on the thread
// that locked, and never locks again what it holds. A writer waiting for readers yields its CPU
// between looks: meant for writers that come seldom (closing, dropping an index).
class StripedSharedMutex {
 public:
  void lock_shared() noexcept {
    std::atomic<uint64_t>& mine = readers_[ThreadStripe()].n;
    for (;;) {
      mine.fetch_add(1, std::memory_order_seq_cst);
      if (!writer_.load(std::memory_order_seq_cst)) return;
      mine.fetch_sub(1, std::memory_order_seq_cst);
      writer_.wait(true, std::memory_order_acquire);
    }
  }
  // Fails, without waiting, while a writer holds the lock or waits for it.
  bool try_lock_shared() noexcept {
    std::atomic<uint64_t>& mine = readers_[ThreadStripe()].n;
    mine.fetch_add(1, std::memory_order_seq_cst);
    if (!writer_.load(std::memory_order_seq_cst)) return true;
    mine.fetch_sub(1, std::memory_order_seq_cst);
    return false;
  }
  void unlock_shared() noexcept {
    readers_[ThreadStripe()].n.fetch_sub(1, std::memory_order_release);
  }
  void lock() {
    writers_.lock();
    writer_.store(true, std::memory_order_seq_cst);
    for (const StripeSlot& s : readers_) {
      while (s.n.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
    }
  }
  // Fails, without waiting, while another writer holds the lock or any reader does. Readers that
  // arrive during the attempt wait for it to end.
  bool try_lock() {
    if (!writers_.try_lock()) return false;
    writer_.store(true, std::memory_order_seq_cst);
    for (const StripeSlot& s : readers_) {
      if (s.n.load(std::memory_order_seq_cst) != 0) {
        unlock();
        return false;
      }
    }
    return true;
  }
  void unlock() {
    writer_.store(false, std::memory_order_release);
    writer_.notify_all();
    writers_.unlock();
  }

 private:
  std::array<StripeSlot, kStripes> readers_{};
  alignas(64) std::atomic<bool> writer_{false};
  std::mutex writers_;
};

}  // namespace vde
