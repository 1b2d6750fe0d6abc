// B+tree node pages: the one place that knows their byte layout. docs/FORMAT.md is the
// authority; this comment mirrors it.
//
// A node is one block. Bytes [0, 32) are the common block header (blockdev/block_header.h):
// type kBTreeLeaf (level 0) or kBTreeInner (level >= 1), version 2 (version 1 pages, written
// before the node flags existed, still read), flags 0, the block's own number and the generation
// it was written in. The node header follows:
//
//   offset size field
//   32     2    count            number of entries
//   34     2    prefix_len       bytes every key in the node shares: the first prefix_len bytes
//                                of the lower fence (of the upper one when the lower is -inf)
//   36     4    heap_start       lowest heap offset in use (block_size when the heap is empty)
//   40     4    heap_used        live heap bytes: fences + what the entries keep in the heap
//   44     2    lower_fence_off  heap offset of the lower fence key (0 when it is -infinity)
//   46     2    lower_fence_len  0 means -infinity (keys are never empty)
//   48     2    upper_fence_off  heap offset of the upper fence key (0 when it is +infinity)
//   50     2    upper_fence_len  0 means +infinity
//   52     1    level            0 for a leaf; a child's level is its parent's minus one
//   53     1    node_flags       bits 0-1 encoding (0 variable, 1 fixed keys, 3 fixed entries);
//                                bits 2-3 insert run (0 none, 1 ascending, 2 descending); 0 in v1
//   54     1    key_width        fixed encodings: every key suffix's length (>= 1); else 0
//   55     1    payload_width    fixed entries: every payload's length; else 0
//   56     8    upper_child      inner: the child holding keys > the last slot key; leaf: 0
//   64     64   hints[16]        u32 key heads of entries dist*(i+1), dist = count / 17, when
//                                count > 32; else 0. A search accelerator, validated on read.
//   128    R*count  entry array (R bytes per entry, by encoding)
//   ...          free space
//   heap_start ... block_size    heap: fence keys and what entries keep there, allocated downwards
//
// Variable encoding, R = 12 (a slot per entry; the only layout of version 1):
//   0  2  offset       heap offset of the entry: key suffix bytes, then payload bytes
//   2  2  key_len      key suffix length (the full key is prefix + suffix)
//   4  2  payload_len  leaf: value (or overflow reference) length; inner: 8
//   6  1  flags        leaf: bit 0 = payload is an overflow reference; inner: 0
//   7  1  reserved     0
//   8  4  head         first 4 suffix bytes as a big-endian number, zero-padded
// Fixed keys, R = key_width + 4 (every suffix has key_width bytes; payloads in the heap):
//   0            key_width  key suffix
//   key_width    2          heap offset of the payload (0 for an empty payload)
//   key_width+2  2          bits 0-14 payload length, bit 15 = overflow reference
// Fixed entries, R = key_width + payload_width (every payload inline, none out of line):
//   0            key_width      key suffix
//   key_width    payload_width  payload
//
// All integers little-endian. Keys compare as unsigned bytes, a proper prefix first. A node
// holds keys k with lower_fence < k <= upper_fence, in strictly increasing entry order. In an
// inner node entry i's child holds keys in (key[i-1], key[i]] and upper_child keys > key[count-1];
// the child's fences are exactly those bounds. Leaf payloads are values (inline) or overflow
// references (index/overflow.h); inner payloads are child block numbers (u64).
//
// The prefix adapts (version 2): it is at least the fences' common prefix and at most the
// length of the fence it is taken from, and every key starts with it. An empty node may take
// the longest prefix its next keys share with the fence (ExtendPrefix); a key that does not share
// it rewrites the node with a shorter one. So a page growing at the edge of a sequential load
// (one fence infinite) already has the prefix it keeps once closed. Version 1 pages have exactly
// the fences' common prefix (0 when either is infinite).
//
// Encodings adapt: an empty node takes the most compact encoding its first entry allows; an
// entry that does not match the fixed widths rewrites the node in a less compact one; Reencode
// (called before a full node splits) and node builders (splits, merges) go back to a fixed one
// when every entry allows it.
//
// Thread safety: Node and MutableNode are views over memory the caller latches; they hold no
// state of their own. ValidateNode reports every layout violation as Corruption naming the file
// and the block.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "blockdev/block_header.h"
#include "blockdev/status.h"

