#include "index/page_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "blockdev/aligned_buffer.h"
#include "blockdev/block_header.h"
#include "blockdev/memory_block_device.h"
#include "tests/index/index_test_util.h"
#include "tests/test_util.h"

namespace vde::index {
namespace {

using testing::RecordingDevice;

constexpr uint32_t kBs = 4096;

// Fills block `b` with a sealed page whose payload is `tag` repeated.
void WritePage(blockdev::BlockDevice* dev, uint64_t b, uint64_t tag) {
  AlignedBuffer buf(kBs, 4096);
  for (size_t off = kBlockHeaderSize; off + 8 <= kBs; off += 8) PutU64(buf.data() + off, tag);
  SealBlock(buf.span(), BlockType::kBTreeLeaf, b, 1);
  ASSERT_TRUE(dev->Write(b, 1, buf.span()).ok());
}

uint64_t Tag(std::span<const std::byte> page) {
  return GetU64(page.data() + kBlockHeaderSize);
}

// Sets the payload tag of a pinned page (header stays as the page's own).
void SetTag(std::span<std::byte> page, uint64_t tag) {
  for (size_t off = kBlockHeaderSize; off + 8 <= page.size(); off += 8) {
    PutU64(page.data() + off, tag);
  }
}

std::unique_ptr<PageCache> MakeCache(blockdev::BlockDevice* dev, uint32_t frames) {
  // Budget for exactly `frames` frames (the cache counts descriptors and table too).
  PageCacheOptions o;
  o.budget_bytes = PageCache::BudgetFor(frames, kBs);
  auto c = PageCache::Create(dev, o);
  EXPECT_TRUE(c.has_value()) << c.status().ToString();
  return std::move(*c);
}

TEST(PageCache, PinUnpinHitsAndMisses) {
  auto dev = RecordingDevice::Make(kBs, 64);
  for (uint64_t b = 1; b < 64; b++) WritePage(dev.get(), b, b * 1000);
  auto cache = MakeCache(dev.get(), 32);
  {
    auto g = cache->PinShared(5);
    ASSERT_TRUE(g.has_value()) << g.status().ToString();
    EXPECT_EQ(Tag(g->data()), 5000u);
    EXPECT_EQ(g->page_id(), 5u);
    // Frames are registered with the device: reads land in them without a copy.
    EXPECT_TRUE(dev->IsRegistered(g->data().data(), kBs));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(g->data().data()) % dev->alignment(), 0u);
    auto g2 = cache->PinShared(5);  // a second shared pin of the same page
    ASSERT_TRUE(g2.has_value());
    EXPECT_EQ(g2->data().data(), g->data().data());
  }
  EXPECT_EQ(cache->stats().misses, 1u);
  EXPECT_EQ(cache->stats().hits, 1u);
  {
    auto g = cache->PinExclusive(5);
    ASSERT_TRUE(g.has_value());
    EXPECT_EQ(Tag(g->data()), 5000u);
  }
  EXPECT_EQ(cache->stats().hits, 2u);
  EXPECT_EQ(cache->stats().pages_read, 1u);

