#include "blockdev/io_uring_block_device.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "blockdev/io_uring_ring.h"

namespace vde::blockdev {

namespace uring {

// The rings of one device and what they share: the registered-buffer table and the notes.
// Held by shared_ptr: the device owns it, and a thread that exits briefly holds it (through the
// weak_ptr in its ThreadRingCache) to give its ring back, even while the device is destroyed.
class RingPool {
 public:
  RingPool(std::string path, const DeviceOptions& opts, int fd, bool sqpoll)
      : id_(next_id_.fetch_add(1, std::memory_order_relaxed)),
        path_(std::move(path)),
        fd_(fd),
        depth_(opts.queue_depth),
        sqpoll_(sqpoll),
        free_slots_(opts.max_rings) {}

  // Unique for the life of the process, so a thread's cache never mistakes a new device for a
  // destroyed one that lived at the same address.
  uint64_t id() const noexcept { return id_; }

  void InstallSharedRing(std::unique_ptr<Ring> ring) {
    std::lock_guard lk(shared_mu_);
    shared_fd_.store(ring->ring_fd(), std::memory_order_relaxed);
    shared_ = std::move(ring);
  }

  // --- per-thread rings

  bool HasFreeSlot() const noexcept { return free_slots_.load(std::memory_order_relaxed) > 0; }

  // Sets up a ring for the calling thread, which alone may use it. Null when every slot is
  // taken or per-thread rings cannot be set up (the thread then uses the shared ring).
  Ring* AcquireThreadRing() {
    {
      std::lock_guard lk(mu_);
      if (shut_down_ || per_thread_failed_ || free_slots_.load(std::memory_order_relaxed) == 0) {
        return nullptr;
      }
      free_slots_.fetch_sub(1, std::memory_order_relaxed);
    }
    Result<std::unique_ptr<Ring>> r = NewRing(/*per_thread=*/true);
    std::lock_guard lk(mu_);
    if (!r.has_value()) {
      per_thread_failed_ = true;
      free_slots_.fetch_add(1, std::memory_order_relaxed);
      AddNote("per-thread io_uring setup failed (" + r.error().ToString() +
              "): all threads share one ring");
      return nullptr;
    }
    Ring* ring = r->get();
    owned_.push_back(std::move(*r));
    created_.fetch_add(1, std::memory_order_relaxed);
    return ring;
  }

  // Tears down `ring` (a per-thread ring, from its owner thread) and frees its slot.
  void ReleaseThreadRing(Ring* ring) {
    std::unique_ptr<Ring> doomed;
    std::lock_guard lk(mu_);
    if (shut_down_) return;  // the device is gone and took every ring with it
    auto it = std::find_if(owned_.begin(), owned_.end(),
                           [ring](const std::unique_ptr<Ring>& r) { return r.get() == ring; });
    if (it == owned_.end()) return;
    doomed = std::move(*it);
    owned_.erase(it);
    free_slots_.fetch_add(1, std::memory_order_relaxed);
  }

  // --- the shared ring: lock shared_mu() around SharedRing() and its use.

  std::mutex& shared_mu() noexcept { return shared_mu_; }

  // The shared ring, set up again if it broke.
  Result<Ring*> SharedRing() {
    if (shared_ != nullptr && !shared_->broken()) return shared_.get();
    shared_.reset();
    Result<std::unique_ptr<Ring>> r = NewRing(/*per_thread=*/false);
    if (!r.has_value()) return r.error();
    shared_ = std::move(*r);
    shared_fd_.store(shared_->ring_fd(), std::memory_order_relaxed);
    return shared_.get();
  }

  void CountSharedBatch() noexcept { shared_batches_.fetch_add(1, std::memory_order_relaxed); }

  // --- registered buffers

