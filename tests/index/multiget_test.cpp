// BTree::MultiGet against a std::map model and against Get, with cold caches; the number of
// device batches a cold MultiGet takes; inner pages staying resident under leaf-heavy reads.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "blockdev/aligned_buffer.h"
#include "blockdev/open_block_device.h"
#include "index/btree.h"
#include "tests/index/btree_fixture.h"

namespace vde::index {
namespace {

using testing::Model;

class MultiGetTest : public testing::BTreeFixture {
 protected:
  static std::string Key(uint64_t i) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "key%08llu", static_cast<unsigned long long>(i));
    return buf;
  }
  // ~100-byte values; every 40th stored key (i / 2 % 40 == 3) has one out of line (KiBs).
  static bool OutOfLine(uint64_t i) { return i / 2 % 40 == 3; }
  static std::string Value(uint64_t i) {
    std::string v = OutOfLine(i) ? std::string(1500 + i % 3000, 'o') : std::string(100, 'v');
    std::snprintf(v.data(), v.size(), "%llu", static_cast<unsigned long long>(i));
    return v;
  }
  // Fills a tree with keys 0, 2, 4, ... (odd keys are missing) and the model with them.
  void Fill(BTree* tree, Model* model, uint64_t n) {
    for (uint64_t i = 0; i < n; i += 2) {
      ASSERT_TRUE(tree->Put(Key(i), Value(i)).ok());
      (*model)[Key(i)] = Value(i);
    }
  }
  // Checks a MultiGet of `keys` against the model and against Get, key by key.
  static void ExpectMultiGetMatches(const BTree& tree, const Model& model,
                                    const std::vector<std::string>& keys) {
    std::vector<std::string_view> views(keys.begin(), keys.end());
    std::vector<std::string> values;
    std::vector<Status> statuses;
    Status all = tree.MultiGet(views, &values, &statuses);
    ASSERT_TRUE(all.ok()) << all.ToString();
    ASSERT_EQ(values.size(), keys.size());
    ASSERT_EQ(statuses.size(), keys.size());
    std::string got;
    for (size_t i = 0; i < keys.size(); i++) {
      auto it = model.find(keys[i]);
      Status one = tree.Get(keys[i], &got);
      if (it == model.end()) {
        ASSERT_TRUE(statuses[i].IsNotFound()) << keys[i] << ": " << statuses[i].ToString();
        ASSERT_TRUE(one.IsNotFound());
      } else {
        ASSERT_TRUE(statuses[i].ok()) << keys[i] << ": " << statuses[i].ToString();
        ASSERT_EQ(values[i], it->second) << keys[i];
        ASSERT_TRUE(one.ok());
        ASSERT_EQ(got, values[i]);
      }
    }
  }
};

TEST_F(MultiGetTest, MatchesTheModelAndGetForBatchesOfOneToAThousand) {
  const uint64_t seed = ::vde::testing::TestSeed();
  std::mt19937_64 rng(seed);
  NewCache(512);  // 2 MiB, smaller than the tree: chunks of 128 keys, pages evicted between
  auto tree = NewTree();
  Model model;
  Fill(tree.get(), &model, 40000);
  for (size_t batch : {1, 2, 3, 17, 64, 128, 129, 500, 1000}) {
    SCOPED_TRACE("batch " + std::to_string(batch) + " seed " + std::to_string(seed));
    Reopen(&tree);  // a fresh, cold cache
    std::vector<std::string> keys;
    for (size_t i = 0; i < batch; i++) {
      switch (rng() % 6) {
        case 0:  // repeat an earlier key of the batch
          keys.push_back(keys.empty() ? Key(0) : keys[rng() % keys.size()]);
          break;
        case 1:  // a key that is absent (odd, past the end, or before the first)
          keys.push_back(rng() % 2 ? Key(2 * (rng() % 20000) + 1) : "zzz" + Key(rng() % 9));
          break;
        default:
          keys.push_back(Key(2 * (rng() % 20000)));
      }
    }
    ExpectMultiGetMatches(*tree, model, keys);
  }
  // Out-of-line values only, cold: read with one ReadBatch after the leaves.
  Reopen(&tree);
  std::vector<std::string> big;
  for (uint64_t i = 6; big.size() < 30; i += 80) big.push_back(Key(i));
  const BTreeReadStats before = tree->read_stats();
  ExpectMultiGetMatches(*tree, model, big);
  const BTreeReadStats after = tree->read_stats();
  EXPECT_EQ(after.overflow_batches, before.overflow_batches + 1);
  EXPECT_EQ(after.overflow_values_read, before.overflow_values_read + big.size());
}

