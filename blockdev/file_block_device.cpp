#include "blockdev/file_block_device.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace vde::blockdev {

namespace {

// Most iovecs one preadv/pwritev may take. POSIX guarantees at least 16 (_XOPEN_IOV_MAX).
#ifdef IOV_MAX
constexpr size_t kMaxIov = IOV_MAX;
#else
constexpr size_t kMaxIov = 16;
#endif

// Adjacent requests are coalesced into one transfer of at most this many bytes: large enough to
// save the syscalls, small enough that a failed run costs little to redo request by request.
constexpr uint64_t kMaxRunBytes = uint64_t{8} << 20;

// The one place this file turns an errno into a Status.
Status ErrnoStatus(int err, const std::string& context) {
  return Status::FromErrno(err, context);
}

std::string RequestText(const char* op, uint64_t block, uint64_t count) {
  return std::string(op) + " of block " + std::to_string(block) + " count " + std::to_string(count);
}

template <typename Req>
void* BufferOf(const Req& r) {
  // iovec wants a void* even for writes, which only read it.
  return const_cast<std::byte*>(static_cast<const std::byte*>(r.buf));
}

}  // namespace

FileBlockDevice::FileBlockDevice(const std::string& path, uint32_t block_size, DeviceFile file)
    : BlockDevice(path, block_size, file.block_count, file.alignment, file.read_only),
      fd_(std::move(file.fd)),
      direct_(file.direct),
      is_block_device_(file.is_block_device),
      notes_(std::move(file.notes)) {}

Result<std::unique_ptr<FileBlockDevice>> FileBlockDevice::Open(const std::string& path,
                                                               const DeviceOptions& opts) {
  VDE_ASSIGN_OR_RETURN(DeviceFile file, OpenDeviceFile(path, opts, opts.direct_io));
  return std::unique_ptr<FileBlockDevice>(
      new FileBlockDevice(path, opts.block_size, std::move(file)));
}

std::string FileBlockDevice::Describe() const {
  std::string s = "file (pread/pwrite, ";
  s += direct_ ? "O_DIRECT" : "buffered";
  if (is_block_device_) s += ", block device";
  s += ")";
  return s;
}

