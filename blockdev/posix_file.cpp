#include "blockdev/posix_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#ifdef __linux__
#include <linux/fs.h>
#include <sys/ioctl.h>
#endif

namespace vde::blockdev {

void UniqueFd::Reset() noexcept {
  if (fd_ >= 0) {
    (void)::close(fd_);
    fd_ = -1;
  }
}

namespace {

int OpenFlags(OpenMode mode) {
  int flags = O_CLOEXEC;
  switch (mode) {
    case OpenMode::kReadOnly:
      flags |= O_RDONLY;
      break;
    case OpenMode::kReadWrite:
      flags |= O_RDWR;
      break;
    case OpenMode::kCreate:
      flags |= O_RDWR | O_CREAT | O_EXCL;
      break;
    case OpenMode::kCreateOrTruncate:
      flags |= O_RDWR | O_CREAT | O_TRUNC;
      break;
  }
  return flags;
}

bool Creates(OpenMode m) {
  return m == OpenMode::kCreate || m == OpenMode::kCreateOrTruncate;
}

// Device DIO alignment: {memory alignment, offset granularity}; 0 when unknown.
struct DioAlign {
  size_t mem = 0;
  size_t offset = 0;
};

DioAlign QueryDioAlign(int fd, bool is_block_device) {
  DioAlign a;
#ifdef __linux__
  if (is_block_device) {
    int ssz = 0;
    if (::ioctl(fd, BLKSSZGET, &ssz) == 0 && ssz > 0) {
      a.mem = static_cast<size_t>(ssz);
      a.offset = static_cast<size_t>(ssz);
    }
    return a;
  }
#if defined(STATX_DIOALIGN)
  struct statx stx {};
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
      (stx.stx_mask & STATX_DIOALIGN) != 0 && stx.stx_dio_offset_align != 0) {
    a.mem = stx.stx_dio_mem_align;
    a.offset = stx.stx_dio_offset_align;
  }
#endif
#else
  (void)fd;
  (void)is_block_device;
#endif
  return a;
}

Result<uint64_t> DeviceBytes(int fd, const std::string& path, bool is_block_device) {
#ifdef __linux__
  if (is_block_device) {
    uint64_t bytes = 0;
    if (::ioctl(fd, BLKGETSIZE64, &bytes) != 0) {
      return Status::FromErrno(errno, path + ": BLKGETSIZE64");
    }
    return bytes;
  }
#else
  (void)is_block_device;
#endif
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::FromErrno(errno, path + ": fstat");
  return static_cast<uint64_t>(st.st_size);
}

}  // namespace

Result<DeviceFile> OpenDeviceFile(const std::string& path, const DeviceOptions& opts,
                                  bool want_direct) {
  const uint32_t bs = opts.block_size;
  if (!IsValidBlockSize(bs)) {
    return Status::InvalidArgument(path + ": block size " + std::to_string(bs) +
                                   " is not a power of two between 512 and 65536");
  }
  if (Creates(opts.mode) && opts.create_blocks == 0) {
    return Status::InvalidArgument(path + ": cannot create a device of 0 blocks");
  }
  DeviceFile df;
  df.read_only = opts.mode == OpenMode::kReadOnly;
  int flags = OpenFlags(opts.mode);

  int fd = -1;
#ifdef O_DIRECT
  if (want_direct) {
    fd = ::open(path.c_str(), flags | O_DIRECT, 0644);
    if (fd >= 0) {
      df.direct = true;
    } else if (errno == EINVAL) {
      df.notes.push_back("O_DIRECT refused by the file system of " + path + ": buffered I/O");
      // With O_CREAT|O_EXCL the kernel creates the file before it refuses O_DIRECT (an
      // existing path fails with EEXIST first), so a path that exists now is ours: drop O_EXCL.
      if (opts.mode == OpenMode::kCreate) {
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0) flags &= ~O_EXCL;
      }
    } else {
      int err = errno;
      return Status::FromErrno(err, "open " + path);
    }
  }
#else
  if (want_direct) df.notes.push_back("O_DIRECT not available on this platform: buffered I/O");
