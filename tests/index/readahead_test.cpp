// Iterator read-ahead: engaged by long scans in either direction (windows growing up to the
// limit, the leaves read in batches and used), never by point reads or short scans, reset by a
// change of direction, bounded by the iterator's bounds and the cache size.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "blockdev/aligned_buffer.h"
#include "blockdev/block_header.h"
#include "index/btree.h"
#include "index/node.h"
#include "tests/index/btree_fixture.h"

namespace vde::index {
namespace {

using testing::Model;

class ReadAheadTest : public testing::BTreeFixture {
 protected:
  static std::string Key(uint64_t i) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "key%08llu", static_cast<unsigned long long>(i));
    return buf;
  }
  // A tree of `n` keys with 100-byte values (about 30 per leaf).
  std::unique_ptr<BTree> Build(uint64_t n, Model* model) {
    auto tree = NewTree();
    for (uint64_t i = 0; i < n; i++) {
      std::string v(100, static_cast<char>('a' + i % 26));
      EXPECT_TRUE(tree->Put(Key(i), v).ok());
      (*model)[Key(i)] = v;
    }
    return tree;
  }
  // Scans with `it` from the first key (dir > 0) or the last, checking every key and value
  // against the model in order; *n = the entries it saw. The caller checks it->status().
  static void ScanMatches(BTree::Iterator* it, int dir, const Model& model, size_t* n) {
    *n = 0;
    if (dir > 0) {
      auto m = model.begin();
      for (it->SeekToFirst(); it->Valid(); it->Next(), ++m, ++*n) {
        ASSERT_NE(m, model.end());
        ASSERT_EQ(it->key(), m->first);
        ASSERT_EQ(it->value(), m->second);
      }
    } else {
      auto m = model.rbegin();
      for (it->SeekToLast(); it->Valid(); it->Prev(), ++m, ++*n) {
        ASSERT_NE(m, model.rend());
        ASSERT_EQ(it->key(), m->first);
        ASSERT_EQ(it->value(), m->second);
      }
    }
  }
  static uint64_t Leaves(const BTree& tree) {
    auto st = tree.GetStats();
    EXPECT_TRUE(st.has_value());
    return st.has_value() ? st->pages_per_level[0] : 0;
  }
};

TEST_F(ReadAheadTest, LongScansReadAheadInGrowingWindowsBothWays) {
  NewCache(4096);
  Model model;
  auto tree = Build(30000, &model);
  const uint64_t leaves = Leaves(*tree);
  ASSERT_GE(leaves, 500u);
  for (int dir : {+1, -1}) {
    SCOPED_TRACE(dir > 0 ? "forward" : "backward");
    Reopen(&tree);  // cold
    const BTreeReadStats rs = tree->read_stats();
    const uint64_t device_batches = dev_->stats().batches;
    auto it = tree->NewIterator();
    size_t n = 0;
    ASSERT_NO_FATAL_FAILURE(ScanMatches(it.get(), dir, model, &n));
    ASSERT_TRUE(it->status().ok()) << it->status().ToString();
    ASSERT_EQ(n, model.size());
    const BTreeReadStats rs2 = tree->read_stats();
    const PageCacheStats cs = cache_->stats();
    // A key-order load lays the leaves out in sequence, so windows grow to 4x the limit (64),
    // which is 1 MiB of leaves here.
    EXPECT_EQ(rs2.readahead_max_window, 256u) << "2, 4, 8, ... up to 4 x the limit";
    EXPECT_GE(rs2.readahead_windows - rs.readahead_windows, leaves / 256);
    EXPECT_LE(rs2.readahead_windows - rs.readahead_windows, leaves / 256 + 8);
    EXPECT_GE(cs.prefetch_pages, leaves - 4) << "all but the first few leaves read ahead";
    EXPECT_EQ(cs.prefetch_used, cs.prefetch_pages) << "every leaf read ahead was used";
    EXPECT_EQ(cs.prefetch_wasted, 0u);
    // Batches, not a read per leaf: the windows plus the first leaves and the inner pages.
    EXPECT_LE(dev_->stats().batches - device_batches, leaves / 64 + 20);
  }
}

