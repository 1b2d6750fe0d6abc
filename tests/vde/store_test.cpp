// Store: the key-value API on real files: basic operations, reopen, named indexes, iterators,
// out-of-line values, merges, and every kind of bad input.
#include "vde/store.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "blockdev/block_header.h"
#include "index/node.h"
#include "tests/test_util.h"
#include "tests/vde/store_test_util.h"
#include "vde/disk.h"

namespace vde {
namespace {

using testing::Model;
using testing::OpenStore;
using testing::ScratchDir;
using testing::TestOptions;

std::string Get(const Store& s, std::string_view key) {
  std::string v;
  Status st = s.Get(key, &v);
  return st.ok() ? v : "<" + st.ToString() + ">";
}

TEST(Store, PutGetDeleteAndReopen) {
  ScratchDir dir;
  const std::string path = dir.File("s.vdisk");
  {
    auto s = OpenStore(path);
    ASSERT_TRUE(s->Put("apple", "red").ok());
    ASSERT_TRUE(s->Put("banana", "yellow").ok());
    ASSERT_TRUE(s->Put("apple", "green").ok());
    ASSERT_TRUE(s->Put("empty", "").ok());
    EXPECT_EQ(Get(*s, "apple"), "green");
    EXPECT_EQ(Get(*s, "empty"), "");
    ASSERT_TRUE(s->Delete("banana").ok());
    EXPECT_TRUE(s->Delete("never-there").ok());  // deleting an absent key is OK
    std::string v;
    Status st = s->Get("banana", &v);
    EXPECT_TRUE(st.IsNotFound()) << st.ToString();
    EXPECT_NE(st.message().find("index 'default'"), std::string::npos) << st.ToString();
    ASSERT_TRUE(s->Close().ok());
    EXPECT_TRUE(s->Close().ok());  // idempotent
    EXPECT_TRUE(s->Put("x", "y").IsInvalidArgument());
  }
  auto s = OpenStore(path, Options{});
  EXPECT_EQ(Get(*s, "apple"), "green");
  EXPECT_EQ(Get(*s, "empty"), "");
  std::string v;
  EXPECT_TRUE(s->Get("banana", &v).IsNotFound());
  const StoreStats st = s->GetStats();
  EXPECT_GE(st.gets, 3u);
  EXPECT_EQ(st.indexes, 1u);
  EXPECT_GT(st.disk_blocks, 0u);
  EXPECT_FALSE(st.backend.empty());
  auto rep = s->Verify(true);
  ASSERT_TRUE(rep.has_value()) << rep.status().ToString();
  EXPECT_EQ(rep->pending_blocks, 0u);
}

TEST(Store, OpenOptions) {
  ScratchDir dir;
  const std::string path = dir.File("s.vdisk");
  Options o;
  auto missing = Store::Open(path, o);
  ASSERT_FALSE(missing.has_value());
  EXPECT_TRUE(missing.status().IsNotFound()) << missing.status().ToString();
  o.create_if_missing = true;
  o.cache_bytes = 1024;  // below the cache's minimum
  auto tiny = Store::Open(path, o);
  ASSERT_FALSE(tiny.has_value());
  EXPECT_TRUE(tiny.status().IsInvalidArgument()) << tiny.status().ToString();
  EXPECT_NE(tiny.status().message().find("cache_bytes"), std::string::npos);
  o = TestOptions();
  o.growable = false;
  o.disk_size_bytes = 4 << 20;
  o.block_size = 8192;
  o.backend = IoBackend::kFile;
  { ASSERT_NE(OpenStore(path, o), nullptr); }
  o.error_if_exists = true;
  auto exists = Store::Open(path, o);
  ASSERT_FALSE(exists.has_value());
  EXPECT_TRUE(exists.status().IsAlreadyExists()) << exists.status().ToString();
  o.error_if_exists = false;
  auto s = OpenStore(path, o);
  const StoreStats st = s->GetStats();
  EXPECT_EQ(st.block_size, 8192u);
  EXPECT_EQ(st.disk_blocks, (4u << 20) / 8192);
  EXPECT_EQ(st.backend, "file");
  EXPECT_EQ(s->max_key_size(), index::MaxKeySize(8192));
}

TEST(Store, NamedIndexes) {
  ScratchDir dir;
  const std::string path = dir.File("s.vdisk");
  {
    auto s = OpenStore(path);
    auto users = s->CreateIndex("users");
    ASSERT_TRUE(users.has_value()) << users.status().ToString();
    auto orders = s->CreateIndex("orders");
    ASSERT_TRUE(orders.has_value());
    EXPECT_TRUE(s->CreateIndex("users").status().IsAlreadyExists());
    EXPECT_TRUE(s->CreateIndex("").status().IsInvalidArgument());
    EXPECT_TRUE(s->CreateIndex(std::string(256, 'n')).status().IsInvalidArgument());
    ASSERT_TRUE(s->Put(*users, "k", "user").ok());
    ASSERT_TRUE(s->Put(*orders, "k", "order").ok());
    ASSERT_TRUE(s->Put("k", "default").ok());
    std::string v;
    ASSERT_TRUE(s->Get(*users, "k", &v).ok());
    EXPECT_EQ(v, "user");
    EXPECT_EQ(s->ListIndexes(), (std::vector<std::string>{"default", "orders", "users"}));
    ASSERT_TRUE(s->Close().ok());
  }
  auto s = OpenStore(path);
  EXPECT_EQ(s->ListIndexes(), (std::vector<std::string>{"default", "orders", "users"}));
  auto users = s->OpenIndex("users");
  ASSERT_TRUE(users.has_value());
  EXPECT_EQ(users->name(), "users");
  std::string v;
  ASSERT_TRUE(s->Get(*users, "k", &v).ok());
  EXPECT_EQ(v, "user");
  EXPECT_EQ(Get(*s, "k"), "default");
  auto missing = s->OpenIndex("nope");
  ASSERT_FALSE(missing.has_value());
  EXPECT_TRUE(missing.status().IsNotFound());
  EXPECT_NE(missing.status().message().find("'nope'"), std::string::npos);
  EXPECT_TRUE(s->DropIndex("nope").IsNotFound());
  EXPECT_TRUE(s->DropIndex("default").IsInvalidArgument());
  EXPECT_TRUE(s->Get(Index(), "k", &v).IsInvalidArgument());

  // Drop: handles and iterators fail cleanly, the name can be reused.
  auto it = s->NewIterator(*users);
  ASSERT_TRUE(s->DropIndex("users").ok());
  Status st = s->Get(*users, "k", &v);
  EXPECT_TRUE(st.IsNotFound()) << st.ToString();
  EXPECT_NE(st.message().find("dropped"), std::string::npos);
  EXPECT_TRUE(s->Put(*users, "k", "v").IsNotFound());
  it->SeekToFirst();
  EXPECT_FALSE(it->Valid());
  EXPECT_TRUE(it->status().IsNotFound()) << it->status().ToString();
  it.reset();
  auto again = s->CreateIndex("users");
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(s->Get(*again, "k", &v).IsNotFound());
  EXPECT_EQ(s->GetIndexStats("users")->entries, 0u);
  EXPECT_NE(s->GetIndexStats("users")->id, s->GetIndexStats("orders")->id);
}

TEST(Store, DropFreesItsBlocks) {
  ScratchDir dir;
  auto s = OpenStore(dir.File("s.vdisk"));
  ASSERT_TRUE(s->Checkpoint().ok());
  ASSERT_TRUE(s->Checkpoint().ok());
  const uint64_t used_before = s->GetStats().used_blocks;
  auto idx = s->CreateIndex("big");
  ASSERT_TRUE(idx.has_value());
  for (int i = 0; i < 20000; i++) {
    ASSERT_TRUE(
        s->Put(*idx, "key" + std::to_string(i), std::string(i % 7 == 0 ? 3000 : 50, 'v')).ok());
  }
  ASSERT_TRUE(s->Checkpoint().ok());
  auto stats = s->GetIndexStats("big");
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->entries, 20000u);
  EXPECT_GE(stats->height, 2u);
  EXPECT_GT(stats->overflow_values, 0u);
  const uint64_t used_full = s->GetStats().used_blocks;
  EXPECT_GT(used_full, used_before + 1000);
  ASSERT_TRUE(s->DropIndex("big").ok());
  auto rep = s->Verify();
  ASSERT_TRUE(rep.has_value()) << rep.status().ToString();
  EXPECT_GT(rep->pending_blocks, 1000u);
  // The first checkpoint stops referencing the blocks; they are reusable once it is durable.
  ASSERT_TRUE(s->Checkpoint().ok());
  ASSERT_TRUE(s->Checkpoint().ok());
  const StoreStats after = s->GetStats();
  EXPECT_LE(after.used_blocks, used_before + 4) << "before " << used_before;
  rep = s->Verify(true);
  ASSERT_TRUE(rep.has_value()) << rep.status().ToString();
  EXPECT_EQ(rep->pending_blocks, 0u);
}

TEST(Store, IteratorsBothWaysWithBounds) {
  ScratchDir dir;
  auto s = OpenStore(dir.File("s.vdisk"), TestOptions(1 << 20));
  Model model;
  std::mt19937_64 rng(testing::TestSeed());
  for (int i = 0; i < 5000; i++) {
    std::string k =
        std::string(1, static_cast<char>('a' + rng() % 6)) + std::to_string(rng() % 100000);
    std::string v = testing::RandomValue(rng, i);
    ASSERT_TRUE(s->Put(k, v).ok());
    model[k] = v;
  }
  testing::ExpectIndexEquals(*s, s->default_index(), model);

  // Prefix scans, forwards and backwards.
  for (char c = 'a'; c <= 'g'; c++) {
    const std::string prefix(1, c);
    auto it = s->NewIterator(ReadOptions::Prefix(prefix));
    std::vector<std::string> fwd, bwd, want;
    for (auto m = model.lower_bound(prefix); m != model.end() && m->first[0] == c; ++m) {
      want.push_back(m->first);
    }
    for (it->SeekToFirst(); it->Valid(); it->Next()) fwd.push_back(std::string(it->key()));
    for (it->SeekToLast(); it->Valid(); it->Prev()) bwd.push_back(std::string(it->key()));
    std::reverse(bwd.begin(), bwd.end());
    EXPECT_EQ(fwd, want) << prefix;
    EXPECT_EQ(bwd, want) << prefix;
  }
  // Random bounds and seeks against the model.
  for (int round = 0; round < 300; round++) {
    ReadOptions ro;
    std::string a =
        std::string(1, static_cast<char>('a' + rng() % 6)) + std::to_string(rng() % 100);
    std::string b =
        std::string(1, static_cast<char>('a' + rng() % 6)) + std::to_string(rng() % 100);
    if (a > b) std::swap(a, b);
    if (rng() % 4 != 0) ro.lower_bound = a;
    if (rng() % 4 != 0) ro.upper_bound = b;
    auto it = s->NewIterator(ro);
    auto in = [&](const std::string& k) {
      return (ro.lower_bound.empty() || k >= ro.lower_bound) &&
             (ro.upper_bound.empty() || k < ro.upper_bound);
    };
    const std::string target =
        std::string(1, static_cast<char>('a' + rng() % 6)) + std::to_string(rng() % 100);
    // Seek: first key >= target within bounds, then up to 20 steps either way.
    it->Seek(target);
    auto m = model.lower_bound(std::max(target, ro.lower_bound));
    bool fwd = rng() % 2 == 0;
    for (int step = 0; step < 20; step++) {
      bool want_valid = m != model.end() && in(m->first);
      ASSERT_EQ(it->Valid(), want_valid) << "round " << round << " step " << step;
      if (!want_valid) break;
      ASSERT_EQ(it->key(), m->first);
      ASSERT_EQ(it->value(), m->second);
      if (fwd) {
        it->Next();
        ++m;
      } else {
        it->Prev();
        if (m == model.begin()) {
          ASSERT_FALSE(it->Valid());
          break;
        }
        --m;
      }
    }
    ASSERT_TRUE(it->status().ok());
    // SeekForPrev: last key <= target within bounds.
    it->SeekForPrev(target);
    auto r = model.upper_bound(target);
    std::optional<std::string> want;
    while (r != model.begin()) {
      --r;
      if (!ro.upper_bound.empty() && r->first >= ro.upper_bound) continue;
      if (in(r->first)) want = r->first;
      break;
    }
    ASSERT_EQ(it->Valid(), want.has_value()) << "round " << round << " target " << target;
    if (want) {
      ASSERT_EQ(it->key(), *want);
    }
  }
}

TEST(Store, ValuesAcrossTheOutOfLineThreshold) {
  ScratchDir dir;
  const std::string path = dir.File("s.vdisk");
  const std::vector<size_t> sizes = {0, 1, 100, 883, 884, 885, 1000, 4047, 4096, 65536, 1 << 20};
  {
    auto s = OpenStore(path);
    auto small = s->CreateIndex("small-inline", IndexOptions{64});
    ASSERT_TRUE(small.has_value());
    for (size_t n : sizes) {
      std::string v(n, '\0');
      for (size_t i = 0; i < n; i++) v[i] = static_cast<char>('a' + (i * 7 + n) % 26);
      ASSERT_TRUE(s->Put("v" + std::to_string(n), v).ok());
      ASSERT_TRUE(s->Put(*small, "v" + std::to_string(n), v).ok());
    }
    // Replace large with small and small with large.
    ASSERT_TRUE(s->Put("v65536", "now small").ok());
    ASSERT_TRUE(s->Put("v1", std::string(5000, 'L')).ok());
    auto st = s->GetIndexStats("small-inline");
    ASSERT_TRUE(st.has_value());
    EXPECT_EQ(st->overflow_values, 9u);  // every value over 64 bytes
    ASSERT_TRUE(s->Close().ok());
  }
  auto s = OpenStore(path);
  auto small = s->OpenIndex("small-inline");
  ASSERT_TRUE(small.has_value());
  for (size_t n : sizes) {
    std::string want(n, '\0');
    for (size_t i = 0; i < n; i++) want[i] = static_cast<char>('a' + (i * 7 + n) % 26);
    std::string got;
    ASSERT_TRUE(s->Get(*small, "v" + std::to_string(n), &got).ok());
    EXPECT_EQ(got, want) << n;
    if (n == 65536) want = "now small";
    if (n == 1) want = std::string(5000, 'L');
    EXPECT_EQ(Get(*s, "v" + std::to_string(n)), want) << n;
  }
  auto it = s->NewIterator(*small);
  size_t count = 0;
  for (it->SeekToLast(); it->Valid(); it->Prev()) count += it->value().size() > 0 ? 1 : 0;
  EXPECT_EQ(count, sizes.size() - 1);
  auto rep = s->Verify(true);
  ASSERT_TRUE(rep.has_value()) << rep.status().ToString();
  EXPECT_GT(rep->overflow_blocks, 256u);
}

TEST(Store, MergesDownToEmptyAndGrowsBack) {
  ScratchDir dir;
  auto s = OpenStore(dir.File("s.vdisk"), TestOptions(1 << 20));
  const int n = 30000;
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < n; i++) {
      ASSERT_TRUE(s->Put("key" + std::to_string(i * 7919 % n), std::string(40, 'x')).ok());
    }
    auto full = s->GetIndexStats("default");
    ASSERT_TRUE(full.has_value());
    EXPECT_EQ(full->entries, static_cast<uint64_t>(n));
    EXPECT_GE(full->height, 2u);
    if (round == 0) {
      ASSERT_TRUE(s->Checkpoint().ok());
    }
    for (int i = 0; i < n; i++) ASSERT_TRUE(s->Delete("key" + std::to_string(i)).ok());
    auto empty = s->GetIndexStats("default");
    ASSERT_TRUE(empty.has_value());
    EXPECT_EQ(empty->entries, 0u);
    EXPECT_EQ(empty->height, 1u);
    auto it = s->NewIterator();
    it->SeekToFirst();
    EXPECT_FALSE(it->Valid());
    it->SeekToLast();
    EXPECT_FALSE(it->Valid());
    EXPECT_TRUE(it->status().ok());
  }
  ASSERT_TRUE(s->Checkpoint().ok());
  auto rep = s->Verify();
  ASSERT_TRUE(rep.has_value()) << rep.status().ToString();
}

