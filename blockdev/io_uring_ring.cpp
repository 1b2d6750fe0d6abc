#include "blockdev/io_uring_ring.h"

#include "blockdev/posix_file.h"

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <utility>

namespace vde::blockdev::uring {

namespace {

// SQ thread idle time before it sleeps (and needs an io_uring_enter to wake).
constexpr unsigned kSqThreadIdleMs = 50;
// With SQPOLL, polls of the CQ before entering the kernel to wait for completions.
constexpr unsigned kSqpollSpins = 256;
// EAGAIN/EINTR completions of one operation in a row before it fails with that error.
constexpr uint16_t kMaxStalls = 64;
// Transient io_uring_enter failures in a row before the ring is declared broken.
constexpr unsigned kMaxEnterStalls = 1000;

void CpuRelax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

bool IsTransient(int res) noexcept {
  return res == -EAGAIN || res == -EINTR || res == -EBUSY;
}

std::string ErrnoText(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char* d = strerrordesc_np(err);
  if (d != nullptr) return d;
#endif
  return "errno " + std::to_string(err);
}

std::string OpName(const IoOp& op, const std::string& path) {
  switch (op.kind) {
    case OpKind::kRead:
    case OpKind::kWrite:
      return std::string(op.kind == OpKind::kRead ? "read" : "write") + " of block " +
             std::to_string(op.block) + " (count " + std::to_string(op.count) + ") of " + path;
    case OpKind::kFsync:
      return "flush (fdatasync) of " + path;
  }
  return path;
}

// kernel.io_uring_disabled: 0 enabled, 1 only for CAP_SYS_ADMIN or io_uring_group, 2 disabled.
// -1 when the kernel has no such sysctl.
int ReadIoUringDisabled() {
  std::ifstream in("/proc/sys/kernel/io_uring_disabled");
  int v = -1;
  if (!(in >> v)) return -1;
  return v;
}

}  // namespace

Status UringError(int res, std::string_view context, ErrorKind kind) {
  int err = res < 0 ? -res : res;
  if (kind == ErrorKind::kUnavailable) {
    return Status::NotSupported(std::string(context) + ": " + ErrnoName(err) + " (" +
                                ErrnoText(err) + ")");
  }
  return Status::FromErrno(err, context);
}

std::string ErrnoName(int err) {
  if (err < 0) err = -err;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char* n = strerrorname_np(err);
  if (n != nullptr) return n;
#endif
  return "errno " + std::to_string(err);
}

Status ProbeKernel() {
  const int disabled = ReadIoUringDisabled();
  if (disabled == 2) {
    return Status::NotSupported("io_uring disabled by kernel.io_uring_disabled=2");
  }
  io_uring ring{};
  int r = io_uring_queue_init(4, &ring, 0);
  if (r < 0) {
    if (r == -EPERM && disabled == 1) {
      return Status::NotSupported(
          "io_uring disabled by kernel.io_uring_disabled=1 for this user (io_uring_setup: EPERM)");
    }
    return UringError(r, "io_uring_setup", ErrorKind::kUnavailable);
  }
  io_uring_probe* probe = io_uring_get_probe_ring(&ring);
  if (probe == nullptr) {
    io_uring_queue_exit(&ring);
    return Status::NotSupported("io_uring opcode probe failed (kernel older than 5.6)");
  }
  struct Needed {
    int op;
    const char* name;
  };
  static constexpr Needed kNeeded[] = {
      {IORING_OP_READ, "READ"},
      {IORING_OP_WRITE, "WRITE"},
      {IORING_OP_READ_FIXED, "READ_FIXED"},
      {IORING_OP_WRITE_FIXED, "WRITE_FIXED"},
      {IORING_OP_FSYNC, "FSYNC"},
  };
  Status s;
  for (const Needed& n : kNeeded) {
    if (io_uring_opcode_supported(probe, n.op) == 0) {
      s = Status::NotSupported(std::string("opcode ") + n.name + " not supported");
      break;
    }
  }
  io_uring_free_probe(probe);
  io_uring_queue_exit(&ring);
  return s;
}

// ---------------------------------------------------------------------------------------------
// BufferTable

Result<std::shared_ptr<const BufferTable>> BufferTable::With(std::span<std::byte> region) const {
  const uintptr_t base = reinterpret_cast<uintptr_t>(region.data());
  const size_t len = region.size();
  for (const Region& r : regions_) {
    if (base < r.base + r.len && r.base < base + len) {
      if (base >= r.base && base + len <= r.base + r.len) {
        return std::shared_ptr<const BufferTable>();  // already registered
      }
      return Status::InvalidArgument("memory region of " + std::to_string(len) +
                                     " bytes overlaps a region registered before");
    }
  }
  auto t = std::make_shared<BufferTable>();
  t->regions_ = regions_;
  t->regions_.push_back(Region{base, len, 0});
  std::sort(t->regions_.begin(), t->regions_.end(),
            [](const Region& a, const Region& b) { return a.base < b.base; });
  for (Region& r : t->regions_) {
    r.first_index = static_cast<unsigned>(t->iovecs_.size());
    for (uint64_t off = 0; off < r.len; off += kMaxIovecBytes) {
      const uint64_t n = std::min<uint64_t>(kMaxIovecBytes, r.len - off);
      t->iovecs_.push_back(iovec{reinterpret_cast<void*>(r.base + off), static_cast<size_t>(n)});
    }
    t->total_bytes_ += r.len;
    if (t->iovecs_.size() > kMaxRegisteredBuffers) {
      return Status::NotSupported("registering " + std::to_string(t->total_bytes_) +
                                  " bytes would pass the kernel's limit of " +
                                  std::to_string(kMaxRegisteredBuffers) + " registered buffers");
    }
  }
  return std::shared_ptr<const BufferTable>(std::move(t));
}

int BufferTable::Find(const void* p, size_t len) const noexcept {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = std::upper_bound(regions_.begin(), regions_.end(), a,
                             [](uintptr_t x, const Region& r) { return x < r.base; });
  if (it == regions_.begin()) return -1;
  --it;
  const uint64_t off = a - it->base;
  if (off >= it->len) return -1;
  const uint64_t k = off / kMaxIovecBytes;
  const uint64_t chunk_end = std::min<uint64_t>((k + 1) * kMaxIovecBytes, it->len);
  if (len > chunk_end - off) return -1;
  return static_cast<int>(it->first_index + k);
}

// ---------------------------------------------------------------------------------------------
// Ring: setup and teardown

Result<std::unique_ptr<Ring>> Ring::Create(const RingSetup& setup, std::string* sqpoll_note) {
  std::unique_ptr<Ring> ring(new Ring());
  auto try_init = [&](unsigned flags) -> int {
    io_uring_params p{};
    p.flags = flags;
    if ((flags & IORING_SETUP_SQPOLL) != 0) p.sq_thread_idle = kSqThreadIdleMs;
    if ((flags & IORING_SETUP_ATTACH_WQ) != 0) p.wq_fd = static_cast<__u32>(setup.attach_wq_fd);
    int r = io_uring_queue_init_params(setup.depth, &ring->ring_, &p);
    if (r == 0) {
      ring->depth_ = p.sq_entries;
      ring->features_ = p.features;
    }
    return r;
  };

  int err = 0;
  if (setup.sqpoll) {
    const unsigned base = IORING_SETUP_SQPOLL | IORING_SETUP_CLAMP;
    if (setup.attach_wq_fd >= 0) {
      err = try_init(base | IORING_SETUP_ATTACH_WQ);
      if (err == 0) return ring;
    }
    err = try_init(base);
    if (err == 0) return ring;
    if (sqpoll_note != nullptr) *sqpoll_note = "SQPOLL refused (" + ErrnoName(err) + "): no SQPOLL";
  }
  // Newest first; EINVAL means the kernel does not know a flag, so drop to the next set.
  static constexpr unsigned kPerThread[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CLAMP,
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CLAMP,
      IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CLAMP,
      IORING_SETUP_CLAMP,
  };
  static constexpr unsigned kShared[] = {IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CLAMP,
                                         IORING_SETUP_CLAMP};
  std::span<const unsigned> attempts = setup.single_issuer ? std::span<const unsigned>(kPerThread)
                                                           : std::span<const unsigned>(kShared);
  for (unsigned flags : attempts) {
    err = try_init(flags);
    if (err == 0) return ring;
    if (err != -EINVAL) break;
  }
  return UringError(err, "io_uring_setup (" + std::to_string(setup.depth) + " entries)",
                    ErrorKind::kUnavailable);
}

Ring::~Ring() {
  // Run() leaves nothing in flight (a broken ring may have; the kernel cancels those at exit).
  if (depth_ != 0) io_uring_queue_exit(&ring_);
}

Status Ring::AttachFile(int fd) {
  fd_ = fd;
  int r;
  int tries = 0;
  do {
    r = io_uring_register_files(&ring_, &fd, 1);
  } while (r == -EINTR && ++tries < 8);
  fixed_file_ = r == 0;
  if (!fixed_file_ && sqpoll() && (features_ & IORING_FEAT_SQPOLL_NONFIXED) == 0) {
    return UringError(r, "SQPOLL needs a registered file: io_uring_register_files",
                      ErrorKind::kUnavailable);
  }
  return Status::OK();
}

Status Ring::SetBuffers(std::shared_ptr<const BufferTable> table, uint64_t version) {
  buffers_version_ = version;
  if (table == table_) return Status::OK();
  if (table_ != nullptr) {
    // Nothing is in flight between batches, so the old table may go.
    int r = io_uring_unregister_buffers(&ring_);
    table_.reset();
    if (r < 0) return UringError(r, "io_uring_unregister_buffers");
  }
  if (table == nullptr || table->iovecs().empty()) return Status::OK();
  int r;
  int tries = 0;
  do {
    r = io_uring_register_buffers(&ring_, table->iovecs().data(),
                                  static_cast<unsigned>(table->iovecs().size()));
  } while (r == -EINTR && ++tries < 8);
  if (r < 0) {
    return UringError(
        r, "io_uring_register_buffers of " + std::to_string(table->total_bytes()) + " bytes");
  }
  table_ = std::move(table);
  return Status::OK();
}

// ---------------------------------------------------------------------------------------------
// Ring: the io_uring-cp loop

void Ring::Prep(io_uring_sqe* sqe, IoOp& op, size_t index, DeviceCounters& counters) {
  const int fd = fixed_file_ ? 0 : fd_;
  if (op.kind == OpKind::kFsync) {
    io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
  } else {
    const auto len = static_cast<uint32_t>(std::min<uint64_t>(op.remaining, kMaxOpBytes));
    op.in_flight = len;
    if (op.iov != nullptr) {  // a scattered read; never longer than kMaxOpBytes
      assert(op.kind == OpKind::kRead && op.remaining <= kMaxOpBytes);
      io_uring_prep_readv(sqe, fd, op.iov, op.iov_count, op.offset);
      if (fixed_file_) io_uring_sqe_set_flags(sqe, IOSQE_FIXED_FILE);
      io_uring_sqe_set_data64(sqe, index);
      return;
    }
    const int buf_index = table_ != nullptr ? table_->Find(op.addr, len) : -1;
    if (op.kind == OpKind::kRead) {
      if (buf_index >= 0) {
        io_uring_prep_read_fixed(sqe, fd, op.addr, len, op.offset, buf_index);
      } else {
        io_uring_prep_read(sqe, fd, op.addr, len, op.offset);
      }
    } else {
      if (buf_index >= 0) {
        io_uring_prep_write_fixed(sqe, fd, op.addr, len, op.offset, buf_index);
      } else {
        io_uring_prep_write(sqe, fd, op.addr, len, op.offset);
      }
    }
    if (buf_index >= 0) counters.fixed_ops.fetch_add(1, std::memory_order_relaxed);
  }
  if (fixed_file_) io_uring_sqe_set_flags(sqe, IOSQE_FIXED_FILE);
  io_uring_sqe_set_data64(sqe, index);
}

// liburing enters the kernel (one io_uring_enter) from io_uring_submit_and_wait whenever there
// is something to submit or to wait for, and from io_uring_submit with SQPOLL only to wake a
// sleeping SQ thread (or to flush an overflowed CQ, which cannot happen here: at most depth_
// operations are in flight and the CQ holds twice that). This function mirrors that decision to
// count enters: exact without SQPOLL; with SQPOLL the wakeup flag is read just before liburing
// reads it, so an SQ thread falling asleep in between can make the count one short.
int Ring::Enter(unsigned wait_nr, DeviceCounters& counters) {
  const unsigned pending = io_uring_sq_ready(&ring_);
  if (!sqpoll()) {
    if (pending == 0 && wait_nr == 0) return 0;
    (pending > 0 ? counters.submissions : counters.waits).fetch_add(1, std::memory_order_relaxed);
    return io_uring_submit_and_wait(&ring_, wait_nr);
  }
  int ret = 0;
  if (pending > 0) {
    // No fence of our own: liburing fences before its read; ours only counts.
    const bool enters = (IO_URING_READ_ONCE(*ring_.sq.kflags) &
                         (IORING_SQ_NEED_WAKEUP | IORING_SQ_CQ_OVERFLOW)) != 0;
    ret = io_uring_submit(&ring_);
    if (enters) counters.submissions.fetch_add(1, std::memory_order_relaxed);
    if (ret < 0) return ret;
  }
  if (wait_nr == 0) return ret;
  // The SQ thread completes without us; poll briefly before sleeping in the kernel.
  for (unsigned i = 0; i < kSqpollSpins && io_uring_cq_ready(&ring_) < wait_nr; ++i) CpuRelax();
  if (io_uring_cq_ready(&ring_) > 0) return ret;
  counters.waits.fetch_add(1, std::memory_order_relaxed);
  const int r = io_uring_submit_and_wait(&ring_, wait_nr);
  return r < 0 ? r : ret;
}

void Ring::Complete(IoOp& op, size_t index, int res, const std::string& path,
                    DeviceCounters& counters) {
  if (res < 0) {
    if (res == -EAGAIN || res == -EINTR) {
      counters.retries.fetch_add(1, std::memory_order_relaxed);
      if (++op.stalls <= kMaxStalls) {
        retry_.push_back(index);
        return;
      }
    }
    op.done = true;
    op.status = UringError(res, OpName(op, path));
    return;
  }
  op.stalls = 0;
  if (op.kind == OpKind::kFsync) {
    op.done = true;
    op.status = Status::OK();
    return;
  }
  const auto got = static_cast<uint32_t>(res);
  if (got > op.in_flight) {
    op.done = true;
    op.status = Status::IOError(OpName(op, path) + ": the kernel reported " + std::to_string(got) +
                                " bytes for a " + std::to_string(op.in_flight) + "-byte transfer");
    return;
  }
  if (got == 0) {
    op.done = true;
    op.status = Status::IOError(OpName(op, path) +
                                (op.kind == OpKind::kRead ? ": short read: end of file at byte "
                                                          : ": short write: no progress at byte ") +
                                std::to_string(op.offset) + " with " +
                                std::to_string(op.remaining) + " bytes to go");
    return;
  }
  op.offset += got;
  op.remaining -= got;
  if (op.iov == nullptr) {
    op.addr += got;
  } else {
    size_t n = op.iov_count;
    SkipIovecBytes(&op.iov, &n, got);
    op.iov_count = static_cast<uint32_t>(n);
  }
  if (op.remaining == 0) {
    op.done = true;
    op.status = Status::OK();
    return;
  }
  // A short transfer is resubmitted for the rest (a retry); a request longer than kMaxOpBytes
  // simply continues with its next piece.
  if (got < op.in_flight) counters.retries.fetch_add(1, std::memory_order_relaxed);
  retry_.push_back(index);
}

unsigned Ring::Reap(std::span<IoOp> ops, const std::string& path, DeviceCounters& counters,
                    const RequestCallback* done) {
  unsigned head;
  unsigned seen = 0;
  unsigned ours = 0;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    ++seen;
    const uint64_t index = io_uring_cqe_get_data64(cqe);
    assert(index < ops.size() && "completion for an operation this batch never queued");
    if (index >= ops.size()) continue;
    ++ours;
    Complete(ops[index], index, cqe->res, path, counters);
    if (done != nullptr && ops[index].done) (*done)(index);
  }
  io_uring_cq_advance(&ring_, seen);
  return ours;
}

