// The allocator against a model under random allocate / free / checkpoint / reopen steps.
// VDE_TEST_SEED replays a run; VDE_TEST_LONG=1 runs ten times as many steps.
#include "vde/allocator.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>
#include <thread>

#include "tests/test_util.h"
#include "tests/vde/fault_device.h"
#include "vde/alloc_map.h"
#include "vde/disk.h"

namespace vde {
namespace {

using testing::CrashMode;
using testing::FaultDevice;
using testing::FaultMedia;

uint64_t Steps(uint64_t normal) {
  const char* l = std::getenv("VDE_TEST_LONG");
  return l != nullptr && *l != '\0' && *l != '0' ? normal * 10 : normal;
}

struct Config {
  uint32_t block_size;
  uint64_t blocks;
  bool growable = false;
  uint64_t max_blocks = 0;
  uint64_t step_blocks = 0;
  uint64_t max_request = 4096;
};

// The model: what the user of the allocator believes, block by block.
class ModelTest {
 public:
  ModelTest(const Config& c, uint64_t seed) : cfg_(c), rng_(seed) {
    media_ = std::make_shared<FaultMedia>(c.block_size, c.blocks);
    CreateOptions o;
    o.growable = c.growable;
    o.max_size_bytes = c.max_blocks * c.block_size;
    o.growth_step_bytes = std::max<uint64_t>(c.step_blocks, 1) * c.block_size;
    auto d = Disk::CreateOnDevice(std::make_unique<FaultDevice>(media_), o);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    disk_ = std::move(*d);
    owned_.assign(alloc().block_count(), 0);
    owned_[0] = owned_[1] = kSuper;
    TakeSnapshot();
  }

  Allocator& alloc() { return disk_->allocator(); }

  void Run(uint64_t steps) {
    for (uint64_t i = 0; i < steps && !::testing::Test::HasFailure(); i++) {
      if (i % 5000 == 0) filling_ = !filling_;
      owned_.resize(alloc().block_count(), kFree);  // a failed allocation may have grown it
      unsigned r = rng_() % 1000;
      if (r < 4) {
        Checkpoint();
      } else if (r < 5) {
        Reopen(rng_() % 2 == 0);
      } else if (r < 7) {
        CheckAll();
      } else if (r < (filling_ ? 800u : 300u)) {
        AllocateOne(i % 97 == 0);
      } else {
        FreeOne();
      }
    }
    CheckAll();
    Checkpoint();
    Reopen(false);
    CheckAll();
  }

  uint64_t allocs_ok = 0, allocs_nospace = 0, grows = 0, reopens = 0;

 private:
  static constexpr uint8_t kFree = 0, kUsed = 1, kPending = 2, kSuper = 3;

  uint64_t RequestSize() {
    unsigned r = rng_() % 100;
    if (r < 70) return 1;
    if (r < 90) return 2 + rng_() % 15;
    if (r < 99) return 17 + rng_() % 240;
    return 257 + rng_() % (cfg_.max_request - 256);
  }

  void AllocateOne(bool check_best_fit) {
    uint64_t n = RequestSize();
    AllocatorStats before = alloc().stats();
    std::vector<Extent> free_before;
    if (check_best_fit) free_before = alloc().FreeExtents();
    auto r = alloc().Allocate(n);
    bool fits = before.largest_free_extent >= n && before.free_blocks - n >= before.reserved_blocks;
    bool can_grow = cfg_.growable && (cfg_.max_blocks == 0 || before.block_count < cfg_.max_blocks);
    if (!r.ok()) {
      ASSERT_TRUE(r.error().IsNoSpace()) << r.error().ToString();
      ASSERT_FALSE(fits) << "NoSpace for " << n << " blocks with a free extent of "
                         << before.largest_free_extent;
      if (cfg_.growable) {
        ASSERT_EQ(alloc().block_count(), cfg_.max_blocks);
      }
      allocs_nospace++;
      return;
    }
    ASSERT_TRUE(fits || can_grow) << "allocated " << n << " blocks with no room and no growth";
    uint64_t count = alloc().block_count();
    if (count != before.block_count) {
      ASSERT_FALSE(fits) << "grew although a free extent fitted";
      ASSERT_TRUE(cfg_.growable);
      grows++;
    }
    Extent e = *r;
    ASSERT_EQ(e.count, n);
    ASSERT_LE(e.end(), count);
    owned_.resize(count, kFree);
    for (uint64_t b = e.start; b < e.end(); b++) {
      ASSERT_EQ(owned_[b], kFree) << "block " << b << " handed out while "
                                  << (owned_[b] == kPending ? "pending reuse" : "in use");
      owned_[b] = kUsed;
    }
    if (check_best_fit && fits) {
      const Extent* best = nullptr;
      for (const Extent& f : free_before) {
        if (f.count >= n && (best == nullptr || f.count < best->count)) best = &f;
      }
      ASSERT_NE(best, nullptr);
      ASSERT_EQ(e.start, best->start) << "not the best fit for " << n << " blocks";
    }
    allocated_[e.start] = e.count;
    used_ += e.count;
    allocs_ok++;
  }