// A scan over leaves already cached collects no windows (each would find them all resident),
// and one that walks on into leaves not cached reads ahead again from there.
TEST_F(ReadAheadTest, AWarmScanReadsNothingAheadUntilItLeavesTheCache) {
  NewCache(4096);  // holds the whole tree
  Model model;
  auto tree = Build(30000, &model);
  const uint64_t leaves = Leaves(*tree);
  ASSERT_GE(leaves, 500u);
  Reopen(&tree);  // cold
  IteratorOptions half;
  half.upper_bound = Key(15000);
  auto scan_half = [&] {
    auto it = tree->NewIterator(half);
    auto m = model.begin();
    size_t n = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next(), ++m, ++n) {
      ASSERT_EQ(it->key(), m->first);
      ASSERT_EQ(it->value(), m->second);
    }
    ASSERT_TRUE(it->status().ok()) << it->status().ToString();
    EXPECT_EQ(n, 15000u);
  };
  ASSERT_NO_FATAL_FAILURE(scan_half());  // reads the first half in, ahead of the scan
  const BTreeReadStats warm0 = tree->read_stats();
  const PageCacheStats cache0 = cache_->stats();
  ASSERT_GT(warm0.readahead_windows, 0u);
  ASSERT_NO_FATAL_FAILURE(scan_half());  // all cached now
  EXPECT_EQ(tree->read_stats().readahead_windows, warm0.readahead_windows);
  EXPECT_EQ(cache_->stats().pages_read, cache0.pages_read);

  // Past the cached half the scan reads ahead again, in windows.
  auto it = tree->NewIterator();
  size_t n = 0;
  ASSERT_NO_FATAL_FAILURE(ScanMatches(it.get(), +1, model, &n));
  ASSERT_TRUE(it->status().ok()) << it->status().ToString();
  ASSERT_EQ(n, model.size());
  EXPECT_GT(tree->read_stats().readahead_windows, warm0.readahead_windows);
  EXPECT_GE(cache_->stats().prefetch_pages - cache0.prefetch_pages, leaves / 2 - 16)
      << "the uncached half read ahead, all but its first leaves";
}

// Leaves scattered over the file (a random-order load) are read in windows of at most the
// limit: each is a request of its own, and the limit is the queue depth read-ahead asks for.
TEST_F(ReadAheadTest, ScatteredLeavesKeepTheWindowAtTheLimit) {
  NewCache(4096);
  const uint64_t seed = ::vde::testing::TestSeed();
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> order(30000);
  for (uint64_t i = 0; i < order.size(); i++) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  auto tree = NewTree();
  for (uint64_t i : order) ASSERT_TRUE(tree->Put(Key(i), std::string(100, 'v')).ok());
  Reopen(&tree);  // cold
  auto it = tree->NewIterator();
  size_t n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) n++;
  ASSERT_TRUE(it->status().ok()) << it->status().ToString();
  EXPECT_EQ(n, order.size());
  EXPECT_EQ(tree->read_stats().readahead_max_window, 64u);
  EXPECT_EQ(cache_->stats().prefetch_wasted, 0u);
}

// A scan crosses to the next leaf through the parent its descent went through: two pins per
// leaf (parent and leaf), not one per level, both ways; after a change to the tree it descends
// again and still sees the model.
TEST_F(ReadAheadTest, LeafStepsGoThroughTheParent) {
  NewCache(4096);
  Model model;
  auto tree = Build(30000, &model);
  ASSERT_GE(tree->height(), 3u);
  const uint64_t leaves = Leaves(*tree);
  IteratorOptions o;
  o.readahead_max = 0;  // read-ahead pins the path too: count only the steps
  auto it = tree->NewIterator(o);
  for (int dir : {+1, -1}) {
    SCOPED_TRACE(dir > 0 ? "forward" : "backward");
    const uint64_t hits = cache_->stats().hits;
    size_t n = 0;
    if (dir > 0) {
      for (it->SeekToFirst(); it->Valid(); it->Next()) n++;
    } else {
      for (it->SeekToLast(); it->Valid(); it->Prev()) n++;
    }
    ASSERT_TRUE(it->status().ok()) << it->status().ToString();
    EXPECT_EQ(n, model.size());
    const uint64_t pins = cache_->stats().hits - hits;
    // Two per leaf; a descent from the root at each of the leaves' parents (about leaves/100).
    EXPECT_LE(pins, 2 * leaves + tree->height() * (leaves / 50 + 2)) << leaves << " leaves";
  }
  // A change between two steps: the next step finds the tree changed and descends afresh.
  it->SeekToFirst();
  auto m = model.begin();
  for (size_t n = 0; it->Valid(); it->Next(), ++m, ++n) {
    ASSERT_NE(m, model.end());
    ASSERT_EQ(it->key(), m->first);
    if (n % 500 == 0) {
      const std::string k = m->first + "+";  // sorts right after the current key
      ASSERT_TRUE(tree->Put(k, "new").ok());
      model[k] = "new";
    }
  }
  ASSERT_TRUE(it->status().ok()) << it->status().ToString();
  EXPECT_EQ(m, model.end());
}

