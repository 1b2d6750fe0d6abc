#include "vde/alloc_map.h"

#include <algorithm>
#include <string>

#include "blockdev/block_header.h"
#include "vde/format.h"

namespace vde::allocmap {

namespace {

std::string Where(uint64_t block_no, std::string_view path, uint32_t level, uint64_t index) {
  return "block " + std::to_string(block_no) + " of " + std::string(path) +
         " (allocator map level " + std::to_string(level) + " node " + std::to_string(index) + ")";
}

void EncodeCommon(std::span<std::byte> block, uint32_t level, uint64_t index) {
  std::byte* p = block.data();
  std::fill(block.begin() + kBlockHeaderSize, block.end(), std::byte{0});
  PutU32(p + format::kMapLevel, level);
  PutU64(p + format::kMapIndex, index);
}

Status DecodeCommon(std::span<const std::byte> block, uint64_t block_no, uint32_t level,
                    uint64_t index, std::string_view path) {
  BlockHeader h;
  Status s = VerifyBlock(block, block_no, BlockType::kAllocMap, path, &h);
  if (!s.ok()) {
    return Status::Corruption(std::string(s.message()) + " (allocator map level " +
                              std::to_string(level) + " node " + std::to_string(index) + ")");
  }
  const std::byte* p = block.data();
  if (h.version != format::kAllocMapBlockVersion) {
    return Status::Corruption(Where(block_no, path, level, index) +
                              ": unsupported alloc-map block version " + std::to_string(h.version));
  }
  uint32_t got_level = GetU32(p + format::kMapLevel);
  uint64_t got_index = GetU64(p + format::kMapIndex);
  if (got_level != level || got_index != index) {
    return Status::Corruption(Where(block_no, path, level, index) + ": block says level " +
                              std::to_string(got_level) + " node " + std::to_string(got_index));
  }
  bool reserved_zero = GetU32(p + format::kMapReserved) == 0 &&
                       GetU64(p + format::kMapReserved2) == 0 &&
                       GetU64(p + format::kMapReserved2 + 8) == 0;
  if (!reserved_zero) {
    return Status::Corruption(Where(block_no, path, level, index) +
                              ": reserved header bytes are not zero");
  }
  return Status::OK();
}

}  // namespace

std::vector<uint64_t> LevelSizes(uint64_t block_count, uint32_t block_size) {
  const uint64_t span = format::LeafSpan(block_size);
  const uint64_t fanout = format::Fanout(block_size);
  std::vector<uint64_t> sizes;
  sizes.push_back((block_count + span - 1) / span);
  while (sizes.back() > 1) sizes.push_back((sizes.back() + fanout - 1) / fanout);
  return sizes;
}

uint64_t WordsPerLeaf(uint32_t block_size) {
  return (block_size - format::kMapPayload) / 8;
}

void EncodeLeaf(std::span<std::byte> block, uint64_t index, std::span<const uint64_t> words,
                uint64_t block_no, uint64_t generation) {
  EncodeCommon(block, 0, index);
  std::byte* p = block.data() + format::kMapPayload;
  for (size_t w = 0; w < words.size(); w++) PutU64(p + 8 * w, words[w]);
  SealBlock(block, BlockType::kAllocMap, block_no, generation, format::kAllocMapBlockVersion);
}

void EncodeInterior(std::span<std::byte> block, uint32_t level, uint64_t index,
                    std::span<const uint64_t> children, uint64_t block_no, uint64_t generation) {
  EncodeCommon(block, level, index);
  std::byte* p = block.data() + format::kMapPayload;
  for (size_t j = 0; j < children.size(); j++) PutU64(p + 8 * j, children[j]);
  SealBlock(block, BlockType::kAllocMap, block_no, generation, format::kAllocMapBlockVersion);
}

Status DecodeLeaf(std::span<const std::byte> block, uint64_t block_no, uint64_t index,
                  uint64_t block_count, std::string_view path, std::span<uint64_t> words) {
  VDE_RETURN_IF_ERROR(DecodeCommon(block, block_no, 0, index, path));
  const uint32_t bs = static_cast<uint32_t>(block.size());
  const uint64_t span = format::LeafSpan(bs);
  const uint64_t nwords = WordsPerLeaf(bs);
  if (words.size() != nwords) {
    return Status::InvalidArgument("DecodeLeaf: word buffer of the wrong size");
  }
  const std::byte* p = block.data() + format::kMapPayload;
  const uint64_t first = index * span;
  for (uint64_t w = 0; w < nwords; w++) {
    uint64_t v = GetU64(p + 8 * w);
    uint64_t base = first + 64 * w;
    // Bits for blocks past the end of the disk must be clear.
    uint64_t valid = base >= block_count ? 0 : block_count - base;
    if (valid < 64) {
      uint64_t mask = valid == 0 ? 0 : (~uint64_t{0} >> (64 - valid));
      if ((v & ~mask) != 0) {
        return Status::Corruption(Where(block_no, path, 0, index) +
                                  ": marks blocks past the end of the disk (" +
                                  std::to_string(block_count) + " blocks) allocated");
      }
    }
    words[w] = v;
  }
  return Status::OK();
}

Status DecodeInterior(std::span<const std::byte> block, uint64_t block_no, uint32_t level,
                      uint64_t index, uint64_t block_count, std::string_view path,
                      std::span<uint64_t> children) {
  VDE_RETURN_IF_ERROR(DecodeCommon(block, block_no, level, index, path));
  const uint64_t fanout = format::Fanout(static_cast<uint32_t>(block.size()));
  if (children.size() > fanout) {
    return Status::InvalidArgument("DecodeInterior: more children than the fanout");
  }
  const std::byte* p = block.data() + format::kMapPayload;
  for (uint64_t j = 0; j < fanout; j++) {
    uint64_t c = GetU64(p + 8 * j);
    if (j >= children.size()) {
      if (c != 0) {
        return Status::Corruption(Where(block_no, path, level, index) + ": slot " +
                                  std::to_string(j) + " past the last child is not zero");
      }
      continue;
    }
    if (c != 0 && (c < format::kSuperblockCopies || c >= block_count)) {
      return Status::Corruption(Where(block_no, path, level, index) + ": child " +
                                std::to_string(j) + " points to block " + std::to_string(c) +
                                ", outside [2, " + std::to_string(block_count) + ")");
    }
    children[j] = c;
  }
  return Status::OK();
}

}  // namespace vde::allocmap
