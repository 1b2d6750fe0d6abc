#include "index/node.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "blockdev/block_device.h"
#include "index/overflow.h"
#include "index/page_cache.h"
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
    // Two fences and one entry of the largest sizes fit an empty node (docs/FORMAT.md).
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

// CompareKeys (8 bytes at a time, memcmp past 64) orders as std::string does: keys that share
// long prefixes, differ in any byte (high bytes included), or are prefixes of each other.
TEST(NodeKeys, CompareKeysOrdersAsStdString) {
  const uint64_t seed = ::vde::testing::TestSeed();
  std::mt19937_64 rng(seed);
  auto sign = [](int c) { return (c > 0) - (c < 0); };
  for (int i = 0; i < 200000; i++) {
    const size_t len = rng() % 4 == 0 ? rng() % 200 : rng() % 24;
    std::string a(len, '\0');
    for (char& c : a) c = static_cast<char>(rng() % 4 == 0 ? 0xff - rng() % 3 : rng() % 3);
    std::string b = a;
    switch (rng() % 4) {
      case 0:  // one byte changed
        if (!b.empty()) b[rng() % b.size()] = static_cast<char>(rng());
        break;
      case 1:  // cut short
        b.resize(rng() % (b.size() + 1));
        break;
      case 2:  // extended
        b.push_back(static_cast<char>(rng()));
        break;
      default:  // equal
        break;
    }
    if (rng() % 2) std::swap(a, b);
    ASSERT_EQ(sign(CompareKeys(a, b)), sign(a.compare(b))) << "seed " << seed << " case " << i;
  }
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
      if (!n.HasRoom(k, v.size(), 0)) {
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
  // Keys of two widths: the variable encoding, whose heap gets holes.
  for (int i = 0; n.HasRoom("123456", v.size(), 0); i++) {
    std::string key = std::to_string(10000 + i) + (i % 2 == 0 ? "" : "+");
    n.Insert(n.count(), key, v, 0);
    count++;
  }
  EXPECT_EQ(n.encoding(), NodeEncoding::kVariable);
  EXPECT_LT(n.FreeSpace(), 200u);
  for (uint32_t i = 0; i < count; i += 2) n.Remove(n.count() / 2);  // holes everywhere
  uint32_t after = n.FreeSpaceAfterCompaction();
  EXPECT_GT(after, n.FreeSpace());
  ASSERT_TRUE(n.HasRoom("0", n.FreeSpace(), 0));
  n.Insert(0, "0", std::string(n.FreeSpace(), 'y'), 0);  // fits only after compaction
  EXPECT_EQ(n.FreeSpace(), n.FreeSpaceAfterCompaction());
  ASSERT_TRUE(Validate().ok()) << Validate().ToString();
}

TEST_F(NodeTest, ValidationRejectsBadLayouts) {
  MutableNode n = Make(0, "b", "d");
  n.Insert(0, "c1", "value1", 0);
  n.Insert(1, "c22", "value2", 0);  // keys of two widths: the variable encoding
  ASSERT_EQ(n.encoding(), NodeEncoding::kVariable);
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
  expect_corrupt([&] { PutU16(page_.data() + nl::kPrefixLen, 2); }, "prefix past its fence");
  expect_corrupt(
      [&] {
        PutU16(page_.data() + nl::kPrefixLen, 1);
        PutU16(page_.data() + 10, kNodeVersionV1);
      },
      "version 1 prefix longer than the fences share");
  expect_corrupt([&] { page_[nl::kSlots + nl::kSlotFlags] = std::byte{1}; }, "overflow flag");
  expect_corrupt([&] { PutU64(page_.data() + nl::kUpperChild, 5); }, "leaf with child");
  expect_corrupt([&] { PutU16(page_.data() + 10, 3); }, "version");
  expect_corrupt([&] { page_[nl::kKeyWidth] = std::byte{2}; }, "key width in a variable node");
  expect_corrupt([&] { page_[nl::kPayloadWidth] = std::byte{6}; }, "payload width");
  expect_corrupt([&] { page_[nl::kNodeFlags] = std::byte{0x0c}; }, "run 3");
  expect_corrupt([&] { page_[nl::kNodeFlags] = std::byte{0x10}; }, "unknown node flag");
  expect_corrupt(
      [&] {
        page_[nl::kNodeFlags] = std::byte{0x04};
        PutU16(page_.data() + 10, kNodeVersionV1);
      },
      "version 1 with a run hint");
  // Swap the two slots: keys out of order.
  expect_corrupt(
      [&] {
        std::byte tmp[kSlotSize];
        std::memcpy(tmp, page_.data() + nl::kSlots, kSlotSize);
        std::memcpy(page_.data() + nl::kSlots, page_.data() + nl::kSlots + kSlotSize, kSlotSize);
        std::memcpy(page_.data() + nl::kSlots + kSlotSize, tmp, kSlotSize);
      },
      "order");
  // A version 1 page (the layout before node flags) still reads.
  n.NoteInsertAt(1);
  ASSERT_EQ(n.run(), InsertRun::kAscending);
  page_[nl::kNodeFlags] = std::byte{0};
  PutU16(page_.data() + 10, kNodeVersionV1);
  EXPECT_TRUE(Validate().ok()) << Validate().ToString();
}

// A big-endian 8-byte key, as integer keys are stored so that byte order is numeric order.
std::string BigEndian(uint64_t v, size_t width = 8) {
  std::string k(width, '\0');
  for (size_t i = 0; i < width && i < 8; i++) k[width - 1 - i] = static_cast<char>(v >> (8 * i));
  return k;
}

std::string OverflowPayload(uint64_t first_block) {
  std::string enc(kOverflowRefSize, '\0');
  OverflowRef ref{first_block,
                  static_cast<uint32_t>((5000 + OverflowPayloadPerBlock(kBs) - 1) /
                                        OverflowPayloadPerBlock(kBs)),
                  5000};
  EncodeOverflowRef(ref, reinterpret_cast<std::byte*>(enc.data()));
  return enc;
}

TEST_F(NodeTest, FixedEncodingsFollowTheEntries) {
  MutableNode n = Make(0, {}, {});
  std::map<std::string, std::string> model;
  auto put = [&](const std::string& k, const std::string& v, uint8_t flags = 0) {
    bool found;
    uint32_t pos = n.LowerBound(k, &found);
    const uint32_t replace = found ? pos : Node::kNoSlot;
    ASSERT_TRUE(n.HasRoom(k, v.size(), flags, replace));
    const uint64_t predicted = n.UsedBytesAfterInsert(k, v.size(), flags, replace);
    if (found) n.Remove(pos);
    n.Insert(pos, k, v, flags);
    EXPECT_EQ(n.UsedBytes(), predicted);
    model[k] = v;
  };
  auto check = [&] {
    ASSERT_TRUE(Validate().ok()) << Validate().ToString();
    ASSERT_EQ(n.count(), model.size());
    uint32_t i = 0;
    std::string key;
    for (const auto& [k, v] : model) {
      n.CopyKey(i, &key);
      ASSERT_EQ(key, k);
      ASSERT_EQ(n.payload(i), v);
      bool found;
      ASSERT_EQ(n.LowerBound(k, &found), i);
      ASSERT_TRUE(found);
      i++;
    }
  };
  for (uint64_t i = 0; i < 100; i++) put(BigEndian(i * 7), BigEndian(i));
  EXPECT_EQ(n.encoding(), NodeEncoding::kFixedEntries);
  EXPECT_EQ(n.key_width(), 8u);
  EXPECT_EQ(n.payload_width(), 8u);
  EXPECT_EQ(n.entry_size(), 16u);
  EXPECT_EQ(n.UsedBytes(), kNodeHeaderSize + 100 * 16);
  check();
  // Searches between and around the keys, and for keys of other lengths.
  bool found;
  EXPECT_EQ(n.LowerBound(BigEndian(8), &found), 2u);
  EXPECT_FALSE(found);
  // A proper prefix of the keys 256 to 511, above the 37 keys 0, 7, ... 252.
  EXPECT_EQ(n.LowerBound(BigEndian(1, 7), &found), 37u);
  EXPECT_FALSE(found);
  EXPECT_EQ(n.LowerBound(BigEndian(7) + "x", &found), 2u);
  EXPECT_EQ(n.LowerBound(BigEndian(10000), &found), 100u);

  put(BigEndian(3), "abc");  // a value of another width: payloads move to the heap
  EXPECT_EQ(n.encoding(), NodeEncoding::kFixedKeys);
  check();
  put(BigEndian(5), std::string(300, 'v'));  // wider than any fixed payload
  put(BigEndian(6), OverflowPayload(1000), kSlotFlagOverflow);
  EXPECT_EQ(n.encoding(), NodeEncoding::kFixedKeys);
  EXPECT_EQ(n.flags(n.LowerBound(BigEndian(6), &found)), kSlotFlagOverflow);
  check();
  put(BigEndian(4, 9), "x");  // a key of another width: back to slots
  EXPECT_EQ(n.encoding(), NodeEncoding::kVariable);
  EXPECT_EQ(n.key_width(), 0u);
  check();

  // Removing the odd ones out lets Reencode go back, one step at a time.
  auto erase = [&](const std::string& k) {
    uint32_t pos = n.LowerBound(k, &found);
    ASSERT_TRUE(found);
    n.Remove(pos);
    model.erase(k);
  };
  EXPECT_FALSE(n.Reencode());
  erase(BigEndian(4, 9));
  EXPECT_TRUE(n.Reencode());
  EXPECT_EQ(n.encoding(), NodeEncoding::kFixedKeys);
  check();
  for (uint64_t k : {3, 5, 6}) erase(BigEndian(k));
  EXPECT_TRUE(n.Reencode());
  EXPECT_EQ(n.encoding(), NodeEncoding::kFixedEntries);
  EXPECT_FALSE(n.Reencode());
  check();
  while (!model.empty()) erase(model.begin()->first);
  EXPECT_EQ(n.encoding(), NodeEncoding::kVariable) << "an empty node is variable";
  check();
  // The first entry decides: long keys and values stay variable.
  put(std::string(300, 'k'), "v");
  EXPECT_EQ(n.encoding(), NodeEncoding::kVariable);
  check();
}

// A node whose prefix was extended past the fences' common prefix (as the page growing at the
// edge of a sequential load is) rewrites itself with a shorter one for a key that does not share
// it; version 2 validation accepts either, within the bounds.
TEST_F(NodeTest, PrefixShrinksForAKeyThatDoesNotShareIt) {
  MutableNode n = Make(0, "abcd0", {});  // no upper fence: the fences share nothing
  EXPECT_EQ(n.prefix_len(), 0u);
  n.ExtendPrefix("abcd1", "abcd1");
  EXPECT_EQ(n.prefix(), "abcd");
  std::map<std::string, std::string> model;
  auto put = [&](const std::string& k) {
    bool found;
    const uint32_t pos = n.LowerBound(k, &found);
    ASSERT_FALSE(found);
    const uint64_t predicted = n.UsedBytesAfterInsert(k, 8, 0);
    n.Insert(pos, k, "12345678", 0);
    EXPECT_EQ(n.UsedBytes(), predicted) << k;
    model[k] = "12345678";
    ASSERT_TRUE(Validate().ok()) << Validate().ToString();
  };
  for (char c = '1'; c <= '9'; c++) put(std::string("abcd") + c);
  EXPECT_EQ(n.encoding(), NodeEncoding::kFixedEntries);
  EXPECT_EQ(n.key_width(), 1u);
  put("abd12");  // shares "ab": the other suffixes grow to 3 bytes, this one is 3 too
  EXPECT_EQ(n.prefix(), "ab");
  EXPECT_EQ(n.encoding(), NodeEncoding::kFixedEntries);
  EXPECT_EQ(n.key_width(), 3u);
  put("b");  // shares nothing: back to the fences' (empty) prefix, and to slots
  EXPECT_EQ(n.prefix_len(), 0u);
  EXPECT_EQ(n.encoding(), NodeEncoding::kVariable);
  uint32_t i = 0;
  std::string key;
  for (const auto& [k, v] : model) {
    n.CopyKey(i, &key);
    EXPECT_EQ(key, k);
    EXPECT_EQ(n.payload(i), v);
    i++;
  }
  // Removing "b" and "abd12" lets Reencode take the long prefix back.
  bool found;
  n.Remove(n.LowerBound("b", &found));
  n.Remove(n.LowerBound("abd12", &found));
  EXPECT_TRUE(n.Reencode());
  EXPECT_EQ(n.prefix(), "abcd");
  EXPECT_EQ(n.encoding(), NodeEncoding::kFixedEntries);
  ASSERT_TRUE(Validate().ok()) << Validate().ToString();

  // With the lower fence infinite the prefix comes from the upper one, and a key may be the
  // prefix itself: it keeps one suffix byte, the prefix gives up one.
  MutableNode m = Make(0, {}, "abcx");
  m.ExtendPrefix("abc1", "abc9");
  EXPECT_EQ(m.prefix(), "abc");
  m.Insert(0, "abc5", "", 0);
  const uint64_t predicted = m.UsedBytesAfterInsert("abc", 0, 0);
  m.Insert(0, "abc", "", 0);
  EXPECT_EQ(m.UsedBytes(), predicted);
  EXPECT_EQ(m.prefix(), "ab");
  EXPECT_EQ(m.encoding(), NodeEncoding::kVariable);  // suffixes "c" and "c5"
  ASSERT_TRUE(Validate().ok()) << Validate().ToString();
  m.CopyKey(0, &key);
  EXPECT_EQ(key, "abc");
  EXPECT_EQ(m.LowerBound("abc", &found), 0u);
  EXPECT_TRUE(found);
}

TEST_F(NodeTest, InnerNodesOfFixedKeysStoreChildrenInline) {
  MutableNode n = Make(1, "apple", "apricot");  // prefix "ap"
  std::map<std::string, uint64_t> model;
  for (uint64_t i = 1; i <= 200; i++) {
    std::string k = "apq" + BigEndian(i * 11, 5);
    bool found;
    uint32_t pos = n.LowerBound(k, &found);
    ASSERT_FALSE(found);
    std::string child(8, '\0');
    PutU64(reinterpret_cast<std::byte*>(child.data()), 1000 + i);
    n.Insert(pos, k, child, 0);
    model[k] = 1000 + i;
  }
  EXPECT_EQ(n.encoding(), NodeEncoding::kFixedEntries);
  EXPECT_EQ(n.key_width(), 6u) << "suffixes after the prefix \"ap\"";
  ASSERT_TRUE(Validate().ok()) << Validate().ToString();
  uint32_t i = 0;
  for (const auto& [k, child] : model) {
    EXPECT_EQ(n.child(i), child);
    EXPECT_EQ(n.UpperBound(k), i + 1);
    i++;
  }
  n.SetChild(3, 77);
  EXPECT_EQ(n.child(3), 77u);
  EXPECT_EQ(n.child(n.count()), 99u);
  ASSERT_TRUE(Validate().ok()) << Validate().ToString();
}

// Random puts and removes with mostly one key width and value width, so the node keeps switching
// encodings: the predicted space is exact, the node validates and matches a model, and a node
// built from the same entries takes what NodeSizer says.
TEST_F(NodeTest, PredictedSpaceIsExactThroughEncodingSwitches) {
  std::mt19937_64 rng(::vde::testing::TestSeed());
  MutableNode n = Make(0, "m", "n\x10");  // prefix empty: "m" and "n..." differ at once
  std::map<std::string, std::pair<std::string, uint8_t>> model;
  int switches = 0;
  NodeEncoding last = n.encoding();
  for (int round = 0; round < 20000; round++) {
    // Mostly 7-byte keys; a few 8-byte ones, which removes often target.
    const bool remove = rng() % 4 == 0;
    const bool odd = rng() % (remove ? 2 : 20) == 0;
    std::string k = "m" + (odd ? BigEndian(rng() % 3, 8) : BigEndian(rng() % 300, 7));
    // Now and then a key that does not share the prefix "m" Reencode gives the node.
    if (rng() % 40 == 0) k = "n" + BigEndian(rng() % 16, 1) + BigEndian(rng() % 300, 6);
    bool found;
    uint32_t pos = n.LowerBound(k, &found);
    if (remove) {
      if (found) {
        n.Remove(pos);
        model.erase(k);
      }
    } else {
      std::string v;
      uint8_t flags = 0;
      switch (rng() % 20) {
        case 0:
          v = std::string(rng() % 40, 'x');
          break;
        case 1:
          v = OverflowPayload(500 + rng() % 100);
          flags = kSlotFlagOverflow;
          break;
        default:
          v = BigEndian(rng());
      }
      const uint32_t replace = found ? pos : Node::kNoSlot;
      if (!n.HasRoom(k, v.size(), flags, replace)) {
        if (n.Reencode()) continue;
        for (uint32_t i = 0; i < n.count(); i++) {  // full: drop every other entry
          std::string key;
          n.CopyKey(i, &key);
          model.erase(key);
          n.Remove(i);
        }
        continue;
      }
      const uint64_t predicted = n.UsedBytesAfterInsert(k, v.size(), flags, replace);
      if (found) n.Remove(pos);
      n.Insert(pos, k, v, flags);
      ASSERT_EQ(n.UsedBytes(), predicted) << "round " << round;
      model[k] = {v, flags};
    }
    if (rng() % 50 == 0) n.Reencode();
    if (n.encoding() != last) {
      switches++;
      last = n.encoding();
    }
    ASSERT_EQ(n.count(), model.size());
    if (round % 101 == 0) {
      ASSERT_TRUE(Validate().ok()) << Validate().ToString();
    }
  }
  ASSERT_TRUE(Validate().ok()) << Validate().ToString();
  EXPECT_GT(switches, 10);
  ASSERT_FALSE(model.empty());
  std::vector<std::byte> other(kBs);
  MutableNode built(other.data(), kBs, scratch_.data());
  built.Init(0, n.lower_fence(), n.upper_fence(), 0);
  built.ExtendPrefix(model.begin()->first, model.rbegin()->first);
  // The keys share their lower fence's first byte unless one of the "n" keys is left.
  EXPECT_EQ(built.prefix(), model.rbegin()->first[0] == 'm' ? "m" : "");
  NodeSizer sizer(built.prefix_len(), n.lower_fence().size() + n.upper_fence().size());
  uint32_t i = 0;
  for (const auto& [k, entry] : model) {
    std::string key;
    n.CopyKey(i, &key);
    ASSERT_EQ(key, k);
    ASSERT_EQ(n.payload(i), entry.first);
    ASSERT_EQ(n.flags(i), entry.second);
    sizer.Add(k.size(), entry.first.size(), entry.second);
    built.Insert(i, k, entry.first, entry.second);
    i++;
  }
  EXPECT_EQ(sizer.bytes(), built.UsedBytes());
  EXPECT_EQ(built.encoding(), sizer.encoding());
  EXPECT_EQ(built.encoding(), built.BestEncoding());
  // Reencode brings the node to the same form.
  n.Reencode();
  EXPECT_EQ(n.UsedBytes(), built.UsedBytes());
  EXPECT_EQ(n.prefix_len(), built.prefix_len());
  ASSERT_TRUE(Validate().ok()) << Validate().ToString();
}

TEST_F(NodeTest, ValidationRejectsBadFixedLayouts) {
  namespace nl = node_layout;
  auto expect_corrupt = [&](auto mutate, const char* what) {
    std::vector<std::byte> saved = page_;
    mutate();
    Status s = Validate();
    EXPECT_TRUE(s.IsCorruption()) << what << ": " << s.ToString();
    EXPECT_NE(s.ToString().find("block 7 of node.test"), std::string::npos) << s.ToString();
    page_ = saved;
  };
  // Fixed entries: 3-byte suffixes and 4-byte values.
  MutableNode n = Make(0, "b", "d");
  for (const char* k : {"c01", "c02", "c03"}) n.Insert(n.count(), k, "vvvv", 0);
  ASSERT_EQ(n.encoding(), NodeEncoding::kFixedEntries);
  ASSERT_TRUE(Validate().ok()) << Validate().ToString();
  const size_t stride = 7;
  expect_corrupt([&] { page_[nl::kNodeFlags] = std::byte{2}; }, "encoding 2");
  expect_corrupt([&] { page_[nl::kKeyWidth] = std::byte{0}; }, "key width 0");
  expect_corrupt([&] { page_[nl::kKeyWidth] = std::byte{4}; }, "key width 4");
  expect_corrupt([&] { page_[nl::kPayloadWidth] = std::byte{200}; }, "payload width");
  expect_corrupt([&] { page_[nl::kNodeFlags] = std::byte{1}; }, "payload width, fixed keys");
  expect_corrupt([&] { PutU16(page_.data() + nl::kCount, 0); }, "fixed with no entries");
  expect_corrupt([&] { PutU16(page_.data() + nl::kCount, 600); }, "count");
  expect_corrupt([&] { PutU16(page_.data() + 10, kNodeVersionV1); }, "fixed in version 1");
  expect_corrupt([&] { page_[nl::kSlots + stride + 2] = std::byte{'0'}; }, "order");  // "c00"
  expect_corrupt([&] { page_[nl::kSlots] = std::byte{'a'}; }, "below the lower fence");
  expect_corrupt([&] { page_[nl::kSlots + 2 * stride] = std::byte{'e'}; }, "above the fence");
  expect_corrupt([&] { page_[nl::kHints] = std::byte{1}; }, "hint");
  expect_corrupt([&] { PutU32(page_.data() + nl::kHeapUsed, 7); }, "heap used");

  // Fixed keys: payload references into the heap.
  n.Insert(n.count(), "c04", "much longer value", 0);
  ASSERT_EQ(n.encoding(), NodeEncoding::kFixedKeys);
  ASSERT_TRUE(Validate().ok()) << Validate().ToString();
  const size_t ref = nl::kSlots + 3;  // entry 0's payload reference
  expect_corrupt([&] { PutU16(page_.data() + ref, 4094); }, "payload past the page");
  expect_corrupt([&] { PutU16(page_.data() + ref, 200); }, "payload outside the heap");
  expect_corrupt([&] { PutU16(page_.data() + ref + 2, 0x7fff); }, "payload length");
  expect_corrupt([&] { PutU16(page_.data() + ref + 2, 3); }, "heap accounting");
  expect_corrupt([&] { PutU16(page_.data() + ref + 2, 4 | kRefOverflowBit); }, "overflow ref");
  expect_corrupt([&] { page_[nl::kPayloadWidth] = std::byte{4}; }, "payload width, fixed keys");

  // Inner fixed entries must hold 8-byte child references.
  MutableNode inner = Make(1, "b", "d");
  std::string child(8, '\0');
  PutU64(reinterpret_cast<std::byte*>(child.data()), 12);
  for (const char* k : {"c01", "c02"}) inner.Insert(inner.count(), k, child, 0);
  ASSERT_EQ(inner.encoding(), NodeEncoding::kFixedEntries);
  ASSERT_TRUE(Validate().ok()) << Validate().ToString();
  expect_corrupt([&] { page_[nl::kPayloadWidth] = std::byte{7}; }, "inner payload width");
  expect_corrupt([&] { PutU64(page_.data() + nl::kSlots + 3, 0); }, "child 0");
  expect_corrupt([&] { PutU64(page_.data() + nl::kSlots + 3, kNoPage); }, "child all ones");
}

// A node of more than 2 * kHintCount entries carries search hints (the heads of evenly spaced
// slots), checked on read in every encoding: each stale hint is named.
TEST_F(NodeTest, StaleSearchHintsAreRejectedInEveryEncoding) {
  namespace nl = node_layout;
  struct Shape {
    NodeEncoding want;
    bool fixed_key, fixed_payload;
  };
  for (const Shape shape :
       {Shape{NodeEncoding::kVariable, false, false}, Shape{NodeEncoding::kFixedKeys, true, false},
        Shape{NodeEncoding::kFixedEntries, true, true}}) {
    SCOPED_TRACE(NodeEncodingName(shape.want));
    MutableNode n = Make(0, "", "");
    for (int i = 0; i < 40; i++) {
      char digits[8];
      std::snprintf(digits, sizeof digits, "%03d", i);
      const std::string key =
          "k" + std::string(digits) + (shape.fixed_key ? "" : std::string(i % 3, 'x'));
      n.Insert(n.count(), key, std::string(shape.fixed_payload ? 6 : 6 + i % 5, 'v'), 0);
    }
    ASSERT_EQ(n.encoding(), shape.want);
    ASSERT_TRUE(Validate().ok()) << Validate().ToString();
    for (uint32_t hint : {0u, 7u, kHintCount - 1}) {
      const std::vector<std::byte> saved = page_;
      page_[nl::kHints + 4 * hint + 3] ^= std::byte{1};
      const Status s = Validate();
      EXPECT_TRUE(s.IsCorruption()) << s.ToString();
      EXPECT_NE(s.ToString().find("search hint " + std::to_string(hint) + " is stale"),
                std::string::npos)
          << s.ToString();
      page_ = saved;
    }
    ASSERT_TRUE(Validate().ok()) << Validate().ToString();
  }
}

// Random byte damage to a valid node must give Corruption or a node that is safe to search and
// change. Covers every encoding, leaves and inner pages.
TEST_F(NodeTest, RandomDamageNeverCrashes) {
  std::mt19937_64 rng(::vde::testing::TestSeed());
  struct Shape {
    uint8_t level;
    bool fixed_key;      // "apq" + 5 random bytes, else random lengths
    bool fixed_payload;  // 8 bytes, else 0 to 29 and one out-of-line reference
    NodeEncoding want;
    const char* lower;  // fences; with one infinite, the prefix "ap" is taken from the other
    const char* upper;
  };
  const Shape shapes[] = {
      {0, false, false, NodeEncoding::kVariable, "apple", "apricot"},
      {1, false, true, NodeEncoding::kVariable, "apple", "apricot"},
      {0, true, true, NodeEncoding::kFixedEntries, "apple", "apricot"},
      {0, true, false, NodeEncoding::kFixedKeys, "apple", "apricot"},
      {1, true, true, NodeEncoding::kFixedEntries, "apple", "apricot"},
      {0, true, true, NodeEncoding::kFixedEntries, "", "apricot"},
      {1, false, true, NodeEncoding::kVariable, "apple", ""},
  };
  for (const Shape& shape : shapes) {
    const std::string lower = shape.lower, upper = shape.upper;
    SCOPED_TRACE(std::string(NodeEncodingName(shape.want)) + " level " +
                 std::to_string(shape.level) + " fences " + lower + ", " + upper);
    MutableNode n = Make(shape.level, lower, upper);
    for (int i = 0; i < 60; i++) {
      std::string k = shape.fixed_key ? "apq" + BigEndian(rng(), 5)
                                      : "ap" + std::string(1, static_cast<char>('p' + i % 2)) +
                                            RandomKey(rng, 8);
      if (!(k > lower && (upper.empty() || k <= upper))) continue;
      bool found;
      uint32_t pos = n.LowerBound(k, &found);
      if (found) continue;
      uint8_t flags = 0;
      std::string payload(shape.fixed_payload ? 8 : rng() % 30, '\x01');
      if (!shape.fixed_payload && i == 7) {
        payload = OverflowPayload(300);
        flags = kSlotFlagOverflow;
      }
      if (!n.HasRoom(k, payload.size(), flags)) break;
      n.Insert(pos, k, payload, flags);
    }
    if (lower.empty() || upper.empty()) {
      ASSERT_TRUE(n.Reencode());  // takes the prefix "ap" from the finite fence
      ASSERT_EQ(n.prefix(), "ap");
    }
    ASSERT_EQ(n.encoding(), shape.want);
    ASSERT_TRUE(Validate().ok()) << Validate().ToString();
    const std::vector<std::byte> good = page_;
    int accepted = 0;
    const int rounds = 20000;
    for (int r = 0; r < rounds; r++) {
      page_ = good;
      int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; f++) {
        // Mostly the header and entry array, where the structure lives.
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
        (void)v.payload(i);
        (void)v.flags(i);
      }
      MutableNode m(page_.data(), kBs, scratch_.data());
      m.Compact();
      ASSERT_TRUE(Validate().ok()) << Validate().ToString();
      m.Reencode();
      ASSERT_TRUE(Validate().ok()) << Validate().ToString();
      if (m.count() > 0) {
        m.Remove(m.count() / 2);
        ASSERT_TRUE(Validate().ok()) << Validate().ToString();
      }
    }
    EXPECT_LT(accepted, rounds);
  }
}

}  // namespace
}  // namespace vde::index