  void FreeOne() {
    if (allocated_.empty()) return;
    auto it = allocated_.lower_bound(rng_() % owned_.size());
    if (it == allocated_.end()) it = allocated_.begin();
    Extent whole{it->first, it->second};
    // Free the whole extent, or a piece of it (the rest stays allocated).
    Extent e = whole;
    if (whole.count > 1 && rng_() % 3 == 0) {
      uint64_t off = rng_() % whole.count;
      e = Extent{whole.start + off, 1 + rng_() % (whole.count - off)};
    }
    if (rng_() % 50 == 0) {
      // A double free or a superblock free is refused and changes nothing.
      Status bad = alloc().FreeBlock(rng_() % 2);
      ASSERT_TRUE(bad.IsInvalidArgument()) << bad.ToString();
      if (!pending_.empty()) {
        bad = alloc().FreeBlock(pending_.back().start);
        ASSERT_TRUE(bad.IsInvalidArgument()) << bad.ToString();
      }
    }
    Status s = alloc().Free(e);
    ASSERT_TRUE(s.ok()) << s.ToString();
    allocated_.erase(it);
    if (e.start > whole.start) allocated_[whole.start] = e.start - whole.start;
    if (e.end() < whole.end()) allocated_[e.end()] = whole.end() - e.end();
    for (uint64_t b = e.start; b < e.end(); b++) owned_[b] = kPending;
    pending_.push_back(e);
    used_ -= e.count;
  }

  void Checkpoint() {
    Status s = disk_->Checkpoint();
    ASSERT_TRUE(s.ok()) << s.ToString();
    for (const Extent& e : pending_) {
      for (uint64_t b = e.start; b < e.end(); b++) owned_[b] = kFree;
    }
    pending_.clear();
    TakeSnapshot();
  }

  void TakeSnapshot() {
    durable_allocated_ = allocated_;
    durable_used_ = used_;
    durable_free_ = alloc().FreeExtents();
    durable_count_ = alloc().block_count();
  }

  // clean: Close() (a checkpoint) then open; otherwise a crash (destroy, drop unsynced writes).
  void Reopen(bool clean) {
    if (clean) {
      Checkpoint();
      ASSERT_TRUE(disk_->Close().ok());
    }
    disk_.reset();
    media_->Crash(CrashMode::kDropUnsynced, rng_);
    auto d = Disk::OpenOnDevice(std::make_unique<FaultDevice>(media_), false);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    disk_ = std::move(*d);
    reopens++;
    // The disk is exactly as at the last checkpoint; a file that grew since has a free tail.
    allocated_ = durable_allocated_;
    used_ = durable_used_;
    pending_.clear();
    uint64_t count = alloc().block_count();
    std::vector<Extent> want = durable_free_;
    if (count > durable_count_) {
      if (!want.empty() && want.back().end() == durable_count_) {
        want.back().count += count - durable_count_;
      } else {
        want.push_back({durable_count_, count - durable_count_});
      }
    }
    ASSERT_EQ(alloc().FreeExtents(), want) << "free space after reopen differs from the model";
    owned_.assign(count, kFree);
    owned_[0] = owned_[1] = kSuper;
    for (auto [start, n] : allocated_) {
      for (uint64_t b = start; b < start + n; b++) owned_[b] = kUsed;
    }
    TakeSnapshot();
  }