TEST_F(ReadAheadTest, PointReadsAndShortScansNeverReadAhead) {
  const uint64_t seed = ::vde::testing::TestSeed();
  std::mt19937_64 rng(seed);
  NewCache(4096);
  Model model;
  auto tree = Build(30000, &model);
  Reopen(&tree);
  std::string v;
  for (int i = 0; i < 2000; i++) ASSERT_TRUE(tree->Get(Key(rng() % 30000), &v).ok());
  std::vector<std::string> keys;
  for (int i = 0; i < 300; i++) keys.push_back(Key(rng() % 30000));
  std::vector<std::string_view> views(keys.begin(), keys.end());
  std::vector<std::string> values;
  std::vector<Status> statuses;
  ASSERT_TRUE(tree->MultiGet(views, &values, &statuses).ok());
  // Seeks followed by short scans: at most one leaf crossed each.
  auto it = tree->NewIterator();
  for (int i = 0; i < 500; i++) {
    it->Seek(Key(rng() % 30000));
    for (int j = 0; j < 20 && it->Valid(); j++) it->Next();
    ASSERT_TRUE(it->status().ok());
    it->SeekForPrev(Key(rng() % 30000));
    for (int j = 0; j < 20 && it->Valid(); j++) it->Prev();
    ASSERT_TRUE(it->status().ok());
  }
  EXPECT_EQ(tree->read_stats().readahead_windows, 0u);
  EXPECT_EQ(cache_->stats().prefetch_reads, 0u);
  EXPECT_EQ(cache_->stats().prefetch_pages, 0u);
}

TEST_F(ReadAheadTest, DirectionChangeStartsOver) {
  NewCache(4096);
  Model model;
  auto tree = Build(30000, &model);
  Reopen(&tree);
  auto it = tree->NewIterator();
  it->Seek(Key(15000));
  // Forward over about 40 leaves: windows 2, 4, 8, 16 (and a 32).
  for (int i = 0; i < 40 * 30 && it->Valid(); i++) it->Next();
  ASSERT_TRUE(it->Valid());
  const BTreeReadStats fwd = tree->read_stats();
  EXPECT_GE(fwd.readahead_max_window, 16u);
  EXPECT_LT(fwd.readahead_max_window, 64u);
  // Back over the leaves just scanned, and on past the seek position: the first window after
  // the turn is 2 again, so backward read-ahead starts from scratch.
  std::string last(it->key());
  auto m = model.find(last);
  ASSERT_NE(m, model.end());
  bool saw_first_window = false;
  for (int i = 0; i < 80 * 30 && it->Valid(); i++, --m) {
    ASSERT_EQ(it->key(), m->first);
    const BTreeReadStats before = tree->read_stats();
    it->Prev();
    const BTreeReadStats after = tree->read_stats();
    if (after.readahead_windows > before.readahead_windows && !saw_first_window) {
      EXPECT_EQ(after.readahead_leaves - before.readahead_leaves, 2u)
          << "first window after a turn";
      saw_first_window = true;
    }
  }
  ASSERT_TRUE(it->status().ok());
  EXPECT_TRUE(saw_first_window);
}