  // Adds `region` to the table and registers it on the shared ring at once, so that a refusal
  // shows (as a note) before any I/O; other rings catch up in SyncBuffers().
  Status AddRegion(std::span<std::byte> region) {
    {
      std::lock_guard lk(buf_mu_);
      if (buffers_disabled_) return Status::OK();
      static const BufferTable kEmpty;
      Result<std::shared_ptr<const BufferTable>> next =
          (table_ != nullptr ? *table_ : kEmpty).With(region);
      if (!next.has_value()) {
        if (next.error().IsInvalidArgument()) return next.error().WithContext(path_);
        DisableBuffersLocked(next.error());
        return Status::OK();
      }
      if (*next == nullptr) return Status::OK();  // inside a region registered before
      table_ = std::move(*next);
      version_.fetch_add(1, std::memory_order_release);
    }
    std::lock_guard lk(shared_mu_);
    Result<Ring*> ring = SharedRing();
    if (ring.has_value()) SyncBuffers(**ring);
    return Status::OK();
  }

  // Brings `ring`'s registered buffers up to date. Called by whoever may use the ring, before a
  // batch, when nothing is in flight on it. A refusal gives up registration for the device.
  void SyncBuffers(Ring& ring) {
    if (ring.buffers_version() == version_.load(std::memory_order_acquire)) return;
    std::shared_ptr<const BufferTable> table;
    uint64_t version;
    {
      std::lock_guard lk(buf_mu_);
      table = table_;
      version = version_.load(std::memory_order_relaxed);
    }
    Status s = ring.SetBuffers(std::move(table), version);
    if (!s.ok()) {
      std::lock_guard lk(buf_mu_);
      DisableBuffersLocked(s);
    }
  }

  bool buffers_registered() const {
    std::lock_guard lk(buf_mu_);
    return !buffers_disabled_ && table_ != nullptr;
  }

  // --- notes, stats, shutdown

  void AddNote(std::string note) {
    std::lock_guard lk(notes_mu_);
    if (std::find(notes_.begin(), notes_.end(), note) == notes_.end()) {
      notes_.push_back(std::move(note));
    }
  }
  std::vector<std::string> notes() const {
    std::lock_guard lk(notes_mu_);
    return notes_;
  }

  IoUringBlockDevice::RingStats stats() const {
    IoUringBlockDevice::RingStats s;
    {
      std::lock_guard lk(mu_);
      s.thread_rings_live = static_cast<unsigned>(owned_.size());
    }
    s.thread_rings_created = created_.load(std::memory_order_relaxed);
    s.shared_ring_batches = shared_batches_.load(std::memory_order_relaxed);
    return s;
  }

  // Tears down every ring. After this, threads that exit find nothing to give back.
  void Shutdown() {
    std::vector<std::unique_ptr<Ring>> doomed;
    {
      std::lock_guard lk(mu_);
      shut_down_ = true;
      doomed.swap(owned_);
      free_slots_.store(0, std::memory_order_relaxed);
    }
    doomed.clear();
    std::lock_guard lk(shared_mu_);
    shared_.reset();
  }

 private:
  Result<std::unique_ptr<Ring>> NewRing(bool per_thread) {
    RingSetup setup;
    setup.depth = depth_;
    setup.sqpoll = sqpoll_;
    setup.attach_wq_fd = per_thread && sqpoll_ ? shared_fd_.load(std::memory_order_relaxed) : -1;
    setup.single_issuer = per_thread;
    std::string sqpoll_note;
    Result<std::unique_ptr<Ring>> r = Ring::Create(setup, &sqpoll_note);
    if (!sqpoll_note.empty()) AddNote(sqpoll_note + " on a later ring of " + path_);
    if (!r.has_value()) return r.error().WithContext(path_);
    VDE_RETURN_IF_ERROR((*r)->AttachFile(fd_).WithContext(path_));
    return r;
  }

  void DisableBuffersLocked(const Status& cause) {
    if (buffers_disabled_) return;
    buffers_disabled_ = true;
    const uint64_t bytes = table_ != nullptr ? table_->total_bytes() : 0;
    table_.reset();
    version_.fetch_add(1, std::memory_order_release);
    if (cause.err() == ENOMEM) {
      AddNote("registering " + std::to_string(bytes >> 20) +
              " MiB of I/O buffers failed: ENOMEM (the locked-memory limit, ulimit -l): "
              "unregistered I/O");
    } else {
      AddNote("registering I/O buffers failed (" + cause.ToString() + "): unregistered I/O");
    }
  }

