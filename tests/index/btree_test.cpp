#include "index/btree.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "blockdev/aligned_buffer.h"
#include "tests/index/btree_fixture.h"

namespace vde::index {
namespace {

using testing::Model;

class BTreeTest : public testing::BTreeFixture {};

std::string NumKey(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "k%06d", i);
  return buf;
}

TEST_F(BTreeTest, EmptyTree) {
  auto tree = NewTree();
  std::string v;
  EXPECT_TRUE(tree->Get("a", &v).IsNotFound());
  EXPECT_TRUE(tree->Delete("a").IsNotFound());
  auto it = tree->NewIterator();
  it->SeekToFirst();
  EXPECT_FALSE(it->Valid());
  EXPECT_TRUE(it->status().ok());
  it->SeekToLast();
  EXPECT_FALSE(it->Valid());
  EXPECT_EQ(tree->height(), 1u);
  ExpectMatches(*tree, {});
  Reopen(&tree);
  ExpectMatches(*tree, {});
}

TEST_F(BTreeTest, SmallTreeStaysOneLeaf) {
  auto tree = NewTree();
  const uint64_t root = tree->root();
  Model model;
  for (int i = 0; i < 40; i++) {
    model[NumKey(i)] = std::string(i, 'v');
    ASSERT_TRUE(tree->Put(NumKey(i), model[NumKey(i)]).ok());
  }
  EXPECT_EQ(tree->height(), 1u);
  EXPECT_EQ(tree->root(), root) << "same generation: modified in place";
  auto st = tree->GetStats();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->pages_per_level, std::vector<uint64_t>{1});
  EXPECT_GT(st->fill_factor, 0.1);
  ExpectMatches(*tree, model);
}

TEST_F(BTreeTest, GrowsLevelsAndShrinksBack) {
  std::mt19937_64 rng(::vde::testing::TestSeed());
  auto tree = NewTree();
  std::vector<int> order(30000);
  for (int i = 0; i < static_cast<int>(order.size()); i++) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  Model model;
  for (int i : order) {
    std::string v(i % 50, 'x');
    ASSERT_TRUE(tree->Put(NumKey(i), v).ok());
    model[NumKey(i)] = v;
  }
  EXPECT_GE(tree->height(), 3u);
  ExpectMatches(*tree, model);
  auto st = tree->GetStats();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->height, tree->height());
  EXPECT_EQ(st->pages_per_level.back(), 1u);
  EXPECT_GT(st->fill_factor, 0.5);

  std::shuffle(order.begin(), order.end(), rng);
  for (size_t n = 0; n < order.size(); n++) {
    ASSERT_TRUE(tree->Delete(NumKey(order[n])).ok());
    model.erase(NumKey(order[n]));
    if (n == order.size() / 2) ExpectMatches(*tree, model);
  }
  EXPECT_EQ(tree->height(), 1u);
  st = tree->GetStats();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->pages_per_level, std::vector<uint64_t>{1});
  EXPECT_EQ(source_->allocated_blocks(), 1u) << "every merged page was freed";
  ExpectMatches(*tree, model);

  // And grows back, in ascending order this time (pages split near their end).
  for (int i = 0; i < 20000; i++) {
    ASSERT_TRUE(tree->Put(NumKey(i), "again").ok());
    model[NumKey(i)] = "again";
  }
  st = tree->GetStats();
  ASSERT_TRUE(st.has_value());
  EXPECT_GE(st->height, 2u);
  EXPECT_GT(st->fill_factor, 0.75) << "ascending loads leave full pages";
  ExpectMatches(*tree, model);
}

