// io_uring-specific behaviour of IoUringBlockDevice: registered buffers and fixed operations,
// enter counts, batches larger than the ring, per-thread and shared rings, rings given back by
// threads that exit, SQPOLL, flush, read-only, short transfers and teardown. The contract all
// backends share is in block_device_conformance_test.
#include "blockdev/io_uring_block_device.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <latch>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "blockdev/aligned_buffer.h"
#include "blockdev/open_block_device.h"
#include "tests/test_util.h"

namespace vde::blockdev {
namespace {

using vde::testing::ScratchDir;

constexpr uint32_t kBs = 4096;

std::string Join(const std::vector<std::string>& notes) {
  std::string s;
  for (const std::string& n : notes) s += (s.empty() ? "" : "; ") + n;
  return s.empty() ? "(no notes)" : s;
}

// Fills one block with a pattern derived from (block, salt).
void FillBlock(std::byte* p, uint64_t block, uint64_t salt) {
  uint64_t x = block * 0x9E3779B97F4A7C15ull ^ (salt + 1) * 0xC2B2AE3D27D4EB4Full;
  for (uint32_t i = 0; i < kBs; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(p + i, &x, 8);
  }
}

bool BlockIs(const std::byte* p, uint64_t block, uint64_t salt) {
  std::vector<std::byte> want(kBs);
  FillBlock(want.data(), block, salt);
  return std::memcmp(p, want.data(), kBs) == 0;
}

class IoUringDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Status probe = ProbeIoUring();
    if (!probe.ok()) GTEST_SKIP() << "io_uring unavailable: " << probe.ToString();
  }

  DeviceOptions Opts(uint64_t blocks) const {
    DeviceOptions o;
    o.block_size = kBs;
    o.mode = OpenMode::kCreate;
    o.create_blocks = blocks;
    o.backend = Backend::kIoUring;
    return o;
  }

  std::unique_ptr<IoUringBlockDevice> Open(const DeviceOptions& o, const std::string& name = "d") {
    auto r = IoUringBlockDevice::Open(dir_.File(name), o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(*r) : nullptr;
  }

  ScratchDir dir_;
};

// Writes then reads back `blocks` (each with `salt`) in one batch each, from `buf`, which holds
// blocks.size() blocks.
void WriteReadVerify(BlockDevice& dev, const std::vector<uint64_t>& blocks, uint64_t salt,
                     std::byte* buf) {
  std::vector<WriteRequest> w(blocks.size());
  for (size_t i = 0; i < blocks.size(); ++i) {
    FillBlock(buf + i * kBs, blocks[i], salt);
    w[i] = WriteRequest{blocks[i], 1, buf + i * kBs, Status()};
  }
  ASSERT_TRUE(dev.WriteBatch(w).ok());
  std::memset(buf, 0, blocks.size() * kBs);
  std::vector<ReadRequest> r(blocks.size());
  for (size_t i = 0; i < blocks.size(); ++i) r[i] = ReadRequest{blocks[i], 1, buf + i * kBs, {}};
  ASSERT_TRUE(dev.ReadBatch(r).ok());
  for (size_t i = 0; i < blocks.size(); ++i) {
    ASSERT_TRUE(BlockIs(buf + i * kBs, blocks[i], salt)) << "block " << blocks[i];
  }
}

TEST_F(IoUringDeviceTest, FixedOpsUsedExactlyForRegisteredMemory) {
  auto dev = Open(Opts(64));
  ASSERT_NE(dev, nullptr);
  AlignedBuffer arena(16 * kBs, 4096);
  EXPECT_TRUE(dev->RegistersMemory());
  ASSERT_TRUE(dev->RegisterMemory(arena.span()).ok());
  if (!dev->buffers_registered()) GTEST_SKIP() << "registration refused: " << Join(dev->notes());
  EXPECT_NE(dev->Describe().find("registered buffers"), std::string::npos) << dev->Describe();

  // One 4-block request and four 1-block requests, all inside the arena: 5 fixed ops each way.
  const uint64_t before = dev->stats().fixed_ops;
  for (uint64_t b = 0; b < 8; ++b) FillBlock(arena.data() + b * kBs, b, 7);
  std::vector<WriteRequest> w = {{0, 4, arena.data(), {}},
                                 {4, 1, arena.data() + 4 * kBs, {}},
                                 {5, 1, arena.data() + 5 * kBs, {}},
                                 {6, 1, arena.data() + 6 * kBs, {}},
                                 {7, 1, arena.data() + 7 * kBs, {}}};
  ASSERT_TRUE(dev->WriteBatch(w).ok());
  EXPECT_EQ(dev->stats().fixed_ops - before, 5u);
  std::vector<ReadRequest> r = {{0, 8, arena.data() + 8 * kBs, {}}};
  ASSERT_TRUE(dev->ReadBatch(r).ok());
  EXPECT_EQ(dev->stats().fixed_ops - before, 6u);
  for (uint64_t b = 0; b < 8; ++b) EXPECT_TRUE(BlockIs(arena.data() + (8 + b) * kBs, b, 7));

  // A buffer outside every registered region goes out as a plain READ.
  AlignedBuffer outside(8 * kBs, 4096);
  ASSERT_TRUE(dev->Read(0, 8, outside.span()).ok());
  EXPECT_EQ(dev->stats().fixed_ops - before, 6u);
  for (uint64_t b = 0; b < 8; ++b) EXPECT_TRUE(BlockIs(outside.data() + b * kBs, b, 7));

  // Registration is per ring: another thread's ring registers before its first batch.
  std::thread t(
      [&] { ASSERT_TRUE(dev->Read(0, 4, arena.span().subspan(12 * kBs, 4 * kBs)).ok()); });
  t.join();
  EXPECT_EQ(dev->stats().fixed_ops - before, 7u);
  EXPECT_GE(dev->ring_stats().thread_rings_created, 2u);
}

TEST_F(IoUringDeviceTest, NoFixedOpsWhenRegistrationIsOff) {
  DeviceOptions o = Opts(16);
  o.register_buffers = false;
  auto dev = Open(o);
  ASSERT_NE(dev, nullptr);
  EXPECT_FALSE(dev->RegistersMemory());
  AlignedBuffer arena(8 * kBs, 4096);
  ASSERT_TRUE(dev->RegisterMemory(arena.span()).ok());
  EXPECT_FALSE(dev->buffers_registered());
  WriteReadVerify(*dev, {0, 3, 5, 9}, 1, arena.data());
  EXPECT_EQ(dev->stats().fixed_ops, 0u);
  EXPECT_EQ(dev->Describe().find("registered"), std::string::npos) << dev->Describe();
}

TEST_F(IoUringDeviceTest, RegisterMemoryRejectsBadRegions) {
  auto dev = Open(Opts(16));
  ASSERT_NE(dev, nullptr);
  AlignedBuffer arena(16 * kBs, 4096);
  EXPECT_TRUE(dev->RegisterMemory({}).IsInvalidArgument());
  if (dev->alignment() > 1) {
    EXPECT_TRUE(dev->RegisterMemory(arena.span().subspan(1, kBs)).IsInvalidArgument());
  }
  ASSERT_TRUE(dev->RegisterMemory(arena.span().subspan(0, 8 * kBs)).ok());
  // Inside a registered region: nothing to do. Straddling one: refused.
  EXPECT_TRUE(dev->RegisterMemory(arena.span().subspan(kBs, 2 * kBs)).ok());
  Status s = dev->RegisterMemory(arena.span().subspan(4 * kBs, 8 * kBs));
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  // A second, disjoint region is added (and re-registered on every ring).
  ASSERT_TRUE(dev->RegisterMemory(arena.span().subspan(8 * kBs, 8 * kBs)).ok());
  if (!dev->buffers_registered()) GTEST_SKIP() << "registration refused: " << Join(dev->notes());
  const uint64_t before = dev->stats().fixed_ops;
  // Blocks that are not adjacent: adjacent reads would be merged into one READV.
  WriteReadVerify(*dev, {0, 2, 4, 6, 8, 10, 12, 14}, 3, arena.data() + 8 * kBs);
  EXPECT_EQ(dev->stats().fixed_ops - before, 16u);
}

// Drops CAP_IPC_LOCK from the calling thread (capabilities are per thread) so that io_uring
// rings it sets up account registered memory against RLIMIT_MEMLOCK.
bool DropIpcLockForThisThread() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &hdr, data) != 0) return false;
  data[CAP_TO_INDEX(CAP_IPC_LOCK)].effective &= ~CAP_TO_MASK(CAP_IPC_LOCK);
  return ::syscall(SYS_capset, &hdr, data) == 0;
}

