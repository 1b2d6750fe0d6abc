// WriteBatch atomicity: a batch that fails anywhere (validation, NoSpace part-way) leaves
// nothing of itself visible, before and after reopen, and leaks no block.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>

#include "tests/test_util.h"
#include "tests/vde/store_test_util.h"
#include "vde/store.h"

namespace vde {
namespace {

using testing::Model;
using testing::ScratchDir;

Options SmallFixedDisk(uint64_t bytes) {
  Options o = testing::TestOptions(1 << 20);
  o.growable = false;
  o.disk_size_bytes = bytes;
  return o;
}

void ExpectVerifies(const Store& s) {
  auto rep = s.Verify(true);
  ASSERT_TRUE(rep.has_value()) << rep.status().ToString();
}

TEST(StoreBatch, AppliesAllAcrossIndexes) {
  ScratchDir dir;
  const std::string path = dir.File("s.vdisk");
  {
    auto s = std::move(*Store::Open(path, testing::TestOptions()));
    auto a = s->CreateIndex("a");
    ASSERT_TRUE(a.has_value());
    ASSERT_TRUE(s->Put("gone", "x").ok());
    WriteBatch b;
    b.Put("k1", "v1");
    b.Put(*a, "k1", "a1");
    b.Delete("gone");
    b.Put("k2", "first");
    b.Put("k2", "second");  // later wins
    b.Put(*a, "tmp", "t");
    b.Delete(*a, "tmp");
    EXPECT_EQ(b.count(), 7u);
    ASSERT_TRUE(s->Write(b).ok());
    EXPECT_TRUE(s->Write(WriteBatch()).ok());
    ASSERT_TRUE(s->Close().ok());
  }
  auto s = std::move(*Store::Open(path, testing::TestOptions()));
  auto a = s->OpenIndex("a");
  ASSERT_TRUE(a.has_value());
  testing::ExpectIndexEquals(*s, s->default_index(), Model{{"k1", "v1"}, {"k2", "second"}});
  testing::ExpectIndexEquals(*s, *a, Model{{"k1", "a1"}});
}

TEST(StoreBatch, InvalidOperationRefusesTheWholeBatch) {
  ScratchDir dir;
  auto s = std::move(*Store::Open(dir.File("s.vdisk"), testing::TestOptions()));
  auto a = s->CreateIndex("a");
  auto d = s->CreateIndex("dropped");
  ASSERT_TRUE(a.has_value() && d.has_value());
  ASSERT_TRUE(s->Put("keep", "old").ok());
  {
    WriteBatch b;
    b.Put("new", "v");
    b.Put("keep", "changed");
    b.Put(*a, std::string(s->max_key_size() + 1, 'k'), "v");
    b.Put(*a, "after", "v");
    Status st = s->Write(b);
    EXPECT_TRUE(st.IsInvalidArgument()) << st.ToString();
    EXPECT_NE(st.message().find("operation 2"), std::string::npos) << st.ToString();
  }
  {
    WriteBatch b;
    b.Put("new", "v");
    b.Put(*d, "k", "v");
    ASSERT_TRUE(s->DropIndex("dropped").ok());
    Status st = s->Write(b);
    EXPECT_TRUE(st.IsNotFound()) << st.ToString();
  }
  {
    WriteBatch b;
    b.Put("new", "v");
    b.Put(Index(), "k", "v");
    EXPECT_TRUE(s->Write(b).IsInvalidArgument());
  }
  testing::ExpectIndexEquals(*s, s->default_index(), Model{{"keep", "old"}});
  testing::ExpectIndexEquals(*s, *a, Model{});
}

TEST(StoreBatch, NoSpacePartWayLeavesNothingVisible) {
  ScratchDir dir;
  const std::string path = dir.File("s.vdisk");
  Model before;
  {
    auto s = std::move(*Store::Open(path, SmallFixedDisk(4 << 20)));  // 1024 blocks
    auto a = s->CreateIndex("a");
    ASSERT_TRUE(a.has_value());
    for (int i = 0; i < 200; i++) {
      std::string v(i % 5 == 0 ? 3000 : 20, static_cast<char>('a' + i % 26));
      ASSERT_TRUE(s->Put("pre" + std::to_string(i), v).ok());
      before["pre" + std::to_string(i)] = v;
    }
    ASSERT_TRUE(s->Checkpoint().ok());
    ASSERT_TRUE(s->Checkpoint().ok());
    const uint64_t pending_before = s->GetStats().pending_blocks;

    WriteBatch b;
    for (int i = 0; i < 200; i += 3) b.Put("pre" + std::to_string(i), std::string(2000, 'X'));
    for (int i = 1; i < 200; i += 7) b.Delete("pre" + std::to_string(i));
    for (int i = 0; i < 100; i++) {
      b.Put(i % 2 ? s->default_index() : *a, "new" + std::to_string(i), std::string(60000, 'N'));
    }
    Status st = s->Write(b);
    ASSERT_TRUE(st.IsNoSpace()) << st.ToString();
    // Part of it was applied (and undone): its blocks wait for the next checkpoint.
    EXPECT_GT(s->GetStats().pending_blocks, pending_before);
    testing::ExpectIndexEquals(*s, s->default_index(), before);
    testing::ExpectIndexEquals(*s, *a, Model{});
    ExpectVerifies(*s);
    // Still usable; the undone batch's space comes back after a checkpoint.
    ASSERT_TRUE(s->Put("after", "ok").ok());
    before["after"] = "ok";
    ASSERT_TRUE(s->Checkpoint().ok());
    ASSERT_TRUE(s->Checkpoint().ok());
    ASSERT_TRUE(s->Put(*a, "big", std::string(60000, 'B')).ok());
    ASSERT_TRUE(s->Delete(*a, "big").ok());
    ASSERT_TRUE(s->Close().ok());
  }
  auto s = std::move(*Store::Open(path, SmallFixedDisk(4 << 20)));
  testing::ExpectIndexEquals(*s, s->default_index(), before);
  testing::ExpectIndexEquals(*s, *s->OpenIndex("a"), Model{});
  ExpectVerifies(*s);
}

// Random batches on a disk kept nearly full: every batch either applies whole or not at all.
TEST(StoreBatch, RandomBatchesNearFullDiskMatchModel) {
  ScratchDir dir;
  const std::string path = dir.File("s.vdisk");
  const uint64_t seed = testing::TestSeed();
  std::mt19937_64 rng(seed);
  Options o = SmallFixedDisk(3 << 20);
  o.growable = true;  // growable with a maximum: NoSpace at the maximum
  o.disk_size_bytes = 0;
  o.max_size_bytes = 4 << 20;
  o.growth_step_bytes = 256 << 10;
  auto s = std::move(*Store::Open(path, o));
  auto a = s->CreateIndex("a");
  ASSERT_TRUE(a.has_value());
  Model model[2];
  int ok = 0, nospace = 0;
  const int rounds = testing::LongTests() ? 3000 : 600;
  for (int round = 0; round < rounds; round++) {
    SCOPED_TRACE("round " + std::to_string(round) + " seed " + std::to_string(seed));
    WriteBatch b;
    Model next[2] = {model[0], model[1]};
    const int n = rng() % 3 == 0 ? 1 : 1 + static_cast<int>(rng() % 40);
    struct {
      const Index* index;
      bool put;
      std::string key, value;
    } last;
    const Index default_index = s->default_index();
    for (int i = 0; i < n; i++) {
      const int which = static_cast<int>(rng() % 2);
      last.index = which == 0 ? &default_index : &*a;
      last.key = "k" + std::to_string(rng() % 300);
      last.put = rng() % 3 != 0;
      if (!last.put) {
        b.Delete(*last.index, last.key);
        next[which].erase(last.key);
      } else {
        const size_t len = rng() % 4 == 0 ? 5000 + rng() % 40000 : rng() % 200;
        last.value.assign(len, static_cast<char>('a' + rng() % 26));
        b.Put(*last.index, last.key, last.value);
        next[which][last.key] = last.value;
      }
    }
    // Some writes are single operations, which take the path without an undo image.
    Status st;
    if (n == 1 && rng() % 2 == 0) {
      st = last.put ? s->Put(*last.index, last.key, last.value) : s->Delete(*last.index, last.key);
    } else {
      st = s->Write(b);
    }
    if (st.ok()) {
      ok++;
      model[0] = std::move(next[0]);
      model[1] = std::move(next[1]);
    } else {
      ASSERT_TRUE(st.IsNoSpace()) << st.ToString();
      nospace++;
    }
    if (!st.ok() || round % 50 == 0) {
      testing::ExpectIndexEquals(*s, s->default_index(), model[0]);
      testing::ExpectIndexEquals(*s, *a, model[1]);
    }
    if (rng() % 10 == 0) {
      ASSERT_TRUE(s->Checkpoint().ok());
    }
    if (rng() % 100 == 0) {
      ExpectVerifies(*s);
      ASSERT_TRUE(s->Close().ok());
      s = std::move(*Store::Open(path, o));
      a = *s->OpenIndex("a");
    }
  }
  std::printf("batches: %d applied, %d refused with NoSpace\n", ok, nospace);
  EXPECT_GT(nospace, 0);
  EXPECT_GT(ok, 0);
  ASSERT_TRUE(s->Close().ok());
  s = std::move(*Store::Open(path, o));
  testing::ExpectIndexEquals(*s, s->default_index(), model[0]);
  testing::ExpectIndexEquals(*s, *s->OpenIndex("a"), model[1]);
  ExpectVerifies(*s);
}

}  // namespace
}  // namespace vde
