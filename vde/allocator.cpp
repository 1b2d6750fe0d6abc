#include "vde/allocator.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <string>

#include "vde/alloc_map.h"
#include "vde/format.h"

namespace vde {

namespace {

constexpr uint64_t kAllOnes = ~uint64_t{0};
constexpr size_t kReadChunk = 256;  // map blocks per read batch on Load

// Mask of bits [lo, hi) within one word, 0 <= lo < hi <= 64.
uint64_t Mask(uint64_t lo, uint64_t hi) {
  uint64_t upper = hi == 64 ? kAllOnes : ((uint64_t{1} << hi) - 1);
  return upper & (kAllOnes << lo);
}

void SetRange(std::vector<uint64_t>& bits, uint64_t start, uint64_t count, bool value) {
  uint64_t end = start + count;
  while (start < end) {
    uint64_t w = start / 64, lo = start % 64;
    uint64_t hi = std::min<uint64_t>(64, lo + (end - start));
    if (value) {
      bits[w] |= Mask(lo, hi);
    } else {
      bits[w] &= ~Mask(lo, hi);
    }
    start += hi - lo;
  }
}

// First block in [from, to) whose bit equals `value`, or `to`.
uint64_t FindBit(const std::vector<uint64_t>& bits, uint64_t from, uint64_t to, bool value) {
  if (from >= to) return to;
  uint64_t w = from / 64;
  uint64_t x = (value ? bits[w] : ~bits[w]) & (kAllOnes << (from % 64));
  while (x == 0) {
    w++;
    if (w * 64 >= to) return to;
    x = value ? bits[w] : ~bits[w];
  }
  return std::min(to, w * 64 + static_cast<uint64_t>(std::countr_zero(x)));
}

uint64_t MaxBlocksFor(uint32_t block_size) {
  return (uint64_t{1} << 62) / block_size;
}

}  // namespace

struct Allocator::Map {
  explicit Map(uint32_t bs)
      : span(format::LeafSpan(bs)),
        words_per_leaf(allocmap::WordsPerLeaf(bs)),
        fanout(format::Fanout(bs)) {}

  void MarkDirty(uint64_t start, uint64_t count) {
    for (uint64_t i = start / span; i <= (start + count - 1) / span; i++) {
      if (leaf_dirty[i] == 0) {
        leaf_dirty[i] = 1;
        dirty_leaves++;
      }
    }
  }
  bool LeafNonZero(uint64_t i) const {
    const uint64_t* w = bits.data() + i * words_per_leaf;
    return std::any_of(w, w + words_per_leaf, [](uint64_t v) { return v != 0; });
  }