TEST_F(IoUringDeviceTest, MemlockRefusalFallsBackToUnregisteredIoWithANote) {
  struct rlimit old {};
  ASSERT_EQ(::getrlimit(RLIMIT_MEMLOCK, &old), 0);
  std::unique_ptr<IoUringBlockDevice> dev;
  AlignedBuffer arena(8 << 20, 4096);  // 8 MiB against a 64 KiB limit
  std::string skip;
  // A thread of its own: it gives up CAP_IPC_LOCK, which the rest of the process keeps.
  std::thread t([&] {
    if (!DropIpcLockForThisThread()) {
      skip = "cannot drop CAP_IPC_LOCK";
      return;
    }
    struct rlimit low = old;
    low.rlim_cur = 64 << 10;
    if (old.rlim_max != RLIM_INFINITY && old.rlim_max < low.rlim_cur) low.rlim_cur = old.rlim_max;
    if (::setrlimit(RLIMIT_MEMLOCK, &low) != 0) {
      skip = "cannot lower RLIMIT_MEMLOCK";
      return;
    }
    DeviceOptions o = Opts(64);
    o.max_rings = 0;  // the shared ring is set up here, without CAP_IPC_LOCK
    dev = Open(o);
    if (dev != nullptr) {
      EXPECT_TRUE(dev->RegisterMemory(arena.span()).ok());
    }
    ::setrlimit(RLIMIT_MEMLOCK, &old);
  });
  t.join();
  if (!skip.empty()) GTEST_SKIP() << skip;
  ASSERT_NE(dev, nullptr);
  EXPECT_FALSE(dev->buffers_registered());
  const std::string notes = Join(dev->notes());
  EXPECT_NE(notes.find("ENOMEM"), std::string::npos) << notes;
  EXPECT_NE(notes.find("unregistered I/O"), std::string::npos) << notes;
  WriteReadVerify(*dev, {0, 10, 20, 30}, 5, arena.data());
  EXPECT_EQ(dev->stats().fixed_ops, 0u);
}