namespace vde::index {

inline constexpr uint32_t kNodeHeaderSize = 128;  // block header + node header + hints
inline constexpr uint32_t kSlotSize = 12;         // an entry of the variable encoding
inline constexpr uint32_t kPayloadRefSize = 4;    // the payload reference of the fixed-key encoding
inline constexpr uint32_t kHintCount = 16;
inline constexpr uint32_t kChildRefSize = 8;
inline constexpr uint32_t kMaxLevels = 64;  // tree height limit
inline constexpr uint8_t kSlotFlagOverflow = 0x01;
inline constexpr uint16_t kNodeVersion = 2;    // written
inline constexpr uint16_t kNodeVersionV1 = 1;  // read: variable encoding, node_flags 0
// Widths above this take the variable encoding (they fit one byte, and the 12-byte slot is
// small beside such keys and values anyway).
inline constexpr uint32_t kMaxFixedWidth = 255;
// Fixed-key payload reference: bit 15 of the length word marks an overflow reference.
inline constexpr uint16_t kRefOverflowBit = 0x8000;

// How a node stores its entries: node_flags bits 0-1. Bit 0: every key suffix has key_width
// bytes; bit 1 (only with bit 0): every payload has payload_width bytes and sits in the entry.
enum class NodeEncoding : uint8_t {
  kVariable = 0,
  kFixedKeys = 1,
  kFixedEntries = 3,
};
std::string_view NodeEncodingName(NodeEncoding e);  // "variable", "fixed-keys", "fixed-entries"

// The insert-run hint, node_flags bits 2-3: where the last new key went into this node. A split
// of a node whose last insert and current insert both extend a run splits at the insertion
// point instead of the middle (index/btree.cpp, PlanSplit).
enum class InsertRun : uint8_t {
  kNone = 0,
  kAscending = 1,   // the new key became the last entry
  kDescending = 2,  // the new key became the first entry (and was not the only one)
};

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
inline constexpr size_t kNodeFlags = 53;
inline constexpr size_t kKeyWidth = 54;
inline constexpr size_t kPayloadWidth = 55;
inline constexpr size_t kUpperChild = 56;
inline constexpr size_t kHints = 64;
inline constexpr size_t kSlots = 128;  // the entry array
static_assert(kHints + 4 * kHintCount == kSlots && kSlots == kNodeHeaderSize);
// node_flags.
inline constexpr uint8_t kEncodingMask = 0x03;
inline constexpr uint8_t kRunShift = 2;
inline constexpr uint8_t kRunMask = 0x0c;
// Within a variable-encoding slot.
inline constexpr size_t kSlotOffset = 0;
inline constexpr size_t kSlotKeyLen = 2;
inline constexpr size_t kSlotPayloadLen = 4;
inline constexpr size_t kSlotFlags = 6;
inline constexpr size_t kSlotHead = 8;
}  // namespace node_layout

// Bytes a node offers for fences, entries and heap.
constexpr uint32_t NodeCapacity(uint32_t block_size) {
  return block_size - kNodeHeaderSize;
}

// The longest key (bytes): min(block_size / 4, (capacity - 12 - 32) / 3), 1024 for 4 KiB
// blocks. Three keys of this size (two fences and one slot key) plus a slot and a 32-byte value
// fit in a node, which is what lets any put of a within-limits key succeed (docs/FORMAT.md,
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

