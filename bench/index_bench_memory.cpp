// Micro-benchmarks of the index layer over a MemoryBlockDevice (CPU cost, not I/O): page cache
// hits, B+tree puts, gets, MultiGets and scans with a cache that holds the whole tree. Part of
// index_bench (index_bench.cpp has the file-backed read path and main).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "bench/index_bench_util.h"
#include "blockdev/memory_block_device.h"
#include "index/btree.h"
#include "index/page_cache.h"

namespace vde::index {
namespace {

using bench::BumpSource;
using bench::Key;

struct Env {
  Env() {
    device = std::move(*blockdev::MemoryBlockDevice::Create(4096, 1024, 4096));
    source = std::make_unique<BumpSource>(device.get());
    PageCacheOptions o;
    o.budget_bytes = 512ull << 20;
    cache = std::move(*PageCache::Create(device.get(), o));
    tree = std::move(*BTree::Create(cache.get(), source.get()));
  }
  std::unique_ptr<blockdev::MemoryBlockDevice> device;
  std::unique_ptr<BumpSource> source;
  std::unique_ptr<PageCache> cache;
  std::unique_ptr<BTree> tree;
};

void BM_PageCacheHit(benchmark::State& state) {
  auto device = std::move(*blockdev::MemoryBlockDevice::Create(4096, 1024, 4096));
  PageCacheOptions o;
  o.budget_bytes = 16ull << 20;
  auto cache = std::move(*PageCache::Create(device.get(), o));
  for (uint64_t b = 1; b <= 512; b++) {
    auto g = cache->PinNew(b);
    SealBlock(g->data(), BlockType::kBTreeLeaf, b, 1);
    g->MarkDirty();
  }
  uint64_t b = 0;
  for (auto _ : state) {
    auto g = cache->PinShared(1 + (b++ & 511));
    benchmark::DoNotOptimize(g->data().data());
  }
}
BENCHMARK(BM_PageCacheHit);

void BM_BTreePutRandom(benchmark::State& state) {
  Env env;
  std::mt19937_64 rng(1);
  const std::string value(state.range(0), 'v');
  for (auto _ : state) {
    if (!env.tree->Put(Key(rng()), value).ok()) state.SkipWithError("put failed");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BTreePutRandom)->Arg(8)->Arg(100)->Arg(2000);

void BM_BTreePutSequential(benchmark::State& state) {
  Env env;
  uint64_t i = 0;
  for (auto _ : state) {
    if (!env.tree->Put(Key(i++), "value").ok()) state.SkipWithError("put failed");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BTreePutSequential);

void BM_BTreeGetRandom(benchmark::State& state) {
  Env env;
  const uint64_t n = state.range(0);
  for (uint64_t i = 0; i < n; i++) (void)env.tree->Put(Key(i), "value-of-some-length");
  std::mt19937_64 rng(2);
  std::string v;
  for (auto _ : state) {
    if (!env.tree->Get(Key(rng() % n), &v).ok()) state.SkipWithError("get failed");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BTreeGetRandom)->Arg(10000)->Arg(1000000);

void BM_BTreeMultiGetHot(benchmark::State& state) {
  Env env;
  const uint64_t n = 1000000;
  for (uint64_t i = 0; i < n; i++) (void)env.tree->Put(Key(i), "value-of-some-length");
  std::mt19937_64 rng(2);
  const size_t batch = state.range(0);
  std::vector<std::string> keys(batch);
  std::vector<std::string_view> views(batch);
  std::vector<std::string> values;
  std::vector<Status> statuses;
  for (auto _ : state) {
    for (size_t i = 0; i < batch; i++) {
      keys[i] = Key(rng() % n);
      views[i] = keys[i];
    }
    if (!env.tree->MultiGet(views, &values, &statuses).ok()) state.SkipWithError("failed");
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_BTreeMultiGetHot)->Arg(64)->Arg(1000);

void BM_BTreeScan(benchmark::State& state) {
  Env env;
  const uint64_t n = 200000;
  for (uint64_t i = 0; i < n; i++) (void)env.tree->Put(Key(i), "value-of-some-length");
  auto it = env.tree->NewIterator();
  it->SeekToFirst();
  for (auto _ : state) {
    if (!it->Valid()) it->SeekToFirst();
    benchmark::DoNotOptimize(it->value().data());
    it->Next();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BTreeScan);

}  // namespace
}  // namespace vde::index