  const uint64_t span, words_per_leaf, fanout;
  std::vector<uint64_t> bits;  // whole leaves; bits past block_count stay zero
  std::vector<uint8_t> leaf_dirty;
  uint64_t dirty_leaves = 0;
  std::vector<uint64_t> sizes;             // nodes per level, leaves first
  std::vector<std::vector<uint64_t>> loc;  // durable location of each node; 0 = all free
  uint64_t total_nodes = 0;
  uint32_t durable_levels = 0;  // levels of the durable tree (0: none yet)
  uint64_t durable_block_count = 0;
  uint64_t used_bits = 0;
};

Allocator::Allocator(blockdev::BlockDevice* dev, const AllocatorGeometry& geo)
    : dev_(dev), geo_(geo), map_(std::make_unique<Map>(geo.block_size)) {}

Allocator::~Allocator() = default;

void Allocator::SetGeometryLocked(uint64_t new_count) {
  Map& m = *map_;
  m.sizes = allocmap::LevelSizes(new_count, geo_.block_size);
  m.bits.resize(m.sizes[0] * m.words_per_leaf, 0);
  m.leaf_dirty.resize(m.sizes[0], 0);
  if (m.loc.size() < m.sizes.size()) m.loc.resize(m.sizes.size());
  m.total_nodes = 0;
  for (size_t k = 0; k < m.sizes.size(); k++) {
    m.loc[k].resize(m.sizes[k], 0);
    m.total_nodes += m.sizes[k];
  }
  geo_.block_count = new_count;
}

Result<std::unique_ptr<Allocator>> Allocator::CreateEmpty(blockdev::BlockDevice* dev,
                                                          const AllocatorGeometry& geo) {
  if (geo.block_count < format::kMinDiskBlocks) {
    return Status::InvalidArgument(dev->path() + ": a disk needs at least " +
                                   std::to_string(format::kMinDiskBlocks) + " blocks");
  }
  std::unique_ptr<Allocator> a(new Allocator(dev, geo));
  std::lock_guard lock(a->mu_);
  a->SetGeometryLocked(geo.block_count);
  SetRange(a->map_->bits, 0, format::kSuperblockCopies, true);
  a->map_->used_bits = format::kSuperblockCopies;
  a->map_->MarkDirty(0, format::kSuperblockCopies);
  a->free_.Insert(Extent{format::kSuperblockCopies, geo.block_count - format::kSuperblockCopies});
  return a;
}

Result<std::unique_ptr<Allocator>> Allocator::Load(blockdev::BlockDevice* dev,
                                                   const AllocatorGeometry& geo,
                                                   const MapRoot& root) {
  if (geo.block_count < root.block_count) {
    return Status::Corruption(dev->path() + ": truncated: the superblock says " +
                              std::to_string(root.block_count) + " blocks, the device has " +
                              std::to_string(geo.block_count));
  }
  std::unique_ptr<Allocator> a(new Allocator(dev, geo));
  std::lock_guard lock(a->mu_);
  a->SetGeometryLocked(geo.block_count);
  VDE_RETURN_IF_ERROR(a->LoadLocked(root));
  return a;
}

Status Allocator::LoadLocked(const MapRoot& root) {
  Map& m = *map_;
  const uint32_t bs = geo_.block_size;
  const std::string& path = dev_->path();
  const std::vector<uint64_t> sizes = allocmap::LevelSizes(root.block_count, bs);
  if (root.levels != sizes.size() || root.root < format::kSuperblockCopies ||
      root.root >= root.block_count) {
    return Status::Corruption(path + ": allocator map root " + std::to_string(root.root) +
                              " with " + std::to_string(root.levels) + " levels does not fit " +
                              std::to_string(root.block_count) + " blocks");
  }
  const size_t align = std::max<size_t>(dev_->alignment(), 64);
  AlignedBuffer buf(kReadChunk * bs, align);
  std::vector<uint64_t> metas;
  // Walk the tree top-down, level by level; `nodes` holds (index, block) of the level's
  // non-zero nodes.
  std::vector<std::pair<uint64_t, uint64_t>> nodes{{0, root.root}};
  for (uint32_t level = root.levels; level-- > 0;) {
    std::vector<std::pair<uint64_t, uint64_t>> below;
    for (size_t first = 0; first < nodes.size(); first += kReadChunk) {
      size_t n = std::min(kReadChunk, nodes.size() - first);
      std::vector<blockdev::ReadRequest> reqs(n);
      for (size_t i = 0; i < n; i++) {
        reqs[i] = {nodes[first + i].second, 1, buf.data() + i * bs, Status::OK()};
      }
      VDE_RETURN_IF_ERROR(dev_->ReadBatch(reqs));
      for (size_t i = 0; i < n; i++) {
        auto [index, block] = nodes[first + i];
        std::span<const std::byte> data(buf.data() + i * bs, bs);
        m.loc[level][index] = block;
        metas.push_back(block);
        if (level == 0) {
          std::span<uint64_t> words(m.bits.data() + index * m.words_per_leaf, m.words_per_leaf);
          VDE_RETURN_IF_ERROR(
              allocmap::DecodeLeaf(data, block, index, root.block_count, path, words));
          continue;
        }
        uint64_t nchildren = std::min(m.fanout, sizes[level - 1] - index * m.fanout);
        std::vector<uint64_t> children(nchildren);
        VDE_RETURN_IF_ERROR(
            allocmap::DecodeInterior(data, block, level, index, root.block_count, path, children));
        for (uint64_t j = 0; j < nchildren; j++) {
          if (children[j] != 0) below.emplace_back(index * m.fanout + j, children[j]);
        }
      }
    }
    nodes = std::move(below);
  }
  // Cross-checks: the superblocks are allocated, the count matches the superblock, and every
  // map block is referenced once and is not also marked allocated.
  if (FindBit(m.bits, 0, format::kSuperblockCopies, false) != format::kSuperblockCopies) {
    return Status::Corruption(path + ": the allocator map does not mark the superblocks (blocks " +
                              "0 and 1) allocated");
  }
  uint64_t used = 0;
  for (uint64_t w : m.bits) used += static_cast<uint64_t>(std::popcount(w));
  if (used != root.used_blocks) {
    return Status::Corruption(path + ": the allocator map marks " + std::to_string(used) +
                              " blocks allocated, the superblock says " +
                              std::to_string(root.used_blocks));
  }
  m.used_bits = used;
  std::sort(metas.begin(), metas.end());
  for (size_t i = 0; i < metas.size(); i++) {
    if (i > 0 && metas[i] == metas[i - 1]) {
      return Status::Corruption(path + ": block " + std::to_string(metas[i]) +
                                " is referenced twice in the allocator map");
    }
    if (FindBit(m.bits, metas[i], metas[i] + 1, true) == metas[i]) {
      return Status::Corruption(path + ": allocator map block " + std::to_string(metas[i]) +
                                " is also marked allocated in the map");
    }
  }
  // Free space: every clear bit that is not a map block.
  for (uint64_t b = FindBit(m.bits, 0, geo_.block_count, false); b < geo_.block_count;) {
    uint64_t end = FindBit(m.bits, b, geo_.block_count, true);
    free_.Insert(Extent{b, end - b});
    b = FindBit(m.bits, end, geo_.block_count, false);
  }
  for (uint64_t b : metas) {
    bool removed = free_.Remove(Extent{b, 1});
    assert(removed);
    (void)removed;
  }
  meta_blocks_ = metas.size();
  m.durable_levels = root.levels;
  m.durable_block_count = root.block_count;
  return Status::OK();
}

uint64_t Allocator::ReserveLocked() const {
  uint64_t want = 2 * map_->total_nodes;
  return want > meta_blocks_ ? want - meta_blocks_ : 0;
}

Status Allocator::NoSpaceLocked(uint64_t count) const {
  std::string why;
  if (!geo_.growable) {
    why = "the disk is fixed-size";
  } else {
    why = "the disk is at its maximum size";
  }
  return Status::NoSpace(
      dev_->path() + ": no room for " + std::to_string(count) + " contiguous blocks (" +
      std::to_string(free_.free_blocks()) + " free in " + std::to_string(free_.extent_count()) +
      " extents, largest " + std::to_string(free_.largest()) + "; " +
      std::to_string(pending_blocks_ + in_flight_blocks_) +
      " pending reuse after the next checkpoint; " + std::to_string(ReserveLocked()) +
      " reserved for checkpoints): " + why + " of " + std::to_string(geo_.block_count) + " blocks");
}

Status Allocator::GrowLocked(uint64_t contig, uint64_t total) {
  const uint64_t cur = geo_.block_count;
  uint64_t max = MaxBlocksFor(geo_.block_size);
  if (geo_.growable && geo_.max_blocks != 0) max = std::min(max, geo_.max_blocks);
  if (!geo_.growable || cur >= max) return NoSpaceLocked(contig);
  uint64_t need = 1;
  const uint64_t free = free_.free_blocks();
  if (contig > free_.largest()) {
    auto tail = free_.ExtentEndingAt(cur);
    need = std::max(need, contig - (tail ? tail->count : 0));
  }
  if (total > free) need = std::max(need, total - free);
  const uint64_t step = std::max<uint64_t>(geo_.growth_step_blocks, 1);
  uint64_t room = max - cur;
  uint64_t grow_by = need >= room ? room : std::min(room, (need + step - 1) / step * step);
  const uint64_t target = cur + grow_by;
  VDE_RETURN_IF_ERROR(dev_->Grow(target));
  SetGeometryLocked(target);
  free_.Insert(Extent{cur, target - cur});
  grows_++;
  return Status::OK();
}

Result<Extent> Allocator::Allocate(uint64_t count) {
  std::lock_guard lock(mu_);
  if (geo_.read_only) return Status::ReadOnly(dev_->path() + ": allocate on a read-only disk");
  if (count == 0) return Status::InvalidArgument(dev_->path() + ": allocation of 0 blocks");
  for (;;) {
    const uint64_t reserve = ReserveLocked();
    const uint64_t free = free_.free_blocks();
    if (free >= count && free - count >= reserve) {
      if (auto e = free_.TakeBestFit(count)) {
        SetRange(map_->bits, e->start, e->count, true);
        map_->used_bits += e->count;
        map_->MarkDirty(e->start, e->count);
        return *e;
      }
    }
    if (count > MaxBlocksFor(geo_.block_size)) return NoSpaceLocked(count);
    VDE_RETURN_IF_ERROR(GrowLocked(count, count + reserve));
  }
}

Result<uint64_t> Allocator::AllocateBlock() {
  VDE_ASSIGN_OR_RETURN(Extent e, Allocate(1));
  return e.start;
}

Status Allocator::Free(Extent e) {
  std::lock_guard lock(mu_);
  return FreeLocked(e, &pending_);
}

Status Allocator::FreeHeld(Extent e) {
  std::lock_guard lock(mu_);
  return FreeLocked(e, &held_);
}

Status Allocator::Unhold(Extent e) {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < held_.size(); i++) {
    if (held_[i].start == e.start && held_[i].count == e.count) {
      held_[i] = held_.back();
      held_.pop_back();
      held_blocks_ -= e.count;
      pending_.push_back(e);
      pending_blocks_ += e.count;
      return Status::OK();
    }
  }
  return Status::InvalidArgument(dev_->path() + ": unhold of blocks " + std::to_string(e.start) +
                                 "+" + std::to_string(e.count) + ": not held");
}