// Unsigned byte order, a proper prefix first (the order of std::string). Inline, 8 bytes at a
// time: node validation and searches compare many short keys, where a call to memcmp costs
// more than the comparison.
inline int CompareKeys(std::string_view a, std::string_view b) {
  const size_t n = a.size() < b.size() ? a.size() : b.size();
  size_t i = 0;
  if (n > 64) {
    const int c = std::memcmp(a.data(), b.data(), n);
    if (c != 0) return c;
    i = n;
  }
  for (; i + 8 <= n; i += 8) {
    uint64_t x, y;
    std::memcpy(&x, a.data() + i, 8);
    std::memcpy(&y, b.data() + i, 8);
    if (x != y) {
      if constexpr (std::endian::native == std::endian::little) {
        x = __builtin_bswap64(x);
        y = __builtin_bswap64(y);
      }
      return x < y ? -1 : 1;
    }
  }
  for (; i < n; i++) {
    const auto c = static_cast<unsigned char>(a[i]), d = static_cast<unsigned char>(b[i]);
    if (c != d) return c < d ? -1 : 1;
  }
  return a.size() < b.size() ? -1 : a.size() > b.size() ? 1 : 0;
}
size_t CommonPrefix(std::string_view a, std::string_view b);
// The shortest s with a <= s < b, taken from a or b (a < b). A prefix of b when one works.
std::string_view ShortestSeparator(std::string_view a, std::string_view b);

// The most compact encoding for entries whose key suffixes are all `key_width` bytes and whose
// payloads are all `payload_width` bytes (or vary: same_payload false) with the given flags.
NodeEncoding FixedEncodingFor(size_t key_width, bool same_payload, size_t payload_width,
                              bool any_flags);

// The longest prefix a node with these fences (empty = infinite) can take for the keys first to
// last (full keys, first <= last, within the fences): what the prefix fence shares with both,
// leaving first at least one suffix byte, and no less than the fences' common prefix.
size_t BestPrefix(std::string_view lower, std::string_view upper, std::string_view first,
                  std::string_view last);

// The bytes (header, fences, entry array, live heap) a node built from a sequence of entries
// takes in the encoding MutableNode gives it: fixed when every entry allows it.
class NodeSizer {
 public:
  NodeSizer(size_t prefix_len, size_t fences_len) : prefix_(prefix_len), fences_(fences_len) {}
  // REQUIRES: key_size >= prefix_len (the key lies inside the node's fences).
  void Add(size_t key_size, size_t payload_size, uint8_t flags);
  uint64_t bytes() const;
  NodeEncoding encoding() const;
  // The same from totals: `count` entries whose suffixes take suffix_bytes (all key_width
  // bytes when same_key) and payloads payload_bytes (all payload_width when same_payload).
  static uint64_t Bytes(size_t fences_len, uint64_t count, uint64_t suffix_bytes,
                        uint64_t payload_bytes, bool same_key, size_t key_width, bool same_payload,
                        size_t payload_width, bool any_flags);

 private:
  size_t prefix_, fences_;
  uint64_t count_ = 0, suffix_bytes_ = 0, payload_bytes_ = 0;
  size_t key_width_ = 0, payload_width_ = 0;
  bool same_key_ = true, same_payload_ = true, any_flags_ = false;
};

// A read-only view of a node page.
class Node {
 public:
  static constexpr uint32_t kNoSlot = ~uint32_t{0};

  Node(const std::byte* page, uint32_t block_size) : p_(page), bs_(block_size) {}

  uint32_t block_size() const { return bs_; }
  uint8_t level() const { return std::to_integer<uint8_t>(p_[node_layout::kLevel]); }
  bool is_leaf() const { return level() == 0; }
  uint32_t count() const { return GetU16(p_ + node_layout::kCount); }
  uint32_t prefix_len() const { return GetU16(p_ + node_layout::kPrefixLen); }
  std::string_view prefix() const { return prefix_source().substr(0, prefix_len()); }
  // The fence the prefix bytes live in: the lower one, or the upper one when the lower is -inf.
  std::string_view prefix_source() const {
    std::string_view lower = lower_fence();
    return lower.empty() ? upper_fence() : lower;
  }
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