TEST_F(MultiGetTest, EmptyInvalidAndDestroyed) {
  auto tree = NewTree();
  std::vector<std::string> values = {"stale"};
  std::vector<Status> statuses;
  ASSERT_TRUE(tree->MultiGet({}, &values, &statuses).ok());
  EXPECT_TRUE(values.empty());
  EXPECT_TRUE(statuses.empty());
  ASSERT_TRUE(tree->Put("a", "1").ok());
  const std::string too_long(tree->max_key_size() + 1, 'x');
  std::vector<std::string_view> keys = {"a", "", too_long, "b", "a"};
  Status all = tree->MultiGet(keys, &values, &statuses);
  EXPECT_TRUE(all.IsInvalidArgument()) << all.ToString();
  ASSERT_EQ(statuses.size(), 5u);
  EXPECT_TRUE(statuses[0].ok());
  EXPECT_EQ(values[0], "1");
  EXPECT_TRUE(statuses[1].IsInvalidArgument());
  EXPECT_TRUE(statuses[2].IsInvalidArgument());
  EXPECT_TRUE(statuses[3].IsNotFound());
  EXPECT_TRUE(statuses[4].ok());
  EXPECT_EQ(values[4], "1");
  ASSERT_TRUE(tree->Destroy().ok());
  EXPECT_TRUE(tree->MultiGet(keys, &values, &statuses).IsInvalidArgument());
  EXPECT_TRUE(statuses[0].IsInvalidArgument());
}

// The rule: with the inner pages resident, a MultiGet of k <= frames/4 keys reads all of its
// missing leaves with one ReadBatch (and its out-of-line values, if any, with one more).
TEST_F(MultiGetTest, ColdLeavesAreReadWithOneBatch) {
  NewCache(4096);
  auto tree = NewTree();
  Model model;
  Fill(tree.get(), &model, 80000);
  ASSERT_GE(tree->height(), 3u);
  Reopen(&tree);
  // Warm the inner levels: one key per ~4 leaves reaches every inner page. Everything but the
  // root (read by Open) is cold, so that is one batch per level below the root.
  std::vector<std::string> warm;
  for (uint64_t i = 0; i < 80000; i += 256) warm.push_back(Key(i));
  {
    std::vector<std::string_view> views(warm.begin(), warm.end());
    std::vector<std::string> values;
    std::vector<Status> statuses;
    const uint64_t before = dev_->stats().batches;
    ASSERT_TRUE(tree->MultiGet(views, &values, &statuses).ok());
    EXPECT_EQ(dev_->stats().batches - before, tree->height() - 1u);
    EXPECT_EQ(tree->read_stats().inner_batches, tree->height() - 2u);
  }
  ExpectMultiGetMatches(*tree, model, warm);
  // Keys in leaves the warm-up did not touch, with values inline: one leaf batch, nothing else.
  std::vector<std::string> cold;
  for (uint64_t i = 128; cold.size() < 64; i += 1024) cold.push_back(Key(i));
  for (const std::string& k : cold) ASSERT_EQ(model[k].size(), 100u) << "inline values only";
  std::vector<std::string_view> views(cold.begin(), cold.end());
  std::vector<std::string> values;
  std::vector<Status> statuses;
  const BTreeReadStats rs = tree->read_stats();
  const uint64_t device_batches = dev_->stats().batches;
  const uint64_t cache_batches = cache_->stats().batch_reads;
  ASSERT_TRUE(tree->MultiGet(views, &values, &statuses).ok());
  const BTreeReadStats rs2 = tree->read_stats();
  EXPECT_EQ(dev_->stats().batches, device_batches + 1) << "one ReadBatch for every cold leaf";
  EXPECT_EQ(cache_->stats().batch_reads, cache_batches + 1);
  EXPECT_EQ(rs2.inner_batches, rs.inner_batches) << "the inner pages were resident";
  EXPECT_EQ(rs2.leaf_batches, rs.leaf_batches + 1);
  EXPECT_EQ(rs2.leaves_read, rs.leaves_read + 64) << "64 keys in 64 distinct cold leaves";
  EXPECT_GE(rs2.max_leaves_per_batch, 64u);
  for (size_t i = 0; i < cold.size(); i++) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].ToString();
    EXPECT_EQ(values[i], model[cold[i]]);
  }
  // Again: everything is resident now, so no device batch at all.
  ASSERT_TRUE(tree->MultiGet(views, &values, &statuses).ok());
  EXPECT_EQ(dev_->stats().batches, device_batches + 1);
}

