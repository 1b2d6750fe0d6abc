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
//
// One thread against two, measured in the same run in rounds of 1, 2, 2 and 1 threads (the same
// total work either way; keys and values are made before the clock starts, so only the store is
// timed), reporting keys/s for each, ratio_2t_vs_1t, cpu_2t_vs_1t (what the machine gave two
// threads of pure CPU work over one in the same rounds: the ceiling on a shared machine), CPU
// time per key (a rise from one thread to two means the threads slow each other down) and
// context switches per 1000 keys (lock hand-offs between the threads show there):
//   BM_WarmGets                     random gets, the 200k-key store resident (256 MiB cache)
//   BM_WarmScans100                 seek to a random key and read the next 100; keys/s counts
//                                   the keys read
//   BM_LoadThreads/put, /batch100   200k random keys into a fresh store (64 MiB cache) with
//                                   Put, or WriteBatches of 100; with two threads each loads its
//                                   own half of the key range (shuffled) into the same store
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <string_view>
#include <thread>
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

// ---- One thread against two ----

// Context switches (voluntary and not) of the calling thread so far.
uint64_t ThreadSwitches() {
  rusage ru{};
  getrusage(RUSAGE_THREAD, &ru);
  return static_cast<uint64_t>(ru.ru_nvcsw + ru.ru_nivcsw);
}

// CPU time of the calling thread, in nanoseconds.
uint64_t ThreadCpuNanos() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(ts.tv_nsec);
}

// What the worker threads of one RunThreads call spent besides wall time.
struct ThreadCosts {
  uint64_t switches = 0;  // context switches
  uint64_t cpu_ns = 0;    // CPU time
};

// Runs body(t) for t in [0, threads) on as many new threads, released together; returns the
// wall time from the release to the last one's end, and adds what the threads spent in body
// to *costs.
template <typename F>
double RunThreads(int threads, const F& body, ThreadCosts* costs = nullptr) {
  std::atomic<uint64_t> cs{0}, cpu{0};
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; t++) {
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      const uint64_t s0 = ThreadSwitches(), c0 = ThreadCpuNanos();
      body(t);
      cpu.fetch_add(ThreadCpuNanos() - c0);
      cs.fetch_add(ThreadSwitches() - s0);
    });
  }
  while (ready.load() < threads) std::this_thread::yield();
  const auto t0 = Clock::now();
  go.store(true, std::memory_order_release);
  for (std::thread& th : pool) th.join();
  const double secs = Seconds(t0);
  if (costs != nullptr) {
    costs->switches += cs.load();
    costs->cpu_ns += cpu.load();
  }
  return secs;
}

// `n` keys of the dataset drawn at random, as fixed-width strings in one buffer.
class KeyList {
 public:
  KeyList(uint64_t n, uint64_t keys, uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (uint64_t i = 0; i < n; i++) buf_ += Key(rng() % keys);
    width_ = Key(0).size();
  }
  std::string_view operator[](size_t i) const { return {buf_.data() + i * width_, width_}; }

 private:
  std::string buf_;
  size_t width_ = 0;
};

// Keys/s of one thread and of two, and their ratio, over the rounds of a benchmark. Each round
// is followed by the same number of threads spinning on a fixed amount of pure CPU work: the
// ratio of those rates (cpu_2t_vs_1t) is what the shared machine gave two threads over one
// at the time, the ceiling for ratio_2t_vs_1t.
struct ThreadRounds {
  double seconds[3] = {0, 0, 0};  // by thread count
  double keys[3] = {0, 0, 0};
  double spin_seconds[3] = {0, 0, 0};
  ThreadCosts costs[3];
  ThreadCosts spin_costs[3];
  void Add(int threads, double secs, double k, const ThreadCosts& c) {
    seconds[threads] += secs;
    keys[threads] += k;
    costs[threads].switches += c.switches;
    costs[threads].cpu_ns += c.cpu_ns;
    constexpr uint64_t kSpinSteps = 300'000'000;  // about 0.3 s of one core
    spin_seconds[threads] += RunThreads(
        threads,
        [&](int) {
          uint64_t x = 88172645463325252ull;
          for (uint64_t i = 0; i < kSpinSteps / threads; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
          }
          benchmark::DoNotOptimize(x);
        },
        &spin_costs[threads]);
  }
  void Report(benchmark::State& state) const {
    const double one = keys[1] / seconds[1], two = keys[2] / seconds[2];
    state.counters["keys/s_1t"] = one;
    state.counters["keys/s_2t"] = two;
    state.counters["ratio_2t_vs_1t"] = two / one;
    state.counters["cpu_2t_vs_1t"] = spin_seconds[1] / spin_seconds[2];
    // The spin's CPU time for the same work on two threads over one: above 1 when the two
    // vCPUs slow each other down (say, hyperthreads of one host core).
    state.counters["spin_cpu_2t_vs_1t"] =
        static_cast<double>(spin_costs[2].cpu_ns) / static_cast<double>(spin_costs[1].cpu_ns);
    // Context switches of the worker threads per 1000 keys: lock hand-offs between threads
    // (a waiter sleeps, the holder wakes it) show here. CPU time per key: interference between
    // the threads (shared cache lines, a shared core) shows as a rise from one to two.
    for (int t = 1; t <= 2; t++) {
      const std::string suffix = t == 1 ? "_1t" : "_2t";
      state.counters["switches/1k" + suffix] =
          1000.0 * static_cast<double>(costs[t].switches) / keys[t];
      state.counters["cpu_us/key" + suffix] = static_cast<double>(costs[t].cpu_ns) / 1e3 / keys[t];
    }
  }
};

