// Allocator: the block allocator of a virtual disk. It hands out single blocks and contiguous
// extents (best fit, O(log n) in the number of free extents), frees them with deferred reuse,
// grows a growable disk when it is full, and persists its state copy-on-write at checkpoints.
//
// State (docs/FORMAT.md, "Allocator map"):
//   - a bitmap in memory, one bit per block (1 = allocated), persisted as a radix tree of
//     kAllocMap blocks whose root the superblock names. The map's own blocks are not marked in
//     the bitmap: they are implied by the tree, which breaks the self-reference (allocating a
//     block for the map does not change the map);
//   - a FreeExtentIndex of the blocks that may be handed out now;
//   - blocks freed since the last checkpoint ("pending reuse"): clear in the bitmap that the next
//     checkpoint writes, but not handed out until that checkpoint is durable, because the last
//     durable checkpoint may still reference them.
//
// A checkpoint writes only the map blocks whose content changed, each to a newly allocated
// block, plus their ancestors; the blocks they replace are released once the new superblock is
// durable. Disk drives this with PrepareCheckpoint / WriteCheckpoint / CommitCheckpoint.
//
// Space reserve: user allocations leave enough free blocks that a checkpoint always finds room
// for its map blocks (reserved_blocks()); otherwise a full disk could never checkpoint and so
// never reuse the blocks freed on it.
//
// Thread safety: every method may be called from any thread; one mutex guards the state
// (growth, which calls BlockDevice::Grow, happens under it). The checkpoint calls must be
// serialized by the caller (Disk does). Errors: NoSpace, ReadOnly, InvalidArgument (freeing a
// block that is not allocated), Corruption (a damaged map block, naming it, on Load), IOError.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "blockdev/aligned_buffer.h"
#include "blockdev/block_device.h"
#include "blockdev/status.h"
#include "vde/free_extent_index.h"

namespace vde {

// Fixed properties of the disk the allocator serves.
struct AllocatorGeometry {
  uint32_t block_size = 0;
  uint64_t block_count = 0;  // current size; grows
  bool growable = false;
  uint64_t max_blocks = 0;  // growable only; 0 = no limit
  uint64_t growth_step_blocks = 0;
  bool read_only = false;
};

// Where the persisted map lives (superblock fields).
struct MapRoot {
  uint64_t root = 0;  // 0 = every block free (never the case: blocks 0 and 1 are superblocks)
  uint32_t levels = 0;
  uint64_t block_count = 0;  // blocks the map covers
  uint64_t used_blocks = 0;  // bits set in the map
};

struct AllocatorStats {
  uint64_t block_count = 0;
  uint64_t used_blocks = 0;      // allocated: bitmap bits set (incl. superblocks) + metadata
  uint64_t metadata_blocks = 0;  // the allocator's own map blocks (current and in flight)
  uint64_t free_blocks = 0;      // allocatable now
  uint64_t pending_blocks = 0;   // freed, reusable after the next durable checkpoint
  uint64_t free_extents = 0;
  uint64_t largest_free_extent = 0;
  uint64_t reserved_blocks = 0;  // kept back for checkpoints (see above)
  uint64_t grows = 0;            // times the disk grew
};

// The map blocks one checkpoint writes, and what changes when it is durable.
struct MapCheckpoint {
  uint64_t generation = 0;
  MapRoot root;
  std::vector<blockdev::WriteRequest> writes;  // one block each, buffers in `buffer`
  AlignedBuffer buffer;
  // Internal bookkeeping for Commit/Abort.
  struct NodeChange {
    uint32_t level;
    uint64_t index;
    uint64_t old_loc;
    uint64_t new_loc;
  };
  std::vector<NodeChange> changes;
  std::vector<uint64_t> dirty_leaves;  // leaves this checkpoint encoded (re-dirtied on abort)
  std::vector<Extent> released;        // pending frees this checkpoint makes reusable
};

class Allocator {
 public:
  // A new disk: blocks 0 and 1 (the superblocks) allocated, everything else free.
  static Result<std::unique_ptr<Allocator>> CreateEmpty(blockdev::BlockDevice* dev,
                                                        const AllocatorGeometry& geo);
  // Loads the persisted map of `root` from `dev`, verifying every map block. geo.block_count may
  // exceed root.block_count (the file grew after the checkpoint): the extra blocks are free.
  // Corruption names the damaged block.
  static Result<std::unique_ptr<Allocator>> Load(blockdev::BlockDevice* dev,
                                                 const AllocatorGeometry& geo, const MapRoot& root);
  ~Allocator();
  Allocator(const Allocator&) = delete;
  Allocator& operator=(const Allocator&) = delete;

