// BlockDevice: the interface through which every vde layer reads and writes fixed-size blocks.
//
// Implementations: IoUringBlockDevice (io_uring, O_DIRECT), FileBlockDevice (pread/pwrite),
// MemoryBlockDevice (tests). Open one with OpenBlockDevice() in open_block_device.h, which picks
// the best backend the kernel offers and says why.
//
// Thread safety: every method may be called from any number of threads at once, except the
// destructor, which requires that no call is in progress. Calls are synchronous: when one
// returns, every transfer it started has completed and the caller owns its buffers again.
//
// Errors (Status codes) shared by all implementations:
//   OutOfRange       a block past the end: "<path>: block B count C past end (N blocks)"
//   InvalidArgument  a buffer that is misaligned or the wrong size for the device
//   ReadOnly         a write, flush or grow on a device opened read-only
//   IOError          a failed or short transfer that could not be completed; names path + block
//   NoSpace          grow could not extend the file
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include "blockdev/status.h"

namespace vde::blockdev {

inline constexpr uint32_t kMinBlockSize = 512;
inline constexpr uint32_t kMaxBlockSize = 65536;
inline constexpr uint32_t kDefaultBlockSize = 4096;

// True when `bs` is a power of two between kMinBlockSize and kMaxBlockSize.
constexpr bool IsValidBlockSize(uint32_t bs) {
  return bs >= kMinBlockSize && bs <= kMaxBlockSize && (bs & (bs - 1)) == 0;
}

// One request of a batch: `count` contiguous blocks starting at `block`, into or from `buf`
// (which holds count * block_size() bytes, aligned to alignment()). `status` is filled in by the
// device when the batch completes.
struct ReadRequest {
  uint64_t block = 0;
  uint32_t count = 1;
  std::byte* buf = nullptr;
  Status status;
};

struct WriteRequest {
  uint64_t block = 0;
  uint32_t count = 1;
  const std::byte* buf = nullptr;
  Status status;
};

// A non-owning reference to a callable taking a request index, for ReadBatchNotify: no
// allocation, valid only while the callable it was made from lives.
class RequestCallback {
 public:
  template <typename F>
  requires std::is_invocable_v<F&, size_t> &&
      (!std::is_same_v<std::remove_cvref_t<F>, RequestCallback>)
          RequestCallback(F& f) noexcept  // NOLINT: implicit, like std::function_ref
      : obj_(static_cast<void*>(&f)), call_([](void* o, size_t i) { (*static_cast<F*>(o))(i); }) {}
  void operator()(size_t index) const { call_(obj_, index); }

 private:
  void* obj_;
  void (*call_)(void*, size_t);
};

// Counters for benchmarks, stats and tests. Monotonic; read with relaxed loads.
struct DeviceCounters {
  std::atomic<uint64_t> reads{0};   // read requests completed (a batch of n counts n)
  std::atomic<uint64_t> writes{0};  // write requests completed
  std::atomic<uint64_t> blocks_read{0};
  std::atomic<uint64_t> blocks_written{0};
  std::atomic<uint64_t> batches{0};  // ReadBatch/WriteBatch calls (single Read/Write count 1)
  // io_uring_enter calls that handed the kernel new operations, or syscalls for FileBlockDevice
  std::atomic<uint64_t> submissions{0};
  std::atomic<uint64_t> waits{0};  // io_uring_enter calls that only waited for completions
  std::atomic<uint64_t> flushes{0};
  std::atomic<uint64_t> fixed_ops{0};  // io_uring READ_FIXED / WRITE_FIXED operations
  std::atomic<uint64_t> retries{0};    // resubmissions after EAGAIN/EINTR or a short transfer
};

// A plain copy of DeviceCounters.
struct DeviceStats {
  uint64_t reads = 0, writes = 0, blocks_read = 0, blocks_written = 0, batches = 0, submissions = 0,
           waits = 0, flushes = 0, fixed_ops = 0, retries = 0;
};

class BlockDevice {
 public:
  virtual ~BlockDevice() = default;
  BlockDevice(const BlockDevice&) = delete;
  BlockDevice& operator=(const BlockDevice&) = delete;