Status Allocator::FreeLocked(Extent e, std::vector<Extent>* to) {
  const std::string& path = dev_->path();
  if (geo_.read_only) return Status::ReadOnly(path + ": free on a read-only disk");
  const std::string what =
      "free of blocks " + std::to_string(e.start) + "+" + std::to_string(e.count);
  if (e.count == 0) return Status::InvalidArgument(path + ": " + what + ": empty extent");
  if (e.start < format::kSuperblockCopies) {
    return Status::InvalidArgument(path + ": " + what + ": blocks 0 and 1 are the superblocks");
  }
  if (e.start >= geo_.block_count || e.count > geo_.block_count - e.start) {
    return Status::InvalidArgument(path + ": " + what + ": past the end of the disk (" +
                                   std::to_string(geo_.block_count) + " blocks)");
  }
  uint64_t clear = FindBit(map_->bits, e.start, e.end(), false);
  if (clear != e.end()) {
    return Status::InvalidArgument(path + ": " + what + ": block " + std::to_string(clear) +
                                   " is not allocated (double free?)");
  }
  SetRange(map_->bits, e.start, e.count, false);
  map_->used_bits -= e.count;
  map_->MarkDirty(e.start, e.count);
  to->push_back(e);
  if (to == &held_) {
    held_blocks_ += e.count;
  } else {
    pending_blocks_ += e.count;
  }
  return Status::OK();
}