  // Guards are move-only; a moved-from guard is reset and releasing it is harmless.
  auto r = cache->PinShared(6);
  ASSERT_TRUE(r.has_value());
  PageCache::SharedGuard a = std::move(*r);
  PageCache::SharedGuard b = std::move(a);
  EXPECT_FALSE(a.valid());
  EXPECT_TRUE(b.valid());
  a.Release();
  b.Release();
  EXPECT_FALSE(b.valid());
  // Nothing is pinned now: an exclusive pin of the same page succeeds at once.
  auto x = cache->PinExclusive(6);
  ASSERT_TRUE(x.has_value());
}

TEST(PageCache, DirtyPagesAreWrittenBackWithChecksum) {
  auto dev = RecordingDevice::Make(kBs, 64);
  for (uint64_t b = 1; b < 64; b++) WritePage(dev.get(), b, b);
  auto cache = MakeCache(dev.get(), 32);
  for (uint64_t b = 1; b <= 10; b++) {
    auto g = cache->PinExclusive(b);
    ASSERT_TRUE(g.has_value());
    SetTag(g->data(), b + 777);
    g->MarkDirty();
  }
  EXPECT_EQ(cache->stats().dirty, 10u);
  uint64_t batches = dev->stats().batches;
  ASSERT_TRUE(cache->FlushAll().ok());
  EXPECT_EQ(dev->stats().batches, batches + 1) << "ten dirty pages go out in one WriteBatch";
  EXPECT_EQ(cache->stats().dirty, 0u);
  EXPECT_EQ(cache->stats().pages_written, 10u);
  AlignedBuffer buf(kBs, 4096);
  for (uint64_t b = 1; b <= 10; b++) {
    ASSERT_TRUE(dev->Read(b, 1, buf.span()).ok());
    ASSERT_TRUE(VerifyBlock(buf.span(), b, BlockType::kBTreeLeaf, dev->path()).ok());
    EXPECT_EQ(Tag(buf.span()), b + 777);
  }
  ASSERT_TRUE(cache->FlushAll().ok());  // nothing dirty: no writes
  EXPECT_EQ(cache->stats().pages_written, 10u);
}

TEST(PageCache, EvictionWritesDirtyPagesInBatches) {
  constexpr uint32_t kFrames = 64;
  constexpr uint64_t kPages = 1000;
  auto dev = RecordingDevice::Make(kBs, kPages + 1);
  auto cache = MakeCache(dev.get(), kFrames);
  ASSERT_EQ(cache->frames(), kFrames);
  for (uint64_t b = 1; b <= kPages; b++) {
    auto g = cache->PinNew(b);
    ASSERT_TRUE(g.has_value()) << g.status().ToString();
    SealBlock(g->data(), BlockType::kBTreeLeaf, b, 1);
    SetTag(g->data(), b * 3);
    g->MarkDirty();
  }
  PageCacheStats st = cache->stats();
  EXPECT_LE(st.resident, kFrames);
  EXPECT_GT(st.evictions, kPages - kFrames - 1);
  EXPECT_GE(st.pages_written, kPages - kFrames);
  // Write-back went out in batches, not a page per call.
  EXPECT_LT(st.write_batches * 4, st.pages_written);
  EXPECT_GT(dev->largest_write_batch(), 4u);
  ASSERT_TRUE(cache->FlushAll().ok());
  // Every page reads back (through the cache, mostly misses now) with its content.
  for (uint64_t b = 1; b <= kPages; b++) {
    auto g = cache->PinShared(b);
    ASSERT_TRUE(g.has_value()) << g.status().ToString();
    EXPECT_EQ(Tag(g->data()), b * 3);
  }
}

TEST(PageCache, CorruptPageIsCorruptionNamingTheBlock) {
  auto dev = RecordingDevice::Make(kBs, 16);
  for (uint64_t b = 1; b < 16; b++) WritePage(dev.get(), b, b);
  // Block 7: a flipped payload byte. Block 9: a valid block that names block 8 (misdirected).
  AlignedBuffer buf(kBs, 4096);
  ASSERT_TRUE(dev->Read(7, 1, buf.span()).ok());
  buf.data()[100] ^= std::byte{1};
  ASSERT_TRUE(dev->Write(7, 1, buf.span()).ok());
  ASSERT_TRUE(dev->Read(8, 1, buf.span()).ok());
  ASSERT_TRUE(dev->Write(9, 1, buf.span()).ok());
  auto cache = MakeCache(dev.get(), 16);
  for (int attempt = 0; attempt < 2; attempt++) {  // a failed read is not cached
    auto g = cache->PinShared(7);
    ASSERT_FALSE(g.has_value());
    EXPECT_TRUE(g.status().IsCorruption()) << g.status().ToString();
    EXPECT_NE(g.status().ToString().find("block 7 of test.vdisk"), std::string::npos)
        << g.status().ToString();
  }
  auto g9 = cache->PinExclusive(9);
  ASSERT_FALSE(g9.has_value());
  EXPECT_TRUE(g9.status().IsCorruption());
  EXPECT_NE(g9.status().ToString().find("block 9"), std::string::npos);
  // A block past the end is the device's OutOfRange.
  EXPECT_TRUE(cache->PinShared(1000).status().IsOutOfRange());
  // The caller's check runs on read-in and can reject the page.
  PageCheck reject = [](std::span<const std::byte>, uint64_t page, std::string_view path) {
    return Status::Corruption("block " + std::to_string(page) + " of " + std::string(path) +
                              ": rejected");
  };
  auto g3 = cache->PinShared(3, reject);
  EXPECT_TRUE(g3.status().IsCorruption());
  PageCheck accept = [](std::span<const std::byte>, uint64_t, std::string_view) {
    return Status::OK();
  };
  // A page resident after one check is checked again by a caller with another check.
  auto g4 = cache->PinShared(4, accept);
  ASSERT_TRUE(g4.has_value());
  g4->Release();
  EXPECT_TRUE(cache->PinShared(4, accept).has_value());
  EXPECT_TRUE(cache->PinShared(4, reject).status().IsCorruption());
  EXPECT_TRUE(cache->PinShared(4).has_value()) << "no check asked for";
  EXPECT_EQ(cache->stats().resident, 1u);
}

TEST(PageCache, BudgetIsRespectedUnderTenTimesTheLoad) {
  constexpr uint64_t kBudget = 1 << 20;
  PageCacheOptions o;
  o.budget_bytes = kBudget;
  const uint64_t pages = 10 * kBudget / kBs;
  auto dev = RecordingDevice::Make(kBs, pages + 1);
  auto c = PageCache::Create(dev.get(), o);
  ASSERT_TRUE(c.has_value());
  PageCache& cache = **c;
  EXPECT_LE(cache.memory_bytes(), kBudget);
  EXPECT_GE(cache.frames(), kBudget / kBs * 9 / 10) << "overhead stays small";
  std::mt19937_64 rng(::vde::testing::TestSeed());
  for (uint64_t b = 1; b <= pages; b++) {
    auto g = cache.PinNew(b);
    ASSERT_TRUE(g.has_value());
    SealBlock(g->data(), BlockType::kBTreeLeaf, b, 1);
    SetTag(g->data(), b);
    g->MarkDirty();
    ASSERT_LE(cache.stats().resident, cache.frames());
  }
  for (int i = 0; i < 20000; i++) {
    uint64_t b = 1 + rng() % pages;
    auto g = cache.PinShared(b);
    ASSERT_TRUE(g.has_value()) << g.status().ToString();
    ASSERT_EQ(Tag(g->data()), b);
  }
  PageCacheStats st = cache.stats();
  EXPECT_LE(st.resident, st.frames);
  EXPECT_EQ(st.memory_bytes, cache.memory_bytes());
  EXPECT_LE(st.memory_bytes, kBudget);
  EXPECT_GT(st.evictions, pages);
}

TEST(PageCache, TooSmallBudgetIsInvalidArgument) {
  auto dev = RecordingDevice::Make(kBs, 4);
  PageCacheOptions o;
  o.budget_bytes = 8 * kBs;
  auto c = PageCache::Create(dev.get(), o);
  ASSERT_FALSE(c.has_value());
  EXPECT_TRUE(c.status().IsInvalidArgument());
}

TEST(PageCache, AllFramesPinnedIsBusy) {
  auto dev = RecordingDevice::Make(kBs, 64);
  for (uint64_t b = 1; b < 64; b++) WritePage(dev.get(), b, b);
  auto cache = MakeCache(dev.get(), PageCache::kMinFrames);
  std::vector<PageCache::SharedGuard> held;
  for (uint64_t b = 1; b <= cache->frames(); b++) {
    auto g = cache->PinShared(b);
    ASSERT_TRUE(g.has_value());
    held.push_back(std::move(*g));
  }
  auto g = cache->PinShared(40);
  ASSERT_FALSE(g.has_value());
  EXPECT_TRUE(g.status().IsBusy()) << g.status().ToString();
  held.pop_back();
  EXPECT_TRUE(cache->PinShared(40).has_value());
}

TEST(PageCache, PrefetchReadsMissingPagesInOneBatch) {
  auto dev = RecordingDevice::Make(kBs, 64);
  for (uint64_t b = 1; b < 64; b++) WritePage(dev.get(), b, b);
  auto cache = MakeCache(dev.get(), 64);
  ASSERT_TRUE(cache->PinShared(3).has_value());
  std::vector<uint64_t> want = {2, 3, 4, 5, 6, 7, 8, 9, 9};
  uint64_t batches = dev->stats().batches;
  ASSERT_TRUE(cache->Prefetch(want).ok());
  EXPECT_EQ(dev->stats().batches, batches + 1);
  EXPECT_EQ(cache->stats().pages_read, 1u + 7u);
  uint64_t misses = cache->stats().misses;
  for (uint64_t b = 2; b <= 9; b++) {
    auto g = cache->PinShared(b);
    ASSERT_TRUE(g.has_value());
    EXPECT_EQ(Tag(g->data()), b);
  }
  EXPECT_EQ(cache->stats().misses, misses);
}

Status AcceptAll(std::span<const std::byte>, uint64_t, std::string_view) {
  return Status::OK();
}

// TryPinShared pins only what needs neither a read nor a wait.
TEST(PageCache, TryPinSharedNeverReadsNorWaits) {
  auto dev = RecordingDevice::Make(kBs, 64);
  for (uint64_t b = 1; b < 64; b++) WritePage(dev.get(), b, b);
  auto cache = MakeCache(dev.get(), 32);
  PageCache::SharedGuard g;
  EXPECT_EQ(cache->TryPinShared(5, nullptr, &g), PageCache::Ready::kAbsent);
  EXPECT_FALSE(g.valid());
  EXPECT_EQ(cache->stats().pages_read, 0u) << "an absent page is not read";
  ASSERT_TRUE(cache->PinShared(5).has_value());
  ASSERT_EQ(cache->TryPinShared(5, nullptr, &g), PageCache::Ready::kPinned);
  EXPECT_EQ(Tag(g.data()), 5u);
  // Shared pins coexist.
  PageCache::SharedGuard g2;
  EXPECT_EQ(cache->TryPinShared(5, nullptr, &g2), PageCache::Ready::kPinned);
  g.Release();
  g2.Release();
  {
    // Latched exclusively, as a page being read is: busy, at once.
    auto x = cache->PinExclusive(5);
    ASSERT_TRUE(x.has_value());
    EXPECT_EQ(cache->TryPinShared(5, nullptr, &g), PageCache::Ready::kBusy);
    EXPECT_FALSE(g.valid());
  }
  // Not yet checked with the check asked for (PinShared would run it): busy too.
  EXPECT_EQ(cache->TryPinShared(5, &AcceptAll, &g), PageCache::Ready::kBusy);
  ASSERT_TRUE(cache->PinShared(5, &AcceptAll).has_value());
  EXPECT_EQ(cache->TryPinShared(5, &AcceptAll, &g), PageCache::Ready::kPinned);
  g.Release();
  EXPECT_EQ(cache->TryPinShared(kNoPage, nullptr, &g), PageCache::Ready::kAbsent);
  EXPECT_EQ(cache->stats().pages_read, 1u);
}

// Frames registered with the kernel fill whole huge pages when that costs at most 1/8 of them;
// the budget holds. Not on a device that registers nothing, nor unregistered.
TEST(PageCache, RegisteredFramesFillWholeHugePages) {
  auto recording = RecordingDevice::Make(kBs, 64);  // registers, as io_uring does
  auto made = blockdev::MemoryBlockDevice::Create(kBs, 64);
  ASSERT_TRUE(made.has_value());
  std::unique_ptr<blockdev::MemoryBlockDevice> plain = std::move(*made);
  ASSERT_TRUE(recording->RegistersMemory());
  ASSERT_FALSE(plain->RegistersMemory());
  const uint64_t per_huge = AlignedBuffer::kHugePageBytes / kBs;
  const uint64_t per_frame = PageCache::BudgetFor(1, kBs);
  for (uint64_t budget : {uint64_t{20} << 20, uint64_t{33} << 20, uint64_t{5} << 20}) {
    for (int mode = 0; mode < 3; mode++) {
      const bool reg = mode == 0;
      SCOPED_TRACE(std::to_string(budget) + (mode == 0   ? " registered"
                                             : mode == 1 ? " unregistered"
                                                         : " on a device that registers nothing"));
      PageCacheOptions o;
      o.budget_bytes = budget;
      o.register_memory = mode != 1;
      blockdev::BlockDevice* dev =
          mode == 2 ? static_cast<blockdev::BlockDevice*>(plain.get()) : recording.get();
      auto c = PageCache::Create(dev, o);
      ASSERT_TRUE(c.has_value()) << c.status().ToString();
      const uint64_t fit = budget / per_frame;
      EXPECT_LE((*c)->memory_bytes(), budget);
      if (reg && fit >= 8 * per_huge) {
        EXPECT_EQ((*c)->frames() % per_huge, 0u);
        EXPECT_GT((*c)->frames() + per_huge, fit);
      } else {
        EXPECT_EQ((*c)->frames(), fit);
      }
    }
  }
}

// A block handed out again may still be cached from before it was freed (a reader that raced a
// root change read it back): PinNew and Relocate drop that stale copy instead of failing.
TEST(PageCache, NewAndRelocatedPagesReplaceAStaleResidentCopy) {
  auto dev = RecordingDevice::Make(kBs, 64);
  for (uint64_t b = 1; b < 64; b++) WritePage(dev.get(), b, b);
  auto cache = MakeCache(dev.get(), 32);
  { ASSERT_TRUE(cache->PinShared(12).has_value()); }
  { ASSERT_TRUE(cache->PinShared(13).has_value()); }
  {
    auto g = cache->PinNew(12, 7);
    ASSERT_TRUE(g.has_value()) << g.error().ToString();
    EXPECT_EQ(Tag(g->data()), 0u) << "zero-filled, not the stale copy";
    EXPECT_EQ(g->epoch(), 7u);
    SealBlock(g->data(), BlockType::kBTreeLeaf, 12, 2);
  }
  {
    auto g = cache->PinExclusive(10);
    ASSERT_TRUE(g.has_value());
    EXPECT_EQ(g->epoch(), 0u) << "read from the device: epoch unknown";
    ASSERT_TRUE(cache->Relocate(*g, 13, 9).ok());
    EXPECT_EQ(g->epoch(), 9u);
    EXPECT_EQ(Tag(g->data()), 10u) << "the relocated bytes, not the stale copy of 13";
    SealBlock(g->data(), BlockType::kBTreeLeaf, 13, 2);
  }
  auto again = cache->PinShared(13);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(Tag(again->data()), 10u);
}

TEST(PageCache, RelocateAndDiscard) {
  auto dev = RecordingDevice::Make(kBs, 64);
  for (uint64_t b = 1; b < 64; b++) WritePage(dev.get(), b, b);
  auto cache = MakeCache(dev.get(), 32);
  {
    auto g = cache->PinExclusive(10);
    ASSERT_TRUE(g.has_value());
    ASSERT_TRUE(cache->Relocate(*g, 11).ok());
    EXPECT_EQ(g->page_id(), 11u);
  }
  // Not stamped yet: write-back refuses a page whose header names another block.
  Status flushed = cache->FlushAll();
  EXPECT_TRUE(flushed.IsCorruption()) << flushed.ToString();
  {
    auto g = cache->PinExclusive(11);
    ASSERT_TRUE(g.has_value());
    EXPECT_EQ(Tag(g->data()), 10u);
    SealBlock(g->data(), BlockType::kBTreeLeaf, 11, 2);  // stamp, as the relocating tree does
    EXPECT_TRUE(cache->Relocate(*g, 11).IsInvalidArgument()) << "onto itself";
  }
  ASSERT_TRUE(cache->FlushAll().ok());
  AlignedBuffer buf(kBs, 4096);
  ASSERT_TRUE(dev->Read(11, 1, buf.span()).ok());
  EXPECT_EQ(Tag(buf.span()), 10u);
  // Page 10 was read again from disk (the cache no longer maps it).
  {
    auto g = cache->PinShared(10);
    ASSERT_TRUE(g.has_value());
    EXPECT_EQ(Tag(g->data()), 10u);
  }
  // Discard drops a dirty page without writing it.
  uint64_t written = cache->stats().pages_written;
  {
    auto g = cache->PinExclusive(20);
    ASSERT_TRUE(g.has_value());
    SetTag(g->data(), 999);
    g->MarkDirty();
    cache->Discard(*g);
    EXPECT_FALSE(g->valid());
  }
  ASSERT_TRUE(cache->FlushAll().ok());
  EXPECT_EQ(cache->stats().pages_written, written);
  auto g = cache->PinShared(20);
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(Tag(g->data()), 20u);
}

// Threads increment per-page counters through exclusive pins in a cache far smaller than the
// working set, while others read; every increment must survive eviction and write-back.
TEST(PageCache, ConcurrentPinsAndEviction) {
  constexpr uint64_t kPages = 200;
  constexpr int kThreads = 4;
  const int kOps = testing::LongTests() ? 200000 : 20000;
  auto dev = RecordingDevice::Make(kBs, kPages + 1);
  for (uint64_t b = 1; b <= kPages; b++) WritePage(dev.get(), b, 0);
  auto cache = MakeCache(dev.get(), 48);
  const uint64_t seed = ::vde::testing::TestSeed();
  std::vector<std::vector<uint64_t>> counts(kThreads, std::vector<uint64_t>(kPages + 1, 0));
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + t);
      for (int i = 0; i < kOps && !failed; i++) {
        uint64_t b = 1 + rng() % kPages;
        if (rng() % 3 == 0) {
          auto g = cache->PinShared(b);
          if (!g.has_value()) {
            failed = true;
            ADD_FAILURE() << g.status().ToString();
            return;
          }
          uint64_t first = Tag(g->data());
          uint64_t last = GetU64(g->data().data() + kBs - 8);
          if (first != last) {
            failed = true;
            ADD_FAILURE() << "torn page " << b;
          }
        } else {
          auto g = cache->PinExclusive(b);
          if (!g.has_value()) {
            failed = true;
            ADD_FAILURE() << g.status().ToString();
            return;
          }
          SetTag(g->data(), Tag(g->data()) + 1);
          g->MarkDirty();
          counts[t][b]++;
        }
        if (i % 5000 == 0 && t == 0) {
          Status s = cache->FlushAll();
          if (!s.ok()) {
            failed = true;
            ADD_FAILURE() << s.ToString();
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_FALSE(failed);
  ASSERT_TRUE(cache->FlushAll().ok());
  cache.reset();
  AlignedBuffer buf(kBs, 4096);
  for (uint64_t b = 1; b <= kPages; b++) {
    uint64_t want = 0;
    for (int t = 0; t < kThreads; t++) want += counts[t][b];
    ASSERT_TRUE(dev->Read(b, 1, buf.span()).ok());
    ASSERT_TRUE(VerifyBlock(buf.span(), b, BlockType::kBTreeLeaf, dev->path()).ok());
    EXPECT_EQ(Tag(buf.span()), want) << "page " << b;
  }
}

// Fills block `b` with a sealed page of block type `type` (inner B+tree pages are favoured).
void WriteTypedPage(blockdev::BlockDevice* dev, uint64_t b, BlockType type) {
  AlignedBuffer buf(kBs, 4096);
  for (size_t off = kBlockHeaderSize; off + 8 <= kBs; off += 8) PutU64(buf.data() + off, b);
  SealBlock(buf.span(), type, b, 1);
  ASSERT_TRUE(dev->Write(b, 1, buf.span()).ok());
}

TEST(PageCache, PinSharedBatchReadsEveryMissWithOneReadBatch) {
  auto dev = RecordingDevice::Make(kBs, 64);
  for (uint64_t b = 1; b < 64; b++) WritePage(dev.get(), b, b);
  AlignedBuffer buf(kBs, 4096);
  ASSERT_TRUE(dev->Read(7, 1, buf.span()).ok());
  buf.data()[100] ^= std::byte{1};
  ASSERT_TRUE(dev->Write(7, 1, buf.span()).ok());
  auto cache = MakeCache(dev.get(), 64);
  {
    auto g3 = cache->PinShared(3);
    auto g4 = cache->PinShared(4);
    ASSERT_TRUE(g3.has_value() && g4.has_value());
  }
  const std::vector<uint64_t> pages = {3, 10, 11, 4, 12, 10, kNoPage, 7, 1000};
  std::vector<PageCache::SharedGuard> guards(pages.size());
  std::vector<Status> statuses(pages.size());
  const uint64_t batches = dev->stats().batches;
  const uint32_t read = cache->PinSharedBatch(pages, nullptr, guards, statuses);
  EXPECT_EQ(read, 5u) << "10, 11, 12, 7 and 1000; the repeated 10 waits for the first";
  EXPECT_EQ(dev->stats().batches, batches + 1);
  for (size_t i : {0, 1, 2, 3, 4, 5}) {
    ASSERT_TRUE(statuses[i].ok()) << i << ": " << statuses[i].ToString();
    ASSERT_TRUE(guards[i].valid());
    EXPECT_EQ(Tag(guards[i].data()), pages[i]);
    EXPECT_EQ(guards[i].page_id(), pages[i]);
    // Read straight into registered frames.
    EXPECT_TRUE(dev->IsRegistered(guards[i].data().data(), kBs));
  }
  EXPECT_EQ(guards[1].data().data(), guards[5].data().data());
  EXPECT_TRUE(statuses[6].IsInvalidArgument()) << statuses[6].ToString();
  EXPECT_TRUE(statuses[7].IsCorruption()) << statuses[7].ToString();
  EXPECT_TRUE(statuses[8].IsOutOfRange()) << statuses[8].ToString();
  for (size_t i : {6, 7, 8}) EXPECT_FALSE(guards[i].valid());
  PageCacheStats st = cache->stats();
  EXPECT_EQ(st.batch_reads, 1u);
  EXPECT_EQ(st.batch_pages, 5u);
  EXPECT_EQ(st.max_batch_pages, 5u);
  EXPECT_EQ(st.batch_pages_log2[2], 1u) << "a batch of 4-7 pages";
  EXPECT_EQ(st.resident, 5u + 0u) << "3, 4, 10, 11, 12; failed pages are not cached";
  // All resident now: no device batch.
  for (auto& g : guards) g.Release();
  std::vector<uint64_t> again = {3, 4, 10, 11, 12};
  std::vector<PageCache::SharedGuard> g2(again.size());
  std::vector<Status> s2(again.size());
  EXPECT_EQ(cache->PinSharedBatch(again, nullptr, g2, s2), 0u);
  EXPECT_EQ(dev->stats().batches, batches + 1);
  for (size_t i = 0; i < again.size(); i++) EXPECT_EQ(Tag(g2[i].data()), again[i]);
}

// Readers pin random sets with PinSharedBatch and single pins (lock-free hits) while writers
// increment counters in other pages, in a cache far smaller than the pages: reads see the right
// pages, and no increment is lost to eviction.
TEST(PageCache, BatchedAndLockFreePinsUnderEviction) {
  constexpr uint64_t kReadOnly = 200, kCounters = 100;
  const int kOps = testing::LongTests() ? 50000 : 4000;
  auto dev = RecordingDevice::Make(kBs, kReadOnly + kCounters + 1);
  for (uint64_t b = 1; b <= kReadOnly; b++) WritePage(dev.get(), b, b);
  for (uint64_t b = kReadOnly + 1; b <= kReadOnly + kCounters; b++) WritePage(dev.get(), b, 0);
  auto cache = MakeCache(dev.get(), 96);
  const uint64_t seed = ::vde::testing::TestSeed();
  std::atomic<bool> failed{false};
  std::vector<uint64_t> counts(kCounters + 1, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; t++) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + t);
      std::vector<uint64_t> pages;
      for (int i = 0; i < kOps && !failed; i++) {
        pages.resize(1 + rng() % 16);
        for (uint64_t& p : pages) p = 1 + rng() % kReadOnly;
        std::vector<PageCache::SharedGuard> guards(pages.size());
        std::vector<Status> statuses(pages.size());
        (void)cache->PinSharedBatch(pages, nullptr, guards, statuses);
        for (size_t k = 0; k < pages.size(); k++) {
          if (!statuses[k].ok() || Tag(guards[k].data()) != pages[k]) {
            failed = true;
            ADD_FAILURE() << "page " << pages[k] << ": " << statuses[k].ToString();
            return;
          }
        }
        guards.clear();
        auto g = cache->PinShared(1 + rng() % kReadOnly);
        if (!g.has_value() || Tag(g->data()) != g->page_id()) {
          failed = true;
          ADD_FAILURE() << g.status().ToString();
          return;
        }
      }
    });
  }
  threads.emplace_back([&] {
    std::mt19937_64 rng(seed + 99);
    for (int i = 0; i < kOps * 2 && !failed; i++) {
      const uint64_t c = 1 + rng() % kCounters;
      auto g = cache->PinExclusive(kReadOnly + c);
      if (!g.has_value()) {
        failed = true;
        ADD_FAILURE() << g.status().ToString();
        return;
      }
      SetTag(g->data(), Tag(g->data()) + 1);
      g->MarkDirty();
      counts[c]++;
    }
  });
  for (auto& th : threads) th.join();
  ASSERT_FALSE(failed);
  ASSERT_TRUE(cache->FlushAll().ok());
  cache.reset();
  AlignedBuffer buf(kBs, 4096);
  for (uint64_t c = 1; c <= kCounters; c++) {
    ASSERT_TRUE(dev->Read(kReadOnly + c, 1, buf.span()).ok());
    EXPECT_EQ(Tag(buf.span()), counts[c]) << "counter page " << kReadOnly + c;
  }
}

