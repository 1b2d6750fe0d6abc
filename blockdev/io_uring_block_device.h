// IoUringBlockDevice: a BlockDevice on io_uring (liburing), with O_DIRECT where the file system
// allows it, on a regular file or a raw block device. Built only with liburing
// (VDE_HAVE_IO_URING); most code opens devices through OpenBlockDevice(), which falls back to
// FileBlockDevice when io_uring is unusable.
//
// Rings. Up to DeviceOptions::max_rings threads get a ring of their own, set up lazily by the
// thread on its first call (with IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN where
// the kernel offers them); every other thread shares one ring, one batch at a time, under a
// mutex. A thread that exits tears its ring down and frees the slot for another thread; a
// thread on the shared ring takes a free slot on its next call. With opts.sqpoll every ring
// uses one shared SQ thread (IORING_SETUP_ATTACH_WQ); a kernel that refuses SQPOLL gets plain
// rings and a note.
//
// Batches. Each request is checked (CheckRequest); bad ones get their status and the rest still
// run. Requests go out in as few io_uring_enter calls as the queue depth allows; a batch larger
// than the ring keeps it full, queuing more as completions arrive. Short transfers continue and
// EAGAIN/EINTR completions are retried. Writes of one batch to overlapping blocks land in
// request order, as sequential pwrite would leave them.
//
// Registered buffers. RegisterMemory() registers the region with io_uring_register_buffers
// (in iovecs of at most 1 GiB) on every ring: on the shared ring at once, on a per-thread ring
// by its owner before its next batch. A request whose buffer lies inside one registered iovec
// goes out as READ_FIXED/WRITE_FIXED, any other as READ/WRITE. When the kernel refuses (ENOMEM:
// the memlock limit) the device falls back to unregistered I/O for good and adds a note.
// Registering pins (and so faults in) the whole region once per ring.
//
// Counters. submissions counts io_uring_enter calls that hand the kernel new operations, and
// waits those that only wait for completions (a batch that fits the ring takes one submission
// and no wait; ReadBatchNotify waits for a quarter of what is in flight at a time, so it adds a
// few). Both mirror liburing's own decision to enter: exact without SQPOLL, while with SQPOLL a
// wakeup of an SQ thread that falls asleep just as a batch is queued may go uncounted, or be
// counted when another ring woke the shared SQ thread first. With SQPOLL a batch enters only to
// wake the SQ thread and, after polling the CQ briefly, to wait for completions that have not
// arrived. fixed_ops counts READ_FIXED/WRITE_FIXED sqes; retries counts resubmissions after EAGAIN,
// EINTR or a short transfer.
//
// Thread safety: every method may be called from any number of threads at once (but not from
// a ReadBatchNotify completion callback on the same device: InvalidArgument), except the
// destructor, which requires that no call is in progress (threads that used the device may
// still be alive, or gone). Ownership: the device owns its file descriptor and every ring;
// memory given to RegisterMemory() stays the caller's and must outlive the device.
//
// Errors: those of BlockDevice. An I/O failure is "<op> of block B (count C) of <path>: <cause>"
// with the code Status::FromErrno gives the errno (IOError for EIO; NoSpace for ENOSPC). A failed
// Flush sticks: every later Flush fails too, since the kernel may have dropped unwritten pages.
// Open() returns NotSupported with the reason when io_uring cannot be used, and the errors of
// OpenDeviceFile() (NotFound, AlreadyExists, InvalidArgument) otherwise.
#pragma once

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

namespace uring {
class RingPool;
class Ring;
struct IoOp;
}  // namespace uring

class IoUringBlockDevice final : public BlockDevice {
 public:
  // Opens (or creates, as opts.mode says) `path`. Uses every DeviceOptions field; queue_depth
  // must be at least 1 (the kernel rounds it up to a power of two, and clamps it).
  // NotSupported, with the reason, when io_uring cannot be used here; the file is not touched.
  static Result<std::unique_ptr<IoUringBlockDevice>> Open(const std::string& path,
                                                          const DeviceOptions& opts);
  ~IoUringBlockDevice() override;

  // Where the device differs from what was asked: "O_DIRECT refused by the file system ...",
  // "SQPOLL refused (EPERM): no SQPOLL", "registering ... failed: ENOMEM ...". Notes may be added
  // after Open (by RegisterMemory, or a ring set up later), hence a copy.
  std::vector<std::string> notes() const;
  bool sqpoll_active() const noexcept { return sqpoll_; }
  // True when RegisterMemory() succeeded and registration has not been given up.
  bool buffers_registered() const;
  bool direct_io() const noexcept { return direct_; }
  // Entries per ring as the kernel set them up; the most operations in flight per ring.
  unsigned queue_depth() const noexcept { return depth_; }

  struct RingStats {
    unsigned thread_rings_live = 0;     // per-thread rings now set up
    uint64_t thread_rings_created = 0;  // per-thread rings ever set up
    uint64_t shared_ring_batches = 0;   // batches and flushes run on the shared ring
  };
  RingStats ring_stats() const;

  // e.g. "io_uring (O_DIRECT, registered buffers, per-thread rings 4, depth 128)".
  std::string Describe() const override;
  // Adjacent reads are merged into one IORING_OP_READV of up to 256 KiB, or, where their
  // buffers lie in registered memory in long stretches, one READ_FIXED per stretch. Others go
  // out as READ_FIXED where their buffer is registered.
  Status ReadBatch(std::span<ReadRequest> reqs) override;
  Status ReadBatchNotify(std::span<ReadRequest> reqs, RequestCallback done) override;
  Status WriteBatch(std::span<WriteRequest> reqs) override;
  // IORING_OP_FSYNC with IORING_FSYNC_DATASYNC. ReadOnly on a read-only device.
  Status Flush() override;
  // GrowFile() then the new block count; growers are serialised. NotSupported on a block device.
  Status Grow(uint64_t new_block_count) override;
  // InvalidArgument for an empty or misaligned region, or one that overlaps a region registered
  // before (one lying inside it is fine). Otherwise OK, also when registration is refused or
  // disabled by opts.register_buffers: I/O then simply uses unregistered buffers.
  Status RegisterMemory(std::span<std::byte> region) override;
  bool RegistersMemory() const noexcept override { return register_buffers_; }

 private:
  IoUringBlockDevice(const std::string& path, const DeviceOptions& opts, DeviceFile file,
                     std::shared_ptr<uring::RingPool> pool, bool sqpoll, unsigned depth);

  // Calls fn(ring) with the calling thread's own ring, or with the shared ring under its mutex.
  // Fails only when no ring can be had (the shared ring broke and cannot be set up again).
  template <typename Fn>
  Status WithRing(Fn&& fn);
  // The body of ReadBatch and ReadBatchNotify (`done` may be null).
  Status RunReads(std::span<ReadRequest> reqs, const RequestCallback* done);
  // The body of WriteBatch.
  Status RunWrites(std::span<WriteRequest> reqs);
  // An op for `count` blocks from `block` to or from the contiguous `buf`, for request `req`.
  uring::IoOp PlainOp(bool is_write, uint64_t block, uint32_t count, size_t req,
                      std::byte* buf) const;

  UniqueFd fd_;
  const bool direct_;
  const bool is_block_device_;
  const bool sqpoll_;
  const bool register_buffers_;
  const unsigned max_rings_;
  const unsigned depth_;
  std::shared_ptr<uring::RingPool> pool_;

  std::mutex grow_mu_;   // serialises Grow()
  std::mutex flush_mu_;  // guards flush_error_
  Status flush_error_;   // the first failed flush; sticks
};

}  // namespace vde::blockdev
