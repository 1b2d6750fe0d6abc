#include "index/node.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "blockdev/block_device.h"
#include "index/overflow.h"
#include "tests/test_util.h"

namespace vde::index {
namespace {

constexpr uint32_t kBs = 4096;

std::string RandomKey(std::mt19937_64& rng, size_t max_len) {
  std::string k(1 + rng() % max_len, '\0');
  for (char& c : k) c = static_cast<char>("abc\x00\xff"[rng() % 5]);
  return k;
}

TEST(NodeLimits, KeysFitThreeTimesWithAValue) {
  EXPECT_EQ(MaxKeySize(4096), 1024u);
  EXPECT_EQ(MaxInlineValueSize(4096), 884u);
  for (uint32_t bs = blockdev::kMinBlockSize; bs <= blockdev::kMaxBlockSize; bs *= 2) {
    const uint32_t k = MaxKeySize(bs), t = MaxInlineValueSize(bs);
    SCOPED_TRACE(bs);
    // Two fences and one entry of the largest sizes fit an empty node (NODE_FORMAT.md).
    EXPECT_LE(3 * k + kSlotSize + t, NodeCapacity(bs));
    EXPECT_GE(t, kOverflowRefSize);
    EXPECT_GE(t, 32u);
    EXPECT_LE(k, 65535u);
    EXPECT_LE(t, 65535u);
    EXPECT_GE(OverflowPayloadPerBlock(bs), 1u);
  }
}

TEST(NodeKeys, ShortestSeparatorLiesBetween) {
  std::mt19937_64 rng(::vde::testing::TestSeed());
  for (int i = 0; i < 20000; i++) {
    std::string a = RandomKey(rng, 12), b = RandomKey(rng, 12);
    if (a == b) continue;
    if (b < a) std::swap(a, b);
    std::string s(ShortestSeparator(a, b));
    ASSERT_LE(a, s);
    ASSERT_LT(s, b);
    ASSERT_LE(s.size(), std::max(a.size(), b.size()));
  }
  EXPECT_EQ(ShortestSeparator("abc", "abd"), "abc");
  EXPECT_EQ(ShortestSeparator("abc", "abzzz"), "abz");
  EXPECT_EQ(ShortestSeparator("ab", "abc"), "ab");
}

class NodeTest : public ::testing::Test {
 protected:
  NodeTest() : page_(kBs), scratch_(kBs) {}

  MutableNode Make(uint8_t level, std::string_view lower, std::string_view upper) {
    MutableNode n(page_.data(), kBs, scratch_.data());
    n.Init(level, lower, upper, level == 0 ? 0 : 99);
    StampNode(page_, 7, 1);
    return n;
  }
  Status Validate() { return ValidateNode(page_, 7, "node.test"); }

