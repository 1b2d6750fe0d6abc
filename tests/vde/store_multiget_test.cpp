// Store::MultiGet: answers compared with a std::map model (batches of 1 to 1000 keys, missing,
// repeated and invalid keys, out-of-line values, named and dropped indexes, a store reopened
// cold with a tiny cache), and the batching itself, seen through StoreStats: every page on the
// batch's paths pinned once, every cold leaf read in one device batch. VDE_TEST_SEED replays a
// run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "index/page_cache.h"
#include "tests/test_util.h"
#include "tests/vde/store_test_util.h"
#include "vde/store.h"

namespace vde {
namespace {

using testing::Model;
using testing::OpenStore;
using testing::ScratchDir;
using testing::TestOptions;

// The smallest cache a store of 4 KiB blocks accepts: 16 frames, so 4 keys per chunk.
Options TinyCacheOptions() {
  return TestOptions(index::PageCache::BudgetFor(index::PageCache::kMinFrames, 4096));
}

std::vector<std::string_view> Views(const std::vector<std::string>& keys) {
  return std::vector<std::string_view>(keys.begin(), keys.end());
}

// MultiGet of `keys` in `index` (through the overload without an index when `use_default`),
// every answer checked against `model`. The output vectors start out holding junk.
void ExpectMatchesModel(const Store& store, const Index& index, bool use_default,
                        const std::vector<std::string>& keys, const Model& model) {
  const std::vector<std::string_view> views = Views(keys);
  std::vector<std::string> values(3, "junk");
  std::vector<Status> statuses(keys.size() + 5, Status::Corruption("junk"));
  const Status s = use_default ? store.MultiGet(views, &values, &statuses)
                               : store.MultiGet(index, views, &values, &statuses);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(values.size(), keys.size());
  ASSERT_EQ(statuses.size(), keys.size());
  for (size_t i = 0; i < keys.size(); i++) {
    auto it = model.find(keys[i]);
    if (it == model.end()) {
      ASSERT_TRUE(statuses[i].IsNotFound())
          << "key " << i << " " << keys[i] << ": " << statuses[i].ToString();
      ASSERT_NE(statuses[i].message().find("index '" + index.name() + "'"), std::string::npos)
          << statuses[i].ToString();
      ASSERT_TRUE(values[i].empty()) << keys[i];
    } else {
      ASSERT_TRUE(statuses[i].ok())
          << "key " << i << " " << keys[i] << ": " << statuses[i].ToString();
      ASSERT_EQ(values[i], it->second) << "key " << i << " " << keys[i];
    }
  }
}

// `n` keys: mostly present ones, some random (mostly missing), some repeats of earlier ones.
std::vector<std::string> RandomBatch(std::mt19937_64& rng, const std::vector<std::string>& present,
                                     size_t n, uint32_t max_key) {
  std::vector<std::string> batch;
  batch.reserve(n);
  while (batch.size() < n) {
    const unsigned r = rng() % 10;
    if (r < 6 && !present.empty()) {
      batch.push_back(present[rng() % present.size()]);
    } else if (r < 8 || batch.empty()) {
      batch.push_back("missing-" + testing::RandomKey(rng, max_key - 8));
    } else {
      batch.push_back(batch[rng() % batch.size()]);
    }
  }
  return batch;
}

std::vector<std::string> KeysOf(const Model& model) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : model) keys.push_back(k);
  return keys;
}

