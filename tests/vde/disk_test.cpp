// Disk: create / open / checkpoint / inspect on real files, and every kind of bad input.
#include "vde/disk.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "blockdev/block_header.h"
#include "tests/test_util.h"
#include "vde/format.h"

namespace vde {
namespace {

using testing::ScratchDir;

CreateOptions Fixed(uint64_t bytes, uint32_t bs = 4096) {
  CreateOptions o;
  o.size_bytes = bytes;
  o.block_size = bs;
  return o;
}

// Reads / writes raw bytes of a file, bypassing vde.
std::vector<std::byte> ReadAt(const std::string& path, uint64_t off, size_t n) {
  std::vector<std::byte> b(n);
  int fd = ::open(path.c_str(), O_RDONLY);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::pread(fd, b.data(), n, static_cast<off_t>(off)), static_cast<ssize_t>(n));
  ::close(fd);
  return b;
}
void WriteAt(const std::string& path, uint64_t off, std::span<const std::byte> b) {
  int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, b.data(), b.size(), static_cast<off_t>(off)),
            static_cast<ssize_t>(b.size()));
  ::close(fd);
}
void FlipBit(const std::string& path, uint64_t off) {
  auto b = ReadAt(path, off, 1);
  b[0] ^= std::byte{0x10};
  WriteAt(path, off, b);
}
// Rewrites superblock copy `copy` through `mutate`, resealed (a valid checksum).
void RewriteSuperblock(const std::string& path, uint64_t copy, uint32_t bs,
                       void (*mutate)(std::span<std::byte>)) {
  auto b = ReadAt(path, copy * bs, bs);
  mutate(b);
  BlockHeader h = DecodeBlockHeader(b);
  SealBlock(b, BlockType::kSuperblock, copy, h.generation);
  WriteAt(path, copy * bs, b);
}

TEST(Disk, CreateOpenRoundTrip) {
  ScratchDir dir;
  std::string p = dir.File("a.vdisk");
  std::string uuid;
  uint64_t b1 = 0, b2 = 0;
  {
    auto d = Disk::Create(p, Fixed(8 << 20));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    Disk& disk = **d;
    EXPECT_EQ(disk.generation(), 1u);
    EXPECT_FALSE(disk.backend_reason().empty());
    uuid = disk.uuid();
    auto e = disk.allocator().Allocate(10);
    ASSERT_TRUE(e.ok());
    b1 = e->start;
    b2 = *disk.allocator().AllocateBlock();
    ASSERT_TRUE(disk.SetCatalogRoot(b2).ok());
    ASSERT_TRUE(disk.SetLogRegion({b1, 10}).ok());
    EXPECT_TRUE(disk.SetCatalogRoot(1).IsInvalidArgument());
    EXPECT_TRUE(disk.SetLogRegion({b1, 1u << 30}).IsInvalidArgument());
    ASSERT_TRUE(disk.Checkpoint().ok());
    EXPECT_EQ(disk.generation(), 2u);
    ASSERT_TRUE(disk.Close().ok());
    ASSERT_TRUE(disk.Close().ok());  // idempotent
  }
  auto d = Disk::Open(p, {});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  Disk& disk = **d;
  EXPECT_EQ(disk.uuid(), uuid);
  EXPECT_EQ(disk.generation(), 2u);
  EXPECT_EQ(disk.catalog_root(), b2);
  EXPECT_EQ(disk.log_region(), (LogRegion{b1, 10}));
  EXPECT_TRUE(disk.allocator().IsAllocated(b1 + 9));
  EXPECT_TRUE(disk.allocator().IsAllocated(b2));
  auto info = disk.Inspect();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->format_version, format::kFormatVersion);
  EXPECT_EQ(info->block_size, 4096u);
  EXPECT_EQ(info->block_count, 2048u);
  EXPECT_EQ(info->virtual_size_bytes, 8u << 20);
  EXPECT_EQ(info->blocks_used + info->blocks_free + info->blocks_pending_reuse, 2048u);
  EXPECT_EQ(info->blocks_used, 2 + 11 + info->blocks_metadata);
  // Generation 2's map block went to the big free extent; generation 1's (block 2) was freed.
  EXPECT_EQ(info->free_extents, 2u);
  EXPECT_EQ(info->largest_free_extent, 2048u - 15);
  EXPECT_TRUE(info->superblocks[0].valid && info->superblocks[1].valid);
  EXPECT_EQ(info->superblocks[0].generation, 2u);  // generation 2 went to copy 0
  EXPECT_EQ(info->superblocks[1].generation, 1u);
  EXPECT_TRUE(info->superblocks[0].current);
  EXPECT_GT(info->host_size_bytes, 0u);
}