// A store holding the small dataset, every page resident.
std::unique_ptr<Store> OpenWarm(const Dataset& d) {
  auto store = Open(d.path(), 256ull << 20);
  auto it = store->NewIterator();
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
  }
  Check(it->status(), "warm-up scan");
  return store;
}

constexpr int kRoundThreads[] = {1, 2, 2, 1};

void BM_WarmGets(benchmark::State& state) {
  Dataset& d = Small();
  constexpr uint64_t kOps = 400'000;  // per round, shared among its threads
  const KeyList keys(kOps, d.keys(), 42);
  ThreadRounds r;
  for (auto _ : state) {
    auto store = OpenWarm(d);
    for (int threads : kRoundThreads) {
      const uint64_t per = kOps / threads;
      ThreadCosts tc;
      const double secs = RunThreads(
          threads,
          [&](int t) {
            std::string v;
            for (uint64_t i = t * per; i < (t + 1) * per; i++) {
              Check(store->Get(keys[i], &v), "get");
            }
          },
          &tc);
      r.Add(threads, secs, static_cast<double>(per * threads), tc);
    }
    Check(store->Close(), "close");
  }
  r.Report(state);
}
BENCHMARK(BM_WarmGets)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_WarmScans100(benchmark::State& state) {
  Dataset& d = Small();
  constexpr uint64_t kOps = 20'000;  // scans per round, shared among its threads
  const KeyList starts(kOps, d.keys(), 43);
  ThreadRounds r;
  for (auto _ : state) {
    auto store = OpenWarm(d);
    for (int threads : kRoundThreads) {
      const uint64_t per = kOps / threads;
      std::atomic<uint64_t> total{0};
      ThreadCosts tc;
      const double secs = RunThreads(
          threads,
          [&](int t) {
            auto it = store->NewIterator();
            uint64_t n = 0;
            for (uint64_t i = t * per; i < (t + 1) * per; i++) {
              int k = 0;
              for (it->Seek(starts[i]); it->Valid() && k < 100; it->Next(), k++) {
                benchmark::DoNotOptimize(it->value().data());
              }
              Check(it->status(), "scan");
              n += k;
            }
            total.fetch_add(n);
          },
          &tc);
      r.Add(threads, secs, static_cast<double>(total.load()), tc);
    }
    Check(store->Close(), "close");
  }
  r.Report(state);
}
BENCHMARK(BM_WarmScans100)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

// One load of kSmallKeys random keys into a fresh store by `threads` threads (batch 1: Put).
// Returns the seconds the writes took (not the store's opening, nor its closing checkpoint),
// and adds what the threads spent to *costs.
double LoadOnce(int threads, size_t batch, ThreadCosts* costs) {
  const std::string path =
      (std::filesystem::path(BenchDir()) / "store_bench.load_threads.vdisk").string();
  std::filesystem::remove(path);
  // Each thread's keys: its own slice of the key range, shuffled; their values made up front.
  std::vector<std::vector<std::pair<std::string, std::string>>> work(threads);
  for (int t = 0; t < threads; t++) {
    const uint64_t first = kSmallKeys * t / threads, end = kSmallKeys * (t + 1) / threads;
    for (uint64_t i : Shuffled(end - first, 100 + t)) {
      work[t].emplace_back(Key(first + i), Value(first + i));
    }
  }
  auto store = Open(path, 64ull << 20);
  const double secs = RunThreads(
      threads,
      [&](int t) {
        const auto& w = work[t];
        WriteBatch b;
        for (size_t i = 0; i < w.size(); i += batch) {
          if (batch == 1) {
            Check(store->Put(w[i].first, w[i].second), "put");
            continue;
          }
          b.Clear();
          for (size_t j = i; j < std::min(w.size(), i + batch); j++) b.Put(w[j].first, w[j].second);
          Check(store->Write(b), "write");
        }
      },
      costs);
  Check(store->Close(), "close");
  std::filesystem::remove(path);
  return secs;
}

void BM_LoadThreads(benchmark::State& state, size_t batch) {
  ThreadRounds r;
  for (auto _ : state) {
    for (int threads : kRoundThreads) {
      ThreadCosts tc;
      const double secs = LoadOnce(threads, batch, &tc);
      r.Add(threads, secs, static_cast<double>(kSmallKeys), tc);
    }
  }
  r.Report(state);
}
BENCHMARK_CAPTURE(BM_LoadThreads, put, 1)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_LoadThreads, batch100, 100)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace vde

BENCHMARK_MAIN();