TEST(StoreMultiGet, MatchesModelInBatchesOfOneToAThousand) {
  ScratchDir dir;
  const std::string path = dir.File("s.vdisk");
  std::mt19937_64 rng(testing::TestSeed());
  Model model;
  {
    auto store = OpenStore(path);
    ASSERT_NE(store, nullptr);
    const uint32_t max_key = store->max_key_size();
    for (uint64_t op = 0; op < 20000; op++) {
      const std::string k = testing::RandomKey(rng, max_key);
      if (rng() % 100 < 15) {
        ASSERT_TRUE(store->Delete(k).ok());
        model.erase(k);
        continue;
      }
      std::string v = testing::RandomValue(rng, op);
      if (op % 97 == 0) v.assign(10 << 10, static_cast<char>('a' + op % 26));  // out of line
      ASSERT_TRUE(store->Put(k, v).ok()) << k;
      model[k] = std::move(v);
    }
    ASSERT_TRUE(store->Close().ok());
  }

  std::vector<size_t> sizes = {1, 2, 3, 10, 64, 100, 257, 999, 1000};
  for (int i = 0; i < 8; i++) sizes.push_back(1 + rng() % 1000);
  const std::vector<std::string> present = KeysOf(model);
  // Warm (a cache larger than the data), then cold: reopened with the smallest cache.
  for (const Options& o : {TestOptions(), TinyCacheOptions()}) {
    SCOPED_TRACE(o.cache_bytes);
    auto store = OpenStore(path, o);
    ASSERT_NE(store, nullptr);
    const uint64_t gets_before = store->GetStats().gets;
    uint64_t asked = 0;
    for (size_t i = 0; i < sizes.size(); i++) {
      SCOPED_TRACE("batch of " + std::to_string(sizes[i]));
      const std::vector<std::string> batch =
          RandomBatch(rng, present, sizes[i], store->max_key_size());
      ExpectMatchesModel(*store, store->default_index(), i % 2 == 0, batch, model);
      asked += batch.size();
    }
    // Every present key once, in a random order, in one call.
    std::vector<std::string> all = present;
    std::shuffle(all.begin(), all.end(), rng);
    ExpectMatchesModel(*store, store->default_index(), false, all, model);
    asked += all.size();
    const StoreStats st = store->GetStats();
    EXPECT_EQ(st.gets - gets_before, asked);  // each key counts as a get
    if (o.cache_bytes < TestOptions().cache_bytes) {
      EXPECT_GT(st.evictions, 0u);
    }
    ASSERT_TRUE(store->Close().ok());
  }
}

TEST(StoreMultiGet, RepeatedKeysInAnyOrder) {
  ScratchDir dir;
  auto store = OpenStore(dir.File("s.vdisk"));
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put("a", "1").ok());
  ASSERT_TRUE(store->Put("b", "").ok());
  ASSERT_TRUE(store->Put("c", "3").ok());
  const std::vector<std::string> keys = {"c", "a", "zz", "c", "b", "a", "zz", "c"};
  std::vector<std::string> values;
  std::vector<Status> statuses;
  ASSERT_TRUE(store->MultiGet(Views(keys), &values, &statuses).ok());
  EXPECT_EQ(values, (std::vector<std::string>{"3", "1", "", "3", "", "1", "", "3"}));
  for (size_t i = 0; i < keys.size(); i++) {
    EXPECT_EQ(statuses[i].IsNotFound(), keys[i] == "zz") << i << statuses[i].ToString();
    EXPECT_EQ(statuses[i].ok(), keys[i] != "zz") << i << statuses[i].ToString();
  }

  // An empty batch is OK and empties the outputs.
  values.assign(2, "junk");
  statuses.assign(2, Status::Corruption("junk"));
  ASSERT_TRUE(store->MultiGet({}, &values, &statuses).ok());
  EXPECT_TRUE(values.empty());
  EXPECT_TRUE(statuses.empty());
}