TEST(Store, BadInput) {
  ScratchDir dir;
  auto s = OpenStore(dir.File("s.vdisk"));
  Status st = s->Put(std::string(1025, 'k'), "v");
  EXPECT_TRUE(st.IsInvalidArgument());
  EXPECT_NE(st.message().find("1024"), std::string::npos) << st.ToString();
  st = s->Put("", "v");
  EXPECT_TRUE(st.IsInvalidArgument()) << st.ToString();
  std::string big(Store::max_value_size() + 1, 'v');
  st = s->Put("k", big);
  EXPECT_TRUE(st.IsInvalidArgument());
  EXPECT_NE(st.message().find("max_value_size"), std::string::npos) << st.ToString();
  big.clear();
  big.shrink_to_fit();
  std::string v;
  EXPECT_TRUE(s->Get(std::string(1025, 'k'), &v).IsInvalidArgument());
  // Nothing was written by the refused calls.
  auto it = s->NewIterator();
  it->SeekToFirst();
  EXPECT_FALSE(it->Valid());
}

TEST(Store, ReadOnlyRefusesWrites) {
  ScratchDir dir;
  const std::string path = dir.File("s.vdisk");
  {
    auto s = OpenStore(path);
    ASSERT_TRUE(s->Put("k", "v").ok());
    ASSERT_TRUE(s->CreateIndex("other").has_value());
  }
  Options o;
  o.read_only = true;
  auto s = OpenStore(path, o);
  EXPECT_EQ(Get(*s, "k"), "v");
  EXPECT_TRUE(s->Put("k", "w").IsReadOnly());
  EXPECT_TRUE(s->Delete("k").IsReadOnly());
  WriteBatch b;
  b.Put("a", "b");
  EXPECT_TRUE(s->Write(b).IsReadOnly());
  EXPECT_TRUE(s->CreateIndex("x").status().IsReadOnly());
  EXPECT_TRUE(s->DropIndex("other").IsReadOnly());
  EXPECT_TRUE(s->Checkpoint().IsReadOnly());
  EXPECT_EQ(Get(*s, "k"), "v");
  EXPECT_TRUE(s->Verify(true).has_value());
  EXPECT_TRUE(s->Close().ok());

  // A bare disk (no catalog yet) opens read-only as an empty store, and gets its catalog and
  // default index when first opened writable.
  const std::string bare = dir.File("bare.vdisk");
  {
    CreateOptions co;
    co.size_bytes = 1 << 20;
    auto d = Disk::Create(bare, co);
    ASSERT_TRUE(d.has_value()) << d.status().ToString();
    ASSERT_TRUE((*d)->Close().ok());
  }
  {
    auto r = OpenStore(bare, o);
    EXPECT_TRUE(r->ListIndexes().empty());
    std::string v;
    EXPECT_TRUE(r->Get("k", &v).IsNotFound());
  }
  {
    auto w = OpenStore(bare, Options{});
    EXPECT_EQ(w->ListIndexes(), std::vector<std::string>{"default"});
    ASSERT_TRUE(w->Put("k", "v").ok());
  }
  auto r = OpenStore(bare, o);
  EXPECT_EQ(Get(*r, "k"), "v");
  // Creating a store read-only is refused.
  Options c = TestOptions();
  c.read_only = true;
  auto created = Store::Open(dir.File("new.vdisk"), c);
  ASSERT_FALSE(created.has_value());
  EXPECT_TRUE(created.status().IsInvalidArgument()) << created.status().ToString();
}