Status FileBlockDevice::Transfer(bool is_write, uint64_t block, uint64_t count,
                                 std::span<iovec> iov) {
  const uint64_t bs = block_size();
  const uint64_t total = count * bs;
  uint64_t done = 0;
  size_t idx = 0;
  while (done < total) {
    assert(idx < iov.size());
    const auto offset = static_cast<off_t>(block * bs + done);
    const size_t n_iov = std::min(iov.size() - idx, kMaxIov);
    ssize_t n;
    if (n_iov == 1) {
      n = is_write ? ::pwrite(fd_.get(), iov[idx].iov_base, iov[idx].iov_len, offset)
                   : ::pread(fd_.get(), iov[idx].iov_base, iov[idx].iov_len, offset);
    } else {
      n = is_write ? ::pwritev(fd_.get(), &iov[idx], static_cast<int>(n_iov), offset)
                   : ::preadv(fd_.get(), &iov[idx], static_cast<int>(n_iov), offset);
    }
    counters_.submissions.fetch_add(1, std::memory_order_relaxed);
    if (n < 0) {
      int err = errno;
      if (err == EINTR) {
        counters_.retries.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      return ErrnoStatus(err, path() + ": " +
                                  RequestText(is_write ? "write" : "read", block, count) +
                                  " failed at block " + std::to_string((block * bs + done) / bs));
    }
    if (n == 0) {
      // A read meeting end of file inside the device: the file shrank behind our back. A write
      // of 0 bytes would loop forever; treat it alike.
      return Status::IOError(path() + ": short " + (is_write ? "write" : "read") + " at block " +
                             std::to_string((block * bs + done) / bs) + " (" +
                             RequestText(is_write ? "write" : "read", block, count) +
                             "): " + (is_write ? "no bytes written" : "end of file") + " after " +
                             std::to_string(done) + " of " + std::to_string(total) + " bytes");
    }
    done += static_cast<uint64_t>(n);
    if (done < total) counters_.retries.fetch_add(1, std::memory_order_relaxed);
    iovec* next = iov.data() + idx;
    size_t left = iov.size() - idx;
    SkipIovecBytes(&next, &left, static_cast<size_t>(n));
    idx = iov.size() - left;
  }
  return Status::OK();
}

template <typename Req>
Status FileBlockDevice::RunBatch(bool is_write, std::span<Req> reqs, const RequestCallback* done) {
  counters_.batches.fetch_add(1, std::memory_order_relaxed);
  const uint64_t bs = block_size();
  auto& done_requests = is_write ? counters_.writes : counters_.reads;
  auto& done_blocks = is_write ? counters_.blocks_written : counters_.blocks_read;
  auto run_one = [&](Req& r) {
    std::array<iovec, 1> one{iovec{BufferOf(r), static_cast<size_t>(r.count) * bs}};
    r.status = Transfer(is_write, r.block, r.count, one);
    if (r.status.ok()) {
      done_requests.fetch_add(1, std::memory_order_relaxed);
      done_blocks.fetch_add(r.count, std::memory_order_relaxed);
    }
  };

  auto report = [&](size_t i) {
    if (done != nullptr) (*done)(i);
  };

  if (reqs.size() == 1) {  // the common single Read/Write: no allocation
    Req& r = reqs[0];
    r.status = CheckRequest(r.block, r.count, r.buf, is_write);
    if (r.status.ok()) run_one(r);
    report(0);
    return r.status;
  }

  std::vector<size_t> order;  // the requests that passed their checks
  order.reserve(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    Req& r = reqs[i];
    r.status = CheckRequest(r.block, r.count, r.buf, is_write);
    if (r.status.ok()) {
      order.push_back(i);
    } else {
      report(i);
    }
  }
  // Sorted by block, adjacent requests coalesce whatever their order in the batch. Overlapping
  // writes keep request order instead, so the later one wins as it would run one at a time.
  auto by_block = [&](size_t a, size_t b) { return reqs[a].block < reqs[b].block; };
  std::stable_sort(order.begin(), order.end(), by_block);
  if (is_write) {
    for (size_t k = 1; k < order.size(); ++k) {
      const Req& prev = reqs[order[k - 1]];
      if (reqs[order[k]].block < prev.block + prev.count) {
        std::sort(order.begin(), order.end());
        break;
      }
    }
  }

  std::vector<iovec> iov;
  for (size_t k = 0; k < order.size();) {
    // The run order[k, e): requests for consecutive blocks, within the coalescing limits.
    const Req& first = reqs[order[k]];
    uint64_t end_block = first.block + first.count;
    uint64_t bytes = first.count * bs;
    size_t e = k + 1;
    while (e < order.size() && e - k < kMaxIov) {
      const Req& r = reqs[order[e]];
      if (r.block != end_block || bytes + r.count * bs > kMaxRunBytes) break;
      end_block += r.count;
      bytes += r.count * bs;
      ++e;
    }
    if (e - k == 1) {
      run_one(reqs[order[k]]);
      report(order[k]);
      k = e;
      continue;
    }
    iov.clear();
    for (size_t j = k; j < e; ++j) {
      const Req& r = reqs[order[j]];
      iov.push_back(iovec{BufferOf(r), static_cast<size_t>(r.count) * bs});
    }
    Status s = Transfer(is_write, first.block, end_block - first.block, iov);
    for (size_t j = k; j < e; ++j) {
      Req& r = reqs[order[j]];
      if (s.ok()) {
        done_requests.fetch_add(1, std::memory_order_relaxed);
        done_blocks.fetch_add(r.count, std::memory_order_relaxed);
      } else {
        // Redo the run one request at a time, so only a request that itself fails reports it.
        run_one(r);
      }
      report(order[j]);
    }
    k = e;
  }

  for (const Req& r : reqs) {
    if (!r.status.ok()) return r.status;
  }
  return Status::OK();
}

Status FileBlockDevice::ReadBatch(std::span<ReadRequest> reqs) {
  return RunBatch(false, reqs, nullptr);
}

Status FileBlockDevice::ReadBatchNotify(std::span<ReadRequest> reqs, RequestCallback done) {
  return RunBatch(false, reqs, &done);
}

Status FileBlockDevice::WriteBatch(std::span<WriteRequest> reqs) {
  return RunBatch(true, reqs, nullptr);
}

Status FileBlockDevice::Flush() {
  VDE_RETURN_IF_ERROR(CheckWritable("flush"));
  {
    std::lock_guard<std::mutex> lock(flush_mu_);
    if (!flush_error_.ok()) {
      return Status::IOError(
          path() + ": flush: an earlier flush failed (" + std::string(flush_error_.message()) + ")",
          flush_error_.err());
    }
  }
  // EINTR means the call was interrupted before it reported anything and is retried; any other
  // failure is final: the kernel may already have dropped the dirty pages, so a second call
  // could succeed without the data being on disk.
  int rc;
  const char* what;
#ifdef __APPLE__
  // fsync on macOS does not flush the drive's cache; F_FULLFSYNC does, where supported.
  what = "fcntl(F_FULLFSYNC)";
  do {
    rc = ::fcntl(fd_.get(), F_FULLFSYNC);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0 && (errno == ENOTSUP || errno == EINVAL)) {
    what = "fsync";
    do {
      rc = ::fsync(fd_.get());
    } while (rc != 0 && errno == EINTR);
  }
#else
  what = "fdatasync";
  do {
    rc = ::fdatasync(fd_.get());
  } while (rc != 0 && errno == EINTR);
#endif
  counters_.submissions.fetch_add(1, std::memory_order_relaxed);
  if (rc != 0) {
    int err = errno;
    Status s = ErrnoStatus(err, path() + ": flush: " + what);
    s = Status::IOError(
        std::string(s.message()) + "; data written since the last flush may be lost", err);
    std::lock_guard<std::mutex> lock(flush_mu_);
    if (flush_error_.ok()) flush_error_ = s;
    return s;
  }
  counters_.flushes.fetch_add(1, std::memory_order_relaxed);
  return Status::OK();
}

Status FileBlockDevice::Grow(uint64_t new_block_count) {
  VDE_RETURN_IF_ERROR(CheckWritable("grow"));
  std::lock_guard<std::mutex> lock(grow_mu_);
  const uint64_t old_count = block_count();
  if (new_block_count <= old_count) return Status::OK();
  const uint64_t bs = block_size();
  if (new_block_count > static_cast<uint64_t>(std::numeric_limits<off_t>::max()) / bs) {
    return Status::InvalidArgument(path() + ": cannot grow to " + std::to_string(new_block_count) +
                                   " blocks: larger than the largest file offset");
  }
  VDE_RETURN_IF_ERROR(
      GrowFile(fd_.get(), path(), is_block_device_, old_count * bs, new_block_count * bs));
  // Published only once the file has its new size: a reader that sees the new count may read
  // the new blocks.
  set_block_count(new_block_count);
  return Status::OK();
}

}  // namespace vde::blockdev
