// BTree: creation, lookup, insert/update, delete with merges, copy-on-write. Splits are in
// btree_split.cpp, whole-tree walks (stats, verify, destroy) in btree_walk.cpp, iterators in
// btree_iterator.cpp.
#include "index/btree.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>

namespace vde::index {

namespace {

uint64_t PageGeneration(std::span<const std::byte> page) {
  return GetU64(page.data() + 24);
}

std::string_view AsView(const std::byte* p, size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

const std::byte* AsBytes(std::string_view s) {
  return reinterpret_cast<const std::byte*>(s.data());
}

// Restarts a put may take before we call it a bug rather than loop forever: each split either
// shrinks the target leaf's entry count or splits an ancestor, so real counts stay far below.
constexpr int kMaxPutRestarts = 100000;

}  // namespace

BTree::BTree(PageCache* cache, BlockSource* source, const BTreeOptions& options, uint64_t root,
             uint32_t height)
    : cache_(cache),
      source_(source),
      block_size_(cache->block_size()),
      max_inline_(options.max_inline_value == 0 ||
                          options.max_inline_value > MaxInlineValueSize(cache->block_size())
                      ? MaxInlineValueSize(cache->block_size())
                      : options.max_inline_value),
      snapshots_(options.snapshots),
      root_(root),
      height_(height),
      scratch_(new std::byte[3 * static_cast<size_t>(cache->block_size())]) {}

BTree::~BTree() = default;

Result<std::unique_ptr<BTree>> BTree::Create(PageCache* cache, BlockSource* source,
                                             const BTreeOptions& options) {
  VDE_ASSIGN_OR_RETURN(uint64_t id, source->Allocate(1));
  uint64_t epoch = 0;
  if (options.snapshots != nullptr) {
    options.snapshots->NoteCreated();
    epoch = options.snapshots->current_epoch();
  }
  Result<ExclusiveGuard> g = cache->PinNew(id, epoch);
  if (!g.has_value()) {
    Status f = source->Free(id, 1);
    return f.ok() ? g.error() : g.error().WithContext("(freeing the root failed too)");
  }
  MutableNode root(g->data().data(), cache->block_size());
  root.Init(0, {}, {}, 0);
  StampNode(g->data(), id, source->generation());
  g->MarkDirty();
  return std::unique_ptr<BTree>(new BTree(cache, source, options, id, 1));
}

Result<std::unique_ptr<BTree>> BTree::Open(PageCache* cache, BlockSource* source, uint64_t root,
                                           const BTreeOptions& options) {
  const uint64_t blocks = cache->device()->block_count();
  if (root == 0 || root >= blocks) {
    return Status::InvalidArgument(cache->device()->path() + ": root block " +
                                   std::to_string(root) + " is outside the device (" +
                                   std::to_string(blocks) + " blocks)");
  }
  VDE_ASSIGN_OR_RETURN(SharedGuard g, cache->PinShared(root, &ValidateNode));
  Node n(g.data().data(), cache->block_size());
  std::unique_ptr<BTree> tree(new BTree(cache, source, options, root, n.level() + 1u));
  VDE_RETURN_IF_ERROR(tree->CheckRoot(n, root));
  return tree;
}

// ---- Checks ----

Status BTree::Corrupt(uint64_t block, const std::string& what) const {
  return Status::Corruption("block " + std::to_string(block) + " of " + cache_->device()->path() +
                            ": btree: " + what);
}

Status BTree::DestroyedError() {
  return Status::InvalidArgument("btree: the tree was destroyed");
}

Status BTree::CheckKey(std::string_view key) const {
  if (key.empty()) {
    return Status::InvalidArgument("btree: empty key (keys are 1 to " +
                                   std::to_string(max_key_size()) + " bytes)");
  }
  if (key.size() > max_key_size()) {
    return Status::InvalidArgument("btree: key of " + std::to_string(key.size()) +
                                   " bytes exceeds the limit of " + std::to_string(max_key_size()) +
                                   " bytes (MaxKeySize for " + std::to_string(block_size_) +
                                   "-byte blocks)");
  }
  return Status::OK();
}

Result<BTree::SharedGuard> BTree::PinShared(uint64_t page) const {
  return cache_->PinShared(page, &ValidateNode);
}

Result<BTree::ExclusiveGuard> BTree::PinExclusive(uint64_t page) const {
  return cache_->PinExclusive(page, &ValidateNode);
}

Status BTree::CheckChildPointer(uint64_t parent, uint64_t child) const {
  const uint64_t blocks = cache_->device()->block_count();
  if (child == 0 || child >= blocks) {
    return Corrupt(parent, "child pointer " + std::to_string(child) + " is outside the device (" +
                               std::to_string(blocks) + " blocks)");
  }
  return Status::OK();
}

Status BTree::CheckRoot(const Node& root, uint64_t id) const {
  if (!root.lower_fence().empty() || !root.upper_fence().empty()) {
    return Corrupt(id, "the root page has fence keys (not a root)");
  }
  return Status::OK();
}

Status BTree::CheckChild(const Node& parent, uint64_t parent_id, uint32_t slot, const Node& child,
                         uint64_t child_id) const {
  if (child.level() + 1u != parent.level()) {
    return Corrupt(child_id, "level " + std::to_string(child.level()) + " page under the level " +
                                 std::to_string(parent.level()) + " page " +
                                 std::to_string(parent_id));
  }
  bool lower_ok = slot == 0 ? child.lower_fence() == parent.lower_fence()
                            : parent.CompareKey(slot - 1, child.lower_fence()) == 0;
  bool upper_ok = slot == parent.count() ? child.upper_fence() == parent.upper_fence()
                                         : parent.CompareKey(slot, child.upper_fence()) == 0;
  if (!lower_ok || !upper_ok) {
    return Corrupt(child_id, "fence keys disagree with slot " + std::to_string(slot) +
                                 " of its parent page " + std::to_string(parent_id) +
                                 " (stale or misplaced page)");
  }
  return Status::OK();
}

bool BTree::Underfull(const Node& n) const {
  return n.UsedBytes() - kNodeHeaderSize < NodeCapacity(block_size_) / 4;
}

// ---- Descent and lookup ----

Result<BTree::SharedGuard> BTree::PinRoot(uint64_t* id) const {
  for (;;) {
    const uint64_t root = root_.load(std::memory_order_acquire);
    Result<SharedGuard> g = PinShared(root);
    // A writer changes root_ only while it holds the old root exclusively, so a root that is
    // still root_ once latched is the current one. One that is not may be anything (a page
    // split off, a block freed and reused): it is not looked at, not even its errors.
    if (root_.load(std::memory_order_acquire) != root) continue;
    if (!g.has_value()) return g.error();
    VDE_RETURN_IF_ERROR(CheckRoot(Node(g->data().data(), block_size_), root));
    *id = root;
    return std::move(*g);
  }
}

Result<BTree::SharedGuard> BTree::DescendShared(std::string_view key, Descent how) const {
  uint64_t id = 0;
  VDE_ASSIGN_OR_RETURN(SharedGuard g, PinRoot(&id));
  Node n(g.data().data(), block_size_);
  while (!n.is_leaf()) {
    bool found;
    uint32_t slot = how == Descent::kRightmost    ? n.count()
                    : how == Descent::kUpperBound ? n.UpperBound(key)
                                                  : n.LowerBound(key, &found);
    uint64_t child = n.child(slot);
    VDE_RETURN_IF_ERROR(CheckChildPointer(id, child));
    VDE_ASSIGN_OR_RETURN(SharedGuard c, PinShared(child));
    Node cn(c.data().data(), block_size_);
    VDE_RETURN_IF_ERROR(CheckChild(n, id, slot, cn, child));
    g = std::move(c);
    n = cn;
    id = child;
  }
  return g;
}

Result<BTree::ExclusiveGuard> BTree::DescendExclusive(std::string_view key, Path* path) {
  // The caller is the tree's only writer, so the pages of the path cannot change under it: the
  // inner pages are coupled shared (readers go on) and only the leaf is latched exclusively
  // (while its parent is still held, keeping the top-down order).
  path->depth = 0;
  uint64_t id = 0;
  VDE_ASSIGN_OR_RETURN(SharedGuard g, PinRoot(&id));
  Node n(g.data().data(), block_size_);
  if (n.is_leaf()) {
    g.Release();  // a lone root leaf: root_ cannot change meanwhile (we are the writer)
    VDE_ASSIGN_OR_RETURN(ExclusiveGuard x, PinExclusive(id));
    path->steps[path->depth++] = {id, 0, PageGeneration(x.data()), x.epoch()};
    return x;
  }
  for (;;) {
    // Levels fall by exactly one per step (CheckChild), so depth <= kMaxLevels.
    PathStep& step = path->steps[path->depth++];
    step = {id, 0, PageGeneration(g.data()), g.epoch()};
    bool found;
    step.slot = n.LowerBound(key, &found);
    const uint64_t child = n.child(step.slot);
    VDE_RETURN_IF_ERROR(CheckChildPointer(id, child));
    if (n.level() == 1) {
      VDE_ASSIGN_OR_RETURN(ExclusiveGuard c, PinExclusive(child));
      Node cn(c.data().data(), block_size_);
      VDE_RETURN_IF_ERROR(CheckChild(n, id, step.slot, cn, child));
      path->steps[path->depth++] = {child, 0, PageGeneration(c.data()), c.epoch()};
      return c;
    }
    VDE_ASSIGN_OR_RETURN(SharedGuard c, PinShared(child));
    Node cn(c.data().data(), block_size_);
    VDE_RETURN_IF_ERROR(CheckChild(n, id, step.slot, cn, child));
    g = std::move(c);
    n = cn;
    id = child;
  }
}

Status BTree::GetLocked(std::string_view key, std::string* value) const {
  VDE_ASSIGN_OR_RETURN(SharedGuard leaf, DescendShared(key, Descent::kLowerBound));
  Node n(leaf.data().data(), block_size_);
  bool found;
  uint32_t pos = n.LowerBound(key, &found);
  if (!found) return Status::NotFound("btree: key not found");
  if (n.flags(pos) & kSlotFlagOverflow) {
    // The leaf stays latched while the value is read: a writer must latch it to replace or
    // delete the value, so the extent cannot be freed (and reused) under the read.
    OverflowRef ref = DecodeOverflowRef(AsBytes(n.payload(pos)));
    return ReadOverflowValue(cache_->device(), ref, value);
  }
  value->assign(n.payload(pos));
  return Status::OK();
}

Status BTree::Get(std::string_view key, std::string* value) const {
  VDE_RETURN_IF_ERROR(CheckKey(key));
  VDE_RETURN_IF_ERROR(CheckUsable());
  return GetLocked(key, value);
}

// ---- Copy-on-write ----

bool BTree::MustCopy(uint64_t generation, uint64_t epoch, uint64_t gen) const {
  return generation < gen || (snapshots_ != nullptr && snapshots_->MayReference(epoch));
}

uint64_t BTree::CreationEpoch() const {
  if (snapshots_ == nullptr) return 0;
  snapshots_->NoteCreated();
  return snapshots_->current_epoch();
}

Result<uint64_t> BTree::RelocatePage(ExclusiveGuard& page) {
  VDE_ASSIGN_OR_RETURN(uint64_t fresh, source_->Allocate(1));
  const uint64_t epoch = CreationEpoch();
  Status s;
  if (snapshots_ != nullptr && snapshots_->MayReference(page.epoch())) {
    // A snapshot may read the old page: copy it, leaving the old frame as it is.
    Result<ExclusiveGuard> copy = cache_->PinNew(fresh, epoch);
    if (copy.has_value()) {
      std::memcpy(copy->data().data(), page.data().data(), block_size_);
      copy->MarkDirty();
      page = std::move(*copy);
    } else {
      s = copy.error();
    }
  } else {
    s = cache_->Relocate(page, fresh, epoch);
  }
  if (!s.ok()) {
    Status f = source_->Free(fresh, 1);
    return f.ok() ? s : s.WithContext("(freeing block " + std::to_string(fresh) + " failed too)");
  }
  StampNode(page.data(), fresh, source_->generation());
  return fresh;
}

void BTree::DropFreedPage(ExclusiveGuard& page) {
  if (snapshots_ != nullptr && snapshots_->MayReference(page.epoch())) {
    page.Release();  // a snapshot may still read it; its block is held until then
  } else {
    cache_->Discard(page);
  }
}

Result<BTree::ExclusiveGuard> BTree::MakeWritable(Path* path, ExclusiveGuard leaf) {
  const uint64_t gen = source_->generation();
  uint32_t first = path->depth;
  for (uint32_t i = 0; i < path->depth; i++) {
    if (MustCopy(path->steps[i].generation, path->steps[i].epoch, gen)) {
      first = i;
      break;
    }
  }
  if (first == path->depth) return leaf;
  // Re-latch from the parent of the first page to copy down, parent before child. Pages below
  // it are checked one by one: a page need not be copied although its parent must be (a parent
  // read back from the device has an unknown epoch).
  leaf.Release();
  ExclusiveGuard parent;
  if (first > 0) {
    VDE_ASSIGN_OR_RETURN(parent, PinExclusive(path->steps[first - 1].page));
  }
  for (uint32_t i = first; i < path->depth; i++) {
    VDE_ASSIGN_OR_RETURN(ExclusiveGuard g, PinExclusive(path->steps[i].page));
    const uint64_t old = g.page_id();
    if (MustCopy(PageGeneration(g.data()), g.epoch(), gen)) {
      VDE_ASSIGN_OR_RETURN(uint64_t fresh, RelocatePage(g));
      if (i == 0) {
        root_.store(fresh, std::memory_order_release);
      } else {
        MutableNode(parent.data().data(), block_size_).SetChild(path->steps[i - 1].slot, fresh);
        parent.MarkDirty();
      }
      path->steps[i].page = fresh;
      // The tree is consistent again; only now give the old block back.
      VDE_RETURN_IF_ERROR(source_->Free(old, 1));
    }
    path->steps[i].generation = gen;
    path->steps[i].epoch = g.epoch();
    parent = std::move(g);
  }
  return parent;
}

// ---- Put ----

Status BTree::Put(std::string_view key, std::string_view value) {
  VDE_RETURN_IF_ERROR(CheckKey(key));
  if (value.size() > kMaxValueSize) {
    return Status::InvalidArgument("btree: value of " + std::to_string(value.size()) +
                                   " bytes exceeds the limit of " + std::to_string(kMaxValueSize) +
                                   " bytes (kMaxValueSize)");
  }
  std::lock_guard lock(write_mu_);
  VDE_RETURN_IF_ERROR(CheckUsable());
  WriteScope change(this);
  if (value.size() <= max_inline_) return PutPayload(key, value, 0);
  // Written before the leaf changes, to blocks new in this generation: a failure below leaves
  // nothing pointing at them, and we give them back.
  VDE_ASSIGN_OR_RETURN(OverflowRef ref, WriteOverflowValue(cache_->device(), source_, value));
  std::array<std::byte, kOverflowRefSize> enc;
  EncodeOverflowRef(ref, enc.data());
  Status s = PutPayload(key, AsView(enc.data(), enc.size()), kSlotFlagOverflow);
  if (!s.ok()) {
    Status f = FreeOverflowValue(source_, ref);
    if (!f.ok()) return s.WithContext("(freeing the new value's extent failed too)");
  }
  return s;
}

Status BTree::PutPayload(std::string_view key, std::string_view payload, uint8_t flags) {
  for (int attempt = 0; attempt < kMaxPutRestarts; attempt++) {
    Path path;
    VDE_ASSIGN_OR_RETURN(ExclusiveGuard leaf, DescendExclusive(key, &path));
    VDE_ASSIGN_OR_RETURN(leaf, MakeWritable(&path, std::move(leaf)));
    MutableNode n(leaf.data().data(), block_size_, scratch_.get() + 2 * block_size_);
    bool found;
    uint32_t pos = n.LowerBound(key, &found);
    const uint32_t replace = found ? pos : Node::kNoSlot;
    bool fits = n.HasRoom(key, payload.size(), flags, replace);
    // A full leaf in a variable encoding whose entries now all share widths (a key of another
    // width was deleted or replaced) may take the entry once rewritten in a fixed one.
    if (!fits && n.Reencode()) {
      leaf.MarkDirty();
      fits = n.HasRoom(key, payload.size(), flags, replace);
    }
    if (fits) {
      std::optional<OverflowRef> old;
      if (found) {
        if (n.flags(pos) & kSlotFlagOverflow) old = DecodeOverflowRef(AsBytes(n.payload(pos)));
        n.Remove(pos);
      }
      // An empty leaf (the new half of a run's split) takes the prefix the key shares with its
      // fence, as the run's next keys most likely will.
      if (n.count() == 0) n.ExtendPrefix(key, key);
      n.Insert(pos, key, payload, flags);
      if (!found) n.NoteInsertAt(pos);
      leaf.MarkDirty();
      const bool underfull = found && Underfull(n);
      leaf.Release();
      if (old) VDE_RETURN_IF_ERROR(FreeOverflowValue(source_, *old));
      return underfull ? RebalanceAfterChange(&path) : Status::OK();
    }
    leaf.Release();
    VDE_RETURN_IF_ERROR(SplitNode(&path, path.depth - 1, key, payload.size()));
  }
  return Corrupt(root(),
                 "put did not find room after " + std::to_string(kMaxPutRestarts) + " splits");
}

// ---- Delete and merge ----

Status BTree::Delete(std::string_view key) {
  VDE_RETURN_IF_ERROR(CheckKey(key));
  std::lock_guard lock(write_mu_);
  VDE_RETURN_IF_ERROR(CheckUsable());
  Path path;
  VDE_ASSIGN_OR_RETURN(ExclusiveGuard leaf, DescendExclusive(key, &path));
  bool found;
  uint32_t pos = Node(leaf.data().data(), block_size_).LowerBound(key, &found);
  if (!found) return Status::NotFound("btree: key not found");
  WriteScope change(this);
  VDE_ASSIGN_OR_RETURN(leaf, MakeWritable(&path, std::move(leaf)));
  MutableNode n(leaf.data().data(), block_size_);
  std::optional<OverflowRef> old;
  if (n.flags(pos) & kSlotFlagOverflow) old = DecodeOverflowRef(AsBytes(n.payload(pos)));
  n.Remove(pos);
  leaf.MarkDirty();
  leaf.Release();
  if (old) VDE_RETURN_IF_ERROR(FreeOverflowValue(source_, *old));
  return RebalanceAfterChange(&path);
}

Status BTree::RebalanceAfterChange(Path* path) {
  // The change is made whatever happens here. A merge is an optimization, and one that cannot
  // get a block leaves every page valid (underfull at worst): that is not a failure of the
  // change, and reporting it as one would make the caller believe the change was not made.
  Status s = Rebalance(path);
  if (s.IsNoSpace()) return Status::OK();
  return s.ok() ? s : s.WithContext("(the change itself was made; merging underfull pages failed)");
}

bool BTree::MergeFits(const Node& a, const Node& b, std::string_view separator) const {
  const std::string_view lower = a.lower_fence(), upper = b.upper_fence();
  const size_t prefix = (lower.empty() || upper.empty()) ? 0 : CommonPrefix(lower, upper);
  // In the encoding the merged node gets (fixed when every entry allows it).
  NodeSizer size(prefix, lower.size() + upper.size());
  for (const Node* x : {&a, &b}) {
    for (uint32_t i = 0; i < x->count(); i++) {
      size.Add(x->key_size(i), x->payload(i).size(), x->flags(i));
    }
  }
  if (!a.is_leaf()) size.Add(separator.size(), kChildRefSize, 0);
  return size.bytes() <= block_size_;
}

Status BTree::Rebalance(Path* path) {
  const uint64_t gen = source_->generation();
  std::byte* merged_buf = scratch_.get();
  std::byte* compact = scratch_.get() + 2 * block_size_;
  for (uint32_t idx = path->depth - 1; idx > 0; idx--) {
    // Parent before child (the latch order every thread follows).
    const uint64_t parent_id = path->steps[idx - 1].page;
    VDE_ASSIGN_OR_RETURN(ExclusiveGuard parent, PinExclusive(parent_id));
    VDE_ASSIGN_OR_RETURN(ExclusiveGuard node, PinExclusive(path->steps[idx].page));
    if (!Underfull(Node(node.data().data(), block_size_))) break;
    const Node pn(parent.data().data(), block_size_);
    const uint32_t slot = path->steps[idx - 1].slot;
    bool merged = false;
    // Side 0 merges the node with its right sibling, side 1 with its left one. The right page
    // of the pair survives (its parent pointer stays put), the left one is freed.
    for (int side = 0; side < 2 && !merged; side++) {
      if (side == 0 ? slot >= pn.count() : slot == 0) continue;
      const uint32_t a_slot = side == 0 ? slot : slot - 1;
      const uint32_t sib_slot = side == 0 ? slot + 1 : slot - 1;
      const uint64_t sib_id = pn.child(sib_slot);
      VDE_RETURN_IF_ERROR(CheckChildPointer(parent_id, sib_id));
      VDE_ASSIGN_OR_RETURN(ExclusiveGuard sib, PinExclusive(sib_id));
      VDE_RETURN_IF_ERROR(
          CheckChild(pn, parent_id, sib_slot, Node(sib.data().data(), block_size_), sib_id));
      ExclusiveGuard& ag = side == 0 ? node : sib;
      ExclusiveGuard& bg = side == 0 ? sib : node;
      std::string sep;
      pn.CopyKey(a_slot, &sep);
      if (!MergeFits(Node(ag.data().data(), block_size_), Node(bg.data().data(), block_size_),
                     sep)) {
        continue;
      }
      const uint64_t b_old = bg.page_id();
      if (MustCopy(PageGeneration(bg.data()), bg.epoch(), gen)) {
        VDE_ASSIGN_OR_RETURN(uint64_t fresh, RelocatePage(bg));
        MutableNode(parent.data().data(), block_size_).SetChild(a_slot + 1, fresh);
        parent.MarkDirty();
        VDE_RETURN_IF_ERROR(source_->Free(b_old, 1));
      }
      const Node a(ag.data().data(), block_size_), b(bg.data().data(), block_size_);
      MutableNode m(merged_buf, block_size_, compact);
      m.Init(a.level(), a.lower_fence(), b.upper_fence(), a.is_leaf() ? 0 : b.upper_child());
      // The longest prefix the merged keys share (at least the fences', which MergeFits used).
      std::string first, last;
      if (a.count() > 0) {
        a.CopyKey(0, &first);
      } else if (!a.is_leaf()) {
        first = sep;
      } else if (b.count() > 0) {
        b.CopyKey(0, &first);
      }
      if (b.count() > 0) {
        b.CopyKey(b.count() - 1, &last);
      } else if (!a.is_leaf()) {
        last = sep;
      } else if (a.count() > 0) {
        a.CopyKey(a.count() - 1, &last);
      }
      if (!first.empty()) m.ExtendPrefix(first, last);
      for (uint32_t i = 0; i < a.count(); i++) {
        m.InsertPieces(m.count(), a.prefix(), a.suffix(i), a.payload(i), a.flags(i));
      }
      if (!a.is_leaf()) {
        std::array<std::byte, kChildRefSize> child;
        PutU64(child.data(), a.upper_child());
        m.Insert(m.count(), sep, AsView(child.data(), child.size()), 0);
      }
      for (uint32_t i = 0; i < b.count(); i++) {
        m.InsertPieces(m.count(), b.prefix(), b.suffix(i), b.payload(i), b.flags(i));
      }
      std::memcpy(bg.data().data() + kBlockHeaderSize, merged_buf + kBlockHeaderSize,
                  block_size_ - kBlockHeaderSize);
      bg.MarkDirty();
      MutableNode(parent.data().data(), block_size_, compact).Remove(a_slot);
      parent.MarkDirty();
      const uint64_t a_id = ag.page_id();
      DropFreedPage(ag);
      VDE_RETURN_IF_ERROR(source_->Free(a_id, 1));
      merged = true;
    }
    if (!merged) break;
  }
  return CollapseRoot();
}

Status BTree::CollapseRoot() {
  for (;;) {
    const uint64_t id = root_.load(std::memory_order_relaxed);
    VDE_ASSIGN_OR_RETURN(ExclusiveGuard r, PinExclusive(id));
    Node n(r.data().data(), block_size_);
    if (n.is_leaf() || n.count() > 0) return Status::OK();
    // A root without keys: its only child covers (-inf, +inf) and becomes the root.
    const uint64_t child = n.upper_child();
    VDE_RETURN_IF_ERROR(CheckChildPointer(id, child));
    // root_ changes while the old root is still latched (see PinRoot).
    root_.store(child, std::memory_order_release);
    height_.fetch_sub(1, std::memory_order_release);
    DropFreedPage(r);
    VDE_RETURN_IF_ERROR(source_->Free(id, 1));
  }
}

Status BTree::FlushAll() {
  std::lock_guard lock(write_mu_);
  return cache_->FlushAll();
}

}  // namespace vde::index
