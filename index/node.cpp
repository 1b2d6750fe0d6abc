#include "index/node.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>
#include <string>

#include "index/overflow.h"
#include "index/page_cache.h"

namespace vde::index {

namespace nl = node_layout;

namespace {

// memcpy of a view that may be empty with a null data pointer (std::string_view()).
void CopyBytes(std::byte* dst, std::string_view src) {
  if (!src.empty()) std::memcpy(dst, src.data(), src.size());
}

}  // namespace

size_t CommonPrefix(std::string_view a, std::string_view b) {
  size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) i++;
  return i;
}

std::string_view ShortestSeparator(std::string_view a, std::string_view b) {
  assert(a < b);
  size_t c = CommonPrefix(a, b);
  // b[0..c] is > a (it differs from a at c, or a ends before c) and < b when b is longer.
  if (b.size() > c + 1) return b.substr(0, c + 1);
  return a;
}

// ---- Node ----

uint32_t Node::Head(std::string_view s) {
  uint32_t h = 0;
  for (size_t i = 0; i < 4; i++) {
    h <<= 8;
    if (i < s.size()) h |= static_cast<uint8_t>(s[i]);
  }
  return h;
}

void Node::CopyKey(uint32_t i, std::string* out) const {
  std::string_view pre = prefix(), suf = suffix(i);
  out->resize(pre.size() + suf.size());
  std::memcpy(out->data(), pre.data(), pre.size());
  std::memcpy(out->data() + pre.size(), suf.data(), suf.size());
}

int Node::CompareKey(uint32_t i, std::string_view key) const {
  std::string_view pre = prefix();
  size_t n = std::min(pre.size(), key.size());
  int c = std::memcmp(pre.data(), key.data(), n);
  if (c != 0) return c;
  if (key.size() < pre.size()) return 1;  // key is a proper prefix of ours
  return suffix(i).compare(key.substr(pre.size()));
}

void Node::SearchHint(uint32_t key_head, uint32_t* lo, uint32_t* hi) const {
  uint32_t n = count();
  if (n <= 2 * kHintCount) return;
  uint32_t dist = n / (kHintCount + 1);
  uint32_t pos = 0;
  while (pos < kHintCount && GetU32(p_ + nl::kHints + 4 * pos) < key_head) pos++;
  uint32_t pos2 = pos;
  while (pos2 < kHintCount && GetU32(p_ + nl::kHints + 4 * pos2) == key_head) pos2++;
  *lo = pos * dist;
  if (pos2 < kHintCount) *hi = (pos2 + 1) * dist;
}

uint32_t Node::LowerBound(std::string_view key, bool* found) const {
  *found = false;
  std::string_view pre = prefix();
  size_t n = std::min(pre.size(), key.size());
  int c = std::memcmp(key.data(), pre.data(), n);
  if (c < 0) return 0;
  if (c > 0) return count();
  if (key.size() < pre.size()) return 0;
  std::string_view k = key.substr(pre.size());
  uint32_t kh = Head(k);
  uint32_t lo = 0, hi = count();
  SearchHint(kh, &lo, &hi);
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    uint32_t h = head(mid);
    int cmp = kh < h ? -1 : kh > h ? 1 : k.compare(suffix(mid));
    if (cmp < 0) {
      hi = mid;
    } else if (cmp > 0) {
      lo = mid + 1;
    } else {
      *found = true;
      return mid;
    }
  }
  return lo;
}

// ---- MutableNode ----

void MutableNode::Init(uint8_t level, std::string_view lower, std::string_view upper,
                       uint64_t upper_child) {
  std::byte* p = mp_;
  std::memset(p + nl::kCount, 0, nl::kSlots - nl::kCount);
  uint32_t heap = bs_;
  auto put_fence = [&](std::string_view f, size_t off_field, size_t len_field) {
    if (f.empty()) return;  // offset and length stay 0: infinity
    heap -= static_cast<uint32_t>(f.size());
    std::memcpy(p + heap, f.data(), f.size());
    PutU16(p + off_field, static_cast<uint16_t>(heap));
    PutU16(p + len_field, static_cast<uint16_t>(f.size()));
  };
  put_fence(upper, nl::kUpperOff, nl::kUpperLen);
  put_fence(lower, nl::kLowerOff, nl::kLowerLen);
  size_t prefix = (lower.empty() || upper.empty()) ? 0 : CommonPrefix(lower, upper);
  PutU16(p + nl::kPrefixLen, static_cast<uint16_t>(prefix));
  PutU32(p + nl::kHeapStart, heap);
  PutU32(p + nl::kHeapUsed, static_cast<uint32_t>(lower.size() + upper.size()));
  p[nl::kLevel] = std::byte{level};
  PutU64(p + nl::kUpperChild, upper_child);
}

