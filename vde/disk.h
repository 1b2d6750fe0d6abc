// Disk: one virtual disk file, opened. It owns the BlockDevice, the two superblock copies and the
// block allocator, and it makes checkpoints. docs/FORMAT.md is the on-disk spec.
//
// Layers above (the B+tree store, the WAL) allocate and free blocks through allocator(), write
// their own blocks through device(), set the catalog root and log region, and call Checkpoint()
// to make all of it durable at once. Until a checkpoint is durable, nothing written since the
// previous one is reachable from the superblock, and a crash (or destroying the Disk without
// Close()) reopens the disk at the previous checkpoint with exactly its free space.
//
// Checkpoint order: the allocator writes its changed map blocks copy-on-write (never over a block
// the last durable checkpoint references), Flush, write the superblock into the copy the new
// generation selects (generation % 2), Flush. Blocks freed since the last checkpoint are not
// handed out again until the checkpoint that no longer references them is durable.
//
// The rule for the layers above (copy-on-write): never overwrite a block the last durable
// checkpoint references. To change such a block, allocate a new one, write it, and free the old
// one; a block allocated since the last checkpoint may be rewritten in place until the next.
//
// Thread safety: all methods may be called from any thread, except that Close() and the
// destructor must not run concurrently with any other call. Checkpoint() calls are serialized;
// allocation and freeing may run concurrently with a checkpoint (the allocator has its own lock,
// and what changes after the checkpoint began belongs to the next one). The catalog root and log
// region setters are atomic with respect to Checkpoint(): a checkpoint records either the old or
// the new value.
//
// Errors (Status codes; the vdisk CLI maps them to exit codes):
//   NotFound         the file does not exist
//   AlreadyExists    Create() on an existing path without force
//   InvalidArgument  bad options (block size, sizes not multiples of the block size, ...)
//   Corruption       not a virtual disk ("not a virtual disk" in the message), both superblocks
//                    damaged, a truncated file, or a damaged allocator map block; the message names
//                    the file, the block and the cause                                  (exit 2)
//   NotSupported     a newer format version or unknown incompatible features; unknown
//                    read-only-compatible features when opening for writing             (exit 2)
//   IOError          a failed read, write or flush                                        (exit 3)
//   NoSpace          allocation on a full fixed-size disk, or a growable one at its maximum
//   ReadOnly         a write-type call on a disk opened read-only
// Open never writes before the superblock has been validated, so a foreign file is never touched.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "blockdev/block_device.h"
#include "blockdev/open_block_device.h"
#include "blockdev/status.h"
#include "vde/allocator.h"
#include "vde/superblock.h"

