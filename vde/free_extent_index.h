// FreeExtentIndex: the in-memory index of free extents behind the allocator.
//
// Each free extent is one pooled node linked into two Boost.Intrusive red-black trees: one
// ordered by start (to coalesce a freed extent with its neighbours and to carve out a given
// block) and one ordered by (length, start) (best fit: the smallest extent that is long enough,
// lowest start among equals). Every operation is O(log n) in the number of free extents; nodes
// come from a pool that grows in chunks and recycles them, so no operation allocates per node.
//
// Not thread-safe: the allocator guards it with its mutex. Extents are half-open [start,
// start + length); an index never holds two overlapping or adjacent extents.
#pragma once

#include <boost/intrusive/set.hpp>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

namespace vde {

struct Extent {
  uint64_t start = 0;
  uint64_t count = 0;
  uint64_t end() const { return start + count; }
  bool operator==(const Extent&) const = default;
};

class FreeExtentIndex {
 public:
  FreeExtentIndex() = default;
  ~FreeExtentIndex();
  FreeExtentIndex(const FreeExtentIndex&) = delete;
  FreeExtentIndex& operator=(const FreeExtentIndex&) = delete;

  // Adds [e.start, e.end()) and merges it with free neighbours. Returns false (and changes
  // nothing) when it overlaps an extent already free. e.count must be > 0.
  bool Insert(Extent e);
  // Removes `count` blocks from the front of the smallest free extent holding at least `count`
  // (lowest start among equals) and returns them; nullopt when no extent is long enough.
  std::optional<Extent> TakeBestFit(uint64_t count);
  // Removes [e.start, e.end()), which must lie inside one free extent; false (and no change)
  // otherwise.
  bool Remove(Extent e);
  // The free extent that ends exactly at `end`, if any (the tail a growing disk extends).
  std::optional<Extent> ExtentEndingAt(uint64_t end) const;
  bool Contains(uint64_t block) const;
  void Clear();

  uint64_t free_blocks() const noexcept { return free_blocks_; }
  uint64_t extent_count() const noexcept { return by_start_.size(); }
  uint64_t largest() const;
  std::vector<Extent> Extents() const;  // in start order

 private:
  using Hook =
      boost::intrusive::set_member_hook<boost::intrusive::link_mode<boost::intrusive::normal_link>>;
  struct Node {
    uint64_t start = 0;
    uint64_t count = 0;
    Hook by_start;
    Hook by_size;
  };
  struct StartLess {
    bool operator()(const Node& a, const Node& b) const { return a.start < b.start; }
  };
  struct SizeLess {
    bool operator()(const Node& a, const Node& b) const {
      return a.count != b.count ? a.count < b.count : a.start < b.start;
    }
  };
  using ByStart =
      boost::intrusive::set<Node, boost::intrusive::member_hook<Node, Hook, &Node::by_start>,
                            boost::intrusive::compare<StartLess>,
                            boost::intrusive::constant_time_size<true>>;
  using BySize =
      boost::intrusive::set<Node, boost::intrusive::member_hook<Node, Hook, &Node::by_size>,
                            boost::intrusive::compare<SizeLess>>;

  Node* NewNode(uint64_t start, uint64_t count);
  void DeleteNode(Node* n);
  // Changes n's extent, keeping it in both trees (re-sorted in the size tree).
  void Resize(Node* n, uint64_t start, uint64_t count);
  ByStart::const_iterator Find(uint64_t block) const;  // the extent holding block, or end()

  ByStart by_start_;
  BySize by_size_;
  std::deque<Node> pool_;     // stable addresses
  std::vector<Node*> spare_;  // recycled nodes
  uint64_t free_blocks_ = 0;
};

}  // namespace vde