// Pages read ahead and then used once (a scan's) go before pages used again: new misses evict
// the scan's pages and leave the hot ones resident, though the hot ones lie first in the
// hand's way.
TEST(PageCache, PagesReadAheadAndUsedOnceGoFirst) {
  auto dev = RecordingDevice::Make(kBs, 300);
  for (uint64_t b = 1; b < 300; b++) WritePage(dev.get(), b, b);
  auto cache = MakeCache(dev.get(), 64);
  for (int round = 0; round < 2; round++) {
    for (uint64_t b = 1; b <= 16; b++) ASSERT_TRUE(cache->PinShared(b).has_value());
  }
  std::vector<uint64_t> scan;
  for (uint64_t b = 100; b < 116; b++) scan.push_back(b);
  for (int window = 0; window < 2; window++) {  // two windows of 16 (a Prefetch reads frames/4)
    ASSERT_TRUE(cache->Prefetch(scan).ok());
    for (uint64_t b : scan) ASSERT_TRUE(cache->PinShared(b).has_value());
    for (uint64_t& b : scan) b += 16;
  }
  EXPECT_EQ(cache->stats().prefetch_used, 32u);
  // 16 frames are free; 30 more misses evict 14 pages: the scan's.
  for (uint64_t b = 200; b < 230; b++) ASSERT_TRUE(cache->PinShared(b).has_value());
  const uint64_t misses = cache->stats().misses;
  for (uint64_t b = 1; b <= 16; b++) ASSERT_TRUE(cache->PinShared(b).has_value());
  EXPECT_EQ(cache->stats().misses, misses) << "a page used twice was evicted";
  EXPECT_EQ(cache->stats().prefetch_wasted, 0u);
}

