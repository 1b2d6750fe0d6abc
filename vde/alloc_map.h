// The allocator map's on-disk nodes: the shape of the radix tree for a disk size, and the
// explicit encoders and verifying decoders of its leaf (bitmap) and interior (pointer) blocks.
// docs/FORMAT.md ("Allocator map") is the authority for the layout; vde/format.h the offsets.
//
//   offset size  field
//   0      32    block header: type kAllocMap (2), version 1, flags 0, own block, generation
//   32     4     level       0 for a leaf, k for an interior node k levels above the leaves
//   36     4     reserved    zero
//   40     8     index       the node's position within its level (0 = leftmost)
//   48     16    reserved    zero
//   64     ...   payload     leaf: bitmap, bit (n % 8) of byte 64 + n / 8 is block
//                            index * LeafSpan + n (1 = allocated); interior: u64 child block
//                            numbers, child j covers node index * Fanout + j of the level below
//                            (0 = a child whose whole range is free)
//
// Decoders take untrusted bytes and check every field; errors name the file and block.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "blockdev/status.h"

namespace vde::allocmap {

// Nodes per level for a disk of `block_count` blocks, leaves first; the last level has exactly
// one node (the root). REQUIRES: block_count > 0 and a valid block size.
std::vector<uint64_t> LevelSizes(uint64_t block_count, uint32_t block_size);

// 64-bit bitmap words per leaf.
uint64_t WordsPerLeaf(uint32_t block_size);

// Encodes leaf `index` from `words` (WordsPerLeaf words; bit b of word w is block
// index * LeafSpan + 64 * w + b) and seals it as block `block_no` of `generation`.
void EncodeLeaf(std::span<std::byte> block, uint64_t index, std::span<const uint64_t> words,
                uint64_t block_no, uint64_t generation);

// Encodes interior node (`level` >= 1, `index`) with `children` (at most Fanout; the rest of the
// slots are zero) and seals it.
void EncodeInterior(std::span<std::byte> block, uint32_t level, uint64_t index,
                    std::span<const uint64_t> children, uint64_t block_no, uint64_t generation);

// Verifies and decodes leaf `index` read from block `block_no` into `words` (WordsPerLeaf words).
// Bits for blocks at or past `block_count` must be zero.
Status DecodeLeaf(std::span<const std::byte> block, uint64_t block_no, uint64_t index,
                  uint64_t block_count, std::string_view path, std::span<uint64_t> words);

// Verifies and decodes interior node (`level`, `index`) into `children` (the node's
// children.size() real children). Child pointers must be 0 or in [2, block_count); slots past
// the real children must be zero.
Status DecodeInterior(std::span<const std::byte> block, uint64_t block_no, uint32_t level,
                      uint64_t index, uint64_t block_count, std::string_view path,
                      std::span<uint64_t> children);

}  // namespace vde::allocmap
