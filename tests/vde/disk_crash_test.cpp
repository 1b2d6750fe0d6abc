// Crash safety: a scenario that writes copy-on-write data blocks and checkpoints is run once
// cleanly (the reference), then again with the device dying at every block write and every
// flush; the media then loses, keeps or tears each unsynced write at random. The disk must open
// at the last checkpoint (or the one in flight, when its superblock made it) with exactly that
// checkpoint's free space and data.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "blockdev/aligned_buffer.h"
#include "blockdev/block_header.h"
#include "tests/test_util.h"
#include "tests/vde/fault_device.h"
#include "vde/alloc_map.h"
#include "vde/disk.h"

namespace vde {
namespace {

using testing::CrashMode;
using testing::FaultDevice;
using testing::FaultMedia;

struct Geometry {
  uint32_t block_size = 4096;
  uint64_t blocks = 48;
  uint64_t step_blocks = 32;
  uint64_t big_extent = 0;  // when set, some allocations are extents this large
};

struct Checkpointed {
  std::vector<Extent> free;
  uint64_t block_count = 0;
  std::map<uint64_t, uint64_t> live;  // data block -> tag
  uint64_t catalog_root = 0;
};

// The scenario: returns the generation of the last checkpoint that succeeded. Stops at the
// first error. Records every checkpoint in *ref when given.
struct Scenario {
  uint64_t seed;
  Geometry geo;
  int ops = 240;

  uint64_t Run(Disk& disk, std::map<uint64_t, Checkpointed>* ref, bool* failed_in_checkpoint) {
    std::mt19937_64 rng(seed);
    std::map<uint64_t, uint64_t> live;
    uint64_t last_ok = disk.generation();
    const uint32_t bs = geo.block_size;
    AlignedBuffer buf(bs, 4096);
    auto write = [&](uint64_t block, uint64_t tag) {
      std::fill(buf.data(), buf.data() + bs, std::byte{0});
      PutU64(buf.data() + kBlockHeaderSize, tag);
      SealBlock(buf.span(), BlockType::kBTreeLeaf, block, disk.next_generation());
      return disk.device().Write(block, 1, buf.span());
    };
    if (ref != nullptr) Record(disk, live, ref);
    for (int op = 0; op < ops; op++) {
      unsigned r = rng() % 100;
      // A checkpoint 6 % of the time, and at least every 40 operations: every seed then has
      // enough checkpoints to crash between (at 6 % alone, one seed in a few hundred had 4).
      if (r < 6 || op % 40 == 39) {
        if (!live.empty()) {
          if (!disk.SetCatalogRoot(live.begin()->first).ok()) return last_ok;
        }
        *failed_in_checkpoint = true;
        if (!disk.Checkpoint().ok()) return last_ok;
        *failed_in_checkpoint = false;
        last_ok = disk.generation();
        if (ref != nullptr) Record(disk, live, ref);
      } else if (r < 50 || live.size() < 4) {
        bool big = geo.big_extent != 0 && rng() % 8 == 0;
        auto e = disk.allocator().Allocate(big ? geo.big_extent : 1 + rng() % 4);
        if (!e.ok()) return last_ok;
        for (uint64_t b = e->start; b < e->end(); b++) {
          if (big && b != e->start && b + 1 != e->end()) {
            // Only the ends of a big extent are written; the rest is freed at once.
            if (!disk.allocator().Free({b, e->count - 2}).ok()) return last_ok;
            b = e->end() - 2;
            continue;
          }
          uint64_t tag = rng();
          if (!write(b, tag).ok()) return last_ok;
          live[b] = tag;
        }
      } else {
        auto it = live.lower_bound(rng() % disk.allocator().block_count());
        if (it == live.end()) it = live.begin();
        uint64_t old = it->first;
        if (r < 85) {  // copy-on-write update: new block, then free the old one
          auto nb = disk.allocator().AllocateBlock();
          if (!nb.ok()) return last_ok;
          uint64_t tag = rng();
          if (!write(*nb, tag).ok()) return last_ok;
          live[*nb] = tag;
        }
        if (disk.catalog_root() == old && !disk.SetCatalogRoot(0).ok()) return last_ok;
        live.erase(old);
        if (!disk.allocator().FreeBlock(old).ok()) return last_ok;
      }
    }
    return last_ok;
  }

