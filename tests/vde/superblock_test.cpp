// Superblock and allocator-map block encoding: round trips and what the decoders reject.
#include "vde/superblock.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "blockdev/block_device.h"
#include "blockdev/block_header.h"
#include "tests/test_util.h"
#include "vde/alloc_map.h"
#include "vde/format.h"

namespace vde {
namespace {

Superblock Sample(uint32_t bs) {
  Superblock sb;
  sb.generation = 7;
  sb.format_version = format::kFormatVersion;
  sb.block_size = bs;
  sb.features_compat = format::kCompatGrowable;
  sb.uuid = NewUuid();
  sb.creation_time_ns = 1700000000123456789ull;
  sb.checkpoint_time_ns = 1700000001000000000ull;
  sb.block_count = 100000;
  sb.max_blocks = 200000;
  sb.growth_step_blocks = 1024;
  sb.used_blocks = 12345;
  sb.alloc_root = 99;
  sb.alloc_levels = static_cast<uint32_t>(allocmap::LevelSizes(sb.block_count, bs).size());
  sb.catalog_root = 1234;
  sb.log_start = 5000;
  sb.log_blocks = 256;
  return sb;
}

// Both copies of `sb` laid out as a file's first bytes.
std::vector<std::byte> Image(const Superblock& sb, uint64_t gen0, uint64_t gen1) {
  std::vector<std::byte> img(2 * size_t{blockdev::kMaxBlockSize} + 4096);
  Superblock a = sb, b = sb;
  a.generation = gen0;
  b.generation = gen1;
  EncodeSuperblock(a, 0, std::span(img).subspan(0, sb.block_size));
  EncodeSuperblock(b, 1, std::span(img).subspan(sb.block_size, sb.block_size));
  return img;
}

TEST(Superblock, RoundTripEveryBlockSize) {
  for (uint32_t bs = 512; bs <= 65536; bs *= 2) {
    Superblock sb = Sample(bs);
    std::vector<std::byte> block(bs);
    EncodeSuperblock(sb, 1, block);
    auto got = DecodeSuperblock(block, 1, "x.vdisk");
    ASSERT_TRUE(got.ok()) << got.error().ToString();
    EXPECT_EQ(*got, sb);
    // The same bytes read as the other copy name the wrong block.
    auto wrong = DecodeSuperblock(block, 0, "x.vdisk");
    ASSERT_FALSE(wrong.ok());
    EXPECT_NE(wrong.error().message().find("header names block 1"), std::string::npos);
  }
}

TEST(Superblock, FieldsAreLittleEndianAtTheDocumentedOffsets) {
  Superblock sb = Sample(4096);
  std::vector<std::byte> b(4096);
  EncodeSuperblock(sb, 0, b);
  EXPECT_EQ(b[format::kSbMagic], std::byte{'V'});
  EXPECT_EQ(GetU32(&b[format::kSbBlockSize]), 4096u);
  EXPECT_EQ(b[format::kSbBlockSize], std::byte{0x00});
  EXPECT_EQ(b[format::kSbBlockSize + 1], std::byte{0x10});
  EXPECT_EQ(GetU64(&b[format::kSbBlockCount]), 100000u);
  EXPECT_EQ(GetU64(&b[format::kSbCatalogRoot]), 1234u);
  EXPECT_EQ(GetU64(&b[24]), 7u);  // generation lives in the block header
}

TEST(Superblock, EveryFlippedBitIsDetected) {
  uint64_t seed = testing::TestSeed();
  std::mt19937_64 rng(seed);
  Superblock sb = Sample(512);
  std::vector<std::byte> good(512);
  EncodeSuperblock(sb, 0, good);
  for (size_t bit = 0; bit < 512 * 8; bit++) {
    std::vector<std::byte> b = good;
    b[bit / 8] ^= std::byte(1u << (bit % 8));
    auto got = DecodeSuperblock(b, 0, "x.vdisk");
    ASSERT_FALSE(got.ok()) << "bit " << bit;
    EXPECT_TRUE(got.error().IsCorruption()) << got.error().ToString();
  }
  // Random garbage never decodes.
  for (int i = 0; i < 1000; i++) {
    std::vector<std::byte> b(512);
    for (auto& x : b) x = std::byte(rng());
    EXPECT_FALSE(DecodeSuperblock(b, 0, "x.vdisk").ok());
  }
}

TEST(Superblock, RejectsBadFieldsEvenWithAGoodChecksum) {
  auto check = [](auto mutate, const char* want) {
    Superblock sb = Sample(4096);
    mutate(sb);
    std::vector<std::byte> b(4096);
    EncodeSuperblock(sb, 0, b);
    auto got = DecodeSuperblock(b, 0, "x.vdisk");
    ASSERT_FALSE(got.ok()) << want;
    EXPECT_NE(got.error().message().find(want), std::string::npos) << got.error().ToString();
    EXPECT_NE(got.error().message().find("block 0 of x.vdisk"), std::string::npos);
  };
  check([](Superblock& s) { s.block_count = 3; }, "too small");
  check([](Superblock& s) { s.alloc_root = s.block_count; }, "allocator map root");
  check([](Superblock& s) { s.alloc_levels = 9; }, "levels");
  check([](Superblock& s) { s.used_blocks = s.block_count + 1; }, "used block count");
  check([](Superblock& s) { s.catalog_root = 1; }, "catalog root");
  check([](Superblock& s) { s.log_blocks = s.block_count; }, "log region");
  check([](Superblock& s) { s.max_blocks = 10; }, "maximum size");
  check([](Superblock& s) { s.growth_step_blocks = 0; }, "growth step");
  check([](Superblock& s) { s.generation = 0; }, "generation 0");
  check([](Superblock& s) { s.format_version = 0; }, "format version 0");
}

TEST(Superblock, NewerVersionIsNotSupported) {
  Superblock sb = Sample(4096);
  sb.format_version = format::kFormatVersion + 1;
  std::vector<std::byte> b(4096);
  EncodeSuperblock(sb, 0, b);
  auto got = DecodeSuperblock(b, 0, "x.vdisk");
  ASSERT_FALSE(got.ok());
  EXPECT_TRUE(got.error().IsNotSupported()) << got.error().ToString();
  auto found = FindSuperblocks(Image(sb, 1, 2), "x.vdisk");
  ASSERT_FALSE(found.ok());
  EXPECT_TRUE(found.error().IsNotSupported());
}

TEST(Superblock, Features) {
  Superblock sb = Sample(4096);
  EXPECT_TRUE(CheckFeatures(sb, false, "x").ok());
  EXPECT_EQ(FeatureNames(sb), std::vector<std::string>{"growable"});
  sb.features_compat |= 1ull << 9;  // unknown compat: fine
  EXPECT_TRUE(CheckFeatures(sb, false, "x").ok());
  sb.features_ro_compat = 1ull << 3;  // unknown ro-compat: read-only only
  EXPECT_TRUE(CheckFeatures(sb, false, "x").IsNotSupported());
  EXPECT_TRUE(CheckFeatures(sb, true, "x").ok());
  sb.features_incompat = 1ull << 0;  // unknown incompat: refused
  EXPECT_TRUE(CheckFeatures(sb, true, "x").IsNotSupported());
  EXPECT_EQ(FeatureNames(sb).back(), "incompat-bit-0");
}

TEST(Superblock, FindPicksTheNewestValidCopy) {
  for (uint32_t bs : {512u, 4096u, 65536u}) {
    Superblock sb = Sample(bs);
    auto img = Image(sb, 8, 9);
    auto f = FindSuperblocks(img, "x.vdisk");
    ASSERT_TRUE(f.ok()) << f.error().ToString();
    EXPECT_EQ(f->block_size, bs);
    EXPECT_EQ(f->current, 1);
    // Copy 1 damaged: copy 0 wins.
    img[bs + 100] ^= std::byte{1};
    f = FindSuperblocks(img, "x.vdisk");
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(f->current, 0);
    EXPECT_FALSE(f->copies[1].ok());
    // Copy 0 damaged, copy 1 good: found by probing every block size.
    img = Image(sb, 8, 9);
    img[100] ^= std::byte{1};
    f = FindSuperblocks(img, "x.vdisk");
    ASSERT_TRUE(f.ok()) << f.error().ToString();
    EXPECT_EQ(f->current, 1);
    EXPECT_EQ(f->block_size, bs);
    EXPECT_NE(f->copies[0].error().message().find("checksum mismatch"), std::string::npos);
    // Even when copy 0's claimed block size is garbage.
    img[format::kSbBlockSize] = std::byte{0x55};
    f = FindSuperblocks(img, "x.vdisk");
    ASSERT_TRUE(f.ok()) << f.error().ToString();
    EXPECT_EQ(f->block_size, bs);
    // Both damaged: a clear error naming both blocks.
    img[bs + 100] ^= std::byte{1};
    f = FindSuperblocks(img, "x.vdisk");
    ASSERT_FALSE(f.ok());
    EXPECT_TRUE(f.error().IsCorruption());
    EXPECT_NE(f.error().message().find("both superblock copies are damaged"), std::string::npos);
    EXPECT_NE(f.error().message().find("block 0 of x.vdisk"), std::string::npos);
    EXPECT_NE(f.error().message().find("block 1 of x.vdisk"), std::string::npos);
  }
}

TEST(Superblock, ForeignAndTruncatedFiles) {
  std::vector<std::byte> text(100000, std::byte{'a'});
  auto f = FindSuperblocks(text, "notes.txt");
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(f.error().IsCorruption());
  EXPECT_NE(f.error().message().find("not a virtual disk"), std::string::npos);
  EXPECT_FALSE(FindSuperblocks({}, "empty").ok());
  auto img = Image(Sample(4096), 1, 2);
  for (size_t len : {100ul, 600ul, 4096ul, 6000ul}) {
    auto t = FindSuperblocks(std::span(img).subspan(0, len), "t.vdisk");
    if (len >= 4096) {
      // Copy 0 fits; copy 1 is cut off.
      ASSERT_TRUE(t.ok()) << len;
      EXPECT_EQ(t->current, 0);
      EXPECT_NE(t->copies[1].error().message().find("truncated"), std::string::npos);
    } else {
      ASSERT_FALSE(t.ok()) << len;
      EXPECT_NE(t.error().message().find("truncated"), std::string::npos) << t.error().ToString();
    }
  }
}

TEST(AllocMap, LeafAndInteriorRoundTrip) {
  for (uint32_t bs : {512u, 4096u}) {
    uint64_t nw = allocmap::WordsPerLeaf(bs);
    std::vector<uint64_t> words(nw);
    for (uint64_t i = 0; i < nw; i++) words[i] = 0x9e3779b97f4a7c15ull * (i + 1);
    words.back() |= uint64_t{1} << 63;  // the last block of the leaf is allocated
    std::vector<std::byte> block(bs);
    allocmap::EncodeLeaf(block, 3, words, 42, 5);
    std::vector<uint64_t> out(nw);
    uint64_t count = 4 * format::LeafSpan(bs);
    ASSERT_TRUE(allocmap::DecodeLeaf(block, 42, 3, count, "m", out).ok());
    EXPECT_EQ(out, words);
    // Bits past the end of the disk are corruption; so is the wrong index or block.
    auto short_disk = allocmap::DecodeLeaf(block, 42, 3, count - 1, "m", out);
    EXPECT_NE(short_disk.message().find("past the end"), std::string::npos);
    EXPECT_TRUE(allocmap::DecodeLeaf(block, 42, 2, count, "m", out).IsCorruption());
    EXPECT_TRUE(allocmap::DecodeLeaf(block, 43, 3, count, "m", out).IsCorruption());
    block[200] ^= std::byte{4};
    Status flipped = allocmap::DecodeLeaf(block, 42, 3, count, "m", out);
    EXPECT_NE(flipped.message().find("block 42 of m"), std::string::npos) << flipped.ToString();

    std::vector<uint64_t> kids = {0, 7, 9, 0, 11};
    allocmap::EncodeInterior(block, 2, 1, kids, 50, 5);
    std::vector<uint64_t> got(kids.size());
    ASSERT_TRUE(allocmap::DecodeInterior(block, 50, 2, 1, 100, "m", got).ok());
    EXPECT_EQ(got, kids);
    got.resize(3);  // claims more children than the node may have
    EXPECT_TRUE(allocmap::DecodeInterior(block, 50, 2, 1, 100, "m", got).IsCorruption());
    got.resize(5);
    EXPECT_TRUE(allocmap::DecodeInterior(block, 50, 2, 1, 10, "m", got).IsCorruption());
    EXPECT_TRUE(allocmap::DecodeInterior(block, 50, 1, 1, 100, "m", got).IsCorruption());
  }
}

TEST(Superblock, GarbageWithPlantedMagicNeverCrashes) {
  uint64_t seed = testing::TestSeed();
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 2000; i++) {
    size_t len = rng() % (3 * 65536);
    std::vector<std::byte> head(len);
    for (auto& x : head) x = std::byte(rng());
    // Plant the magic and a plausible block size at copy 0 and at some copy-1 offset.
    uint32_t bs = 512u << (rng() % 8);
    for (size_t off : {size_t{0}, size_t{bs}}) {
      if (off + 48 <= len) {
        std::copy(format::kMagic.begin(), format::kMagic.end(), head.begin() + off + 32);
        if (rng() % 2) PutU32(head.data() + off + 44, bs);
      }
    }
    auto f = FindSuperblocks(head, "garbage");
    EXPECT_FALSE(f.ok());  // a random checksum never matches
  }
  // Map nodes of garbage: every level, index and child count is refused, never read past.
  for (int i = 0; i < 2000; i++) {
    uint32_t bs = 512u << (rng() % 4);
    std::vector<std::byte> block(bs);
    for (auto& x : block) x = std::byte(rng());
    std::vector<uint64_t> words(allocmap::WordsPerLeaf(bs));
    EXPECT_FALSE(allocmap::DecodeLeaf(block, 5, rng() % 4, rng(), "g", words).ok());
    std::vector<uint64_t> kids(rng() % (format::Fanout(bs) + 1));
    EXPECT_FALSE(allocmap::DecodeInterior(block, 5, 1, rng() % 4, rng(), "g", kids).ok());
  }
}

}  // namespace
}  // namespace vde
