// FileBlockDevice beyond the shared conformance suite: short reads when the file shrinks behind
// the device's back, coalescing of adjacent requests, request order of overlapping writes, and
// the O_DIRECT mode reported by Describe() and notes().
#include "blockdev/file_block_device.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "blockdev/aligned_buffer.h"
#include "tests/test_util.h"

#if defined(__linux__) && defined(__GLIBC__)
#include <dlfcn.h>
#include <sys/uio.h>

#include <atomic>
#include <cerrno>
#define VDE_FAULT_INJECTION 1

// Faults injected into the syscalls FileBlockDevice makes. This binary links vde_blockdev
// statically, so the device's calls to pread & co. resolve to the definitions below, which pass
// through to libc's unless a fault is armed.
namespace vde::blockdev {
namespace {

struct Faults {
  std::atomic<bool> short_transfers{false};   // move at most half the bytes (at least 512)
  std::atomic<int> eintr_every{0};            // every n-th call fails with EINTR first
  std::atomic<int> fdatasync_errno{0};        // the next fdatasync fails with this errno
  std::atomic<bool> fallocate_enospc{false};  // the next fallocate stops at 4 KiB: ENOSPC
  std::atomic<uint64_t> calls{0};
};
Faults g_faults;

template <typename Fn>
Fn* Real(const char* name) {
  return reinterpret_cast<Fn*>(::dlsym(RTLD_NEXT, name));
}

bool InjectEintr() {
  int every = g_faults.eintr_every.load();
  if (every <= 0 || ++g_faults.calls % static_cast<uint64_t>(every) != 0) return false;
  errno = EINTR;
  return true;
}

size_t ShortLen(size_t n) {
  if (!g_faults.short_transfers.load() || n <= 512) return n;
  return std::max<size_t>(512, (n / 2) & ~size_t{511});
}

// The iovecs truncated to ShortLen of their total.
std::vector<iovec> Shorten(const iovec* iov, int count) {
  size_t total = 0;
  for (int i = 0; i < count; ++i) total += iov[i].iov_len;
  size_t left = ShortLen(total);
  std::vector<iovec> out;
  for (int i = 0; i < count && left > 0; ++i) {
    size_t n = std::min(left, iov[i].iov_len);
    out.push_back(iovec{iov[i].iov_base, n});
    left -= n;
  }
  return out;
}

}  // namespace
}  // namespace vde::blockdev

extern "C" ssize_t pread(int fd, void* buf, size_t n, off_t off) {
  using vde::blockdev::Real;
  static auto* real = Real<ssize_t(int, void*, size_t, off_t)>("pread");
  if (vde::blockdev::InjectEintr()) return -1;
  return real(fd, buf, vde::blockdev::ShortLen(n), off);
}

extern "C" ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  using vde::blockdev::Real;
  static auto* real = Real<ssize_t(int, const void*, size_t, off_t)>("pwrite");
  if (vde::blockdev::InjectEintr()) return -1;
  return real(fd, buf, vde::blockdev::ShortLen(n), off);
}

extern "C" ssize_t preadv(int fd, const struct iovec* iov, int count, off_t off) {
  using vde::blockdev::Real;
  static auto* real = Real<ssize_t(int, const iovec*, int, off_t)>("preadv");
  if (vde::blockdev::InjectEintr()) return -1;
  auto v = vde::blockdev::Shorten(iov, count);
  return real(fd, v.data(), static_cast<int>(v.size()), off);
}

extern "C" ssize_t pwritev(int fd, const struct iovec* iov, int count, off_t off) {
  using vde::blockdev::Real;
  static auto* real = Real<ssize_t(int, const iovec*, int, off_t)>("pwritev");
  if (vde::blockdev::InjectEintr()) return -1;
  auto v = vde::blockdev::Shorten(iov, count);
  return real(fd, v.data(), static_cast<int>(v.size()), off);
}

