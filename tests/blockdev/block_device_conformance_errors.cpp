// The error contract of BlockDevice: every bad input fails with its Status code and a message
// naming the path and the block, leaves the device unchanged, and in a batch fails only its own
// request.

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tests/blockdev/block_device_conformance.h"

namespace vde::blockdev::conformance {

void BlockDeviceErrors::ExpectError(const Status& s, Status::Code code, const BlockDevice& dev,
                                    const std::string& what) {
  EXPECT_EQ(s.code(), code) << Show(s);
  EXPECT_NE(s.ToString().find(dev.path()), std::string::npos) << "no path in: " << Show(s);
  if (!what.empty()) {
    EXPECT_NE(s.ToString().find(what), std::string::npos) << "no '" << what << "' in " << Show(s);
  }
}

void BlockDeviceErrors::ExpectOpenFails(const std::string& path, const DeviceOptions& opts,
                                        Status::Code code) {
  auto r = TryOpenAt(path, opts);
  if (r.ok() && !r->skip.empty()) GTEST_SKIP() << r->skip;
  ASSERT_FALSE(r.ok()) << "open of " << path << " succeeded";
  EXPECT_EQ(r.error().code(), code) << Show(r.error());
  EXPECT_NE(r.error().ToString().find(path), std::string::npos) << Show(r.error());
}

void BlockDeviceErrors::MakeFile(const std::string& path, uint64_t bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(bytes)), 0) << path;
  ASSERT_EQ(::close(fd), 0);
}

TEST_P(BlockDeviceErrors, PastTheEndIsOutOfRangeNamingPathAndBlock) {
  constexpr uint64_t kBlocks = 100;
  VDE_OPEN_DEVICE(dev, CreateOptions(4096, kBlocks));
  auto buf = arena_.Carve(4 * 4096);
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  struct Case {
    uint64_t block;
    uint32_t count;
  };
  const Case cases[] = {{kBlocks, 1},  {kBlocks - 1, 2}, {kBlocks - 3, 4},
                        {1000000, 1},  {kMax, 1},        {kMax - 1, 3},
                        {kMax - 2, 4}, {0, 101},         {50, 0xffffffffu}};
  for (const Case& c : cases) {
    SCOPED_TRACE("block " + std::to_string(c.block) + " count " + std::to_string(c.count));
    // Batches do not check the buffer size, so any count can be asked for with a small buffer.
    ReadRequest r{c.block, c.count, buf.data(), {}};
    Status s = dev->ReadBatch({&r, 1});
    ExpectError(s, Status::Code::kOutOfRange, *dev, std::to_string(c.block));
    ExpectError(r.status, Status::Code::kOutOfRange, *dev, std::to_string(c.block));
    WriteRequest w{c.block, c.count, buf.data(), {}};
    s = dev->WriteBatch({&w, 1});
    ExpectError(s, Status::Code::kOutOfRange, *dev, std::to_string(c.block));
    if (c.count <= 4) {
      auto span = buf.first(size_t{c.count} * 4096);
      ExpectError(dev->Read(c.block, c.count, span), Status::Code::kOutOfRange, *dev);
      ExpectError(dev->Write(c.block, c.count, span), Status::Code::kOutOfRange, *dev);
    }
  }
  // Nothing was written: the last blocks are still zero, and the device did not grow.
  EXPECT_EQ(dev->block_count(), kBlocks);
  Status s = dev->Read(kBlocks - 4, 4, buf);
  ASSERT_TRUE(s.ok()) << Show(s);
  EXPECT_TRUE(AllZero(buf));
}

TEST_P(BlockDeviceErrors, MisalignedBufferIsInvalidArgument) {
  VDE_OPEN_DEVICE(dev, CreateOptions(4096, 16));
  const size_t a = dev->alignment();
  if (a <= 1) GTEST_SKIP() << dev->Describe() << " requires no buffer alignment";
  auto region = arena_.Carve(3 * 4096);
  std::mt19937_64 rng(7);
  FillRandom(region, rng);
  for (size_t off : {size_t{1}, a / 2}) {
    SCOPED_TRACE("buffer misaligned by " + std::to_string(off));
    std::span<std::byte> bad = region.subspan(off, 2 * 4096);
    ExpectError(dev->Write(3, 2, bad), Status::Code::kInvalidArgument, *dev, "3");
    ExpectError(dev->Read(3, 2, bad), Status::Code::kInvalidArgument, *dev, "3");
    WriteRequest w{5, 1, bad.data(), {}};
    ExpectError(dev->WriteBatch({&w, 1}), Status::Code::kInvalidArgument, *dev, "5");
    ReadRequest r{5, 1, bad.data(), {}};
    ExpectError(dev->ReadBatch({&r, 1}), Status::Code::kInvalidArgument, *dev, "5");
  }
  auto out = arena_.Carve(16 * 4096);
  Status s = dev->Read(0, 16, out);
  ASSERT_TRUE(s.ok()) << Show(s);
  EXPECT_TRUE(AllZero(out)) << "a rejected write reached the device";
}

