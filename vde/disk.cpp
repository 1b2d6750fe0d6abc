#include "vde/disk.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include "blockdev/aligned_buffer.h"
#include "blockdev/posix_file.h"
#include "vde/format.h"

namespace vde {

namespace {

constexpr size_t kHeadBytes = 2 * size_t{blockdev::kMaxBlockSize};

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

struct FileFacts {
  bool regular = false;
  uint64_t size = 0;
  uint64_t host_bytes = 0;  // st_blocks * 512
};

FileFacts StatPath(const std::string& path) {
  FileFacts f;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    f.regular = S_ISREG(st.st_mode);
    f.size = static_cast<uint64_t>(st.st_size);
    f.host_bytes = static_cast<uint64_t>(st.st_blocks) * 512;
  }
  return f;
}

// A regular file must hold a whole number of blocks and at least as many as the superblock
// says; anything else is a truncated or damaged disk (Corruption), checked before the device
// is opened so that the error is the disk's, not the device's.
Status CheckFileSize(const std::string& path, const Superblock& sb) {
  FileFacts facts = StatPath(path);
  if (!facts.regular) return Status::OK();
  if (facts.size % sb.block_size != 0) {
    return Status::Corruption(path + ": file size " + std::to_string(facts.size) +
                              " is not a multiple of the block size " +
                              std::to_string(sb.block_size));
  }
  if (facts.size / sb.block_size < sb.block_count) {
    return Status::Corruption(path + ": truncated: the superblock says " +
                              std::to_string(sb.block_count) + " blocks of " +
                              std::to_string(sb.block_size) + " bytes, the file has " +
                              std::to_string(facts.size) + " bytes");
  }
  return Status::OK();
}

// The first kHeadBytes of the file (fewer if it is shorter), read without opening it for
// writing, so that a file that is not a virtual disk is never touched.
Result<std::vector<std::byte>> ReadHead(const std::string& path) {
  blockdev::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(errno, path + ": open");
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::FromErrno(errno, path + ": fstat");
  if (S_ISDIR(st.st_mode)) {
    return Status::Corruption(path + ": not a virtual disk (a directory)");
  }
  std::vector<std::byte> head(kHeadBytes);
  size_t got = 0;
  while (got < head.size()) {
    ssize_t n = ::pread(fd.get(), head.data() + got, head.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(errno, path + ": read of the superblocks");
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  head.resize(got);
  return head;
}

Status CheckCreateOptions(const CreateOptions& o, uint32_t bs, const std::string& path) {
  auto bad = [&](const std::string& m) { return Status::InvalidArgument(path + ": " + m); };
  if (!blockdev::IsValidBlockSize(bs)) {
    return bad("block size " + std::to_string(bs) + " is not a power of two in [512, 65536]");
  }
  std::string bss = std::to_string(bs);
  if (o.size_bytes % bs != 0) return bad("size is not a multiple of the block size " + bss);
  if (!o.growable && o.size_bytes < format::kMinDiskBlocks * bs) {
    return bad("size " + std::to_string(o.size_bytes) + " is below the minimum of " +
               std::to_string(format::kMinDiskBlocks) + " blocks");
  }
  if (o.growable) {
    if (o.growth_step_bytes == 0 || o.growth_step_bytes % bs != 0) {
      return bad("growth step must be a non-zero multiple of the block size " + bss);
    }
    if (o.max_size_bytes % bs != 0) {
      return bad("maximum size is not a multiple of the block size " + bss);
    }
    if (o.max_size_bytes != 0 &&
        o.max_size_bytes < std::max<uint64_t>(o.size_bytes, format::kMinDiskBlocks * bs)) {
      return bad("maximum size " + std::to_string(o.max_size_bytes) +
                 " is below the initial size or the minimum of " +
                 std::to_string(format::kMinDiskBlocks) + " blocks");
    }
  }
  return Status::OK();
}

// Initial block count of a disk created with `o`.
uint64_t InitialBlocks(const CreateOptions& o, uint32_t bs) {
  uint64_t n = o.size_bytes / bs;
  if (o.growable && n == 0) {
    n = o.growth_step_bytes / bs;
    if (o.max_size_bytes != 0) n = std::min(n, o.max_size_bytes / bs);
  }
  return std::max(n, format::kMinDiskBlocks);
}

}  // namespace

Disk::Disk() = default;
Disk::~Disk() = default;

// ---- Create ------------------------------------------------------------------------------

Result<std::unique_ptr<Disk>> Disk::Create(const std::string& path, const CreateOptions& opts) {
  VDE_RETURN_IF_ERROR(CheckCreateOptions(opts, opts.block_size, path));
  blockdev::DeviceOptions d;
  d.block_size = opts.block_size;
  d.mode = opts.force ? blockdev::OpenMode::kCreateOrTruncate : blockdev::OpenMode::kCreate;
  d.create_blocks = InitialBlocks(opts, opts.block_size);
  d.backend = opts.backend;
  d.direct_io = opts.direct_io;
  VDE_ASSIGN_OR_RETURN(blockdev::OpenedDevice opened, blockdev::OpenBlockDevice(path, d));
  auto disk = CreateOnDevice(std::move(opened.device), opts);
  if (!disk.has_value()) {
    (void)::unlink(path.c_str());  // the file is ours: we just created (or truncated) it
    return disk.error();
  }
  (*disk)->backend_ = opened.backend;
  (*disk)->backend_reason_ = std::move(opened.reason);
  (*disk)->backend_notes_ = std::move(opened.notes);
  return disk;
}

Result<std::unique_ptr<Disk>> Disk::CreateOnDevice(std::unique_ptr<blockdev::BlockDevice> dev,
                                                   const CreateOptions& opts) {
  const uint32_t bs = dev->block_size();
  CreateOptions o = opts;
  o.size_bytes = dev->block_count() * bs;  // the device's size is the disk's
  VDE_RETURN_IF_ERROR(CheckCreateOptions(o, bs, dev->path()));
  if (dev->read_only()) return Status::ReadOnly(dev->path() + ": create on a read-only device");
  std::unique_ptr<Disk> disk(new Disk());
  disk->path_ = dev->path();
  disk->backend_reason_ = "device supplied by the caller";
  Superblock& sb = disk->sb_;
  sb.generation = 1;
  sb.format_version = format::kFormatVersion;
  sb.block_size = bs;
  sb.features_compat = opts.growable ? format::kCompatGrowable : 0;
  sb.uuid = NewUuid();
  sb.creation_time_ns = NowNs();
  sb.checkpoint_time_ns = sb.creation_time_ns;
  sb.max_blocks = opts.growable ? opts.max_size_bytes / bs : 0;
  sb.growth_step_blocks = opts.growable ? opts.growth_step_bytes / bs : 0;
  disk->uuid_text_ = UuidToString(sb.uuid);

  AllocatorGeometry geo{
      bs, dev->block_count(), opts.growable, sb.max_blocks, sb.growth_step_blocks, false};
  if (opts.growable && sb.max_blocks != 0 && geo.block_count > sb.max_blocks) {
    return Status::InvalidArgument(dev->path() + ": the device is larger than the maximum size");
  }
  disk->dev_ = std::move(dev);
  VDE_ASSIGN_OR_RETURN(disk->alloc_, Allocator::CreateEmpty(disk->dev_.get(), geo));
  VDE_ASSIGN_OR_RETURN(MapCheckpoint cp, disk->alloc_->PrepareCheckpoint(sb.generation));
  VDE_RETURN_IF_ERROR(disk->alloc_->WriteCheckpoint(cp));
  VDE_RETURN_IF_ERROR(disk->dev_->Flush());
  sb.block_count = cp.root.block_count;
  sb.used_blocks = cp.root.used_blocks;
  sb.alloc_root = cp.root.root;
  sb.alloc_levels = cp.root.levels;
  VDE_RETURN_IF_ERROR(disk->WriteSuperblocks(sb, /*both=*/true));
  VDE_RETURN_IF_ERROR(disk->dev_->Flush());
  disk->alloc_->CommitCheckpoint(std::move(cp));
  return disk;
}

// ---- Open --------------------------------------------------------------------------------

Result<std::unique_ptr<Disk>> Disk::Open(const std::string& path, const OpenOptions& opts) {
  // Everything is validated from a read-only look at the file before it is opened for writing.
  VDE_ASSIGN_OR_RETURN(std::vector<std::byte> head, ReadHead(path));
  VDE_ASSIGN_OR_RETURN(SuperblockSearch found, FindSuperblocks(head, path));
  const Superblock& sb = *found.copies[found.current];
  VDE_RETURN_IF_ERROR(CheckFeatures(sb, opts.read_only, path));
  VDE_RETURN_IF_ERROR(CheckFileSize(path, sb));
  blockdev::DeviceOptions d;
  d.block_size = sb.block_size;
  d.mode = opts.read_only ? blockdev::OpenMode::kReadOnly : blockdev::OpenMode::kReadWrite;
  d.backend = opts.backend;
  d.direct_io = opts.direct_io;
  VDE_ASSIGN_OR_RETURN(blockdev::OpenedDevice opened, blockdev::OpenBlockDevice(path, d));
  VDE_ASSIGN_OR_RETURN(std::unique_ptr<Disk> disk,
                       OpenImpl(std::move(opened.device), opts.read_only, false));
  disk->backend_ = opened.backend;
  disk->backend_reason_ = std::move(opened.reason);
  disk->backend_notes_ = std::move(opened.notes);
  return disk;
}

Result<std::unique_ptr<Disk>> Disk::OpenOnDevice(std::unique_ptr<blockdev::BlockDevice> dev,
                                                 bool read_only) {
  return OpenImpl(std::move(dev), read_only, false);
}

Result<std::unique_ptr<Disk>> Disk::OpenImpl(std::unique_ptr<blockdev::BlockDevice> dev,
                                             bool read_only, bool tolerate_map_error) {
  const std::string path = dev->path();
  const uint32_t bs = dev->block_size();
  if (dev->block_count() < 2) {
    return Status::Corruption(path + ": not a virtual disk (" + std::to_string(dev->block_count()) +
                              " blocks)");
  }
  AlignedBuffer two(2 * size_t{bs}, std::max<size_t>(dev->alignment(), 64));
  VDE_RETURN_IF_ERROR(dev->Read(0, 2, two.span()));
  VDE_ASSIGN_OR_RETURN(SuperblockSearch found, ReadSuperblockPair(two.span(), bs, path));
  const Superblock sb = *found.copies[found.current];
  VDE_RETURN_IF_ERROR(CheckFeatures(sb, read_only, path));
  if (dev->block_count() < sb.block_count) {
    return Status::Corruption(path + ": truncated: the superblock says " +
                              std::to_string(sb.block_count) + " blocks, the device has " +
                              std::to_string(dev->block_count()));
  }
  if (!read_only && dev->read_only()) {
    return Status::ReadOnly(path + ": the device is read-only; open the disk read-only");
  }
  std::unique_ptr<Disk> disk(new Disk());
  disk->path_ = path;
  disk->read_only_ = read_only;
  disk->backend_reason_ = "device supplied by the caller";
  disk->sb_ = sb;
  disk->catalog_root_ = sb.catalog_root;
  disk->log_region_ = {sb.log_start, sb.log_blocks};
  disk->uuid_text_ = UuidToString(sb.uuid);
  // A growable disk's file may have grown after its last checkpoint; the extra blocks are free.
  uint64_t count = sb.block_count;
  if (sb.growable()) {
    count = dev->block_count();
    if (sb.max_blocks != 0) count = std::clamp(count, sb.block_count, sb.max_blocks);
  }
  AllocatorGeometry geo{bs, count, sb.growable(), sb.max_blocks, sb.growth_step_blocks, read_only};
  MapRoot root{sb.alloc_root, sb.alloc_levels, sb.block_count, sb.used_blocks};
  disk->dev_ = std::move(dev);
  auto alloc = Allocator::Load(disk->dev_.get(), geo, root);
  if (!alloc.has_value()) {
    if (!tolerate_map_error) return alloc.error();
    disk->map_error_ = alloc.error();
  } else {
    disk->alloc_ = std::move(*alloc);
  }
  return disk;
}

// ---- Checkpoint and close ----------------------------------------------------------------

Status Disk::WriteSuperblocks(const Superblock& sb, bool both) {
  const uint32_t bs = sb.block_size;
  AlignedBuffer buf(2 * size_t{bs}, std::max<size_t>(dev_->alignment(), 64));
  std::vector<blockdev::WriteRequest> reqs;
  for (uint64_t copy = 0; copy < format::kSuperblockCopies; copy++) {
    if (!both && copy != sb.generation % format::kSuperblockCopies) continue;
    std::span<std::byte> block(buf.data() + copy * bs, bs);
    EncodeSuperblock(sb, copy, block);
    reqs.push_back({copy, 1, block.data(), Status::OK()});
  }
  return dev_->WriteBatch(reqs);
}

Status Disk::Checkpoint() {
  std::lock_guard cp_lock(checkpoint_mu_);
  if (closed_) return Status::InvalidArgument(path_ + ": checkpoint of a closed disk");
  if (read_only_) return Status::ReadOnly(path_ + ": checkpoint of a disk opened read-only");
  return CheckpointLocked();
}

Status Disk::CheckpointLocked() {
  if (!failed_.ok()) {
    return failed_.WithContext(path_ + ": an earlier checkpoint failed; reopen the disk");
  }
  Superblock next;
  {
    std::lock_guard lock(mu_);
    next = sb_;
    next.catalog_root = catalog_root_;
    next.log_start = log_region_.start;
    next.log_blocks = log_region_.blocks;
  }
  next.generation++;
  VDE_ASSIGN_OR_RETURN(MapCheckpoint cp, alloc_->PrepareCheckpoint(next.generation));
  // Step 1: the new map blocks (fresh blocks only), then make them and everything the layers
  // above wrote durable.
  Status s = alloc_->WriteCheckpoint(cp);
  if (s.ok()) s = dev_->Flush();
  if (s.ok()) {
    // Step 2: the superblock copy this generation selects, then make it durable.
    next.checkpoint_time_ns = NowNs();
    next.block_count = cp.root.block_count;
    next.used_blocks = cp.root.used_blocks;
    next.alloc_root = cp.root.root;
    next.alloc_levels = cp.root.levels;
    next.features_compat &= format::kCompatKnown;  // see format.h: unknown compat bits
    s = WriteSuperblocks(next, /*both=*/false);
    if (s.ok()) s = dev_->Flush();
  }
  if (!s.ok()) {
    alloc_->AbortCheckpoint(std::move(cp), /*written=*/true);
    failed_ = s.WithContext(path_ + ": checkpoint " + std::to_string(next.generation));
    return failed_;
  }
  alloc_->CommitCheckpoint(std::move(cp));
  std::lock_guard lock(mu_);
  sb_ = next;
  return Status::OK();
}

bool Disk::DirtyLocked() const {
  std::lock_guard lock(mu_);
  return alloc_->dirty() || catalog_root_ != sb_.catalog_root ||
         log_region_ != LogRegion{sb_.log_start, sb_.log_blocks};
}

Status Disk::Close() {
  std::lock_guard cp_lock(checkpoint_mu_);
  if (closed_) return Status::OK();
  Status s = failed_;  // a failed disk loses what changed since its last checkpoint: say so
  if (!read_only_ && alloc_ != nullptr && failed_.ok() && DirtyLocked()) s = CheckpointLocked();
  closed_ = true;
  alloc_.reset();
  dev_.reset();
  return s;
}

// ---- Accessors -----------------------------------------------------------------------------

uint64_t Disk::generation() const {
  std::lock_guard lock(mu_);
  return sb_.generation;
}

uint64_t Disk::catalog_root() const {
  std::lock_guard lock(mu_);
  return catalog_root_;
}

LogRegion Disk::log_region() const {
  std::lock_guard lock(mu_);
  return log_region_;
}

Status Disk::SetCatalogRoot(uint64_t block) {
  if (read_only_) return Status::ReadOnly(path_ + ": set catalog root on a read-only disk");
  uint64_t n = alloc_->block_count();
  if (block != 0 && (block < format::kSuperblockCopies || block >= n)) {
    return Status::InvalidArgument(path_ + ": catalog root " + std::to_string(block) +
                                   " outside [2, " + std::to_string(n) + ")");
  }
  std::lock_guard lock(mu_);
  catalog_root_ = block;
  return Status::OK();
}

Status Disk::SetLogRegion(LogRegion r) {
  if (read_only_) return Status::ReadOnly(path_ + ": set log region on a read-only disk");
  uint64_t n = alloc_->block_count();
  bool ok = r.blocks == 0
                ? r.start == 0
                : r.start >= format::kSuperblockCopies && r.start < n && r.blocks <= n - r.start;
  if (!ok) {
    return Status::InvalidArgument(path_ + ": log region " + std::to_string(r.start) + "+" +
                                   std::to_string(r.blocks) + " does not fit the disk (" +
                                   std::to_string(n) + " blocks)");
  }
  std::lock_guard lock(mu_);
  log_region_ = r;
  return Status::OK();
}

// ---- Inspect -------------------------------------------------------------------------------

Result<DiskInfo> Disk::Inspect() const {
  if (closed_) return Status::InvalidArgument(path_ + ": inspect of a closed disk");
  DiskInfo info;
  Superblock sb;
  {
    std::lock_guard lock(mu_);
    sb = sb_;
    info.catalog_root = catalog_root_;
    info.log_region = log_region_;
  }
  info.path = path_;
  info.format_version = sb.format_version;
  info.features_compat = sb.features_compat;
  info.features_ro_compat = sb.features_ro_compat;
  info.features_incompat = sb.features_incompat;
  info.feature_names = FeatureNames(sb);
  info.uuid = uuid_text_;
  info.block_size = sb.block_size;
  info.growable = sb.growable();
  info.max_size_bytes = sb.max_blocks * sb.block_size;
  info.growth_step_bytes = sb.growth_step_blocks * sb.block_size;
  info.creation_time_ns = sb.creation_time_ns;
  info.checkpoint_time_ns = sb.checkpoint_time_ns;
  info.generation = sb.generation;
  info.block_count = alloc_ != nullptr ? alloc_->block_count() : sb.block_count;
  info.size_bytes = info.block_count * sb.block_size;
  info.virtual_size_bytes =
      sb.growable() && sb.max_blocks != 0 ? info.max_size_bytes : info.size_bytes;
  FileFacts facts = StatPath(path_);
  info.host_size_bytes = facts.host_bytes;
  info.file_size_bytes = facts.size;
  if (alloc_ != nullptr) {
    AllocatorStats st = alloc_->stats();
    info.blocks_used = st.used_blocks;
    info.blocks_free = st.free_blocks;
    info.blocks_pending_reuse = st.pending_blocks;
    info.blocks_metadata = st.metadata_blocks;
    info.free_extents = st.free_extents;
    info.largest_free_extent = st.largest_free_extent;
  }
  info.allocator_error = map_error_;

  const uint32_t bs = sb.block_size;
  AlignedBuffer two(2 * size_t{bs}, std::max<size_t>(dev_->alignment(), 64));
  VDE_RETURN_IF_ERROR(dev_->Read(0, 2, two.span()));
  bool current_seen = false;
  for (uint64_t i = 0; i < format::kSuperblockCopies; i++) {
    SuperblockCopyInfo& c = info.superblocks[i];
    c.block = i;
    auto r = DecodeSuperblock(two.span().subspan(i * bs, bs), i, path_);
    c.valid = r.has_value();
    if (c.valid) {
      c.generation = r->generation;
      c.current = !current_seen && r->generation == sb.generation;
      current_seen |= c.current;
    } else {
      c.error = r.error();
    }
  }
  info.backend = backend_;
  info.backend_reason = backend_reason_;
  info.backend_notes = backend_notes_;
  info.device_description = dev_->Describe();
  info.read_only = read_only_;
  return info;
}

Result<DiskInfo> Disk::InspectPath(const std::string& path, blockdev::Backend backend) {
  VDE_ASSIGN_OR_RETURN(std::vector<std::byte> head, ReadHead(path));
  VDE_ASSIGN_OR_RETURN(SuperblockSearch found, FindSuperblocks(head, path));
  const Superblock& sb = *found.copies[found.current];
  VDE_RETURN_IF_ERROR(CheckFileSize(path, sb));
  blockdev::DeviceOptions d;
  d.block_size = sb.block_size;
  d.mode = blockdev::OpenMode::kReadOnly;
  d.backend = backend;
  VDE_ASSIGN_OR_RETURN(blockdev::OpenedDevice opened, blockdev::OpenBlockDevice(path, d));
  VDE_ASSIGN_OR_RETURN(std::unique_ptr<Disk> disk,
                       OpenImpl(std::move(opened.device), /*read_only=*/true,
                                /*tolerate_map_error=*/true));
  disk->backend_ = opened.backend;
  disk->backend_reason_ = std::move(opened.reason);
  disk->backend_notes_ = std::move(opened.notes);
  return disk->Inspect();
}

}  // namespace vde