namespace vde {

struct CreateOptions {
  // Size of the file at creation, a multiple of block_size. A fixed-size disk keeps this size.
  // For a growable disk, 0 means "start as small as possible" (one growth step, capped by
  // max_size_bytes). At least kMinDiskBlocks blocks either way.
  uint64_t size_bytes = 0;
  uint32_t block_size = blockdev::kDefaultBlockSize;
  // A growable disk extends its file by growth_step_bytes whenever an allocation finds no room,
  // up to max_size_bytes (0 = no limit). A thin "100 GiB disk" is growable = true,
  // max_size_bytes = 100 GiB, size_bytes = 0. Both sizes must be multiples of block_size.
  bool growable = false;
  uint64_t max_size_bytes = 0;
  uint64_t growth_step_bytes = 64ull << 20;
  blockdev::Backend backend = blockdev::Backend::kAuto;
  bool direct_io = true;
  // Replace an existing file. Without it, Create() on an existing path is AlreadyExists.
  bool force = false;
};

struct OpenOptions {
  bool read_only = false;
  blockdev::Backend backend = blockdev::Backend::kAuto;
  bool direct_io = true;
};

// A region of consecutive blocks reserved for the write-ahead log; {0, 0} means none.
struct LogRegion {
  uint64_t start = 0;
  uint64_t blocks = 0;
  bool operator==(const LogRegion&) const = default;
};

// One superblock copy as found on disk.
struct SuperblockCopyInfo {
  uint64_t block = 0;       // 0 or 1
  bool valid = false;       // decodes and verifies
  uint64_t generation = 0;  // when valid
  Status error;             // why not, when !valid (names the file and block)
  bool current = false;     // the copy the disk was opened from (the newest valid one)
};

// Everything `vdisk inspect` shows.
struct DiskInfo {
  std::string path;
  uint32_t format_version = 0;
  uint64_t features_compat = 0;
  uint64_t features_ro_compat = 0;
  uint64_t features_incompat = 0;
  std::vector<std::string> feature_names;  // known feature names set, e.g. "growable"
  std::string uuid;                        // "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
  uint32_t block_size = 0;
  uint64_t block_count = 0;         // blocks the disk has now (file size / block size)
  uint64_t size_bytes = 0;          // block_count * block_size
  uint64_t virtual_size_bytes = 0;  // fixed: size_bytes; growable: max_size_bytes, else size_bytes
  uint64_t host_size_bytes = 0;     // space used on the host: st_blocks * 512 (0 if unknown)
  uint64_t file_size_bytes = 0;     // st_size (0 if unknown)
  bool growable = false;
  uint64_t max_size_bytes = 0;  // 0 = no limit
  uint64_t growth_step_bytes = 0;
  uint64_t creation_time_ns = 0;    // nanoseconds since the Unix epoch
  uint64_t checkpoint_time_ns = 0;  // of the current checkpoint
  uint64_t generation = 0;          // current (last durable) checkpoint generation
  uint64_t catalog_root = 0;
  LogRegion log_region;

  // Space. used + free + pending_reuse == block_count. used includes the superblocks and the
  // allocator's own metadata (metadata_blocks of it).
  uint64_t blocks_used = 0;
  uint64_t blocks_free = 0;
  uint64_t blocks_pending_reuse = 0;  // freed, reusable once the next checkpoint is durable
  uint64_t blocks_metadata = 0;
  uint64_t free_extents = 0;         // number of free extents (fragmentation)
  uint64_t largest_free_extent = 0;  // in blocks
  // Set when the superblock verified but the allocator map did not load (InspectPath only);
  // the space figures above are then zero.
  Status allocator_error;

  std::array<SuperblockCopyInfo, 2> superblocks;

  blockdev::Backend backend = blockdev::Backend::kFile;
  std::string backend_reason;
  std::vector<std::string> backend_notes;
  std::string device_description;  // BlockDevice::Describe()
  bool read_only = false;
};

class Disk {
 public:
  // Creates a new virtual disk at `path` and returns it open for writing, at generation 1.
  // A growable disk's file starts small: creating a 100 GiB thin disk writes a few blocks.
  // Errors: AlreadyExists (path exists and !force), InvalidArgument, IOError, NoSpace.
  // On failure a file this call created is removed.
  static Result<std::unique_ptr<Disk>> Create(const std::string& path, const CreateOptions& opts);

  // Opens an existing virtual disk. Validates both superblock copies (the newest that verifies
  // wins), the features and the file size, then loads the allocator map, all before any write.
  static Result<std::unique_ptr<Disk>> Open(const std::string& path, const OpenOptions& opts);

  // As Create/Open, over a device the caller supplies (MemoryBlockDevice, a fault-injecting
  // wrapper). The device's block size is the disk's; opts' path-only fields (backend,
  // direct_io, force) are ignored. CreateOnDevice overwrites whatever the device holds.
  static Result<std::unique_ptr<Disk>> CreateOnDevice(std::unique_ptr<blockdev::BlockDevice> dev,
                                                      const CreateOptions& opts);
  static Result<std::unique_ptr<Disk>> OpenOnDevice(std::unique_ptr<blockdev::BlockDevice> dev,
                                                    bool read_only);

  // Inspects the disk at `path` read-only, without opening it for writing. Fails like Open
  // when no superblock copy verifies (the message gives both copies' errors). When a superblock
  // verifies but the allocator map is damaged, still returns the info, with allocator_error set.
  static Result<DiskInfo> InspectPath(const std::string& path,
                                      blockdev::Backend backend = blockdev::Backend::kAuto);