TEST_F(ReadAheadTest, BoundsAndCacheSizeLimitTheWindow) {
  NewCache(4096);
  Model model;
  auto tree = Build(30000, &model);
  Reopen(&tree);
  // A range of about 20 leaves: read-ahead names no leaf past the upper bound.
  IteratorOptions o;
  o.lower_bound = Key(10000);
  o.upper_bound = Key(10600);
  auto it = tree->NewIterator(o);
  size_t n = 0;
  const uint64_t read_before = cache_->stats().pages_read;
  for (it->SeekToFirst(); it->Valid(); it->Next()) n++;
  ASSERT_TRUE(it->status().ok());
  EXPECT_EQ(n, 600u);
  const PageCacheStats cs = cache_->stats();
  EXPECT_GT(cs.prefetch_pages, 0u);
  EXPECT_EQ(cs.prefetch_used, cs.prefetch_pages) << "nothing beyond the bound was read";
  EXPECT_LE(cs.pages_read - read_before, 600 / 25 + tree->height() + 2);
  // Backward within the bounds too.
  for (it->SeekToLast(), n = 0; it->Valid(); it->Prev()) n++;
  EXPECT_EQ(n, 600u);
  EXPECT_EQ(cache_->stats().prefetch_used, cache_->stats().prefetch_pages);

  // A small cache caps the window at frames/8.
  frames_ = 64;
  Reopen(&tree);
  auto small = tree->NewIterator();
  n = 0;
  auto m = model.begin();
  for (small->SeekToFirst(); small->Valid(); small->Next(), ++m, ++n) {
    ASSERT_EQ(small->key(), m->first);
  }
  ASSERT_TRUE(small->status().ok());
  EXPECT_EQ(n, model.size());
  EXPECT_EQ(tree->read_stats().readahead_max_window, 8u) << "64 frames / 8";
  EXPECT_LE(cache_->stats().resident, 64u);
  EXPECT_GT(cache_->stats().prefetch_pages, 0u);
  // Read ahead at most 8 at a time in a 64-frame cache: the pages stay until the scan uses them.
  EXPECT_GE(cache_->stats().prefetch_used + 8, cache_->stats().prefetch_pages);

  // Turned off.
  IteratorOptions off;
  off.readahead_max = 0;
  Reopen(&tree);
  auto none = tree->NewIterator(off);
  for (none->SeekToFirst(); none->Valid(); none->Next()) {
  }
  ASSERT_TRUE(none->status().ok());
  EXPECT_EQ(cache_->stats().prefetch_pages, 0u);
}

// Read-ahead follows the scan across parents: windows that reach past the end of the parent
// page continue in the next one (through the grandparent), forward and backward.
TEST_F(ReadAheadTest, WindowsCrossParentPages) {
  NewCache(8192);
  Model model;
  auto tree = Build(150000, &model);
  ASSERT_GE(tree->height(), 3u);
  for (int dir : {+1, -1}) {
    Reopen(&tree);
    auto it = tree->NewIterator();
    size_t n = 0;
    if (dir > 0) {
      for (it->SeekToFirst(); it->Valid(); it->Next()) n++;
    } else {
      for (it->SeekToLast(); it->Valid(); it->Prev()) n++;
    }
    ASSERT_TRUE(it->status().ok());
    EXPECT_EQ(n, model.size());
    const PageCacheStats cs = cache_->stats();
    const uint64_t leaves = Leaves(*tree);
    // Leaves read singly: the first two of the scan only (every parent boundary is crossed
    // by read-ahead). Pages read = leaves + inner pages; prefetched = all but about two.
    EXPECT_GE(cs.prefetch_pages + 4, leaves);
    EXPECT_EQ(cs.prefetch_wasted, 0u);
    // The parents are read ahead too: the scan's own reads are the first descent and the
    // first leaves, not one more for every parent it crosses into.
    auto st = tree->GetStats();
    ASSERT_TRUE(st.has_value());
    ASSERT_GE(st->pages_per_level[1], 10u);
    EXPECT_LE(cs.misses, tree->height() + 3) << st->pages_per_level[1] << " parents";
  }
}