TEST_F(IoUringDeviceTest, BatchOf32GoesOutInOneOrTwoEnters) {
  const uint64_t seed = vde::testing::TestSeed();
  std::mt19937_64 rng(seed);
  DeviceOptions o = Opts(1024);
  o.queue_depth = 64;
  auto dev = Open(o);
  ASSERT_NE(dev, nullptr);
  std::vector<uint64_t> all(1024);
  std::iota(all.begin(), all.end(), 0);
  std::shuffle(all.begin(), all.end(), rng);
  std::vector<uint64_t> blocks(all.begin(), all.begin() + 32);
  AlignedBuffer buf(32 * kBs, 4096);

  // Warm up: the thread's ring is set up on its first batch.
  ASSERT_TRUE(dev->Read(0, 1, buf.span().subspan(0, kBs)).ok());
  std::vector<WriteRequest> w(32);
  for (size_t i = 0; i < 32; ++i) {
    FillBlock(buf.data() + i * kBs, blocks[i], seed);
    w[i] = WriteRequest{blocks[i], 1, buf.data() + i * kBs, {}};
  }
  uint64_t before = dev->stats().submissions;
  ASSERT_TRUE(dev->WriteBatch(w).ok());
  EXPECT_LE(dev->stats().submissions - before, 2u);
  EXPECT_GE(dev->stats().submissions - before, 1u);

  std::memset(buf.data(), 0, buf.size());
  std::vector<ReadRequest> r(32);
  for (size_t i = 0; i < 32; ++i) r[i] = ReadRequest{blocks[i], 1, buf.data() + i * kBs, {}};
  before = dev->stats().submissions;
  ASSERT_TRUE(dev->ReadBatch(r).ok());
  EXPECT_LE(dev->stats().submissions - before, 2u);
  for (size_t i = 0; i < 32; ++i) EXPECT_TRUE(BlockIs(buf.data() + i * kBs, blocks[i], seed));
  EXPECT_EQ(dev->stats().reads, 33u);
  EXPECT_EQ(dev->stats().writes, 32u);
  EXPECT_EQ(dev->stats().batches, 3u);
}

TEST_F(IoUringDeviceTest, BatchLargerThanTheRingIsSplitAndKeepsItFull) {
  const uint64_t seed = vde::testing::TestSeed();
  std::mt19937_64 rng(seed);
  DeviceOptions o = Opts(2048);
  o.queue_depth = 8;
  auto dev = Open(o);
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(dev->queue_depth(), 8u);
  // Every other block: no two reads are adjacent, so none is merged with another.
  std::vector<uint64_t> blocks(1024);
  for (uint64_t i = 0; i < blocks.size(); i++) blocks[i] = 2 * i;
  std::shuffle(blocks.begin(), blocks.end(), rng);
  blocks.resize(1000);
  AlignedBuffer buf(1000 * kBs, 4096);
  WriteReadVerify(*dev, blocks, seed, buf.data());
  const DeviceStats st = dev->stats();
  EXPECT_EQ(st.writes, 1000u);
  EXPECT_EQ(st.reads, 1000u);
  // At most 8 in flight: at least 1000 / 8 enters each way, but far fewer than one per request.
  EXPECT_GE(st.submissions, 2u * 1000 / 8);
  EXPECT_LT(st.submissions, 2u * 1000);
}

TEST_F(IoUringDeviceTest, MixedBatchReportsEachRequestAndTheFirstFailure) {
  auto dev = Open(Opts(16));
  ASSERT_NE(dev, nullptr);
  AlignedBuffer buf(4 * kBs, 4096);
  FillBlock(buf.data(), 3, 9);
  ASSERT_TRUE(dev->Write(3, 1, buf.span().subspan(0, kBs)).ok());
  std::vector<ReadRequest> r = {{3, 1, buf.data() + kBs, {}},
                                {15, 2, buf.data() + 2 * kBs, {}},  // past the end
                                {0, 0, buf.data() + 3 * kBs, {}},   // zero blocks
                                {3, 1, buf.data() + 3 * kBs, {}}};
  Status s = dev->ReadBatch(r);
  EXPECT_TRUE(s.IsOutOfRange()) << s.ToString();
  EXPECT_TRUE(r[0].status.ok());
  EXPECT_TRUE(r[1].status.IsOutOfRange());
  EXPECT_TRUE(r[2].status.IsInvalidArgument());
  EXPECT_TRUE(r[3].status.ok());
  EXPECT_TRUE(BlockIs(buf.data() + kBs, 3, 9));
  EXPECT_TRUE(BlockIs(buf.data() + 3 * kBs, 3, 9));
  if (dev->alignment() > 1) {
    std::vector<ReadRequest> m = {{3, 1, buf.data() + 1, {}}};
    EXPECT_TRUE(dev->ReadBatch(m).IsInvalidArgument());
  }
  std::vector<ReadRequest> none;
  EXPECT_TRUE(dev->ReadBatch(none).ok());
}