// Flips a byte inside every B+tree leaf of the file that holds `needle`.
int CorruptLeavesHolding(const std::string& path, uint32_t bs, const std::string& needle) {
  int fd = ::open(path.c_str(), O_RDWR);
  EXPECT_GE(fd, 0);
  std::vector<char> buf(bs);
  int corrupted = 0;
  for (uint64_t b = 0;; b++) {
    if (::pread(fd, buf.data(), bs, static_cast<off_t>(b * bs)) != static_cast<ssize_t>(bs)) break;
    auto span = std::span<const std::byte>(reinterpret_cast<const std::byte*>(buf.data()), bs);
    if (DecodeBlockHeader(span).type != BlockType::kBTreeLeaf) continue;
    if (std::string_view(buf.data(), bs).find(needle) == std::string_view::npos) continue;
    buf[bs / 2] ^= 0x5a;
    EXPECT_EQ(::pwrite(fd, buf.data(), bs, static_cast<off_t>(b * bs)), static_cast<ssize_t>(bs));
    corrupted++;
  }
  ::close(fd);
  return corrupted;
}

TEST(Store, CorruptPageIsReportedNotReturned) {
  ScratchDir dir;
  const std::string path = dir.File("s.vdisk");
  {
    auto s = OpenStore(path);
    for (int i = 0; i < 5000; i++) {
      ASSERT_TRUE(s->Put("key" + std::to_string(i), "value-" + std::to_string(i)).ok());
    }
    ASSERT_TRUE(s->Put("zz-victim", "needle-value").ok());
    ASSERT_TRUE(s->Close().ok());
  }
  ASSERT_GT(CorruptLeavesHolding(path, 4096, "needle-value"), 0);
  auto s = OpenStore(path);
  std::string v;
  Status st = s->Get("zz-victim", &v);
  ASSERT_TRUE(st.IsCorruption()) << st.ToString();
  EXPECT_NE(st.message().find(path), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("block "), std::string::npos) << st.ToString();
  auto it = s->NewIterator();
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
  }
  EXPECT_TRUE(it->status().IsCorruption()) << it->status().ToString();
  it.reset();
  EXPECT_TRUE(s->Verify().status().IsCorruption());
  // Other leaves still read.
  EXPECT_EQ(Get(*s, "key1"), "value-1");
}

TEST(Store, StatsCountCacheAndCheckpoints) {
  ScratchDir dir;
  auto s = OpenStore(dir.File("s.vdisk"), TestOptions(1 << 20));
  const StoreStats s0 = s->GetStats();
  for (int i = 0; i < 20000; i++) ASSERT_TRUE(s->Put("k" + std::to_string(i), "v").ok());
  ASSERT_TRUE(s->Checkpoint().ok());
  std::string v;
  for (int i = 0; i < 20000; i += 7) ASSERT_TRUE(s->Get("k" + std::to_string(i), &v).ok());
  const StoreStats s1 = s->GetStats();
  EXPECT_EQ(s1.puts - s0.puts, 20000u);
  EXPECT_EQ(s1.checkpoints, s0.checkpoints + 1);
  EXPECT_EQ(s1.generation, s0.generation + 1);
  EXPECT_GT(s1.cache_hits, 0u);
  EXPECT_GT(s1.pages_written, 0u);
  EXPECT_GT(s1.blocks_written, 0u);
  EXPECT_GT(s1.flushes, s0.flushes);
  EXPECT_LE(s1.cache_bytes, 1u << 20);
  EXPECT_TRUE(s1.last_checkpoint_error.ok());
}

}  // namespace
}  // namespace vde