bool Allocator::IsAllocated(uint64_t block) const {
  std::lock_guard lock(mu_);
  return block < geo_.block_count && !free_.Contains(block);
}

uint64_t Allocator::block_count() const {
  std::lock_guard lock(mu_);
  return geo_.block_count;
}

uint64_t Allocator::reserved_blocks() const {
  std::lock_guard lock(mu_);
  return ReserveLocked();
}

AllocatorStats Allocator::stats() const {
  std::lock_guard lock(mu_);
  AllocatorStats s;
  s.block_count = geo_.block_count;
  s.metadata_blocks = meta_blocks_;
  s.used_blocks = map_->used_bits + meta_blocks_;
  s.free_blocks = free_.free_blocks();
  s.pending_blocks = pending_blocks_ + in_flight_blocks_ + held_blocks_;
  s.free_extents = free_.extent_count();
  s.largest_free_extent = free_.largest();
  s.reserved_blocks = ReserveLocked();
  s.grows = grows_;
  return s;
}

std::vector<Extent> Allocator::FreeExtents() const {
  std::lock_guard lock(mu_);
  return free_.Extents();
}

bool Allocator::dirty() const {
  std::lock_guard lock(mu_);
  return map_->dirty_leaves > 0 || !pending_.empty() ||
         geo_.block_count != map_->durable_block_count;
}

