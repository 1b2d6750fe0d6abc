// Out-of-line values: a value longer than the tree's inline limit is stored in one contiguous
// extent of kOverflow blocks from BlockSource, and the leaf holds a 20-byte reference to it.
// docs/FORMAT.md ("Overflow extents") is the authority for both layouts.
//
// Overflow reference (in a leaf slot's payload, kSlotFlagOverflow set):
//   offset size field
//   0      8    first_block  first block of the extent
//   8      4    block_count  blocks in the extent = ceil(value_size / (block_size - 48))
//   12     8    value_size   bytes of the value
//
// Overflow block (every block of the extent):
//   0      32   common block header: type kOverflow, version 1, own block number, generation
//   32     8    value_size   same as the reference
//   40     4    index        position of this block in the extent (0-based)
//   44     4    block_count  same as the reference
//   48     ...  value bytes  block_size - 48 per block; the last block is zero-padded
//
// An extent is written once, when its value is put, to blocks that are new in the current
// generation; it is never modified, and it is freed (reuse deferred by the BlockSource) when the
// value is updated or deleted. A value is read back with one Read of block_count blocks.
//
// Thread safety: the functions are stateless; the device and source must be thread-safe.
// Ownership: nothing is retained. A value is staged in a temporary buffer of block_count blocks
// (outside the page cache and its budget) while it is written or read.
// Errors: Corruption naming the file and block for a block that fails verification or whose
// fields disagree with the reference; the device's and source's errors otherwise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "blockdev/block_device.h"
#include "blockdev/status.h"
#include "index/block_source.h"

namespace vde::index {

inline constexpr uint32_t kOverflowRefSize = 20;
inline constexpr uint32_t kOverflowHeaderSize = 48;
// The largest value a tree stores (out of line, in one extent).
inline constexpr uint64_t kMaxValueSize = uint64_t{256} << 20;

struct OverflowRef {
  uint64_t first_block = 0;
  uint32_t block_count = 0;
  uint64_t value_size = 0;
};

// Value bytes one overflow block carries.
inline uint32_t OverflowPayloadPerBlock(uint32_t block_size) {
  return block_size - kOverflowHeaderSize;
}
// Blocks an extent needs for a value of `value_size` bytes (> 0).
inline uint64_t OverflowBlocksFor(uint64_t value_size, uint32_t block_size) {
  uint32_t per = OverflowPayloadPerBlock(block_size);
  return (value_size + per - 1) / per;
}

void EncodeOverflowRef(const OverflowRef& ref, std::byte* out);
OverflowRef DecodeOverflowRef(const std::byte* in);
// True when the reference is self-consistent: 0 < value_size <= kMaxValueSize, block_count
// matches, first_block is neither 0 nor so large that the extent wraps.
bool IsValidOverflowRef(const OverflowRef& ref, uint32_t block_size);

// Allocates an extent, fills and seals its blocks (generation: source->generation()) and writes
// them with one Write. On failure nothing stays allocated.
Result<OverflowRef> WriteOverflowValue(blockdev::BlockDevice* device, BlockSource* source,
                                       std::string_view value);
// Reads the extent with one Read, verifies every block, and stores the value in *out.
Status ReadOverflowValue(blockdev::BlockDevice* device, const OverflowRef& ref, std::string* out);
// Reads many extents with one ReadBatch per kOverflowBatchBytes of them (an extent larger than
// that gets a batch of its own), verifies each as ReadOverflowValue does, and stores value i in
// *outs[i] and its status in statuses[i]. Returns the number of ReadBatch calls made.
// REQUIRES: outs and statuses are as long as refs.
inline constexpr uint64_t kOverflowBatchBytes = uint64_t{64} << 20;
uint32_t ReadOverflowValues(blockdev::BlockDevice* device, std::span<const OverflowRef> refs,
                            std::span<std::string* const> outs, std::span<Status> statuses);
// Returns the extent to the source.
Status FreeOverflowValue(BlockSource* source, const OverflowRef& ref);

}  // namespace vde::index