void MutableNode::InsertPieces(uint32_t pos, std::string_view a, std::string_view b,
                               std::string_view payload, uint8_t flags) {
  const uint32_t plen = prefix_len();
  assert(a.size() + b.size() >= plen);
  // Drop the node's prefix from the front of a + b.
  std::string_view sa = a.size() >= plen ? a.substr(plen) : std::string_view();
  std::string_view sb = a.size() >= plen ? b : b.substr(plen - a.size());
  const uint32_t klen = static_cast<uint32_t>(sa.size() + sb.size());
  const uint32_t len = static_cast<uint32_t>(klen + payload.size());
  const uint32_t n = count();
  assert(pos <= n);
  if (FreeSpace() < kSlotSize + len) Compact();
  assert(FreeSpace() >= kSlotSize + len);
  uint32_t off = heap_start() - len;
  std::byte* e = mp_ + off;
  CopyBytes(e, sa);
  CopyBytes(e + sa.size(), sb);
  CopyBytes(e + klen, payload);
  std::byte* s = mp_ + nl::kSlots + pos * kSlotSize;
  std::memmove(s + kSlotSize, s, (n - pos) * kSlotSize);
  PutU16(s + nl::kSlotOffset, static_cast<uint16_t>(off));
  PutU16(s + nl::kSlotKeyLen, static_cast<uint16_t>(klen));
  PutU16(s + nl::kSlotPayloadLen, static_cast<uint16_t>(payload.size()));
  s[nl::kSlotFlags] = std::byte{flags};
  s[nl::kSlotFlags + 1] = std::byte{0};
  PutU32(s + nl::kSlotHead, Head(Bytes(off, klen)));
  PutU16(mp_ + nl::kCount, static_cast<uint16_t>(n + 1));
  PutU32(mp_ + nl::kHeapStart, off);
  PutU32(mp_ + nl::kHeapUsed, heap_used() + len);
  UpdateHints();
}

void MutableNode::Remove(uint32_t pos) {
  const uint32_t n = count();
  assert(pos < n);
  uint32_t len = static_cast<uint32_t>(suffix(pos).size() + payload(pos).size());
  uint32_t off = GetU16(slot(pos) + nl::kSlotOffset);
  if (off == heap_start()) PutU32(mp_ + nl::kHeapStart, off + len);  // cheap reclaim
  std::byte* s = mp_ + nl::kSlots + pos * kSlotSize;
  std::memmove(s, s + kSlotSize, (n - pos - 1) * kSlotSize);
  PutU16(mp_ + nl::kCount, static_cast<uint16_t>(n - 1));
  PutU32(mp_ + nl::kHeapUsed, heap_used() - len);
  UpdateHints();
}

void MutableNode::SetChild(uint32_t i, uint64_t child) {
  if (i == count()) {
    PutU64(mp_ + nl::kUpperChild, child);
  } else {
    PutU64(mp_ + PayloadOffset(i), child);
  }
}

void MutableNode::Compact() {
  assert(scratch_ != nullptr);
  std::memcpy(scratch_, mp_, bs_);
  Node old(scratch_, bs_);
  uint32_t heap = bs_;
  auto place = [&](std::string_view bytes) {
    heap -= static_cast<uint32_t>(bytes.size());
    std::memcpy(mp_ + heap, bytes.data(), bytes.size());
    return heap;
  };
  if (!old.upper_fence().empty()) PutU16(mp_ + nl::kUpperOff, place(old.upper_fence()));
  if (!old.lower_fence().empty()) PutU16(mp_ + nl::kLowerOff, place(old.lower_fence()));
  const uint32_t n = old.count();
  for (uint32_t i = 0; i < n; i++) {
    std::string_view suf = old.suffix(i), pay = old.payload(i);
    heap -= static_cast<uint32_t>(suf.size() + pay.size());
    std::memcpy(mp_ + heap, suf.data(), suf.size());
    std::memcpy(mp_ + heap + suf.size(), pay.data(), pay.size());
    PutU16(mp_ + nl::kSlots + i * kSlotSize + nl::kSlotOffset, static_cast<uint16_t>(heap));
  }
  PutU32(mp_ + nl::kHeapStart, heap);
  assert(bs_ - heap == heap_used());
}

void MutableNode::UpdateHints() {
  std::byte* h = mp_ + nl::kHints;
  uint32_t n = count();
  if (n <= 2 * kHintCount) {
    std::memset(h, 0, 4 * kHintCount);
    return;
  }
  uint32_t dist = n / (kHintCount + 1);
  for (uint32_t i = 0; i < kHintCount; i++) PutU32(h + 4 * i, head(dist * (i + 1)));
}

// ---- Validation ----