  void CheckAll() {
    AllocatorStats st = alloc().stats();
    ASSERT_EQ(st.block_count, owned_.size());
    ASSERT_EQ(st.free_blocks + st.pending_blocks + st.used_blocks, st.block_count);
    uint64_t pending = 0;
    for (const Extent& e : pending_) pending += e.count;
    ASSERT_EQ(st.pending_blocks, pending);
    ASSERT_EQ(st.used_blocks - st.metadata_blocks, used_ + 2);
    uint64_t nodes = 0;
    for (uint64_t n : allocmap::LevelSizes(st.block_count, cfg_.block_size)) nodes += n;
    ASSERT_LE(st.metadata_blocks, 2 * nodes);
    uint64_t free = 0;
    for (const Extent& e : alloc().FreeExtents()) {
      free += e.count;
      for (uint64_t b = e.start; b < e.end(); b++) {
        ASSERT_EQ(owned_[b], kFree) << "block " << b << " is free in the allocator, not the model";
      }
    }
    ASSERT_EQ(free, st.free_blocks);
    for (auto [start, n] : allocated_) {
      ASSERT_TRUE(alloc().IsAllocated(start) && alloc().IsAllocated(start + n - 1));
    }
  }

  Config cfg_;
  std::mt19937_64 rng_;
  std::shared_ptr<FaultMedia> media_;
  std::unique_ptr<Disk> disk_;
  std::vector<uint8_t> owned_;
  std::map<uint64_t, uint64_t> allocated_, durable_allocated_;
  std::vector<Extent> pending_, durable_free_;
  uint64_t used_ = 0, durable_used_ = 0, durable_count_ = 0;
  bool filling_ = false;
};

void RunModel(const Config& c, uint64_t steps) {
  uint64_t seed = vde::testing::TestSeed();
  ModelTest t(c, seed);
  t.Run(Steps(steps));
  std::printf("allocations %llu, NoSpace %llu, grows %llu, reopens %llu\n",
              static_cast<unsigned long long>(t.allocs_ok),
              static_cast<unsigned long long>(t.allocs_nospace),
              static_cast<unsigned long long>(t.grows), static_cast<unsigned long long>(t.reopens));
}

TEST(Allocator, ModelFixedSize) {
  RunModel({512, 30000}, 100000);
}

TEST(Allocator, ModelGrowableToMaximum) {
  RunModel({512, 64, true, 40000, 128, 1024}, 100000);
}

TEST(Allocator, ModelThreeLevelMap) {
  // 512-byte blocks: 3584 blocks per leaf, 56 children per node: 250,000 blocks need 3 levels.
  ASSERT_EQ(allocmap::LevelSizes(250000, 512).size(), 3u);
  RunModel({512, 250000, false, 0, 0, 16384}, 30000);
}

TEST(Allocator, ModelLargeBlocks) {
  RunModel({4096, 100000, true, 0, 1024, 4096}, 30000);
}

TEST(Allocator, FreedBlocksReusedOnlyAfterCheckpoint) {
  auto media = std::make_shared<FaultMedia>(4096, 16);
  auto d = Disk::CreateOnDevice(std::make_unique<FaultDevice>(media), {});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  Allocator& a = (*d)->allocator();
  std::vector<uint64_t> got;
  for (;;) {
    auto b = a.AllocateBlock();
    if (!b.ok()) {
      ASSERT_TRUE(b.error().IsNoSpace()) << b.error().ToString();
      break;
    }
    got.push_back(*b);
  }
  ASSERT_FALSE(got.empty());
  ASSERT_TRUE(a.FreeBlock(got[0]).ok());
  EXPECT_EQ(a.stats().pending_blocks, 1u);
  EXPECT_TRUE(a.AllocateBlock().error().IsNoSpace());  // pending until the checkpoint
  ASSERT_TRUE((*d)->Checkpoint().ok());
  EXPECT_EQ(a.stats().pending_blocks, 0u);
  auto again = a.AllocateBlock();
  ASSERT_TRUE(again.ok()) << again.error().ToString();
}

TEST(Allocator, ContiguousBestFit) {
  auto media = std::make_shared<FaultMedia>(4096, 1000);
  auto d = Disk::CreateOnDevice(std::make_unique<FaultDevice>(media), {});
  ASSERT_TRUE(d.ok());
  Allocator& a = (*d)->allocator();
  auto big = a.Allocate(600);
  ASSERT_TRUE(big.ok());
  // Punch holes of 3, 8 and 5 blocks; a request of 5 takes the 5-block hole exactly.
  ASSERT_TRUE(a.Free({big->start + 10, 3}).ok());
  ASSERT_TRUE(a.Free({big->start + 100, 8}).ok());
  ASSERT_TRUE(a.Free({big->start + 200, 5}).ok());
  ASSERT_TRUE((*d)->Checkpoint().ok());
  auto five = a.Allocate(5);
  ASSERT_TRUE(five.ok());
  EXPECT_EQ(five->start, big->start + 200);
  auto four = a.Allocate(4);
  ASSERT_TRUE(four.ok());
  EXPECT_EQ(four->start, big->start + 100);
  EXPECT_TRUE(a.Allocate(0).error().IsInvalidArgument());
}

TEST(Allocator, FixedDiskNoSpaceAndGrowableStopsAtMaximum) {
  auto media = std::make_shared<FaultMedia>(4096, 64);
  auto fixed = Disk::CreateOnDevice(std::make_unique<FaultDevice>(media), {});
  ASSERT_TRUE(fixed.ok());
  auto r = (*fixed)->allocator().Allocate(64);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error().IsNoSpace());
  EXPECT_NE(r.error().message().find("fixed-size"), std::string::npos) << r.error().ToString();

