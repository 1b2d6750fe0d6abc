// The header every block that vde writes begins with, and the one place that seals (stamps and
// checksums) and verifies it. docs/FORMAT.md ("Block header") is the authority for this layout.
//
//   offset size field
//   0      8    checksum    XXH3-64 of bytes [8, block_size) of the block, seed 0
//   8      2    type        BlockType
//   10     2    version     layout version of this block type (starts at 1)
//   12     4    flags       per-type flags; 0 unless the type defines them
//   16     8    block       the block's own number: catches misdirected and lost writes
//   24     8    generation  checkpoint generation in which the block was written
//   32          payload (block_size - 32 bytes)
//
// All integers little-endian. Thread-safe: pure functions.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "blockdev/status.h"

namespace vde {

inline constexpr size_t kBlockHeaderSize = 32;

// Every block type vde writes. Values are on disk: never renumber, only append.
enum class BlockType : uint16_t {
  kFree = 0,  // never written by vde; a zeroed block reads as this and fails verification
  kSuperblock = 1,
  kAllocMap = 2,    // persistent free-space map (vde/allocator)
  kCatalog = 3,     // index catalog: names -> roots (vde)
  kBTreeLeaf = 4,   // B+tree leaf page (index/)
  kBTreeInner = 5,  // B+tree inner page (index/)
  kOverflow = 6,    // out-of-line value block (index/)
  kLog = 7,         // write-ahead log block (a later issue)
};

std::string_view BlockTypeName(BlockType t) noexcept;  // "superblock", "btree-leaf", ...
bool IsKnownBlockType(uint16_t t) noexcept;

struct BlockHeader {
  uint64_t checksum = 0;
  BlockType type = BlockType::kFree;
  uint16_t version = 1;
  uint32_t flags = 0;
  uint64_t block = 0;
  uint64_t generation = 0;
};

// Little-endian helpers for every on-disk encoder and decoder in vde, at any alignment. One
// load or store each: a byte loop is not reliably merged into one by the compiler (GCC 12 at
// -O3 left GetU32 a loop inside ValidateNode), and node accessors and validation call these for
// every entry.
template <typename T>
inline T LittleEndian(T v) {
  if constexpr (std::endian::native == std::endian::big) {
    if constexpr (sizeof v == 2) return __builtin_bswap16(v);
    if constexpr (sizeof v == 4) return __builtin_bswap32(v);
    if constexpr (sizeof v == 8) return __builtin_bswap64(v);
  }
  return v;
}
inline void PutU16(std::byte* p, uint16_t v) {
  v = LittleEndian(v);
  std::memcpy(p, &v, sizeof v);
}
inline void PutU32(std::byte* p, uint32_t v) {
  v = LittleEndian(v);
  std::memcpy(p, &v, sizeof v);
}
inline void PutU64(std::byte* p, uint64_t v) {
  v = LittleEndian(v);
  std::memcpy(p, &v, sizeof v);
}
inline uint16_t GetU16(const std::byte* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return LittleEndian(v);
}
inline uint32_t GetU32(const std::byte* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return LittleEndian(v);
}
inline uint64_t GetU64(const std::byte* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return LittleEndian(v);
}

// XXH3-64 (seed 0) of bytes [8, size) of `block`: what the checksum field holds.
uint64_t ComputeBlockChecksum(std::span<const std::byte> block) noexcept;

// Writes the header (type, version, flags, block number, generation) into the first 32 bytes
// of `block` and then the checksum over the rest. Call last, after the payload is final.
// REQUIRES: block.size() >= kBlockHeaderSize.
void SealBlock(std::span<std::byte> block, BlockType type, uint64_t block_no, uint64_t generation,
               uint16_t version = 1, uint32_t flags = 0) noexcept;

// Decodes the header without verifying anything.
BlockHeader DecodeBlockHeader(std::span<const std::byte> block) noexcept;

// Verifies a block read from block `block_no` of `path`: checksum, then that the header names
// block_no (a misdirected or lost write otherwise), then the type (when `expected` is not kFree,
// which means "any known type"). On success fills *out (may be null).
// Corruption messages name the file, block and cause, e.g.
//   "block 8123 of db.vdisk: checksum mismatch (stored 0x1f.., computed 0x9a..)"
//   "block 8123 of db.vdisk: header names block 8100 (misdirected or lost write)"
//   "block 8123 of db.vdisk: expected a btree-leaf block, found a catalog block"
Status VerifyBlock(std::span<const std::byte> block, uint64_t block_no, BlockType expected,
                   std::string_view path, BlockHeader* out = nullptr);

}  // namespace vde