// Inner pages (block type kBTreeInner) survive a stream of leaf misses that cycles the cache
// many times over, as long as they hold at most inner_share_percent of the frames.
TEST(PageCache, EvictionSparesInnerPages) {
  constexpr uint64_t kInner = 60, kLeaves = 3000;
  auto dev = RecordingDevice::Make(kBs, kInner + kLeaves + 1);
  for (uint64_t b = 1; b <= kInner; b++) WriteTypedPage(dev.get(), b, BlockType::kBTreeInner);
  for (uint64_t b = kInner + 1; b <= kInner + kLeaves; b++) {
    WriteTypedPage(dev.get(), b, BlockType::kBTreeLeaf);
  }
  const uint64_t seed = ::vde::testing::TestSeed();
  for (uint32_t share : {50u, 0u}) {
    PageCacheOptions o;
    o.budget_bytes = PageCache::BudgetFor(128, kBs);
    o.inner_share_percent = share;
    auto c = PageCache::Create(dev.get(), o);
    ASSERT_TRUE(c.has_value());
    PageCache& cache = **c;
    std::mt19937_64 rng(seed);
    for (uint64_t b = 1; b <= kInner; b++) ASSERT_TRUE(cache.PinShared(b).has_value());
    uint64_t inner_misses = 0;
    for (int i = 0; i < 20000; i++) {
      const uint64_t misses = cache.stats().misses;
      // Inner pages are touched far less often than the hand comes round.
      if (i % 10 == 0) {
        auto g = cache.PinShared(1 + rng() % kInner);
        ASSERT_TRUE(g.has_value());
        ASSERT_EQ(Tag(g->data()), g->page_id());
        inner_misses += cache.stats().misses - misses;
      }
      auto leaf = cache.PinShared(kInner + 1 + rng() % kLeaves);
      ASSERT_TRUE(leaf.has_value());
      ASSERT_EQ(Tag(leaf->data()), leaf->page_id());
    }
    PageCacheStats st = cache.stats();
    std::printf("inner_share_percent %u: %llu inner misses, %u inner pages resident\n", share,
                static_cast<unsigned long long>(inner_misses), st.inner_pages);
    if (share == 50) {
      EXPECT_EQ(inner_misses, 0u) << "seed " << seed;
      EXPECT_EQ(st.inner_pages, kInner);
    } else {
      EXPECT_GT(inner_misses, 0u) << "plain CLOCK evicts rarely used inner pages";
    }
    EXPECT_LE(st.resident, st.frames);
  }
}