namespace {

Status Bad(uint64_t block, std::string_view path, const std::string& what) {
  return Status::Corruption("block " + std::to_string(block) + " of " + std::string(path) +
                            ": btree node: " + what);
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
  if (h.version != kNodeVersion || h.flags != 0) {
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
  if (p[nl::kReserved] != std::byte{0} || p[nl::kReserved + 1] != std::byte{0} ||
      p[nl::kReserved + 2] != std::byte{0}) {
    return Bad(block, path, "reserved header bytes are not zero");
  }
  const uint32_t count = n.count();
  const uint64_t heap_start = n.heap_start();
  const uint64_t heap_used = n.heap_used();
  if (nl::kSlots + uint64_t{count} * kSlotSize > heap_start || heap_start > bs ||
      heap_used > bs - heap_start) {
    return Bad(block, path,
               std::to_string(count) + " slots, heap start " + std::to_string(heap_start) +
                   ", heap used " + std::to_string(heap_used) + " do not fit the page");
  }
  const uint32_t max_key = MaxKeySize(bs);
  auto check_range = [&](uint64_t off, uint64_t len, const char* what) -> Status {
    if (off < heap_start || off + len > bs) {
      return Bad(block, path,
                 std::string(what) + " at " + std::to_string(off) + " length " +
                     std::to_string(len) + " lies outside the heap [" + std::to_string(heap_start) +
                     ", " + std::to_string(bs) + ")");
    }
    return Status::OK();
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
  const size_t want_prefix = (lower.empty() || upper.empty()) ? 0 : CommonPrefix(lower, upper);
  if (n.prefix_len() != want_prefix) {
    return Bad(block, path,
               "prefix length " + std::to_string(n.prefix_len()) + ", fences share " +
                   std::to_string(want_prefix));
  }
  const uint64_t upper_child = n.upper_child();
  if (level == 0 ? upper_child != 0 : (upper_child == 0 || upper_child == kNoPage)) {
    return Bad(block, path, "upper child " + std::to_string(upper_child));
  }
  const std::string_view lower_suffix = lower.empty() ? lower : lower.substr(want_prefix);
  const std::string_view upper_suffix = upper.empty() ? upper : upper.substr(want_prefix);
  const uint32_t max_inline = MaxInlineValueSize(bs);
  uint64_t used = lower.size() + upper.size();
  std::string_view prev;
  for (uint32_t i = 0; i < count; i++) {
    const std::byte* s = p + nl::kSlots + i * kSlotSize;
    uint32_t off = GetU16(s + nl::kSlotOffset), klen = GetU16(s + nl::kSlotKeyLen),
             plen = GetU16(s + nl::kSlotPayloadLen);
    uint8_t flags = std::to_integer<uint8_t>(s[nl::kSlotFlags]);
    std::string where = "slot " + std::to_string(i);
    VDE_RETURN_IF_ERROR(check_range(off, uint64_t{klen} + plen, where.c_str()));
    if (want_prefix + klen == 0 || want_prefix + klen > max_key) {
      return Bad(block, path, where + ": key of " + std::to_string(want_prefix + klen) + " bytes");
    }
    if (s[nl::kSlotFlags + 1] != std::byte{0}) return Bad(block, path, where + ": reserved byte");
    std::string_view suf = n.suffix(i);
    if (n.head(i) != Node::Head(suf)) return Bad(block, path, where + ": key head mismatch");
    if (i > 0 && !(prev < suf)) return Bad(block, path, where + ": keys out of order");
    if (i == 0 && !lower.empty() && !(lower_suffix < suf)) {
      return Bad(block, path, where + ": key not above the lower fence");
    }
    if (i == count - 1 && !upper.empty() && suf > upper_suffix) {
      return Bad(block, path, where + ": key above the upper fence");
    }
    if (level == 0) {
      if ((flags & ~kSlotFlagOverflow) != 0) return Bad(block, path, where + ": flags");
      if (flags & kSlotFlagOverflow) {
        if (plen != kOverflowRefSize ||
            !IsValidOverflowRef(DecodeOverflowRef(p + off + klen), bs)) {
          return Bad(block, path, where + ": invalid out-of-line value reference");
        }
      } else if (plen > max_inline) {
        return Bad(block, path, where + ": inline value of " + std::to_string(plen) + " bytes");
      }
    } else {
      uint64_t child = plen == kChildRefSize ? GetU64(p + off + klen) : 0;
      if (flags != 0 || child == 0 || child == kNoPage) {
        return Bad(block, path, where + ": invalid child reference");
      }
    }
    used += klen + plen;
    prev = suf;
  }
  if (used != heap_used) {
    return Bad(block, path,
               "heap holds " + std::to_string(used) + " live bytes, header says " +
                   std::to_string(heap_used));
  }
  if (count > 2 * kHintCount) {
    uint32_t dist = count / (kHintCount + 1);
    for (uint32_t i = 0; i < kHintCount; i++) {
      if (GetU32(p + nl::kHints + 4 * i) != n.head(dist * (i + 1))) {
        return Bad(block, path, "search hint " + std::to_string(i) + " is stale");
      }
    }
  } else {
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