// The same rule on a real file through OpenBlockDevice (io_uring where available): one device
// submission (io_uring_enter) for 64 cold leaves, within the ring's queue depth.
TEST_F(MultiGetTest, ColdLeavesTakeOneSubmissionOnTheFileDevice) {
  ::vde::testing::ScratchDir dir;
  blockdev::DeviceOptions o;
  o.mode = blockdev::OpenMode::kCreate;
  o.create_blocks = 64;
  auto opened = blockdev::OpenBlockDevice(dir.File("mget.vdisk"), o);
  ASSERT_TRUE(opened.has_value()) << opened.status().ToString();
  if (opened->backend != blockdev::Backend::kIoUring) {
    GTEST_SKIP() << "io_uring unavailable (" << opened->reason << ")";
  }
  std::unique_ptr<blockdev::BlockDevice> device = std::move(opened->device);
  testing::TestBlockSource source(device.get());
  Model model;
  uint64_t root = 0;
  {
    PageCacheOptions po;
    po.budget_bytes = PageCache::BudgetFor(4096, kBs);
    po.register_memory = false;  // this cache dies before the device
    auto cache = PageCache::Create(device.get(), po);
    ASSERT_TRUE(cache.has_value());
    auto tree = BTree::Create(cache->get(), &source);
    ASSERT_TRUE(tree.has_value());
    Fill(tree->get(), &model, 80000);
    ASSERT_TRUE((*tree)->FlushAll().ok());
    root = (*tree)->root();
  }
  PageCacheOptions po;
  po.budget_bytes = PageCache::BudgetFor(4096, kBs);
  po.register_memory = false;
  auto cache = PageCache::Create(device.get(), po);
  ASSERT_TRUE(cache.has_value());
  auto tree = BTree::Open(cache->get(), &source, root);
  ASSERT_TRUE(tree.has_value());
  std::vector<std::string> warm, cold;
  for (uint64_t i = 0; i < 80000; i += 256) warm.push_back(Key(i));
  for (uint64_t i = 128; cold.size() < 64; i += 1024) cold.push_back(Key(i));
  ExpectMultiGetMatches(**tree, model, warm);
  std::vector<std::string_view> views(cold.begin(), cold.end());
  std::vector<std::string> values;
  std::vector<Status> statuses;
  const blockdev::DeviceStats before = device->stats();
  ASSERT_TRUE((*tree)->MultiGet(views, &values, &statuses).ok());
  const blockdev::DeviceStats after = device->stats();
  EXPECT_EQ(after.batches - before.batches, 1u) << "one ReadBatch for the leaves";
  EXPECT_EQ(after.submissions - before.submissions, 1u) << "one io_uring_enter";
  EXPECT_EQ(after.reads - before.reads, 64u);
  for (size_t i = 0; i < cold.size(); i++) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].ToString();
    EXPECT_EQ(values[i], model[cold[i]]);
  }
  tree->reset();
  cache->reset();
}

TEST_F(MultiGetTest, CorruptLeafFailsOnlyItsKeys) {
  auto tree = NewTree();
  Model model;
  Fill(tree.get(), &model, 6000);
  const std::vector<uint64_t> leaves = LeafBlocks(*tree);
  ASSERT_GE(leaves.size(), 4u);
  Reopen(&tree);
  AlignedBuffer buf(kBs, 4096);
  const uint64_t bad = leaves[leaves.size() / 2];
  ASSERT_TRUE(dev_->Read(bad, 1, buf.span()).ok());
  buf.data()[kBs - 10] ^= std::byte{4};
  ASSERT_TRUE(dev_->inner()->Write(bad, 1, buf.span()).ok());
  std::vector<std::string> keys;
  for (const auto& kv : model) keys.push_back(kv.first);
  std::vector<std::string_view> views(keys.begin(), keys.end());
  std::vector<std::string> values;
  std::vector<Status> statuses;
  Status all = tree->MultiGet(views, &values, &statuses);
  EXPECT_TRUE(all.IsCorruption()) << all.ToString();
  size_t corrupt = 0;
  for (size_t i = 0; i < keys.size(); i++) {
    if (statuses[i].ok()) {
      ASSERT_EQ(values[i], model[keys[i]]);
      continue;
    }
    ASSERT_TRUE(statuses[i].IsCorruption()) << statuses[i].ToString();
    EXPECT_NE(statuses[i].ToString().find("block " + std::to_string(bad) + " of test.vdisk"),
              std::string::npos)
        << statuses[i].ToString();
    corrupt++;
  }
  EXPECT_GT(corrupt, 0u);
  EXPECT_LT(corrupt, keys.size() / 4);
}