  static inline std::atomic<uint64_t> next_id_{1};

  const uint64_t id_;
  const std::string path_;
  const int fd_;
  const unsigned depth_;
  const bool sqpoll_;

  mutable std::mutex mu_;  // guards owned_, shut_down_, per_thread_failed_; writes free_slots_
  std::vector<std::unique_ptr<Ring>> owned_;
  bool shut_down_ = false;
  bool per_thread_failed_ = false;
  std::atomic<unsigned> free_slots_;
  std::atomic<uint64_t> created_{0};

  std::mutex shared_mu_;  // guards shared_ and every use of it
  std::unique_ptr<Ring> shared_;
  std::atomic<int> shared_fd_{-1};  // for IORING_SETUP_ATTACH_WQ
  std::atomic<uint64_t> shared_batches_{0};

  mutable std::mutex buf_mu_;  // guards table_, buffers_disabled_; writes version_
  std::shared_ptr<const BufferTable> table_;
  bool buffers_disabled_ = false;
  std::atomic<uint64_t> version_{0};

  mutable std::mutex notes_mu_;
  std::vector<std::string> notes_;
};

namespace {

// The rings this thread holds, one entry per device it has used. The destructor runs when the
// thread exits and gives each ring back (a SINGLE_ISSUER ring is useless to any other thread).
class ThreadRingCache {
 public:
  struct Entry {
    uint64_t device_id;
    std::weak_ptr<RingPool> pool;
    Ring* ring;  // null: this thread uses the shared ring
  };

  ThreadRingCache() = default;
  ThreadRingCache(const ThreadRingCache&) = delete;
  ThreadRingCache& operator=(const ThreadRingCache&) = delete;
  ~ThreadRingCache() {
    for (Entry& e : entries_) {
      if (e.ring == nullptr) continue;
      if (std::shared_ptr<RingPool> pool = e.pool.lock()) pool->ReleaseThreadRing(e.ring);
    }
  }

  // The entry for `pool`'s device, made on first use. Valid until the next Get().
  Entry& Get(const std::shared_ptr<RingPool>& pool) {
    for (Entry& e : entries_) {
      if (e.device_id == pool->id()) return e;
    }
    // Devices that are gone took their rings with them: forget them.
    std::erase_if(entries_, [](const Entry& e) { return e.pool.expired(); });
    entries_.push_back(Entry{pool->id(), pool, nullptr});
    return entries_.back();
  }

 private:
  std::vector<Entry> entries_;
};

thread_local ThreadRingCache t_rings;

// The device whose batch this thread is running (WithRing), if any: a call into it from a
// completion callback (ReadBatchNotify's `done`) would reuse the ring's scratch state mid-batch,
// or wait on the shared ring's mutex that this thread holds.
thread_local const void* t_running = nullptr;

// True when two of `ops` may write the same block: not strictly ascending, or overlapping.
bool MayOverlap(std::span<const IoOp> ops) {
  bool ascending = true;
  for (size_t i = 1; i < ops.size() && ascending; ++i) {
    ascending = ops[i].block >= ops[i - 1].block + ops[i - 1].count;
  }
  if (ascending) return false;
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  spans.reserve(ops.size());
  for (const IoOp& op : ops) spans.emplace_back(op.block, op.block + op.count);
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) {
    if (spans[i].first < spans[i - 1].second) return true;
  }
  return false;
}

// Runs writes so that overlapping ones land in request order: in waves, each as long as
// possible without two writes to one block.
void RunInRequestOrder(Ring& ring, std::span<IoOp> ops, const std::string& path,
                       DeviceCounters& counters) {
  if (!MayOverlap(ops)) {
    ring.Run(ops, path, counters);
    return;
  }
  std::map<uint64_t, uint64_t> wave;  // first block -> end block of each write in the wave
  size_t begin = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    const uint64_t s = ops[i].block;
    const uint64_t e = s + ops[i].count;
    auto it = wave.lower_bound(s);
    bool overlaps = it != wave.end() && it->first < e;
    if (!overlaps && it != wave.begin()) overlaps = std::prev(it)->second > s;
    if (overlaps) {
      ring.Run(ops.subspan(begin, i - begin), path, counters);
      wave.clear();
      begin = i;
    }
    wave.emplace(s, e);
  }
  ring.Run(ops.subspan(begin), path, counters);
}

}  // namespace
}  // namespace uring