TEST(StoreMultiGet, InvalidKeysFailOnlyThemselves) {
  ScratchDir dir;
  auto store = OpenStore(dir.File("s.vdisk"));
  ASSERT_NE(store, nullptr);
  const uint32_t max_key = store->max_key_size();
  const std::string longest(max_key, 'm');
  ASSERT_TRUE(store->Put("a", "va").ok());
  ASSERT_TRUE(store->Put("b", "vb").ok());
  ASSERT_TRUE(store->Put(longest, "vm").ok());
  const std::vector<std::string> keys = {"a",       "",     "b", std::string(max_key + 1, 'x'),
                                         "missing", longest};
  std::vector<std::string> values;
  std::vector<Status> statuses;
  const Status s = store->MultiGet(Views(keys), &values, &statuses);
  // The first error that is not NotFound, in key order: the empty key.
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.message().find("empty key"), std::string::npos) << s.ToString();
  ASSERT_EQ(statuses.size(), keys.size());
  EXPECT_TRUE(statuses[0].ok()) << statuses[0].ToString();
  EXPECT_TRUE(statuses[1].IsInvalidArgument()) << statuses[1].ToString();
  EXPECT_TRUE(statuses[2].ok()) << statuses[2].ToString();
  EXPECT_TRUE(statuses[3].IsInvalidArgument()) << statuses[3].ToString();
  EXPECT_NE(statuses[3].message().find(std::to_string(max_key)), std::string::npos)
      << statuses[3].ToString();  // names the limit
  EXPECT_TRUE(statuses[4].IsNotFound()) << statuses[4].ToString();
  EXPECT_TRUE(statuses[5].ok()) << statuses[5].ToString();
  EXPECT_EQ(values, (std::vector<std::string>{"va", "", "vb", "", "", "vm"}));
}

TEST(StoreMultiGet, OutOfLineValuesWarmAndCold) {
  ScratchDir dir;
  const std::string path = dir.File("s.vdisk");
  std::mt19937_64 rng(testing::TestSeed());
  auto bytes = [&](size_t n) {
    std::string v(n, '\0');
    for (char& c : v) c = static_cast<char>(rng());
    return v;
  };
  Model blobs, plain;
  {
    auto store = OpenStore(path);
    ASSERT_NE(store, nullptr);
    IndexOptions io;
    io.max_inline_value = 100;
    auto idx = store->CreateIndex("blobs", io);
    ASSERT_TRUE(idx.has_value()) << idx.status().ToString();
    const size_t sizes[] = {0, 1, 100, 101, 884, 885, 4096, 10 << 10, 100 << 10, 1 << 20};
    for (int i = 0; i < 40; i++) {
      const std::string k = "blob" + std::to_string(i);
      blobs[k] = bytes(sizes[i % std::size(sizes)]);
      ASSERT_TRUE(store->Put(*idx, k, blobs[k]).ok());
      plain[k] = bytes(i % 2 == 0 ? 10 << 10 : 50);  // the default index: 10 KiB out of line
      ASSERT_TRUE(store->Put(k, plain[k]).ok());
    }
    ASSERT_TRUE(store->Close().ok());
  }
  std::vector<std::string> keys = KeysOf(blobs);
  keys.push_back("blob-missing");
  keys.push_back("blob7");
  std::shuffle(keys.begin(), keys.end(), rng);
  for (const Options& o : {TestOptions(), TinyCacheOptions()}) {
    SCOPED_TRACE(o.cache_bytes);
    auto store = OpenStore(path, o);
    ASSERT_NE(store, nullptr);
    auto idx = store->OpenIndex("blobs");
    ASSERT_TRUE(idx.has_value()) << idx.status().ToString();
    ExpectMatchesModel(*store, *idx, false, keys, blobs);
    ExpectMatchesModel(*store, store->default_index(), true, keys, plain);
    ASSERT_TRUE(store->Close().ok());
  }
}