  // Allocates `count` contiguous blocks: the smallest free extent that fits (lowest start among
  // equals). It succeeds whenever a free extent of `count` blocks exists and taking it leaves
  // reserved_blocks() free; otherwise a growable disk grows (by whole growth steps), and a disk
  // that cannot (fixed size, or at its maximum) returns NoSpace naming the free space, the
  // largest extent and the blocks pending reuse. InvalidArgument for count 0.
  Result<Extent> Allocate(uint64_t count);
  Result<uint64_t> AllocateBlock();

  // Frees an extent. Its blocks become reusable once the next checkpoint is durable.
  // InvalidArgument when any block of it is not allocated (a double free), is a superblock or
  // is past the end; nothing is freed then.
  Status Free(Extent e);
  Status FreeBlock(uint64_t block) { return Free(Extent{block, 1}); }
  // Frees an extent that a reader may still use: free in the map the next checkpoint writes (so
  // a crash never leaks it), but not reusable, across any number of checkpoints, until Unhold.
  // Errors as Free.
  Status FreeHeld(Extent e);
  // Ends the hold of an extent given to FreeHeld: it becomes reusable once the next checkpoint
  // is durable. InvalidArgument if it is not held.
  Status Unhold(Extent e);

  // Whether the block is in use: allocated, pending reuse, a superblock or a map block.
  bool IsAllocated(uint64_t block) const;
  uint64_t block_count() const;
  uint32_t block_size() const noexcept { return geo_.block_size; }
  AllocatorStats stats() const;
  uint64_t reserved_blocks() const;
  // Free extents in block order (for inspection and tests).
  std::vector<Extent> FreeExtents() const;
  // Anything to write at the next checkpoint (a map change, frees awaiting release, growth).
  bool dirty() const;

  // ---- Checkpoint protocol (Disk). Serialized by the caller. --------------------------------
  // Allocates blocks for every changed map node and encodes them, sealed with `generation`.
  // Writes nothing. NoSpace (state unchanged) when there is no room for them.
  Result<MapCheckpoint> PrepareCheckpoint(uint64_t generation);
  // Writes cp's blocks (no flush).
  Status WriteCheckpoint(MapCheckpoint& cp);
  // The superblock naming cp.root is durable: releases the replaced map blocks and the frees
  // of cp into the free index.
  void CommitCheckpoint(MapCheckpoint&& cp);
  // The checkpoint will not be committed. If `written` (some block may be on disk), its new map
  // blocks stay out of use for the life of this object; frees stay pending.
  void AbortCheckpoint(MapCheckpoint&& cp, bool written);

 private:
  explicit Allocator(blockdev::BlockDevice* dev, const AllocatorGeometry& geo);
  struct Map;

  // Grows the disk so that an extent of `contig` blocks fits and `total` blocks are free, by
  // whole growth steps, up to the maximum (at least one step; less only at the maximum).
  Status GrowLocked(uint64_t contig, uint64_t total);
  Status NoSpaceLocked(uint64_t count) const;
  Status FreeLocked(Extent e, std::vector<Extent>* to);
  uint64_t ReserveLocked() const;
  void SetGeometryLocked(uint64_t new_count);
  Status LoadLocked(const MapRoot& root);

  blockdev::BlockDevice* dev_;  // not owned; outlives the allocator
  AllocatorGeometry geo_;
  mutable std::mutex mu_;
  std::unique_ptr<Map> map_;
  FreeExtentIndex free_;
  std::vector<Extent> pending_;  // freed since the last PrepareCheckpoint
  std::vector<Extent> held_;     // FreeHeld, not yet Unhold
  uint64_t held_blocks_ = 0;
  uint64_t pending_blocks_ = 0;
  uint64_t in_flight_blocks_ = 0;  // frees handed to a prepared checkpoint
  uint64_t meta_blocks_ = 0;       // map blocks in use (current tree + in-flight new ones)
  uint64_t grows_ = 0;
};

}  // namespace vde
