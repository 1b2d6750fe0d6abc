// The B+tree against a std::map model under random operations, with checkpoints and reopens
// between phases. VDE_TEST_SEED replays a run; VDE_TEST_LONG=1 runs 1,000,000+ operations.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "index/btree.h"
#include "tests/index/btree_fixture.h"

namespace vde::index {
namespace {

using testing::Model;

class BTreeModelTest : public testing::BTreeFixture {};

TEST_F(BTreeModelTest, RandomOperationsMatchAMap) {
  const uint64_t seed = ::vde::testing::TestSeed();
  std::mt19937_64 rng(seed);
  const bool long_run = testing::LongTests();
  const int phases = long_run ? 20 : 8;
  const int ops_per_phase = long_run ? 60000 : 25000;
  NewCache(512);  // 2 MiB: far smaller than the tree, so pages are evicted and reread
  auto tree = NewTree();
  Model model;
  uint64_t seq = 0;
  std::string got;
  uint64_t gets = 0, found = 0;
  for (int phase = 0; phase < phases; phase++) {
    SCOPED_TRACE("phase " + std::to_string(phase) + " seed " + std::to_string(seed));
    for (int i = 0; i < ops_per_phase; i++) {
      const int op = static_cast<int>(rng() % 100);
      // Mostly keys that exist for updates, deletes and gets once the tree has some.
      std::string key;
      if (!model.empty() && rng() % 2 == 0) {
        auto it = model.lower_bound(testing::RandomKey(rng, 1024));
        key = it == model.end() ? model.begin()->first : it->first;
      } else {
        key = testing::RandomKey(rng, 1024);
      }
      if (op < 45) {
        std::string value = testing::RandomValue(rng, seq++);
        Status s = tree->Put(key, value);
        ASSERT_TRUE(s.ok()) << s.ToString();
        model[key] = std::move(value);
      } else if (op < 70) {
        Status s = tree->Delete(key);
        if (model.erase(key) != 0) {
          ASSERT_TRUE(s.ok()) << s.ToString();
        } else {
          ASSERT_TRUE(s.IsNotFound()) << s.ToString();
        }
      } else {
        Status s = tree->Get(key, &got);
        gets++;
        auto it = model.find(key);
        if (it == model.end()) {
          ASSERT_TRUE(s.IsNotFound()) << s.ToString();
        } else {
          found++;
          ASSERT_TRUE(s.ok()) << s.ToString();
          ASSERT_EQ(got, it->second);
        }
      }
    }
    // One value of several MiB per phase (out of line, read with one request).
    std::string big(static_cast<size_t>(2 + rng() % 6) << 20, static_cast<char>('A' + phase));
    big[12345] = 'x';
    const std::string big_key = "big" + std::to_string(phase % 3);
    ASSERT_TRUE(tree->Put(big_key, big).ok());
    model[big_key] = big;

    switch (phase % 3) {
      case 0:
        Checkpoint();
        break;
      case 1:
        Reopen(&tree);
        break;
      default:
        ExpectMatches(*tree, model);
        ASSERT_TRUE(dev_->violations().empty())
            << "write to checkpointed block " << dev_->violations().front();
        break;
    }
  }
  ExpectMatches(*tree, model);
  Reopen(&tree);
  ExpectMatches(*tree, model);
  EXPECT_TRUE(dev_->violations().empty());
  EXPECT_GT(found, gets / 4);
  auto st = tree->GetStats();
  ASSERT_TRUE(st.has_value());
  std::printf(
      "[  STATS   ] entries %llu height %u fill %.2f overflow values %llu, cache: %llu "
      "hits %llu misses %llu evictions\n",
      static_cast<unsigned long long>(st->entries), st->height, st->fill_factor,
      static_cast<unsigned long long>(st->overflow_values),
      static_cast<unsigned long long>(cache_->stats().hits),
      static_cast<unsigned long long>(cache_->stats().misses),
      static_cast<unsigned long long>(cache_->stats().evictions));
  // Dropping the tree returns every block.
  ASSERT_TRUE(tree->Destroy().ok());
  EXPECT_EQ(source_->allocated_blocks(), 0u);
}

}  // namespace
}  // namespace vde::index
