// The page cache budget holds: loading ten times the budget, reading it back at random and
// scanning it all, the process's resident memory stays within the budget plus a small constant.
// Measured from /proc/self/statm (resident pages), sampled throughout; the figures are printed.
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>

#include "tests/test_util.h"
#include "tests/vde/store_test_util.h"
#include "vde/store.h"

namespace vde {
namespace {

uint64_t ResidentBytes() {
  std::ifstream f("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

std::string KeyOf(uint64_t i) {
  char buf[48];
  // A bijective scramble of i, so the load goes in random key order.
  uint64_t x = (i * 0x9E3779B97F4A7C15ull) & 0xFFFFFFFFFFull;
  std::snprintf(buf, sizeof buf, "key%012llx-%llu", static_cast<unsigned long long>(x),
                static_cast<unsigned long long>(i));
  return buf;
}

std::string ValueOf(uint64_t i) {
  // Mostly 200 bytes; every 50th value out of line.
  std::string v(i % 50 == 0 ? 4000 : 200, static_cast<char>('a' + i % 26));
  std::memcpy(v.data(), &i, sizeof i);
  return v;
}

TEST(StoreCache, BudgetHoldsWithTenTimesTheDataOnDisk) {
  if (testing::kSanitizerBuild) {
    GTEST_SKIP() << "RSS under a sanitizer counts its shadow memory and quarantine, not ours";
  }
  constexpr uint64_t kBudget = 4ull << 20;
  constexpr uint64_t kSlack = 4ull << 20;  // allocator bitmap, heap, the test's own strings
  const uint64_t data_bytes = 10 * kBudget;
  testing::ScratchDir dir;
  const std::string path = dir.File("cache.vdisk");

  const uint64_t before = ResidentBytes();
  uint64_t peak = before;
  auto sample = [&]() { peak = std::max(peak, ResidentBytes()); };

  Options o = testing::TestOptions(kBudget);
  o.growth_step_bytes = 16ull << 20;
  auto store = std::move(*Store::Open(path, o));
  const uint64_t after_open = ResidentBytes();
  sample();

  uint64_t n = 0, loaded = 0;
  while (loaded < data_bytes) {
    const std::string k = KeyOf(n), v = ValueOf(n);
    ASSERT_TRUE(store->Put(k, v).ok()) << n;
    loaded += k.size() + v.size();
    n++;
    if (n % 10000 == 0) sample();
    if (n % 100000 == 0) {
      ASSERT_TRUE(store->Checkpoint().ok());
    }
  }
  ASSERT_TRUE(store->Checkpoint().ok());
  sample();
  const uint64_t after_load = ResidentBytes();

  std::mt19937_64 rng(testing::TestSeed());
  std::string got;
  for (int i = 0; i < 50000; i++) {
    const uint64_t j = rng() % n;
    ASSERT_TRUE(store->Get(KeyOf(j), &got).ok());
    ASSERT_EQ(got, ValueOf(j));
    if (i % 5000 == 0) sample();
  }
  uint64_t scanned = 0;
  auto it = store->NewIterator();
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (++scanned % 20000 == 0) sample();
  }
  ASSERT_TRUE(it->status().ok());
  EXPECT_EQ(scanned, n);
  it.reset();
  sample();

  const StoreStats st = store->GetStats();
  const uint64_t on_disk = (st.used_blocks) * st.block_size;
  std::printf(
      "budget %.1f MiB (cache holds %.1f MiB); %llu entries, %.1f MiB of keys and values, "
      "%.1f MiB of blocks on disk\n"
      "RSS: before open %.1f MiB, after open %.1f MiB, after load %.1f MiB, peak %.1f MiB; "
      "growth %.1f MiB (limit budget + %.0f MiB)\n"
      "cache: %llu hits, %llu misses, %llu pages read, %llu written, %llu evictions\n",
      kBudget / 1048576.0, st.cache_bytes / 1048576.0, static_cast<unsigned long long>(n),
      loaded / 1048576.0, on_disk / 1048576.0, before / 1048576.0, after_open / 1048576.0,
      after_load / 1048576.0, peak / 1048576.0, (peak - before) / 1048576.0, kSlack / 1048576.0,
      static_cast<unsigned long long>(st.cache_hits),
      static_cast<unsigned long long>(st.cache_misses),
      static_cast<unsigned long long>(st.pages_read),
      static_cast<unsigned long long>(st.pages_written),
      static_cast<unsigned long long>(st.evictions));
  EXPECT_LE(st.cache_bytes, kBudget);
  EXPECT_GE(on_disk, 10 * kBudget);
  EXPECT_GT(st.evictions, 0u);
  EXPECT_LE(peak - before, kBudget + kSlack);
}

}  // namespace
}  // namespace vde