TEST_F(BTreeTest, KeysAtTheMaximumSize) {
  std::mt19937_64 rng(::vde::testing::TestSeed());
  auto tree = NewTree();
  const uint32_t max_key = tree->max_key_size();
  ASSERT_EQ(max_key, 1024u);
  const uint32_t max_inline = tree->max_inline_value();
  ASSERT_EQ(max_inline, 884u);
  // Worst cases for fences and separators: full-size keys differing only in the last byte
  // (separators as long as the keys), keys with nothing in common, values at the inline limit.
  std::vector<std::string> bases;
  for (int b = 0; b < 6; b++) {
    std::string base(max_key - 1, '\0');
    for (char& c : base) c = static_cast<char>(rng() % 3);
    bases.push_back(base);
  }
  Model model;
  const int ops = testing::LongTests() ? 40000 : 8000;
  for (int i = 0; i < ops; i++) {
    std::string k;
    if (rng() % 4 == 0) {
      k.assign(max_key, static_cast<char>(rng()));
      k[max_key - 1 - rng() % 4] = static_cast<char>(rng());
    } else {
      k = bases[rng() % bases.size()] + static_cast<char>(rng());
    }
    if (rng() % 5 == 0) k.resize(1 + rng() % max_key);
    std::string v(rng() % 3 == 0 ? max_inline : rng() % 2 == 0 ? 0 : max_inline + 1, 'v');
    if (!v.empty()) v[0] = static_cast<char>(i);
    if (rng() % 4 == 0 && !model.empty()) {
      auto it = model.lower_bound(k);
      if (it == model.end()) it = model.begin();
      ASSERT_TRUE(tree->Delete(it->first).ok());
      model.erase(it);
    } else {
      Status s = tree->Put(k, v);
      ASSERT_TRUE(s.ok()) << s.ToString();
      model[k] = v;
    }
    if (i % 2000 == 0) {
      ASSERT_TRUE(tree->Verify().ok());
    }
  }
  ExpectMatches(*tree, model);
  auto st = tree->GetStats();
  ASSERT_TRUE(st.has_value());
  std::printf("[  STATS   ] %llu entries, height %u, fill %.2f, leaves %llu\n",
              static_cast<unsigned long long>(st->entries), st->height, st->fill_factor,
              static_cast<unsigned long long>(st->pages_per_level[0]));
  EXPECT_LE(st->height, 16u);
  Reopen(&tree);
  ExpectMatches(*tree, model);
}

TEST_F(BTreeTest, LimitsAreInvalidArgument) {
  auto tree = NewTree();
  Status s = tree->Put("", "v");
  EXPECT_TRUE(s.IsInvalidArgument());
  std::string long_key(tree->max_key_size() + 1, 'k');
  s = tree->Put(long_key, "v");
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.ToString().find("1024 bytes"), std::string::npos) << s.ToString();
  std::string v;
  EXPECT_TRUE(tree->Get(long_key, &v).IsInvalidArgument());
  EXPECT_TRUE(tree->Delete("").IsInvalidArgument());
  // A value one byte over the limit is refused before any byte of it is read.
  static const char kByte = 'x';
  s = tree->Put("k", std::string_view(&kByte, BTree::max_value_size() + 1));
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.ToString().find("kMaxValueSize"), std::string::npos) << s.ToString();
  EXPECT_EQ(source_->allocated_blocks(), 1u);
  ASSERT_TRUE(tree->Put(std::string(tree->max_key_size(), 'k'), "ok").ok());
}

