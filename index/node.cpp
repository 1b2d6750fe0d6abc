// Node pages: reading (search, entry access, space accounting) and changing them (insert,
// remove, compaction, encoding changes). Validation of pages read from the device is in
// node_validate.cpp.
#include "index/node.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <string>

namespace vde::index {

namespace nl = node_layout;

namespace {

// memcpy of a view that may be empty with a null data pointer (std::string_view()).
void CopyBytes(std::byte* dst, std::string_view src) {
  if (!src.empty()) std::memcpy(dst, src.data(), src.size());
}

// Bytes an entry takes beyond its key suffix and payload, by encoding: the variable slot, the
// fixed-key payload reference, nothing for fixed entries. Encodings only ever change towards a
// larger overhead on insert, so the difference is what a rewrite costs per entry.
uint32_t Overhead(NodeEncoding e) {
  switch (e) {
    case NodeEncoding::kVariable:
      return kSlotSize;
    case NodeEncoding::kFixedKeys:
      return kPayloadRefSize;
    case NodeEncoding::kFixedEntries:
      return 0;
  }
  return kSlotSize;
}

// Splits the byte string a + b after its first n bytes: *sa + *sb is the rest.
void DropFront(std::string_view a, std::string_view b, size_t n, std::string_view* sa,
               std::string_view* sb) {
  assert(a.size() + b.size() >= n);
  *sa = a.size() >= n ? a.substr(n) : std::string_view();
  *sb = a.size() >= n ? b : b.substr(n - a.size());
}

// How many leading bytes of `pre` the byte string a + b shares.
size_t SharedPrefix(std::string_view pre, std::string_view a, std::string_view b) {
  size_t n = CommonPrefix(pre, a);
  if (n < a.size() || n == pre.size()) return n;
  return n + CommonPrefix(pre.substr(n), b);
}

// The encoding after inserting an entry (suffix_size, payload_size, flags) into a node of
// encoding e whose `others` remaining entries' suffixes grow by `grow` bytes (the prefix got
// shorter). Fixed encodings only ever give way to less compact ones here.
NodeEncoding NextEncoding(NodeEncoding e, size_t key_width, size_t payload_width, size_t grow,
                          size_t suffix_size, size_t payload_size, uint8_t flags, uint32_t others) {
  if (others == 0) return FixedEncodingFor(suffix_size, true, payload_size, flags != 0);
  if (e == NodeEncoding::kVariable) return NodeEncoding::kVariable;
  const size_t width = key_width + grow;
  if (width > kMaxFixedWidth || suffix_size != width) return NodeEncoding::kVariable;
  if (e == NodeEncoding::kFixedEntries && payload_size == payload_width && flags == 0) {
    return NodeEncoding::kFixedEntries;
  }
  return NodeEncoding::kFixedKeys;
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

std::string_view NodeEncodingName(NodeEncoding e) {
  switch (e) {
    case NodeEncoding::kVariable:
      return "variable";
    case NodeEncoding::kFixedKeys:
      return "fixed-keys";
    case NodeEncoding::kFixedEntries:
      return "fixed-entries";
  }
  return "unknown";
}

NodeEncoding FixedEncodingFor(size_t key_width, bool same_payload, size_t payload_width,
                              bool any_flags) {
  if (key_width == 0 || key_width > kMaxFixedWidth) return NodeEncoding::kVariable;
  if (same_payload && payload_width <= kMaxFixedWidth && !any_flags) {
    return NodeEncoding::kFixedEntries;
  }
  return NodeEncoding::kFixedKeys;
}

size_t BestPrefix(std::string_view lower, std::string_view upper, std::string_view first,
                  std::string_view last) {
  assert(!first.empty());
  const size_t floor = lower.empty() || upper.empty() ? 0 : CommonPrefix(lower, upper);
  const std::string_view source = lower.empty() ? upper : lower;
  size_t best = std::min(CommonPrefix(source, first), CommonPrefix(source, last));
  best = std::min(best, first.size() - 1);
  return std::max(best, floor);
}

// ---- NodeSizer ----

void NodeSizer::Add(size_t key_size, size_t payload_size, uint8_t flags) {
  assert(key_size >= prefix_);
  const size_t suffix = key_size - prefix_;
  if (count_ == 0) {
    key_width_ = suffix;
    payload_width_ = payload_size;
  }
  same_key_ = same_key_ && suffix == key_width_;
  same_payload_ = same_payload_ && payload_size == payload_width_;
  any_flags_ = any_flags_ || flags != 0;
  count_++;
  suffix_bytes_ += suffix;
  payload_bytes_ += payload_size;
}

NodeEncoding NodeSizer::encoding() const {
  return same_key_ && count_ > 0
             ? FixedEncodingFor(key_width_, same_payload_, payload_width_, any_flags_)
             : NodeEncoding::kVariable;
}

uint64_t NodeSizer::bytes() const {
  return Bytes(fences_, count_, suffix_bytes_, payload_bytes_, same_key_, key_width_, same_payload_,
               payload_width_, any_flags_);
}

uint64_t NodeSizer::Bytes(size_t fences_len, uint64_t count, uint64_t suffix_bytes,
                          uint64_t payload_bytes, bool same_key, size_t key_width,
                          bool same_payload, size_t payload_width, bool any_flags) {
  const uint64_t base = kNodeHeaderSize + fences_len;
  const NodeEncoding e = same_key && count > 0
                             ? FixedEncodingFor(key_width, same_payload, payload_width, any_flags)
                             : NodeEncoding::kVariable;
  switch (e) {
    case NodeEncoding::kVariable:
      return base + count * kSlotSize + suffix_bytes + payload_bytes;
    case NodeEncoding::kFixedKeys:
      return base + count * (key_width + kPayloadRefSize) + payload_bytes;
    case NodeEncoding::kFixedEntries:
      return base + count * (key_width + payload_width);
  }
  return base;
}

// ---- Node ----

uint32_t Node::EntrySpaceAt(uint32_t i) const {
  switch (encoding()) {
    case NodeEncoding::kVariable:
      return static_cast<uint32_t>(kSlotSize + suffix(i).size() + payload(i).size());
    case NodeEncoding::kFixedKeys:
      return static_cast<uint32_t>(entry_size() + PayloadLen(i));
    case NodeEncoding::kFixedEntries:
      break;
  }
  return entry_size();
}

int Node::CompareKey(uint32_t i, std::string_view key) const {
  std::string_view pre = prefix();
  size_t n = std::min(pre.size(), key.size());
  int c = CompareKeys(pre.substr(0, n), key.substr(0, n));
  if (c != 0) return c;
  if (key.size() < pre.size()) return 1;  // key is a proper prefix of ours
  return CompareKeys(suffix(i), key.substr(pre.size()));
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

void Node::PrefetchSearch(std::string_view key) const {
  constexpr size_t kLine = 64, kMaxLines = 8;
  // The prefix lives in a fence (PrefetchFences). A key outside it needs no more lines.
  const std::string_view pre = prefix();
  if (key.size() < pre.size() || key.substr(0, pre.size()) != pre) return;
  const std::string_view k = key.substr(pre.size());
  uint32_t lo = 0, hi = count();
  SearchHint(Head(k), &lo, &hi);
  if (lo >= hi) return;
  const size_t stride = entry_size();
  const uintptr_t first = reinterpret_cast<uintptr_t>(p_ + EntryOffset(lo)) & ~(kLine - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(p_ + EntryOffset(hi - 1) + stride);
  // A long range (no hints, a small node's) is searched from its middle: fetch around it.
  uintptr_t from = first;
  if (end - first > kMaxLines * kLine) {
    from = (first + (end - first) / 2 - kMaxLines / 2 * kLine) & ~(kLine - 1);
  }
  for (uintptr_t a = from; a < end && a < from + kMaxLines * kLine; a += kLine) {
    __builtin_prefetch(reinterpret_cast<const void*>(a));
  }
}

uint32_t Node::LowerBound(std::string_view key, bool* found) const {
  *found = false;
  std::string_view pre = prefix();
  size_t n = std::min(pre.size(), key.size());
  const int c = CompareKeys(key.substr(0, n), pre.substr(0, n));
  if (c < 0) return 0;
  if (c > 0) return count();
  if (key.size() < pre.size()) return 0;
  std::string_view k = key.substr(pre.size());
  uint32_t lo = 0, hi = count();
  SearchHint(Head(k), &lo, &hi);
  if (fixed_keys()) {
    // Binary search straight on the entry array: suffixes of one width at a fixed stride.
    const size_t width = key_width(), stride = entry_size();
    const size_t common = std::min(k.size(), width);
    const int tail = k.size() < width ? -1 : k.size() > width ? 1 : 0;
    const char* base = reinterpret_cast<const char*>(p_) + nl::kSlots;
    while (lo < hi) {
      uint32_t mid = lo + (hi - lo) / 2;
      // Inline, 8 bytes at a time (CompareKeys): a call to memcmp per probe cost more than
      // the comparison of these short keys.
      int cmp = CompareKeys(std::string_view(k.data(), common),
                            std::string_view(base + mid * stride, common));
      if (cmp == 0) cmp = tail;
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
  const uint32_t kh = Head(k);
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    uint32_t h = head(mid);
    int cmp = kh < h ? -1 : kh > h ? 1 : CompareKeys(k, suffix(mid));
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

NodeEncoding Node::EncodingAfterInsert(std::string_view key, size_t payload_size, uint8_t flags,
                                       uint32_t replace) const {
  const size_t plen = PrefixAfterInsert(key);
  return NextEncoding(encoding(), key_width(), payload_width(), prefix_len() - plen,
                      key.size() - plen, payload_size, flags,
                      count() - (replace == kNoSlot ? 0 : 1));
}

uint64_t Node::UsedBytesAfterInsert(std::string_view key, size_t payload_size, uint8_t flags,
                                    uint32_t replace) const {
  const size_t plen = PrefixAfterInsert(key);
  const size_t grow = prefix_len() - plen, suffix_size = key.size() - plen;
  const NodeEncoding next = EncodingAfterInsert(key, payload_size, flags, replace);
  uint64_t used = UsedBytes();
  uint64_t others = count();
  if (replace != kNoSlot) {
    used -= EntrySpaceAt(replace);
    others--;
  }
  // A rewrite adds to every other entry the bytes its suffix grows by (a shorter prefix) and
  // the difference in per-entry overhead (a less compact encoding).
  if (others > 0) {
    assert(Overhead(next) >= Overhead(encoding()));
    used += others * (Overhead(next) - Overhead(encoding()) + grow);
  }
  switch (next) {
    case NodeEncoding::kVariable:
      return used + kSlotSize + suffix_size + payload_size;
    case NodeEncoding::kFixedKeys:
      return used + suffix_size + kPayloadRefSize + payload_size;
    case NodeEncoding::kFixedEntries:
      break;
  }
  return used + suffix_size + payload_size;
}

NodeEncoding Node::BestEncoding() const {
  const uint32_t n = count();
  if (n == 0) return NodeEncoding::kVariable;
  const size_t width = suffix(0).size(), payload_width = payload(0).size();
  bool same_payload = true, any_flags = false;
  for (uint32_t i = 0; i < n; i++) {
    if (suffix(i).size() != width) return NodeEncoding::kVariable;
    same_payload = same_payload && payload(i).size() == payload_width;
    any_flags = any_flags || flags(i) != 0;
  }
  return FixedEncodingFor(width, same_payload, payload_width, any_flags);
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

void MutableNode::SetEncoding(NodeEncoding e, size_t key_width, size_t payload_width) {
  assert(key_width <= kMaxFixedWidth && payload_width <= kMaxFixedWidth);
  const uint8_t run_bits = node_flags() & nl::kRunMask;
  mp_[nl::kNodeFlags] = std::byte{static_cast<uint8_t>(run_bits | static_cast<uint8_t>(e))};
  mp_[nl::kKeyWidth] = std::byte{static_cast<uint8_t>(key_width)};
  mp_[nl::kPayloadWidth] = std::byte{static_cast<uint8_t>(payload_width)};
}

void MutableNode::SetRun(InsertRun run) {
  const uint8_t other = node_flags() & static_cast<uint8_t>(~nl::kRunMask);
  mp_[nl::kNodeFlags] =
      std::byte{static_cast<uint8_t>(other | (static_cast<uint8_t>(run) << nl::kRunShift))};
}

void MutableNode::NoteInsertAt(uint32_t pos) {
  const uint32_t n = count();
  SetRun(pos + 1 == n ? InsertRun::kAscending
         : pos == 0   ? InsertRun::kDescending
                      : InsertRun::kNone);
}

uint32_t MutableNode::AllocHeap(uint32_t len, uint32_t array_growth) {
  if (FreeSpace() < array_growth + len) Compact();
  assert(FreeSpace() >= array_growth + len);
  const uint32_t off = heap_start() - len;
  PutU32(mp_ + nl::kHeapStart, off);
  PutU32(mp_ + nl::kHeapUsed, heap_used() + len);
  return off;
}

void MutableNode::InsertRaw(uint32_t pos, std::string_view sa, std::string_view sb,
                            std::string_view payload, uint8_t flags) {
  const uint32_t n = count();
  assert(pos <= n);
  const uint32_t klen = static_cast<uint32_t>(sa.size() + sb.size());
  const uint32_t plen = static_cast<uint32_t>(payload.size());
  const uint32_t stride = entry_size();
  const NodeEncoding e = encoding();
  uint32_t off = 0;
  switch (e) {
    case NodeEncoding::kVariable:
      off = AllocHeap(klen + plen, stride);
      CopyBytes(mp_ + off, sa);
      CopyBytes(mp_ + off + sa.size(), sb);
      CopyBytes(mp_ + off + klen, payload);
      break;
    case NodeEncoding::kFixedKeys:
      assert(klen == key_width());
      off = AllocHeap(plen, stride);
      if (plen == 0) off = 0;  // an empty payload lies nowhere: offset 0
      CopyBytes(mp_ + off, payload);
      break;
    case NodeEncoding::kFixedEntries:
      assert(klen == key_width() && plen == payload_width() && flags == 0);
      AllocHeap(0, stride);
      break;
  }
  std::byte* s = mp_ + EntryOffset(pos);
  std::memmove(s + stride, s, static_cast<size_t>(n - pos) * stride);
  if (e == NodeEncoding::kVariable) {
    PutU16(s + nl::kSlotOffset, static_cast<uint16_t>(off));
    PutU16(s + nl::kSlotKeyLen, static_cast<uint16_t>(klen));
    PutU16(s + nl::kSlotPayloadLen, static_cast<uint16_t>(plen));
    s[nl::kSlotFlags] = std::byte{flags};
    s[nl::kSlotFlags + 1] = std::byte{0};
    PutU32(s + nl::kSlotHead, Head(Bytes(off, klen)));
  } else {
    CopyBytes(s, sa);
    CopyBytes(s + sa.size(), sb);
    if (e == NodeEncoding::kFixedKeys) {
      PutU16(s + klen, static_cast<uint16_t>(off));
      PutU16(s + klen + 2,
             static_cast<uint16_t>(plen | ((flags & kSlotFlagOverflow) ? kRefOverflowBit : 0u)));
    } else {
      CopyBytes(s + klen, payload);
    }
  }
  PutU16(mp_ + nl::kCount, static_cast<uint16_t>(n + 1));
}

void MutableNode::InsertPieces(uint32_t pos, std::string_view a, std::string_view b,
                               std::string_view payload, uint8_t flags) {
  // The prefix the node keeps: shorter when the key does not share it, and never all of it.
  assert(a.size() + b.size() > 0);
  const size_t plen = std::min(SharedPrefix(prefix(), a, b), a.size() + b.size() - 1);
  const size_t grow = prefix_len() - plen;
  std::string_view sa, sb;
  DropFront(a, b, plen, &sa, &sb);
  const size_t klen = sa.size() + sb.size();
  const uint32_t n = count();
  const NodeEncoding next =
      NextEncoding(encoding(), key_width(), payload_width(), grow, klen, payload.size(), flags, n);
  if (n == 0) {
    PutU16(mp_ + nl::kPrefixLen, static_cast<uint16_t>(plen));
    SetEncoding(next, next == NodeEncoding::kVariable ? 0 : klen,
                next == NodeEncoding::kFixedEntries ? payload.size() : 0);
  } else if (next != encoding() || grow > 0) {
    Rebuild(next, plen);
  }
  InsertRaw(pos, sa, sb, payload, flags);
  UpdateHints();
}

void MutableNode::Remove(uint32_t pos) {
  const uint32_t n = count();
  assert(pos < n);
  uint32_t len = 0, off = 0;
  switch (encoding()) {
    case NodeEncoding::kVariable:
      len = static_cast<uint32_t>(suffix(pos).size() + payload(pos).size());
      off = GetU16(entry(pos) + nl::kSlotOffset);
      break;
    case NodeEncoding::kFixedKeys:
      len = static_cast<uint32_t>(PayloadLen(pos));
      off = static_cast<uint32_t>(PayloadOffset(pos));
      break;
    case NodeEncoding::kFixedEntries:
      break;
  }
  if (len > 0 && off == heap_start()) PutU32(mp_ + nl::kHeapStart, off + len);  // cheap reclaim
  const uint32_t stride = entry_size();
  std::byte* s = mp_ + EntryOffset(pos);
  std::memmove(s, s + stride, static_cast<size_t>(n - pos - 1) * stride);
  PutU16(mp_ + nl::kCount, static_cast<uint16_t>(n - 1));
  PutU32(mp_ + nl::kHeapUsed, heap_used() - len);
  if (n == 1) SetEncoding(NodeEncoding::kVariable, 0, 0);  // empty: the next entry decides
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
    CopyBytes(mp_ + heap, bytes);
    return static_cast<uint16_t>(heap);
  };
  if (!old.upper_fence().empty()) PutU16(mp_ + nl::kUpperOff, place(old.upper_fence()));
  if (!old.lower_fence().empty()) PutU16(mp_ + nl::kLowerOff, place(old.lower_fence()));
  const uint32_t n = old.count();
  const NodeEncoding e = old.encoding();
  for (uint32_t i = 0; i < n && e != NodeEncoding::kFixedEntries; i++) {
    const std::string_view pay = old.payload(i);
    if (e == NodeEncoding::kFixedKeys) {
      if (!pay.empty()) PutU16(mp_ + EntryOffset(i) + key_width(), place(pay));
      continue;
    }
    const std::string_view suf = old.suffix(i);
    place(pay);
    PutU16(mp_ + EntryOffset(i) + nl::kSlotOffset, place(suf));
  }
  PutU32(mp_ + nl::kHeapStart, heap);
  assert(bs_ - heap == heap_used());
}

void MutableNode::Rebuild(NodeEncoding e, size_t prefix_len) {
  assert(scratch_ != nullptr);
  std::memcpy(scratch_, mp_, bs_);
  const Node old(scratch_, bs_);
  const uint32_t n = old.count();
  Init(old.level(), old.lower_fence(), old.upper_fence(), old.upper_child());
  PutU16(mp_ + nl::kPrefixLen, static_cast<uint16_t>(prefix_len));
  if (n > 0) {
    SetEncoding(e, e == NodeEncoding::kVariable ? 0 : old.key_size(0) - prefix_len,
                e == NodeEncoding::kFixedEntries ? old.payload(0).size() : 0);
  }
  // A fresh heap has no holes: InsertRaw never compacts here (which would reuse scratch).
  const std::string_view old_prefix = old.prefix();
  for (uint32_t i = 0; i < n; i++) {
    std::string_view sa, sb;
    DropFront(old_prefix, old.suffix(i), prefix_len, &sa, &sb);
    InsertRaw(i, sa, sb, old.payload(i), old.flags(i));
  }
  SetRun(old.run());
  UpdateHints();
}

void MutableNode::ExtendPrefix(std::string_view first, std::string_view last) {
  assert(count() == 0);
  const size_t plen = BestPrefix(lower_fence(), upper_fence(), first, last);
  if (plen > prefix_len()) PutU16(mp_ + nl::kPrefixLen, static_cast<uint16_t>(plen));
}

bool MutableNode::Reencode() {
  const uint32_t n = count();
  if (n == 0) return false;
  std::string first, last;
  CopyKey(0, &first);
  CopyKey(n - 1, &last);
  const size_t plen =
      std::max<size_t>(prefix_len(), BestPrefix(lower_fence(), upper_fence(), first, last));
  NodeSizer sizer(plen, lower_fence().size() + upper_fence().size());
  for (uint32_t i = 0; i < n; i++) sizer.Add(key_size(i), payload(i).size(), flags(i));
  if (sizer.bytes() >= UsedBytes()) return false;
  Rebuild(sizer.encoding(), plen);
  return true;
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

}  // namespace vde::index
