// The Store from several threads at once: writers (single puts, deletes and batches over
// disjoint key ranges), readers (gets and bounded scans, checking what they see is well formed),
// an admin thread (create/drop index, explicit checkpoints, stats) and the background
// checkpoint thread. Afterwards each writer's range must equal its model, before and after a
// reopen, and Verify must pass.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_util.h"
#include "tests/vde/store_test_util.h"
#include "vde/store.h"

namespace vde {
namespace {

using testing::Model;

std::string Prefix(int writer) {
  return "w" + std::to_string(writer) + "/";
}

TEST(StoreThreads, ConcurrentReadersWritersAndCheckpoints) {
  const uint64_t seed = testing::TestSeed();
  testing::ScratchDir dir;
  const std::string path = dir.File("threads.vdisk");
  Options o = testing::TestOptions(2 << 20);
  o.checkpoint_interval = std::chrono::milliseconds(10);
  auto store = std::move(*Store::Open(path, o));
  auto shared = store->CreateIndex("shared");
  ASSERT_TRUE(shared.has_value());

  constexpr int kWriters = 3, kReaders = 2;
  const int ops = testing::LongTests() ? 60000 : 8000;
  std::vector<Model> models(kWriters), shared_models(kWriters);
  std::atomic<int> writers_left{kWriters};
  std::atomic<uint64_t> errors{0};
  auto fail = [&](const std::string& what) {
    if (errors.fetch_add(1) < 5) ADD_FAILURE() << what;
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; w++) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(seed + w);
      Model& model = models[w];
      for (int i = 0; i < ops; i++) {
        const std::string key = Prefix(w) + std::to_string(rng() % 3000);
        const unsigned r = rng() % 10;
        if (r < 6) {
          std::string v = key + ":" + std::to_string(i);
          v.resize(v.size() + (rng() % 16 == 0 ? 2000 : rng() % 50), '.');
          Status s = store->Put(key, v);
          if (!s.ok()) fail("put: " + s.ToString());
          model[key] = v;
        } else if (r < 8) {
          Status s = store->Delete(key);
          if (!s.ok()) fail("delete: " + s.ToString());
          model.erase(key);
        } else {
          WriteBatch b;
          std::string v = key + ":" + std::to_string(i);
          b.Put(key, v);
          b.Put(*shared, key, v);
          b.Delete(Prefix(w) + std::to_string(rng() % 3000) + "x");
          Status s = store->Write(b);
          if (!s.ok()) fail("batch: " + s.ToString());
          model[key] = v;
          shared_models[w][key] = v;
        }
      }
      writers_left.fetch_sub(1);
    });
  }
  for (int r = 0; r < kReaders; r++) {
    threads.emplace_back([&, r] {
      std::mt19937_64 rng(seed + 100 + r);
      std::string v;
      while (writers_left.load() > 0) {
        const int w = static_cast<int>(rng() % kWriters);
        const std::string key = Prefix(w) + std::to_string(rng() % 3000);
        Status s = store->Get(key, &v);
        if (s.ok() ? v.rfind(key + ":", 0) != 0 : !s.IsNotFound()) {
          fail("get " + key + ": " + s.ToString() + " value " + v.substr(0, 40));
        }
        ReadOptions ro = ReadOptions::Prefix(Prefix(w) + std::to_string(rng() % 10));
        auto it = store->NewIterator(rng() % 2 ? store->default_index() : *shared, ro);
        std::string last;
        int n = 0;
        for (it->Seek(ro.lower_bound); it->Valid() && n < 50; it->Next(), n++) {
          const std::string k(it->key());
          if (k < ro.lower_bound || k >= ro.upper_bound || (!last.empty() && k <= last) ||
              it->value().rfind(k + ":", 0) != 0) {
            fail("scan saw " + k + " after " + last);
          }
          last = k;
        }
        if (!it->status().ok()) fail("scan: " + it->status().ToString());
      }
    });
  }
  threads.emplace_back([&] {
    int round = 0;
    while (writers_left.load() > 0) {
      auto tmp = store->CreateIndex("tmp");
      if (!tmp.has_value()) fail("create: " + tmp.status().ToString());
      for (int i = 0; tmp.has_value() && i < 100; i++) {
        Status s = store->Put(*tmp, "t" + std::to_string(i), std::string(100, 't'));
        if (!s.ok()) fail("tmp put: " + s.ToString());
      }
      if (round++ % 4 == 0) {
        Status s = store->Checkpoint();
        if (!s.ok()) fail("checkpoint: " + s.ToString());
      }
      auto st = store->GetIndexStats("tmp");
      if (!st.has_value() || st->entries != 100) fail("tmp stats");
      (void)store->GetStats();
      Status s = store->DropIndex("tmp");
      if (!s.ok()) fail("drop: " + s.ToString());
    }
  });
  for (auto& t : threads) t.join();
  ASSERT_EQ(errors.load(), 0u);

  const StoreStats st = store->GetStats();
  std::printf("%llu checkpoints during the run\n", static_cast<unsigned long long>(st.checkpoints));
  EXPECT_GT(st.checkpoints, 1u);
  EXPECT_TRUE(st.last_checkpoint_error.ok()) << st.last_checkpoint_error.ToString();
  auto check = [&](Store& s) {
    for (int w = 0; w < kWriters; w++) {
      for (const Index& idx : {s.default_index(), *s.OpenIndex("shared")}) {
        const Model& model = idx.name() == "default" ? models[w] : shared_models[w];
        ReadOptions ro = ReadOptions::Prefix(Prefix(w));
        auto it = s.NewIterator(idx, ro);
        auto m = model.begin();
        for (it->SeekToFirst(); it->Valid(); it->Next(), ++m) {
          ASSERT_NE(m, model.end());
          ASSERT_EQ(it->key(), m->first);
          ASSERT_EQ(it->value(), m->second);
        }
        ASSERT_TRUE(it->status().ok());
        ASSERT_EQ(m, model.end());
      }
    }
    auto rep = s.Verify(true);
    ASSERT_TRUE(rep.has_value()) << rep.status().ToString();
  };
  check(*store);
  ASSERT_TRUE(store->Close().ok());
  store = std::move(*Store::Open(path, o));
  check(*store);
  EXPECT_EQ(store->ListIndexes(), (std::vector<std::string>{"default", "shared"}));
}

}  // namespace
}  // namespace vde
