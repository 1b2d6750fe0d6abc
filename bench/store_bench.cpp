// Benchmarks of the key-value API (vde::Store) on a real file (io_uring with O_DIRECT where the
// kernel and file system allow it), under VDE_BENCH_DIR (default: the working directory).
//
//   BM_Load/seq, BM_Load/random     200k puts of 16-byte keys and 100-byte values into a fresh
//                                   store (64 MiB cache), then a checkpoint (checkpoint_ms)
//   BM_LoadBatch100/random          the same in WriteBatches of 100
//   BM_Get/in_cache                 random gets, the 200k-key store resident in a 256 MiB cache
//   BM_Get/cold_10x                 random gets from a 700k-key store (~10x the cache) through
//                                   an 8 MiB cache, cold at the start
//   BM_Scan100/in_cache, /cold_10x  seek to a random key and read the next 100
//   BM_FullScan/cold_10x            every key of the 700k-key store, cold cache
// Each reports ops/s and the p50 and p99 latency of one operation (recorded per operation);
// the cold ones also the cache miss ratio. Datasets are built once per run and deleted at exit.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "vde/store.h"

namespace vde {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kSmallKeys = 200'000;
constexpr uint64_t kLargeKeys = 700'000;
constexpr size_t kValueSize = 100;

std::string BenchDir() {
  const char* d = std::getenv("VDE_BENCH_DIR");
  return d != nullptr && *d != '\0' ? d : ".";
}

std::string Key(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "user%012llu", static_cast<unsigned long long>(i));
  return buf;
}

std::string Value(uint64_t i) {
  std::string v(kValueSize, static_cast<char>('a' + i % 26));
  std::snprintf(v.data(), v.size(), "%llu", static_cast<unsigned long long>(i));
  return v;
}

// Per-operation latencies, reported as ops/s and percentiles.
class Latencies {
 public:
  explicit Latencies(size_t n) { ns_.reserve(n); }
  template <typename F>
  void Time(F&& f) {
    const auto t0 = Clock::now();
    f();
    ns_.push_back(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()));
  }
  void Report(benchmark::State& state, double seconds) {
    std::sort(ns_.begin(), ns_.end());
    auto pct = [&](double p) {
      return ns_.empty() ? 0.0
                         : ns_[static_cast<size_t>(p * static_cast<double>(ns_.size() - 1))] / 1e3;
    };
    state.counters["ops_per_s"] = static_cast<double>(ns_.size()) / seconds;
    state.counters["p50_us"] = pct(0.50);
    state.counters["p99_us"] = pct(0.99);
    state.SetItemsProcessed(static_cast<int64_t>(ns_.size()));
  }

 private:
  std::vector<uint64_t> ns_;
};

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

Options StoreOptions(uint64_t cache_bytes) {
  Options o;
  o.create_if_missing = true;
  o.cache_bytes = cache_bytes;
  o.growth_step_bytes = 64ull << 20;
  return o;
}