// ---------------------------------------------------------------------------------------------

IoUringBlockDevice::IoUringBlockDevice(const std::string& path, const DeviceOptions& opts,
                                       DeviceFile file, std::shared_ptr<uring::RingPool> pool,
                                       bool sqpoll, unsigned depth)
    : BlockDevice(path, opts.block_size, file.block_count, file.alignment, file.read_only),
      fd_(std::move(file.fd)),
      direct_(file.direct),
      is_block_device_(file.is_block_device),
      sqpoll_(sqpoll),
      register_buffers_(opts.register_buffers),
      max_rings_(opts.max_rings),
      depth_(depth),
      pool_(std::move(pool)) {}

IoUringBlockDevice::~IoUringBlockDevice() {
  // No call is in progress, so no ring has anything in flight.
  pool_->Shutdown();
}

Result<std::unique_ptr<IoUringBlockDevice>> IoUringBlockDevice::Open(const std::string& path,
                                                                     const DeviceOptions& opts) {
  if (!IsValidBlockSize(opts.block_size)) {
    return Status::InvalidArgument(path + ": block size " + std::to_string(opts.block_size) +
                                   " is not a power of two between 512 and 65536");
  }
  if (opts.queue_depth == 0) {
    return Status::InvalidArgument(path + ": io_uring queue depth must be at least 1");
  }
  Status probe = ProbeIoUring();
  if (!probe.ok()) {
    return Status::NotSupported("io_uring unusable for " + path + ": " +
                                std::string(probe.message()));
  }
  // The shared ring first: should io_uring fail here, the file has not been touched (so a
  // caller may fall back to another backend even with OpenMode::kCreate).
  uring::RingSetup setup;
  setup.depth = opts.queue_depth;
  setup.sqpoll = opts.sqpoll;
  std::string sqpoll_note;
  Result<std::unique_ptr<uring::Ring>> shared = uring::Ring::Create(setup, &sqpoll_note);
  if (!shared.has_value()) return shared.error().WithContext(path);

  VDE_ASSIGN_OR_RETURN(DeviceFile file, OpenDeviceFile(path, opts, opts.direct_io));
  VDE_RETURN_IF_ERROR((*shared)->AttachFile(file.fd.get()).WithContext(path));

  const bool sqpoll = (*shared)->sqpoll();
  const unsigned depth = (*shared)->depth();
  auto pool = std::make_shared<uring::RingPool>(path, opts, file.fd.get(), sqpoll);
  for (std::string& n : file.notes) pool->AddNote(std::move(n));
  if (!sqpoll_note.empty()) pool->AddNote(std::move(sqpoll_note));
  pool->InstallSharedRing(std::move(*shared));
  return std::unique_ptr<IoUringBlockDevice>(
      new IoUringBlockDevice(path, opts, std::move(file), std::move(pool), sqpoll, depth));
}

std::vector<std::string> IoUringBlockDevice::notes() const {
  return pool_->notes();
}

bool IoUringBlockDevice::buffers_registered() const {
  return register_buffers_ && pool_->buffers_registered();
}

IoUringBlockDevice::RingStats IoUringBlockDevice::ring_stats() const {
  return pool_->stats();
}

std::string IoUringBlockDevice::Describe() const {
  std::string d = "io_uring (";
  d += direct_ ? "O_DIRECT" : "buffered";
  if (buffers_registered()) d += ", registered buffers";
  if (sqpoll_) d += ", SQPOLL";
  d += max_rings_ > 0 ? ", per-thread rings " + std::to_string(max_rings_) : ", shared ring only";
  d += ", depth " + std::to_string(depth_);
  if (read_only()) d += ", read-only";
  d += ")";
  return d;
}

