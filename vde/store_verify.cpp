// Store::Verify: walks everything the store owns and checks it against the allocator.
//
// Owners: the two superblocks, the allocator map's blocks (walked from the durable superblock,
// as the allocator loaded them), the catalog header block, the catalog's names tree and every
// index's pages and out-of-line extents (BTree::Verify's on_blocks). Then: each owned block is
// owned once and allocated; the allocated blocks that nothing owns are exactly as many as were
// freed since the last checkpoint (pending reuse), so none leaked.
#include <algorithm>
#include <mutex>
#include <shared_mutex>

#include "blockdev/aligned_buffer.h"
#include "vde/alloc_map.h"
#include "vde/format.h"
#include "vde/store_impl.h"
#include "vde/superblock.h"

namespace vde {

namespace {

// Owner of each block: 0 = nobody, else an index into `names`.
class Ownership {
 public:
  Ownership(uint64_t blocks, std::string path) : owner_(blocks, 0), path_(std::move(path)) {
    names_.emplace_back();
  }
  uint32_t AddOwner(std::string name) {
    names_.push_back(std::move(name));
    return static_cast<uint32_t>(names_.size() - 1);
  }
  // Records that `who` owns [first, first + count); the first conflict is kept in error().
  void Claim(uint64_t first, uint64_t count, uint32_t who) {
    if (!error_.ok()) return;
    if (first >= owner_.size() || count > owner_.size() - first) {
      error_ = Status::Corruption(path_ + ": " + names_[who] + " owns blocks " +
                                  std::to_string(first) + "+" + std::to_string(count) +
                                  ", past the end (" + std::to_string(owner_.size()) + " blocks)");
      return;
    }
    for (uint64_t b = first; b < first + count; b++) {
      if (owner_[b] != 0) {
        error_ = Status::Corruption("block " + std::to_string(b) + " of " + path_ +
                                    " is owned twice: by " + names_[owner_[b]] + " and by " +
                                    names_[who]);
        return;
      }
      owner_[b] = who;
    }
    owned_ += count;
  }
  uint32_t owner(uint64_t b) const { return owner_[b]; }
  const std::string& name(uint32_t who) const { return names_[who]; }
  uint64_t owned() const { return owned_; }
  const Status& error() const { return error_; }

