// B+tree node pages: the one place that knows their byte layout. index/NODE_FORMAT.md is the
// authority; this comment mirrors it.
//
// A node is one block. Bytes [0, 32) are the common block header (blockdev/block_header.h):
// type kBTreeLeaf (level 0) or kBTreeInner (level >= 1), version 1, flags 0, the block's own
// number and the generation it was written in. The node header follows:
//
//   offset size field
//   32     2    count            number of slots
//   34     2    prefix_len       bytes every key in the node shares (common prefix of the fences)
//   36     4    heap_start       lowest heap offset in use (block_size when the heap is empty)
//   40     4    heap_used        live heap bytes: fences + slot keys + payloads (not holes)
//   44     2    lower_fence_off  heap offset of the lower fence key (0 when it is -infinity)
//   46     2    lower_fence_len  0 means -infinity (keys are never empty)
//   48     2    upper_fence_off  heap offset of the upper fence key (0 when it is +infinity)
//   50     2    upper_fence_len  0 means +infinity
//   52     1    level            0 for a leaf; a child's level is its parent's minus one
//   53     3    reserved         0
//   56     8    upper_child      inner: the child holding keys > the last slot key; leaf: 0
//   64     64   hints[16]        u32 key heads of slots dist*(i+1), dist = count / 17, when
//                                count > 32; else 0. A search accelerator, validated on read.
//   128    12*count  slots
//   ...          free space
//   heap_start ... block_size    heap: fence keys and slot entries, allocated downwards
//
// Slot (12 bytes):
//   0  2  offset       heap offset of the entry: key suffix bytes, then payload bytes
//   2  2  key_len      key suffix length (the full key is prefix + suffix)
//   4  2  payload_len  leaf: value (or overflow reference) length; inner: 8
//   6  1  flags        leaf: bit 0 = payload is an overflow reference; inner: 0
//   7  1  reserved     0
//   8  4  head         first 4 suffix bytes as a big-endian number, zero-padded
//
// All integers little-endian. Keys compare as unsigned bytes, a proper prefix first. A node
// holds keys k with lower_fence < k <= upper_fence, in strictly increasing slot order. In an
// inner node slot i's child holds keys in (key[i-1], key[i]] and upper_child keys > key[count-1];
// the child's fences are exactly those bounds. Leaf payloads are values (inline) or overflow
// references (index/overflow.h); inner payloads are child block numbers (u64).
//
// Thread safety: Node and MutableNode are views over memory the caller latches; they hold no
// state of their own. ValidateNode reports every layout violation as Corruption naming the file
// and the block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "blockdev/block_header.h"
#include "blockdev/status.h"

