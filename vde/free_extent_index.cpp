#include "vde/free_extent_index.h"

#include <cassert>
#include <iterator>

namespace vde {

namespace {

// Heterogeneous keys for the two trees.
struct StartKeyLess {
  template <typename N>
  bool operator()(uint64_t a, const N& b) const {
    return a < b.start;
  }
  template <typename N>
  bool operator()(const N& a, uint64_t b) const {
    return a.start < b;
  }
};

struct SizeKey {
  uint64_t count;
  uint64_t start;
};
struct SizeKeyLess {
  template <typename N>
  bool operator()(const SizeKey& a, const N& b) const {
    return a.count != b.count ? a.count < b.count : a.start < b.start;
  }
  template <typename N>
  bool operator()(const N& a, const SizeKey& b) const {
    return a.count != b.count ? a.count < b.count : a.start < b.start;
  }
};

}  // namespace

FreeExtentIndex::~FreeExtentIndex() {
  Clear();
}

FreeExtentIndex::Node* FreeExtentIndex::NewNode(uint64_t start, uint64_t count) {
  Node* n;
  if (!spare_.empty()) {
    n = spare_.back();
    spare_.pop_back();
  } else {
    n = &pool_.emplace_back();
  }
  n->start = start;
  n->count = count;
  by_start_.insert(*n);
  by_size_.insert(*n);
  free_blocks_ += count;
  return n;
}

void FreeExtentIndex::DeleteNode(Node* n) {
  free_blocks_ -= n->count;
  by_start_.erase(by_start_.iterator_to(*n));
  by_size_.erase(by_size_.iterator_to(*n));
  spare_.push_back(n);
}

void FreeExtentIndex::Resize(Node* n, uint64_t start, uint64_t count) {
  // Neighbours never overlap, so n keeps its place in the start tree; only the size tree needs
  // re-sorting.
  by_size_.erase(by_size_.iterator_to(*n));
  free_blocks_ = free_blocks_ - n->count + count;
  n->start = start;
  n->count = count;
  by_size_.insert(*n);
}

FreeExtentIndex::ByStart::const_iterator FreeExtentIndex::Find(uint64_t block) const {
  auto it = by_start_.upper_bound(block, StartKeyLess());
  if (it == by_start_.begin()) return by_start_.end();
  --it;
  return block < it->start + it->count ? it : by_start_.end();
}

bool FreeExtentIndex::Insert(Extent e) {
  assert(e.count > 0);
  if (e.count == 0 || e.start + e.count < e.start) return false;
  auto next = by_start_.lower_bound(e.start, StartKeyLess());
  Node* prev = nullptr;
  if (next != by_start_.begin()) prev = &*std::prev(next);
  Node* nx = next != by_start_.end() ? &*next : nullptr;
  if (prev != nullptr && prev->start + prev->count > e.start) return false;
  if (nx != nullptr && e.end() > nx->start) return false;
  bool join_prev = prev != nullptr && prev->start + prev->count == e.start;
  bool join_next = nx != nullptr && nx->start == e.end();
  if (join_prev && join_next) {
    uint64_t total = prev->count + e.count + nx->count;
    DeleteNode(nx);
    Resize(prev, prev->start, total);
  } else if (join_prev) {
    Resize(prev, prev->start, prev->count + e.count);
  } else if (join_next) {
    Resize(nx, e.start, e.count + nx->count);
  } else {
    NewNode(e.start, e.count);
  }
  return true;
}

std::optional<Extent> FreeExtentIndex::TakeBestFit(uint64_t count) {
  if (count == 0) return std::nullopt;
  auto it = by_size_.lower_bound(SizeKey{count, 0}, SizeKeyLess());
  if (it == by_size_.end()) return std::nullopt;
  Node* n = &*it;
  Extent got{n->start, count};
  if (n->count == count) {
    DeleteNode(n);
  } else {
    Resize(n, n->start + count, n->count - count);
  }
  return got;
}

bool FreeExtentIndex::Remove(Extent e) {
  if (e.count == 0 || e.start + e.count < e.start) return false;
  auto it = Find(e.start);
  if (it == by_start_.end()) return false;
  Node* n = const_cast<Node*>(&*it);
  uint64_t n_end = n->start + n->count;
  if (e.end() > n_end) return false;
  uint64_t head = e.start - n->start;
  uint64_t tail = n_end - e.end();
  if (head == 0 && tail == 0) {
    DeleteNode(n);
  } else if (head == 0) {
    Resize(n, e.end(), tail);
  } else {
    Resize(n, n->start, head);
    if (tail > 0) NewNode(e.end(), tail);
  }
  return true;
}

std::optional<Extent> FreeExtentIndex::ExtentEndingAt(uint64_t end) const {
  if (end == 0) return std::nullopt;
  auto it = Find(end - 1);
  if (it == by_start_.end() || it->start + it->count != end) return std::nullopt;
  return Extent{it->start, it->count};
}

bool FreeExtentIndex::Contains(uint64_t block) const {
  return Find(block) != by_start_.end();
}

void FreeExtentIndex::Clear() {
  by_size_.clear();
  by_start_.clear();
  pool_.clear();
  spare_.clear();
  free_blocks_ = 0;
}

uint64_t FreeExtentIndex::largest() const {
  return by_size_.empty() ? 0 : by_size_.rbegin()->count;
}

std::vector<Extent> FreeExtentIndex::Extents() const {
  std::vector<Extent> out;
  out.reserve(by_start_.size());
  for (const Node& n : by_start_) out.push_back(Extent{n.start, n.count});
  return out;
}

}  // namespace vde