TEST_F(BTreeTest, ValueSizesAroundTheLimits) {
  auto tree = NewTree();
  const uint32_t per = OverflowPayloadPerBlock(kBs);
  std::vector<size_t> sizes = {0,   1,       883,     884,         885,    per - 1,
                               per, per + 1, 2 * per, 3 * per + 5, 1 << 20};
  Model model;
  for (size_t i = 0; i < sizes.size(); i++) {
    std::string v(sizes[i], '\0');
    for (size_t j = 0; j < v.size(); j++) v[j] = static_cast<char>(j * 31 + i);
    model[NumKey(static_cast<int>(i))] = v;
    ASSERT_TRUE(tree->Put(NumKey(static_cast<int>(i)), v).ok());
  }
  auto st = tree->GetStats();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->overflow_values, 7u);
  ExpectMatches(*tree, model);
  Reopen(&tree);
  ExpectMatches(*tree, model);
  // Updates replace (and free) the old extents; deletes free them.
  const uint64_t before = source_->allocated_blocks();
  ASSERT_TRUE(tree->Put(NumKey(10), "small now").ok());
  model[NumKey(10)] = "small now";
  EXPECT_LT(source_->allocated_blocks() + 200, before);
  for (int i = 0; i < 11; i++) {
    ASSERT_TRUE(tree->Delete(NumKey(i)).ok());
    model.erase(NumKey(i));
  }
  EXPECT_LE(source_->allocated_blocks(), 2u);  // the root, copied once after the checkpoint
  ExpectMatches(*tree, model);
}

TEST_F(BTreeTest, LargeValueIsReadWithOneRead) {
  auto tree = NewTree();
  std::string big(6 << 20, '\0');
  std::mt19937_64 rng(::vde::testing::TestSeed());
  for (size_t i = 0; i < big.size(); i += 8) {
    uint64_t r = rng();
    std::memcpy(big.data() + i, &r, 8);
  }
  ASSERT_TRUE(tree->Put("big", big).ok());
  ASSERT_TRUE(tree->Put("small", "s").ok());
  ASSERT_TRUE(cache_->FlushAll().ok());
  const uint64_t blocks = OverflowBlocksFor(big.size(), kBs);
  auto before = dev_->stats();
  std::string got;
  ASSERT_TRUE(tree->Get("big", &got).ok());
  auto after = dev_->stats();
  EXPECT_EQ(got, big);
  EXPECT_EQ(after.reads - before.reads, 1u) << "one request for the whole extent";
  EXPECT_EQ(after.blocks_read - before.blocks_read, blocks);
  // Damage one block of the extent: Corruption naming it.
  AlignedBuffer b(kBs, 4096);
  auto st = tree->GetStats();
  ASSERT_TRUE(st.has_value());
  ASSERT_EQ(st->overflow_blocks, blocks);
  uint64_t first = 0;
  ASSERT_TRUE(tree->Verify({false,
                            [&](uint64_t f, uint32_t, BlockType t) {
                              if (t == BlockType::kOverflow) first = f;
                            }})
                  .ok());
  ASSERT_NE(first, 0u);
  ASSERT_TRUE(dev_->Read(first + 100, 1, b.span()).ok());
  b.data()[2000] ^= std::byte{0x40};
  ASSERT_TRUE(dev_->inner()->Write(first + 100, 1, b.span()).ok());
  Status s = tree->Get("big", &got);
  EXPECT_TRUE(s.IsCorruption());
  EXPECT_NE(s.ToString().find("block " + std::to_string(first + 100) + " of test.vdisk"),
            std::string::npos)
      << s.ToString();
}