TEST(Disk, ThinGrowableDiskStartsSmallAndGrows) {
  ScratchDir dir;
  std::string p = dir.File("thin.vdisk");
  CreateOptions o;
  o.growable = true;
  o.max_size_bytes = 100ull << 30;
  o.growth_step_bytes = 1 << 20;
  auto d = Disk::Create(p, o);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  Disk& disk = **d;
  auto info = disk.Inspect();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->virtual_size_bytes, 100ull << 30);
  EXPECT_EQ(info->size_bytes, 1u << 20);
  EXPECT_LT(info->host_size_bytes, 2u << 20);
  EXPECT_EQ(info->feature_names, std::vector<std::string>{"growable"});
  // 3 MiB more than the file has: grows by whole steps.
  auto e = disk.allocator().Allocate(3 * 256);
  ASSERT_TRUE(e.ok()) << e.error().ToString();
  EXPECT_EQ(disk.allocator().block_count(), 4u * 256);
  ASSERT_TRUE(disk.Close().ok());
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 4 << 20);
  auto again = Disk::Open(p, {});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE((*again)->allocator().IsAllocated(e->start));
}

TEST(Disk, CreateRefusesAnExistingPathWithoutForce) {
  ScratchDir dir;
  std::string p = dir.File("x.vdisk");
  { std::ofstream(p) << "precious"; }
  auto d = Disk::Create(p, Fixed(1 << 20));
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(d.error().IsAlreadyExists()) << d.error().ToString();
  std::ifstream in(p);
  std::string s;
  in >> s;
  EXPECT_EQ(s, "precious");  // untouched
  CreateOptions o = Fixed(1 << 20);
  o.force = true;
  ASSERT_TRUE(Disk::Create(p, o).ok());
  EXPECT_TRUE(Disk::Open(p, {}).ok());
}

TEST(Disk, BadCreateOptions) {
  ScratchDir dir;
  std::string p = dir.File("x.vdisk");
  EXPECT_TRUE(Disk::Create(p, Fixed(1 << 20, 1000)).error().IsInvalidArgument());
  EXPECT_TRUE(Disk::Create(p, Fixed(4097)).error().IsInvalidArgument());
  EXPECT_TRUE(Disk::Create(p, Fixed(4096)).error().IsInvalidArgument());  // too small
  CreateOptions g;
  g.growable = true;
  g.growth_step_bytes = 0;
  EXPECT_TRUE(Disk::Create(p, g).error().IsInvalidArgument());
  EXPECT_FALSE(std::filesystem::exists(p));
}

TEST(Disk, ForeignFileIsNotAVirtualDiskAndIsNeverWritten) {
  ScratchDir dir;
  std::string p = dir.File("notes.txt");
  std::string text(200000, 'x');
  { std::ofstream(p) << text; }
  struct stat before {};
  ASSERT_EQ(::stat(p.c_str(), &before), 0);
  for (bool ro : {false, true}) {
    auto d = Disk::Open(p, {.read_only = ro});
    ASSERT_FALSE(d.ok());
    EXPECT_TRUE(d.error().IsCorruption()) << d.error().ToString();
    EXPECT_NE(d.error().message().find("not a virtual disk"), std::string::npos);
    EXPECT_NE(d.error().message().find(p), std::string::npos);
  }
  EXPECT_FALSE(Disk::InspectPath(p).ok());
  std::ifstream in(p);
  std::string back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(back, text);
  // Empty and tiny files too; a missing one is NotFound.
  std::string empty = dir.File("empty");
  { std::ofstream(empty).flush(); }
  EXPECT_NE(Disk::Open(empty, {}).error().message().find("not a virtual disk"), std::string::npos);
  EXPECT_TRUE(Disk::Open(dir.File("missing"), {}).error().IsNotFound());
  EXPECT_TRUE(Disk::Open(dir.path().string(), {}).error().IsCorruption());
}