  NodeEncoding encoding() const {
    return static_cast<NodeEncoding>(node_flags() & node_layout::kEncodingMask);
  }
  bool fixed_keys() const { return (node_flags() & 1) != 0; }
  bool fixed_payloads() const { return (node_flags() & 2) != 0; }
  // Fixed encodings: the length of every key suffix; fixed entries: of every payload.
  uint32_t key_width() const { return std::to_integer<uint8_t>(p_[node_layout::kKeyWidth]); }
  uint32_t payload_width() const {
    return std::to_integer<uint8_t>(p_[node_layout::kPayloadWidth]);
  }
  InsertRun run() const {
    return static_cast<InsertRun>((node_flags() & node_layout::kRunMask) >> node_layout::kRunShift);
  }
  // Bytes of one entry in the entry array.
  uint32_t entry_size() const {
    return fixed_keys() ? key_width() + (fixed_payloads() ? payload_width() : kPayloadRefSize)
                        : kSlotSize;
  }

  std::string_view suffix(uint32_t i) const {
    if (fixed_keys()) return Bytes(EntryOffset(i), key_width());
    return Bytes(GetU16(entry(i) + node_layout::kSlotOffset),
                 GetU16(entry(i) + node_layout::kSlotKeyLen));
  }
  std::string_view payload(uint32_t i) const { return Bytes(PayloadOffset(i), PayloadLen(i)); }
  uint8_t flags(uint32_t i) const {
    if (!fixed_keys()) return std::to_integer<uint8_t>(entry(i)[node_layout::kSlotFlags]);
    if (fixed_payloads()) return 0;
    return (GetU16(entry(i) + key_width() + 2) & kRefOverflowBit) ? kSlotFlagOverflow : 0;
  }
  // The first 4 suffix bytes as a big-endian number (stored in variable slots).
  uint32_t head(uint32_t i) const {
    return fixed_keys() ? Head(suffix(i)) : GetU32(entry(i) + node_layout::kSlotHead);
  }
  size_t key_size(uint32_t i) const { return prefix_len() + suffix(i).size(); }
  // *out = the full key of slot i (prefix + suffix).
  void CopyKey(uint32_t i, std::string* out) const {
    const std::string_view pre = prefix(), suf = suffix(i);
    out->resize(pre.size() + suf.size());
    std::memcpy(out->data(), pre.data(), pre.size());
    std::memcpy(out->data() + pre.size(), suf.data(), suf.size());
  }
  // Compares the full key of slot i with `key`.
  int CompareKey(uint32_t i, std::string_view key) const;
  // Inner nodes: the child of slot i; i == count() is upper_child().
  uint64_t child(uint32_t i) const {
    return i == count() ? upper_child() : GetU64(p_ + PayloadOffset(i));
  }

  // The first slot whose key is >= key (count() if none); *found when equal.
  uint32_t LowerBound(std::string_view key, bool* found) const;
  // Hints for batched lookups, which search many nodes, each likely to miss the CPU cache:
  // issuing every node's prefetches before reading any overlaps those misses. PrefetchHeader
  // fetches the header and its search hints; once they have arrived, PrefetchFences the fences
  // (CheckChild's and the prefix's bytes), and PrefetchSearch the entries LowerBound(key) will
  // probe (those the hints leave, or the middle of a long range). Only addresses inside the
  // page are touched; a prefetch never faults.
  static void PrefetchHeader(const std::byte* page) {
    __builtin_prefetch(page);
    __builtin_prefetch(page + 64);
  }
  void PrefetchFences() const {
    __builtin_prefetch(p_ + std::min<uint32_t>(GetU16(p_ + node_layout::kLowerOff), bs_ - 1));
    __builtin_prefetch(p_ + std::min<uint32_t>(GetU16(p_ + node_layout::kUpperOff), bs_ - 1));
  }
  void PrefetchSearch(std::string_view key) const;
  // The first slot whose key is > key.
  uint32_t UpperBound(std::string_view key) const {
    bool found;
    uint32_t pos = LowerBound(key, &found);
    return found ? pos + 1 : pos;
  }