  // The path the device was opened from ("<memory>" for MemoryBlockDevice).
  const std::string& path() const noexcept { return path_; }
  uint32_t block_size() const noexcept { return block_size_; }
  // Current number of blocks; grows with Grow(). Safe to read concurrently.
  uint64_t block_count() const noexcept { return block_count_.load(std::memory_order_acquire); }
  // Byte alignment every buffer (address) must have. 1 when the device has no requirement.
  size_t alignment() const noexcept { return alignment_; }
  bool read_only() const noexcept { return read_only_; }

  // A short description of the backend and its mode, e.g.
  // "io_uring (O_DIRECT, registered buffers, 4 per-thread rings, depth 128)".
  virtual std::string Describe() const = 0;

  // Reads `count` blocks starting at `block` into `buf`.
  // REQUIRES: buf is aligned to alignment() and holds count * block_size() bytes.
  virtual Status Read(uint64_t block, uint32_t count, std::span<std::byte> buf);
  // Writes `count` blocks starting at `block` from `buf`. Same requirements as Read.
  // Not durable until Flush() returns OK.
  virtual Status Write(uint64_t block, uint32_t count, std::span<const std::byte> buf);

  // Submits every request together and returns when all have completed. Each request's
  // `status` is set; the return value is OK when all succeeded, else the first failure in
  // request order. Requests are independent: one failing does not stop the others. Batches
  // larger than the device's queue depth are split. Reads of adjacent blocks may be merged into
  // one transfer (a failed merged transfer is redone request by request, so each request gets
  // its own status). An empty batch is OK.
  virtual Status ReadBatch(std::span<ReadRequest> reqs) = 0;
  // As ReadBatch, and calls done(i) once for every request i as soon as it has completed: its
  // status is set and, when OK, its buffer holds the blocks. Calls come from the calling
  // thread, in completion order, while later requests may still be in flight, and all before
  // this returns; so a caller can check (or use) each block while the rest are being read.
  // done must not call into this device (IoUringBlockDevice refuses such a call with
  // InvalidArgument: its ring is in use). The default runs ReadBatch and then calls done in
  // request order; IoUringBlockDevice and FileBlockDevice report as they go.
  virtual Status ReadBatchNotify(std::span<ReadRequest> reqs, RequestCallback done);
  virtual Status WriteBatch(std::span<WriteRequest> reqs) = 0;

  // Makes every write that completed before this call durable (fdatasync semantics). A failed
  // flush means the data may be lost: callers must not retry it as if it had succeeded.
  virtual Status Flush() = 0;

  // Extends the device to `new_block_count` blocks (fallocate where the file system offers it,
  // else ftruncate). The new blocks read as zeros. A count not larger than block_count() does
  // nothing and is OK (devices never shrink). NoSpace when the file system is full.
  virtual Status Grow(uint64_t new_block_count) = 0;

  // Tells the device that `region` (aligned to alignment()) will be used as I/O buffers for the
  // rest of the device's life, so it may register it with the kernel (io_uring fixed buffers).
  // Requests whose buffers lie inside a registered region then avoid per-I/O page pinning.
  // Optional: the default does nothing and returns OK. The region must outlive the device.
  virtual Status RegisterMemory(std::span<std::byte> region);
  // True when RegisterMemory hands regions to the kernel (io_uring fixed buffers), so that how a
  // region lies in physical memory shapes the device's requests (huge pages: one segment per
  // 2 MiB; ordinary pages: one per 4 KiB). The default: false.
  virtual bool RegistersMemory() const noexcept { return false; }

  DeviceStats stats() const noexcept;

 protected:
  BlockDevice(std::string path, uint32_t block_size, uint64_t block_count, size_t alignment,
              bool read_only)
      : path_(std::move(path)),
        block_size_(block_size),
        block_count_(block_count),
        alignment_(alignment),
        read_only_(read_only) {}

  // Checks one request against the device's geometry and mode: bounds, buffer size and
  // alignment, read-only. Returns the Status the request must fail with, or OK.
  Status CheckRequest(uint64_t block, uint32_t count, const void* buf, bool is_write) const;
  Status CheckWritable(std::string_view what) const;

  void set_block_count(uint64_t n) noexcept { block_count_.store(n, std::memory_order_release); }
  void set_alignment(size_t a) noexcept { alignment_ = a; }

  DeviceCounters counters_;

 private:
  std::string path_;
  uint32_t block_size_;
  std::atomic<uint64_t> block_count_;
  size_t alignment_;
  bool read_only_;
};

}  // namespace vde::blockdev
