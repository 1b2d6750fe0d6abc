// The io_uring machinery behind IoUringBlockDevice: one ring (Ring), the table of registered
// buffers (BufferTable), the kernel probe, and the one function that turns liburing's -errno into
// a Status. Internal to blockdev: compiled only with liburing (VDE_HAVE_IO_URING), included only
// by io_uring_block_device.cpp and open_block_device.cpp.
//
// Thread safety: a Ring is used by one thread at a time — its owner thread for a per-thread ring
// (set up with IORING_SETUP_SINGLE_ISSUER, so no other thread may submit or register on it), or
// whoever holds the device's shared-ring mutex. Between calls nothing is in flight: Run() returns
// only when every operation it queued has completed, unless the kernel refused io_uring_enter
// itself, in which case the ring is marked broken() and must be destroyed, never used again.
// A BufferTable is immutable once built and shared between rings by shared_ptr.
//
// Ownership: a Ring owns its io_uring (io_uring_queue_exit on destruction). It never owns the
// file descriptor nor the buffers: the device owns the fd and must outlive its rings; buffers
// belong to the callers (and, for registered ones, must outlive the device).
//
// Errors: UringError() is the one conversion of -errno (liburing's convention) to Status. Per
// operation failures land in IoOp::status; Run() itself returns nothing.
#pragma once

#include <liburing.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "blockdev/block_device.h"
#include "blockdev/status.h"

// liburing 2.3 ships these, but older headers do not: the values are the kernel's.
#ifndef IORING_SETUP_CLAMP
#define IORING_SETUP_CLAMP (1U << 4)
#endif
#ifndef IORING_SETUP_ATTACH_WQ
#define IORING_SETUP_ATTACH_WQ (1U << 5)
#endif
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
#ifndef IORING_FEAT_SQPOLL_NONFIXED
#define IORING_FEAT_SQPOLL_NONFIXED (1U << 7)
#endif

namespace vde::blockdev::uring {

// The kernel refuses registered buffers larger than 1 GiB, and more than 16384 of them.
inline constexpr uint64_t kMaxIovecBytes = uint64_t{1} << 30;
inline constexpr size_t kMaxRegisteredBuffers = 16384;
// Longest single read or write handed to the kernel; longer requests continue in pieces.
inline constexpr uint32_t kMaxOpBytes = uint32_t{1} << 30;
// Adjacent reads of one batch are merged into one READV (or READ_FIXED pieces, below) of at most
// this many buffers and bytes: large enough for the device's best sequential transfer, small
// enough that a failed merged read costs little to redo request by request.
inline constexpr size_t kMaxMergedIovecs = 256;
inline constexpr uint64_t kMaxMergedBytes = uint64_t{256} << 10;
// A merged run whose buffers lie in registered memory but in several stretches is cut into one
// READ_FIXED per stretch when the stretches average at least this many requests; else it stays
// one READV.
inline constexpr size_t kMinRequestsPerFixedPiece = 8;

enum class ErrorKind : uint8_t {
  kIo,           // an I/O or registration failed: Status::FromErrno's mapping (IOError, NoSpace..)
  kUnavailable,  // io_uring itself cannot be used: NotSupported
};

// The one place this layer turns an errno (negative, as liburing returns it, or positive) into
// a Status: "<context>: <strerror> (errno N)" for kIo; "<context>: ENAME (<strerror>)" as
// NotSupported for kUnavailable.
Status UringError(int res, std::string_view context, ErrorKind kind = ErrorKind::kIo);

// "EPERM" for EPERM (or -EPERM); "errno N" where the C library has no name.
std::string ErrnoName(int err);

// Sets up a small ring and checks every opcode the device uses (READ, WRITE, READ_FIXED,
// WRITE_FIXED, FSYNC). OK, or NotSupported with the reason ("io_uring_setup: EPERM (...)",
// "io_uring disabled by kernel.io_uring_disabled=2", "opcode READ_FIXED not supported").
// Uncached: ProbeIoUring() in open_block_device.cpp caches it.
Status ProbeKernel();

// Memory registered with io_uring_register_buffers: regions sorted by address, each split into
// iovecs of at most kMaxIovecBytes. Immutable; build a new one with With().
class BufferTable {
 public:
  struct Region {
    uintptr_t base;
    size_t len;
    unsigned first_index;  // index of the region's first iovec
  };

  // A table holding this one's regions plus `region`, or null when `region` lies inside one
  // already present. InvalidArgument when it overlaps a region without lying inside it;
  // NotSupported when the kernel's limit of kMaxRegisteredBuffers iovecs would be passed.
  Result<std::shared_ptr<const BufferTable>> With(std::span<std::byte> region) const;

  // The index of the registered buffer that holds all of [p, p + len), or -1.
  int Find(const void* p, size_t len) const noexcept;

  const std::vector<iovec>& iovecs() const noexcept { return iovecs_; }
  uint64_t total_bytes() const noexcept { return total_bytes_; }