TEST_F(IoUringDeviceTest, OverlappingWritesOfOneBatchLandInRequestOrder) {
  auto dev = Open(Opts(16));
  ASSERT_NE(dev, nullptr);
  AlignedBuffer buf(8 * kBs, 4096);
  FillBlock(buf.data(), 5, 1);  // A: blocks 5-6
  FillBlock(buf.data() + kBs, 6, 1);
  FillBlock(buf.data() + 2 * kBs, 6, 2);  // B: block 6
  FillBlock(buf.data() + 3 * kBs, 5, 3);  // C: block 5
  FillBlock(buf.data() + 4 * kBs, 9, 4);  // D: block 9, overlaps nothing
  std::vector<WriteRequest> w = {{5, 2, buf.data(), {}},
                                 {6, 1, buf.data() + 2 * kBs, {}},
                                 {9, 1, buf.data() + 4 * kBs, {}},
                                 {5, 1, buf.data() + 3 * kBs, {}}};
  ASSERT_TRUE(dev->WriteBatch(w).ok());
  ASSERT_TRUE(dev->Read(5, 2, buf.span().subspan(5 * kBs, 2 * kBs)).ok());
  EXPECT_TRUE(BlockIs(buf.data() + 5 * kBs, 5, 3));
  EXPECT_TRUE(BlockIs(buf.data() + 6 * kBs, 6, 2));
}

// Six threads, two per-thread rings: two threads get their own, four share one. All stay alive
// until every thread is done, so the assignment is exactly that.
TEST_F(IoUringDeviceTest, PerThreadAndSharedRingsRunConcurrently) {
  const uint64_t seed = vde::testing::TestSeed();
  DeviceOptions o = Opts(6 * 64);
  o.max_rings = 2;
  o.queue_depth = 16;
  auto dev = Open(o);
  ASSERT_NE(dev, nullptr);
  AlignedBuffer arena(6 * 8 * kBs, 4096);
  ASSERT_TRUE(dev->RegisterMemory(arena.span()).ok());
  std::latch start(6), done(6);
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + t);
      std::byte* buf = arena.data() + t * 8 * kBs;
      start.arrive_and_wait();
      for (int round = 0; round < 30; ++round) {
        std::vector<uint64_t> blocks;
        while (blocks.size() < 8) {
          uint64_t b = t * 64 + rng() % 64;
          if (std::find(blocks.begin(), blocks.end(), b) == blocks.end()) blocks.push_back(b);
        }
        WriteReadVerify(*dev, blocks, seed + round * 8 + t, buf);
        if (::testing::Test::HasFatalFailure()) break;
      }
      done.arrive_and_wait();
    });
  }
  for (auto& th : threads) th.join();
  const auto rs = dev->ring_stats();
  EXPECT_EQ(rs.thread_rings_created, 2u);
  EXPECT_EQ(rs.thread_rings_live, 0u);  // the threads have exited
  EXPECT_GE(rs.shared_ring_batches, 4u * 30 * 2);
  EXPECT_EQ(dev->stats().writes, 6u * 30 * 8);
}

TEST_F(IoUringDeviceTest, SharedRingOnlyWithMaxRingsZero) {
  DeviceOptions o = Opts(64);
  o.max_rings = 0;
  auto dev = Open(o);
  ASSERT_NE(dev, nullptr);
  EXPECT_NE(dev->Describe().find("shared ring only"), std::string::npos) << dev->Describe();
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      AlignedBuffer buf(4 * kBs, 4096);
      for (int round = 0; round < 10; ++round) {
        std::vector<uint64_t> blocks = {uint64_t(t) * 16, uint64_t(t) * 16 + 3,
                                        uint64_t(t) * 16 + 7, uint64_t(t) * 16 + 15};
        WriteReadVerify(*dev, blocks, round, buf.data());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(dev->ring_stats().thread_rings_created, 0u);
  EXPECT_EQ(dev->ring_stats().shared_ring_batches, 3u * 10 * 2);
}

// A thread on the shared ring moves to a ring of its own once a slot is free.
TEST_F(IoUringDeviceTest, SharedRingThreadTakesASlotFreedByAnExitedThread) {
  DeviceOptions o = Opts(64);
  o.max_rings = 1;
  auto dev = Open(o);
  ASSERT_NE(dev, nullptr);
  std::latch a_used(1), b_on_shared(1), a_gone(1);
  std::thread a([&] {
    AlignedBuffer buf(kBs, 4096);
    WriteReadVerify(*dev, {1}, 1, buf.data());
    a_used.count_down();
    b_on_shared.wait();
  });
  std::thread b([&] {
    AlignedBuffer buf(kBs, 4096);
    a_used.wait();
    WriteReadVerify(*dev, {2}, 2, buf.data());
    EXPECT_EQ(dev->ring_stats().shared_ring_batches, 2u);
    b_on_shared.count_down();
    a_gone.wait();
    WriteReadVerify(*dev, {3}, 3, buf.data());
  });
  a.join();
  EXPECT_EQ(dev->ring_stats().thread_rings_live, 0u);
  a_gone.count_down();
  b.join();
  const auto rs = dev->ring_stats();
  EXPECT_EQ(rs.thread_rings_created, 2u);
  EXPECT_EQ(rs.shared_ring_batches, 2u);  // b's last batches ran on its own ring
}

// Rings of exited threads are torn down and their slots reused: ten rounds of three threads
// with two slots give 20 per-thread rings, none left over.
TEST_F(IoUringDeviceTest, ThreadsThatExitGiveTheirRingsBack) {
  DeviceOptions o = Opts(64);
  o.max_rings = 2;
  o.queue_depth = 8;
  auto dev = Open(o);
  ASSERT_NE(dev, nullptr);
  for (int round = 0; round < 10; ++round) {
    std::latch alive(3);
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) {
      threads.emplace_back([&, t] {
        AlignedBuffer buf(2 * kBs, 4096);
        WriteReadVerify(*dev, {uint64_t(t) * 8 + round % 8, uint64_t(t) * 8 + 40}, round,
                        buf.data());
        alive.arrive_and_wait();
      });
    }
    for (auto& th : threads) th.join();
    ASSERT_EQ(dev->ring_stats().thread_rings_live, 0u) << "round " << round;
  }
  EXPECT_EQ(dev->ring_stats().thread_rings_created, 20u);
}