namespace vde::index {

inline constexpr uint32_t kNodeHeaderSize = 128;  // block header + node header + hints
inline constexpr uint32_t kSlotSize = 12;
inline constexpr uint32_t kHintCount = 16;
inline constexpr uint32_t kChildRefSize = 8;
inline constexpr uint32_t kMaxLevels = 64;  // tree height limit
inline constexpr uint8_t kSlotFlagOverflow = 0x01;
inline constexpr uint16_t kNodeVersion = 1;

// Field offsets (see the layout above).
namespace node_layout {
inline constexpr size_t kCount = 32;
inline constexpr size_t kPrefixLen = 34;
inline constexpr size_t kHeapStart = 36;
inline constexpr size_t kHeapUsed = 40;
inline constexpr size_t kLowerOff = 44;
inline constexpr size_t kLowerLen = 46;
inline constexpr size_t kUpperOff = 48;
inline constexpr size_t kUpperLen = 50;
inline constexpr size_t kLevel = 52;
inline constexpr size_t kReserved = 53;  // 3 bytes
inline constexpr size_t kUpperChild = 56;
inline constexpr size_t kHints = 64;
inline constexpr size_t kSlots = 128;
static_assert(kHints + 4 * kHintCount == kSlots && kSlots == kNodeHeaderSize);
// Within a slot.
inline constexpr size_t kSlotOffset = 0;
inline constexpr size_t kSlotKeyLen = 2;
inline constexpr size_t kSlotPayloadLen = 4;
inline constexpr size_t kSlotFlags = 6;
inline constexpr size_t kSlotHead = 8;
}  // namespace node_layout

// Bytes a node offers for fences, slots and heap.
constexpr uint32_t NodeCapacity(uint32_t block_size) {
  return block_size - kNodeHeaderSize;
}

// The longest key (bytes): min(block_size / 4, (capacity - 12 - 32) / 3), 1024 for 4 KiB
// blocks. Three keys of this size (two fences and one slot key) plus a slot and a 32-byte value
// fit in a node, which is what lets any put of a within-limits key succeed (NODE_FORMAT.md,
// "Limits").
constexpr uint32_t MaxKeySize(uint32_t block_size) {
  uint32_t by_quarter = block_size / 4;
  uint32_t by_fit = (NodeCapacity(block_size) - kSlotSize - 32) / 3;
  return by_quarter < by_fit ? by_quarter : by_fit;
}
// The longest value stored inline: capacity - 3 * MaxKeySize - 12 (884 for 4 KiB blocks).
constexpr uint32_t MaxInlineValueSize(uint32_t block_size) {
  return NodeCapacity(block_size) - 3 * MaxKeySize(block_size) - kSlotSize;
}

// Unsigned byte order, a proper prefix first (the order of std::string).
inline int CompareKeys(std::string_view a, std::string_view b) {
  return a.compare(b);
}
size_t CommonPrefix(std::string_view a, std::string_view b);
// The shortest s with a <= s < b, taken from a or b (a < b). A prefix of b when one works.
std::string_view ShortestSeparator(std::string_view a, std::string_view b);

// A read-only view of a node page.
class Node {
 public:
  Node(const std::byte* page, uint32_t block_size) : p_(page), bs_(block_size) {}

  uint32_t block_size() const { return bs_; }
  uint8_t level() const { return std::to_integer<uint8_t>(p_[node_layout::kLevel]); }
  bool is_leaf() const { return level() == 0; }
  uint32_t count() const { return GetU16(p_ + node_layout::kCount); }
  uint32_t prefix_len() const { return GetU16(p_ + node_layout::kPrefixLen); }
  std::string_view prefix() const { return lower_fence().substr(0, prefix_len()); }
  // Empty means -infinity (lower) or +infinity (upper).
  std::string_view lower_fence() const {
    return Bytes(GetU16(p_ + node_layout::kLowerOff), GetU16(p_ + node_layout::kLowerLen));
  }
  std::string_view upper_fence() const {
    return Bytes(GetU16(p_ + node_layout::kUpperOff), GetU16(p_ + node_layout::kUpperLen));
  }
  uint32_t heap_start() const { return GetU32(p_ + node_layout::kHeapStart); }
  uint32_t heap_used() const { return GetU32(p_ + node_layout::kHeapUsed); }
  uint64_t upper_child() const { return GetU64(p_ + node_layout::kUpperChild); }

  std::string_view suffix(uint32_t i) const {
    return Bytes(GetU16(slot(i) + node_layout::kSlotOffset),
                 GetU16(slot(i) + node_layout::kSlotKeyLen));
  }
  std::string_view payload(uint32_t i) const {
    return Bytes(
        GetU16(slot(i) + node_layout::kSlotOffset) + GetU16(slot(i) + node_layout::kSlotKeyLen),
        GetU16(slot(i) + node_layout::kSlotPayloadLen));
  }
  uint8_t flags(uint32_t i) const {
    return std::to_integer<uint8_t>(slot(i)[node_layout::kSlotFlags]);
  }
  uint32_t head(uint32_t i) const { return GetU32(slot(i) + node_layout::kSlotHead); }
  size_t key_size(uint32_t i) const { return prefix_len() + suffix(i).size(); }
  // *out = the full key of slot i (prefix + suffix).
  void CopyKey(uint32_t i, std::string* out) const;
  // Compares the full key of slot i with `key`.
  int CompareKey(uint32_t i, std::string_view key) const;
  // Inner nodes: the child of slot i; i == count() is upper_child().
  uint64_t child(uint32_t i) const {
    return i == count() ? upper_child() : GetU64(p_ + PayloadOffset(i));
  }