 private:
  std::vector<Region> regions_;
  std::vector<iovec> iovecs_;
  uint64_t total_bytes_ = 0;
};

enum class OpKind : uint8_t { kRead, kWrite, kFsync };

// One operation of a batch: a request's whole transfer (or a flush). Run() advances offset,
// addr and remaining as bytes complete and sets status once, when the operation is done.
struct IoOp {
  OpKind kind = OpKind::kRead;
  uint64_t block = 0;  // for messages: the request as the caller gave it
  uint32_t count = 0;
  size_t req = 0;             // index of the caller's request
  uint64_t offset = 0;        // file offset of the next byte to transfer
  std::byte* addr = nullptr;  // next byte of the caller's buffer (unused with iov)
  // A read scattered over several buffers (IORING_OP_READV): iov_count iovecs from iov, owned by
  // the caller; Run() advances them as bytes complete. Null for a plain transfer at addr.
  iovec* iov = nullptr;
  uint32_t iov_count = 0;
  uint32_t req_count = 1;  // merged reads: the caller's requests this op covers, from req on
  uint64_t remaining = 0;  // bytes still to transfer
  uint32_t in_flight = 0;  // length of the sqe in flight
  uint16_t stalls = 0;     // EAGAIN/EINTR completions in a row
  bool done = false;
  Status status;
};

struct RingSetup {
  unsigned depth = 128;        // requested entries; the kernel may round up (power of two) or clamp
  bool sqpoll = false;         // try IORING_SETUP_SQPOLL, falling back without it
  int attach_wq_fd = -1;       // SQPOLL: share this ring's SQ thread (IORING_SETUP_ATTACH_WQ)
  bool single_issuer = false;  // per-thread ring: SINGLE_ISSUER | DEFER_TASKRUN where offered
};

class Ring {
 public:
  // Sets up a ring. With setup.sqpoll, a kernel that refuses SQPOLL gets a plain ring and
  // *sqpoll_note says why. Setup flags the kernel does not know (EINVAL) are dropped one by one.
  // Errors: NotSupported naming the errno of io_uring_setup.
  static Result<std::unique_ptr<Ring>> Create(const RingSetup& setup, std::string* sqpoll_note);
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // Sets the file every operation targets and registers it (IOSQE_FIXED_FILE) where the kernel
  // allows. NotSupported only for SQPOLL on a kernel that needs fixed files and refused it.
  Status AttachFile(int fd);

  // Makes `table` (null: none) this ring's registered buffers; `version` is remembered (see
  // buffers_version()) whether or not registration succeeds. On failure the ring has none.
  Status SetBuffers(std::shared_ptr<const BufferTable> table, uint64_t version);
  uint64_t buffers_version() const noexcept { return buffers_version_; }

  // Runs every op to completion, in as few io_uring_enter calls as the depth allows: the ring
  // is kept full, short transfers continue, EAGAIN/EINTR are retried. Each op's status is set.
  // `path` names the file in messages; `counters` gets submissions, waits, fixed_ops and
  // retries.
  // `done`, if given, is called with an op's index as soon as that op is done (status set),
  // while others may still be in flight; the ring then waits for a quarter of what is in flight at
  // a time instead of for the whole batch.
  void Run(std::span<IoOp> ops, const std::string& path, DeviceCounters& counters,
           const RequestCallback* done = nullptr);

  // Scratch iovecs for the batch being run (scattered reads).
  std::vector<iovec>& scratch_iovecs() noexcept { return scratch_iov_; }

  // Scratch space for the batch being run on this ring (one batch at a time).
  std::vector<IoOp>& scratch() noexcept { return scratch_; }

  // Whether all of [p, p + len) lies in memory registered with this ring (READ_FIXED works).
  bool Registered(const void* p, size_t len) const noexcept {
    return table_ != nullptr && table_->Find(p, len) >= 0;
  }

  bool broken() const noexcept { return broken_; }
  bool sqpoll() const noexcept { return (ring_.flags & IORING_SETUP_SQPOLL) != 0; }
  unsigned flags() const noexcept { return ring_.flags; }
  unsigned depth() const noexcept { return depth_; }
  int ring_fd() const noexcept { return ring_.ring_fd; }

 private:
  Ring() = default;

  void Prep(io_uring_sqe* sqe, IoOp& op, size_t index, DeviceCounters& counters);
  // Hands queued sqes to the kernel and waits for `wait_nr` completions; counts the
  // io_uring_enter calls it makes. Returns liburing's result (>= 0 or -errno).
  int Enter(unsigned wait_nr, DeviceCounters& counters);
  // Processes every available completion; returns how many.
  unsigned Reap(std::span<IoOp> ops, const std::string& path, DeviceCounters& counters,
                const RequestCallback* done);
  void Complete(IoOp& op, size_t index, int res, const std::string& path, DeviceCounters& counters);

  io_uring ring_{};
  unsigned depth_ = 0;  // 0 until io_uring_queue_init_params succeeded
  unsigned features_ = 0;
  int fd_ = -1;
  bool fixed_file_ = false;
  bool broken_ = false;
  std::shared_ptr<const BufferTable> table_;
  uint64_t buffers_version_ = 0;
  std::vector<size_t> retry_;  // ops to (re)queue before new ones
  std::vector<IoOp> scratch_;
  std::vector<iovec> scratch_iov_;
};

}  // namespace vde::blockdev::uring
