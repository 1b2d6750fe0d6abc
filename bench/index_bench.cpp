// Micro-benchmarks of the index layer.
//
// Over a MemoryBlockDevice (CPU cost, not I/O): page cache hits, B+tree puts, gets, MultiGets
// and scans with a cache that holds the whole tree.
//
// Over a file (OpenBlockDevice: io_uring with O_DIRECT where available), the batched read path
// against the device's own limits, measured in the same run: a tree of VDE_BENCH_TREE_MB MiB
// (default 1024) with a cache of VDE_BENCH_CACHE_MB MiB (default 32: the tree is 30x larger),
// in a file under VDE_BENCH_DIR (default: the working directory), deleted at exit.
//   BM_Device_RandomRead4K_QD64   ReadBatch of 64 random 4 KiB blocks: the device's IOPS
//   BM_Cold_MultiGet64/1          MultiGet of 64 random keys (inner pages resident, leaves not),
//                                 each interleaved with a device batch of 64 random reads:
//                                 keys/s, device_IOPS and ratio_to_device
//   BM_Cold_MultiGet64/0          the same with 64 Gets one at a time (what peers do)
//   BM_Device_SeqRead4K_QD64      sequential ReadBatch of 64 4 KiB blocks: bytes/s
//   BM_Device_SeqRead1M_QD8       sequential ReadBatch of 8 1 MiB requests: bytes/s
//   BM_Cold_Scan/<max window>     a full scan in slices, each followed by sequential device
//                                 reads of as many bytes: scan MiB/s and its ratios to both;
//                                 /0 is without read-ahead (1/8 of the tree)
// Run the file benchmarks alone with --benchmark_filter='Device|Cold'.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "blockdev/aligned_buffer.h"
#include "blockdev/block_header.h"
#include "blockdev/memory_block_device.h"
#include "blockdev/open_block_device.h"
#include "index/btree.h"
#include "index/page_cache.h"

namespace vde::index {
namespace {

// Hands out blocks from the end of a growing device; frees are dropped (the benchmark never
// checkpoints, so nothing would be reused before it ends anyway).
class BumpSource final : public BlockSource {
 public:
  explicit BumpSource(blockdev::BlockDevice* d) : device_(d) {}
  Result<uint64_t> Allocate(uint32_t count) override {
    std::lock_guard lk(mu_);
    uint64_t start = next_;
    next_ += count;
    if (next_ > device_->block_count()) VDE_RETURN_IF_ERROR(device_->Grow(next_ * 2));
    return start;
  }
  Status Free(uint64_t, uint32_t) override { return Status::OK(); }
  uint64_t generation() const override { return 1; }

 private:
  blockdev::BlockDevice* device_;
  std::mutex mu_;
  uint64_t next_ = 1;
};

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

std::string Key(uint64_t i) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "key%016llx", static_cast<unsigned long long>(i));
  return buf;
}

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

// ---- Cold reads from a file ----

