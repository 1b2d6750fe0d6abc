#include "vde/superblock.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "blockdev/block_device.h"
#include "blockdev/block_header.h"
#include "vde/alloc_map.h"
#include "vde/format.h"

namespace vde {

namespace {

using namespace format;  // NOLINT: the field offsets

std::string Where(uint64_t block_no, std::string_view path) {
  return "block " + std::to_string(block_no) + " of " + std::string(path);
}

bool HasMagic(std::span<const std::byte> bytes, size_t off) {
  return bytes.size() >= off + kSbMagic + kMagic.size() &&
         std::equal(kMagic.begin(), kMagic.end(), bytes.begin() + off + kSbMagic);
}

// Picks the newest valid copy; fails when none is valid or any is from a newer format version.
Status Choose(SuperblockSearch& s, std::string_view path) {
  for (int i = 0; i < 2; i++) {
    if (!s.copies[i].has_value() && s.copies[i].error().IsNotSupported()) {
      return s.copies[i].error();
    }
  }
  for (int i = 0; i < 2; i++) {
    if (!s.copies[i].has_value()) continue;
    if (s.current < 0 || s.copies[i]->generation > s.copies[s.current]->generation) s.current = i;
  }
  if (s.current < 0) {
    return Status::Corruption(std::string(path) + ": both superblock copies are damaged: " +
                              s.copies[0].error().ToString() + "; " +
                              s.copies[1].error().ToString());
  }
  s.block_size = s.copies[s.current]->block_size;
  return Status::OK();
}

}  // namespace

bool Superblock::growable() const {
  return (features_compat & kCompatGrowable) != 0;
}

void EncodeSuperblock(const Superblock& sb, uint64_t copy, std::span<std::byte> block) {
  std::fill(block.begin(), block.end(), std::byte{0});
  std::byte* p = block.data();
  std::copy(kMagic.begin(), kMagic.end(), p + kSbMagic);
  PutU32(p + kSbFormatVersion, sb.format_version);
  PutU32(p + kSbBlockSize, sb.block_size);
  PutU64(p + kSbFeaturesCompat, sb.features_compat);
  PutU64(p + kSbFeaturesRoCompat, sb.features_ro_compat);
  PutU64(p + kSbFeaturesIncompat, sb.features_incompat);
  for (size_t i = 0; i < sb.uuid.size(); i++) p[kSbUuid + i] = std::byte{sb.uuid[i]};
  PutU64(p + kSbCreationTime, sb.creation_time_ns);
  PutU64(p + kSbCheckpointTime, sb.checkpoint_time_ns);
  PutU64(p + kSbBlockCount, sb.block_count);
  PutU64(p + kSbMaxBlocks, sb.max_blocks);
  PutU64(p + kSbGrowthStepBlocks, sb.growth_step_blocks);
  PutU64(p + kSbUsedBlocks, sb.used_blocks);
  PutU64(p + kSbAllocRoot, sb.alloc_root);
  PutU32(p + kSbAllocLevels, sb.alloc_levels);
  PutU64(p + kSbCatalogRoot, sb.catalog_root);
  PutU64(p + kSbLogStart, sb.log_start);
  PutU64(p + kSbLogBlocks, sb.log_blocks);
  SealBlock(block, BlockType::kSuperblock, copy, sb.generation, kSuperblockBlockVersion);
}

Result<Superblock> DecodeSuperblock(std::span<const std::byte> block, uint64_t block_no,
                                    std::string_view path) {
  const std::string where = Where(block_no, path);
  if (block.size() < blockdev::kMinBlockSize) {
    return Status::Corruption(where + ": " + std::to_string(block.size()) +
                              " bytes is too small for a superblock");
  }
  const std::byte* p = block.data();
  if (!HasMagic(block, 0)) {
    return Status::Corruption(where + ": not a virtual disk (no vde superblock magic)");
  }
  Superblock sb;
  sb.block_size = GetU32(p + kSbBlockSize);
  if (!blockdev::IsValidBlockSize(sb.block_size)) {
    return Status::Corruption(where + ": superblock claims block size " +
                              std::to_string(sb.block_size) +
                              ", not a power of two between 512 and 65536");
  }
  if (sb.block_size != block.size()) {
    return Status::Corruption(where + ": superblock claims block size " +
                              std::to_string(sb.block_size) + " but was read as a " +
                              std::to_string(block.size()) + "-byte block");
  }
  BlockHeader h;
  VDE_RETURN_IF_ERROR(VerifyBlock(block, block_no, BlockType::kSuperblock, path, &h));
  if (h.version != kSuperblockBlockVersion) {
    return Status::Corruption(where + ": unsupported superblock block version " +
                              std::to_string(h.version));
  }
  sb.generation = h.generation;
  sb.format_version = GetU32(p + kSbFormatVersion);
  if (sb.format_version == 0) return Status::Corruption(where + ": format version 0");
  if (sb.format_version > kFormatVersion) {
    return Status::NotSupported(where + ": format version " + std::to_string(sb.format_version) +
                                " is newer than this vde supports (" +
                                std::to_string(kFormatVersion) + ")");
  }
  sb.features_compat = GetU64(p + kSbFeaturesCompat);
  sb.features_ro_compat = GetU64(p + kSbFeaturesRoCompat);
  sb.features_incompat = GetU64(p + kSbFeaturesIncompat);
  for (size_t i = 0; i < sb.uuid.size(); i++) sb.uuid[i] = std::to_integer<uint8_t>(p[kSbUuid + i]);
  sb.creation_time_ns = GetU64(p + kSbCreationTime);
  sb.checkpoint_time_ns = GetU64(p + kSbCheckpointTime);
  sb.block_count = GetU64(p + kSbBlockCount);
  sb.max_blocks = GetU64(p + kSbMaxBlocks);
  sb.growth_step_blocks = GetU64(p + kSbGrowthStepBlocks);
  sb.used_blocks = GetU64(p + kSbUsedBlocks);
  sb.alloc_root = GetU64(p + kSbAllocRoot);
  sb.alloc_levels = GetU32(p + kSbAllocLevels);
  sb.catalog_root = GetU64(p + kSbCatalogRoot);
  sb.log_start = GetU64(p + kSbLogStart);
  sb.log_blocks = GetU64(p + kSbLogBlocks);

  auto bad = [&](const std::string& what) { return Status::Corruption(where + ": " + what); };
  const uint64_t n = sb.block_count;
  if (sb.generation == 0) return bad("checkpoint generation 0");
  if (n < kMinDiskBlocks) return bad("block count " + std::to_string(n) + " is too small");
  if (n > (uint64_t{1} << 62) / sb.block_size) {
    return bad("block count " + std::to_string(n) + " is impossibly large");
  }
  if (sb.growable()) {
    if (sb.growth_step_blocks == 0) return bad("growable disk with a growth step of 0");
    if (sb.max_blocks != 0 && sb.max_blocks < n) {
      return bad("maximum size " + std::to_string(sb.max_blocks) + " blocks is below its size " +
                 std::to_string(n));
    }
  }
  if (sb.used_blocks < kSuperblockCopies || sb.used_blocks > n) {
    return bad("used block count " + std::to_string(sb.used_blocks) + " out of range");
  }
  const uint64_t levels = allocmap::LevelSizes(n, sb.block_size).size();
  if (sb.alloc_levels != levels) {
    return bad("allocator map has " + std::to_string(sb.alloc_levels) + " levels, " +
               std::to_string(levels) + " expected for " + std::to_string(n) + " blocks");
  }
  if (sb.alloc_root < kSuperblockCopies || sb.alloc_root >= n) {
    return bad("allocator map root " + std::to_string(sb.alloc_root) + " out of range");
  }
  if (sb.catalog_root != 0 && (sb.catalog_root < kSuperblockCopies || sb.catalog_root >= n)) {
    return bad("catalog root " + std::to_string(sb.catalog_root) + " out of range");
  }
  if (sb.log_blocks == 0 ? sb.log_start != 0
                         : (sb.log_start < kSuperblockCopies || sb.log_start >= n ||
                            sb.log_blocks > n - sb.log_start)) {
    return bad("log region " + std::to_string(sb.log_start) + "+" + std::to_string(sb.log_blocks) +
               " out of range");
  }
  if (GetU32(p + kSbReserved0) != 0) return bad("reserved field is not zero");
  return sb;
}

Status CheckFeatures(const Superblock& sb, bool read_only, std::string_view path) {
  if (uint64_t unknown = sb.features_incompat & ~kIncompatKnown; unknown != 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(unknown));
    return Status::NotSupported(std::string(path) + ": unknown incompatible features " + buf +
                                ": this vde cannot open the disk");
  }
  if (uint64_t unknown = sb.features_ro_compat & ~kRoCompatKnown; unknown != 0 && !read_only) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(unknown));
    return Status::NotSupported(std::string(path) + ": unknown read-only-compatible features " +
                                buf + ": this vde can open the disk read-only only");
  }
  return Status::OK();
}

