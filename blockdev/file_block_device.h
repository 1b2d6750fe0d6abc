// FileBlockDevice: a BlockDevice over a regular file or a block device, using pread/pwrite.
//
// The portable backend: it runs on any POSIX system and is what OpenBlockDevice() falls back to
// when io_uring is unavailable. On Linux it uses O_DIRECT when DeviceOptions::direct_io asks and
// the file system allows it (OpenDeviceFile() decides, and says why in notes()); elsewhere, or
// when refused, it does buffered I/O and requires no buffer alignment.
//
// A batch runs its requests one after another in the calling thread. Requests for adjacent
// blocks are coalesced into one preadv/pwritev; should a coalesced transfer fail, its requests
// are retried one by one so that only the failing request reports the error. Short transfers
// are continued and EINTR is retried; a read that meets end of file before the request is
// complete (the file shrank behind our back) fails with IOError "short read".
//
// Thread safety: every method may be called from any number of threads at once (pread/pwrite
// carry their own offsets; Grow is serialised by a mutex), except the destructor, which requires
// that no call is in progress. The device owns its file descriptor and closes it on destruction;
// it never owns the callers' buffers.
//
// Errors: those of BlockDevice (OutOfRange, InvalidArgument, ReadOnly, IOError, NoSpace), each
// naming the path, the block and the cause. Open() returns NotFound for a missing file,
// AlreadyExists for kCreate over an existing path and InvalidArgument for a bad block size or a
// file whose size is not a multiple of the block size. Grow of a block device is NotSupported.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "blockdev/block_device.h"
#include "blockdev/open_block_device.h"
#include "blockdev/posix_file.h"
#include "blockdev/status.h"

namespace vde::blockdev {

class FileBlockDevice final : public BlockDevice {
 public:
  // Opens (or creates, as opts.mode says) `path` as a device of opts.block_size-byte blocks.
  // Uses opts.block_size, mode, create_blocks and direct_io; the io_uring options are ignored.
  static Result<std::unique_ptr<FileBlockDevice>> Open(const std::string& path,
                                                       const DeviceOptions& opts);

  // How the open went where it differed from what was asked, e.g. "O_DIRECT refused by the file
  // system of <path>: buffered I/O". Empty when everything was as requested.
  const std::vector<std::string>& notes() const noexcept { return notes_; }
  // True when the file is open with O_DIRECT.
  bool direct() const noexcept { return direct_; }

  // "file (pread/pwrite, O_DIRECT)" or "file (pread/pwrite, buffered)".
  std::string Describe() const override;
  Status ReadBatch(std::span<ReadRequest> reqs) override;
  Status ReadBatchNotify(std::span<ReadRequest> reqs, RequestCallback done) override;
  Status WriteBatch(std::span<WriteRequest> reqs) override;
  // fdatasync (F_FULLFSYNC on macOS). A failure is IOError and sticks: every later Flush fails
  // too, because the kernel may have dropped the pages it could not write, so a later fdatasync
  // that succeeds would claim durability for data that is gone.
  Status Flush() override;
  Status Grow(uint64_t new_block_count) override;

 private:
  FileBlockDevice(const std::string& path, uint32_t block_size, DeviceFile file);

  // One contiguous transfer of `iov` (which it may modify) at byte offset `offset`, covering
  // `count` blocks from `block`. Continues short transfers and retries EINTR.
  Status Transfer(bool is_write, uint64_t block, uint64_t count, std::span<iovec> iov);

  // The shared body of ReadBatch and WriteBatch: checks every request, runs the good ones
  // (coalescing adjacent ones), sets each request's status and returns the first failure.
  // `done`, if given, is called for each request once its status is final.
  template <typename Req>
  Status RunBatch(bool is_write, std::span<Req> reqs, const RequestCallback* done);

  UniqueFd fd_;
  bool direct_;
  bool is_block_device_;
  std::vector<std::string> notes_;
  std::mutex grow_mu_;  // serialises Grow(); readers and writers do not take it
  std::mutex flush_mu_;
  Status flush_error_;  // the first failed flush, returned by every later one; under flush_mu_
};

}  // namespace vde::blockdev