TEST_P(BlockDeviceErrors, WrongBufferSizeIsInvalidArgument) {
  VDE_OPEN_DEVICE(dev, CreateOptions(4096, 16));
  auto buf = arena_.Carve(3 * 4096);
  ExpectError(dev->Read(0, 2, buf), Status::Code::kInvalidArgument, *dev);
  ExpectError(dev->Write(0, 2, buf.first(4096)), Status::Code::kInvalidArgument, *dev);
  ExpectError(dev->Read(0, 1, buf.first(4095)), Status::Code::kInvalidArgument, *dev);
}

TEST_P(BlockDeviceErrors, ZeroCountAndNullBufferAreInvalidArgument) {
  VDE_OPEN_DEVICE(dev, CreateOptions(4096, 16));
  auto buf = arena_.Carve(4096);
  ExpectError(dev->Read(2, 0, buf.first(0)), Status::Code::kInvalidArgument, *dev);
  ExpectError(dev->Write(2, 0, buf.first(0)), Status::Code::kInvalidArgument, *dev);
  ReadRequest r{2, 0, buf.data(), {}};
  ExpectError(dev->ReadBatch({&r, 1}), Status::Code::kInvalidArgument, *dev, "2");
  WriteRequest w{2, 0, buf.data(), {}};
  ExpectError(dev->WriteBatch({&w, 1}), Status::Code::kInvalidArgument, *dev, "2");
  ReadRequest rn{4, 1, nullptr, {}};
  ExpectError(dev->ReadBatch({&rn, 1}), Status::Code::kInvalidArgument, *dev, "4");
  WriteRequest wn{4, 1, nullptr, {}};
  ExpectError(dev->WriteBatch({&wn, 1}), Status::Code::kInvalidArgument, *dev, "4");
}

// One bad request among good ones fails alone; the batch returns the first failure in request
// order; every good request completes.
TEST_P(BlockDeviceErrors, BatchWithBadRequestsRunsTheGoodOnes) {
  constexpr uint32_t kBs = 4096;
  constexpr uint64_t kBlocks = 128;
  VDE_OPEN_DEVICE(dev, CreateOptions(kBs, kBlocks));
  std::mt19937_64 rng(testing::TestSeed());
  Model model(kBs, kBlocks);
  const bool aligned = dev->alignment() > 1;
  for (size_t bad_at : {size_t{0}, size_t{4}, size_t{9}}) {
    SCOPED_TRACE("first bad request at " + std::to_string(bad_at));
    arena_.Reset();
    constexpr size_t kN = 10;
    std::vector<WriteRequest> writes;
    std::vector<ReadRequest> reads;
    for (size_t i = 0; i < kN; ++i) {
      auto in = arena_.Carve(2 * kBs);
      FillRandom(in, rng);
      uint64_t block = 10 * i + rng() % 8;
      writes.push_back(WriteRequest{block, 2, in.data(), Status::Busy("unset")});
      reads.push_back(ReadRequest{block, 2, arena_.Carve(2 * kBs).data(), {}});
    }
    // The first bad request is out of range; later ones misaligned (or of 0 blocks).
    auto make_bad = [&](size_t i, bool first) {
      if (first) {
        writes[i].block = reads[i].block = kBlocks - 1;
      } else if (aligned) {
        writes[i].buf += 1;
        reads[i].buf += 1;
      } else {
        writes[i].count = reads[i].count = 0;
      }
    };
    make_bad(bad_at, true);
    if (bad_at + 3 < kN) make_bad(bad_at + 3, false);
    auto is_bad = [&](size_t i) { return i == bad_at || i == bad_at + 3; };

    Status s = dev->WriteBatch(writes);
    ExpectError(s, Status::Code::kOutOfRange, *dev, std::to_string(kBlocks - 1));
    for (size_t i = 0; i < kN; ++i) {
      if (!is_bad(i)) {
        EXPECT_TRUE(writes[i].status.ok()) << "write " << i << ": " << Show(writes[i].status);
        model.Write(writes[i].block, {writes[i].buf, 2 * kBs});
      } else {
        EXPECT_FALSE(writes[i].status.ok()) << "write " << i;
      }
    }
    EXPECT_TRUE(writes[bad_at].status.IsOutOfRange()) << Show(writes[bad_at].status);
    if (bad_at + 3 < kN) {
      EXPECT_TRUE(writes[bad_at + 3].status.IsInvalidArgument()) << Show(writes[bad_at + 3].status);
    }

    s = dev->ReadBatch(reads);
    ExpectError(s, Status::Code::kOutOfRange, *dev, std::to_string(kBlocks - 1));
    for (size_t i = 0; i < kN; ++i) {
      if (is_bad(i)) {
        EXPECT_FALSE(reads[i].status.ok()) << "read " << i;
        continue;
      }
      ASSERT_TRUE(reads[i].status.ok()) << "read " << i << ": " << Show(reads[i].status);
      EXPECT_TRUE(SameBlocks({reads[i].buf, 2 * kBs}, model.Blocks(reads[i].block, 2),
                             reads[i].block, kBs));
    }
  }
  // The rejected writes changed nothing: the whole device matches the model.
  arena_.Reset();
  ASSERT_NO_FATAL_FAILURE(ExpectBlocks(*dev, model, 0, kBlocks));
}

