// The concurrency contract of BlockDevice: six threads (more than the per-thread rings of the
// io_uring configurations, so some share a ring) read and write at once.
//
// The device is laid out as
//   [shared]      written before the threads start, then read by all of them (overlapping reads)
//   [private t]   one region per thread, written and read by it alone: verified exactly
//   [contested]   written and read by every thread at once (overlapping writes)
// The contract promises nothing about the content of a read that races a write to the same
// block, nor which of two racing writes wins; it does promise that a completed write is not
// lost or torn below the sector. So contested blocks carry a stamp (block, writer, sequence) in
// every 512-byte sector, and once the threads have finished, every sector must hold the last
// write its writer made to that block.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <latch>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/blockdev/block_device_conformance.h"

namespace vde::blockdev::conformance {
namespace {

struct SectorStamp {
  uint64_t block = 0;
  uint32_t writer = 0;
  uint32_t seq = 0;
};

constexpr size_t kStampSector = 512;

uint64_t SplitMix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Fills sector `index` of a block with its stamp: 16 header bytes, then bytes derived from them.
void StampSector(std::byte* p, size_t index, const SectorStamp& st) {
  uint64_t tag = (uint64_t{st.writer} << 32) | st.seq;
  std::memcpy(p, &st.block, 8);
  std::memcpy(p + 8, &tag, 8);
  uint64_t x = st.block ^ (tag * 31) ^ (uint64_t{index} << 52);
  for (size_t i = 16; i < kStampSector; i += 8) {
    uint64_t v = SplitMix64(x);
    std::memcpy(p + i, &v, 8);
  }
}

void StampBlocks(std::span<std::byte> buf, uint32_t bs, uint64_t first_block, uint32_t writer,
                 uint32_t seq) {
  for (size_t off = 0; off < buf.size(); off += kStampSector) {
    SectorStamp st{first_block + off / bs, writer, seq};
    StampSector(buf.data() + off, (off % bs) / kStampSector, st);
  }
}

// Decodes sector `index` of a block; false when it is not an intact stamp (zero or torn).
bool ReadStamp(const std::byte* p, size_t index, SectorStamp* out) {
  uint64_t block, tag;
  std::memcpy(&block, p, 8);
  std::memcpy(&tag, p + 8, 8);
  SectorStamp st{block, static_cast<uint32_t>(tag >> 32), static_cast<uint32_t>(tag)};
  std::byte want[kStampSector];
  StampSector(want, index, st);
  if (std::memcmp(want, p, kStampSector) != 0) return false;
  *out = st;
  return true;
}

// The layout of the concurrency test's device, in blocks of kBs bytes.
struct ConcurrencyLayout {
  static constexpr uint32_t kBs = 4096;
  static constexpr int kThreads = 6;
  static constexpr int kOps = 150;
  static constexpr uint64_t kShared = 64, kPrivate = 64, kContested = 16;
  static constexpr uint64_t kPrivateAt = kShared;
  static constexpr uint64_t kContestedAt = kPrivateAt + kThreads * kPrivate;
  static constexpr uint64_t kBlocks = kContestedAt + kContested;
  static constexpr uint64_t kSlot = 4;  // private writes in one batch fall in distinct slots
};

// One thread's state: its buffers, the model of its private region, and for each contested
// block the sequence number of its last write there (0: never written).
struct ConcurrencyWorker {
  using L = ConcurrencyLayout;
  std::span<std::byte> wbuf, rbuf;
  Model own{L::kBs, L::kPrivate};
  std::vector<uint32_t> last_seq = std::vector<uint32_t>(L::kContested, 0);
  std::string error;  // the first failure
};

}  // namespace

TEST_P(BlockDeviceConcurrency, SixThreadsOnDisjointAndOverlappingRegions) {
  using L = ConcurrencyLayout;
  constexpr uint32_t kBs = L::kBs;
  constexpr int kThreads = L::kThreads;
  constexpr uint64_t kShared = L::kShared, kPrivate = L::kPrivate, kContested = L::kContested;
  constexpr uint64_t kPrivateAt = L::kPrivateAt, kContestedAt = L::kContestedAt;
  constexpr uint64_t kSlot = L::kSlot;
  VDE_OPEN_DEVICE(dev, CreateOptions(kBs, L::kBlocks));
  const uint64_t seed = testing::TestSeed();
  std::mt19937_64 rng(seed);
  Model shared(kBs, kShared);
  ASSERT_NO_FATAL_FAILURE(WriteRandom(*dev, shared, 0, kShared, rng));

  std::vector<ConcurrencyWorker> workers(kThreads);
  for (auto& w : workers) {  // carved before the threads start: Carve is not thread-safe
    w.wbuf = arena_.Carve(6 * kSlot * kBs);
    w.rbuf = arena_.Carve(6 * kSlot * kBs);
  }

  BlockDevice& d = *dev;
  std::latch start(kThreads);
  auto body = [&](int id) {
    ConcurrencyWorker& me = workers[static_cast<size_t>(id)];
    std::mt19937_64 r(seed + 1 + static_cast<uint64_t>(id));
    const uint64_t mine = kPrivateAt + static_cast<uint64_t>(id) * kPrivate;
    uint32_t seq = 0;
    auto fail = [&](const std::string& what, const Status& s) {
      me.error = "thread " + std::to_string(id) + ": " + what + ": " + Show(s);
    };
    start.arrive_and_wait();
    for (int op = 0; op < L::kOps && me.error.empty(); ++op) {
      switch (r() % 6) {
        case 0:
        case 1: {  // write a batch into my region
          std::vector<uint64_t> slots(kPrivate / kSlot);
          std::iota(slots.begin(), slots.end(), 0);
          std::shuffle(slots.begin(), slots.end(), r);
          std::vector<WriteRequest> ws;
          size_t used = 0;
          for (size_t i = 0, n = 1 + r() % 6; i < n; ++i) {
            uint64_t off = r() % kSlot;
            auto count = static_cast<uint32_t>(1 + r() % (kSlot - off));
            std::span<std::byte> buf = me.wbuf.subspan(used, size_t{count} * kBs);
            used += buf.size();
            FillRandom(buf, r);
            ws.push_back(WriteRequest{mine + slots[i] * kSlot + off, count, buf.data(), {}});
          }
          Status s = d.WriteBatch(ws);
          if (!s.ok()) return fail("private write batch", s);
          for (const auto& w : ws) {
            me.own.Write(w.block - mine, {w.buf, size_t{w.count} * kBs});
          }
          break;
        }
        case 2:
        case 3: {  // read a batch from my region, or from the shared one; verify exactly
          bool from_shared = r() % 2 == 0;
          const Model& model = from_shared ? shared : me.own;
          const uint64_t base = from_shared ? 0 : mine;
          std::vector<ReadRequest> rs;
          size_t used = 0;
          for (size_t i = 0, n = 1 + r() % 6; i < n; ++i) {
            auto count = static_cast<uint32_t>(1 + r() % kSlot);
            uint64_t at = r() % (kPrivate - count + 1);
            rs.push_back(ReadRequest{base + at, count, me.rbuf.data() + used, {}});
            used += size_t{count} * kBs;
          }
          Status s = d.ReadBatch(rs);
          if (!s.ok()) return fail("read batch", s);
          for (const auto& q : rs) {
            auto ok = SameBlocks({q.buf, size_t{q.count} * kBs},
                                 model.Blocks(q.block - base, q.count), q.block, kBs);
            if (!ok) return fail(ok.message(), Status::Corruption("data mismatch"));
          }
          break;
        }
        case 4: {  // stamp 1 or 2 contested blocks
          auto count = static_cast<uint32_t>(1 + r() % 2);
          uint64_t at = r() % (kContested - count + 1);
          std::span<std::byte> buf = me.wbuf.first(size_t{count} * kBs);
          ++seq;
          StampBlocks(buf, kBs, kContestedAt + at, static_cast<uint32_t>(id), seq);
          Status s = d.Write(kContestedAt + at, count, buf);
          if (!s.ok()) return fail("contested write", s);
          for (uint32_t i = 0; i < count; ++i) me.last_seq[at + i] = seq;
          break;
        }
        default: {  // racing reads: contested blocks or another thread's region; must succeed
          bool contested = r() % 2 == 0;
          uint64_t at = contested ? kContestedAt + r() % (kContested - 3)
                                  : kPrivateAt + r() % (kThreads * kPrivate - 3);
          Status s = d.Read(at, 4, me.rbuf.first(4 * kBs));
          if (!s.ok()) return fail("racing read", s);
          break;
        }
      }
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(body, i);
  for (auto& t : threads) t.join();
  for (const auto& w : workers) EXPECT_EQ(w.error, "");
  if (HasFailure()) return;

  // Every region holds what its model says.
  arena_.Reset();
  ASSERT_NO_FATAL_FAILURE(ExpectBlocks(*dev, shared, 0, kShared));
  for (int i = 0; i < kThreads; ++i) {
    SCOPED_TRACE("private region of thread " + std::to_string(i));
    auto buf = arena_.Carve(kPrivate * kBs);
    uint64_t at = kPrivateAt + static_cast<uint64_t>(i) * kPrivate;
    Status s = dev->Read(at, kPrivate, buf);
    ASSERT_TRUE(s.ok()) << Show(s);
    EXPECT_TRUE(SameBlocks(buf, workers[static_cast<size_t>(i)].own.Blocks(0, kPrivate), at, kBs));
  }
  auto buf = arena_.Carve(kContested * kBs);
  Status s = dev->Read(kContestedAt, kContested, buf);
  ASSERT_TRUE(s.ok()) << Show(s);
  for (uint64_t b = 0; b < kContested; ++b) {
    bool written = false;
    for (const auto& w : workers) written = written || w.last_seq[b] != 0;
    for (size_t sec = 0; sec < kBs / kStampSector; ++sec) {
      const std::byte* p = buf.data() + b * kBs + sec * kStampSector;
      if (!written) {
        ASSERT_TRUE(AllZero({p, kStampSector})) << "unwritten block " << kContestedAt + b;
        continue;
      }
      SectorStamp st;
      ASSERT_TRUE(ReadStamp(p, sec, &st))
          << "block " << kContestedAt + b << " sector " << sec << " is torn or lost";
      ASSERT_EQ(st.block, kContestedAt + b) << "misdirected write in sector " << sec;
      ASSERT_LT(st.writer, static_cast<uint32_t>(kThreads));
      EXPECT_EQ(st.seq, workers[st.writer].last_seq[b])
          << "block " << kContestedAt + b << " sector " << sec << " holds write " << st.seq
          << " of thread " << st.writer << ", which wrote it again later";
    }
  }
}

}  // namespace vde::blockdev::conformance