  static void Record(Disk& disk, const std::map<uint64_t, uint64_t>& live,
                     std::map<uint64_t, Checkpointed>* ref) {
    Checkpointed& c = (*ref)[disk.generation()];
    c.free = disk.allocator().FreeExtents();
    c.block_count = disk.allocator().block_count();
    c.live = live;
    c.catalog_root = disk.catalog_root();
  }
};

std::shared_ptr<FaultMedia> NewDisk(std::unique_ptr<Disk>* disk, const Geometry& g = {}) {
  auto media = std::make_shared<FaultMedia>(g.block_size, g.blocks);
  CreateOptions o;
  o.growable = true;
  o.growth_step_bytes = g.step_blocks * g.block_size;
  auto d = Disk::CreateOnDevice(std::make_unique<FaultDevice>(media), o);
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  *disk = std::move(*d);
  return media;
}

// Opens the crashed media and checks it against the reference.
void CheckRecovered(const std::shared_ptr<FaultMedia>& media,
                    const std::map<uint64_t, Checkpointed>& ref, uint64_t last_ok,
                    bool in_checkpoint, uint32_t bs, const std::string& what) {
  auto d = Disk::OpenOnDevice(std::make_unique<FaultDevice>(media), false);
  ASSERT_TRUE(d.ok()) << what << ": " << d.status().ToString();
  Disk& disk = **d;
  uint64_t g = disk.generation();
  ASSERT_TRUE(g == last_ok || (in_checkpoint && g == last_ok + 1))
      << what << ": opened at generation " << g << ", last checkpoint " << last_ok;
  const Checkpointed& want = ref.at(g);
  std::vector<Extent> free = want.free;
  uint64_t count = disk.allocator().block_count();
  ASSERT_GE(count, want.block_count) << what;
  if (count > want.block_count) {  // the file grew after the checkpoint: a free tail
    if (!free.empty() && free.back().end() == want.block_count) {
      free.back().count += count - want.block_count;
    } else {
      free.push_back({want.block_count, count - want.block_count});
    }
  }
  ASSERT_EQ(disk.allocator().FreeExtents(), free) << what << " (generation " << g << ")";
  EXPECT_EQ(disk.catalog_root(), want.catalog_root) << what;
  AlignedBuffer buf(bs, 4096);
  for (auto [block, tag] : want.live) {
    ASSERT_TRUE(disk.device().Read(block, 1, buf.span()).ok());
    Status s = VerifyBlock(buf.span(), block, BlockType::kBTreeLeaf, "fault.vdisk");
    ASSERT_TRUE(s.ok()) << what << ": data block " << block << ": " << s.ToString();
    ASSERT_EQ(GetU64(buf.data() + kBlockHeaderSize), tag) << what << ": block " << block;
    ASSERT_TRUE(disk.allocator().IsAllocated(block));
  }
  // And the recovered disk works: one more checkpoint, reopened.
  ASSERT_TRUE(disk.allocator().Allocate(3).ok());
  ASSERT_TRUE(disk.Checkpoint().ok()) << what;
}

void RunCrashPoints(const Geometry& geo) {
  uint64_t seed = testing::TestSeed();
  Scenario sc{seed, geo};
  std::map<uint64_t, Checkpointed> ref;
  uint64_t writes = 0, flushes = 0, final_blocks = 0;
  {
    std::unique_ptr<Disk> disk;
    auto media = NewDisk(&disk, geo);
    uint64_t w0 = media->blocks_written, f0 = media->flushes;
    bool in_cp = false;
    sc.Run(*disk, &ref, &in_cp);
    writes = media->blocks_written - w0;
    flushes = media->flushes - f0;
    final_blocks = disk->allocator().block_count();
  }
  ASSERT_GT(ref.size(), 5u);
  std::printf(
      "reference: %zu checkpoints, %llu block writes, %llu flushes, %llu blocks at the end "
      "(%zu map levels)\n",
      ref.size(), static_cast<unsigned long long>(writes), static_cast<unsigned long long>(flushes),
      static_cast<unsigned long long>(final_blocks),
      allocmap::LevelSizes(final_blocks, geo.block_size).size());
  std::mt19937_64 crash_rng(seed ^ 0x5eed);
  int recovered_newer = 0;
  for (int kind = 0; kind < 2; kind++) {
    uint64_t points = kind == 0 ? writes : flushes;
    for (uint64_t c = 0; c < points && !::testing::Test::HasFailure(); c++) {
      std::unique_ptr<Disk> disk;
      auto media = NewDisk(&disk, geo);
      (kind == 0 ? media->writes_until_fail : media->flushes_until_fail) = static_cast<int64_t>(c);
      bool in_cp = false;
      uint64_t last_ok = sc.Run(*disk, nullptr, &in_cp);
      disk.reset();  // crash: nothing more is written
      CrashMode mode = c % 3 == 0 ? CrashMode::kDropUnsynced
                                  : (c % 3 == 1 ? CrashMode::kKeepUnsynced : CrashMode::kRandom);
      media->Crash(mode, crash_rng);
      std::string what = std::string(kind == 0 ? "write " : "flush ") + std::to_string(c);
      auto before = Disk::OpenOnDevice(std::make_unique<FaultDevice>(media), true);
      if (before.ok() && (*before)->generation() > last_ok) recovered_newer++;
      before = Status::Corruption("closed");
      CheckRecovered(media, ref, last_ok, in_cp, geo.block_size, what);
    }
  }
  std::printf("crashes that recovered the checkpoint in flight: %d\n", recovered_newer);
}

TEST(DiskCrash, EveryWriteAndFlushAsACrashPoint) {
  RunCrashPoints({});
}

TEST(DiskCrash, EveryCrashPointWithAMultiLevelMap) {
  // 512-byte blocks: 3584 blocks per map leaf and 56 children per node, so the map starts
  // with two levels and, as big extents grow the disk past 200,704 blocks, gets a third.
  RunCrashPoints({512, 190000, 4000, 40000});
}

TEST(DiskCrash, FailedFlushIsReturnedAndNeverRetried) {
  std::unique_ptr<Disk> disk;
  auto media = NewDisk(&disk);
  auto b = disk->allocator().AllocateBlock();
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(disk->Checkpoint().ok());
  uint64_t gen = disk->generation();
  ASSERT_TRUE(disk->allocator().FreeBlock(*b).ok());
  media->flushes_until_fail = 0;
  Status s = disk->Checkpoint();
  ASSERT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_NE(s.message().find("injected flush failure"), std::string::npos);
  EXPECT_EQ(disk->generation(), gen);
  media->flushes_until_fail = -1;
  media->dead = false;  // even if the device recovers, the disk does not pretend
  Status again = disk->Checkpoint();
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.message().find("earlier checkpoint failed"), std::string::npos);
  EXPECT_FALSE(disk->Close().ok());
  disk.reset();
  std::mt19937_64 rng(1);
  media->Crash(CrashMode::kDropUnsynced, rng);
  auto d = Disk::OpenOnDevice(std::make_unique<FaultDevice>(media), false);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ((*d)->generation(), gen);
  EXPECT_TRUE((*d)->allocator().IsAllocated(*b));
}

TEST(DiskCrash, TornSuperblockFallsBackToTheOtherCopy) {
  std::unique_ptr<Disk> disk;
  auto media = NewDisk(&disk);
  ASSERT_TRUE(disk->Checkpoint().ok());  // generation 2 in copy 0
  uint64_t b = *disk->allocator().AllocateBlock();
  // Generation 3 goes to copy 1; the device dies at the flush after the superblock write.
  media->flushes_until_fail = 1;
  ASSERT_FALSE(disk->Checkpoint().ok());
  disk.reset();
  // Tear the unsynced superblock write inside its first sector (the fields all live there;
  // a tear at a sector boundary would leave the whole new superblock, which is no tear).
  {
    std::lock_guard lock(media->mu);
    ASSERT_FALSE(media->unsynced.empty());
    auto& u = media->unsynced.back();
    ASSERT_EQ(u.block, 1u);
    std::copy(u.old.begin() + 100, u.old.end(), media->blocks[1].begin() + 100);
    media->unsynced.clear();
  }
  auto d = Disk::OpenOnDevice(std::make_unique<FaultDevice>(media), false);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ((*d)->generation(), 2u);
  EXPECT_FALSE((*d)->allocator().IsAllocated(b));
  auto info = (*d)->Inspect();
  ASSERT_TRUE(info.ok());
  EXPECT_FALSE(info->superblocks[1].valid);
  EXPECT_TRUE(info->superblocks[0].current);
}

}  // namespace
}  // namespace vde