// Readers run MultiGet and Get on a small cache while a writer rewrites the values; every value
// a reader sees is one the writer wrote for that key.
TEST_F(MultiGetTest, ConcurrentWithWritersOnASmallCache) {
  const uint64_t seed = ::vde::testing::TestSeed();
  NewCache(128);
  auto tree = NewTree();
  constexpr uint64_t kKeys = 3000;
  auto value_of = [](uint64_t key, uint64_t version) {
    return Key(key) + "|" + std::to_string(version) + std::string(key % 7 == 0 ? 1200 : 30, '.');
  };
  for (uint64_t i = 0; i < kKeys; i++) ASSERT_TRUE(tree->Put(Key(i), value_of(i, 0)).ok());
  std::atomic<bool> stop{false}, failed{false};
  const int rounds = testing::LongTests() ? 20000 : 1500;
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    std::mt19937_64 rng(seed);
    for (int i = 0; i < rounds * 4 && !failed; i++) {
      const uint64_t k = rng() % kKeys;
      Status s = tree->Put(Key(k), value_of(k, i + 1));
      if (!s.ok()) {
        failed = true;
        ADD_FAILURE() << s.ToString();
      }
    }
    stop = true;
  });
  for (int r = 0; r < 2; r++) {
    threads.emplace_back([&, r] {
      std::mt19937_64 rng(seed + 1 + r);
      std::vector<std::string> keys;
      std::vector<std::string> values;
      std::vector<Status> statuses;
      while (!stop && !failed) {
        keys.clear();
        const size_t n = 1 + rng() % 100;
        for (size_t i = 0; i < n; i++) keys.push_back(Key(rng() % (kKeys + 50)));
        std::vector<std::string_view> views(keys.begin(), keys.end());
        Status all = tree->MultiGet(views, &values, &statuses);
        if (!all.ok()) {
          failed = true;
          ADD_FAILURE() << all.ToString();
          return;
        }
        for (size_t i = 0; i < n; i++) {
          const bool present = keys[i] < Key(kKeys);
          const bool good = present ? statuses[i].ok() && values[i].rfind(keys[i] + "|", 0) == 0
                                    : statuses[i].IsNotFound();
          if (!good) {
            failed = true;
            ADD_FAILURE() << keys[i] << ": " << statuses[i].ToString() << " " << values[i];
            return;
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_FALSE(failed);
}

// With the inner levels resident, a random Get on a tree ten times larger than the cache
// costs about one read: eviction spares inner pages.
TEST_F(MultiGetTest, InnerPagesStayResidentUnderRandomLeafReads) {
  const uint64_t seed = ::vde::testing::TestSeed();
  std::mt19937_64 rng(seed);
  auto tree = NewTree();
  Model model;
  Fill(tree.get(), &model, 80000);
  auto st = tree->GetStats();
  ASSERT_TRUE(st.has_value());
  uint64_t inner = 0;
  for (size_t l = 1; l < st->pages_per_level.size(); l++) inner += st->pages_per_level[l];
  const uint64_t leaves = st->pages_per_level[0];
  ASSERT_GE(leaves, 1000u);
  frames_ = static_cast<uint32_t>(leaves / 10);
  Reopen(&tree);  // with a cache of frames_ frames
  std::string v;
  for (int i = 0; i < 2000; i++) {  // warm up
    ASSERT_TRUE(tree->Get(Key(2 * (rng() % 40000)), &v).ok());
  }
  const PageCacheStats before = cache_->stats();
  constexpr int kGets = 5000;
  for (int i = 0; i < kGets; i++) {
    ASSERT_TRUE(tree->Get(Key(2 * (rng() % 40000)), &v).ok());
  }
  const PageCacheStats after = cache_->stats();
  const double misses_per_get = static_cast<double>(after.misses - before.misses) / kGets;
  EXPECT_LE(misses_per_get, 1.0) << "seed " << seed;
  EXPECT_GE(misses_per_get, 0.7) << "the cache holds a tenth of the leaves";
  EXPECT_EQ(after.inner_pages, inner) << "every inner page resident";
}

}  // namespace
}  // namespace vde::index
