// A fixture for B+tree tests: a recording memory device, a test BlockSource, a cache, and
// helpers to checkpoint, reopen and compare a tree with a std::map model.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "index/btree.h"
#include "index/page_cache.h"
#include "tests/index/index_test_util.h"
#include "tests/test_util.h"

namespace vde::index::testing {

using Model = std::map<std::string, std::string>;

class BTreeFixture : public ::testing::Test {
 protected:
  static constexpr uint32_t kBs = 4096;

  void SetUp() override {
    dev_ = RecordingDevice::Make(kBs, 64);
    source_ = std::make_unique<TestBlockSource>(dev_.get());
    NewCache(frames_);
  }

  void NewCache(uint32_t frames) {
    frames_ = frames;
    cache_.reset();
    PageCacheOptions o;
    o.budget_bytes = PageCache::BudgetFor(frames, kBs);
    auto c = PageCache::Create(dev_.get(), o);
    ASSERT_TRUE(c.has_value()) << c.status().ToString();
    cache_ = std::move(*c);
  }

  std::unique_ptr<BTree> NewTree(const BTreeOptions& o = {}) {
    auto t = BTree::Create(cache_.get(), source_.get(), o);
    EXPECT_TRUE(t.has_value()) << t.status().ToString();
    return t.has_value() ? std::move(*t) : nullptr;
  }

  // FlushAll, then make the source's current allocations the durable checkpoint (deferred
  // frees become reusable, the generation advances) and forbid writes to those blocks.
  void Checkpoint() {
    ASSERT_TRUE(cache_->FlushAll().ok());
    dev_->Protect(source_->Checkpoint());
  }

  // Checkpoint, drop the tree and the cache, and reopen the tree from its root.
  void Reopen(std::unique_ptr<BTree>* tree, const BTreeOptions& o = {}) {
    const uint64_t root = (*tree)->root();
    Checkpoint();
    tree->reset();
    NewCache(frames_);
    auto t = BTree::Open(cache_.get(), source_.get(), root, o);
    ASSERT_TRUE(t.has_value()) << t.status().ToString();
    *tree = std::move(*t);
  }

  // The tree's leaf blocks, in the order Verify visits them (empty, with a failure, when
  // Verify fails).
  static std::vector<uint64_t> LeafBlocks(const BTree& tree) {
    std::vector<uint64_t> leaves;
    const Status s = tree.Verify({false, [&](uint64_t b, uint32_t, BlockType t) {
                                    if (t == BlockType::kBTreeLeaf) leaves.push_back(b);
                                  }});
    EXPECT_TRUE(s.ok()) << s.ToString();
    return s.ok() ? leaves : std::vector<uint64_t>{};
  }

  // Full scans both ways plus point lookups of every key.
  static void ExpectMatches(const BTree& tree, const Model& model) {
    auto it = tree.NewIterator();
    auto m = model.begin();
    size_t n = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next(), ++m, ++n) {
      ASSERT_NE(m, model.end()) << "tree has extra key of size " << it->key().size();
      ASSERT_EQ(it->key(), m->first) << "at entry " << n;
      ASSERT_EQ(it->value(), m->second) << "value of entry " << n;
    }
    ASSERT_TRUE(it->status().ok()) << it->status().ToString();
    ASSERT_EQ(m, model.end()) << "tree misses keys from entry " << n;
    auto r = model.rbegin();
    for (it->SeekToLast(); it->Valid(); it->Prev(), ++r) {
      ASSERT_NE(r, model.rend());
      ASSERT_EQ(it->key(), r->first);
      ASSERT_EQ(it->value().size(), r->second.size());
    }
    ASSERT_TRUE(it->status().ok()) << it->status().ToString();
    ASSERT_EQ(r, model.rend());
    std::string v;
    for (const auto& [k, want] : model) {
      Status s = tree.Get(k, &v);
      ASSERT_TRUE(s.ok()) << s.ToString();
      ASSERT_EQ(v, want);
    }
    auto st = tree.GetStats();
    ASSERT_TRUE(st.has_value()) << st.status().ToString();
    EXPECT_EQ(st->entries, model.size());
    Status verified = tree.Verify({true, nullptr});
    ASSERT_TRUE(verified.ok()) << verified.ToString();
  }

  uint32_t frames_ = 256;
  std::unique_ptr<RecordingDevice> dev_;
  std::unique_ptr<TestBlockSource> source_;
  std::unique_ptr<PageCache> cache_;
};

// Keys of mixed sizes from a small alphabet (so prefixes are shared and keys collide), with
// some at the size limit.
inline std::string RandomKey(std::mt19937_64& rng, uint32_t max_key) {
  static const char kAlphabet[] = {'a', 'b', 'c', 'd', '\0', '\xff', 'k', 'z'};
  size_t len;
  switch (rng() % 10) {
    case 0:
      len = max_key - rng() % 3;
      break;
    case 1:
    case 2:
      len = 1 + rng() % max_key;
      break;
    default:
      len = 1 + rng() % 24;
  }
  std::string k(len, 'a');
  // Long keys share long prefixes more often than not, the hard case for separators.
  size_t shared = (rng() % 2 == 0) ? len * (rng() % 100) / 100 : 0;
  for (size_t i = 0; i < len; i++) {
    k[i] = i < shared ? 'p' : kAlphabet[rng() % sizeof(kAlphabet)];
  }
  return k;
}

inline std::string RandomValue(std::mt19937_64& rng, uint64_t seq) {
  size_t len;
  switch (rng() % 20) {
    case 0:
      len = 0;
      break;
    case 1:
    case 2:
      len = 800 + rng() % 200;  // around the inline limit
      break;
    case 3:
      len = 1000 + rng() % 20000;  // out of line, a few pages
      break;
    default:
      len = rng() % 64;
  }
  std::string v(len, '\0');
  for (size_t i = 0; i < len; i++) v[i] = static_cast<char>('A' + (seq + i * 7) % 26);
  if (len >= 8) std::memcpy(v.data(), &seq, 8);
  return v;
}

}  // namespace vde::index::testing
