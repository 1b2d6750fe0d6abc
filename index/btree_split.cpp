// BTree splits: where a full node splits (PlanSplit: at the insertion point of an ascending or
// descending run, else near the middle), building the halves (BuildSplit), and the split itself
// with its parent update (SplitNode). docs/FORMAT.md "Splits" describes the policy and "Limits"
// why a split point always exists. Called by Put with the tree's writer mutex held.
#include <algorithm>
#include <cassert>
#include <cstring>
#include <string>
#include <vector>

#include "index/btree.h"

namespace vde::index {

namespace {

std::string_view AsView(const std::byte* p, size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

// The separator for a split between neighbouring full keys a < b. When both have the width all
// the node's keys have (`width`, 0 if they vary) it is the largest key of that width below b (b
// minus one, read as a big-endian number), unless that is much longer than the shortest
// separator: the parent then gets keys of one width too and can take a fixed encoding, whose
// entries are 12 bytes smaller than variable ones. Either way the separator lies near b, so keys
// inserted later between a and b go left: where an ascending run, split off from the keys above
// it, goes on.
std::string SplitSeparator(std::string_view a, std::string_view b, size_t width) {
  const std::string_view shortest = ShortestSeparator(a, b);
  if (width == 0 || a.size() != width || b.size() != width || width > shortest.size() + kSlotSize) {
    return std::string(shortest);
  }
  std::string s(b);
  size_t i = s.size();
  for (; i > 0 && s[i - 1] == '\0'; i--) s[i - 1] = '\xff';
  assert(i > 0);  // b > a, so b is not all zero bytes
  s[i - 1] = static_cast<char>(static_cast<uint8_t>(s[i - 1]) - 1);
  return s;
}

}  // namespace

Status BTree::PlanSplit(const Node& n, uint64_t id, std::string_view key, size_t payload_size,
                        SplitPlan* plan) const {
  const uint32_t cnt = n.count();
  plan->kind = SplitKind::kMiddle;
  if (n.is_leaf() && cnt <= 1) {
    // One entry and the new one do not fit together: split between them, leaving one half
    // empty. The new entry then fits its half alone (docs/FORMAT.md, "Limits").
    if (cnt == 0) return Corrupt(id, "an entry does not fit an empty leaf");
    std::string k0;
    n.CopyKey(0, &k0);
    int c = CompareKeys(key, k0);
    if (c == 0) return Corrupt(id, "an entry does not fit a leaf of its own");
    plan->pos = c < 0 ? 0 : 1;
    plan->separator = std::string(c < 0 ? ShortestSeparator(key, k0) : ShortestSeparator(k0, key));
    return Status::OK();
  }
  if (cnt == 0) return Corrupt(id, "an entry does not fit an empty inner page");

  const bool leaf = n.is_leaf();
  const std::string_view lower = n.lower_fence(), upper = n.upper_fence();
  // Keys all of one width: separators of that width keep the parent in a fixed encoding.
  const size_t width = n.fixed_keys() ? n.prefix_len() + n.key_width() : 0;

  // The full keys, and running totals that size any run of entries in O(1): key and payload
  // bytes, flagged entries, and where each run of equal key (payload) lengths ends.
  std::string buf;
  std::vector<uint32_t> key_at(cnt + 1, 0);
  std::vector<uint64_t> key_sum(cnt + 1, 0), payload_sum(cnt + 1, 0);
  std::vector<uint32_t> flagged(cnt + 1, 0), same_key_end(cnt, cnt), same_payload_end(cnt, cnt);
  std::string k;
  for (uint32_t i = 0; i < cnt; i++) {
    n.CopyKey(i, &k);
    buf += k;
    key_at[i + 1] = static_cast<uint32_t>(buf.size());
    key_sum[i + 1] = key_sum[i] + k.size();
    payload_sum[i + 1] = payload_sum[i] + n.payload(i).size();
    flagged[i + 1] = flagged[i] + (n.flags(i) != 0 ? 1 : 0);
  }
  auto key_of = [&](uint32_t i) {
    return std::string_view(buf).substr(key_at[i], key_at[i + 1] - key_at[i]);
  };
  for (uint32_t i = cnt - 1; i > 0; i--) {
    const bool same_key = key_of(i - 1).size() == key_of(i).size();
    same_key_end[i - 1] = same_key ? same_key_end[i] : i;
    const bool same_payload = n.payload(i - 1).size() == n.payload(i).size();
    same_payload_end[i - 1] = same_payload ? same_payload_end[i] : i;
  }
  // The bytes a half with entries [i, j) and fences (lo, hi) takes as BuildSplit builds it: with
  // the longest prefix its keys allow and the most compact encoding.
  auto half_bytes = [&](uint32_t i, uint32_t j, std::string_view lo, std::string_view hi) {
    if (i >= j) return uint64_t{kNodeHeaderSize} + lo.size() + hi.size();
    const size_t pre = BestPrefix(lo, hi, key_of(i), key_of(j - 1));
    const uint64_t m = j - i;
    return NodeSizer::Bytes(lo.size() + hi.size(), m, key_sum[j] - key_sum[i] - m * pre,
                            payload_sum[j] - payload_sum[i], same_key_end[i] >= j,
                            key_of(i).size() - pre, same_payload_end[i] >= j, n.payload(i).size(),
                            flagged[j] > flagged[i]);
  };

  // An insert at the end of a node whose last insert was at its end too continues an ascending
  // run: split at the insertion point, so the left page keeps every entry and the new key starts
  // the right one (sequential loads leave full pages behind). Descending runs mirror it. Other
  // inserts split near the middle.
  bool found;
  const uint32_t at = n.LowerBound(key, &found);
  if (!found && at == cnt && n.run() == InsertRun::kAscending) {
    plan->kind = SplitKind::kAscending;
  } else if (!found && at == 0 && n.run() == InsertRun::kDescending) {
    plan->kind = SplitKind::kDescending;
  }
  // The separator for a split before slot p: a leaf's lies between keys p - 1 and p (the new
  // key standing in at p == cnt or p == 0, which only runs use); an inner page promotes key p.
  auto separator = [&](uint32_t p) -> std::string {
    if (!leaf) return std::string(key_of(p));
    if (p == cnt) return SplitSeparator(key_of(cnt - 1), key, width);
    if (p == 0) return SplitSeparator(key, key_of(0), width);
    return SplitSeparator(key_of(p - 1), key_of(p), width);
  };

  // Candidate split points: a leaf splits before slot p in [1, cnt) (in a run also at cnt or 0,
  // where one half keeps every entry); an inner page promotes slot p in [0, cnt). The balance
  // counts the pending entry on the side it will go to (a leaf's key goes left when it is at
  // most the separator; an inner page's when the child that split is left of the promoted key),
  // so that a half left empty is the one the entry then goes to.
  const uint64_t pending = kSlotSize + key.size() + payload_size;
  struct Candidate {
    uint32_t pos;
    uint64_t sep_len;
    uint64_t imbalance;
  };
  std::vector<Candidate> feasible;
  const uint32_t first = leaf && plan->kind != SplitKind::kDescending ? 1 : 0;
  const uint32_t last = !leaf || plan->kind != SplitKind::kAscending ? cnt - 1 : cnt;
  for (uint32_t p = first; p <= last; p++) {
    const std::string sep = separator(p);
    uint64_t left = half_bytes(0, p, lower, sep);
    uint64_t right = half_bytes(leaf ? p : p + 1, cnt, sep, upper);
    if (left > block_size_ || right > block_size_) continue;
    const bool goes_left = leaf ? at < p || (at == p && CompareKeys(key, sep) <= 0) : at <= p;
    (goes_left ? left : right) += pending;
    feasible.push_back({p, sep.size(), left > right ? left - right : right - left});
  }
  if (feasible.empty()) return Corrupt(id, "no split point gives two halves that fit");
  const Candidate* best = nullptr;
  if (plan->kind == SplitKind::kAscending) {
    best = &feasible.back();  // as near the end as fits
  } else if (plan->kind == SplitKind::kDescending) {
    best = &feasible.front();
  } else {
    uint64_t best_imbalance = feasible[0].imbalance;
    for (const Candidate& c : feasible) best_imbalance = std::min(best_imbalance, c.imbalance);
    // Within a small window of the best balance, prefer the shortest separator: it makes the
    // parent's entry and both halves' fences shorter.
    const uint64_t window = NodeCapacity(block_size_) / 8;
    for (const Candidate& c : feasible) {
      if (c.imbalance > best_imbalance + window) continue;
      if (best == nullptr || c.sep_len < best->sep_len ||
          (c.sep_len == best->sep_len && c.imbalance < best->imbalance)) {
        best = &c;
      }
    }
  }
  plan->pos = best->pos;
  plan->separator = separator(best->pos);
  return Status::OK();
}

void BTree::BuildSplit(const Node& n, const SplitPlan& plan, std::byte* left, std::byte* right) {
  // Each half takes the longest prefix its keys allow (PlanSplit sized it so), then the most
  // compact encoding its entries allow as they are copied in (which may rewrite it, through the
  // compaction buffer, when a later entry does not match).
  std::byte* compact = scratch_.get() + 2 * block_size_;
  MutableNode l(left, block_size_, compact), r(right, block_size_, compact);
  const std::string_view pre = n.prefix();
  const uint32_t cnt = n.count();
  std::string first, last;
  auto fill = [&](MutableNode& dst, uint32_t i, uint32_t j) {
    if (i >= j) return;
    n.CopyKey(i, &first);
    n.CopyKey(j - 1, &last);
    dst.ExtendPrefix(first, last);
    for (; i < j; i++) {
      dst.InsertPieces(dst.count(), pre, n.suffix(i), n.payload(i), n.flags(i));
    }
  };
  if (n.is_leaf()) {
    l.Init(0, n.lower_fence(), plan.separator, 0);
    r.Init(0, plan.separator, n.upper_fence(), 0);
    fill(l, 0, plan.pos);
    fill(r, plan.pos, cnt);
  } else {
    l.Init(n.level(), n.lower_fence(), plan.separator, n.child(plan.pos));
    r.Init(n.level(), plan.separator, n.upper_fence(), n.upper_child());
    fill(l, 0, plan.pos);
    fill(r, plan.pos + 1, cnt);
  }
}

Status BTree::SplitNode(Path* path, uint32_t index, std::string_view key, size_t payload_size) {
  const uint64_t id = path->steps[index].page;
  // Parent before child (the latch order every thread follows).
  ExclusiveGuard parent;
  if (index > 0) {
    VDE_ASSIGN_OR_RETURN(parent, PinExclusive(path->steps[index - 1].page));
  }
  VDE_ASSIGN_OR_RETURN(ExclusiveGuard g, PinExclusive(id));
  Node n(g.data().data(), block_size_);
  const uint8_t level = n.level();
  SplitPlan plan;
  VDE_RETURN_IF_ERROR(PlanSplit(n, id, key, payload_size, &plan));
  std::byte* compact = scratch_.get() + 2 * block_size_;

  if (index > 0) {
    MutableNode pn(parent.data().data(), block_size_, compact);
    // The path is writable (PutPayload made it so): a parent in a variable encoding whose
    // entries allow a fixed one may make room by being rewritten.
    if (!pn.HasRoom(plan.separator, kChildRefSize, 0) && pn.Reencode()) {
      parent.MarkDirty();
    }
    if (!pn.HasRoom(plan.separator, kChildRefSize, 0)) {
      // Make room in the parent first; the caller restarts from the root.
      g.Release();
      parent.Release();
      return SplitNode(path, index - 1, plan.separator, kChildRefSize);
    }
  } else if (level + 1u >= kMaxLevels) {
    return Status::NotSupported("btree: the tree would exceed " + std::to_string(kMaxLevels) +
                                " levels");
  }

  // Take every resource before changing anything, so a failure leaves the tree as it was.
  const uint64_t gen = source_->generation();
  uint64_t ids[2] = {0, 0};  // left half, new root
  ExclusiveGuard guards[2];
  const int needed = index == 0 ? 2 : 1;
  for (int i = 0; i < needed; i++) {
    Status s;
    Result<uint64_t> a = source_->Allocate(1);
    if (a.has_value()) {
      ids[i] = *a;
      Result<ExclusiveGuard> pinned = cache_->PinNew(ids[i], CreationEpoch());
      if (pinned.has_value()) {
        guards[i] = std::move(*pinned);
        continue;
      }
      s = pinned.error();
    } else {
      s = a.error();
    }
    for (int j = 0; j < 2; j++) {
      if (guards[j].valid()) cache_->Discard(guards[j]);
      if (ids[j] != 0) {
        Status f = source_->Free(ids[j], 1);
        if (!f.ok()) s = s.WithContext("(freeing block " + std::to_string(ids[j]) + " failed)");
      }
    }
    return s;
  }

  std::byte* left_buf = scratch_.get();
  std::byte* right_buf = scratch_.get() + block_size_;
  BuildSplit(n, plan, left_buf, right_buf);
  const size_t body = block_size_ - kBlockHeaderSize;
  std::memcpy(guards[0].data().data() + kBlockHeaderSize, left_buf + kBlockHeaderSize, body);
  StampNode(guards[0].data(), ids[0], gen);
  guards[0].MarkDirty();
  std::memcpy(g.data().data() + kBlockHeaderSize, right_buf + kBlockHeaderSize, body);
  g.MarkDirty();

  std::array<std::byte, kChildRefSize> child;
  PutU64(child.data(), ids[0]);
  const std::string_view child_view = AsView(child.data(), child.size());
  if (index == 0) {
    MutableNode r(guards[1].data().data(), block_size_, compact);
    r.Init(level + 1, {}, {}, id);
    r.Insert(0, plan.separator, child_view, 0);
    r.NoteInsertAt(0);
    StampNode(guards[1].data(), ids[1], gen);
    guards[1].MarkDirty();
    root_.store(ids[1], std::memory_order_release);
    height_.fetch_add(1, std::memory_order_release);
  } else {
    MutableNode p(parent.data().data(), block_size_, compact);
    const uint32_t slot = path->steps[index - 1].slot;
    if (p.count() == 0) p.ExtendPrefix(plan.separator, plan.separator);
    p.Insert(slot, plan.separator, child_view, 0);
    p.NoteInsertAt(slot);
    parent.MarkDirty();
  }
  splits_[static_cast<size_t>(plan.kind)].fetch_add(1, std::memory_order_relaxed);
  return Status::OK();
}

}  // namespace vde::index