TEST(Disk, TruncatedFile) {
  ScratchDir dir;
  std::string p = dir.File("t.vdisk");
  ASSERT_TRUE(Disk::Create(p, Fixed(1 << 20)).ok());
  ASSERT_EQ(::truncate(p.c_str(), 512 << 10), 0);
  auto d = Disk::Open(p, {});
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(d.error().IsCorruption());
  EXPECT_NE(d.error().message().find("truncated"), std::string::npos) << d.error().ToString();
  ASSERT_EQ(::truncate(p.c_str(), 5000), 0);
  d = Disk::Open(p, {});
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(d.error().IsCorruption()) << d.error().ToString();
}

TEST(Disk, NewerVersionAndUnknownFeatures) {
  ScratchDir dir;
  std::string p = dir.File("f.vdisk");
  ASSERT_TRUE(Disk::Create(p, Fixed(1 << 20)).ok());
  for (uint64_t copy : {0, 1}) {
    RewriteSuperblock(p, copy, 4096, [](std::span<std::byte> b) {
      PutU64(b.data() + format::kSbFeaturesRoCompat, 1ull << 5);
    });
  }
  auto w = Disk::Open(p, {});
  ASSERT_FALSE(w.ok());
  EXPECT_TRUE(w.error().IsNotSupported()) << w.error().ToString();
  EXPECT_NE(w.error().message().find("read-only"), std::string::npos);
  auto r = Disk::Open(p, {.read_only = true});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE((*r)->Checkpoint().IsReadOnly());
  EXPECT_TRUE((*r)->allocator().AllocateBlock().error().IsReadOnly());
  EXPECT_TRUE((*r)->SetCatalogRoot(5).IsReadOnly());
  r->reset();

  for (uint64_t copy : {0, 1}) {
    RewriteSuperblock(p, copy, 4096, [](std::span<std::byte> b) {
      PutU64(b.data() + format::kSbFeaturesIncompat, 1ull << 40);
    });
  }
  for (bool ro : {false, true}) {
    auto d = Disk::Open(p, {.read_only = ro});
    ASSERT_FALSE(d.ok());
    EXPECT_TRUE(d.error().IsNotSupported()) << d.error().ToString();
    EXPECT_NE(d.error().message().find("incompatible"), std::string::npos);
  }

  for (uint64_t copy : {0, 1}) {
    RewriteSuperblock(p, copy, 4096, [](std::span<std::byte> b) {
      PutU64(b.data() + format::kSbFeaturesIncompat, 0);
      PutU32(b.data() + format::kSbFormatVersion, format::kFormatVersion + 1);
    });
  }
  auto v = Disk::Open(p, {.read_only = true});
  ASSERT_FALSE(v.ok());
  EXPECT_TRUE(v.error().IsNotSupported());
  EXPECT_NE(v.error().message().find("newer"), std::string::npos) << v.error().ToString();
}

TEST(Disk, OneCorruptSuperblockCopyIsSurvivedAndReported) {
  for (uint32_t bs : {512u, 4096u, 65536u}) {
    ScratchDir dir;
    std::string p = dir.File("c.vdisk");
    {
      auto d = Disk::Create(p, Fixed(64 * uint64_t{bs}, bs));
      ASSERT_TRUE(d.ok());
      ASSERT_TRUE((*d)->allocator().AllocateBlock().ok());
      ASSERT_TRUE((*d)->Close().ok());  // generation 2, in copy 0
    }
    FlipBit(p, 200);  // damage the newest copy (0): copy 1 (generation 1) is used
    auto info = Disk::InspectPath(p);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_FALSE(info->superblocks[0].valid);
    EXPECT_NE(info->superblocks[0].error.message().find("checksum mismatch"), std::string::npos);
    EXPECT_NE(info->superblocks[0].error.message().find("block 0 of " + p), std::string::npos);
    EXPECT_TRUE(info->superblocks[1].valid);
    EXPECT_TRUE(info->superblocks[1].current);
    EXPECT_EQ(info->generation, 1u);
    EXPECT_EQ(info->block_size, bs);
    auto d = Disk::Open(p, {});
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ((*d)->generation(), 1u);
    // The next checkpoint (generation 2) rewrites the damaged copy.
    ASSERT_TRUE((*d)->Checkpoint().ok());
    auto after = (*d)->Inspect();
    ASSERT_TRUE(after.ok());
    EXPECT_TRUE(after->superblocks[0].valid && after->superblocks[1].valid);
  }
}