  auto gmedia = std::make_shared<FaultMedia>(4096, 16);
  CreateOptions o;
  o.growable = true;
  o.growth_step_bytes = 16 * 4096;
  o.max_size_bytes = 100 * 4096;
  auto g = Disk::CreateOnDevice(std::make_unique<FaultDevice>(gmedia), o);
  ASSERT_TRUE(g.ok());
  Allocator& a = (*g)->allocator();
  auto e = a.Allocate(40);
  ASSERT_TRUE(e.ok()) << e.error().ToString();
  EXPECT_EQ(a.block_count(), 48u);  // grew by two steps of 16
  EXPECT_EQ(gmedia->block_count, 48u);
  auto too_big = a.Allocate(80);
  ASSERT_FALSE(too_big.ok());
  EXPECT_TRUE(too_big.error().IsNoSpace());
  EXPECT_EQ(a.block_count(), 100u);  // grew to the maximum, still no room
  EXPECT_NE(too_big.error().message().find("maximum"), std::string::npos);
}

TEST(Allocator, ConcurrentAllocateFreeAndCheckpoint) {
  uint64_t seed = vde::testing::TestSeed();
  auto media = std::make_shared<FaultMedia>(4096, 4096);
  CreateOptions o;
  o.growable = true;
  o.growth_step_bytes = 1024 * 4096;
  auto d = Disk::CreateOnDevice(std::make_unique<FaultDevice>(media), o);
  ASSERT_TRUE(d.ok());
  Disk& disk = **d;
  constexpr int kThreads = 4;
  std::vector<std::vector<Extent>> live(kThreads);
  std::atomic<int> running{kThreads};
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + t);
      for (int i = 0; i < 20000; i++) {
        if (live[t].empty() || rng() % 3 != 0) {
          auto e = disk.allocator().Allocate(1 + rng() % 8);
          if (!e.ok()) failed = true;
          if (e.ok()) live[t].push_back(*e);
        } else {
          size_t k = rng() % live[t].size();
          if (!disk.allocator().Free(live[t][k]).ok()) failed = true;
          live[t][k] = live[t].back();
          live[t].pop_back();
        }
      }
      running--;
    });
  }
  int checkpoints = 0;
  while (running.load() > 0 || checkpoints == 0) {
    Status s = disk.Checkpoint();
    ASSERT_TRUE(s.ok()) << s.ToString();
    checkpoints++;
  }
  for (auto& th : threads) th.join();
  ASSERT_FALSE(failed.load());
  ASSERT_TRUE(disk.Checkpoint().ok());
  // Every live extent is allocated, none overlaps another, and the counts add up.
  std::vector<Extent> all;
  uint64_t used = 0;
  for (auto& l : live) {
    all.insert(all.end(), l.begin(), l.end());
    for (const Extent& e : l) used += e.count;
  }
  std::sort(all.begin(), all.end(),
            [](const Extent& a, const Extent& b) { return a.start < b.start; });
  for (size_t i = 1; i < all.size(); i++) ASSERT_LE(all[i - 1].end(), all[i].start);
  AllocatorStats st = disk.allocator().stats();
  EXPECT_EQ(st.pending_blocks, 0u);
  EXPECT_EQ(st.used_blocks - st.metadata_blocks, used + 2);
  std::vector<Extent> free_before = disk.allocator().FreeExtents();
  ASSERT_TRUE(disk.Close().ok());
  d->reset();
  auto again = Disk::OpenOnDevice(std::make_unique<FaultDevice>(media), false);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->allocator().FreeExtents(), free_before);
  std::printf("%d checkpoints ran alongside %d threads\n", checkpoints, kThreads);
}

}  // namespace
}  // namespace vde
