// Options for opening a vde Store, creating indexes in it and reading from it.
//
// Plain structs: set what you need, the defaults are sensible. They are copied by the calls that
// take them, so they need no synchronisation. Store::Open rejects bad values with
// InvalidArgument naming the field (and the disk layer's own checks, e.g. a block size that is
// not a power of two from 512 to 65536).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace vde {

// How a store does its I/O. kAuto uses io_uring when the build and the kernel offer it, else
// kFile (pread/pwrite); StoreStats::backend and backend_reason say which was chosen and why.
enum class IoBackend : uint8_t { kAuto, kIoUring, kFile };

struct Options {
  // ---- Opening ------------------------------------------------------------------------------
  // Create the disk file when `path` does not exist (with the creation options below).
  bool create_if_missing = false;
  // Fail with AlreadyExists when `path` exists.
  bool error_if_exists = false;
  // Open for reading only: every write-type call returns ReadOnly; nothing is ever written.
  bool read_only = false;
  // Memory for the page cache (frames, their descriptors and the page table), in bytes. The
  // cache never uses more; at least 16 pages' worth.
  uint64_t cache_bytes = 64ull << 20;
  IoBackend backend = IoBackend::kAuto;
  // O_DIRECT where the file system allows it (else buffered, with a note in the stats).
  bool direct_io = true;
  // A background thread checkpoints this often when anything changed. Zero: checkpoints happen
  // only on request and at Close. Until the write-ahead log exists, what was written after the
  // last checkpoint is lost in a crash; this bounds how much.
  std::chrono::milliseconds checkpoint_interval{0};

  // ---- Creation (used only when create_if_missing creates the disk) -------------------------
  uint32_t block_size = 4096;
  // Size of the file at creation, a multiple of block_size. Required for a fixed-size disk; for
  // a growable one 0 means "as small as possible".
  uint64_t disk_size_bytes = 0;
  // A growable disk extends its file by growth_step_bytes whenever it runs out of room, up to
  // max_size_bytes (0 = no limit). A fixed-size disk returns NoSpace when full.
  bool growable = true;
  uint64_t max_size_bytes = 0;
  uint64_t growth_step_bytes = 64ull << 20;
};

// Per-index settings, fixed when the index is created and recorded in the catalog.
struct IndexOptions {
  // Values longer than this many bytes are stored out of line, in their own blocks. 0 (and
  // anything larger than the block size allows) means the largest inline value the block size
  // allows: 884 bytes for 4 KiB blocks.
  uint32_t max_inline_value = 0;
};

// Bounds for an iterator: it sees keys k with lower_bound <= k < upper_bound (bytewise order).
// An empty bound is no bound.
struct ReadOptions {
  std::string lower_bound;
  std::string upper_bound;

  // The bounds of the keys that begin with `prefix`.
  static ReadOptions Prefix(std::string_view prefix);
};

}  // namespace vde