TEST(Disk, BothSuperblocksCorrupt) {
  ScratchDir dir;
  std::string p = dir.File("c.vdisk");
  ASSERT_TRUE(Disk::Create(p, Fixed(1 << 20)).ok());
  FlipBit(p, 300);
  FlipBit(p, 4096 + 300);
  auto d = Disk::Open(p, {});
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(d.error().IsCorruption());
  std::string m(d.error().message());
  EXPECT_NE(m.find("both superblock copies are damaged"), std::string::npos) << m;
  EXPECT_NE(m.find("block 0 of " + p), std::string::npos) << m;
  EXPECT_NE(m.find("block 1 of " + p), std::string::npos) << m;
  EXPECT_FALSE(Disk::InspectPath(p).ok());
}

TEST(Disk, FlippedBitInAnyMapBlockIsReportedWithItsNumber) {
  ScratchDir dir;
  std::string p = dir.File("m.vdisk");
  const uint32_t bs = 512;
  std::vector<uint64_t> map_blocks;
  {
    // 512-byte blocks and 250,000 of them: a three-level map.
    auto d = Disk::Create(p, Fixed(250000ull * bs, bs));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    for (int i = 0; i < 60; i++) ASSERT_TRUE((*d)->allocator().Allocate(4000).ok());
    ASSERT_TRUE((*d)->Close().ok());
  }
  // Find the map blocks by their header type.
  int fd = ::open(p.c_str(), O_RDONLY);
  std::vector<std::byte> b(bs);
  for (uint64_t blk = 2; blk < 250000; blk++) {
    ASSERT_EQ(::pread(fd, b.data(), bs, static_cast<off_t>(blk * bs)), bs);
    if (VerifyBlock(b, blk, BlockType::kAllocMap, p).ok()) map_blocks.push_back(blk);
  }
  ::close(fd);
  ASSERT_GT(map_blocks.size(), 60u);
  auto good = Disk::Open(p, {.read_only = true});
  ASSERT_TRUE(good.ok());
  // Every map block reachable from the current root is one the disk counts as metadata; a
  // flipped bit in any of them is caught and names the block.
  uint64_t checked = 0;
  for (uint64_t blk : map_blocks) {
    if (!(*good)->allocator().IsAllocated(blk)) continue;  // an old copy, now free
    FlipBit(p, blk * bs + 100);
    auto d = Disk::Open(p, {.read_only = true});
    ASSERT_FALSE(d.ok()) << blk;
    EXPECT_TRUE(d.error().IsCorruption());
    EXPECT_NE(d.error().message().find("block " + std::to_string(blk) + " of " + p),
              std::string::npos)
        << d.error().ToString();
    auto info = Disk::InspectPath(p);
    ASSERT_TRUE(info.ok());
    EXPECT_TRUE(info->allocator_error.IsCorruption());
    FlipBit(p, blk * bs + 100);
    checked++;
  }
  EXPECT_EQ(checked, (*good)->Inspect()->blocks_metadata);
}

TEST(Disk, ReadOnlyOpenNeverWrites) {
  ScratchDir dir;
  std::string p = dir.File("r.vdisk");
  ASSERT_TRUE(Disk::Create(p, Fixed(1 << 20)).ok());
  auto before = ReadAt(p, 0, 1 << 20);
  {
    auto d = Disk::Open(p, {.read_only = true});
    ASSERT_TRUE(d.ok());
    EXPECT_TRUE((*d)->read_only());
    EXPECT_TRUE((*d)->allocator().FreeBlock(2).IsReadOnly());
    ASSERT_TRUE((*d)->Close().ok());
  }
  EXPECT_EQ(ReadAt(p, 0, 1 << 20), before);
}

TEST(Disk, DestroyWithoutCloseIsACrash) {
  ScratchDir dir;
  std::string p = dir.File("k.vdisk");
  uint64_t kept = 0;
  {
    auto d = Disk::Create(p, Fixed(1 << 20));
    ASSERT_TRUE(d.ok());
    kept = *(*d)->allocator().AllocateBlock();
    ASSERT_TRUE((*d)->Checkpoint().ok());
    ASSERT_TRUE((*d)->allocator().Allocate(100).ok());
    ASSERT_TRUE((*d)->allocator().FreeBlock(kept).ok());
  }
  auto d = Disk::Open(p, {});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)->generation(), 2u);
  EXPECT_TRUE((*d)->allocator().IsAllocated(kept));
  EXPECT_EQ((*d)->allocator().stats().used_blocks - (*d)->allocator().stats().metadata_blocks, 3u);
}

}  // namespace
}  // namespace vde