// Windows of several parents' worth of leaves (a limit of 1024 leaves, 3-4 parents): the
// parents each window crosses were named by the windows before it, and the walk that collects
// a window never waits for one still in flight, so the scan's own reads stay at the first few.
TEST_F(ReadAheadTest, WideWindowsReadTheirParentsAhead) {
  NewCache(8192);
  Model model;
  auto tree = Build(150000, &model);
  auto st = tree->GetStats();
  ASSERT_TRUE(st.has_value());
  const uint64_t leaves = st->pages_per_level[0];
  const uint64_t parents = st->pages_per_level[1];
  ASSERT_GE(parents, 10u);
  ASSERT_LE(leaves / parents, 300u) << "a window spans three parents or more";
  for (int dir : {+1, -1}) {
    SCOPED_TRACE(dir > 0 ? "forward" : "backward");
    Reopen(&tree);
    IteratorOptions o;
    o.readahead_max = 1024;
    auto it = tree->NewIterator(o);
    size_t n = 0;
    ASSERT_NO_FATAL_FAILURE(ScanMatches(it.get(), dir, model, &n));
    ASSERT_TRUE(it->status().ok()) << it->status().ToString();
    EXPECT_EQ(n, model.size());
    const BTreeReadStats rs = tree->read_stats();
    EXPECT_EQ(rs.readahead_max_window, 1024u);
    const PageCacheStats cs = cache_->stats();
    EXPECT_EQ(cs.prefetch_wasted, 0u);
    EXPECT_LE(cs.misses, tree->height() + 3) << parents << " parents";
  }
}

// Read-ahead checks leaves only by their block checksum; the scan checks each whole when it
// first pins it. A leaf whose checksum is right but whose layout is not (two entries swapped)
// must end the scan with Corruption naming its block, after exactly the keys before it,
// both ways, every time it is reached, and a point read of it must fail too.
TEST_F(ReadAheadTest, ALeafReadAheadWithABadLayoutFailsTheScanThatReachesIt) {
  NewCache(4096);
  Model model;
  auto tree = Build(30000, &model);
  std::vector<uint64_t> leaves = LeafBlocks(*tree);
  ASSERT_GE(leaves.size(), 500u);
  std::sort(leaves.begin(), leaves.end());  // a key-order load: block order is key order
  const uint64_t bad = leaves[leaves.size() / 2];
  Reopen(&tree);
  AlignedBuffer buf(kBs, 4096);
  ASSERT_TRUE(dev_->Read(bad, 1, buf.span()).ok());
  const std::string first_key(Node(buf.data(), kBs).lower_fence());  // keys in it are above
  const std::string last_key(Node(buf.data(), kBs).upper_fence());   // and up to this one
  // Entries 1 and 2 swapped: every byte in its place, the keys out of order. Only the leaf's
  // own check (ValidateNode) sees it: a scan that skipped it would return the keys misordered.
  const uint32_t es = Node(buf.data(), kBs).entry_size();
  ASSERT_GE(Node(buf.data(), kBs).count(), 3u);
  std::byte* e1 = buf.data() + node_layout::kSlots + es;
  std::swap_ranges(e1, e1 + es, e1 + es);
  PutU64(buf.data(), ComputeBlockChecksum(buf.span()));
  ASSERT_TRUE(dev_->inner()->Write(bad, 1, buf.span()).ok());
  const std::string where = "block " + std::to_string(bad) + " of ";
  // Keys <= the bad leaf's lower fence lie before it, the others after it.
  const size_t before = std::distance(model.begin(), model.upper_bound(first_key));
  for (int round = 0; round < 2; round++) {
    for (int dir : {+1, -1}) {
      SCOPED_TRACE(std::string(dir > 0 ? "forward" : "backward") + " round " +
                   std::to_string(round));
      const PageCacheStats cs0 = cache_->stats();
      auto it = tree->NewIterator();
      size_t n = 0;
      ASSERT_NO_FATAL_FAILURE(ScanMatches(it.get(), dir, model, &n));
      if (dir > 0) {
        EXPECT_EQ(n, before);
      } else {
        // The scan from the end stops after the keys above the leaf's upper fence.
        EXPECT_EQ(n, static_cast<size_t>(std::distance(model.upper_bound(last_key), model.end())));
        EXPECT_GT(n, 0u);
      }
      EXPECT_TRUE(it->status().IsCorruption()) << it->status().ToString();
      EXPECT_NE(it->status().ToString().find(where), std::string::npos) << it->status().ToString();
      if (round == 0 && dir > 0) {
        // The bad leaf came by read-ahead, as most leaves before it did.
        EXPECT_GE(cache_->stats().prefetch_pages - cs0.prefetch_pages, leaves.size() / 4);
      }
    }
  }
  std::string v;
  auto after = model.upper_bound(first_key);
  ASSERT_NE(after, model.end());
  const Status s = tree->Get(after->first, &v);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
}

}  // namespace
}  // namespace vde::index