std::unique_ptr<Store> Open(const std::string& path, uint64_t cache_bytes) {
  auto s = Store::Open(path, StoreOptions(cache_bytes));
  if (!s.has_value()) {
    std::fprintf(stderr, "store_bench: %s\n", s.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(*s);
}

void Check(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "store_bench: %s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

std::vector<uint64_t> Shuffled(uint64_t n, uint64_t seed) {
  std::vector<uint64_t> order(n);
  std::iota(order.begin(), order.end(), uint64_t{0});
  std::shuffle(order.begin(), order.end(), std::mt19937_64(seed));
  return order;
}

// A dataset built once: `keys` keys loaded in random order, checkpointed and closed.
class Dataset {
 public:
  Dataset(const std::string& name, uint64_t keys) : keys_(keys) {
    path_ = (std::filesystem::path(BenchDir()) / ("store_bench." + name + ".vdisk")).string();
    std::filesystem::remove(path_);
    auto store = Open(path_, 256ull << 20);
    WriteBatch b;
    for (uint64_t i : Shuffled(keys, 7)) {
      b.Put(Key(i), Value(i));
      if (b.count() == 1000) {
        Check(store->Write(b), "load");
        b.Clear();
      }
    }
    Check(store->Write(b), "load");
    Check(store->Close(), "close");
  }
  ~Dataset() { std::filesystem::remove(path_); }
  const std::string& path() const { return path_; }
  uint64_t keys() const { return keys_; }

 private:
  std::string path_;
  uint64_t keys_;
};

Dataset& Small() {
  static Dataset d("small", kSmallKeys);
  return d;
}
Dataset& Large() {
  static Dataset d("large", kLargeKeys);
  return d;
}

void BM_Load(benchmark::State& state, bool random, size_t batch) {
  const std::string path = (std::filesystem::path(BenchDir()) / "store_bench.load.vdisk").string();
  for (auto _ : state) {
    std::filesystem::remove(path);
    auto store = Open(path, 64ull << 20);
    std::vector<uint64_t> order(kSmallKeys);
    std::iota(order.begin(), order.end(), uint64_t{0});
    if (random) std::shuffle(order.begin(), order.end(), std::mt19937_64(1));
    Latencies lat(kSmallKeys / batch);
    const auto t0 = Clock::now();
    WriteBatch b;
    for (size_t i = 0; i < order.size(); i += batch) {
      if (batch == 1) {
        lat.Time([&] { Check(store->Put(Key(order[i]), Value(order[i])), "put"); });
        continue;
      }
      b.Clear();
      for (size_t j = i; j < std::min(order.size(), i + batch); j++) {
        b.Put(Key(order[j]), Value(order[j]));
      }
      lat.Time([&] { Check(store->Write(b), "write"); });
    }
    const double load_s = Seconds(t0);
    const auto c0 = Clock::now();
    Check(store->Checkpoint(), "checkpoint");
    state.counters["checkpoint_ms"] = Seconds(c0) * 1e3;
    lat.Report(state, load_s);
    state.counters["keys_per_s"] = static_cast<double>(kSmallKeys) / load_s;
    state.counters["MiB_on_disk"] =
        static_cast<double>(store->GetStats().used_blocks) * 4096 / 1048576.0;
    Check(store->Close(), "close");
  }
  std::filesystem::remove(path);
}
BENCHMARK_CAPTURE(BM_Load, seq, false, 1)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Load, random, true, 1)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Load, batch100_random, true, 100)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

void ReportMisses(benchmark::State& state, const StoreStats& before, const StoreStats& after) {
  const double hits = static_cast<double>(after.cache_hits - before.cache_hits);
  const double misses = static_cast<double>(after.cache_misses - before.cache_misses);
  state.counters["miss_ratio"] = hits + misses > 0 ? misses / (hits + misses) : 0;
}

void BM_Get(benchmark::State& state, bool cold) {
  Dataset& d = cold ? Large() : Small();
  const uint64_t ops = cold ? 50'000 : 500'000;
  for (auto _ : state) {
    auto store = Open(d.path(), cold ? 8ull << 20 : 256ull << 20);
    if (!cold) {  // warm: every page resident
      auto it = store->NewIterator();
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
      }
    }
    std::mt19937_64 rng(42);
    std::string v;
    const StoreStats s0 = store->GetStats();
    Latencies lat(ops);
    const auto t0 = Clock::now();
    for (uint64_t i = 0; i < ops; i++) {
      const uint64_t k = rng() % d.keys();
      lat.Time([&] { Check(store->Get(Key(k), &v), "get"); });
    }
    lat.Report(state, Seconds(t0));
    ReportMisses(state, s0, store->GetStats());
    Check(store->Close(), "close");
  }
}
BENCHMARK_CAPTURE(BM_Get, in_cache, false)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Get, cold_10x, true)->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_Scan100(benchmark::State& state, bool cold) {
  Dataset& d = cold ? Large() : Small();
  const uint64_t ops = cold ? 5'000 : 50'000;
  for (auto _ : state) {
    auto store = Open(d.path(), cold ? 8ull << 20 : 256ull << 20);
    auto it = store->NewIterator();
    if (!cold) {
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
      }
    }
    std::mt19937_64 rng(43);
    const StoreStats s0 = store->GetStats();
    Latencies lat(ops);
    uint64_t bytes = 0;
    const auto t0 = Clock::now();
    for (uint64_t i = 0; i < ops; i++) {
      const std::string start = Key(rng() % d.keys());
      lat.Time([&] {
        int n = 0;
        for (it->Seek(start); it->Valid() && n < 100; it->Next(), n++) {
          bytes += it->key().size() + it->value().size();
        }
      });
    }
    lat.Report(state, Seconds(t0));
    state.SetBytesProcessed(static_cast<int64_t>(bytes));
    ReportMisses(state, s0, store->GetStats());
    it.reset();
    Check(store->Close(), "close");
  }
}
BENCHMARK_CAPTURE(BM_Scan100, in_cache, false)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Scan100, cold_10x, true)->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_FullScan(benchmark::State& state) {
  Dataset& d = Large();
  for (auto _ : state) {
    auto store = Open(d.path(), 8ull << 20);
    const StoreStats s0 = store->GetStats();
    uint64_t n = 0, bytes = 0;
    const auto t0 = Clock::now();
    auto it = store->NewIterator();
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      bytes += it->key().size() + it->value().size();
      n++;
    }
    Check(it->status(), "scan");
    const double secs = Seconds(t0);
    if (n != d.keys()) state.SkipWithError("scan saw the wrong number of keys");
    state.counters["keys_per_s"] = static_cast<double>(n) / secs;
    state.counters["MiB_per_s"] = static_cast<double>(bytes) / secs / 1048576.0;
    ReportMisses(state, s0, store->GetStats());
    it.reset();
    Check(store->Close(), "close");
  }
}
BENCHMARK(BM_FullScan)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace vde

BENCHMARK_MAIN();