  // Destroying a Disk without Close() is a crash as far as the disk is concerned: it reopens
  // at the last checkpoint. Nothing is written by the destructor.
  ~Disk();
  Disk(const Disk&) = delete;
  Disk& operator=(const Disk&) = delete;

  // Makes everything since the last checkpoint durable (see the file comment) and advances the
  // generation by one. Errors: ReadOnly; NoSpace (no room for the allocator's map blocks; nothing
  // was written); IOError from a write or a flush. After an I/O failure the previous checkpoint
  // (or, if the superblock made it, the new one) is still valid on disk, but this Disk refuses
  // further checkpoints with the original error: close it and reopen. A failed flush is never
  // retried as if it had succeeded.
  Status Checkpoint();

  // Checkpoints if anything changed since the last checkpoint (and the disk is writable), then
  // releases the device. Returns the checkpoint's error, or, on a disk whose earlier checkpoint
  // failed, that failure (nothing since the last good checkpoint was kept). Idempotent: a
  // second call returns OK. After Close() only path(), uuid(), generation() and the other plain
  // accessors may be used; device(), allocator() and Inspect() may not.
  Status Close();

  // The device, for the layers above to read and write their blocks. Blocks they write should
  // be sealed with next_generation().
  blockdev::BlockDevice& device() noexcept { return *dev_; }
  Allocator& allocator() noexcept { return *alloc_; }
  const Allocator& allocator() const noexcept { return *alloc_; }

  const std::string& path() const noexcept { return path_; }
  uint32_t block_size() const noexcept { return sb_.block_size; }
  bool read_only() const noexcept { return read_only_; }
  // Generation of the last durable checkpoint (1 right after Create).
  uint64_t generation() const;
  uint64_t next_generation() const { return generation() + 1; }
  const std::string& uuid() const noexcept { return uuid_text_; }

  // Catalog root (0 = none) and log region, persisted in the superblock at the next checkpoint.
  // The blocks they name must have been allocated from allocator(). InvalidArgument past the end
  // of the disk; ReadOnly on a read-only disk.
  uint64_t catalog_root() const;
  Status SetCatalogRoot(uint64_t block);
  LogRegion log_region() const;
  Status SetLogRegion(LogRegion region);

  // Backend the device was opened with and why (OpenBlockDevice's answer). For a device given
  // to CreateOnDevice/OpenOnDevice: kFile, "device supplied by the caller".
  blockdev::Backend backend() const noexcept { return backend_; }
  const std::string& backend_reason() const noexcept { return backend_reason_; }
  const std::vector<std::string>& backend_notes() const noexcept { return backend_notes_; }

  // A snapshot of everything `vdisk inspect` shows. Re-reads both superblock copies from the
  // device to report whether each verifies; IOError if that read fails.
  Result<DiskInfo> Inspect() const;

 private:
  Disk();
  static Result<std::unique_ptr<Disk>> OpenImpl(std::unique_ptr<blockdev::BlockDevice> dev,
                                                bool read_only, bool tolerate_map_error);
  Status WriteSuperblocks(const Superblock& sb, bool both);
  Status CheckpointLocked();
  bool DirtyLocked() const;

  std::string path_;
  std::unique_ptr<blockdev::BlockDevice> dev_;
  std::unique_ptr<Allocator> alloc_;
  bool read_only_ = false;
  blockdev::Backend backend_ = blockdev::Backend::kFile;
  std::string backend_reason_;
  std::vector<std::string> backend_notes_;
  std::string uuid_text_;

  mutable std::mutex checkpoint_mu_;  // serializes Checkpoint/Close
  mutable std::mutex mu_;             // guards the fields below
  Superblock sb_;                     // as of the last durable checkpoint
  uint64_t catalog_root_ = 0;         // pending values for the next checkpoint
  LogRegion log_region_;
  Status failed_;  // set by a failed checkpoint: refuses further ones
  Status map_error_;
  bool closed_ = false;
};

}  // namespace vde