std::vector<std::string> FeatureNames(const Superblock& sb) {
  struct Known {
    int set;  // 0 compat, 1 ro_compat, 2 incompat
    uint64_t bit;
    const char* name;
  };
  static constexpr Known kKnown[] = {{0, kCompatGrowable, "growable"}};
  static constexpr const char* kSetNames[] = {"compat", "ro-compat", "incompat"};
  const uint64_t sets[] = {sb.features_compat, sb.features_ro_compat, sb.features_incompat};
  std::vector<std::string> names;
  for (int set = 0; set < 3; set++) {
    for (int b = 0; b < 64; b++) {
      const uint64_t bit = uint64_t{1} << b;
      if ((sets[set] & bit) == 0) continue;
      const char* name = nullptr;
      for (const Known& k : kKnown) {
        if (k.set == set && k.bit == bit) name = k.name;
      }
      names.push_back(name != nullptr ? std::string(name)
                                      : std::string(kSetNames[set]) + "-bit-" + std::to_string(b));
    }
  }
  return names;
}

Result<SuperblockSearch> ReadSuperblockPair(std::span<const std::byte> two_blocks,
                                            uint32_t block_size, std::string_view path) {
  if (!blockdev::IsValidBlockSize(block_size) || two_blocks.size() < 2 * size_t{block_size}) {
    return Status::InvalidArgument(std::string(path) + ": ReadSuperblockPair needs two blocks");
  }
  SuperblockSearch s;
  for (uint64_t i = 0; i < 2; i++) {
    s.copies[i] = DecodeSuperblock(two_blocks.subspan(i * block_size, block_size), i, path);
  }
  if (!HasMagic(two_blocks, 0) && !HasMagic(two_blocks, block_size)) {
    return Status::Corruption(std::string(path) +
                              ": not a virtual disk (no vde superblock magic at block 0 or 1)");
  }
  VDE_RETURN_IF_ERROR(Choose(s, path));
  return s;
}