template <typename Fn>
Status IoUringBlockDevice::WithRing(Fn&& fn) {
  if (uring::t_running == this) {
    return Status::InvalidArgument(path() +
                                   ": called from a completion callback of this thread's own "
                                   "batch on the device (ReadBatchNotify's done must not call "
                                   "into the device)");
  }
  struct Running {
    const void* prev;
    explicit Running(const void* d) : prev(std::exchange(uring::t_running, d)) {}
    ~Running() { uring::t_running = prev; }
  } running(this);
  if (max_rings_ > 0) {
    uring::ThreadRingCache::Entry& e = uring::t_rings.Get(pool_);
    if (e.ring == nullptr && pool_->HasFreeSlot()) e.ring = pool_->AcquireThreadRing();
    if (e.ring != nullptr) {
      uring::Ring& ring = *e.ring;
      pool_->SyncBuffers(ring);
      fn(ring);
      if (ring.broken()) {
        // The kernel refused io_uring_enter: set up a new ring on the next call.
        pool_->ReleaseThreadRing(e.ring);
        e.ring = nullptr;
      }
      return Status::OK();
    }
  }
  std::lock_guard lk(pool_->shared_mu());
  VDE_ASSIGN_OR_RETURN(uring::Ring * ring, pool_->SharedRing());
  pool_->SyncBuffers(*ring);
  pool_->CountSharedBatch();
  fn(*ring);  // a ring that broke is set up again by the next SharedRing()
  return Status::OK();
}

Status IoUringBlockDevice::RunWrites(std::span<WriteRequest> reqs) {
  counters_.batches.fetch_add(1, std::memory_order_relaxed);
  size_t valid = 0;
  for (WriteRequest& r : reqs) {
    r.status = CheckRequest(r.block, r.count, r.buf, true);
    if (r.status.ok()) ++valid;
  }
  if (valid > 0) {
    Status s = WithRing([&](uring::Ring& ring) {
      std::vector<uring::IoOp>& ops = ring.scratch();
      ops.clear();
      ops.reserve(valid);
      for (size_t i = 0; i < reqs.size(); ++i) {
        const WriteRequest& r = reqs[i];
        // The kernel only reads a write's buffer; IoOp is shared by both directions.
        if (r.status.ok())
          ops.push_back(PlainOp(true, r.block, r.count, i, const_cast<std::byte*>(r.buf)));
      }
      uring::RunInRequestOrder(ring, ops, path(), counters_);
      for (const uring::IoOp& op : ops) {
        reqs[op.req].status = op.status;
        if (!op.status.ok()) continue;
        counters_.writes.fetch_add(1, std::memory_order_relaxed);
        counters_.blocks_written.fetch_add(op.count, std::memory_order_relaxed);
      }
      ops.clear();
    });
    if (!s.ok()) {
      for (WriteRequest& r : reqs) {
        if (r.status.ok()) r.status = s;
      }
    }
  }
  for (const WriteRequest& r : reqs) {
    if (!r.status.ok()) return r.status;
  }
  return Status::OK();
}

uring::IoOp IoUringBlockDevice::PlainOp(bool is_write, uint64_t block, uint32_t count, size_t req,
                                        std::byte* buf) const {
  uring::IoOp op;
  op.kind = is_write ? uring::OpKind::kWrite : uring::OpKind::kRead;
  op.block = block;
  op.count = count;
  op.req = req;
  op.offset = block * block_size();
  op.addr = buf;
  op.remaining = uint64_t{count} * block_size();
  return op;
}

Status IoUringBlockDevice::ReadBatch(std::span<ReadRequest> reqs) {
  return RunReads(reqs, nullptr);
}

Status IoUringBlockDevice::ReadBatchNotify(std::span<ReadRequest> reqs, RequestCallback done) {
  return RunReads(reqs, &done);
}