TEST(StoreMultiGet, NamedAndDroppedIndexes) {
  ScratchDir dir;
  auto store = OpenStore(dir.File("s.vdisk"));
  ASSERT_NE(store, nullptr);
  auto users = store->CreateIndex("users");
  ASSERT_TRUE(users.has_value()) << users.status().ToString();
  Model in_users, in_default;
  for (int i = 0; i < 300; i++) {
    const std::string k = "user:" + std::to_string(i);
    in_users[k] = "u" + std::to_string(i);
    ASSERT_TRUE(store->Put(*users, k, in_users[k]).ok());
    if (i % 3 == 0) {
      in_default[k] = "d" + std::to_string(i);
      ASSERT_TRUE(store->Put(k, in_default[k]).ok());
    }
  }
  std::vector<std::string> keys = KeysOf(in_users);
  keys.push_back("user:none");
  ExpectMatchesModel(*store, *users, false, keys, in_users);
  ExpectMatchesModel(*store, store->default_index(), true, keys, in_default);

  ASSERT_TRUE(store->DropIndex("users").ok());
  std::vector<std::string> values;
  std::vector<Status> statuses;
  Status s = store->MultiGet(*users, Views(keys), &values, &statuses);
  EXPECT_TRUE(s.IsNotFound()) << s.ToString();
  EXPECT_NE(s.message().find("was dropped"), std::string::npos) << s.ToString();
  ASSERT_EQ(statuses.size(), keys.size());
  ASSERT_EQ(values.size(), keys.size());
  for (size_t i = 0; i < keys.size(); i++) {
    EXPECT_TRUE(statuses[i].IsNotFound()) << statuses[i].ToString();
    EXPECT_TRUE(values[i].empty());
  }
  // The name made again is a new, empty index; the old handle stays dropped.
  auto again = store->CreateIndex("users");
  ASSERT_TRUE(again.has_value()) << again.status().ToString();
  ExpectMatchesModel(*store, *again, false, keys, Model{});
  EXPECT_TRUE(store->MultiGet(*users, Views(keys), &values, &statuses).IsNotFound());

  // A handle that names no index, and a closed store: InvalidArgument for every key.
  s = store->MultiGet(Index(), Views(keys), &values, &statuses);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  ASSERT_EQ(statuses.size(), keys.size());
  EXPECT_TRUE(statuses.back().IsInvalidArgument()) << statuses.back().ToString();
  ASSERT_TRUE(store->Close().ok());
  s = store->MultiGet(Views(keys), &values, &statuses);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  ASSERT_EQ(statuses.size(), keys.size());
  EXPECT_TRUE(statuses.front().IsInvalidArgument()) << statuses.front().ToString();
}

std::string CountKey(uint64_t i) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "key%09llu", static_cast<unsigned long long>(i));
  return buf;
}

std::string CountValue(uint64_t i) {
  std::string v(200, static_cast<char>('a' + i % 26));
  v.replace(0, 12, CountKey(i));
  return v;
}