TEST(PageCache, PrefetchCountsUsedAndWastedPages) {
  auto dev = RecordingDevice::Make(kBs, 200);
  for (uint64_t b = 1; b < 200; b++) WritePage(dev.get(), b, b);
  auto cache = MakeCache(dev.get(), 32);
  std::vector<uint64_t> want = {1, 2, 3, 4, 5, 6, 7, 8};
  ASSERT_TRUE(cache->Prefetch(want).ok());
  PageCacheStats st = cache->stats();
  EXPECT_EQ(st.prefetch_reads, 1u);
  EXPECT_EQ(st.prefetch_pages, 8u);
  for (uint64_t b = 1; b <= 4; b++) {
    auto g = cache->PinShared(b);  // twice for page 1: counted once
    ASSERT_TRUE(g.has_value());
  }
  ASSERT_TRUE(cache->PinShared(1).has_value());
  EXPECT_EQ(cache->stats().prefetch_used, 4u);
  EXPECT_EQ(cache->stats().prefetch_wasted, 0u);
  for (uint64_t b = 100; b < 200; b++) ASSERT_TRUE(cache->PinShared(b).has_value());
  st = cache->stats();
  EXPECT_EQ(st.prefetch_used, 4u);
  EXPECT_EQ(st.prefetch_wasted, 4u) << "5..8 were evicted before anyone pinned them";
}