Status IoUringBlockDevice::RunReads(std::span<ReadRequest> reqs, const RequestCallback* done) {
  counters_.batches.fetch_add(1, std::memory_order_relaxed);
  auto report = [&](size_t i) {
    if (done != nullptr) (*done)(i);
  };
  // The requests that pass their checks, by block: adjacent ones are merged into one READV.
  std::vector<size_t> order;
  order.reserve(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    ReadRequest& r = reqs[i];
    r.status = CheckRequest(r.block, r.count, r.buf, false);
    if (r.status.ok()) {
      order.push_back(i);
    } else {
      report(i);
    }
  }
  if (!order.empty()) {
    const uint64_t bs = block_size();
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return reqs[a].block < reqs[b].block; });
    auto finish = [&](size_t i, const Status& st) {
      reqs[i].status = st;
      if (st.ok()) {
        counters_.reads.fetch_add(1, std::memory_order_relaxed);
        counters_.blocks_read.fetch_add(reqs[i].count, std::memory_order_relaxed);
      }
      report(i);
    };
    std::vector<size_t> redo;  // requests of merged reads that failed: run again one by one
    Status s = WithRing([&](uring::Ring& ring) {
      std::vector<uring::IoOp>& ops = ring.scratch();
      std::vector<iovec>& iov = ring.scratch_iovecs();
      ops.clear();
      iov.clear();
      iov.reserve(order.size());  // never reallocated below: ops point into it
      // A run of requests for adjacent blocks goes out as one read, landing in each request's
      // buffer (READV). Where the buffers lie in registered memory in a few long stretches, the
      // run is cut where they break step, and each piece is one plain read into one span
      // (READ_FIXED): the kernel then pins no pages per read, and the block layer still merges
      // the pieces, adjacent on disk and submitted together. Many short pieces would cost more
      // per operation than the pinning saves: those runs stay one READV.
      auto add_op = [&](size_t k, size_t e, bool scattered) {
        const ReadRequest& first = reqs[order[k]];
        const ReadRequest& last = reqs[order[e - 1]];
        uring::IoOp op =
            PlainOp(false, first.block,
                    static_cast<uint32_t>(last.block + last.count - first.block), k, first.buf);
        op.req_count = static_cast<uint32_t>(e - k);
        if (scattered) {
          op.addr = nullptr;
          op.iov = iov.data() + iov.size();
          op.iov_count = static_cast<uint32_t>(e - k);
          for (size_t j = k; j < e; ++j) {
            const ReadRequest& r = reqs[order[j]];
            iov.push_back(iovec{r.buf, static_cast<size_t>(r.count) * bs});
          }
        }
        ops.push_back(op);
      };
      for (size_t k = 0; k < order.size();) {
        const ReadRequest& first = reqs[order[k]];
        uint64_t end = first.block + first.count;
        uint64_t bytes = uint64_t{first.count} * bs;
        size_t e = k + 1;
        bool registered = ring.Registered(first.buf, bytes);
        while (e < order.size() && e - k < uring::kMaxMergedIovecs) {
          const ReadRequest& r = reqs[order[e]];
          const uint64_t len = uint64_t{r.count} * bs;
          if (r.block != end || bytes + len > uring::kMaxMergedBytes) break;
          registered = registered && ring.Registered(r.buf, len);
          end += r.count;
          bytes += len;
          ++e;
        }
        // Where the buffers break step in memory (i is the first request of a new stretch).
        auto breaks = [&](size_t i) {
          const ReadRequest& prev = reqs[order[i - 1]];
          return reqs[order[i]].buf != prev.buf + uint64_t{prev.count} * bs;
        };
        size_t pieces = 1;
        for (size_t i = k + 1; registered && i < e; ++i) pieces += breaks(i) ? 1 : 0;
        if (!registered || (pieces > 1 && e - k < uring::kMinRequestsPerFixedPiece * pieces)) {
          add_op(k, e, e - k > 1);
        } else {
          for (size_t a = k; a < e;) {
            size_t b = a + 1;
            while (b < e && !breaks(b)) ++b;
            add_op(a, b, false);
            a = b;
          }
        }
        k = e;
      }
      auto op_done = [&](size_t o) {
        const uring::IoOp& op = ops[o];
        for (size_t j = op.req; j < op.req + op.req_count; ++j) {
          if (op.status.ok() || op.req_count == 1) {
            finish(order[j], op.status);
          } else {
            redo.push_back(order[j]);
          }
        }
      };
      if (done != nullptr) {  // report each read as it completes
        const RequestCallback cb(op_done);
        ring.Run(ops, path(), counters_, &cb);
      } else {  // wait for the whole batch in as few enters as possible
        ring.Run(ops, path(), counters_);
        for (size_t o = 0; o < ops.size(); ++o) op_done(o);
      }
      ops.clear();
      if (redo.empty() || ring.broken()) return;
      // Redo failed merged reads request by request, so each gets its own status.
      for (size_t i : redo)
        ops.push_back(PlainOp(false, reqs[i].block, reqs[i].count, i, reqs[i].buf));
      redo.clear();
      ring.Run(ops, path(), counters_);
      for (const uring::IoOp& op : ops) finish(op.req, op.status);
      ops.clear();
    });
    // The ring broke before the redo: those requests fail with the merged read's error.
    for (size_t i : redo) {
      finish(i, Status::IOError(path() + ": read of block " + std::to_string(reqs[i].block) +
                                " not retried: the io_uring ring broke"));
    }
    if (!s.ok()) {  // no ring could be had: nothing ran
      for (size_t i : order) finish(i, s);
    }
  }
  for (const ReadRequest& r : reqs) {
    if (!r.status.ok()) return r.status;
  }
  return Status::OK();
}