#endif
  if (fd < 0) {
    fd = ::open(path.c_str(), flags, 0644);
    if (fd < 0) return Status::FromErrno(errno, "open " + path);
  }
  df.fd = UniqueFd(fd);

  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::FromErrno(errno, path + ": fstat");
  df.is_block_device = S_ISBLK(st.st_mode);
  if (!df.is_block_device && !S_ISREG(st.st_mode)) {
    return Status::InvalidArgument(path + ": not a regular file or block device");
  }

  if (Creates(opts.mode)) {
    if (df.is_block_device) {
      return Status::InvalidArgument(path + ": cannot create over a block device");
    }
    uint64_t bytes = opts.create_blocks * static_cast<uint64_t>(bs);
    VDE_RETURN_IF_ERROR(GrowFile(fd, path, false, 0, bytes));
  }

  VDE_ASSIGN_OR_RETURN(uint64_t bytes, DeviceBytes(fd, path, df.is_block_device));
  if (bytes % bs != 0) {
    return Status::InvalidArgument(path + ": size " + std::to_string(bytes) +
                                   " bytes is not a multiple of the block size " +
                                   std::to_string(bs));
  }
  df.block_count = bytes / bs;

  if (df.direct) {
    DioAlign a = QueryDioAlign(fd, df.is_block_device);
    size_t offset_align = a.offset != 0 ? a.offset : 4096;
    size_t mem_align = a.mem != 0 ? a.mem : 4096;
    if (offset_align > bs) {
#ifdef O_DIRECT
      // The device cannot do O_DIRECT at this block size: reopen buffered.
      int bflags =
          OpenFlags(opts.mode == OpenMode::kReadOnly ? OpenMode::kReadOnly : OpenMode::kReadWrite);
      int bfd = ::open(path.c_str(), bflags, 0644);
      if (bfd < 0) return Status::FromErrno(errno, "open " + path);
      df.fd = UniqueFd(bfd);
      df.direct = false;
      df.notes.push_back("block size " + std::to_string(bs) +
                         " is below the O_DIRECT granularity " + std::to_string(offset_align) +
                         " of " + path + ": buffered I/O");
#endif
    } else {
      df.alignment = mem_align;
    }
  }
  if (!df.direct) df.alignment = 1;
  return df;
}

Status GrowFile(int fd, const std::string& path, bool is_block_device, uint64_t old_bytes,
                uint64_t new_bytes) {
  if (is_block_device) {
    return Status::NotSupported(path + ": a block device cannot grow");
  }
  if (new_bytes <= old_bytes) return Status::OK();
#if defined(__linux__)
  int rc;
  do {
    rc = ::fallocate(fd, 0, static_cast<off_t>(old_bytes),
                     static_cast<off_t>(new_bytes - old_bytes));
  } while (rc != 0 && errno == EINTR);
  if (rc == 0) return Status::OK();
  int err = errno;
  if (err != EOPNOTSUPP && err != ENOSYS) {
    // A fallocate that runs out of space part-way may leave the file extended to wherever it
    // stopped (ext4 does), possibly not a multiple of the block size, so that the next open
    // would refuse the file. Cut it back: nothing but fresh zeros lies beyond old_bytes. Should
    // that fail too, the fallocate error is still the one to report.
    [[maybe_unused]] int undo = ::ftruncate(fd, static_cast<off_t>(old_bytes));
    return Status::FromErrno(err, path + ": fallocate to " + std::to_string(new_bytes) + " bytes");
  }
#endif
  if (::ftruncate(fd, static_cast<off_t>(new_bytes)) != 0) {
    return Status::FromErrno(errno,
                             path + ": ftruncate to " + std::to_string(new_bytes) + " bytes");
  }
  return Status::OK();
}

void SkipIovecBytes(iovec** iov, size_t* count, size_t n) {
  while (n > 0 && *count > 0) {
    iovec& v = **iov;
    if (n < v.iov_len) {
      v.iov_base = static_cast<std::byte*>(v.iov_base) + n;
      v.iov_len -= n;
      return;
    }
    n -= v.iov_len;
    ++*iov;
    --*count;
  }
}

}  // namespace vde::blockdev