// A thread's cache is keyed by a unique device id: a new device, maybe at the address of a
// destroyed one, gets a fresh ring of its own.
TEST_F(IoUringDeviceTest, NewDeviceNeverReusesADestroyedDevicesRing) {
  for (int i = 0; i < 4; ++i) {
    DeviceOptions o = Opts(16);
    o.mode = i == 0 ? OpenMode::kCreate : OpenMode::kReadWrite;
    auto dev = Open(o);
    ASSERT_NE(dev, nullptr);
    AlignedBuffer buf(2 * kBs, 4096);
    WriteReadVerify(*dev, {uint64_t(i), uint64_t(i) + 8}, i, buf.data());
    EXPECT_EQ(dev->ring_stats().thread_rings_created, 1u);
    EXPECT_EQ(dev->ring_stats().thread_rings_live, 1u);
  }
}

TEST_F(IoUringDeviceTest, TeardownWithThreadsAliveOrGone) {
  DeviceOptions o = Opts(64);
  o.max_rings = 2;
  {
    // Threads used the device and are gone before it is destroyed.
    auto dev = Open(o);
    ASSERT_NE(dev, nullptr);
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) {
      threads.emplace_back([&, t] {
        AlignedBuffer buf(kBs, 4096);
        WriteReadVerify(*dev, {uint64_t(t)}, 1, buf.data());
      });
    }
    for (auto& th : threads) th.join();
  }
  {
    // Threads hold rings while the device is destroyed, and exit afterwards.
    o.mode = OpenMode::kReadWrite;
    auto dev = Open(o);
    ASSERT_NE(dev, nullptr);
    std::latch used(3), destroyed(1);
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) {
      threads.emplace_back([&, t] {
        AlignedBuffer buf(kBs, 4096);
        WriteReadVerify(*dev, {uint64_t(t) + 10}, 2, buf.data());
        used.count_down();
        destroyed.wait();
      });
    }
    used.wait();
    EXPECT_EQ(dev->ring_stats().thread_rings_live, 2u);
    dev.reset();
    destroyed.count_down();
    for (auto& th : threads) th.join();
  }
  // What they wrote is there.
  o.mode = OpenMode::kReadOnly;
  auto dev = Open(o);
  ASSERT_NE(dev, nullptr);
  AlignedBuffer buf(kBs, 4096);
  for (uint64_t b : {0, 1, 2}) {
    ASSERT_TRUE(dev->Read(b, 1, buf.span()).ok());
    EXPECT_TRUE(BlockIs(buf.data(), b, 1));
  }
  for (uint64_t b : {10, 11, 12}) {
    ASSERT_TRUE(dev->Read(b, 1, buf.span()).ok());
    EXPECT_TRUE(BlockIs(buf.data(), b, 2));
  }
}

TEST_F(IoUringDeviceTest, SqpollWhereTheKernelAllowsIt) {
  const uint64_t seed = vde::testing::TestSeed();
  DeviceOptions o = Opts(256);
  o.sqpoll = true;
  o.max_rings = 2;
  auto dev = Open(o);
  ASSERT_NE(dev, nullptr);
  if (!dev->sqpoll_active()) GTEST_SKIP() << "SQPOLL refused: " << Join(dev->notes());
  EXPECT_NE(dev->Describe().find("SQPOLL"), std::string::npos) << dev->Describe();
  AlignedBuffer buf(64 * kBs, 4096);
  std::vector<uint64_t> blocks(64);
  for (size_t i = 0; i < 64; ++i) blocks[i] = i * 3 + 1;
  WriteReadVerify(*dev, blocks, seed, buf.data());
  // Each batch submits without entering (unless the SQ thread slept) and enters at most once
  // to wait.
  EXPECT_LE(dev->stats().submissions, 4u);
  std::thread t([&] {
    AlignedBuffer b2(8 * kBs, 4096);
    WriteReadVerify(*dev, {200, 201, 202, 203, 210, 220, 230, 240}, seed, b2.data());
  });
  t.join();
}

TEST_F(IoUringDeviceTest, FlushIsFdatasyncAndCounted) {
  auto dev = Open(Opts(16));
  ASSERT_NE(dev, nullptr);
  AlignedBuffer buf(kBs, 4096);
  FillBlock(buf.data(), 2, 0);
  ASSERT_TRUE(dev->Write(2, 1, buf.span()).ok());
  const uint64_t before = dev->stats().submissions;
  ASSERT_TRUE(dev->Flush().ok());
  ASSERT_TRUE(dev->Flush().ok());
  EXPECT_EQ(dev->stats().flushes, 2u);
  EXPECT_GE(dev->stats().submissions - before, 2u);
  // From a thread on the shared ring too.
  DeviceOptions o = Opts(16);
  o.max_rings = 0;
  auto shared = Open(o, "shared");
  ASSERT_NE(shared, nullptr);
  ASSERT_TRUE(shared->Write(2, 1, buf.span()).ok());
  ASSERT_TRUE(shared->Flush().ok());
  EXPECT_EQ(shared->ring_stats().shared_ring_batches, 2u);
}