Status IoUringBlockDevice::WriteBatch(std::span<WriteRequest> reqs) {
  return RunWrites(reqs);
}

Status IoUringBlockDevice::Flush() {
  VDE_RETURN_IF_ERROR(CheckWritable("flush"));
  {
    std::lock_guard lk(flush_mu_);
    if (!flush_error_.ok()) {
      return flush_error_.WithContext("an earlier flush failed, so writes before it may be lost");
    }
  }
  counters_.flushes.fetch_add(1, std::memory_order_relaxed);
  Status result;
  Status s = WithRing([&](uring::Ring& ring) {
    std::vector<uring::IoOp>& ops = ring.scratch();
    ops.assign(1, uring::IoOp{});
    ops[0].kind = uring::OpKind::kFsync;
    ring.Run(ops, path(), counters_);
    result = ops[0].status;
    ops.clear();
  });
  if (!s.ok()) return s;  // no ring to flush with: nothing was tried, nothing was lost
  if (!result.ok()) {
    std::lock_guard lk(flush_mu_);
    if (flush_error_.ok()) flush_error_ = result;
  }
  return result;
}

Status IoUringBlockDevice::Grow(uint64_t new_block_count) {
  VDE_RETURN_IF_ERROR(CheckWritable("grow"));
  std::lock_guard lk(grow_mu_);
  const uint64_t old = block_count();
  if (new_block_count <= old) return Status::OK();
  const uint64_t bs = block_size();
  if (new_block_count > static_cast<uint64_t>(INT64_MAX) / bs) {
    return Status::InvalidArgument(path() + ": cannot grow to " + std::to_string(new_block_count) +
                                   " blocks");
  }
  VDE_RETURN_IF_ERROR(
      GrowFile(fd_.get(), path(), is_block_device_, old * bs, new_block_count * bs));
  set_block_count(new_block_count);
  return Status::OK();
}

Status IoUringBlockDevice::RegisterMemory(std::span<std::byte> region) {
  if (region.empty()) {
    return Status::InvalidArgument(path() + ": RegisterMemory of an empty region");
  }
  if (reinterpret_cast<uintptr_t>(region.data()) % alignment() != 0) {
    return Status::InvalidArgument(path() + ": RegisterMemory region is not aligned to " +
                                   std::to_string(alignment()) + " bytes");
  }
  if (!register_buffers_) return Status::OK();
  return pool_->AddRegion(region);
}

}  // namespace vde::blockdev