// A store of data several times its cache, reopened cold, answers 64 keys in 64 distinct leaves
// with one device batch for the leaves: each page on the keys' paths is pinned once, every page
// read goes through a batch, and one batch holds all 64 leaves. The same keys looked up one Get
// at a time (the contrast at the end) pin `height` pages each and read no batch.
TEST(StoreMultiGet, ColdLeavesAreReadWithOneDeviceBatch) {
  constexpr uint64_t kEntries = 60000;  // about 13 MiB of leaves
  constexpr uint64_t kKeys = 64;
  ScratchDir dir;
  const std::string path = dir.File("s.vdisk");
  IndexStats shape;
  {
    Options o = TestOptions(32ull << 20);
    o.growth_step_bytes = 16ull << 20;
    auto store = OpenStore(path, o);
    ASSERT_NE(store, nullptr);
    for (uint64_t i = 0; i < kEntries; i += 1000) {
      WriteBatch b;
      for (uint64_t j = i; j < i + 1000; j++) b.Put(CountKey(j), CountValue(j));
      ASSERT_TRUE(store->Write(b).ok());
    }
    auto st = store->GetIndexStats(Store::kDefaultIndex);
    ASSERT_TRUE(st.has_value()) << st.status().ToString();
    shape = *st;
    ASSERT_TRUE(store->Close().ok());
  }
  ASSERT_GE(shape.height, 3u);
  // A leaf holds fewer than block_size / (key + value) entries, far fewer than the stride
  // between the keys asked for: so every key is in its own leaf.
  const uint64_t stride = kEntries / kKeys;
  ASSERT_GT(stride, 4096 / (CountKey(0).size() + CountValue(0).size()));
  std::mt19937_64 rng(testing::TestSeed());
  std::vector<std::string> keys;
  for (uint64_t j = 0; j < kKeys; j++) keys.push_back(CountKey(j * stride + rng() % stride));
  std::shuffle(keys.begin(), keys.end(), rng);
  // The inner pages the 64 paths can cross: at most 64 per level, at most the level's pages.
  uint64_t inner = 0;
  for (uint32_t l = 1; l < shape.height; l++) inner += std::min(kKeys, shape.pages_per_level[l]);
  // What lets this test tell a batch from a loop of Gets, which pin height pages per key.
  ASSERT_LT(kKeys + inner, kKeys * shape.height);

  const Options cold = TestOptions(2ull << 20);
  {
    auto store = OpenStore(path, cold);
    ASSERT_NE(store, nullptr);
    const StoreStats before = store->GetStats();
    ASSERT_GE(before.cache_pages / 4, kKeys) << "the 64 keys must fit one chunk";
    ASSERT_GE(before.used_blocks, 5ull * before.cache_pages) << "data much larger than the cache";
    std::vector<std::string> values;
    std::vector<Status> statuses;
    ASSERT_TRUE(store->MultiGet(Views(keys), &values, &statuses).ok());
    for (size_t i = 0; i < kKeys; i++) {
      ASSERT_TRUE(statuses[i].ok()) << keys[i] << ": " << statuses[i].ToString();
      ASSERT_EQ(values[i], CountValue(std::stoull(keys[i].substr(3)))) << keys[i];
    }
    const StoreStats after = store->GetStats();
    const uint64_t reads = after.device_reads - before.device_reads;
    const uint64_t pins =
        (after.cache_hits + after.cache_misses) - (before.cache_hits + before.cache_misses);
    std::printf(
        "height %u, pages per level %llu/%llu/...; MultiGet of %llu cold keys: %llu "
        "device reads, %llu pins, %llu batches of %llu pages (largest %llu)\n",
        shape.height, static_cast<unsigned long long>(shape.pages_per_level[0]),
        static_cast<unsigned long long>(shape.pages_per_level[1]),
        static_cast<unsigned long long>(kKeys), static_cast<unsigned long long>(reads),
        static_cast<unsigned long long>(pins),
        static_cast<unsigned long long>(after.batch_reads - before.batch_reads),
        static_cast<unsigned long long>(after.batch_pages - before.batch_pages),
        static_cast<unsigned long long>(after.max_batch_pages));
    EXPECT_EQ(after.gets - before.gets, kKeys);
    // Every leaf was cold; besides them only inner pages on the paths were read.
    EXPECT_GE(reads, kKeys);
    EXPECT_LE(reads, kKeys + inner);
    // Each page on the paths pinned once for the whole batch.
    EXPECT_LE(pins, kKeys + inner);
    // Every page read went through a batch: one per level at most, the leaves all in one.
    EXPECT_EQ(after.batch_pages - before.batch_pages, reads);
    EXPECT_LE(after.batch_reads - before.batch_reads, shape.height);
    EXPECT_GE(after.max_batch_pages, kKeys);

    // Again, warm: nothing read.
    const StoreStats warm = store->GetStats();
    ASSERT_TRUE(store->MultiGet(Views(keys), &values, &statuses).ok());
    EXPECT_EQ(store->GetStats().device_reads, warm.device_reads);
    ASSERT_TRUE(store->Close().ok());
  }
  {
    // The contrast: the same keys, cold, one Get each.
    auto store = OpenStore(path, cold);
    ASSERT_NE(store, nullptr);
    const StoreStats before = store->GetStats();
    std::string value;
    for (const std::string& k : keys) ASSERT_TRUE(store->Get(k, &value).ok()) << k;
    const StoreStats after = store->GetStats();
    const uint64_t pins =
        (after.cache_hits + after.cache_misses) - (before.cache_hits + before.cache_misses);
    EXPECT_GE(pins, kKeys * shape.height);
    EXPECT_GT(pins, kKeys + inner);
    EXPECT_EQ(after.batch_reads, before.batch_reads);
    ASSERT_TRUE(store->Close().ok());
  }
}

}  // namespace
}  // namespace vde