TEST_F(BTreeTest, IteratorsBothWaysWithBounds) {
  std::mt19937_64 rng(::vde::testing::TestSeed());
  auto tree = NewTree();
  Model model;
  for (int i = 0; i < 5000; i += 2) {
    std::string v(rng() % 3 == 0 ? 2000 : 10, static_cast<char>('a' + i % 26));
    model[NumKey(i)] = v;
    ASSERT_TRUE(tree->Put(NumKey(i), v).ok());
  }
  for (int round = 0; round < 300; round++) {
    IteratorOptions o;
    int lo = static_cast<int>(rng() % 5200) - 100, hi = lo + static_cast<int>(rng() % 3000);
    if (rng() % 4) o.lower_bound = lo < 0 ? "" : NumKey(lo);
    if (rng() % 4) o.upper_bound = NumKey(hi);
    auto in = [&](const std::string& k) {
      return (o.lower_bound.empty() || k >= o.lower_bound) &&
             (o.upper_bound.empty() || k < o.upper_bound);
    };
    auto it = tree->NewIterator(o);
    // A random walk, checked against the model at every step.
    std::string target = NumKey(static_cast<int>(rng() % 5100));
    Model::const_iterator m;
    switch (rng() % 4) {
      case 0:
        it->SeekToFirst();
        m = model.lower_bound(o.lower_bound);
        break;
      case 1: {
        it->SeekToLast();
        m = o.upper_bound.empty() ? model.end() : model.lower_bound(o.upper_bound);
        m = m == model.begin() ? model.end() : std::prev(m);
        break;
      }
      case 2:
        it->Seek(target);
        m = model.lower_bound(std::max(target, o.lower_bound));
        break;
      default: {
        it->SeekForPrev(target);
        m = model.upper_bound(target);
        if (!o.upper_bound.empty() && target >= o.upper_bound) m = model.lower_bound(o.upper_bound);
        m = m == model.begin() ? model.end() : std::prev(m);
      }
    }
    for (int step = 0; step < 60; step++) {
      bool model_valid = m != model.end() && in(m->first);
      ASSERT_EQ(it->Valid(), model_valid) << "round " << round << " step " << step;
      ASSERT_TRUE(it->status().ok());
      if (!model_valid) break;
      ASSERT_EQ(it->key(), m->first);
      ASSERT_EQ(it->value(), m->second);
      if (rng() % 3 == 0) {
        it->Prev();
        m = m == model.begin() ? model.end() : std::prev(m);
      } else {
        it->Next();
        ++m;
      }
    }
  }
}

TEST_F(BTreeTest, IteratorSurvivesChangesToTheTree) {
  auto tree = NewTree();
  Model model;
  for (int i = 0; i < 3000; i++) {
    model[NumKey(i)] = "v";
    ASSERT_TRUE(tree->Put(NumKey(i), "v").ok());
  }
  // Delete every key while iterating over it (the iterator re-seeks after each change), and
  // insert keys behind it.
  auto it = tree->NewIterator();
  int seen = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next(), seen++) {
    ASSERT_EQ(it->key(), NumKey(seen));
    ASSERT_TRUE(tree->Delete(it->key()).ok());
    if (seen % 2 == 0) {
      ASSERT_TRUE(tree->Put("j" + NumKey(seen), "y").ok());
    }
  }
  EXPECT_EQ(seen, 3000);
  ASSERT_TRUE(it->status().ok());
  auto st = tree->GetStats();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->entries, 1500u);
}

// After a checkpoint, no write touches a block the checkpoint references, and the checkpoint's
// root still opens to exactly the checkpointed contents.
TEST_F(BTreeTest, CopyOnWriteNeverOverwritesTheCheckpoint) {
  std::mt19937_64 rng(::vde::testing::TestSeed());
  NewCache(64);  // small: dirty pages get evicted (written) between checkpoints
  auto tree = NewTree();
  Model model;
  uint64_t seq = 0;
  for (int round = 0; round < 4; round++) {
    for (int i = 0; i < 4000; i++) {
      std::string k = testing::RandomKey(rng, 64);
      if (rng() % 4 == 0 && model.count(k) != 0) {
        ASSERT_TRUE(tree->Delete(k).ok());
        model.erase(k);
      } else {
        std::string v = testing::RandomValue(rng, seq++);
        ASSERT_TRUE(tree->Put(k, v).ok());
        model[k] = v;
      }
    }
    Checkpoint();
    const uint64_t root = tree->root();
    const Model snapshot = model;
    for (int i = 0; i < 3000; i++) {
      std::string k = testing::RandomKey(rng, 64);
      if (rng() % 3 == 0 && !model.empty()) {
        auto it = model.lower_bound(k);
        if (it == model.end()) it = model.begin();
        ASSERT_TRUE(tree->Delete(it->first).ok());
        model.erase(it);
      } else {
        std::string v = testing::RandomValue(rng, seq++);
        ASSERT_TRUE(tree->Put(k, v).ok());
        model[k] = v;
      }
    }
    ASSERT_NE(tree->root(), root);
    ASSERT_TRUE(cache_->FlushAll().ok());
    EXPECT_TRUE(dev_->violations().empty())
        << dev_->violations().size() << " writes hit checkpointed blocks, first "
        << dev_->violations().front();
    // The checkpoint is intact: open it through a second cache on the same device.
    PageCacheOptions o;
    o.budget_bytes = PageCache::BudgetFor(64, kBs);
    auto other_cache = PageCache::Create(dev_.get(), o);
    ASSERT_TRUE(other_cache.has_value());
    auto old = BTree::Open(other_cache->get(), source_.get(), root);
    ASSERT_TRUE(old.has_value()) << old.status().ToString();
    ExpectMatches(**old, snapshot);
    ExpectMatches(*tree, model);
  }
}