TEST_F(IoUringDeviceTest, ReadOnlyDeviceRefusesWriteFlushAndGrow) {
  AlignedBuffer buf(kBs, 4096);
  {
    auto dev = Open(Opts(8));
    ASSERT_NE(dev, nullptr);
    FillBlock(buf.data(), 4, 4);
    ASSERT_TRUE(dev->Write(4, 1, buf.span()).ok());
  }
  DeviceOptions o = Opts(8);
  o.mode = OpenMode::kReadOnly;
  auto dev = Open(o);
  ASSERT_NE(dev, nullptr);
  EXPECT_TRUE(dev->read_only());
  EXPECT_NE(dev->Describe().find("read-only"), std::string::npos) << dev->Describe();
  std::memset(buf.data(), 0, kBs);
  ASSERT_TRUE(dev->Read(4, 1, buf.span()).ok());
  EXPECT_TRUE(BlockIs(buf.data(), 4, 4));
  EXPECT_TRUE(dev->Write(4, 1, buf.span()).IsReadOnly());
  EXPECT_TRUE(dev->Flush().IsReadOnly());
  EXPECT_TRUE(dev->Grow(16).IsReadOnly());
  EXPECT_EQ(dev->block_count(), 8u);
  EXPECT_EQ(dev->stats().writes, 0u);
}

