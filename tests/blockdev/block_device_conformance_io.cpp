// The I/O contract of BlockDevice: what is written is read back, singly, in batches of any
// size and order, across flush and reopen, across growth, at every block size.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "tests/blockdev/block_device_conformance.h"

namespace vde::blockdev::conformance {

void BlockDeviceConformance::RunAtBlockSize(uint32_t bs) {
  constexpr uint64_t kBlocks = 32;
  const std::string path = dir_.File("bs" + std::to_string(bs) + ".vdisk");
  std::unique_ptr<BlockDevice> dev;
  ASSERT_NO_FATAL_FAILURE(OpenOrSkip(CreateOptions(bs, kBlocks), &dev, path));
  if (dev == nullptr) return;  // skipped
  ASSERT_EQ(dev->block_size(), bs);
  ASSERT_EQ(dev->block_count(), kBlocks);
  std::mt19937_64 rng(testing::TestSeed());
  Model model(bs, kBlocks);
  for (int i = 0; i < 12; ++i) {
    arena_.Reset();
    uint32_t count = 1 + static_cast<uint32_t>(rng() % 4);
    uint64_t block = rng() % (kBlocks - count + 1);
    ASSERT_NO_FATAL_FAILURE(WriteRandom(*dev, model, block, count, rng));
    ASSERT_NO_FATAL_FAILURE(ExpectBlocks(*dev, model, block, count));
  }
  arena_.Reset();
  // A batch of single blocks in random order, then the whole device in one read.
  std::vector<uint64_t> blocks(kBlocks);
  std::iota(blocks.begin(), blocks.end(), 0);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  auto out = arena_.Carve(kBlocks * bs);
  std::vector<ReadRequest> reads;
  for (size_t i = 0; i < blocks.size(); ++i) {
    reads.push_back(ReadRequest{blocks[i], 1, out.data() + i * bs, Status::OK()});
  }
  Status s = dev->ReadBatch(reads);
  ASSERT_TRUE(s.ok()) << Show(s);
  for (size_t i = 0; i < blocks.size(); ++i) {
    ASSERT_TRUE(SameBlocks(out.subspan(i * bs, bs), model.Blocks(blocks[i], 1), blocks[i], bs));
  }
  ASSERT_NO_FATAL_FAILURE(ExpectBlocks(*dev, model, 0, kBlocks));
  s = dev->Flush();
  ASSERT_TRUE(s.ok()) << Show(s);
  if (!persistent()) return;
  dev.reset();
  ASSERT_NO_FATAL_FAILURE(OpenOrSkip(ReopenOptions(bs, OpenMode::kReadWrite), &dev, path));
  if (dev == nullptr) return;
  ASSERT_EQ(dev->block_count(), kBlocks);
  ASSERT_NO_FATAL_FAILURE(ExpectBlocks(*dev, model, 0, kBlocks));
}

TEST_P(BlockDeviceConformance, NewDeviceHasItsGeometryAndReadsZeros) {
  VDE_OPEN_DEVICE(dev, CreateOptions(4096, 64));
  EXPECT_EQ(dev->block_size(), 4096u);
  EXPECT_EQ(dev->block_count(), 64u);
  EXPECT_FALSE(dev->read_only());
  EXPECT_FALSE(dev->Describe().empty());
  size_t a = dev->alignment();
  EXPECT_TRUE(a >= 1 && a <= Arena::kAlign && (a & (a - 1)) == 0) << "alignment " << a;
  if (persistent()) {
    EXPECT_EQ(dev->path(), path_);
  }
  auto buf = arena_.Carve(64 * 4096);
  std::mt19937_64 rng(1);
  FillRandom(buf, rng);  // so zeros must come from the device
  Status s = dev->Read(0, 64, buf);
  ASSERT_TRUE(s.ok()) << Show(s);
  EXPECT_TRUE(AllZero(buf));
}

TEST_P(BlockDeviceConformance, ReadAfterWriteSingleBlock) {
  constexpr uint64_t kBlocks = 256;
  VDE_OPEN_DEVICE(dev, CreateOptions(4096, kBlocks));
  std::mt19937_64 rng(testing::TestSeed());
  Model model(4096, kBlocks);
  std::vector<uint64_t> written;
  for (int i = 0; i < 48; ++i) {
    arena_.Reset();
    uint64_t block = i == 0 ? 0 : i == 1 ? kBlocks - 1 : rng() % kBlocks;
    ASSERT_NO_FATAL_FAILURE(WriteRandom(*dev, model, block, 1, rng));
    ASSERT_NO_FATAL_FAILURE(ExpectBlocks(*dev, model, block, 1));
    written.push_back(block);
  }
  // Later writes did not disturb earlier ones.
  for (uint64_t block : written) {
    arena_.Reset();
    ASSERT_NO_FATAL_FAILURE(ExpectBlocks(*dev, model, block, 1));
  }
}

TEST_P(BlockDeviceConformance, ReadAfterWriteMultiBlock) {
  constexpr uint64_t kBlocks = 256;
  VDE_OPEN_DEVICE(dev, CreateOptions(4096, kBlocks));
  std::mt19937_64 rng(testing::TestSeed());
  Model model(4096, kBlocks);
  for (int i = 0; i < 24; ++i) {
    arena_.Reset();
    uint32_t count = 2 + static_cast<uint32_t>(rng() % 63);
    uint64_t block = rng() % (kBlocks - count + 1);
    ASSERT_NO_FATAL_FAILURE(WriteRandom(*dev, model, block, count, rng));
    ASSERT_NO_FATAL_FAILURE(ExpectBlocks(*dev, model, block, count));
    // Read ranges that straddle the write's edges.
    uint64_t from = block > 3 ? block - 3 : 0;
    uint64_t to = std::min(kBlocks, block + count + 3);
    ASSERT_NO_FATAL_FAILURE(ExpectBlocks(*dev, model, from, to - from));
  }
  arena_.Reset();
  ASSERT_NO_FATAL_FAILURE(ExpectBlocks(*dev, model, 0, kBlocks));
}

// Batches of 1 to 1000 single-block requests for distinct random blocks, larger than any queue
// depth the configurations use; read back in a different order, in batches with repeats.
TEST_P(BlockDeviceConformance, RandomBatchesOfOneToAThousandBlocks) {
  constexpr uint32_t kBs = 4096;
  constexpr uint64_t kBlocks = 2048;
  VDE_OPEN_DEVICE(dev, CreateOptions(kBs, kBlocks));
  std::mt19937_64 rng(testing::TestSeed());
  Model model(kBs, kBlocks);
  std::vector<size_t> sizes = {1, 2, 15, 16, 17, 33, 100, 257, 1000};
  sizes.push_back(1 + rng() % 1000);
  std::vector<uint64_t> all(kBlocks);
  std::iota(all.begin(), all.end(), 0);
  for (size_t n : sizes) {
    SCOPED_TRACE("batch of " + std::to_string(n));
    arena_.Reset();
    std::shuffle(all.begin(), all.end(), rng);
    auto in = arena_.Carve(n * kBs);
    auto out = arena_.Carve(n * kBs);
    FillRandom(in, rng);
    std::vector<WriteRequest> writes;
    for (size_t i = 0; i < n; ++i) {
      writes.push_back(WriteRequest{all[i], 1, in.data() + i * kBs, Status::Busy("unset")});
    }
    DeviceStats before = dev->stats();
    Status s = dev->WriteBatch(writes);
    ASSERT_TRUE(s.ok()) << Show(s);
    DeviceStats after = dev->stats();
    EXPECT_EQ(after.writes - before.writes, n);
    EXPECT_EQ(after.blocks_written - before.blocks_written, n);
    EXPECT_EQ(after.batches - before.batches, 1u);
    for (size_t i = 0; i < n; ++i) {
      ASSERT_TRUE(writes[i].status.ok()) << "request " << i << ": " << Show(writes[i].status);
      model.Write(all[i], in.subspan(i * kBs, kBs));
    }
    // Read back what was written, in another order, plus random blocks (repeats allowed).
    std::vector<uint64_t> targets(all.begin(), all.begin() + static_cast<ptrdiff_t>(n));
    std::shuffle(targets.begin(), targets.end(), rng);
    for (size_t i = 0; i < n / 4; ++i) targets[i] = rng() % kBlocks;
    std::vector<ReadRequest> reads;
    for (size_t i = 0; i < n; ++i) {
      reads.push_back(ReadRequest{targets[i], 1, out.data() + i * kBs, Status::Busy("unset")});
    }
    s = dev->ReadBatch(reads);
    ASSERT_TRUE(s.ok()) << Show(s);
    for (size_t i = 0; i < n; ++i) {
      ASSERT_TRUE(reads[i].status.ok()) << "request " << i << ": " << Show(reads[i].status);
      ASSERT_TRUE(
          SameBlocks(out.subspan(i * kBs, kBs), model.Blocks(targets[i], 1), targets[i], kBs));
    }
  }
}

// Multi-block requests in one batch, some adjacent (which a device may coalesce), in any order.
TEST_P(BlockDeviceConformance, BatchesOfMultiBlockAndAdjacentRequests) {
  constexpr uint32_t kBs = 4096;
  constexpr uint64_t kBlocks = 1024;
  constexpr uint64_t kSlot = 8;  // requests fall inside distinct 8-block slots: no overlaps
  VDE_OPEN_DEVICE(dev, CreateOptions(kBs, kBlocks));
  std::mt19937_64 rng(testing::TestSeed());
  Model model(kBs, kBlocks);
  std::vector<uint64_t> slots(kBlocks / kSlot);
  std::iota(slots.begin(), slots.end(), 0);
  for (int round = 0; round < 8; ++round) {
    arena_.Reset();
    std::vector<WriteRequest> writes;
    if (round % 2 == 0) {
      // Random extents in random slots; full slots next to each other are adjacent.
      std::shuffle(slots.begin(), slots.end(), rng);
      size_t n = 1 + rng() % 64;
      for (size_t i = 0; i < n; ++i) {
        bool full = rng() % 2 == 0;
        uint64_t off = full ? 0 : rng() % kSlot;
        auto count = static_cast<uint32_t>(full ? kSlot : 1 + rng() % (kSlot - off));
        writes.push_back(WriteRequest{slots[i] * kSlot + off, count, nullptr, Status::OK()});
      }
    } else {
      // One contiguous run split into requests of 1-5 blocks, submitted in shuffled order.
      uint64_t at = rng() % (kBlocks - 200);
      uint64_t end = at + 50 + rng() % 150;
      while (at < end) {
        auto count = static_cast<uint32_t>(std::min<uint64_t>(1 + rng() % 5, end - at));
        writes.push_back(WriteRequest{at, count, nullptr, Status::OK()});
        at += count;
      }
      std::shuffle(writes.begin(), writes.end(), rng);
    }
    for (auto& w : writes) {
      auto buf = arena_.Carve(static_cast<size_t>(w.count) * kBs);
      FillRandom(buf, rng);
      w.buf = buf.data();
      model.Write(w.block, buf);
    }
    Status s = dev->WriteBatch(writes);
    ASSERT_TRUE(s.ok()) << Show(s);
    // Read the same extents back in reverse order, and one extent twice.
    std::vector<ReadRequest> reads;
    for (auto it = writes.rbegin(); it != writes.rend(); ++it) {
      reads.push_back(ReadRequest{it->block, it->count, nullptr, Status::OK()});
    }
    reads.push_back(reads.front());
    for (auto& r : reads) r.buf = arena_.Carve(static_cast<size_t>(r.count) * kBs).data();
    s = dev->ReadBatch(reads);
    ASSERT_TRUE(s.ok()) << Show(s);
    for (const auto& r : reads) {
      std::span<const std::byte> got(r.buf, static_cast<size_t>(r.count) * kBs);
      ASSERT_TRUE(SameBlocks(got, model.Blocks(r.block, r.count), r.block, kBs));
    }
  }
  arena_.Reset();
  ASSERT_NO_FATAL_FAILURE(ExpectBlocks(*dev, model, 0, kBlocks));
}

// ReadBatchNotify reports every request exactly once, with its status final and its data in
// place, whether the device merges adjacent reads (io_uring, file) or not; a merged run whose
// neighbour is bad still reads its good requests.
TEST_P(BlockDeviceConformance, ReadBatchNotifyReportsEachRequestOnceWithItsData) {
  constexpr uint32_t kBs = 4096;
  constexpr uint64_t kBlocks = 1024;
  VDE_OPEN_DEVICE(dev, CreateOptions(kBs, kBlocks));
  std::mt19937_64 rng(testing::TestSeed());
  Model model(kBs, kBlocks);
  {
    arena_.Reset();
    auto in = arena_.Carve(kBlocks * kBs);
    FillRandom(in, rng);
    model.Write(0, in);
    Status s = dev->Write(0, kBlocks, in);
    ASSERT_TRUE(s.ok()) << Show(s);
  }
  for (int round = 0; round < 6; ++round) {
    arena_.Reset();
    std::vector<ReadRequest> reads;
    // A run of single-block requests for consecutive blocks (more than one merged read holds),
    // in separate buffers; then random blocks and extents, and a duplicate.
    const uint64_t run_at = rng() % (kBlocks - 400);
    const uint64_t run_len = 1 + rng() % 400;
    for (uint64_t b = run_at; b < run_at + run_len; ++b) reads.push_back({b, 1, nullptr, {}});
    for (int i = 0; i < 40; ++i) {
      auto count = static_cast<uint32_t>(1 + rng() % 4);
      reads.push_back({rng() % (kBlocks - count + 1), count, nullptr, {}});
    }
    reads.push_back(reads[reads.size() / 2]);
    std::shuffle(reads.begin(), reads.end(), rng);
    for (auto& r : reads) r.buf = arena_.Carve(size_t{r.count} * kBs).data();
    const size_t bad = round % 2 == 1 ? rng() % reads.size() : reads.size();
    if (bad < reads.size()) reads[bad].count = 0;  // rejected; its neighbours still read
    std::vector<int> calls(reads.size(), 0);
    bool all_final = true;
    auto done = [&](size_t i) {
      ASSERT_LT(i, reads.size());
      calls[i]++;
      const ReadRequest& r = reads[i];
      if (i == bad) {
        all_final &= r.status.IsInvalidArgument();
        return;
      }
      all_final &= r.status.ok();
      // The data is in place when the request is reported, not only when the batch returns.
      all_final &=
          SameBlocks({r.buf, size_t{r.count} * kBs}, model.Blocks(r.block, r.count), r.block, kBs);
    };
    Status s = dev->ReadBatchNotify(reads, done);
    EXPECT_EQ(s.ok(), bad == reads.size()) << Show(s);
    EXPECT_TRUE(all_final) << "round " << round;
    for (size_t i = 0; i < reads.size(); ++i) {
      ASSERT_EQ(calls[i], 1) << "request " << i << " of round " << round;
    }
  }
}

TEST_P(BlockDeviceConformance, EmptyBatchIsOk) {
  VDE_OPEN_DEVICE(dev, CreateOptions(4096, 16));
  Status s = dev->ReadBatch({});
  EXPECT_TRUE(s.ok()) << Show(s);
  s = dev->WriteBatch({});
  EXPECT_TRUE(s.ok()) << Show(s);
}

TEST_P(BlockDeviceConformance, FlushThenReopenKeepsData) {
  constexpr uint64_t kBlocks = 512;
  VDE_OPEN_DEVICE(dev, CreateOptions(4096, kBlocks));
  std::mt19937_64 rng(testing::TestSeed());
  Model model(4096, kBlocks);
  for (int i = 0; i < 16; ++i) {
    uint32_t count = 1 + static_cast<uint32_t>(rng() % 8);
    ASSERT_NO_FATAL_FAILURE(WriteRandom(*dev, model, rng() % (kBlocks - count + 1), count, rng));
  }
  DeviceStats before = dev->stats();
  Status s = dev->Flush();
  ASSERT_TRUE(s.ok()) << Show(s);
  EXPECT_EQ(dev->stats().flushes - before.flushes, 1u);
  arena_.Reset();
  ASSERT_NO_FATAL_FAILURE(ExpectBlocks(*dev, model, 0, kBlocks));
  if (!persistent()) return;  // nothing to reopen

  dev.reset();
  OpenOrSkip(ReopenOptions(4096, OpenMode::kReadWrite), &dev);
  if (dev == nullptr) return;
  ASSERT_EQ(dev->block_count(), kBlocks);
  arena_.Reset();
  ASSERT_NO_FATAL_FAILURE(ExpectBlocks(*dev, model, 0, kBlocks));
  // Write more, flush, and reopen read-only.
  ASSERT_NO_FATAL_FAILURE(WriteRandom(*dev, model, kBlocks - 3, 3, rng));
  s = dev->Flush();
  ASSERT_TRUE(s.ok()) << Show(s);
  dev.reset();
  OpenOrSkip(ReopenOptions(4096, OpenMode::kReadOnly), &dev);
  if (dev == nullptr) return;
  EXPECT_TRUE(dev->read_only());
  arena_.Reset();
  ASSERT_NO_FATAL_FAILURE(ExpectBlocks(*dev, model, 0, kBlocks));
}

TEST_P(BlockDeviceConformance, GrowAddsZeroedBlocksAndKeepsData) {
  constexpr uint64_t kOld = 64, kNew = 200;
  VDE_OPEN_DEVICE(dev, CreateOptions(4096, kOld));
  std::mt19937_64 rng(testing::TestSeed());
  Model model(4096, kOld);
  ASSERT_NO_FATAL_FAILURE(WriteRandom(*dev, model, 0, kOld, rng));
  auto one = arena_.Carve(4096);
  Status s = dev->Read(kOld, 1, one);
  ASSERT_TRUE(s.IsOutOfRange()) << Show(s);

  s = dev->Grow(kNew);
  ASSERT_TRUE(s.ok()) << Show(s);
  ASSERT_EQ(dev->block_count(), kNew);
  model.Grow(kNew);
  arena_.Reset();
  ASSERT_NO_FATAL_FAILURE(ExpectBlocks(*dev, model, 0, kNew));          // old intact, new zeros
  ASSERT_NO_FATAL_FAILURE(WriteRandom(*dev, model, kOld - 1, 2, rng));  // spans old end
  ASSERT_NO_FATAL_FAILURE(WriteRandom(*dev, model, kNew - 1, 1, rng));
  ASSERT_NO_FATAL_FAILURE(ExpectBlocks(*dev, model, kOld - 2, 4));
  ASSERT_NO_FATAL_FAILURE(ExpectBlocks(*dev, model, kNew - 1, 1));
  s = dev->Read(kNew, 1, one);
  EXPECT_TRUE(s.IsOutOfRange()) << Show(s);
  s = dev->Read(kNew - 1, 2, arena_.Carve(2 * 4096));
  EXPECT_TRUE(s.IsOutOfRange()) << Show(s);

  // Devices never shrink: a smaller or equal count does nothing.
  s = dev->Grow(kOld);
  EXPECT_TRUE(s.ok()) << Show(s);
  s = dev->Grow(kNew);
  EXPECT_TRUE(s.ok()) << Show(s);
  EXPECT_EQ(dev->block_count(), kNew);

  s = dev->Flush();
  ASSERT_TRUE(s.ok()) << Show(s);
  if (!persistent()) return;
  dev.reset();
  OpenOrSkip(ReopenOptions(4096, OpenMode::kReadWrite), &dev);
  if (dev == nullptr) return;
  ASSERT_EQ(dev->block_count(), kNew);
  arena_.Reset();
  ASSERT_NO_FATAL_FAILURE(ExpectBlocks(*dev, model, 0, kNew));
}

TEST_P(BlockDeviceConformance, BlockSize512) {
  RunAtBlockSize(512);
}
TEST_P(BlockDeviceConformance, BlockSize4096) {
  RunAtBlockSize(4096);
}
TEST_P(BlockDeviceConformance, BlockSize65536) {
  RunAtBlockSize(65536);
}

TEST_P(BlockDeviceConformance, CountersTrackCompletedRequests) {
  VDE_OPEN_DEVICE(dev, CreateOptions(4096, 64));
  auto buf = arena_.Carve(8 * 4096);
  DeviceStats a = dev->stats();
  Status s = dev->Write(3, 4, buf.first(4 * 4096));
  ASSERT_TRUE(s.ok()) << Show(s);
  std::vector<ReadRequest> reads = {
      {0, 1, buf.data(), {}}, {10, 2, buf.data() + 4096, {}}, {20, 5, buf.data() + 3 * 4096, {}}};
  s = dev->ReadBatch(reads);
  ASSERT_TRUE(s.ok()) << Show(s);
  s = dev->Flush();
  ASSERT_TRUE(s.ok()) << Show(s);
  DeviceStats b = dev->stats();
  EXPECT_EQ(b.writes - a.writes, 1u);
  EXPECT_EQ(b.blocks_written - a.blocks_written, 4u);
  EXPECT_EQ(b.reads - a.reads, 3u);
  EXPECT_EQ(b.blocks_read - a.blocks_read, 8u);
  EXPECT_EQ(b.batches - a.batches, 2u);
  EXPECT_EQ(b.flushes - a.flushes, 1u);
  EXPECT_GE(b.submissions, a.submissions);
  EXPECT_GE(b.retries, a.retries);
}

}  // namespace vde::blockdev::conformance