// PrefetchAsync hands the reads to the read-ahead thread: a pin right after it waits for the
// read in flight instead of reading the page again, and every page is read once.
TEST(PageCache, PrefetchAsyncPagesArePinnedWithoutASecondRead) {
  auto dev = RecordingDevice::Make(kBs, 200);
  for (uint64_t b = 1; b < 200; b++) WritePage(dev.get(), b, b);
  auto cache = MakeCache(dev.get(), 256);  // read-ahead budget: 64 frames
  std::vector<uint64_t> want;
  for (uint64_t b = 10; b < 50; b++) want.push_back(b);
  want.push_back(20);  // a duplicate
  ASSERT_EQ(cache->PrefetchAsync(want), want.size());
  for (uint64_t b = 10; b < 50; b++) {
    auto g = cache->PinShared(b);
    ASSERT_TRUE(g.has_value()) << g.status().ToString();
    EXPECT_EQ(Tag(g->data()), b);
  }
  cache->WaitForReadAhead();
  const PageCacheStats st = cache->stats();
  EXPECT_EQ(st.misses, 0u) << "no page read twice";
  EXPECT_EQ(st.pages_read, 40u);
  EXPECT_EQ(st.prefetch_pages, 40u);
  EXPECT_EQ(st.prefetch_used, 40u);
  EXPECT_EQ(st.prefetch_async, 1u);
  // Resident pages are covered without a read, and with none missing nothing is queued.
  ASSERT_EQ(cache->PrefetchAsync(want), want.size());
  cache->WaitForReadAhead();
  EXPECT_EQ(cache->stats().pages_read, 40u);
  EXPECT_EQ(cache->stats().prefetch_async, 1u);
  // A resident prefix is passed over; what follows it is read.
  const std::vector<uint64_t> more = {10, 11, 60, 61};
  ASSERT_EQ(cache->PrefetchAsync(more), more.size());
  cache->WaitForReadAhead();
  EXPECT_EQ(cache->stats().pages_read, 42u);
  EXPECT_EQ(cache->stats().prefetch_async, 2u);
  for (uint64_t b : more) {
    auto g = cache->PinShared(b);
    ASSERT_TRUE(g.has_value()) << g.status().ToString();
    EXPECT_EQ(Tag(g->data()), b);
  }
  EXPECT_EQ(cache->stats().misses, 0u);
}