uint64_t EnvNumber(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

// The tree on a file, built once per process by the first benchmark that needs it.
class FileEnv {
 public:
  static FileEnv& Get() {
    static std::unique_ptr<FileEnv> env(new FileEnv);
    return *env;
  }
  ~FileEnv() {
    tree.reset();
    device.reset();  // before the registered memory below
    cache.reset();
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }

  std::string path;
  std::string describe;
  uint64_t keys = 0;
  uint64_t tree_blocks = 0;  // blocks in use: the range the device benchmarks read
  AlignedBuffer io;          // registered: 64 blocks for the device benchmarks, or 8 MiB
  std::unique_ptr<PageCache> cache;
  std::unique_ptr<blockdev::BlockDevice> device;
  std::unique_ptr<BumpSource> source;
  std::unique_ptr<BTree> tree;
  bool ok = false;

 private:
  FileEnv() {
    const char* dir = std::getenv("VDE_BENCH_DIR");
    path = (std::filesystem::path(dir != nullptr ? dir : ".") / "index_bench.vdisk").string();
    const uint64_t tree_mb = EnvNumber("VDE_BENCH_TREE_MB", 1024);
    const uint64_t cache_mb = EnvNumber("VDE_BENCH_CACHE_MB", 32);
    keys = tree_mb * (1 << 20) / 140;  // ~140 bytes a key with a 100-byte value, at ~90% fill
    blockdev::DeviceOptions o;
    o.mode = blockdev::OpenMode::kCreateOrTruncate;
    o.create_blocks = 1024;
    auto opened = blockdev::OpenBlockDevice(path, o);
    if (!opened.has_value()) {
      std::fprintf(stderr, "open %s: %s\n", path.c_str(), opened.status().ToString().c_str());
      return;
    }
    device = std::move(opened->device);
    describe = device->Describe() + " [" + opened->reason + "]";
    for (const std::string& note : opened->notes) describe += "; " + note;
    source = std::make_unique<BumpSource>(device.get());
    std::fprintf(stderr, "index_bench: building a tree of %llu keys in %s (%s)\n",
                 static_cast<unsigned long long>(keys), path.c_str(), describe.c_str());
    uint64_t root = 0;
    {
      // Build with a large unregistered cache (it dies before the device), then flush.
      PageCacheOptions po;
      po.budget_bytes = 512ull << 20;
      po.register_memory = false;
      auto build_cache = std::move(*PageCache::Create(device.get(), po));
      auto t = std::move(*BTree::Create(build_cache.get(), source.get()));
      const std::string value(100, 'v');
      for (uint64_t i = 0; i < keys; i++) {
        if (!t->Put(Key(i), value).ok()) return;
      }
      if (!t->FlushAll().ok() || !device->Flush().ok()) return;
      root = t->root();
    }
    tree_blocks = device->block_count();
    io = AlignedBuffer(8 << 20, 4096);
    if (!device->RegisterMemory(io.span()).ok()) return;
    PageCacheOptions po;
    po.budget_bytes = cache_mb << 20;
    auto c = PageCache::Create(device.get(), po);
    if (!c.has_value()) return;
    cache = std::move(*c);
    auto t = BTree::Open(cache.get(), source.get(), root);
    if (!t.has_value()) return;
    tree = std::move(*t);
    ok = true;
  }
};

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// One ReadBatch of 64 random blocks of the tree's range into the registered buffer.
Status DeviceRandomBatch(FileEnv& e, std::mt19937_64& rng,
                         std::vector<blockdev::ReadRequest>* reqs) {
  reqs->resize(64);
  for (size_t i = 0; i < reqs->size(); i++) {
    (*reqs)[i].block = 1 + rng() % (e.tree_blocks - 1);
    (*reqs)[i].count = 1;
    (*reqs)[i].buf = e.io.data() + i * 4096;
  }
  return e.device->ReadBatch(*reqs);
}

// `depth` requests of `blocks` sequential blocks each, from *next on (wrapping in the tree).
Status DeviceSequentialBatch(FileEnv& e, uint32_t blocks, size_t depth, uint64_t* next,
                             std::vector<blockdev::ReadRequest>* reqs) {
  reqs->resize(depth);
  for (size_t i = 0; i < depth; i++) {
    if (*next + blocks > e.tree_blocks) *next = 1;
    (*reqs)[i].block = *next;
    (*reqs)[i].count = blocks;
    (*reqs)[i].buf = e.io.data() + i * blocks * 4096;
    *next += blocks;
  }
  return e.device->ReadBatch(*reqs);
}

void BM_Device_RandomRead4K_QD64(benchmark::State& state) {
  FileEnv& e = FileEnv::Get();
  if (!e.ok) return state.SkipWithError("no file environment");
  state.SetLabel(e.describe);
  std::mt19937_64 rng(7);
  std::vector<blockdev::ReadRequest> reqs;
  uint64_t reads = 0;
  for (auto _ : state) {
    if (!DeviceRandomBatch(e, rng, &reqs).ok()) return state.SkipWithError("read failed");
    reads += reqs.size();
  }
  state.counters["IOPS"] =
      benchmark::Counter(static_cast<double>(reads), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Device_RandomRead4K_QD64)->UseRealTime()->MinTime(2.0);

// Each iteration times one device batch of 64 random 4 KiB reads and one MultiGet of 64 random
// keys (or 64 Gets: Arg 0), so the ratio compares the two under the same load on a shared disk.
void BM_Cold_MultiGet64(benchmark::State& state) {
  FileEnv& e = FileEnv::Get();
  if (!e.ok) return state.SkipWithError("no file environment");
  const bool batched = state.range(0) != 0;
  std::mt19937_64 rng(11);
  std::vector<std::string> keys(64);
  std::vector<std::string_view> views(64);
  std::vector<std::string> values;
  std::vector<Status> statuses;
  std::vector<blockdev::ReadRequest> reqs;
  auto fill = [&] {
    for (size_t i = 0; i < keys.size(); i++) {
      keys[i] = Key(rng() % e.keys);
      views[i] = keys[i];
    }
  };
  for (int i = 0; i < 300; i++) {  // reach the steady state: inner pages resident
    fill();
    (void)e.tree->MultiGet(views, &values, &statuses);
  }
  const BTreeReadStats rs = e.tree->read_stats();
  const PageCacheStats cs = e.cache->stats();
  uint64_t done = 0, device_reads = 0, tree_batches = 0, tree_submits = 0;
  double tree_s = 0, device_s = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    if (!DeviceRandomBatch(e, rng, &reqs).ok()) return state.SkipWithError("read failed");
    device_s += Seconds(t0);
    device_reads += reqs.size();
    fill();
    const blockdev::DeviceStats ds = e.device->stats();
    t0 = Clock::now();
    if (batched) {
      Status s = e.tree->MultiGet(views, &values, &statuses);
      if (!s.ok()) return state.SkipWithError(s.ToString().c_str());
    } else {
      for (std::string_view k : views) {
        if (!e.tree->Get(k, &values.emplace_back()).ok()) return state.SkipWithError("get");
        values.clear();
      }
    }
    tree_s += Seconds(t0);
    const blockdev::DeviceStats ds2 = e.device->stats();
    tree_batches += ds2.batches - ds.batches;
    tree_submits += ds2.submissions - ds.submissions;
    done += keys.size();
  }
  const double keys_per_s = static_cast<double>(done) / tree_s;
  const double iops = static_cast<double>(device_reads) / device_s;
  const BTreeReadStats rs2 = e.tree->read_stats();
  const PageCacheStats cs2 = e.cache->stats();
  const double calls = static_cast<double>(state.iterations());
  state.counters["keys/s"] = keys_per_s;
  state.counters["device_IOPS"] = iops;
  state.counters["ratio_to_device"] = keys_per_s / iops;
  state.counters["misses/key"] = static_cast<double>(cs2.misses - cs.misses) / done;
  state.counters["batches/call"] = static_cast<double>(tree_batches) / calls;
  state.counters["submits/call"] = static_cast<double>(tree_submits) / calls;
  if (batched && rs2.leaf_batches > rs.leaf_batches) {
    state.counters["leaves/batch"] = static_cast<double>(rs2.leaves_read - rs.leaves_read) /
                                     static_cast<double>(rs2.leaf_batches - rs.leaf_batches);
  }
  state.counters["inner_resident"] = cs2.inner_pages;
}
BENCHMARK(BM_Cold_MultiGet64)->Arg(1)->Arg(0)->UseRealTime()->MinTime(3.0);

void BM_Device_SeqRead4K_QD64(benchmark::State& state) {
  FileEnv& e = FileEnv::Get();
  if (!e.ok) return state.SkipWithError("no file environment");
  std::vector<blockdev::ReadRequest> reqs;
  uint64_t next = 1, bytes = 0;
  for (auto _ : state) {
    if (!DeviceSequentialBatch(e, 1, 64, &next, &reqs).ok()) return state.SkipWithError("read");
    bytes += 64 * 4096;
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_Device_SeqRead4K_QD64)->UseRealTime()->MinTime(2.0);

void BM_Device_SeqRead1M_QD8(benchmark::State& state) {
  FileEnv& e = FileEnv::Get();
  if (!e.ok) return state.SkipWithError("no file environment");
  std::vector<blockdev::ReadRequest> reqs;
  uint64_t next = 1, bytes = 0;
  for (auto _ : state) {
    if (!DeviceSequentialBatch(e, 256, 8, &next, &reqs).ok()) return state.SkipWithError("read");
    bytes += 8 << 20;
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_Device_SeqRead1M_QD8)->UseRealTime()->MinTime(2.0);

// A full scan in 16 slices from a cold start (the cache is 1/30 of the tree, and each slice
// starts where nothing was read lately). After each slice, the device reads as many bytes
// sequentially in 4 KiB requests 64 at a time and in 1 MiB requests 8 at a time, for the
// ratios. Arg: IteratorOptions::readahead_max (0: no read-ahead; then only 2 slices).
void BM_Cold_Scan(benchmark::State& state) {
  FileEnv& e = FileEnv::Get();
  if (!e.ok) return state.SkipWithError("no file environment");
  IteratorOptions o;
  o.readahead_max = static_cast<uint32_t>(state.range(0));
  const uint64_t slices = o.readahead_max == 0 ? 2 : 16;
  uint64_t entries = 0, pages = 0, next4k = 1, next1m = 1;
  double scan_s = 0, seq4k_s = 0, seq1m_s = 0;
  const PageCacheStats cs = e.cache->stats();
  uint64_t scan_batches = 0;
  std::vector<blockdev::ReadRequest> reqs;
  for (auto _ : state) {
    for (uint64_t slice = 0; slice < slices; slice++) {
      const uint64_t read_before = e.cache->stats().pages_read;
      const blockdev::DeviceStats ds = e.device->stats();
      auto t0 = Clock::now();
      auto it = e.tree->NewIterator(o);
      const std::string end = Key(e.keys * (slice + 1) / 16);
      uint64_t n = 0;
      for (it->Seek(Key(e.keys * slice / 16)); it->Valid() && it->key() < end; it->Next()) {
        benchmark::DoNotOptimize(it->value().data());
        n++;
      }
      if (!it->status().ok()) return state.SkipWithError(it->status().ToString().c_str());
      scan_s += Seconds(t0);
      scan_batches += e.device->stats().batches - ds.batches;
      entries += n;
      const uint64_t got = e.cache->stats().pages_read - read_before;
      pages += got;
      // The same number of bytes, read sequentially by the device alone.
      t0 = Clock::now();
      for (uint64_t done = 0; done < got; done += 64) {
        if (!DeviceSequentialBatch(e, 1, 64, &next4k, &reqs).ok()) return state.SkipWithError("r");
      }
      seq4k_s += Seconds(t0);
      t0 = Clock::now();
      for (uint64_t done = 0; done < got; done += 2048) {
        if (!DeviceSequentialBatch(e, 256, 8, &next1m, &reqs).ok()) return state.SkipWithError("r");
      }
      seq1m_s += Seconds(t0);
    }
  }
  const double bytes = static_cast<double>(pages) * 4096;
  const double scan_bps = bytes / scan_s;
  const double seq4k_bps = static_cast<double>((pages + 63) / 64 * 64) * 4096 / seq4k_s;
  const double seq1m_bps = static_cast<double>((pages + 2047) / 2048 * 2048) * 4096 / seq1m_s;
  const PageCacheStats cs2 = e.cache->stats();
  state.counters["entries/s"] = static_cast<double>(entries) / scan_s;
  state.counters["scan_MiB/s"] = scan_bps / (1 << 20);
  state.counters["seq4K_MiB/s"] = seq4k_bps / (1 << 20);
  state.counters["seq1M_MiB/s"] = seq1m_bps / (1 << 20);
  state.counters["ratio_to_seq4K"] = scan_bps / seq4k_bps;
  state.counters["ratio_to_seq1M"] = scan_bps / seq1m_bps;
  state.counters["pages/batch"] =
      static_cast<double>(pages) / static_cast<double>(std::max<uint64_t>(1, scan_batches));
  state.counters["prefetch_used"] = static_cast<double>(cs2.prefetch_used - cs.prefetch_used);
  state.counters["prefetch_wasted"] = static_cast<double>(cs2.prefetch_wasted - cs.prefetch_wasted);
}
BENCHMARK(BM_Cold_Scan)
    ->Arg(64)
    ->Arg(128)
    ->Arg(0)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace vde::index

BENCHMARK_MAIN();