TEST_F(BTreeTest, DestroyFreesEveryBlock) {
  std::mt19937_64 rng(::vde::testing::TestSeed());
  auto tree = NewTree();
  for (int i = 0; i < 5000; i++) {
    ASSERT_TRUE(tree->Put(testing::RandomKey(rng, 200), testing::RandomValue(rng, i)).ok());
  }
  Reopen(&tree);  // some pages checkpointed, the rest copied on write below
  for (int i = 0; i < 500; i++) {
    ASSERT_TRUE(tree->Put(testing::RandomKey(rng, 200), testing::RandomValue(rng, i)).ok());
  }
  uint64_t owned = 0;
  ASSERT_TRUE(tree->Verify({false, [&](uint64_t, uint32_t n, BlockType) { owned += n; }}).ok());
  EXPECT_EQ(owned, source_->allocated_blocks()) << "the tree owns every allocated block";
  ASSERT_TRUE(tree->Destroy().ok());
  EXPECT_EQ(source_->allocated_blocks(), 0u);
  std::string v;
  EXPECT_TRUE(tree->Get("a", &v).IsInvalidArgument());
  EXPECT_TRUE(tree->Put("a", "b").IsInvalidArgument());
  EXPECT_TRUE(tree->Destroy().IsInvalidArgument());
  EXPECT_EQ(cache_->stats().resident, 0u);
}

TEST_F(BTreeTest, CorruptPagesAreReportedWithTheirBlock) {
  auto tree = NewTree();
  for (int i = 0; i < 3000; i++) ASSERT_TRUE(tree->Put(NumKey(i), std::string(40, 'v')).ok());
  const std::vector<uint64_t> leaves = LeafBlocks(*tree);
  ASSERT_GE(leaves.size(), 4u);
  Reopen(&tree);
  AlignedBuffer buf(kBs, 4096), other(kBs, 4096);

  // A flipped bit: checksum mismatch.
  const uint64_t bad = leaves[1];
  ASSERT_TRUE(dev_->Read(bad, 1, buf.span()).ok());
  buf.data()[kBs - 10] ^= std::byte{4};
  ASSERT_TRUE(dev_->inner()->Write(bad, 1, buf.span()).ok());
  // A page with a valid checksum but a fence pointing outside the page.
  const uint64_t bad_layout = leaves[2];
  ASSERT_TRUE(dev_->Read(bad_layout, 1, buf.span()).ok());
  PutU16(buf.data() + node_layout::kUpperOff, kBs - 2);
  PutU64(buf.data(), ComputeBlockChecksum(buf.span()));
  ASSERT_TRUE(dev_->inner()->Write(bad_layout, 1, buf.span()).ok());
  // A valid leaf in the wrong place: leaf 3's content sealed as leaf 4 (a lost write).
  const uint64_t misplaced = leaves[4];
  ASSERT_TRUE(dev_->Read(leaves[3], 1, buf.span()).ok());
  SealBlock(buf.span(), BlockType::kBTreeLeaf, misplaced, 1, kNodeVersion);
  ASSERT_TRUE(dev_->inner()->Write(misplaced, 1, buf.span()).ok());

  int corrupt = 0;
  std::set<std::string> messages;
  std::string v;
  for (int i = 0; i < 3000; i++) {
    Status s = tree->Get(NumKey(i), &v);
    if (s.ok()) continue;
    ASSERT_TRUE(s.IsCorruption()) << s.ToString();
    corrupt++;
    messages.insert(s.ToString());
  }
  EXPECT_GT(corrupt, 0);
  std::string all;
  for (const auto& m : messages) all += m + "\n";
  for (uint64_t b : {bad, bad_layout, misplaced}) {
    EXPECT_NE(all.find("block " + std::to_string(b) + " of test.vdisk"), std::string::npos) << all;
  }
  EXPECT_NE(all.find("checksum"), std::string::npos) << all;
  EXPECT_NE(all.find("outside the heap"), std::string::npos) << all;
  EXPECT_NE(all.find("disagree"), std::string::npos) << all;
  Status verified = tree->Verify();
  EXPECT_TRUE(verified.IsCorruption()) << verified.ToString();
  auto it = tree->NewIterator();
  int n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) n++;
  EXPECT_TRUE(it->status().IsCorruption());
  EXPECT_LT(n, 3000);
}

