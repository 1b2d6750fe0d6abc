// The little-endian helpers every encoder and decoder uses, and the block header's byte layout
// (docs/FORMAT.md, "Block header"): fixed byte values, so that a change of the helpers (they are
// single loads and stores now) cannot change the format unnoticed.
#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "blockdev/block_header.h"

namespace vde {
namespace {

std::array<uint8_t, 8> Bytes(const std::byte* p) {
  std::array<uint8_t, 8> out{};
  for (size_t i = 0; i < out.size(); i++) out[i] = std::to_integer<uint8_t>(p[i]);
  return out;
}

TEST(LittleEndian, StoresLeastSignificantByteFirstAtAnyAlignment) {
  std::array<std::byte, 24> buf{};
  for (size_t at = 0; at < 8; at++) {  // every alignment
    buf.fill(std::byte{0xee});
    PutU64(buf.data() + at, 0x0807060504030201ull);
    EXPECT_EQ(Bytes(buf.data() + at), (std::array<uint8_t, 8>{1, 2, 3, 4, 5, 6, 7, 8}));
    EXPECT_EQ(GetU64(buf.data() + at), 0x0807060504030201ull);
    EXPECT_EQ(std::to_integer<uint8_t>(buf[at + 8]), 0xee);  // nothing written beyond

    buf.fill(std::byte{0xee});
    PutU32(buf.data() + at, 0xa1b2c3d4u);
    EXPECT_EQ(Bytes(buf.data() + at),
              (std::array<uint8_t, 8>{0xd4, 0xc3, 0xb2, 0xa1, 0xee, 0xee, 0xee, 0xee}));
    EXPECT_EQ(GetU32(buf.data() + at), 0xa1b2c3d4u);

    buf.fill(std::byte{0xee});
    PutU16(buf.data() + at, 0xbeef);
    EXPECT_EQ(Bytes(buf.data() + at),
              (std::array<uint8_t, 8>{0xef, 0xbe, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee}));
    EXPECT_EQ(GetU16(buf.data() + at), 0xbeef);
  }
}

TEST(LittleEndian, RoundTripsRandomValues) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::array<std::byte, 16> buf{};
  for (int i = 0; i < 10000; i++) {
    const uint64_t v = rng();
    const size_t at = rng() % 8;
    PutU64(buf.data() + at, v);
    ASSERT_EQ(GetU64(buf.data() + at), v);
    uint64_t assembled = 0;  // byte by byte, as FORMAT.md defines it
    for (int b = 7; b >= 0; b--) assembled = assembled << 8 | std::to_integer<uint8_t>(buf[at + b]);
    ASSERT_EQ(assembled, v);
    PutU32(buf.data() + at, static_cast<uint32_t>(v));
    ASSERT_EQ(GetU32(buf.data() + at), static_cast<uint32_t>(v));
    PutU16(buf.data() + at, static_cast<uint16_t>(v));
    ASSERT_EQ(GetU16(buf.data() + at), static_cast<uint16_t>(v));
  }
}

TEST(BlockHeader, SealedHeaderHasTheDocumentedBytes) {
  std::vector<std::byte> block(4096, std::byte{0});
  SealBlock(block, BlockType::kBTreeLeaf, 0x0102030405060708ull, 0x1112131415161718ull, 2, 0);
  const std::byte* p = block.data();
  EXPECT_EQ(GetU16(p + 8), static_cast<uint16_t>(BlockType::kBTreeLeaf));
  EXPECT_EQ(std::to_integer<uint8_t>(p[8]), static_cast<uint16_t>(BlockType::kBTreeLeaf) & 0xff);
  EXPECT_EQ(Bytes(p + 16), (std::array<uint8_t, 8>{8, 7, 6, 5, 4, 3, 2, 1}));
  EXPECT_EQ(Bytes(p + 24),
            (std::array<uint8_t, 8>{0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11}));
  EXPECT_EQ(std::to_integer<uint8_t>(p[10]), 2);  // version
  EXPECT_EQ(GetU64(p), ComputeBlockChecksum(block));
  const BlockHeader h = DecodeBlockHeader(block);
  EXPECT_EQ(h.type, BlockType::kBTreeLeaf);
  EXPECT_EQ(h.block, 0x0102030405060708ull);
  EXPECT_EQ(h.generation, 0x1112131415161718ull);
  EXPECT_EQ(h.version, 2);
}

}  // namespace
}  // namespace vde