TEST_F(IoUringDeviceTest, GrowAddsZeroBlocksAndSerialisesGrowers) {
  auto dev = Open(Opts(8));
  ASSERT_NE(dev, nullptr);
  AlignedBuffer buf(kBs, 4096);
  EXPECT_TRUE(dev->Read(20, 1, buf.span()).IsOutOfRange());
  std::vector<std::thread> threads;
  for (uint64_t n : {16, 64, 32, 48}) {
    threads.emplace_back([&, n] { EXPECT_TRUE(dev->Grow(n).ok()); });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(dev->block_count(), 64u);
  EXPECT_TRUE(dev->Grow(10).ok());  // never shrinks
  EXPECT_EQ(dev->block_count(), 64u);
  std::memset(buf.data(), 0xAB, kBs);
  ASSERT_TRUE(dev->Read(63, 1, buf.span()).ok());
  EXPECT_TRUE(
      std::all_of(buf.data(), buf.data() + kBs, [](std::byte b) { return b == std::byte{0}; }));
  FillBlock(buf.data(), 63, 1);
  ASSERT_TRUE(dev->Write(63, 1, buf.span()).ok());
  std::memset(buf.data(), 0, kBs);
  ASSERT_TRUE(dev->Read(63, 1, buf.span()).ok());
  EXPECT_TRUE(BlockIs(buf.data(), 63, 1));
}

// A file that shrank behind the device's back: the read comes up short, is resubmitted for the
// rest (a retry), meets end of file, and fails naming the request and the path.
TEST_F(IoUringDeviceTest, ShortReadIsResubmittedThenFailsNamingBlockAndPath) {
  DeviceOptions o = Opts(16);
  o.direct_io = false;  // buffered: a read across end of file is short at the exact byte
  auto dev = Open(o);
  ASSERT_NE(dev, nullptr);
  AlignedBuffer buf(2 * kBs, 4096);
  ASSERT_EQ(::truncate(dir_.File("d").c_str(), 10 * kBs + kBs / 2), 0);
  const uint64_t retries = dev->stats().retries;
  Status s = dev->Read(10, 2, buf.span());
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_NE(s.ToString().find("read of block 10 (count 2) of " + dir_.File("d")), std::string::npos)
      << s.ToString();
  EXPECT_NE(s.ToString().find("end of file"), std::string::npos) << s.ToString();
  EXPECT_GE(dev->stats().retries - retries, 1u);
  // Blocks still inside the file read fine.
  EXPECT_TRUE(dev->Read(9, 1, buf.span().subspan(0, kBs)).ok());
}

// Single-block reads of adjacent blocks, each into its own buffer, go out as one merged READV
// (not as READ_FIXED ops) in one enter, and land in the right buffers.
TEST_F(IoUringDeviceTest, AdjacentReadsAreMergedIntoOneTransfer) {
  auto dev = Open(Opts(64));
  ASSERT_NE(dev, nullptr);
  AlignedBuffer arena(64 * kBs, 4096);
  ASSERT_TRUE(dev->RegisterMemory(arena.span()).ok());
  std::vector<uint64_t> blocks(32);
  std::iota(blocks.begin(), blocks.end(), 16);
  ASSERT_NO_FATAL_FAILURE(WriteReadVerify(*dev, blocks, 5, arena.data()));
  // Read them again into every other buffer, in reverse order.
  std::memset(arena.data(), 0, arena.size());
  std::vector<ReadRequest> r;
  for (size_t i = 0; i < blocks.size(); ++i) {
    r.push_back(ReadRequest{blocks[blocks.size() - 1 - i], 1, arena.data() + 2 * i * kBs, {}});
  }
  const DeviceStats before = dev->stats();
  ASSERT_TRUE(dev->ReadBatch(r).ok());
  const DeviceStats after = dev->stats();
  EXPECT_EQ(after.fixed_ops, before.fixed_ops);  // one READV, not 32 READ_FIXED
  EXPECT_EQ(after.submissions - before.submissions, 1u);
  EXPECT_EQ(after.reads - before.reads, 32u);  // counted per request
  for (const ReadRequest& q : r) EXPECT_TRUE(BlockIs(q.buf, q.block, 5)) << "block " << q.block;
}

// Adjacent blocks read into registered buffers that also follow each other in memory (a page
// cache's frames claimed together) need no READV: one READ_FIXED covers them. Where the buffers
// break step, the run is cut there into READ_FIXED pieces, unless the pieces are short; in
// unregistered memory it is one READV. Every block lands in its own buffer either way.
TEST_F(IoUringDeviceTest, AdjacentReadsIntoAdjacentBuffersAreOneFixedRead) {
  auto dev = Open(Opts(64));
  ASSERT_NE(dev, nullptr);
  AlignedBuffer arena(64 * kBs, 4096);
  ASSERT_TRUE(dev->RegisterMemory(arena.span()).ok());
  if (!dev->buffers_registered()) GTEST_SKIP() << "registration refused: " << Join(dev->notes());
  std::vector<uint64_t> blocks(16);
  std::iota(blocks.begin(), blocks.end(), 40);
  ASSERT_NO_FATAL_FAILURE(WriteReadVerify(*dev, blocks, 9, arena.data()));

  // Reads r into its buffers (cleared first, in `region`): every block must land in its own
  // buffer, with one enter and `fixed_ops` READ_FIXED operations.
  std::vector<ReadRequest> r;
  auto read_and_check = [&](std::byte* region, uint64_t fixed_ops) {
    std::memset(region, 0, 64 * kBs);
    const DeviceStats before = dev->stats();
    ASSERT_TRUE(dev->ReadBatch(r).ok());
    const DeviceStats after = dev->stats();
    EXPECT_EQ(after.fixed_ops - before.fixed_ops, fixed_ops);
    EXPECT_EQ(after.submissions - before.submissions, 1u);
    EXPECT_EQ(after.reads - before.reads, r.size());
    for (const ReadRequest& q : r) EXPECT_TRUE(BlockIs(q.buf, q.block, 9)) << "block " << q.block;
  };
  auto move_buffer = [&](uint64_t block, std::byte* buf) {
    for (ReadRequest& q : r) {
      if (q.block == block) q.buf = buf;
    }
  };

  // Given in shuffled order: the device sorts them by block before merging.
  for (size_t i = 0; i < blocks.size(); ++i) {
    const size_t j = (i * 7) % blocks.size();
    r.push_back(ReadRequest{blocks[j], 1, arena.data() + (8 + j) * kBs, {}});
  }
  ASSERT_NO_FATAL_FAILURE(read_and_check(arena.data(), 1));

  // Block 40's buffer out of step: two READ_FIXED pieces (40, and 41-55).
  move_buffer(40, arena.data() + 40 * kBs);
  ASSERT_NO_FATAL_FAILURE(read_and_check(arena.data(), 2));

  // Block 45's out of step too: stretches of 5 requests on average, too short to be worth an
  // operation each: one READV.
  move_buffer(45, arena.data() + 41 * kBs);
  ASSERT_NO_FATAL_FAILURE(read_and_check(arena.data(), 0));

  // The same out of registered memory: no fixed op.
  AlignedBuffer plain(64 * kBs, 4096);
  for (ReadRequest& q : r) q.buf = plain.data() + (q.buf - arena.data());
  ASSERT_NO_FATAL_FAILURE(read_and_check(plain.data(), 0));
}

// A merged read that fails (here: it runs past the end of a file truncated behind the device's
// back) is redone request by request: the requests inside the file succeed, the rest fail
// naming their own block.
TEST_F(IoUringDeviceTest, FailedMergedReadIsRedoneRequestByRequest) {
  DeviceOptions o = Opts(16);
  o.direct_io = false;  // buffered: a read across end of file is short at the exact byte
  auto dev = Open(o);
  ASSERT_NE(dev, nullptr);
  AlignedBuffer buf(8 * kBs, 4096);
  ASSERT_EQ(::truncate(dir_.File("d").c_str(), 10 * kBs), 0);
  std::vector<ReadRequest> r;
  for (uint64_t b = 6; b < 14; ++b) r.push_back(ReadRequest{b, 1, buf.data() + (b - 6) * kBs, {}});
  std::vector<int> calls(r.size(), 0);
  auto done = [&](size_t i) { calls[i]++; };
  Status s = dev->ReadBatchNotify(r, done);
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  for (size_t i = 0; i < r.size(); ++i) {
    EXPECT_EQ(calls[i], 1) << "request " << i;
    if (r[i].block < 10) {
      EXPECT_TRUE(r[i].status.ok()) << r[i].status.ToString();
    } else {
      EXPECT_TRUE(r[i].status.IsIOError()) << r[i].status.ToString();
      EXPECT_NE(r[i].status.ToString().find("block " + std::to_string(r[i].block)),
                std::string::npos)
          << r[i].status.ToString();
    }
  }
}

// A completion callback that calls back into the device (which the contract forbids) gets an
// error instead of reusing the ring mid-batch (a per-thread ring) or waiting for ever on the
// mutex its own thread holds (the shared ring); the batch it came from completes unharmed, and
// the device works normally afterwards.
TEST_F(IoUringDeviceTest, CallFromACompletionCallbackIsRefused) {
  for (const unsigned max_rings : {4u, 0u}) {
    SCOPED_TRACE(max_rings == 0 ? "shared ring" : "per-thread ring");
    DeviceOptions o = Opts(16);
    o.max_rings = max_rings;
    auto dev = Open(o, "cb" + std::to_string(max_rings));
    ASSERT_NE(dev, nullptr);
    AlignedBuffer buf(8 * kBs, 4096);
    WriteReadVerify(*dev, {0, 2, 4, 6, 9}, 7, buf.data());
    std::memset(buf.data(), 0, 8 * kBs);
    std::vector<ReadRequest> r;
    for (uint64_t b : {0, 2, 4, 6}) r.push_back(ReadRequest{b, 1, buf.data() + b / 2 * kBs, {}});
    std::vector<Status> nested;
    auto done = [&](size_t) {
      ReadRequest again{9, 1, buf.data() + 4 * kBs, {}};
      nested.push_back(dev->ReadBatch({&again, 1}));
    };
    ASSERT_TRUE(dev->ReadBatchNotify(r, done).ok());
    ASSERT_EQ(nested.size(), r.size());
    for (const Status& s : nested) {
      EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
      EXPECT_NE(s.ToString().find("completion callback"), std::string::npos) << s.ToString();
    }
    for (const ReadRequest& q : r) {
      EXPECT_TRUE(q.status.ok()) << q.status.ToString();
      EXPECT_TRUE(BlockIs(q.buf, q.block, 7)) << "block " << q.block;
    }
    ReadRequest after{9, 1, buf.data() + 4 * kBs, {}};
    ASSERT_TRUE(dev->ReadBatch({&after, 1}).ok());
    EXPECT_TRUE(BlockIs(after.buf, 9, 7));
  }
}

TEST_F(IoUringDeviceTest, DescribeNamesTheMode) {
  DeviceOptions o = Opts(8);
  o.max_rings = 4;
  o.queue_depth = 128;
  auto dev = Open(o);
  ASSERT_NE(dev, nullptr);
  const std::string d = dev->Describe();
  EXPECT_EQ(d.rfind("io_uring (", 0), 0u) << d;
  EXPECT_NE(d.find("per-thread rings 4"), std::string::npos) << d;
  EXPECT_NE(d.find("depth 128"), std::string::npos) << d;
  EXPECT_NE(d.find(dev->direct_io() ? "O_DIRECT" : "buffered"), std::string::npos) << d;
}

TEST_F(IoUringDeviceTest, OpenRejectsBadOptions) {
  DeviceOptions o = Opts(8);
  o.queue_depth = 0;
  auto r = IoUringBlockDevice::Open(dir_.File("q"), o);
  EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
  o = Opts(8);
  o.block_size = 1000;
  r = IoUringBlockDevice::Open(dir_.File("b"), o);
  EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
  o = Opts(8);
  o.mode = OpenMode::kReadWrite;
  r = IoUringBlockDevice::Open(dir_.File("missing"), o);
  EXPECT_TRUE(r.status().IsNotFound()) << r.status().ToString();
}

// Random multi-block batches, half of them from registered memory, against a model.
TEST_F(IoUringDeviceTest, RandomBatchesMatchAModel) {
  const uint64_t seed = vde::testing::TestSeed();
  std::mt19937_64 rng(seed);
  DeviceOptions o = Opts(128);
  o.queue_depth = 16;
  auto dev = Open(o);
  ASSERT_NE(dev, nullptr);
  AlignedBuffer arena(64 * kBs, 4096), plain(64 * kBs, 4096);
  ASSERT_TRUE(dev->RegisterMemory(arena.span()).ok());
  std::map<uint64_t, uint64_t> model;  // block -> salt (absent: zeros)
  for (int step = 0; step < 200; ++step) {
    std::byte* base = (rng() & 1) != 0 ? arena.data() : plain.data();
    const bool write = (rng() % 3) != 0;
    std::vector<std::pair<uint64_t, uint32_t>> extents;
    size_t used = 0;
    const size_t n = 1 + rng() % 12;
    for (size_t i = 0; i < n; ++i) {
      const uint32_t count = 1 + rng() % 4;
      if (used + count > 64) break;
      extents.emplace_back(rng() % (128 - count + 1), count);
      used += count;
    }
    if (write) {
      std::vector<WriteRequest> w;
      size_t off = 0;
      for (auto [b, c] : extents) {
        for (uint32_t k = 0; k < c; ++k) FillBlock(base + (off + k) * kBs, b + k, step);
        w.push_back(WriteRequest{b, c, base + off * kBs, {}});
        off += c;
      }
      ASSERT_TRUE(dev->WriteBatch(w).ok());
      for (auto [b, c] : extents) {
        for (uint32_t k = 0; k < c; ++k) model[b + k] = step;
      }
    } else {
      std::vector<ReadRequest> r;
      size_t off = 0;
      for (auto [b, c] : extents) {
        r.push_back(ReadRequest{b, c, base + off * kBs, {}});
        off += c;
      }
      ASSERT_TRUE(dev->ReadBatch(r).ok());
      off = 0;
      for (auto [b, c] : extents) {
        for (uint32_t k = 0; k < c; ++k) {
          const std::byte* p = base + (off + k) * kBs;
          auto it = model.find(b + k);
          if (it == model.end()) {
            ASSERT_TRUE(std::all_of(p, p + kBs, [](std::byte x) { return x == std::byte{0}; }))
                << "step " << step << " block " << b + k;
          } else {
            ASSERT_TRUE(BlockIs(p, b + k, it->second)) << "step " << step << " block " << b + k;
          }
        }
        off += c;
      }
    }
  }
  if (dev->buffers_registered()) {
    EXPECT_GT(dev->stats().fixed_ops, 0u);
  }
}

}  // namespace
}  // namespace vde::blockdev
