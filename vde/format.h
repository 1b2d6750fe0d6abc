// The constants of vde's on-disk format, mirroring docs/FORMAT.md, which is the authority: a
// change here is a change to the format and goes into that document in the same commit.
//
// Header-only constants and pure functions; thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "blockdev/block_header.h"

namespace vde::format {

// ---- Superblock --------------------------------------------------------------------------
// Two copies, at blocks 0 and 1. Checkpoint generation g writes copy g % 2; Create writes both.
inline constexpr uint64_t kSuperblockCopies = 2;
inline constexpr std::array<std::byte, 8> kMagic = {std::byte{'V'}, std::byte{'D'}, std::byte{'E'},
                                                    std::byte{'D'}, std::byte{'I'}, std::byte{'S'},
                                                    std::byte{'K'}, std::byte{0}};
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr uint16_t kSuperblockBlockVersion = 1;  // block header `version`

// Byte offsets of the superblock fields (after the 32-byte block header). All little-endian.
inline constexpr size_t kSbMagic = 32;              // 8 bytes, kMagic
inline constexpr size_t kSbFormatVersion = 40;      // u32
inline constexpr size_t kSbBlockSize = 44;          // u32
inline constexpr size_t kSbFeaturesCompat = 48;     // u64
inline constexpr size_t kSbFeaturesRoCompat = 56;   // u64
inline constexpr size_t kSbFeaturesIncompat = 64;   // u64
inline constexpr size_t kSbUuid = 72;               // 16 bytes
inline constexpr size_t kSbCreationTime = 88;       // u64, ns since the Unix epoch
inline constexpr size_t kSbCheckpointTime = 96;     // u64, ns since the Unix epoch
inline constexpr size_t kSbBlockCount = 104;        // u64
inline constexpr size_t kSbMaxBlocks = 112;         // u64, 0 = no limit
inline constexpr size_t kSbGrowthStepBlocks = 120;  // u64
inline constexpr size_t kSbUsedBlocks = 128;        // u64, bits set in the allocator map
inline constexpr size_t kSbAllocRoot = 136;         // u64, 0 = no map block (all free)
inline constexpr size_t kSbAllocLevels = 144;       // u32
inline constexpr size_t kSbReserved0 = 148;         // u32, zero
inline constexpr size_t kSbCatalogRoot = 152;       // u64, 0 = none
inline constexpr size_t kSbLogStart = 160;          // u64, 0 = none
inline constexpr size_t kSbLogBlocks = 168;         // u64
inline constexpr size_t kSbEnd = 176;  // bytes [kSbEnd, block_size) are reserved, written zero
static_assert(kSbEnd <= 512, "the superblock fields must fit the smallest block");

// Feature flags, as ext4 has them. A binary refuses a disk with an incompatible feature it
// does not know, opens one with an unknown read-only-compatible feature read-only only, and
// ignores unknown compatible features (clearing their bits when it rewrites the superblock).
inline constexpr uint64_t kCompatGrowable = 1ull << 0;  // the disk grows on demand
inline constexpr uint64_t kCompatKnown = kCompatGrowable;
inline constexpr uint64_t kRoCompatKnown = 0;
inline constexpr uint64_t kIncompatKnown = 0;

// ---- Allocator map -------------------------------------------------------------------------
// A radix tree of kAllocMap blocks: level 0 nodes (leaves) are bitmaps, one bit per block
// (1 = allocated); level k > 0 nodes hold child pointers (0 = the child's whole range is free).
inline constexpr uint16_t kAllocMapBlockVersion = 1;
inline constexpr size_t kMapLevel = 32;      // u32
inline constexpr size_t kMapReserved = 36;   // u32, zero
inline constexpr size_t kMapIndex = 40;      // u64, the node's index within its level
inline constexpr size_t kMapReserved2 = 48;  // 16 bytes, zero
inline constexpr size_t kMapPayload = 64;    // bitmap bytes or u64 pointers, to the block's end
inline constexpr uint32_t kMaxMapLevels = 16;

// Blocks covered by one leaf, and children per interior node, for a block size.
constexpr uint64_t LeafSpan(uint32_t block_size) {
  return uint64_t{block_size - kMapPayload} * 8;
}
constexpr uint64_t Fanout(uint32_t block_size) {
  return (block_size - kMapPayload) / 8;
}

// ---- Disk ----------------------------------------------------------------------------------
inline constexpr uint64_t kMinDiskBlocks = 8;

}  // namespace vde::format