// A corrupt child pointer naming a block that another user of the cache holds (unchecked, and
// not a tree page) gives Corruption, not a read of garbage as a node.
TEST_F(BTreeTest, PageCachedByAnotherUserIsCheckedBeforeUse) {
  auto tree = NewTree();
  for (int i = 0; i < 2000; i++) ASSERT_TRUE(tree->Put(NumKey(i), std::string(50, 'v')).ok());
  ASSERT_GE(tree->height(), 2u);
  const uint64_t root = tree->root();
  tree.reset();
  Checkpoint();
  // A foreign block: a sealed catalog block full of 0xff.
  auto foreign = source_->Allocate(1);
  ASSERT_TRUE(foreign.has_value());
  AlignedBuffer buf(kBs, 4096);
  std::memset(buf.data(), 0xff, kBs);
  SealBlock(buf.span(), BlockType::kCatalog, *foreign, 1);
  ASSERT_TRUE(dev_->Write(*foreign, 1, buf.span()).ok());
  // Point the root's first child at it (a valid checksum: only the tree can tell).
  ASSERT_TRUE(dev_->Read(root, 1, buf.span()).ok());
  Node n(buf.data(), kBs);
  ASSERT_FALSE(n.is_leaf());
  const size_t child_at =
      static_cast<size_t>(n.payload(0).data() - reinterpret_cast<const char*>(buf.data()));
  PutU64(buf.data() + child_at, *foreign);
  PutU64(buf.data(), ComputeBlockChecksum(buf.span()));
  ASSERT_TRUE(dev_->inner()->Write(root, 1, buf.span()).ok());

  NewCache(64);
  auto other_user = cache_->PinShared(*foreign);  // cached without any check
  ASSERT_TRUE(other_user.has_value()) << other_user.status().ToString();
  other_user->Release();
  auto reopened = BTree::Open(cache_.get(), source_.get(), root);
  ASSERT_TRUE(reopened.has_value());
  std::string v;
  Status s = (*reopened)->Get(NumKey(0), &v);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.ToString().find("block " + std::to_string(*foreign)), std::string::npos)
      << s.ToString();
  EXPECT_TRUE((*reopened)->Get(NumKey(1999), &v).ok());
}