// One call starts at most frames/4 reads; what it covers is a prefix of the pages asked for.
TEST(PageCache, PrefetchAsyncStartsAtMostAQuarterOfTheFrames) {
  auto dev = RecordingDevice::Make(kBs, 200);
  for (uint64_t b = 1; b < 200; b++) WritePage(dev.get(), b, b);
  auto cache = MakeCache(dev.get(), 32);
  ASSERT_TRUE(cache->PinShared(3).has_value());  // resident: covered, not read
  std::vector<uint64_t> want;
  for (uint64_t b = 1; b <= 20; b++) want.push_back(b);
  EXPECT_EQ(cache->PrefetchAsync(want), 9u) << "8 reads (1, 2, 4..9) plus the resident 3";
  cache->WaitForReadAhead();
  EXPECT_EQ(cache->stats().prefetch_pages, 8u);
}

// A page that fails verification on the read-ahead thread is not cached: its pin reads it
// again and gets the Corruption; the others of the batch are resident.
TEST(PageCache, PrefetchAsyncDropsAPageThatFailsVerification) {
  auto dev = RecordingDevice::Make(kBs, 32);
  for (uint64_t b = 1; b < 32; b++) WritePage(dev.get(), b, b);
  AlignedBuffer buf(kBs, 4096);
  ASSERT_TRUE(dev->Read(5, 1, buf.span()).ok());
  buf.data()[200] ^= std::byte{4};
  ASSERT_TRUE(dev->Write(5, 1, buf.span()).ok());
  auto cache = MakeCache(dev.get(), 64);
  const std::vector<uint64_t> want = {3, 4, 5, 6, 7, 8};
  ASSERT_EQ(cache->PrefetchAsync(want), want.size());
  cache->WaitForReadAhead();
  EXPECT_EQ(cache->stats().prefetch_pages, 5u);
  EXPECT_EQ(cache->stats().resident, 5u);
  auto g = cache->PinShared(5);
  ASSERT_FALSE(g.has_value());
  EXPECT_TRUE(g.status().IsCorruption()) << g.status().ToString();
  EXPECT_NE(g.status().ToString().find("block 5 of test.vdisk"), std::string::npos)
      << g.status().ToString();
  const uint64_t misses = cache->stats().misses;
  for (uint64_t b : {3, 4, 6, 7, 8}) ASSERT_TRUE(cache->PinShared(b).has_value());
  EXPECT_EQ(cache->stats().misses, misses);
}

}  // namespace
}  // namespace vde::index
