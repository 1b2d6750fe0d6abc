// BTree whole-tree walks: GetStats, Verify and Destroy.
#include <mutex>
#include <string>
#include <vector>

#include "index/btree.h"

namespace vde::index {

namespace {

const std::byte* AsBytes(std::string_view s) {
  return reinterpret_cast<const std::byte*>(s.data());
}

std::vector<uint64_t> Children(const Node& n) {
  std::vector<uint64_t> ids(n.count() + 1);
  for (uint32_t i = 0; i <= n.count(); i++) ids[i] = n.child(i);
  return ids;
}

}  // namespace

Status BTree::Walk(const PageVisitor& visit) const {
  uint64_t id = 0;
  VDE_ASSIGN_OR_RETURN(SharedGuard g, PinRoot(&id));
  Node n(g.data().data(), block_size_);
  VDE_RETURN_IF_ERROR(visit(n, id));
  if (n.is_leaf()) return Status::OK();
  // Read a page's children with one batch before visiting them. Advisory: a child that fails
  // here fails again, with its error, when pinned below.
  (void)cache_->Prefetch(Children(n), &ValidateNode);
  for (uint32_t slot = 0; slot <= n.count(); slot++) {
    VDE_RETURN_IF_ERROR(WalkSubtree(n, id, slot, visit));
  }
  return Status::OK();
}

Status BTree::WalkSubtree(const Node& parent, uint64_t parent_id, uint32_t slot,
                          const PageVisitor& visit) const {
  const uint64_t id = parent.child(slot);
  VDE_RETURN_IF_ERROR(CheckChildPointer(parent_id, id));
  VDE_ASSIGN_OR_RETURN(SharedGuard g, PinShared(id));
  Node n(g.data().data(), block_size_);
  VDE_RETURN_IF_ERROR(CheckChild(parent, parent_id, slot, n, id));
  VDE_RETURN_IF_ERROR(visit(n, id));
  if (n.is_leaf()) return Status::OK();
  (void)cache_->Prefetch(Children(n), &ValidateNode);
  for (uint32_t i = 0; i <= n.count(); i++) VDE_RETURN_IF_ERROR(WalkSubtree(n, id, i, visit));
  return Status::OK();
}

Result<BTreeStats> BTree::GetStats() const {
  std::lock_guard lock(write_mu_);
  VDE_RETURN_IF_ERROR(CheckUsable());
  BTreeStats st;
  st.height = height_.load(std::memory_order_relaxed);
  st.pages_per_level.assign(st.height, 0);
  st.fill_per_level.assign(st.height, 0);
  double fill_sum = 0;
  uint64_t pages = 0;
  VDE_RETURN_IF_ERROR(Walk([&](const Node& n, uint64_t) -> Status {
    const double fill = static_cast<double>(n.UsedBytes()) / block_size_;
    if (n.level() < st.pages_per_level.size()) {
      st.pages_per_level[n.level()]++;
      st.fill_per_level[n.level()] += fill;
    }
    pages++;
    fill_sum += fill;
    switch (n.encoding()) {
      case NodeEncoding::kVariable:
        st.variable_pages++;
        break;
      case NodeEncoding::kFixedKeys:
        st.fixed_key_pages++;
        break;
      case NodeEncoding::kFixedEntries:
        st.fixed_entry_pages++;
        break;
    }
    if (!n.is_leaf()) return Status::OK();
    st.entries += n.count();
    for (uint32_t i = 0; i < n.count(); i++) {
      if (n.flags(i) & kSlotFlagOverflow) {
        st.overflow_values++;
        st.overflow_blocks += DecodeOverflowRef(AsBytes(n.payload(i))).block_count;
      }
    }
    return Status::OK();
  }));
  st.fill_factor = pages == 0 ? 0 : fill_sum / static_cast<double>(pages);
  double inner_sum = 0;
  uint64_t inner_pages = 0;
  for (size_t level = 0; level < st.fill_per_level.size(); level++) {
    if (level > 0) {
      inner_sum += st.fill_per_level[level];
      inner_pages += st.pages_per_level[level];
    }
    const uint64_t n = st.pages_per_level[level];
    if (n > 0) st.fill_per_level[level] /= static_cast<double>(n);
  }
  st.leaf_fill_factor = st.fill_per_level.empty() ? 0 : st.fill_per_level[0];
  st.inner_fill_factor = inner_pages == 0 ? 0 : inner_sum / static_cast<double>(inner_pages);
  auto splits = [&](SplitKind k) {
    return splits_[static_cast<size_t>(k)].load(std::memory_order_relaxed);
  };
  st.splits_ascending = splits(SplitKind::kAscending);
  st.splits_descending = splits(SplitKind::kDescending);
  st.splits_middle = splits(SplitKind::kMiddle);
  return st;
}

Status BTree::Verify(const VerifyOptions& options) const {
  std::lock_guard lock(write_mu_);
  VDE_RETURN_IF_ERROR(CheckUsable());
  const uint32_t height = height_.load(std::memory_order_relaxed);
  std::string value;
  return Walk([&](const Node& n, uint64_t id) -> Status {
    if (id == root_.load(std::memory_order_relaxed) && n.level() + 1u != height) {
      return Corrupt(id, "root level " + std::to_string(n.level()) + " but tree height " +
                             std::to_string(height));
    }
    if (options.on_blocks) {
      options.on_blocks(id, 1, n.is_leaf() ? BlockType::kBTreeLeaf : BlockType::kBTreeInner);
    }
    if (!n.is_leaf()) return Status::OK();
    for (uint32_t i = 0; i < n.count(); i++) {
      if (!(n.flags(i) & kSlotFlagOverflow)) continue;
      OverflowRef ref = DecodeOverflowRef(AsBytes(n.payload(i)));
      if (ref.first_block + ref.block_count > cache_->device()->block_count()) {
        return Corrupt(id, "slot " + std::to_string(i) + ": out-of-line value at block " +
                               std::to_string(ref.first_block) + " runs past the device");
      }
      if (options.on_blocks)
        options.on_blocks(ref.first_block, ref.block_count, BlockType::kOverflow);
      if (options.read_values) {
        VDE_RETURN_IF_ERROR(ReadOverflowValue(cache_->device(), ref, &value));
      }
    }
    return Status::OK();
  });
}

Status BTree::DestroySubtree(uint64_t page, uint32_t level) {
  VDE_ASSIGN_OR_RETURN(ExclusiveGuard g, PinExclusive(page));
  Node n(g.data().data(), block_size_);
  if (n.level() != level) {
    return Corrupt(page, "level " + std::to_string(n.level()) + " where level " +
                             std::to_string(level) + " was expected");
  }
  std::vector<uint64_t> children;
  if (n.is_leaf()) {
    for (uint32_t i = 0; i < n.count(); i++) {
      if (n.flags(i) & kSlotFlagOverflow) {
        VDE_RETURN_IF_ERROR(FreeOverflowValue(source_, DecodeOverflowRef(AsBytes(n.payload(i)))));
      }
    }
  } else {
    children = Children(n);
    for (uint64_t c : children) VDE_RETURN_IF_ERROR(CheckChildPointer(page, c));
  }
  DropFreedPage(g);
  VDE_RETURN_IF_ERROR(source_->Free(page, 1));
  if (children.empty()) return Status::OK();
  (void)cache_->Prefetch(children, &ValidateNode);
  for (uint64_t c : children) VDE_RETURN_IF_ERROR(DestroySubtree(c, level - 1));
  return Status::OK();
}

Status BTree::Destroy() {
  std::lock_guard lock(write_mu_);
  VDE_RETURN_IF_ERROR(CheckUsable());
  destroyed_.store(true, std::memory_order_release);
  WriteScope change(this);
  Status s = DestroySubtree(root_.load(std::memory_order_relaxed),
                            height_.load(std::memory_order_relaxed) - 1);
  root_.store(kNoPage, std::memory_order_release);
  height_.store(0, std::memory_order_release);
  return s;
}

}  // namespace vde::index
