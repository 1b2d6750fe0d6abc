// The superblock: its fields, its explicit little-endian encoding, and the search for the newest
// valid copy of the two (blocks 0 and 1) when the block size is not yet known.
// docs/FORMAT.md ("Superblock") is the authority for the layout; vde/format.h has the offsets.
//
// Decoders take untrusted bytes (fsck and fuzzers feed them garbage): every field is checked and
// a failure is a Status naming the file, the block and the cause. Pure functions; thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "blockdev/status.h"

namespace vde {

struct Superblock {
  uint64_t generation = 0;  // checkpoint generation (the block header's generation field)
  uint32_t format_version = 0;
  uint32_t block_size = 0;
  uint64_t features_compat = 0;
  uint64_t features_ro_compat = 0;
  uint64_t features_incompat = 0;
  std::array<uint8_t, 16> uuid{};
  uint64_t creation_time_ns = 0;
  uint64_t checkpoint_time_ns = 0;
  uint64_t block_count = 0;
  uint64_t max_blocks = 0;  // growable only; 0 = no limit
  uint64_t growth_step_blocks = 0;
  uint64_t used_blocks = 0;  // bits set in the allocator map
  uint64_t alloc_root = 0;   // 0 = no map block
  uint32_t alloc_levels = 0;
  uint64_t catalog_root = 0;
  uint64_t log_start = 0;
  uint64_t log_blocks = 0;

  bool growable() const;
  bool operator==(const Superblock&) const = default;
};

// Writes `sb` as copy `copy` (0 or 1) into `block` (block_size bytes) and seals it.
// REQUIRES: block.size() == sb.block_size.
void EncodeSuperblock(const Superblock& sb, uint64_t copy, std::span<std::byte> block);

// Decodes and verifies the superblock copy read from block `block_no` (0 or 1) of `path`.
// Corruption when the magic is missing ("not a virtual disk"), the checksum, block number or
// type does not verify, or a field is out of range. NotSupported for a newer format version.
// Features are not judged here (see CheckFeatures), so inspect can show them.
Result<Superblock> DecodeSuperblock(std::span<const std::byte> block, uint64_t block_no,
                                    std::string_view path);

// Whether this binary may open a disk with sb's features: NotSupported for unknown incompatible
// features, and for unknown read-only-compatible ones unless `read_only`.
Status CheckFeatures(const Superblock& sb, bool read_only, std::string_view path);

// Names of the features set in sb, e.g. {"growable"}; unknown bits as "incompat-bit-N" etc.
std::vector<std::string> FeatureNames(const Superblock& sb);

// The result of looking at both copies.
struct SuperblockSearch {
  uint32_t block_size = 0;  // the disk's block size (0 if no copy verified)
  std::array<Result<Superblock>, 2> copies{Status::Corruption("not read"),
                                           Status::Corruption("not read")};
  int current = -1;  // index of the newest valid copy, -1 if none
};

// Finds the superblock copies in `head`, the first bytes of the file (at least 2 * 65536 of
// them when the file is that large), without knowing the block size: reads the size claimed
// at offset 44 of copy 0, and if copy 0 does not verify, probes copy 1 at every block size
// from 512 to 65536. Returns Corruption "not a virtual disk" when neither copy carries the
// magic, Corruption naming both copies' errors when neither verifies, and NotSupported when
// the newest copy is from a newer format version.
Result<SuperblockSearch> FindSuperblocks(std::span<const std::byte> head, std::string_view path);

// As FindSuperblocks for a known block size: `two_blocks` holds blocks 0 and 1.
Result<SuperblockSearch> ReadSuperblockPair(std::span<const std::byte> two_blocks,
                                            uint32_t block_size, std::string_view path);

// "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".
std::string UuidToString(const std::array<uint8_t, 16>& uuid);
// A random (version 4) UUID.
std::array<uint8_t, 16> NewUuid();

}  // namespace vde
