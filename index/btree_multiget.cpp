// BTree::MultiGet: many point lookups with one device batch per tree level.
//
// The keys are sorted (duplicates resolved once) and cut into chunks of at most frames/4 keys,
// which bounds the pages a chunk pins: the pages of one level plus their parents, each at most
// one per key. A chunk walks the tree level by level: every key of a run that routes to the
// same page forms a group; the distinct pages of a level are pinned with one
// PageCache::PinSharedBatch, which reads all the missing ones with one ReadBatch straight into
// their frames (the inner levels are normally resident, so that is one batch, of leaves). Each
// page is checked against its parent as DescendShared does, and the root against root() after it
// is latched (as PinRoot does). The out-of-line values found in a chunk's leaves are then read
// with one more batch (ReadOverflowValues) while the leaves are still latched shared, which
// keeps a writer from replacing the values and freeing their extents meanwhile.
#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include "index/btree.h"

namespace vde::index {

namespace {

const std::byte* AsBytes(std::string_view s) {
  return reinterpret_cast<const std::byte*>(s.data());
}

void RaiseMax(std::atomic<uint64_t>& max, uint64_t v) {
  uint64_t seen = max.load(std::memory_order_relaxed);
  while (seen < v && !max.compare_exchange_weak(seen, v, std::memory_order_relaxed)) {
  }
}

constexpr uint32_t kNoParent = ~uint32_t{0};

}  // namespace

struct BTree::MultiGetRun {
  const BTree& tree;
  std::span<const std::string_view> keys;
  std::vector<std::string>& values;
  std::vector<Status>& statuses;
  // Out-of-line values found in the leaves, read after the walk.
  std::vector<OverflowRef> refs;
  std::vector<std::string*> ref_outs;
  std::vector<uint32_t> ref_keys;

  // The keys idx[begin, end) (sorted, distinct) route to one page of the current level, the
  // child at `slot` of page `parent` of the level above.
  struct Group {
    uint32_t begin, end;
    uint32_t parent;
    uint32_t slot;
  };

  void Fail(std::span<const uint32_t> idx, const Group& g, const Status& s) {
    for (uint32_t k = g.begin; k < g.end; k++) statuses[idx[k]] = s;
  }