// ---- Checkpoints ------------------------------------------------------------------------------
//
// A node must be rewritten when its content changed: a dirty leaf, a parent of a rewritten node,
// or node 0 of a level the durable tree does not have yet (the tree grew taller). A node whose
// content is all zero gets location 0 and no block. Every rewritten node goes to a fresh block
// taken from the free index; map blocks are not in the bitmap, so this changes nothing that is
// being encoded. The blocks replaced are released by CommitCheckpoint.

Result<MapCheckpoint> Allocator::PrepareCheckpoint(uint64_t generation) {
  std::lock_guard lock(mu_);
  if (geo_.read_only) return Status::ReadOnly(dev_->path() + ": checkpoint on a read-only disk");
  Map& m = *map_;
  struct Changed {
    uint64_t index;
    bool nonzero;
    uint64_t new_loc = 0;
  };
  std::vector<std::vector<Changed>> changed;
  uint64_t needed = 0;
  for (;;) {
    const size_t levels = m.sizes.size();
    changed.assign(levels, {});
    needed = 0;
    for (uint64_t i = 0; i < m.sizes[0]; i++) {
      if (m.leaf_dirty[i] == 0 && !(i == 0 && m.durable_levels == 0)) continue;
      bool nonzero = m.LeafNonZero(i);
      if (nonzero || m.loc[0][i] != 0) changed[0].push_back({i, nonzero});
    }
    for (size_t k = 1; k < levels; k++) {
      std::vector<uint64_t> parents;
      for (const Changed& c : changed[k - 1]) {
        if (parents.empty() || parents.back() != c.index / m.fanout) {
          parents.push_back(c.index / m.fanout);
        }
      }
      if (k >= m.durable_levels && (parents.empty() || parents.front() != 0)) {
        parents.insert(parents.begin(), 0);
      }
      const auto& below = changed[k - 1];
      for (uint64_t p : parents) {
        bool nonzero = false;
        uint64_t last = std::min(m.sizes[k - 1], (p + 1) * m.fanout);
        for (uint64_t c = p * m.fanout; c < last && !nonzero; c++) {
          auto it = std::lower_bound(below.begin(), below.end(), c,
                                     [](const Changed& x, uint64_t v) { return x.index < v; });
          nonzero = it != below.end() && it->index == c ? it->nonzero : m.loc[k - 1][c] != 0;
        }
        if (nonzero || m.loc[k][p] != 0) changed[k].push_back({p, nonzero});
      }
    }
    for (const auto& level : changed) {
      for (const Changed& c : level) needed += c.nonzero ? 1 : 0;
    }
    if (free_.free_blocks() >= needed) break;
    // Only possible when a growable disk hit its maximum in small steps; try to grow.
    VDE_RETURN_IF_ERROR(GrowLocked(1, needed));
  }

  MapCheckpoint cp;
  cp.generation = generation;
  const uint32_t bs = geo_.block_size;
  cp.buffer =
      AlignedBuffer(std::max<uint64_t>(needed, 1) * bs, std::max<size_t>(dev_->alignment(), 64));
  std::vector<uint64_t> children;
  for (size_t k = 0; k < changed.size(); k++) {
    for (Changed& c : changed[k]) {
      if (c.nonzero) {
        c.new_loc = free_.TakeBestFit(1)->start;  // `needed` blocks are free (checked above)
        std::span<std::byte> block(cp.buffer.data() + cp.writes.size() * bs, bs);
        if (k == 0) {
          allocmap::EncodeLeaf(block, c.index,
                               std::span<const uint64_t>(m.bits.data() + c.index * m.words_per_leaf,
                                                         m.words_per_leaf),
                               c.new_loc, generation);
        } else {
          uint64_t first = c.index * m.fanout;
          uint64_t last = std::min(m.sizes[k - 1], first + m.fanout);
          children.assign(m.loc[k - 1].begin() + static_cast<ptrdiff_t>(first),
                          m.loc[k - 1].begin() + static_cast<ptrdiff_t>(last));
          auto it = std::lower_bound(changed[k - 1].begin(), changed[k - 1].end(), first,
                                     [](const Changed& x, uint64_t v) { return x.index < v; });
          for (; it != changed[k - 1].end() && it->index < last; ++it) {
            children[it->index - first] = it->new_loc;
          }
          allocmap::EncodeInterior(block, static_cast<uint32_t>(k), c.index, children, c.new_loc,
                                   generation);
        }
        cp.writes.push_back({c.new_loc, 1, block.data(), Status::OK()});
      }
      cp.changes.push_back({static_cast<uint32_t>(k), c.index, m.loc[k][c.index], c.new_loc});
    }
  }
  const auto& top = changed.back();
  cp.root.root = !top.empty() ? top.front().new_loc : m.loc[changed.size() - 1][0];
  cp.root.levels = static_cast<uint32_t>(changed.size());
  cp.root.block_count = geo_.block_count;
  cp.root.used_blocks = m.used_bits;
  for (uint64_t i = 0; i < m.sizes[0]; i++) {
    if (m.leaf_dirty[i] != 0) {
      cp.dirty_leaves.push_back(i);
      m.leaf_dirty[i] = 0;
    }
  }
  m.dirty_leaves = 0;
  cp.released = std::move(pending_);
  pending_.clear();
  in_flight_blocks_ += pending_blocks_;
  pending_blocks_ = 0;
  meta_blocks_ += needed;
  return cp;
}