 private:
  std::vector<uint32_t> owner_;
  std::vector<std::string> names_;
  std::string path_;
  uint64_t owned_ = 0;
  Status error_;
};

// Claims the allocator map's blocks, walking the tree the durable superblock names.
Status ClaimAllocatorMap(blockdev::BlockDevice& dev, Ownership* own, uint64_t* count) {
  const uint32_t bs = dev.block_size();
  const std::string& path = dev.path();
  AlignedBuffer buf(2 * static_cast<size_t>(bs), std::max<size_t>(dev.alignment(), 64));
  VDE_RETURN_IF_ERROR(dev.Read(0, 2, buf.span()));
  VDE_ASSIGN_OR_RETURN(SuperblockSearch found, ReadSuperblockPair(buf.span(), bs, path));
  if (found.current < 0) return Status::Corruption(path + ": no valid superblock");
  const Superblock& sb = *found.copies[static_cast<size_t>(found.current)];
  const uint32_t who = own->AddOwner("the allocator map");
  const std::vector<uint64_t> sizes = allocmap::LevelSizes(sb.block_count, bs);
  const uint64_t fanout = format::Fanout(bs);
  std::vector<std::pair<uint64_t, uint64_t>> nodes{{0, sb.alloc_root}};  // (index, block)
  for (uint32_t level = sb.alloc_levels; level-- > 0;) {
    std::vector<std::pair<uint64_t, uint64_t>> below;
    for (const auto& [index, block] : nodes) {
      own->Claim(block, 1, who);
      ++*count;
      if (level == 0) continue;
      VDE_RETURN_IF_ERROR(dev.Read(block, 1, buf.span().first(bs)));
      std::vector<uint64_t> children(std::min(fanout, sizes[level - 1] - index * fanout));
      VDE_RETURN_IF_ERROR(allocmap::DecodeInterior(buf.span().first(bs), block, level, index,
                                                   sb.block_count, path, children));
      for (uint64_t j = 0; j < children.size(); j++) {
        if (children[j] != 0) below.emplace_back(index * fanout + j, children[j]);
      }
    }
    nodes = std::move(below);
  }
  return own->error();
}

}  // namespace

Result<VerifyReport> Store::Verify(bool read_values) const {
  return impl_->Verify(read_values);
}

Result<VerifyReport> StoreImpl::Verify(bool read_values) const {
  // No checkpoint in flight (so no half-written allocator map) and no writer (so the allocator
  // and the trees hold still).
  std::lock_guard cp(cp_mu_);
  std::lock_guard w(write_mu_);
  std::shared_lock lk(mu_);
  VDE_RETURN_IF_ERROR(CheckOpen());
  blockdev::BlockDevice& dev = disk_->device();
  const std::string& path = dev.path();
  const Allocator& alloc = disk_->allocator();
  const AllocatorStats as = alloc.stats();
  Ownership own(as.block_count, path);
  VerifyReport rep;

  own.Claim(0, format::kSuperblockCopies, own.AddOwner("the superblocks"));
  rep.metadata_blocks = format::kSuperblockCopies;
  VDE_RETURN_IF_ERROR(ClaimAllocatorMap(dev, &own, &rep.metadata_blocks));

  auto walk = [&](const index::BTree& tree, const std::string& name) -> Status {
    const uint32_t who = own.AddOwner(name);
    index::VerifyOptions vo;
    vo.read_values = read_values;
    vo.on_blocks = [&](uint64_t first, uint32_t count, BlockType type) {
      own.Claim(first, count, who);
      if (type == BlockType::kOverflow) {
        rep.overflow_blocks += count;
      } else {
        rep.pages++;
      }
    };
    VDE_RETURN_IF_ERROR(tree.Verify(vo).WithContext(name));
    return own.error();
  };
  if (catalog_ != nullptr) {
    if (catalog_->header_block() != 0) {
      own.Claim(catalog_->header_block(), 1, own.AddOwner("the catalog header"));
      rep.metadata_blocks++;
    }
    VDE_RETURN_IF_ERROR(walk(catalog_->names(), "the catalog"));
  }
  for (const auto& [name, st] : indexes_) {
    VDE_RETURN_IF_ERROR(walk(*st->tree, "index '" + name + "'"));
    rep.indexes++;
  }
  VDE_RETURN_IF_ERROR(own.error());
  rep.owned_blocks = own.owned();

  uint64_t free_blocks = 0;
  for (const Extent& e : alloc.FreeExtents()) {
    free_blocks += e.count;
    for (uint64_t b = e.start; b < e.end() && b < as.block_count; b++) {
      if (own.owner(b) != 0) {
        return Status::Corruption("block " + std::to_string(b) + " of " + path + ", owned by " +
                                  own.name(own.owner(b)) + ", is free in the allocator");
      }
    }
  }
  rep.allocated_blocks = as.block_count - free_blocks;
  // Blocks reserved for undo and not used are allocated and owned by nothing until the next
  // checkpoint releases them; count them with the pending ones.
  rep.pending_blocks = as.pending_blocks + source_->spare_blocks();
  const uint64_t unowned = rep.allocated_blocks - rep.owned_blocks;
  if (unowned != rep.pending_blocks) {
    uint64_t first = 0;
    for (uint64_t b = 0; b < as.block_count; b++) {
      if (own.owner(b) == 0 && alloc.IsAllocated(b)) {
        first = b;
        break;
      }
    }
    return Status::Corruption(path + ": " + std::to_string(unowned) +
                              " allocated blocks are owned by nothing, but only " +
                              std::to_string(rep.pending_blocks) +
                              " were freed since the last checkpoint (leaked, or freed while in "
                              "use); the first unowned one is block " +
                              std::to_string(first));
  }
  return rep;
}

}  // namespace vde