TEST_P(BlockDeviceErrors, ReadOnlyDeviceRejectsWriteFlushAndGrow) {
  constexpr uint64_t kBlocks = 32;
  Model model(4096, kBlocks);
  if (persistent()) {  // fill a device, then reopen it read-only
    VDE_OPEN_DEVICE(rw, CreateOptions(4096, kBlocks));
    std::mt19937_64 rng(testing::TestSeed());
    ASSERT_NO_FATAL_FAILURE(WriteRandom(*rw, model, 0, kBlocks, rng));
    Status s = rw->Flush();
    ASSERT_TRUE(s.ok()) << Show(s);
  }
  arena_.Reset();
  VDE_OPEN_DEVICE(dev, ReopenOptions(4096, OpenMode::kReadOnly, kBlocks));
  ASSERT_TRUE(dev->read_only());
  ASSERT_EQ(dev->block_count(), kBlocks);
  auto buf = arena_.Carve(2 * 4096);
  ExpectError(dev->Write(1, 2, buf), Status::Code::kReadOnly, *dev);
  WriteRequest ws[2] = {{3, 1, buf.data(), {}}, {4, 1, buf.data() + 4096, {}}};
  ExpectError(dev->WriteBatch(ws), Status::Code::kReadOnly, *dev);
  ExpectError(ws[0].status, Status::Code::kReadOnly, *dev);
  ExpectError(ws[1].status, Status::Code::kReadOnly, *dev);
  ExpectError(dev->Flush(), Status::Code::kReadOnly, *dev);
  ExpectError(dev->Grow(2 * kBlocks), Status::Code::kReadOnly, *dev);
  EXPECT_EQ(dev->block_count(), kBlocks);
  // Reads work and see the data unchanged.
  ASSERT_NO_FATAL_FAILURE(ExpectBlocks(*dev, model, 0, kBlocks));
}

TEST_P(BlockDeviceErrors, BadBlockSizeIsInvalidArgument) {
  for (uint32_t bs : {0u, 256u, 1000u, 4097u, 131072u}) {
    SCOPED_TRACE("block size " + std::to_string(bs));
    auto r = TryOpen(CreateOptions(bs, 16));
    if (r.ok() && !r->skip.empty()) GTEST_SKIP() << r->skip;
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.error().IsInvalidArgument()) << Show(r.error());
  }
}

TEST_P(BlockDeviceErrors, MissingFileIsNotFoundNamingThePath) {
  if (!persistent()) GTEST_SKIP() << "no file behind this device";
  const std::string missing = dir_.File("missing.vdisk");
  ExpectOpenFails(missing, ReopenOptions(4096, OpenMode::kReadWrite), Status::Code::kNotFound);
  ExpectOpenFails(missing, ReopenOptions(4096, OpenMode::kReadOnly), Status::Code::kNotFound);
}

TEST_P(BlockDeviceErrors, SizeNotMultipleOfBlockSizeIsInvalidArgument) {
  if (!persistent()) GTEST_SKIP() << "no file behind this device";
  const std::string odd = dir_.File("odd.vdisk");
  ASSERT_NO_FATAL_FAILURE(MakeFile(odd, 3 * 4096 + 100));
  ExpectOpenFails(odd, ReopenOptions(4096, OpenMode::kReadWrite), Status::Code::kInvalidArgument);
  ExpectOpenFails(odd, ReopenOptions(512, OpenMode::kReadOnly), Status::Code::kInvalidArgument);
  // A multiple of 4096 but not of 65536.
  ASSERT_NO_FATAL_FAILURE(MakeFile(odd, 3 * 4096));
  ExpectOpenFails(odd, ReopenOptions(65536, OpenMode::kReadWrite), Status::Code::kInvalidArgument);
}

TEST_P(BlockDeviceErrors, CreateOverExistingIsAlreadyExists) {
  if (!persistent()) GTEST_SKIP() << "no file behind this device";
  {
    VDE_OPEN_DEVICE(dev, CreateOptions(4096, 8));
    std::mt19937_64 rng(3);
    Model model(4096, 8);
    ASSERT_NO_FATAL_FAILURE(WriteRandom(*dev, model, 0, 8, rng));
  }
  ExpectOpenFails(path_, CreateOptions(4096, 8), Status::Code::kAlreadyExists);
  // kCreateOrTruncate replaces it with a fresh, zeroed device of the new size.
  DeviceOptions opts = CreateOptions(4096, 4);
  opts.mode = OpenMode::kCreateOrTruncate;
  VDE_OPEN_DEVICE(dev, opts);
  EXPECT_EQ(dev->block_count(), 4u);
  auto buf = arena_.Carve(4 * 4096);
  Status s = dev->Read(0, 4, buf);
  ASSERT_TRUE(s.ok()) << Show(s);
  EXPECT_TRUE(AllZero(buf));
}

}  // namespace vde::blockdev::conformance
