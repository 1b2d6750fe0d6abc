#include "blockdev/striped.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

namespace vde {
namespace {

TEST(StripedCounterTest, StartsAtZeroAndSumsOneThreadsAdds) {
  StripedCounter c;
  EXPECT_EQ(c.Load(), 0u);
  c.Add();
  c.Add(41);
  EXPECT_EQ(c.Load(), 42u);
}

// More threads than stripes, so that some share one: every Add is counted once, and a reader
// running beside them never sees the count go down or past the total.
TEST(StripedCounterTest, CountsEveryAddOfManyThreads) {
  constexpr int kThreads = 2 * static_cast<int>(kStripes) + 3;
  constexpr uint64_t kAdds = 20000;
  constexpr uint64_t kEven = (kThreads + 1) / 2, kOdd = kThreads / 2;
  constexpr uint64_t kTotal = kEven * kAdds + kOdd * kAdds * 3;
  StripedCounter c;
  std::atomic<bool> done{false};
  uint64_t last = 0;
  bool monotonic = true;
  std::thread reader([&] {
    while (!done.load(std::memory_order_acquire)) {
      const uint64_t now = c.Load();
      if (now < last || now > kTotal) monotonic = false;
      last = now;
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; t++) {
    writers.emplace_back([&, t] {
      for (uint64_t i = 0; i < kAdds; i++) c.Add(t % 2 == 0 ? 1 : 3);
    });
  }
  for (std::thread& w : writers) w.join();
  done.store(true, std::memory_order_release);
  reader.join();
  EXPECT_EQ(c.Load(), kTotal);
  EXPECT_TRUE(monotonic);
}

TEST(StripedCounterTest, StripesAreCacheLinesApart) {
  EXPECT_GE(sizeof(StripedCounter), kStripes * 64);
  EXPECT_EQ(alignof(StripedCounter) % 64, 0u);
}

// Readers under the shared lock must never see a writer's change half made, nor writers each
// other's: the writers move units between two plain (non-atomic) fields under the exclusive
// lock, and every reader checks the sum under the shared lock. More threads than slots, so
// some readers share one; some threads both read and write. (A broken exclusion shows as a
// wrong sum here, and as a data race under ThreadSanitizer.)
TEST(StripedSharedMutexTest, ReadersNeverSeeAWriteHalfDone) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  StripedSharedMutex mu;
  int64_t a = 1000, b = 0;  // a + b == 1000 outside the exclusive lock
  uint64_t writes = 0;
  constexpr int kThreads = static_cast<int>(kStripes) + 4;
  std::vector<std::thread> threads;
  std::vector<int> torn(kThreads, 0), reads(kThreads, 0);
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + static_cast<uint64_t>(t));
      for (int i = 0; i < 3000; i++) {
        if (t % 4 == 0 && rng() % 16 == 0) {
          std::unique_lock lk(mu);
          const int64_t move = static_cast<int64_t>(rng() % 7) - 3;
          a -= move;
          std::this_thread::yield();  // widen the window a reader could see
          b += move;
          writes++;
        } else {
          std::shared_lock lk(mu);
          if (a + b != 1000) torn[t]++;
          reads[t]++;
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  int all_torn = 0, all_reads = 0;
  for (int t = 0; t < kThreads; t++) {
    all_torn += torn[t];
    all_reads += reads[t];
  }
  EXPECT_EQ(all_torn, 0);
  EXPECT_GT(all_reads, 0);
  EXPECT_GT(writes, 0u);
  EXPECT_EQ(a + b, 1000);
}

// Many readers at once: a shared lock never waits for another shared lock.
TEST(StripedSharedMutexTest, ReadersHoldItTogether) {
  StripedSharedMutex mu;
  std::shared_lock first(mu);
  std::thread other([&] {
    std::shared_lock second(mu, std::try_to_lock);  // another thread's reader gets in too
    EXPECT_TRUE(second.owns_lock());
    std::unique_lock writer(mu, std::try_to_lock);  // not a writer, while readers hold it
    EXPECT_FALSE(writer.owns_lock());
  });
  other.join();
  std::unique_lock writer(mu, std::try_to_lock);  // nor one on the reader's own thread
  EXPECT_FALSE(writer.owns_lock());
  first.unlock();
  writer.try_lock();  // every reader gone: the writer gets in
  EXPECT_TRUE(writer.owns_lock());
}

TEST(StripedSharedMutexTest, AWriterKeepsEveryoneElseOut) {
  StripedSharedMutex mu;
  std::unique_lock writer(mu);
  std::thread other([&] {
    std::shared_lock reader(mu, std::try_to_lock);
    EXPECT_FALSE(reader.owns_lock());
    std::unique_lock second(mu, std::try_to_lock);
    EXPECT_FALSE(second.owns_lock());
  });
  other.join();
  writer.unlock();
  std::thread after([&] {
    std::shared_lock reader(mu, std::try_to_lock);  // and lets them in when it leaves
    EXPECT_TRUE(reader.owns_lock());
  });
  after.join();
}

}  // namespace
}  // namespace vde
