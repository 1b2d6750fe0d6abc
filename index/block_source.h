// BlockSource: where the index layer gets blocks for B+tree pages and out-of-line values.
//
// index/ cannot see vde/ (dependencies point one way), so it declares the small interface it
// needs here and vde's block allocator implements it. Tests implement it over a
// MemoryBlockDevice.
//
// Thread safety: implementations must allow calls from any number of threads at once (several
// trees sharing one PageCache allocate concurrently). Ownership: the caller of BTree::Create or
// BTree::Open keeps the BlockSource alive for as long as the tree exists.
//
// Errors: Allocate returns NoSpace when no extent of the requested size can be found or made;
// Free returns InvalidArgument (or Corruption) for an extent that is not allocated.
#pragma once

#include <cstdint>

#include "blockdev/status.h"

namespace vde::index {

// Supplies blocks for pages and out-of-line values. Implemented by vde's allocator.
class BlockSource {
 public:
  virtual ~BlockSource() = default;
  // A contiguous extent of `count` free blocks (grows the disk if it may); NoSpace when full.
  virtual Result<uint64_t> Allocate(uint32_t count) = 0;
  // Frees an extent. Reuse is deferred until the next checkpoint is durable.
  virtual Status Free(uint64_t block, uint32_t count) = 0;
  // The current checkpoint generation: blocks written now carry it; a page whose header
  // generation is older belongs to the last durable checkpoint and must not be overwritten.
  virtual uint64_t generation() const = 0;
};

}  // namespace vde::index