Status Allocator::WriteCheckpoint(MapCheckpoint& cp) {
  if (cp.writes.empty()) return Status::OK();
  return dev_->WriteBatch(cp.writes);
}

void Allocator::CommitCheckpoint(MapCheckpoint&& cp) {
  std::lock_guard lock(mu_);
  Map& m = *map_;
  for (const auto& c : cp.changes) {
    m.loc[c.level][c.index] = c.new_loc;
    if (c.old_loc != 0) {
      bool ok = free_.Insert(Extent{c.old_loc, 1});
      assert(ok);
      (void)ok;
      meta_blocks_--;
    }
  }
  for (const Extent& e : cp.released) {
    bool ok = free_.Insert(e);
    assert(ok);
    (void)ok;
    in_flight_blocks_ -= e.count;
  }
  m.durable_levels = cp.root.levels;
  m.durable_block_count = cp.root.block_count;
}

void Allocator::AbortCheckpoint(MapCheckpoint&& cp, bool written) {
  std::lock_guard lock(mu_);
  Map& m = *map_;
  for (uint64_t i : cp.dirty_leaves) {
    if (m.leaf_dirty[i] == 0) {
      m.leaf_dirty[i] = 1;
      m.dirty_leaves++;
    }
  }
  for (const Extent& e : cp.released) {
    pending_.push_back(e);
    pending_blocks_ += e.count;
    in_flight_blocks_ -= e.count;
  }
  if (written) return;  // the new map blocks may be on disk: keep them out of use
  for (const auto& c : cp.changes) {
    if (c.new_loc != 0) {
      bool ok = free_.Insert(Extent{c.new_loc, 1});
      assert(ok);
      (void)ok;
      meta_blocks_--;
    }
  }
}

}  // namespace vde