TEST_F(BTreeTest, FailedAllocationLeavesTheTreeConsistent) {
  std::mt19937_64 rng(::vde::testing::TestSeed());
  auto tree = NewTree();
  Model model;
  uint64_t seq = 0;
  for (int i = 0; i < 3000; i++) {
    std::string k = testing::RandomKey(rng, 300), v = testing::RandomValue(rng, seq++);
    ASSERT_TRUE(tree->Put(k, v).ok());
    model[k] = v;
  }
  Checkpoint();  // so that every change must first copy pages (allocations)
  int failed = 0;
  for (int i = 0; i < 400; i++) {
    source_->set_fail_allocations(rng() % 2 == 0);
    std::string k = testing::RandomKey(rng, 300);
    if (rng() % 3 == 0 && !model.empty()) {
      auto it = model.lower_bound(k);
      if (it == model.end()) it = model.begin();
      Status s = tree->Delete(it->first);
      if (s.ok()) {
        model.erase(it);
      } else {
        ASSERT_TRUE(s.IsNoSpace()) << s.ToString();
        failed++;
      }
    } else {
      std::string v = testing::RandomValue(rng, seq++);
      Status s = tree->Put(k, v);
      if (s.ok()) {
        model[k] = v;
      } else {
        ASSERT_TRUE(s.IsNoSpace()) << s.ToString();
        failed++;
      }
    }
    if (i % 50 == 0) {
      source_->set_fail_allocations(false);
      ExpectMatches(*tree, model);
    }
  }
  source_->set_fail_allocations(false);
  EXPECT_GT(failed, 0);
  ExpectMatches(*tree, model);
  Reopen(&tree);
  ExpectMatches(*tree, model);
}

// A delete whose merge cannot get a block (the sibling must be copied first) is still a delete:
// it returns OK and the key is gone, rather than NoSpace for a change that was made.
TEST_F(BTreeTest, DeleteWhoseMergeFindsNoSpaceIsStillADelete) {
  auto tree = NewTree();
  Model model;
  // Random order: leaves split near the middle and stay about 70% full, so merges fit.
  std::vector<int> order(2000);
  for (int i = 0; i < 2000; i++) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937_64(::vde::testing::TestSeed()));
  for (int i : order) {
    char k[16];
    std::snprintf(k, sizeof(k), "key%06d", i);
    ASSERT_TRUE(tree->Put(k, std::string(100, 'v')).ok());
    model[k] = std::string(100, 'v');
  }
  Checkpoint();  // every page now belongs to the checkpoint: changing one copies it first
  ASSERT_TRUE(tree->Put("key000500", "w").ok());  // the leaf of 500 and its path are copied
  model["key000500"] = "w";
  source_->set_fail_allocations(true);
  int deleted = 0;
  for (int i = 300; i < 700; i++) {
    if (i == 500) continue;
    char k[16];
    std::snprintf(k, sizeof(k), "key%06d", i);
    Status s = tree->Delete(k);
    std::string v;
    if (s.IsNoSpace()) {  // a leaf not copied yet: then nothing may have changed
      ASSERT_TRUE(tree->Get(k, &v).ok()) << k << " deleted although Delete said NoSpace";
      continue;
    }
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_TRUE(tree->Get(k, &v).IsNotFound()) << k;
    model.erase(k);
    deleted++;
  }
  source_->set_fail_allocations(false);
  EXPECT_GT(deleted, 10);  // the copied leaf emptied below the merge threshold
  ExpectMatches(*tree, model);
  ASSERT_TRUE(tree->Verify().ok());
}

TEST_F(BTreeTest, CacheBudgetHoldsForATreeTenTimesLarger) {
  constexpr uint64_t kBudget = 1 << 20;
  PageCacheOptions o;
  o.budget_bytes = kBudget;
  auto c = PageCache::Create(dev_.get(), o);
  ASSERT_TRUE(c.has_value());
  cache_ = std::move(*c);
  auto tree = NewTree();
  std::mt19937_64 rng(::vde::testing::TestSeed());
  Model model;
  for (int i = 0; source_->allocated_blocks() * kBs < 10 * kBudget; i++) {
    std::string k = testing::RandomKey(rng, 200), v(rng() % 300, 'v');
    ASSERT_TRUE(tree->Put(k, v).ok());
    model[k] = v;
    if (i % 1000 == 0) {
      PageCacheStats st = cache_->stats();
      ASSERT_LE(st.resident, st.frames);
      ASSERT_LE(st.memory_bytes, kBudget);
    }
  }
  ExpectMatches(*tree, model);
  PageCacheStats st = cache_->stats();
  EXPECT_LE(st.resident, st.frames);
  EXPECT_LE(st.memory_bytes, kBudget);
  EXPECT_GT(st.evictions, st.frames);
}

