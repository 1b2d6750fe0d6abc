// POSIX file plumbing shared by FileBlockDevice and IoUringBlockDevice: a move-only fd owner, the
// one place that opens a device file (create, O_DIRECT with fallback, size and alignment checks),
// growing a file, and stepping iovecs past a short vectored transfer. Nothing here is Linux-only
// outside an #ifdef.
//
// Thread-safe: functions hold no state; a UniqueFd is owned by one object.
#pragma once

#include <sys/uio.h>

#include <cstddef>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "blockdev/open_block_device.h"
#include "blockdev/status.h"

namespace vde::blockdev {

class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  int Release() noexcept { return std::exchange(fd_, -1); }
  // Closes the fd. A close error is ignored: durability comes from Flush(), never from close.
  void Reset() noexcept;

 private:
  int fd_ = -1;
};

struct DeviceFile {
  UniqueFd fd;
  uint64_t block_count = 0;
  size_t alignment = 1;  // buffer address alignment required; 1 when buffered
  bool direct = false;   // O_DIRECT in effect
  bool is_block_device = false;
  bool read_only = false;
  std::vector<std::string> notes;  // e.g. "O_DIRECT refused by the file system: buffered I/O"
};

// Opens `path` as opts.mode says. With want_direct (and on Linux) tries O_DIRECT first and falls
// back to buffered I/O, with a note, when the file system refuses it or its DIO granularity is
// larger than the block size. Alignment comes from statx(STATX_DIOALIGN), BLKSSZGET for a block
// device, else 4096.
// Errors: InvalidArgument (bad block size; a size that is not a multiple of the block size;
// kCreate with create_blocks 0), NotFound, AlreadyExists, IOError — each naming the path.
Result<DeviceFile> OpenDeviceFile(const std::string& path, const DeviceOptions& opts,
                                  bool want_direct);

// Extends the regular file behind `fd` from old_bytes to new_bytes: fallocate where the file
// system offers it (so the space is really reserved; ENOSPC comes back as NoSpace), else
// ftruncate. A block device cannot grow (NotSupported).
Status GrowFile(int fd, const std::string& path, bool is_block_device, uint64_t old_bytes,
                uint64_t new_bytes);

// Steps the `*count` iovecs at `*iov` past `n` bytes a vectored transfer moved: whole iovecs
// are dropped, a partly transferred one is shortened from the front.
void SkipIovecBytes(iovec** iov, size_t* count, size_t n);

}  // namespace vde::blockdev