  std::vector<std::byte> page_, scratch_;
};

TEST_F(NodeTest, InsertSearchRemoveAgainstAModel) {
  std::mt19937_64 rng(::vde::testing::TestSeed());
  const std::string lower = "key/", upper = "key0";  // a shared prefix "key"
  MutableNode n = Make(0, lower, upper);
  EXPECT_EQ(n.prefix(), "key");
  std::set<std::string> model;
  auto in_range = [&](const std::string& k) { return k > lower && k <= upper; };
  for (int round = 0; round < 4000; round++) {
    std::string k = "key/" + RandomKey(rng, 10);
    if (!in_range(k)) continue;
    bool found;
    uint32_t pos = n.LowerBound(k, &found);
    auto it = model.lower_bound(k);
    ASSERT_EQ(pos, static_cast<uint32_t>(std::distance(model.begin(), it)));
    ASSERT_EQ(found, it != model.end() && *it == k);
    if (found || rng() % 3 == 0) {
      if (found) {
        n.Remove(pos);
        model.erase(k);
      }
    } else {
      std::string v(rng() % 40, 'v');
      if (n.EntrySpace(k.size(), v.size()) > n.FreeSpaceAfterCompaction()) {
        // Full: empty half of it (exercises holes and compaction).
        for (uint32_t i = 0; i < n.count(); i += 1) {
          std::string key;
          n.CopyKey(i, &key);
          model.erase(key);
          n.Remove(i);
        }
        continue;
      }
      n.Insert(pos, k, v, 0);
      model.insert(k);
    }
    ASSERT_EQ(n.count(), model.size());
    if (round % 97 == 0) {
      ASSERT_TRUE(Validate().ok()) << Validate().ToString();
    }
  }
  ASSERT_TRUE(Validate().ok()) << Validate().ToString();
  uint32_t i = 0;
  for (const std::string& k : model) {
    std::string key;
    n.CopyKey(i, &key);
    EXPECT_EQ(key, k);
    EXPECT_EQ(n.CompareKey(i, k), 0);
    i++;
  }
  // Keys outside the prefix land at the ends.
  bool found;
  EXPECT_EQ(n.LowerBound("a", &found), 0u);
  EXPECT_EQ(n.LowerBound("kez", &found), n.count());
  EXPECT_EQ(n.LowerBound("ke", &found), 0u);
}

TEST_F(NodeTest, CompactionReclaimsHoles) {
  MutableNode n = Make(0, {}, {});
  std::string v(100, 'x');
  uint32_t count = 0;
  for (int i = 0; n.EntrySpace(5, v.size()) <= n.FreeSpaceAfterCompaction(); i++) {
    std::string key = std::to_string(10000 + i);
    n.Insert(n.count(), key, v, 0);
    count++;
  }
  EXPECT_LT(n.FreeSpace(), 200u);
  for (uint32_t i = 0; i < count; i += 2) n.Remove(n.count() / 2);  // holes everywhere
  uint32_t after = n.FreeSpaceAfterCompaction();
  EXPECT_GT(after, n.FreeSpace());
  ASSERT_LE(n.EntrySpace(1, n.FreeSpace()), after);
  n.Insert(0, "0", std::string(n.FreeSpace(), 'y'), 0);  // fits only after compaction
  EXPECT_EQ(n.FreeSpace(), n.FreeSpaceAfterCompaction());
  ASSERT_TRUE(Validate().ok()) << Validate().ToString();
}

TEST_F(NodeTest, ValidationRejectsBadLayouts) {
  MutableNode n = Make(0, "b", "d");
  n.Insert(0, "c1", "value1", 0);
  n.Insert(1, "c2", "value2", 0);
  ASSERT_TRUE(Validate().ok());
  auto expect_corrupt = [&](auto mutate, const char* what) {
    std::vector<std::byte> saved = page_;
    mutate();
    Status s = Validate();
    EXPECT_TRUE(s.IsCorruption()) << what << ": " << s.ToString();
    EXPECT_NE(s.ToString().find("block 7 of node.test"), std::string::npos) << s.ToString();
    page_ = saved;
  };
  namespace nl = node_layout;
  expect_corrupt([&] { PutU16(page_.data() + nl::kCount, 400); }, "count");
  expect_corrupt([&] { PutU16(page_.data() + nl::kSlots + nl::kSlotOffset, 4095); }, "offset");
  expect_corrupt([&] { PutU16(page_.data() + nl::kSlots + nl::kSlotKeyLen, 3000); }, "key len");
  expect_corrupt([&] { PutU32(page_.data() + nl::kHeapUsed, 5); }, "heap used");
  expect_corrupt([&] { PutU32(page_.data() + nl::kHeapStart, 9000); }, "heap start");
  expect_corrupt([&] { page_[nl::kLevel] = std::byte{3}; }, "level vs type");
  expect_corrupt([&] { PutU16(page_.data() + 8, static_cast<uint16_t>(BlockType::kCatalog)); },
                 "type");
  expect_corrupt([&] { PutU16(page_.data() + nl::kPrefixLen, 1); }, "prefix");
  expect_corrupt([&] { page_[nl::kSlots + nl::kSlotFlags] = std::byte{1}; }, "overflow flag");
  expect_corrupt([&] { PutU64(page_.data() + nl::kUpperChild, 5); }, "leaf with child");
  // Swap the two slots: keys out of order.
  expect_corrupt(
      [&] {
        std::byte tmp[kSlotSize];
        std::memcpy(tmp, page_.data() + nl::kSlots, kSlotSize);
        std::memcpy(page_.data() + nl::kSlots, page_.data() + nl::kSlots + kSlotSize, kSlotSize);
        std::memcpy(page_.data() + nl::kSlots + kSlotSize, tmp, kSlotSize);
      },
      "order");
}

// Random byte damage to a valid node must give Corruption or a node that is safe to search.
TEST_F(NodeTest, RandomDamageNeverCrashes) {
  std::mt19937_64 rng(::vde::testing::TestSeed());
  for (uint8_t level : {0, 1}) {
    MutableNode n = Make(level, "apple", "apricot");
    for (int i = 0; i < 60; i++) {
      std::string k = "ap" + std::string(1, static_cast<char>('p' + i % 2)) + RandomKey(rng, 8);
      if (!(k > "apple" && k <= "apricot")) continue;
      bool found;
      uint32_t pos = n.LowerBound(k, &found);
      if (found) continue;
      std::string payload(level == 0 ? rng() % 30 : 8, '\x01');
      if (n.EntrySpace(k.size(), payload.size()) > n.FreeSpaceAfterCompaction()) break;
      n.Insert(pos, k, payload, 0);
    }
    ASSERT_TRUE(Validate().ok()) << Validate().ToString();
    const std::vector<std::byte> good = page_;
    int accepted = 0;
    const int rounds = 20000;
    for (int r = 0; r < rounds; r++) {
      page_ = good;
      int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; f++) {
        // Mostly the header and slots, where the structure lives.
        size_t at = (rng() % 4 == 0) ? 32 + rng() % (kBs - 32) : 32 + rng() % 900;
        page_[at] = static_cast<std::byte>(rng());
      }
      Status s = Validate();
      if (!s.ok()) {
        ASSERT_TRUE(s.IsCorruption());
        continue;
      }
      accepted++;
      Node v(page_.data(), kBs);
      std::string key;
      for (uint32_t i = 0; i < v.count(); i++) {
        v.CopyKey(i, &key);
        bool found;
        ASSERT_EQ(v.LowerBound(key, &found), i);
        ASSERT_TRUE(found);
      }
      MutableNode m(page_.data(), kBs, scratch_.data());
      m.Compact();
      ASSERT_TRUE(Validate().ok()) << Validate().ToString();
    }
    EXPECT_LT(accepted, rounds);
  }
}

}  // namespace
}  // namespace vde::index