TEST_F(BTreeTest, OpenRejectsBadRoots) {
  auto tree = NewTree();
  ASSERT_TRUE(tree->Put("a", "b").ok());
  Checkpoint();
  EXPECT_TRUE(BTree::Open(cache_.get(), source_.get(), 0).status().IsInvalidArgument());
  EXPECT_TRUE(
      BTree::Open(cache_.get(), source_.get(), dev_->block_count()).status().IsInvalidArgument());
  // A block that is not a tree page: Corruption naming it.
  auto s = BTree::Open(cache_.get(), source_.get(), dev_->block_count() - 1).status();
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.ToString().find("block " + std::to_string(dev_->block_count() - 1)),
            std::string::npos);
}

// Several trees share one small cache; each has a writer thread, and readers run against one.
TEST_F(BTreeTest, TreesShareOneCacheAcrossThreads) {
  constexpr int kTrees = 3;
  NewCache(96);
  const uint64_t seed = ::vde::testing::TestSeed();
  std::vector<std::unique_ptr<BTree>> trees;
  for (int t = 0; t < kTrees; t++) trees.push_back(NewTree());
  // Fixed keys the readers check while writers change other keys.
  for (int i = 0; i < 500; i++) ASSERT_TRUE(trees[0]->Put("fixed" + NumKey(i), NumKey(i)).ok());
  std::vector<Model> models(kTrees);
  std::atomic<bool> stop{false}, failed{false};
  const int ops = testing::LongTests() ? 100000 : 15000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kTrees; t++) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + t);
      for (int i = 0; i < ops && !failed; i++) {
        std::string k = testing::RandomKey(rng, 100);
        Status s;
        if (rng() % 4 == 0 && models[t].count(k) != 0) {
          s = trees[t]->Delete(k);
          models[t].erase(k);
        } else {
          std::string v = testing::RandomValue(rng, i);
          s = trees[t]->Put(k, v);
          models[t][k] = v;
        }
        if (!s.ok()) {
          failed = true;
          ADD_FAILURE() << s.ToString();
        }
      }
    });
  }
  for (int r = 0; r < 2; r++) {
    threads.emplace_back([&, r] {
      std::mt19937_64 rng(seed + 100 + r);
      std::string v;
      while (!stop && !failed) {
        int i = static_cast<int>(rng() % 500);
        Status s = trees[0]->Get("fixed" + NumKey(i), &v);
        if (!s.ok() || v != NumKey(i)) {
          failed = true;
          ADD_FAILURE() << s.ToString();
        }
        auto it = trees[0]->NewIterator({"fixed", "fixee"});
        int n = 0;
        for (it->SeekToFirst(); it->Valid() && n < 20; it->Next()) n++;
        if (!it->status().ok()) {
          failed = true;
          ADD_FAILURE() << it->status().ToString();
        }
      }
    });
  }
  for (int t = 0; t < kTrees; t++) threads[t].join();
  stop = true;
  for (size_t t = kTrees; t < threads.size(); t++) threads[t].join();
  ASSERT_FALSE(failed);
  for (int i = 0; i < 500; i++) models[0]["fixed" + NumKey(i)] = NumKey(i);
  for (int t = 0; t < kTrees; t++) ExpectMatches(*trees[t], models[t]);
}

}  // namespace
}  // namespace vde::index
