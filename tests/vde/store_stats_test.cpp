// What Store::GetIndexStats and GetStats say about the adaptive B+tree and the batched read
// path, through the public API: a sequential load fills its leaves and splits at the end of the
// run; 8-byte keys take the fixed-width encodings, and a leaf holding a 9-byte key does not;
// the split and read-ahead counters count since the store was opened. The facts themselves are
// established at the tree level by tests/index/adaptive_test.cpp and readahead_test.cpp.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <numeric>
#include <string>

#include "tests/test_util.h"
#include "tests/vde/store_test_util.h"
#include "vde/store.h"

namespace vde {
namespace {

constexpr uint64_t kKeys = 50000;

// Integer keys stored big-endian, so that byte order is numeric order.
std::string BigEndian(uint64_t v) {
  std::string k(8, '\0');
  for (size_t i = 0; i < 8; i++) k[7 - i] = static_cast<char>(v >> (8 * i));
  return k;
}

std::unique_ptr<Store> OpenStore(const std::string& path) {
  auto store = Store::Open(path, testing::TestOptions());
  EXPECT_TRUE(store.has_value()) << store.status().ToString();
  return store.has_value() ? std::move(*store) : nullptr;
}

// Puts keys 0 .. kKeys-1 in ascending order, in batches of 1000, each with value(i).
template <typename F>
void AscendingLoad(Store& store, F value) {
  WriteBatch batch;
  for (uint64_t i = 0; i < kKeys; i++) {
    batch.Put(BigEndian(i), value(i));
    if (batch.count() == 1000 || i + 1 == kKeys) {
      Status s = store.Write(batch);
      ASSERT_TRUE(s.ok()) << s.ToString();
      batch.Clear();
    }
  }
}

IndexStats DefaultStats(const Store& store, const char* what) {
  auto st = store.GetIndexStats(Store::kDefaultIndex);
  EXPECT_TRUE(st.has_value()) << st.status().ToString();
  if (!st.has_value()) return {};
  std::printf(
      "[  STATS   ] %s: %llu entries, height %u, fill leaves %.3f inner %.3f; encodings %llu "
      "variable, %llu fixed-keys, %llu fixed-entries; splits %llu/%llu/%llu; read-ahead %llu "
      "windows, max %llu\n",
      what, static_cast<unsigned long long>(st->entries), st->height, st->leaf_fill_factor,
      st->inner_fill_factor, static_cast<unsigned long long>(st->variable_pages),
      static_cast<unsigned long long>(st->fixed_key_pages),
      static_cast<unsigned long long>(st->fixed_entry_pages),
      static_cast<unsigned long long>(st->splits_ascending),
      static_cast<unsigned long long>(st->splits_descending),
      static_cast<unsigned long long>(st->splits_middle),
      static_cast<unsigned long long>(st->readahead_windows),
      static_cast<unsigned long long>(st->readahead_max_window));
  return *st;
}

uint64_t Sum(const std::vector<uint64_t>& v) {
  return std::accumulate(v.begin(), v.end(), uint64_t{0});
}

TEST(StoreStats, AscendingLoadFillsLeavesWithFixedEntries) {
  testing::ScratchDir dir;
  const std::string path = dir.File("s.vdisk");
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  AscendingLoad(*store, [](uint64_t i) { return BigEndian(i * 3 + 1); });
  IndexStats st = DefaultStats(*store, "ascending, 8-byte keys and values");
  EXPECT_EQ(st.entries, kKeys);
  ASSERT_GE(st.height, 2u);
  ASSERT_EQ(st.fill_per_level.size(), st.height);
  ASSERT_EQ(st.pages_per_level.size(), st.height);
  EXPECT_GE(st.leaf_fill_factor, 0.95);
  EXPECT_DOUBLE_EQ(st.fill_per_level[0], st.leaf_fill_factor);
  EXPECT_GT(st.inner_fill_factor, 0.0);
  // Every split was at the end of the run.
  EXPECT_GT(st.splits_ascending, 0u);
  EXPECT_EQ(st.splits_descending, 0u);
  EXPECT_EQ(st.splits_middle, 0u);
  // 8-byte keys and values everywhere: every page, inner ones too, stores fixed-width entries.
  EXPECT_EQ(st.fixed_entry_pages, Sum(st.pages_per_level));
  EXPECT_EQ(st.variable_pages + st.fixed_key_pages, 0u);
  // Nothing read through MultiGet or an iterator yet.
  EXPECT_EQ(st.multi_gets, 0u);
  EXPECT_EQ(st.leaf_batches, 0u);
  EXPECT_EQ(st.readahead_windows, 0u);
  ASSERT_TRUE(store->Close().ok());

  // The layout is on disk; the split counters count since open.
  store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  const IndexStats again = DefaultStats(*store, "reopened");
  EXPECT_EQ(again.pages_per_level, st.pages_per_level);
  EXPECT_EQ(again.fixed_entry_pages, st.fixed_entry_pages);
  EXPECT_DOUBLE_EQ(again.leaf_fill_factor, st.leaf_fill_factor);
  EXPECT_EQ(again.splits_ascending + again.splits_descending + again.splits_middle, 0u);
}

// Values of varying width: the leaves keep fixed-width keys with the values in the heap.
TEST(StoreStats, VaryingValuesLeaveFixedKeyLeaves) {
  testing::ScratchDir dir;
  auto store = OpenStore(dir.File("s.vdisk"));
  ASSERT_NE(store, nullptr);
  AscendingLoad(*store, [](uint64_t i) { return std::string(1 + i % 20, 'v'); });
  const IndexStats st = DefaultStats(*store, "8-byte keys, 1 to 20-byte values");
  EXPECT_GE(st.leaf_fill_factor, 0.95);
  EXPECT_GE(st.fixed_key_pages, st.pages_per_level[0]);
  EXPECT_EQ(st.variable_pages, 0u);
}

// Once every key has a 9-byte sibling, every leaf holds keys of two widths and so takes the
// variable encoding. (Inner pages may keep a fixed one: their separators may all be 8 bytes.)
TEST(StoreStats, NineByteSiblingsMakeEveryLeafVariable) {
  testing::ScratchDir dir;
  auto store = OpenStore(dir.File("s.vdisk"));
  ASSERT_NE(store, nullptr);
  AscendingLoad(*store, [](uint64_t i) { return BigEndian(i); });
  IndexStats st = DefaultStats(*store, "8-byte keys");
  ASSERT_GT(st.fixed_entry_pages, 0u);
  ASSERT_EQ(st.variable_pages, 0u);

  WriteBatch batch;
  for (uint64_t i = 0; i < kKeys; i++) {
    batch.Put(BigEndian(i) + "x", BigEndian(i));
    if (batch.count() == 1000 || i + 1 == kKeys) {
      Status s = store->Write(batch);
      ASSERT_TRUE(s.ok()) << s.ToString();
      batch.Clear();
    }
  }
  st = DefaultStats(*store, "every key with a 9-byte sibling");
  EXPECT_EQ(st.entries, 2 * kKeys);
  const uint64_t leaves = st.pages_per_level[0];
  const uint64_t inner = Sum(st.pages_per_level) - leaves;
  EXPECT_GE(st.variable_pages, leaves);
  EXPECT_LE(st.fixed_key_pages + st.fixed_entry_pages, inner);
  EXPECT_EQ(st.variable_pages + st.fixed_key_pages + st.fixed_entry_pages, leaves + inner);
}

// A scan of a cold store reads ahead: windows in the index's counters, prefetched pages in the
// store's, and the inner pages it descended through stay resident.
TEST(StoreStats, ColdScanReadsAhead) {
  testing::ScratchDir dir;
  const std::string path = dir.File("s.vdisk");
  {
    auto store = OpenStore(path);
    ASSERT_NE(store, nullptr);
    AscendingLoad(*store,
                  [](uint64_t i) { return std::string(40, static_cast<char>('a' + i % 26)); });
    ASSERT_TRUE(store->Close().ok());
  }
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  const StoreStats before = store->GetStats();
  uint64_t n = 0;
  {
    auto it = store->NewIterator();
    for (it->SeekToFirst(); it->Valid(); it->Next()) n++;
    ASSERT_TRUE(it->status().ok()) << it->status().ToString();
  }
  EXPECT_EQ(n, kKeys);
  const StoreStats after = store->GetStats();
  const IndexStats st = DefaultStats(*store, "after a cold scan");
  ASSERT_GT(st.pages_per_level[0], 100u);
  EXPECT_GT(st.readahead_windows, 0u);
  EXPECT_GE(st.readahead_leaves, st.readahead_windows);
  EXPECT_GE(st.readahead_max_window, 2u);
  EXPECT_LE(st.readahead_max_window, 4 * 64u);  // IteratorOptions::readahead_max, x4 in sequence
  EXPECT_GT(after.prefetch_reads, before.prefetch_reads);
  EXPECT_GT(after.prefetch_pages, before.prefetch_pages);
  EXPECT_LE(after.prefetch_used + after.prefetch_wasted, after.prefetch_pages);
  EXPECT_GT(after.cache_inner_pages, 0u);
  EXPECT_EQ(st.multi_gets, 0u);
  // The batch histogram accounts for every batch.
  EXPECT_EQ(
      Sum(std::vector<uint64_t>(after.batch_pages_log2.begin(), after.batch_pages_log2.end())),
      after.batch_reads);
  EXPECT_LE(after.max_batch_pages, after.batch_pages);
}

}  // namespace
}  // namespace vde
