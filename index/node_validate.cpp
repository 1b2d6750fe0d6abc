// ValidateNode: the checks a node page read from the device must pass before any Node accessor
// touches it, for every encoding (docs/FORMAT.md, "Validation on read"); and StampNode.
#include <string>

#include "index/node.h"
#include "index/overflow.h"
#include "index/page_cache.h"

namespace vde::index {

namespace nl = node_layout;

namespace {

// True when the key prefix + suf sorts after `upper` (without building the key).
bool KeyAbove(std::string_view prefix, std::string_view suf, std::string_view upper) {
  const size_t n = std::min(prefix.size(), upper.size());
  const int c = prefix.substr(0, n).compare(upper.substr(0, n));
  if (c != 0) return c > 0;
  if (upper.size() <= prefix.size()) return prefix.size() + suf.size() > upper.size();
  return suf.compare(upper.substr(prefix.size())) > 0;
}

Status Bad(uint64_t block, std::string_view path, const std::string& what) {
  return Status::Corruption("block " + std::to_string(block) + " of " + std::string(path) +
                            ": btree node: " + what);
}

// What the per-slot checks need of the node, decoded once by ValidateNode.
struct SlotCheck {
  const std::byte* p;
  uint32_t bs;  // the page's size
  uint64_t block;
  std::string_view path;
  uint32_t count;
  uint32_t entry_size;
  uint32_t key_width;
  uint32_t payload_width;
  uint32_t level;
  uint64_t heap_start;
  size_t pre_len;
  uint32_t max_key;
  uint32_t max_inline;
  std::string_view lower_suffix;  // the lower fence past the prefix
  bool has_lower;
  std::string_view prefix;
  std::string_view upper;
  uint32_t hint_dist;  // slots between search hints (0: the node has none)
  uint64_t used;       // out: live heap bytes (fences plus entries)
};

// The key suffix of slot i in encoding E (its bytes lie in the page: checked for the variable
// encoding by CheckSlots before use; fixed suffixes lie in the entry array, inside the page).
template <NodeEncoding E>
std::string_view SuffixAt(const SlotCheck& c, uint32_t i) {
  const std::byte* e = c.p + nl::kSlots + uint64_t{i} * c.entry_size;
  if constexpr (E == NodeEncoding::kVariable) {
    return std::string_view(reinterpret_cast<const char*>(c.p) + GetU16(e + nl::kSlotOffset),
                            GetU16(e + nl::kSlotKeyLen));
  } else {
    return std::string_view(reinterpret_cast<const char*>(e), c.key_width);
  }
}

// Every slot of a node in encoding E: where its key and payload lie, the keys' order against
// each other and the fences, payload flags and references, the search hints; sums the live heap
// bytes into c.used. One loop per encoding, so that none pays for another's decoding; what holds
// for every slot of a fixed encoding (payload widths, checked by ValidateNode) is not checked per
// slot, and the fences and hints are checked once the slots are known to be well formed.
template <NodeEncoding E>
[[gnu::noinline]] Status CheckSlots(SlotCheck& c) {
  const std::byte* const p = c.p;
  const uint64_t heap_start = c.heap_start, bs = c.bs;
  const uint32_t count = c.count, entry_size = c.entry_size, key_width = c.key_width;
  const bool leaf = c.level == 0;
  auto in_heap = [&](uint64_t off, uint64_t len) { return off >= heap_start && off + len <= bs; };
  auto bad = [&](uint32_t i, const std::string& what) {
    return Bad(c.block, c.path, "slot " + std::to_string(i) + what);
  };
  auto range_error = [&](uint32_t i, uint64_t off, uint64_t len) {
    return Bad(c.block, c.path,
               "slot " + std::to_string(i) + " at " + std::to_string(off) + " length " +
                   std::to_string(len) + " lies outside the heap [" + std::to_string(heap_start) +
                   ", " + std::to_string(bs) + ")");
  };
  // A payload's flags and reference: leaves hold values (inline within the limit, or a valid
  // out-of-line reference); inner nodes a child block number.
  auto check_payload = [&](uint32_t i, uint64_t poff, uint64_t plen, uint8_t flags) -> Status {
    if (leaf) {
      if ((flags & ~kSlotFlagOverflow) != 0) return bad(i, ": flags");
      if (flags & kSlotFlagOverflow) {
        if (plen != kOverflowRefSize || !IsValidOverflowRef(DecodeOverflowRef(p + poff), c.bs)) {
          return bad(i, ": invalid out-of-line value reference");
        }
      } else if (plen > c.max_inline) {
        return bad(i, ": inline value of " + std::to_string(plen) + " bytes");
      }
    } else {
      const uint64_t child = plen == kChildRefSize ? GetU64(p + poff) : 0;
      if (flags != 0 || child == 0 || child == kNoPage) {
        return bad(i, ": invalid child reference");
      }
    }
    return Status::OK();
  };
  uint64_t used = c.used;
  std::string_view prev;
  uint32_t prev_head = 0;
  for (uint32_t i = 0; i < count; i++) {
    const std::byte* e = p + nl::kSlots + uint64_t{i} * entry_size;
    std::string_view suf;  // the key's suffix
    uint32_t head = 0;     // its first 4 bytes (big-endian; stored in variable slots)
    if constexpr (E == NodeEncoding::kVariable) {
      const uint32_t off = GetU16(e + nl::kSlotOffset), klen = GetU16(e + nl::kSlotKeyLen);
      const uint64_t plen = GetU16(e + nl::kSlotPayloadLen);
      const uint8_t flags = std::to_integer<uint8_t>(e[nl::kSlotFlags]);
      if (!in_heap(off, uint64_t{klen} + plen)) return range_error(i, off, klen + plen);
      if (klen == 0 || c.pre_len + klen > c.max_key) {
        return bad(i, ": key of " + std::to_string(c.pre_len + klen) + " bytes");
      }
      if (e[nl::kSlotFlags + 1] != std::byte{0}) return bad(i, ": reserved byte");
      suf = std::string_view(reinterpret_cast<const char*>(p) + off, klen);
      head = GetU32(e + nl::kSlotHead);
      if (head != Node::Head(suf)) return bad(i, ": key head mismatch");
      used += klen + plen;
      VDE_RETURN_IF_ERROR(check_payload(i, off + klen, plen, flags));
    } else if constexpr (E == NodeEncoding::kFixedKeys) {
      suf = std::string_view(reinterpret_cast<const char*>(e), key_width);
      head = Node::Head(suf);
      const uint16_t word = GetU16(e + key_width + 2);
      const uint64_t poff = GetU16(e + key_width), plen = word & ~kRefOverflowBit;
      if (plen == 0 && poff != 0) {
        return bad(i, ": empty payload at offset " + std::to_string(poff));
      }
      if (plen > 0 && !in_heap(poff, plen)) return range_error(i, poff, plen);
      used += plen;
      VDE_RETURN_IF_ERROR(
          check_payload(i, poff, plen, (word & kRefOverflowBit) ? kSlotFlagOverflow : 0));
    } else {
      suf = std::string_view(reinterpret_cast<const char*>(e), key_width);
      head = Node::Head(suf);
      // Leaf payloads are inline values of payload_width bytes, which ValidateNode checked
      // against the limit; inner ones are children, each checked.
      if (!leaf) VDE_RETURN_IF_ERROR(check_payload(i, (e - p) + key_width, c.payload_width, 0));
    }
    // Heads that differ order the keys as the suffixes would, so most pairs need no byte
    // comparison (equal heads may still hide a shorter suffix: compare the bytes then).
    if (i > 0 && !(prev_head < head) && (prev_head > head || CompareKeys(prev, suf) >= 0)) {
      return bad(i, ": keys out of order");
    }
    prev = suf;
    prev_head = head;
  }
  c.used = used;
  if (count == 0) return Status::OK();
  if (c.has_lower && CompareKeys(c.lower_suffix, SuffixAt<E>(c, 0)) >= 0) {
    return bad(0, ": key not above the lower fence");
  }
  if (!c.upper.empty() && KeyAbove(c.prefix, prev, c.upper)) {
    return bad(count - 1, ": key above the upper fence");
  }
  // Search hint k holds the head of slot (k + 1) * hint_dist.
  if (c.hint_dist > 0) {
    for (uint32_t k = 0, i = c.hint_dist; k < kHintCount && i < count; k++, i += c.hint_dist) {
      const uint32_t head = E == NodeEncoding::kVariable
                                ? GetU32(p + nl::kSlots + uint64_t{i} * entry_size + nl::kSlotHead)
                                : Node::Head(SuffixAt<E>(c, i));
      if (GetU32(p + nl::kHints + 4 * k) != head) {
        return Bad(c.block, c.path, "search hint " + std::to_string(k) + " is stale");
      }
    }
  }
  return Status::OK();
}

}  // namespace

Status ValidateNode(std::span<const std::byte> page, uint64_t block, std::string_view path) {
  const uint32_t bs = static_cast<uint32_t>(page.size());
  const std::byte* p = page.data();
  const BlockHeader h = DecodeBlockHeader(page);
  if (h.type != BlockType::kBTreeLeaf && h.type != BlockType::kBTreeInner) {
    return Bad(block, path,
               "block type " + std::string(BlockTypeName(h.type)) + " (" +
                   std::to_string(static_cast<uint16_t>(h.type)) + ")");
  }
  if ((h.version != kNodeVersion && h.version != kNodeVersionV1) || h.flags != 0) {
    return Bad(
        block, path,
        "unsupported version " + std::to_string(h.version) + " flags " + std::to_string(h.flags));
  }
  Node n(p, bs);
  const uint32_t level = n.level();
  if ((level == 0) != (h.type == BlockType::kBTreeLeaf) || level >= kMaxLevels) {
    return Bad(block, path,
               "level " + std::to_string(level) + " in a " + std::string(BlockTypeName(h.type)));
  }
  const uint8_t node_flags = std::to_integer<uint8_t>(p[nl::kNodeFlags]);
  const uint32_t key_width = n.key_width(), payload_width = n.payload_width();
  if (h.version == kNodeVersionV1 && (node_flags != 0 || key_width != 0 || payload_width != 0)) {
    return Bad(block, path, "reserved header bytes are not zero");
  }
  const uint8_t encoding_bits = node_flags & nl::kEncodingMask;
  const uint8_t run_bits = (node_flags & nl::kRunMask) >> nl::kRunShift;
  if ((node_flags & ~(nl::kEncodingMask | nl::kRunMask)) != 0 || encoding_bits == 2 ||
      run_bits > static_cast<uint8_t>(InsertRun::kDescending)) {
    return Bad(block, path, "node flags " + std::to_string(node_flags));
  }
  const NodeEncoding encoding = n.encoding();
  const bool fixed_keys = n.fixed_keys(), fixed_payloads = n.fixed_payloads();
  const uint32_t count = n.count();
  if (fixed_keys ? (key_width == 0 || (!fixed_payloads && payload_width != 0) || count == 0)
                 : (key_width != 0 || payload_width != 0)) {
    return Bad(block, path,
               std::string(NodeEncodingName(encoding)) + " encoding with key width " +
                   std::to_string(key_width) + ", payload width " + std::to_string(payload_width) +
                   ", " + std::to_string(count) + " entries");
  }
  const uint64_t heap_start = n.heap_start();
  const uint64_t heap_used = n.heap_used();
  const uint64_t array_end = nl::kSlots + uint64_t{count} * n.entry_size();
  if (array_end > heap_start || heap_start > bs || heap_used > bs - heap_start) {
    return Bad(block, path,
               std::to_string(count) + " entries, heap start " + std::to_string(heap_start) +
                   ", heap used " + std::to_string(heap_used) + " do not fit the page");
  }
  const uint32_t max_key = MaxKeySize(bs);
  auto in_heap = [&](uint64_t off, uint64_t len) { return off >= heap_start && off + len <= bs; };
  auto range_error = [&](const std::string& what, uint64_t off, uint64_t len) {
    return Bad(block, path,
               what + " at " + std::to_string(off) + " length " + std::to_string(len) +
                   " lies outside the heap [" + std::to_string(heap_start) + ", " +
                   std::to_string(bs) + ")");
  };
  auto check_range = [&](uint64_t off, uint64_t len, const char* what) -> Status {
    return in_heap(off, len) ? Status::OK() : range_error(what, off, len);
  };
  auto check_fence = [&](size_t off_field, size_t len_field, const char* name) -> Status {
    uint32_t off = GetU16(p + off_field), len = GetU16(p + len_field);
    if (len > max_key) {
      return Bad(block, path, std::string(name) + " of " + std::to_string(len) + " bytes");
    }
    if (len == 0) {
      return off == 0 ? Status::OK() : Bad(block, path, std::string(name) + ": stray offset");
    }
    return check_range(off, len, name);
  };
  VDE_RETURN_IF_ERROR(check_fence(nl::kLowerOff, nl::kLowerLen, "lower fence"));
  VDE_RETURN_IF_ERROR(check_fence(nl::kUpperOff, nl::kUpperLen, "upper fence"));
  const std::string_view lower = n.lower_fence(), upper = n.upper_fence();
  if (!lower.empty() && !upper.empty() && lower >= upper) {
    return Bad(block, path, "lower fence is not below the upper fence");
  }
  // Version 1: exactly the fences' common prefix. Version 2: at least that, at most the fence
  // the prefix bytes are taken from (every key's sharing it is checked with the keys).
  const size_t fences_share = (lower.empty() || upper.empty()) ? 0 : CommonPrefix(lower, upper);
  const size_t pre_len = n.prefix_len();
  if (h.version == kNodeVersionV1
          ? pre_len != fences_share
          : (pre_len < fences_share || pre_len > n.prefix_source().size())) {
    return Bad(block, path,
               "prefix length " + std::to_string(pre_len) + ", fences share " +
                   std::to_string(fences_share) + " of " +
                   std::to_string(n.prefix_source().size()) + " bytes");
  }
  const std::string_view prefix = n.prefix();
  const uint64_t upper_child = n.upper_child();
  if (level == 0 ? upper_child != 0 : (upper_child == 0 || upper_child == kNoPage)) {
    return Bad(block, path, "upper child " + std::to_string(upper_child));
  }
  const uint32_t max_inline = MaxInlineValueSize(bs);
  if (fixed_keys && pre_len + key_width > max_key) {
    return Bad(block, path, "fixed keys of " + std::to_string(pre_len + key_width) + " bytes");
  }
  if (fixed_payloads &&
      (level == 0 ? payload_width > max_inline : payload_width != kChildRefSize)) {
    return Bad(block, path, "fixed payloads of " + std::to_string(payload_width) + " bytes");
  }
  // The lower fence holds the prefix whenever it is finite, so keys compare with its suffix; the
  // upper fence need not share the prefix, so the last key is compared whole.
  SlotCheck c{.p = p,
              .bs = bs,
              .block = block,
              .path = path,
              .count = count,
              .entry_size = n.entry_size(),
              .key_width = key_width,
              .payload_width = payload_width,
              .level = level,
              .heap_start = heap_start,
              .pre_len = pre_len,
              .max_key = max_key,
              .max_inline = max_inline,
              .lower_suffix = lower.empty() ? lower : lower.substr(pre_len),
              .has_lower = !lower.empty(),
              .prefix = prefix,
              .upper = upper,
              .hint_dist = count > 2 * kHintCount ? count / (kHintCount + 1) : 0,
              .used = lower.size() + upper.size()};
  switch (encoding) {
    case NodeEncoding::kVariable:
      VDE_RETURN_IF_ERROR(CheckSlots<NodeEncoding::kVariable>(c));
      break;
    case NodeEncoding::kFixedKeys:
      VDE_RETURN_IF_ERROR(CheckSlots<NodeEncoding::kFixedKeys>(c));
      break;
    case NodeEncoding::kFixedEntries:
      VDE_RETURN_IF_ERROR(CheckSlots<NodeEncoding::kFixedEntries>(c));
      break;
  }
  if (c.used != heap_used) {
    return Bad(block, path,
               "heap holds " + std::to_string(c.used) + " live bytes, header says " +
                   std::to_string(heap_used));
  }
  if (c.hint_dist == 0) {
    for (uint32_t i = 0; i < kHintCount; i++) {
      if (GetU32(p + nl::kHints + 4 * i) != 0) return Bad(block, path, "unused hint not zero");
    }
  }
  return Status::OK();
}

void StampNode(std::span<std::byte> page, uint64_t block, uint64_t generation) {
  std::byte* p = page.data();
  bool leaf = std::to_integer<uint8_t>(p[nl::kLevel]) == 0;
  PutU16(p + 8, static_cast<uint16_t>(leaf ? BlockType::kBTreeLeaf : BlockType::kBTreeInner));
  PutU16(p + 10, kNodeVersion);
  PutU32(p + 12, 0);
  PutU64(p + 16, block);
  PutU64(p + 24, generation);
}

}  // namespace vde::index
