// The Store against a std::map per index under random operations (keys and values of mixed
// sizes, across several named indexes), with checkpoints, closes and reopens between them, and
// full scans both ways compared at the end of every phase. VDE_TEST_SEED replays a run;
// VDE_TEST_LONG=1 runs three million operations instead of one.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "tests/test_util.h"
#include "tests/vde/store_test_util.h"
#include "vde/store.h"

namespace vde {
namespace {

using testing::Model;

TEST(StoreModel, RandomOperationsMatchAMap) {
  const uint64_t seed = testing::TestSeed();
  std::mt19937_64 rng(seed);
  const bool long_run = testing::LongTests();
  // A million operations take about 20 s of CPU (45 s wall on a busy 2-core machine).
  // Under a sanitizer a tenth, to stay within ctest's timeout.
  const uint64_t total_ops =
      (long_run ? 3'000'000 : 1'000'000) / (testing::kSanitizerBuild ? 10 : 1);
  const int phases = 10;
  testing::ScratchDir dir;
  const std::string path = dir.File("model.vdisk");
  Options options = testing::TestOptions(4 << 20);  // smaller than the data: evictions
  // Buffered I/O: the misses of a small cache then cost a copy, not a device read, which keeps
  // a million operations within a minute. The O_DIRECT path is covered by the other tests.
  options.direct_io = false;
  auto store = std::move(*Store::Open(path, options));
  const uint32_t max_key = store->max_key_size();

  std::vector<std::string> names = {"default", "alpha", "beta", "gamma"};
  std::map<std::string, Model> models;
  std::map<std::string, Index> handles;
  auto reopen_handles = [&]() {
    handles.clear();
    for (const std::string& n : names) {
      auto h = store->OpenIndex(n);
      ASSERT_TRUE(h.has_value()) << n << ": " << h.status().ToString();
      handles[n] = *h;
    }
  };
  for (size_t i = 1; i < names.size(); i++) ASSERT_TRUE(store->CreateIndex(names[i]).has_value());
  for (const std::string& n : names) models[n];
  reopen_handles();

  uint64_t ops = 0, gets = 0, hits = 0, checkpoints = 0, reopens = 0, batches = 0, drops = 0;
  const auto start = std::chrono::steady_clock::now();
  std::string got;
  for (int phase = 0; phase < phases; phase++) {
    SCOPED_TRACE("phase " + std::to_string(phase) + " seed " + std::to_string(seed));
    const uint64_t phase_ops = total_ops / phases;
    for (uint64_t i = 0; i < phase_ops; i++, ops++) {
      const std::string& name = names[rng() % names.size()];
      Model& model = models[name];
      const Index& idx = handles[name];
      // Half the time pick a key that exists, so updates, deletes and hits are common.
      std::string key = testing::RandomKey(rng, max_key);
      if (!model.empty() && rng() % 2 == 0) {
        auto it = model.lower_bound(key);
        key = it == model.end() ? model.begin()->first : it->first;
      }
      const unsigned r = rng() % 1000;
      if (r < 500) {
        std::string value = testing::RandomValue(rng, ops);
        ASSERT_TRUE(store->Put(idx, key, value).ok()) << "op " << ops;
        model[key] = std::move(value);
      } else if (r < 650) {
        ASSERT_TRUE(store->Delete(idx, key).ok()) << "op " << ops;
        model.erase(key);
      } else if (r < 950) {
        Status s = store->Get(idx, key, &got);
        auto it = model.find(key);
        gets++;
        if (it == model.end()) {
          ASSERT_TRUE(s.IsNotFound()) << "op " << ops << " key " << key << ": " << s.ToString();
        } else {
          hits++;
          ASSERT_TRUE(s.ok()) << "op " << ops << ": " << s.ToString();
          ASSERT_EQ(got, it->second) << "op " << ops << " key " << key;
        }
      } else if (r < 990) {
        // A batch across indexes; the model changes only once it is applied.
        WriteBatch b;
        struct Op {
          std::string index, key, value;
          bool put;
        };
        std::vector<Op> applied;
        const int n = 1 + static_cast<int>(rng() % 16);
        for (int j = 0; j < n; j++) {
          const std::string& bn = names[rng() % names.size()];
          std::string k = testing::RandomKey(rng, max_key);
          if (rng() % 4 == 0) {
            b.Delete(handles[bn], k);
            applied.push_back({bn, k, "", false});
          } else {
            std::string v = testing::RandomValue(rng, ops);
            b.Put(handles[bn], k, v);
            applied.push_back({bn, k, std::move(v), true});
          }
        }
        ASSERT_TRUE(store->Write(b).ok()) << "op " << ops;
        for (Op& op : applied) {
          if (op.put) {
            models[op.index][op.key] = std::move(op.value);
          } else {
            models[op.index].erase(op.key);
          }
        }
        batches++;
      } else if (r < 996) {
        // A short scan from a random key, compared with the model.
        auto it = store->NewIterator(idx);
        it->Seek(key);
        auto m = model.lower_bound(key);
        for (int j = 0; j < 20 && m != model.end(); j++, ++m) {
          ASSERT_TRUE(it->Valid()) << "op " << ops;
          ASSERT_EQ(it->key(), m->first);
          ASSERT_EQ(it->value(), m->second);
          it->Next();
        }
      } else if (r < 998 && rng() % 32 == 0) {
        ASSERT_TRUE(store->Checkpoint().ok()) << "op " << ops;
        checkpoints++;
      } else if (r < 999 && rng() % 64 == 0 && name != "default") {
        // Drop and recreate the index: it starts empty.
        ASSERT_TRUE(store->DropIndex(name).ok());
        auto h = store->CreateIndex(name);
        ASSERT_TRUE(h.has_value());
        handles[name] = *h;
        model.clear();
        drops++;
      } else if (r == 999 && rng() % 32 == 0) {
        ASSERT_TRUE(store->Close().ok());
        store = std::move(*Store::Open(path, options));
        reopen_handles();
        reopens++;
      }
    }
    // End of phase: close, reopen, and compare every index both ways.
    ASSERT_TRUE(store->Close().ok());
    store = std::move(*Store::Open(path, options));
    reopen_handles();
    reopens++;
    for (const std::string& n : names) {
      SCOPED_TRACE(n);
      testing::ExpectIndexEquals(*store, handles[n], models[n]);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
  auto rep = store->Verify(true);
  ASSERT_TRUE(rep.has_value()) << rep.status().ToString();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  uint64_t entries = 0;
  for (auto& [n, m] : models) entries += m.size();
  const StoreStats st = store->GetStats();
  std::printf(
      "%llu ops in %.1f s (%.0f ops/s): %llu gets (%llu hits), %llu batches, %llu checkpoints, "
      "%llu reopens, %llu drops; %llu entries, %llu blocks used\n",
      static_cast<unsigned long long>(ops), secs, static_cast<double>(ops) / secs,
      static_cast<unsigned long long>(gets), static_cast<unsigned long long>(hits),
      static_cast<unsigned long long>(batches), static_cast<unsigned long long>(checkpoints),
      static_cast<unsigned long long>(reopens), static_cast<unsigned long long>(drops),
      static_cast<unsigned long long>(entries), static_cast<unsigned long long>(st.used_blocks));
}

}  // namespace
}  // namespace vde