Result<SuperblockSearch> FindSuperblocks(std::span<const std::byte> head, std::string_view path) {
  const std::string file(path);
  bool any_magic = HasMagic(head, 0);
  for (uint32_t bs = blockdev::kMinBlockSize; bs <= blockdev::kMaxBlockSize; bs *= 2) {
    any_magic |= HasMagic(head, bs);
  }
  if (!any_magic) {
    return Status::Corruption(
        file + ": not a virtual disk (no vde superblock magic at block 0 or " + "1; the file is " +
        std::to_string(head.size()) +
        (head.size() < 2 * size_t{blockdev::kMaxBlockSize} ? " bytes)" : "+ bytes)"));
  }
  auto truncated = [&](uint64_t block_no) {
    return Status::Corruption(Where(block_no, path) + ": file truncated to " +
                              std::to_string(head.size()) + " bytes");
  };
  SuperblockSearch s;
  // Copy 0 says which block size to read both copies at.
  const uint32_t claimed = head.size() >= kSbBlockSize + 4 ? GetU32(head.data() + kSbBlockSize) : 0;
  const bool claimed_ok = HasMagic(head, 0) && blockdev::IsValidBlockSize(claimed);
  if (!HasMagic(head, 0)) {
    s.copies[0] = Status::Corruption(Where(0, path) + ": no vde superblock magic");
  } else if (!claimed_ok) {
    s.copies[0] = DecodeSuperblock(head.subspan(0, blockdev::kMinBlockSize), 0, path);
  } else if (head.size() < claimed) {
    s.copies[0] = truncated(0);
  } else {
    s.copies[0] = DecodeSuperblock(head.subspan(0, claimed), 0, path);
  }
  if (s.copies[0].has_value()) {
    s.copies[1] = head.size() < 2 * size_t{claimed}
                      ? truncated(1)
                      : DecodeSuperblock(head.subspan(claimed, claimed), 1, path);
  } else {
    // Copy 0 is no guide: probe copy 1 at the size copy 0 claims, then at every block size.
    std::vector<uint32_t> sizes;
    if (claimed_ok) sizes.push_back(claimed);
    for (uint32_t bs = blockdev::kMinBlockSize; bs <= blockdev::kMaxBlockSize; bs *= 2) {
      sizes.push_back(bs);
    }
    Status first_error;
    for (uint32_t bs : sizes) {
      if (head.size() < 2 * size_t{bs} || !HasMagic(head, bs) ||
          GetU32(head.data() + bs + kSbBlockSize) != bs) {
        continue;
      }
      auto c1 = DecodeSuperblock(head.subspan(bs, bs), 1, path);
      if (c1.has_value()) {
        s.copies[1] = std::move(c1);
        // Report copy 0 as read at the block size copy 1 proved.
        if (HasMagic(head, 0) && bs != claimed) {
          s.copies[0] = DecodeSuperblock(head.subspan(0, bs), 0, path);
        }
        break;
      }
      if (first_error.ok()) first_error = c1.error();
    }
    if (!s.copies[1].has_value()) {
      if (!first_error.ok()) {
        s.copies[1] = first_error;
      } else if (claimed_ok && head.size() < 2 * size_t{claimed}) {
        s.copies[1] = truncated(1);
      } else {
        s.copies[1] = Status::Corruption(Where(1, path) + ": no vde superblock at any block size");
      }
    }
  }
  VDE_RETURN_IF_ERROR(Choose(s, path));
  return s;
}

std::string UuidToString(const std::array<uint8_t, 16>& uuid) {
  char buf[40];
  std::snprintf(buf, sizeof buf,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", uuid[0],
                uuid[1], uuid[2], uuid[3], uuid[4], uuid[5], uuid[6], uuid[7], uuid[8], uuid[9],
                uuid[10], uuid[11], uuid[12], uuid[13], uuid[14], uuid[15]);
  return buf;
}

std::array<uint8_t, 16> NewUuid() {
  std::random_device rd;
  std::array<uint8_t, 16> u{};
  for (size_t i = 0; i < u.size(); i += 4) {
    uint32_t r = rd();
    for (size_t j = 0; j < 4; j++) u[i + j] = static_cast<uint8_t>(r >> (8 * j));
  }
  u[6] = static_cast<uint8_t>((u[6] & 0x0f) | 0x40);  // version 4
  u[8] = static_cast<uint8_t>((u[8] & 0x3f) | 0x80);  // RFC 4122 variant
  return u;
}

}  // namespace vde
