// FreeExtentIndex against a model: a vector of per-block free flags.
#include "vde/free_extent_index.h"

#include <gtest/gtest.h>

#include <random>

#include "tests/test_util.h"

namespace vde {
namespace {

// The free extents the model's flags describe, in start order.
std::vector<Extent> ModelExtents(const std::vector<bool>& free) {
  std::vector<Extent> out;
  for (uint64_t b = 0; b < free.size(); b++) {
    if (!free[b]) continue;
    if (!out.empty() && out.back().end() == b) {
      out.back().count++;
    } else {
      out.push_back({b, 1});
    }
  }
  return out;
}

TEST(FreeExtentIndex, CoalescesOnInsert) {
  FreeExtentIndex ix;
  ASSERT_TRUE(ix.Insert({10, 5}));
  ASSERT_TRUE(ix.Insert({20, 5}));
  ASSERT_TRUE(ix.Insert({15, 5}));  // bridges both
  EXPECT_EQ(ix.Extents(), (std::vector<Extent>{{10, 15}}));
  EXPECT_FALSE(ix.Insert({12, 1}));  // overlap refused
  EXPECT_FALSE(ix.Insert({24, 2}));
  EXPECT_FALSE(ix.Insert({5, 6}));
  EXPECT_EQ(ix.free_blocks(), 15u);
  EXPECT_EQ(ix.ExtentEndingAt(25), (Extent{10, 15}));
  EXPECT_FALSE(ix.ExtentEndingAt(24).has_value());
}

TEST(FreeExtentIndex, BestFitTakesTheSmallestThenLowest) {
  FreeExtentIndex ix;
  ASSERT_TRUE(ix.Insert({100, 8}));
  ASSERT_TRUE(ix.Insert({0, 4}));
  ASSERT_TRUE(ix.Insert({50, 4}));
  ASSERT_TRUE(ix.Insert({200, 3}));
  EXPECT_EQ(ix.TakeBestFit(4), (Extent{0, 4}));
  EXPECT_EQ(ix.TakeBestFit(4), (Extent{50, 4}));
  EXPECT_EQ(ix.TakeBestFit(2), (Extent{200, 2}));
  EXPECT_EQ(ix.TakeBestFit(9), std::nullopt);
  EXPECT_EQ(ix.largest(), 8u);
  EXPECT_TRUE(ix.Remove({102, 2}));  // split
  EXPECT_EQ(ix.Extents(), (std::vector<Extent>{{100, 2}, {104, 4}, {202, 1}}));
  EXPECT_FALSE(ix.Remove({103, 2}));
}

TEST(FreeExtentIndex, RandomAgainstModel) {
  uint64_t seed = testing::TestSeed();
  std::mt19937_64 rng(seed);
  const uint64_t n = 4096;
  std::vector<bool> model(n, false);
  FreeExtentIndex ix;
  for (int step = 0; step < 100000; step++) {
    uint64_t start = rng() % n;
    uint64_t len = 1 + rng() % std::min<uint64_t>(64, n - start);
    bool all_free = true, none_free = true;
    for (uint64_t b = start; b < start + len; b++) {
      all_free &= model[b];
      none_free &= !model[b];
    }
    switch (rng() % 3) {
      case 0: {  // insert
        bool ok = ix.Insert({start, len});
        ASSERT_EQ(ok, none_free) << "step " << step;
        if (ok) {
          for (uint64_t b = start; b < start + len; b++) model[b] = true;
        }
        break;
      }
      case 1: {  // remove
        // Remove succeeds only inside one extent, i.e. when all blocks are free.
        bool ok = ix.Remove({start, len});
        ASSERT_EQ(ok, all_free) << "step " << step;
        if (ok) {
          for (uint64_t b = start; b < start + len; b++) model[b] = false;
        }
        break;
      }
      default: {  // best fit
        auto exts = ModelExtents(model);
        const Extent* best = nullptr;
        for (const Extent& e : exts) {
          if (e.count >= len && (best == nullptr || e.count < best->count)) best = &e;
        }
        auto got = ix.TakeBestFit(len);
        ASSERT_EQ(got.has_value(), best != nullptr) << "step " << step;
        if (got) {
          ASSERT_EQ(*got, (Extent{best->start, len}));
          for (uint64_t b = got->start; b < got->end(); b++) model[b] = false;
        }
      }
    }
    if (step % 1000 == 0) {
      auto exts = ModelExtents(model);
      ASSERT_EQ(ix.Extents(), exts);
      uint64_t total = 0, largest = 0;
      for (const Extent& e : exts) {
        total += e.count;
        largest = std::max(largest, e.count);
      }
      ASSERT_EQ(ix.free_blocks(), total);
      ASSERT_EQ(ix.largest(), largest);
      ASSERT_EQ(ix.extent_count(), exts.size());
      uint64_t probe = rng() % n;
      ASSERT_EQ(ix.Contains(probe), model[probe]);
    }
  }
}

}  // namespace
}  // namespace vde