void Ring::Run(std::span<IoOp> ops, const std::string& path, DeviceCounters& counters,
               const RequestCallback* done) {
  retry_.clear();
  size_t next = 0;       // first op never queued
  size_t in_flight = 0;  // queued ops whose completion has not been reaped
  unsigned enter_stalls = 0;
  Status fatal;
  while (!broken_) {
    // Queue up to the depth: resubmissions first, then new operations.
    while (in_flight < depth_ && (!retry_.empty() || next < ops.size())) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) {
        // The SQ is full: hand it to the kernel and try again.
        const int r = Enter(0, counters);
        if (r < 0 && !IsTransient(r)) {
          fatal = UringError(r, "io_uring_enter for " + path);
          broken_ = true;
          break;
        }
        sqe = io_uring_get_sqe(&ring_);
        if (sqe == nullptr) break;  // SQPOLL thread still busy: reap first
      }
      size_t i;
      if (!retry_.empty()) {
        i = retry_.back();
        retry_.pop_back();
      } else {
        i = next++;
      }
      Prep(sqe, ops[i], i, counters);
      ++in_flight;
    }
    if (broken_ || in_flight == 0) break;

    // Submit and wait: for one completion while more remain to queue (to keep the ring full),
    // for all of them once everything is queued; not at all if some are already there. With
    // `done`, for a quarter of what is in flight: the caller works on the first completions
    // while the rest are still being read, in a few enters rather than one per completion.
    const bool more = !retry_.empty() || next < ops.size();
    const auto all = static_cast<unsigned>(in_flight);
    const unsigned wait_nr = io_uring_cq_ready(&ring_) > 0 ? 0
                             : more                        ? 1
                             : done != nullptr             ? std::max(1u, all / 4)
                                                           : all;
    const int r = Enter(wait_nr, counters);
    if (r < 0) {
      if (!IsTransient(r) || ++enter_stalls > kMaxEnterStalls) {
        fatal = UringError(r, "io_uring_enter for " + path);
        broken_ = true;
      } else if (enter_stalls > 8) {
        std::this_thread::yield();
      }
    } else {
      enter_stalls = 0;
    }
    in_flight -= Reap(ops, path, counters, done);
  }
  if (fatal.ok() && (in_flight != 0 || !retry_.empty() || next < ops.size())) {
    fatal = Status::IOError("io_uring ring for " + path + " stopped with operations pending");
    broken_ = true;
  }
  for (IoOp& op : ops) {
    if (!op.done) {
      op.done = true;
      op.status = fatal.ok() ? Status::IOError(OpName(op, path) + ": not run") : fatal;
      if (done != nullptr) (*done)(static_cast<size_t>(&op - ops.data()));
    }
  }
}

}  // namespace vde::blockdev::uring