extern "C" int fdatasync(int fd) {
  using vde::blockdev::Real;
  static auto* real = Real<int(int)>("fdatasync");
  if (int err = vde::blockdev::g_faults.fdatasync_errno.exchange(0); err != 0) {
    errno = err;
    return -1;
  }
  return real(fd);
}
extern "C" int fallocate(int fd, int mode, off_t off, off_t len) {
  using vde::blockdev::Real;
  static auto* real = Real<int(int, int, off_t, off_t)>("fallocate");
  if (vde::blockdev::g_faults.fallocate_enospc.exchange(false)) {
    // As a file system that runs out of space part-way: the first 4 KiB, then ENOSPC.
    if (real(fd, mode, off, std::min<off_t>(len, 4096)) != 0) return -1;
    errno = ENOSPC;
    return -1;
  }
  return real(fd, mode, off, len);
}
#endif  // __linux__ && __GLIBC__

namespace vde::blockdev {
namespace {

constexpr uint32_t kBs = 4096;

DeviceOptions CreateOptions(uint64_t blocks, bool direct) {
  DeviceOptions o;
  o.block_size = kBs;
  o.mode = OpenMode::kCreate;
  o.create_blocks = blocks;
  o.direct_io = direct;
  return o;
}

void Fill(std::span<std::byte> b, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (auto& x : b) x = static_cast<std::byte>(rng());
}

TEST(FileBlockDevice, DescribeNamesTheIoMode) {
  testing::ScratchDir dir;
  auto buffered = FileBlockDevice::Open(dir.File("b.vdisk"), CreateOptions(8, false));
  ASSERT_TRUE(buffered.ok()) << buffered.status().ToString();
  EXPECT_EQ((*buffered)->Describe(), "file (pread/pwrite, buffered)");
  EXPECT_FALSE((*buffered)->direct());
  EXPECT_EQ((*buffered)->alignment(), 1u);

  auto direct = FileBlockDevice::Open(dir.File("d.vdisk"), CreateOptions(8, true));
  ASSERT_TRUE(direct.ok()) << direct.status().ToString();
  if ((*direct)->direct()) {
    EXPECT_EQ((*direct)->Describe(), "file (pread/pwrite, O_DIRECT)");
    EXPECT_GT((*direct)->alignment(), 1u);
  } else {
    // Refused by the file system: buffered, and the notes say why.
    EXPECT_EQ((*direct)->Describe(), "file (pread/pwrite, buffered)");
    EXPECT_FALSE((*direct)->notes().empty());
  }
}

// tmpfs refused O_DIRECT before Linux 6.6; either way the device opens and works.
TEST(FileBlockDevice, DirectIoOnTmpfsWorksOrFallsBackWithANote) {
  if (!std::filesystem::is_directory("/dev/shm")) GTEST_SKIP() << "no /dev/shm";
  std::string path = "/dev/shm/vde_file_block_device_test." + std::to_string(::getpid());
  auto dev = FileBlockDevice::Open(path, CreateOptions(4, true));
  std::filesystem::remove(path);
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  if (!(*dev)->direct()) {
    ASSERT_FALSE((*dev)->notes().empty());
    EXPECT_NE((*dev)->notes()[0].find("O_DIRECT"), std::string::npos) << (*dev)->notes()[0];
  }
  AlignedBuffer buf(kBs, 4096);
  Fill(buf.span(), 1);
  Status s = (*dev)->Write(3, 1, buf.span());
  ASSERT_TRUE(s.ok()) << s.ToString();
  AlignedBuffer back(kBs, 4096);
  s = (*dev)->Read(3, 1, back.span());
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(std::memcmp(buf.data(), back.data(), kBs), 0);
}

TEST(FileBlockDevice, ReadPastEndOfShrunkFileIsShortReadNamingPathAndBlock) {
  testing::ScratchDir dir;
  const std::string path = dir.File("shrunk.vdisk");
  auto dev = FileBlockDevice::Open(path, CreateOptions(16, false));
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  // Someone else truncates the file to 8 blocks and 100 bytes.
  ASSERT_EQ(::truncate(path.c_str(), 8 * kBs + 100), 0);
  AlignedBuffer buf(2 * kBs, 4096);
  Status s = (*dev)->Read(10, 1, buf.span().first(kBs));
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_NE(s.ToString().find("short read at block 10"), std::string::npos) << s.ToString();
  EXPECT_NE(s.ToString().find(path), std::string::npos) << s.ToString();
  // A read that starts before the new end gets the bytes there, then fails at block 8.
  s = (*dev)->Read(7, 2, buf.span());
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_NE(s.ToString().find("short read at block 8"), std::string::npos) << s.ToString();
  EXPECT_NE(s.ToString().find("after 4196 of 8192 bytes"), std::string::npos) << s.ToString();
}

TEST(FileBlockDevice, FailingCoalescedRunFailsOnlyItsBadRequests) {
  testing::ScratchDir dir;
  const std::string path = dir.File("shrunk.vdisk");
  auto dev = FileBlockDevice::Open(path, CreateOptions(16, false));
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  AlignedBuffer data(16 * kBs, 4096);
  Fill(data.span(), 2);
  ASSERT_TRUE((*dev)->Write(0, 16, data.span()).ok());
  ASSERT_EQ(::truncate(path.c_str(), 8 * kBs), 0);
  // Blocks 5..10, adjacent: one preadv that ends early, then request by request.
  AlignedBuffer out(6 * kBs, 4096);
  std::vector<ReadRequest> reads;
  for (uint64_t b = 5; b <= 10; ++b) {
    reads.push_back(ReadRequest{b, 1, out.data() + (b - 5) * kBs, {}});
  }
  Status s = (*dev)->ReadBatch(reads);
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_NE(s.ToString().find("block 8"), std::string::npos) << s.ToString();
  for (size_t i = 0; i < reads.size(); ++i) {
    if (reads[i].block < 8) {
      ASSERT_TRUE(reads[i].status.ok()) << i << ": " << reads[i].status.ToString();
      EXPECT_EQ(std::memcmp(reads[i].buf, data.data() + reads[i].block * kBs, kBs), 0);
    } else {
      EXPECT_TRUE(reads[i].status.IsIOError()) << i << ": " << reads[i].status.ToString();
    }
  }
}

TEST(FileBlockDevice, AdjacentRequestsInAnyOrderAreCoalesced) {
  testing::ScratchDir dir;
  auto dev = FileBlockDevice::Open(dir.File("c.vdisk"), CreateOptions(128, false));
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  AlignedBuffer data(64 * kBs, 4096);
  Fill(data.span(), 3);
  std::vector<WriteRequest> writes;
  for (uint64_t i = 0; i < 64; ++i) {
    writes.push_back(WriteRequest{10 + i, 1, data.data() + i * kBs, {}});
  }
  std::mt19937_64 rng(4);
  std::shuffle(writes.begin(), writes.end(), rng);
  DeviceStats before = (*dev)->stats();
  Status s = (*dev)->WriteBatch(writes);
  ASSERT_TRUE(s.ok()) << s.ToString();
  DeviceStats after = (*dev)->stats();
  EXPECT_EQ(after.submissions - before.submissions, 1u);
  EXPECT_EQ(after.writes - before.writes, 64u);

  // Two runs with a gap between them: two syscalls.
  AlignedBuffer out(64 * kBs, 4096);
  std::vector<ReadRequest> reads;
  for (uint64_t i = 0; i < 64; ++i) {
    uint64_t block = 10 + i;
    if (i == 20) continue;  // the gap
    reads.push_back(ReadRequest{block, 1, out.data() + i * kBs, {}});
  }
  before = (*dev)->stats();
  s = (*dev)->ReadBatch(reads);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ((*dev)->stats().submissions - before.submissions, 2u);
  for (const auto& r : reads) {
    EXPECT_EQ(std::memcmp(r.buf, data.data() + (r.block - 10) * kBs, kBs), 0) << r.block;
  }
}

// Not promised by BlockDevice, but FileBlockDevice runs a batch as if one request at a time.
TEST(FileBlockDevice, OverlappingWritesInABatchApplyInRequestOrder) {
  testing::ScratchDir dir;
  auto dev = FileBlockDevice::Open(dir.File("o.vdisk"), CreateOptions(16, false));
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  AlignedBuffer a(kBs, 4096), b(3 * kBs, 4096), c(kBs, 4096);
  Fill(a.span(), 5);
  Fill(b.span(), 6);
  Fill(c.span(), 7);
  std::vector<WriteRequest> writes = {
      {6, 1, a.data(), {}}, {5, 3, b.data(), {}}, {6, 1, c.data(), {}}, {8, 1, a.data(), {}}};
  ASSERT_TRUE((*dev)->WriteBatch(writes).ok());
  AlignedBuffer out(4 * kBs, 4096);
  ASSERT_TRUE((*dev)->Read(5, 4, out.span()).ok());
  EXPECT_EQ(std::memcmp(out.data(), b.data(), kBs), 0);                      // block 5 from b
  EXPECT_EQ(std::memcmp(out.data() + kBs, c.data(), kBs), 0);                // block 6: c, the last
  EXPECT_EQ(std::memcmp(out.data() + 2 * kBs, b.data() + 2 * kBs, kBs), 0);  // block 7 from b
  EXPECT_EQ(std::memcmp(out.data() + 3 * kBs, a.data(), kBs), 0);            // block 8 from a
}

// Runs longer than the coalescing limit (8 MiB) are split; the data still lands.
TEST(FileBlockDevice, LargeAdjacentRequestsRoundTrip) {
  testing::ScratchDir dir;
  constexpr uint64_t kBlocks = 3 * 1024;  // 12 MiB
  auto dev = FileBlockDevice::Open(dir.File("l.vdisk"), CreateOptions(kBlocks, true));
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  AlignedBuffer data(kBlocks * kBs, 4096);
  Fill(data.span(), 8);
  std::vector<WriteRequest> writes;
  for (uint64_t i = 0; i < 3; ++i) {
    writes.push_back(WriteRequest{i * 1024, 1024, data.data() + i * 1024 * kBs, {}});
  }
  Status s = (*dev)->WriteBatch(writes);
  ASSERT_TRUE(s.ok()) << s.ToString();
  AlignedBuffer out(kBlocks * kBs, 4096);
  s = (*dev)->Read(0, kBlocks, out.span());
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(std::memcmp(out.data(), data.data(), kBlocks * kBs), 0);
}

#ifdef VDE_FAULT_INJECTION
// Arms faults for the scope of one test.
class ScopedFaults {
 public:
  ScopedFaults(bool short_transfers, int eintr_every) {
    g_faults.short_transfers = short_transfers;
    g_faults.eintr_every = eintr_every;
  }
  ~ScopedFaults() {
    g_faults.short_transfers = false;
    g_faults.eintr_every = 0;
    g_faults.fdatasync_errno = 0;
    g_faults.fallocate_enospc = false;
  }
  ScopedFaults(const ScopedFaults&) = delete;
  ScopedFaults& operator=(const ScopedFaults&) = delete;
};

// Every transfer comes back short and every third call is interrupted: the device continues
// and retries until each request is whole.
TEST(FileBlockDevice, ShortTransfersAndEintrAreContinued) {
  for (bool direct : {false, true}) {
    SCOPED_TRACE(direct ? "O_DIRECT" : "buffered");
    testing::ScratchDir dir;
    auto dev = FileBlockDevice::Open(dir.File("s.vdisk"), CreateOptions(64, direct));
    ASSERT_TRUE(dev.ok()) << dev.status().ToString();
    AlignedBuffer data(64 * kBs, 4096), out(64 * kBs, 4096);
    Fill(data.span(), 9);
    DeviceStats before = (*dev)->stats();
    {
      ScopedFaults faults(true, 3);
      Status s = (*dev)->Write(0, 16, data.span().first(16 * kBs));  // pwrite
      ASSERT_TRUE(s.ok()) << s.ToString();
      std::vector<WriteRequest> writes;  // adjacent: pwritev
      for (uint64_t b = 16; b < 64; b += 8) {
        writes.push_back(WriteRequest{b, 8, data.data() + b * kBs, {}});
      }
      s = (*dev)->WriteBatch(writes);
      ASSERT_TRUE(s.ok()) << s.ToString();
      s = (*dev)->Read(0, 64, out.span());  // pread
      ASSERT_TRUE(s.ok()) << s.ToString();
      EXPECT_EQ(std::memcmp(out.data(), data.data(), 64 * kBs), 0);
      std::memset(out.data(), 0, 64 * kBs);
      std::vector<ReadRequest> reads;  // adjacent: preadv
      for (uint64_t b = 0; b < 64; b += 4) {
        reads.push_back(ReadRequest{b, 4, out.data() + b * kBs, {}});
      }
      s = (*dev)->ReadBatch(reads);
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
    EXPECT_EQ(std::memcmp(out.data(), data.data(), 64 * kBs), 0);
    DeviceStats after = (*dev)->stats();
    EXPECT_GT(after.retries - before.retries, 8u);
    EXPECT_EQ(after.blocks_written - before.blocks_written, 64u);
    EXPECT_EQ(after.blocks_read - before.blocks_read, 128u);
  }
}

// A failed fdatasync is an IOError naming the path, and every later flush fails too: the
// kernel may have dropped the pages it could not write.
TEST(FileBlockDevice, FailedFlushIsIOErrorAndSticks) {
  testing::ScratchDir dir;
  const std::string path = dir.File("f.vdisk");
  auto dev = FileBlockDevice::Open(path, CreateOptions(8, false));
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  AlignedBuffer data(kBs, 4096);
  ASSERT_TRUE((*dev)->Write(1, 1, data.span()).ok());
  ScopedFaults faults(false, 0);
  g_faults.fdatasync_errno = EIO;
  Status s = (*dev)->Flush();
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_EQ(s.err(), EIO);
  EXPECT_NE(s.ToString().find(path), std::string::npos) << s.ToString();
  EXPECT_EQ((*dev)->stats().flushes, 0u);
  s = (*dev)->Flush();  // fdatasync would succeed now; the device must not say so
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_NE(s.ToString().find("earlier flush failed"), std::string::npos) << s.ToString();
  EXPECT_EQ((*dev)->stats().flushes, 0u);
}

TEST(FileBlockDevice, InterruptedFlushIsRetried) {
  testing::ScratchDir dir;
  auto dev = FileBlockDevice::Open(dir.File("f.vdisk"), CreateOptions(8, false));
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  ScopedFaults faults(false, 0);
  g_faults.fdatasync_errno = EINTR;
  Status s = (*dev)->Flush();
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ((*dev)->stats().flushes, 1u);
}
// A grow that runs out of space part-way fails with NoSpace and leaves the file at its old size
// (not at some size that is no multiple of the block size, which the next open would refuse).
TEST(FileBlockDevice, GrowOutOfSpaceLeavesTheFileAsItWas) {
  testing::ScratchDir dir;
  const std::string path = dir.File("g.vdisk");
  DeviceOptions opts;
  opts.block_size = 65536;
  opts.mode = OpenMode::kCreate;
  opts.create_blocks = 4;
  auto dev = FileBlockDevice::Open(path, opts);
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  ScopedFaults faults(false, 0);
  g_faults.fallocate_enospc = true;
  Status s = (*dev)->Grow(8);
  EXPECT_TRUE(s.IsNoSpace()) << s.ToString();
  EXPECT_NE(s.ToString().find(path), std::string::npos) << s.ToString();
  EXPECT_EQ((*dev)->block_count(), 4u);
  EXPECT_EQ(std::filesystem::file_size(path), 4u * 65536);
  dev->reset();
  opts.mode = OpenMode::kReadWrite;
  auto again = FileBlockDevice::Open(path, opts);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->block_count(), 4u);
}
#endif  // VDE_FAULT_INJECTION

}  // namespace
}  // namespace vde::blockdev