  void Chunk(std::span<const uint32_t> idx);
  void ResolveLeaf(std::span<const uint32_t> idx, const Group& g, const Node& leaf);
  // Reads the values of refs (the current chunk's), then forgets them.
  void ReadValues();
};

void BTree::MultiGetRun::Chunk(std::span<const uint32_t> idx) {
  ReadCounters& rc = tree.read_counters_;
  std::vector<uint64_t> pages = {tree.root_.load(std::memory_order_relaxed)};
  std::vector<Group> groups = {{0, static_cast<uint32_t>(idx.size()), kNoParent, 0}};
  std::vector<uint64_t> parent_pages, next_pages;
  std::vector<Group> next_groups;
  std::vector<SharedGuard> guards, parent_guards;
  std::vector<Status> pinned;
  std::vector<uint8_t> live;
  for (;;) {
    guards.clear();
    guards.resize(pages.size());
    pinned.assign(pages.size(), Status::OK());
    const uint32_t read =
        tree.cache_->PinSharedBatch(pages, &ValidateNode, std::span(guards), std::span(pinned));
    if (groups.size() == 1 && groups[0].parent == kNoParent &&
        tree.root_.load(std::memory_order_acquire) != pages[0]) {
      // The root changed while we latched it (see BTree::PinRoot): start again from the new one.
      guards.clear();
      pages[0] = tree.root_.load(std::memory_order_acquire);
      continue;
    }
    // The pages of a level are independent and, above the leaves (just read and checked), rarely
    // in the CPU cache: the lines the checks and the searches below read are fetched for all
    // of them first, so that their misses overlap instead of stalling one page at a time.
    for (size_t g = 0; g < groups.size(); g++) {
      if (pinned[g].ok()) Node::PrefetchHeader(guards[g].data().data());
    }
    for (size_t g = 0; g < groups.size(); g++) {
      if (pinned[g].ok()) Node(guards[g].data().data(), tree.block_size_).PrefetchFences();
    }
    // Check every page against its parent (or as the root); a failure answers its keys.
    live.assign(pages.size(), 0);
    int level = -1;
    for (size_t g = 0; g < groups.size(); g++) {
      const Group& gr = groups[g];
      if (!pinned[g].ok()) {
        Fail(idx, gr, pinned[g]);
        continue;
      }
      const Node n(guards[g].data().data(), tree.block_size_);
      Status s;
      if (gr.parent == kNoParent) {
        s = tree.CheckRoot(n, pages[g]);
      } else {
        const Node p(parent_guards[gr.parent].data().data(), tree.block_size_);
        s = tree.CheckChild(p, parent_pages[gr.parent], gr.slot, n, pages[g]);
      }
      if (!s.ok()) {
        Fail(idx, gr, s);
        continue;
      }
      live[g] = 1;
      level = n.level();  // pages of one round share a level: CheckChild holds them to it
    }
    parent_guards.clear();
    if (level < 0) return;  // every page failed
    if (read > 0) {
      std::atomic<uint64_t>& batches = level == 0 ? rc.leaf_batches : rc.inner_batches;
      batches.fetch_add(1, std::memory_order_relaxed);
      (level == 0 ? rc.leaves_read : rc.inner_pages_read)
          .fetch_add(read, std::memory_order_relaxed);
      if (level == 0) RaiseMax(rc.max_leaves_per_batch, read);
    }
    if (level == 0) {
      for (size_t g = 0; g < groups.size(); g++) {
        if (live[g]) {
          ResolveLeaf(idx, groups[g], Node(guards[g].data().data(), tree.block_size_));
        }
      }
      ReadValues();  // with the leaves still latched
      return;
    }
    // Route each group's keys to the children of its page (the lines of each page's first
    // search fetched for all pages first, as above).
    for (size_t g = 0; g < groups.size(); g++) {
      if (live[g]) {
        Node(guards[g].data().data(), tree.block_size_).PrefetchSearch(keys[idx[groups[g].begin]]);
      }
    }
    next_pages.clear();
    next_groups.clear();
    for (size_t g = 0; g < groups.size(); g++) {
      if (!live[g]) continue;
      const Node n(guards[g].data().data(), tree.block_size_);
      uint32_t last_slot = ~uint32_t{0};
      for (uint32_t k = groups[g].begin; k < groups[g].end; k++) {
        // Keys ascend: a key no larger than the last child's upper key goes to that child too.
        const bool same = last_slot != ~uint32_t{0} &&
                          (last_slot == n.count() || n.CompareKey(last_slot, keys[idx[k]]) >= 0);
        if (same && next_groups.back().end == k) {
          next_groups.back().end = k + 1;
          continue;
        }
        bool found;
        const uint32_t slot = n.LowerBound(keys[idx[k]], &found);
        last_slot = slot;
        const uint64_t child = n.child(slot);
        Status s = tree.CheckChildPointer(pages[g], child);
        if (!s.ok()) {
          statuses[idx[k]] = s;
          last_slot = ~uint32_t{0};
          continue;
        }
        next_groups.push_back({k, k + 1, static_cast<uint32_t>(g), slot});
        next_pages.push_back(child);
      }
    }
    if (next_pages.empty()) return;
    parent_guards.swap(guards);
    parent_pages.swap(pages);
    pages.swap(next_pages);
    groups.swap(next_groups);
  }
}

void BTree::MultiGetRun::ReadValues() {
  if (refs.empty()) return;
  ReadCounters& rc = tree.read_counters_;
  std::vector<Status> got(refs.size());
  const uint32_t batches = ReadOverflowValues(tree.cache_->device(), refs, ref_outs, got);
  rc.overflow_batches.fetch_add(batches, std::memory_order_relaxed);
  rc.overflow_values_read.fetch_add(refs.size(), std::memory_order_relaxed);
  for (size_t j = 0; j < got.size(); j++) {
    if (!got[j].ok()) {
      statuses[ref_keys[j]] = std::move(got[j]);
      values[ref_keys[j]].clear();
    }
  }
  refs.clear();
  ref_outs.clear();
  ref_keys.clear();
}

void BTree::MultiGetRun::ResolveLeaf(std::span<const uint32_t> idx, const Group& g,
                                     const Node& leaf) {
  for (uint32_t k = g.begin; k < g.end; k++) {
    const uint32_t i = idx[k];
    bool found;
    const uint32_t pos = leaf.LowerBound(keys[i], &found);
    if (!found) {
      statuses[i] = Status::NotFound("btree: key not found");
    } else if (leaf.flags(pos) & kSlotFlagOverflow) {
      refs.push_back(DecodeOverflowRef(AsBytes(leaf.payload(pos))));
      ref_outs.push_back(&values[i]);
      ref_keys.push_back(i);
    } else {
      values[i].assign(leaf.payload(pos));
    }
  }
}

Status BTree::MultiGet(std::span<const std::string_view> keys, std::vector<std::string>* values,
                       std::vector<Status>* statuses) const {
  const size_t n = keys.size();
  values->resize(n);
  for (std::string& v : *values) v.clear();
  statuses->assign(n, Status::OK());
  std::vector<uint32_t> order;
  order.reserve(n);
  for (size_t i = 0; i < n; i++) {
    Status s = CheckKey(keys[i]);
    if (s.ok()) {
      order.push_back(static_cast<uint32_t>(i));
    } else {
      (*statuses)[i] = std::move(s);
    }
  }
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    const int c = keys[a].compare(keys[b]);
    return c != 0 ? c < 0 : a < b;
  });
  // A repeated key is looked up once, by its first occurrence in sorted order.
  std::vector<uint32_t> distinct;
  std::vector<std::pair<uint32_t, uint32_t>> repeats;  // (repeat, first)
  distinct.reserve(order.size());
  for (uint32_t i : order) {
    if (!distinct.empty() && keys[distinct.back()] == keys[i]) {
      repeats.emplace_back(i, distinct.back());
    } else {
      distinct.push_back(i);
    }
  }

  MultiGetRun run{*this, keys, *values, *statuses, {}, {}, {}};
  Status usable = CheckUsable();
  if (!usable.ok()) {
    for (uint32_t i : order) (*statuses)[i] = usable;
    return usable;
  }
  read_counters_.multi_gets.fetch_add(1, std::memory_order_relaxed);
  read_counters_.multi_get_keys.fetch_add(n, std::memory_order_relaxed);
  const size_t chunk = std::max<size_t>(1, cache_->frames() / 4);
  for (size_t base = 0; base < distinct.size(); base += chunk) {
    run.Chunk(std::span(distinct).subspan(base, std::min(chunk, distinct.size() - base)));
  }
  for (auto [repeat, first] : repeats) {
    (*values)[repeat] = (*values)[first];
    (*statuses)[repeat] = (*statuses)[first];
  }
  for (const Status& s : *statuses) {
    if (!s.ok() && !s.IsNotFound()) return s;
  }
  return Status::OK();
}

BTreeReadStats BTree::read_stats() const {
  auto ld = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  const ReadCounters& c = read_counters_;
  BTreeReadStats s;
  s.multi_gets = ld(c.multi_gets);
  s.multi_get_keys = ld(c.multi_get_keys);
  s.leaf_batches = ld(c.leaf_batches);
  s.leaves_read = ld(c.leaves_read);
  s.max_leaves_per_batch = ld(c.max_leaves_per_batch);
  s.inner_batches = ld(c.inner_batches);
  s.inner_pages_read = ld(c.inner_pages_read);
  s.overflow_batches = ld(c.overflow_batches);
  s.overflow_values_read = ld(c.overflow_values_read);
  s.readahead_windows = ld(c.readahead_windows);
  s.readahead_leaves = ld(c.readahead_leaves);
  s.readahead_max_window = ld(c.readahead_max_window);
  return s;
}

}  // namespace vde::index