  // The first slot whose key is >= key (count() if none); *found when equal.
  uint32_t LowerBound(std::string_view key, bool* found) const;
  // The first slot whose key is > key.
  uint32_t UpperBound(std::string_view key) const {
    bool found;
    uint32_t pos = LowerBound(key, &found);
    return found ? pos + 1 : pos;
  }

  // Contiguous free bytes between the slots and the heap.
  uint32_t FreeSpace() const { return heap_start() - SlotsEnd(count()); }
  uint32_t FreeSpaceAfterCompaction() const { return bs_ - SlotsEnd(count()) - heap_used(); }
  // Header, slots and live heap: what the node would take compacted.
  uint32_t UsedBytes() const { return SlotsEnd(count()) + heap_used(); }
  // Bytes a new entry takes: slot + key suffix (the key lies within this node's fences, so it
  // shares the prefix) + payload.
  uint32_t EntrySpace(size_t key_size, size_t payload_size) const {
    return static_cast<uint32_t>(kSlotSize + key_size - prefix_len() + payload_size);
  }
  uint32_t EntrySpaceAt(uint32_t i) const {
    return static_cast<uint32_t>(kSlotSize + suffix(i).size() + payload(i).size());
  }

  static uint32_t Head(std::string_view suffix);

 protected:
  static constexpr uint32_t SlotsEnd(uint32_t n) { return node_layout::kSlots + n * kSlotSize; }
  const std::byte* slot(uint32_t i) const { return p_ + node_layout::kSlots + i * kSlotSize; }
  size_t PayloadOffset(uint32_t i) const {
    return GetU16(slot(i) + node_layout::kSlotOffset) + GetU16(slot(i) + node_layout::kSlotKeyLen);
  }
  std::string_view Bytes(size_t off, size_t len) const {
    return {reinterpret_cast<const char*>(p_) + off, len};
  }
  void SearchHint(uint32_t key_head, uint32_t* lo, uint32_t* hi) const;

  const std::byte* p_;
  uint32_t bs_;
};

// A writable view. Mutators keep the hints current. `scratch` (block_size bytes, owned by the
// caller) is needed by the mutators that may compact: Insert, InsertPieces and Compact.
class MutableNode : public Node {
 public:
  MutableNode(std::byte* page, uint32_t block_size, std::byte* scratch = nullptr)
      : Node(page, block_size), mp_(page), scratch_(scratch) {}

  // Makes the node empty, with the given level, fences and upper child. Leaves the block
  // header (bytes [0, 32)) alone. The fences must not point into this page.
  void Init(uint8_t level, std::string_view lower, std::string_view upper, uint64_t upper_child);
  // Inserts at slot `pos` the entry (key, payload). REQUIRES: the order and fences hold and
  // EntrySpace(key.size(), payload.size()) <= FreeSpaceAfterCompaction().
  void Insert(uint32_t pos, std::string_view key, std::string_view payload, uint8_t flags) {
    InsertPieces(pos, key, {}, payload, flags);
  }
  // The same with the full key given in two pieces (a + b), as when copying from another node.
  void InsertPieces(uint32_t pos, std::string_view a, std::string_view b, std::string_view payload,
                    uint8_t flags);
  void Remove(uint32_t pos);
  // Inner nodes: sets the child of slot i (i == count() sets upper_child).
  void SetChild(uint32_t i, uint64_t child);
  // Rewrites the heap without holes.
  void Compact();

 private:
  void UpdateHints();

  std::byte* mp_;
  std::byte* scratch_;
};

// Checks everything a decoder relies on: block type and level agree, counts, offsets and
// lengths lie inside the page, keys are in strictly increasing order within the fences, the
// prefix is the fences' common prefix, heads, hints and heap accounting are exact, payloads
// have their kind's size. The PageCheck for B+tree pages (index/page_cache.h).
Status ValidateNode(std::span<const std::byte> page, uint64_t block, std::string_view path);

// Writes the block header fields the tree owns: type (from the node's level), version, flags,
// block number, generation. The page cache fills in the checksum on write-back.
void StampNode(std::span<std::byte> page, uint64_t block, uint64_t generation);

}  // namespace vde::index