  // Where the entry array ends: the first byte of the free space.
  uint32_t EntryArrayEnd() const { return ArrayEnd(count()); }
  // Contiguous free bytes between the entry array and the heap.
  uint32_t FreeSpace() const { return heap_start() - ArrayEnd(count()); }
  uint32_t FreeSpaceAfterCompaction() const { return bs_ - ArrayEnd(count()) - heap_used(); }
  // Header, entry array and live heap: what the node would take compacted.
  uint32_t UsedBytes() const { return ArrayEnd(count()) + heap_used(); }
  // Bytes entry i takes (in the array and the heap).
  uint32_t EntrySpaceAt(uint32_t i) const;
  // The prefix length after inserting `key`: shorter when the key does not share the prefix
  // (or is the prefix itself: every key keeps at least one suffix byte).
  size_t PrefixAfterInsert(std::string_view key) const {
    const size_t shared = CommonPrefix(prefix(), key);
    return shared < key.size() ? shared : key.size() - 1;
  }
  // The encoding the node has after inserting (key, payload) (replacing slot `replace` unless
  // it is kNoSlot). REQUIRES: the key lies within the fences.
  NodeEncoding EncodingAfterInsert(std::string_view key, size_t payload_size, uint8_t flags,
                                   uint32_t replace = kNoSlot) const;
  // UsedBytes() after that insert, counting the rewrite with a shorter prefix when the key does
  // not share it, and into a less compact encoding when the entry does not match the fixed
  // widths.
  uint64_t UsedBytesAfterInsert(std::string_view key, size_t payload_size, uint8_t flags,
                                uint32_t replace = kNoSlot) const;
  bool HasRoom(std::string_view key, size_t payload_size, uint8_t flags,
               uint32_t replace = kNoSlot) const {
    return UsedBytesAfterInsert(key, payload_size, flags, replace) <= bs_;
  }
  // The most compact encoding the current entries allow with the current prefix (kVariable
  // for an empty node).
  NodeEncoding BestEncoding() const;

  static uint32_t Head(std::string_view suffix) {
    if (suffix.size() >= 4) {
      uint32_t h;
      std::memcpy(&h, suffix.data(), 4);
      if constexpr (std::endian::native == std::endian::little) h = __builtin_bswap32(h);
      return h;
    }
    // Shorter: zero-padded, without a byte loop (fixed-width suffixes of 2 or 3 bytes are
    // common, and every page read computes a head per slot).
    uint32_t h = 0;
    switch (suffix.size()) {
      case 3:
        h |= uint32_t{static_cast<uint8_t>(suffix[2])} << 8;
        [[fallthrough]];
      case 2:
        h |= uint32_t{static_cast<uint8_t>(suffix[1])} << 16;
        [[fallthrough]];
      case 1:
        h |= uint32_t{static_cast<uint8_t>(suffix[0])} << 24;
        break;
      default:
        break;
    }
    return h;
  }

 protected:
  uint8_t node_flags() const { return std::to_integer<uint8_t>(p_[node_layout::kNodeFlags]); }
  uint32_t ArrayEnd(uint32_t n) const { return node_layout::kSlots + n * entry_size(); }
  size_t EntryOffset(uint32_t i) const { return node_layout::kSlots + i * entry_size(); }
  const std::byte* entry(uint32_t i) const { return p_ + EntryOffset(i); }
  // Inline: the iterator calls these for every entry it steps over.
  size_t PayloadOffset(uint32_t i) const {
    const std::byte* e = entry(i);
    if (!fixed_keys())
      return GetU16(e + node_layout::kSlotOffset) + GetU16(e + node_layout::kSlotKeyLen);
    if (fixed_payloads()) return EntryOffset(i) + key_width();
    return GetU16(e + key_width());
  }
  size_t PayloadLen(uint32_t i) const {
    if (!fixed_keys()) return GetU16(entry(i) + node_layout::kSlotPayloadLen);
    if (fixed_payloads()) return payload_width();
    return GetU16(entry(i) + key_width() + 2) & ~kRefOverflowBit;
  }
  std::string_view Bytes(size_t off, size_t len) const {
    return {reinterpret_cast<const char*>(p_) + off, len};
  }
  void SearchHint(uint32_t key_head, uint32_t* lo, uint32_t* hi) const;

  const std::byte* p_;
  uint32_t bs_;
};

// A writable view. Mutators keep the hints current. `scratch` (block_size bytes, owned by the
// caller) is needed by the mutators that may compact or change the encoding: Insert,
// InsertPieces, Compact and Reencode.
class MutableNode : public Node {
 public:
  MutableNode(std::byte* page, uint32_t block_size, std::byte* scratch = nullptr)
      : Node(page, block_size), mp_(page), scratch_(scratch) {}

  // Makes the node empty (variable encoding, no run, the fences' common prefix), with the
  // given level, fences and upper child. Leaves the block header (bytes [0, 32)) alone. The
  // fences must not point into this page.
  void Init(uint8_t level, std::string_view lower, std::string_view upper, uint64_t upper_child);
  // Inserts at slot `pos` the entry (key, payload). An empty node takes the most compact
  // encoding the entry allows; a key that does not share the prefix, or an entry that does not
  // match a fixed node's widths, rewrites the node with the prefix PrefixAfterInsert and the
  // encoding EncodingAfterInsert name. REQUIRES: the order and fences hold and
  // HasRoom(key, payload.size(), flags).
  void Insert(uint32_t pos, std::string_view key, std::string_view payload, uint8_t flags) {
    InsertPieces(pos, key, {}, payload, flags);
  }
  // The same with the full key given in two pieces (a + b), as when copying from another node.
  void InsertPieces(uint32_t pos, std::string_view a, std::string_view b, std::string_view payload,
                    uint8_t flags);
  // An empty node becomes variable again (and keeps its prefix).
  void Remove(uint32_t pos);
  // Inner nodes: sets the child of slot i (i == count() sets upper_child).
  void SetChild(uint32_t i, uint64_t child);
  // Rewrites the heap without holes (keeps the encoding).
  void Compact();
  // REQUIRES: count() == 0. Raises the prefix to BestPrefix for keys first to last (full keys
  // within the fences), so that entries copied in take less room.
  void ExtendPrefix(std::string_view first, std::string_view last);
  // Rewrites the node with the longest prefix its keys allow and the most compact encoding
  // then possible, when that takes fewer bytes. Returns whether it did.
  bool Reencode();
  // Records in the run hint where a new key was just inserted (slot pos).
  void NoteInsertAt(uint32_t pos);

 private:
  void SetEncoding(NodeEncoding e, size_t key_width, size_t payload_width);
  void SetRun(InsertRun run);
  // Rewrites the node (through scratch) with the given prefix length and its entries in
  // encoding e. REQUIRES: every key shares that prefix with the prefix fence, and they fit.
  void Rebuild(NodeEncoding e, size_t prefix_len);
  // Inserts (suffix sa + sb, payload) in the current encoding, compacting if needed.
  void InsertRaw(uint32_t pos, std::string_view sa, std::string_view sb, std::string_view payload,
                 uint8_t flags);
  // Takes len heap bytes (compacting first when needed) and returns their offset.
  uint32_t AllocHeap(uint32_t len, uint32_t array_growth);
  void UpdateHints();

  std::byte* mp_;
  std::byte* scratch_;
};

// Checks everything a decoder relies on: block type and level agree, version and node flags,
// counts, widths, offsets and lengths lie inside the page, keys are in strictly increasing order
// within the fences, the prefix is within its bounds, heads, hints and heap accounting
// are exact, payloads have their kind's size. The PageCheck for B+tree pages
// (index/page_cache.h).
Status ValidateNode(std::span<const std::byte> page, uint64_t block, std::string_view path);

// Writes the block header fields the tree owns: type (from the node's level), version, flags,
// block number, generation. The page cache fills in the checksum on write-back.
void StampNode(std::span<std::byte> page, uint64_t block, uint64_t generation);

}  // namespace vde::index
