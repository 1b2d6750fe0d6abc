// Micro-benchmarks of the index layer (index_bench_memory.cpp has those over a
// MemoryBlockDevice: CPU cost, not I/O).
//
// Over a file (OpenBlockDevice: io_uring with O_DIRECT where available), the batched read path
// against the device's own limits, measured in the same run through the same BlockDevice, in
// a file under VDE_BENCH_DIR (default: the working directory), deleted at exit. The file holds
// two trees of 19-byte keys and 100-byte values: one of VDE_BENCH_TREE_MB MiB (default 512)
// loaded in key order and one of VDE_BENCH_RANDOM_TREE_MB MiB (default 384) loaded in random
// order, read through a cache of VDE_BENCH_CACHE_MB MiB (default 32: the trees are ~16x and
// ~12x larger) with VDE_BENCH_RA_THREADS read-ahead threads (default: the cache's, 2). Building
// them takes about 50 s on a 2-vCPU machine.
//   BM_Device_*                    the device alone (reference, not interleaved)
//   BM_Cold_MultiGet64/1           MultiGet of 64 random keys (inner pages resident, leaves
//                                  not), each interleaved with a device batch of 64 random
//                                  4 KiB reads: keys/s, device_IOPS and ratio_vs_device; and
//                                  for information with one more such batch that lands in a
//                                  fresh stretch of a cache-sized buffer each time, as reads
//                                  into a cache's frames do (device_spread_IOPS,
//                                  ratio_vs_spread), and one more into a fixed 256 KiB of its
//                                  own whose blocks are checksummed after each batch, as
//                                  a cache verifies what it reads (device_used_IOPS,
//                                  ratio_vs_used; the checksums are not timed)
//   BM_Cold_MultiGet64/0           the same with 64 Gets one at a time (what peers do)
//   BM_Cold_ScanSeq/readahead:N    a full scan of the key-order tree, paused every 1/16 for
//                                  sequential device reads of as many bytes (1 MiB requests
//                                  8 at a time: ratio_vs_device; 4 KiB 64 at a time and 256 KiB
//                                  one at a time for information)
//   BM_Cold_ScanRandom/readahead:N a full scan of the random-order tree, against random 4 KiB
//                                  device reads of its blocks, N at a time: ratio_vs_device
// Every Cold benchmark prints ratio_vs_device, the figure to quote (with
// --benchmark_repetitions, its median), and splits the time of the benchmark's thread per key
// or page into time spent in the device's reads (io_us) and the rest (non_io_us: verification,
// search, copying, waiting for pages the read-ahead threads are reading), beside the
// baselines' own time, CPU time and run-queue wait. Reads made by the cache's read-ahead
// threads overlap the scan and are not in io_us; a scan's time includes finishing the
// read-ahead it started (PageCache::WaitForReadAhead before each pause). Run them alone with
// --benchmark_filter=Cold; bench/read_path_figures.sh runs them with the store's figures.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/index_bench_util.h"
#include "blockdev/aligned_buffer.h"
#include "blockdev/block_header.h"
#include "blockdev/open_block_device.h"
#include "index/btree.h"
#include "index/page_cache.h"

namespace vde::index {
namespace {

using bench::BumpSource;
using bench::Key;

// ---- Cold reads from a file ----

uint64_t EnvNumber(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// CPU time of the calling thread, in seconds: on a shared machine the wall time of CPU work
// stretches with the run queue, its CPU time does not.
double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// CPU seconds of the whole process: with the read-ahead threads, and the interrupts that land
// on any of its threads.
double ProcessCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Seconds the calling thread has spent runnable but waiting for a CPU (the second field of
// /proc/thread-self/schedstat; 0 where it cannot be read). Wall time = CPU time + this + time
// blocked (on I/O).
double ThreadRunqueueSeconds() {
  static const int fd = ::open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
  char buf[128];
  const ssize_t n = fd < 0 ? -1 : ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  buf[n] = '\0';
  unsigned long long cpu_ns = 0, wait_ns = 0;
  if (std::sscanf(buf, "%llu %llu", &cpu_ns, &wait_ns) != 2) return 0;
  return static_cast<double>(wait_ns) * 1e-9;
}

// Blocks [first, end) of the file: what one tree's build wrote. The device baselines read only
// inside such a range: the file grows ahead of use, and reading its never-written tail
// (fallocated, unwritten extents) costs the file system no disk I/O and would flatter them.
struct BlockRange {
  uint64_t first = 0;
  uint64_t end = 0;
  uint64_t blocks() const { return end - first; }
};

// The cache's view of the device: forwards every call, and adds up the wall time spent in
// reads, so that the benchmarks can split a lookup's or a scan's time into waiting for its reads
// and everything else. Its own counters stay zero (stats() is not virtual): ask the device.
class TimedDevice final : public blockdev::BlockDevice {
 public:
  explicit TimedDevice(blockdev::BlockDevice* d)
      : BlockDevice(d->path(), d->block_size(), d->block_count(), d->alignment(), d->read_only()),
        device_(d) {}
  std::string Describe() const override { return device_->Describe(); }
  Status Read(uint64_t block, uint32_t count, std::span<std::byte> buf) override {
    const auto t0 = Clock::now();
    Status s = device_->Read(block, count, buf);
    AddReadTime(t0);
    return s;
  }
  Status ReadBatch(std::span<blockdev::ReadRequest> reqs) override {
    const auto t0 = Clock::now();
    Status s = device_->ReadBatch(reqs);
    AddReadTime(t0);
    return s;
  }
  Status ReadBatchNotify(std::span<blockdev::ReadRequest> reqs,
                         blockdev::RequestCallback done) override {
    const auto t0 = Clock::now();
    Status s = device_->ReadBatchNotify(reqs, done);
    AddReadTime(t0);
    return s;
  }
  Status Write(uint64_t block, uint32_t count, std::span<const std::byte> buf) override {
    return device_->Write(block, count, buf);
  }
  Status WriteBatch(std::span<blockdev::WriteRequest> reqs) override {
    return device_->WriteBatch(reqs);
  }
  Status Flush() override { return device_->Flush(); }
  Status Grow(uint64_t blocks) override {
    Status s = device_->Grow(blocks);
    set_block_count(device_->block_count());
    return s;
  }
  Status RegisterMemory(std::span<std::byte> region) override {
    return device_->RegisterMemory(region);
  }
  bool RegistersMemory() const noexcept override { return device_->RegistersMemory(); }
  // Wall time the benchmark's thread (the one that made this device) spent in reads so far.
  // Reads made by the cache's read-ahead thread are not counted: they overlap the scan.
  double read_seconds() const { return read_seconds_; }

 private:
  void AddReadTime(Clock::time_point t0) {
    if (std::this_thread::get_id() == owner_) read_seconds_ += Seconds(t0);
  }
  blockdev::BlockDevice* device_;
  const std::thread::id owner_ = std::this_thread::get_id();
  double read_seconds_ = 0;
};

// One tree in the file, built once and then read through the shared cold cache.
struct FileTree {
  std::unique_ptr<BTree> tree;
  uint64_t keys = 0;  // Key(0) .. Key(keys - 1)
  BlockRange range;
};

// The file and its two trees, built once per process by the first benchmark that needs them:
//   seq  VDE_BENCH_TREE_MB MiB of entries (default 512) put in key order: its leaves lie in
//        the file in key order
//   rnd  VDE_BENCH_RANDOM_TREE_MB MiB (default 384) put in random order: its leaves lie in
//        the file in random order (and, split at random, are ~70% full)
// read through one cache of VDE_BENCH_CACHE_MB MiB (default 32).
// Sizes are of the trees' blocks on disk (the key counts follow from them).
class FileEnv {
 public:
  static FileEnv& Get() {
    static std::unique_ptr<FileEnv> env(new FileEnv);
    return *env;
  }
  ~FileEnv() {
    seq.tree.reset();
    rnd.tree.reset();
    device.reset();  // before the registered memory below
    cache.reset();
    timed.reset();
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }

  std::string path;
  std::string describe;
  AlignedBuffer io;  // registered: the device baselines' buffers (8 MiB)
  // Registered, as large as the cache: where BM_Cold_MultiGet64's second baseline lands its
  // reads, a fresh stretch each batch, as a cache's frames are.
  AlignedBuffer spread;
  std::unique_ptr<PageCache> cache;
  std::unique_ptr<TimedDevice> timed;  // the cache's device: `device`, its reads timed
  std::unique_ptr<blockdev::BlockDevice> device;
  std::unique_ptr<BumpSource> source;
  FileTree seq;
  FileTree rnd;
  bool ok = false;

 private:
  FileEnv() {
    const char* dir = std::getenv("VDE_BENCH_DIR");
    path = (std::filesystem::path(dir != nullptr ? dir : ".") / "index_bench.vdisk").string();
    const uint64_t tree_mb = EnvNumber("VDE_BENCH_TREE_MB", 512);
    const uint64_t random_mb = EnvNumber("VDE_BENCH_RANDOM_TREE_MB", 384);
    const uint64_t cache_mb = EnvNumber("VDE_BENCH_CACHE_MB", 32);
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
    std::fprintf(stderr, "index_bench: %s (%s)\n", path.c_str(), describe.c_str());
    // Bytes of tree per entry (19-byte key, 100-byte value), measured: 108 loaded in key order
    // (leaves split at the end, nearly full), 155 in random order (split in the middle).
    uint64_t seq_root = 0, rnd_root = 0;
    if (!Build(&seq, tree_mb * (1 << 20) / 108, false, &seq_root)) return;
    if (!Build(&rnd, random_mb * (1 << 20) / 155, true, &rnd_root)) return;
    io = AlignedBuffer(8 << 20, 4096, AlignedBuffer::Pages::kHuge);
    if (!device->RegisterMemory(io.span()).ok()) return;
    spread =
        AlignedBuffer(std::max<uint64_t>(cache_mb, 1) << 20, 4096, AlignedBuffer::Pages::kHuge);
    if (!device->RegisterMemory(spread.span()).ok()) return;
    PageCacheOptions po;
    po.budget_bytes = cache_mb << 20;
    po.readahead_threads =
        static_cast<uint32_t>(EnvNumber("VDE_BENCH_RA_THREADS", po.readahead_threads));
    timed = std::make_unique<TimedDevice>(device.get());
    auto c = PageCache::Create(timed.get(), po);
    if (!c.has_value()) return;
    cache = std::move(*c);
    auto s = BTree::Open(cache.get(), source.get(), seq_root);
    auto r = BTree::Open(cache.get(), source.get(), rnd_root);
    if (!s.has_value() || !r.has_value()) return;
    seq.tree = std::move(*s);
    rnd.tree = std::move(*r);
    std::fprintf(stderr, "index_bench: cache %llu MiB (%u frames): sequential tree %.1fx it\n",
                 static_cast<unsigned long long>(cache_mb), cache->frames(),
                 static_cast<double>(seq.range.blocks()) / cache->frames());
    ok = true;
  }

  // Puts `keys` keys with 100-byte values, in key order or shuffled, through a large
  // unregistered cache of its own (it dies before the device), and flushes them.
  bool Build(FileTree* t, uint64_t keys, bool random, uint64_t* root) {
    const auto t0 = Clock::now();
    t->keys = keys;
    t->range.first = source->next();
    PageCacheOptions po;
    po.budget_bytes = 512ull << 20;
    po.register_memory = false;
    auto build_cache = std::move(*PageCache::Create(device.get(), po));
    auto tree = std::move(*BTree::Create(build_cache.get(), source.get()));
    std::vector<uint64_t> order(keys);
    std::iota(order.begin(), order.end(), uint64_t{0});
    if (random) std::shuffle(order.begin(), order.end(), std::mt19937_64(5));
    const std::string value(100, 'v');
    for (uint64_t k : order) {
      Status s = tree->Put(Key(k), value);
      if (!s.ok()) {
        std::fprintf(stderr, "index_bench: put: %s\n", s.ToString().c_str());
        return false;
      }
    }
    if (!tree->FlushAll().ok() || !device->Flush().ok()) return false;
    *root = tree->root();
    t->range.end = source->next();
    std::fprintf(stderr,
                 "index_bench: %s tree: %llu keys, %llu blocks (%.0f MiB), built in %.1f s\n",
                 random ? "random" : "sequential", static_cast<unsigned long long>(keys),
                 static_cast<unsigned long long>(t->range.blocks()),
                 static_cast<double>(t->range.blocks()) / 256.0, Seconds(t0));
    return true;
  }
};

// One ReadBatch of `depth` random single blocks of `r` into the registered buffer (`e.io`, or
// `depth` blocks from `dest`).
Status DeviceRandomBatch(FileEnv& e, const BlockRange& r, size_t depth, std::mt19937_64& rng,
                         std::vector<blockdev::ReadRequest>* reqs, std::byte* dest = nullptr) {
  if (dest == nullptr) dest = e.io.data();
  reqs->resize(depth);
  for (size_t i = 0; i < depth; i++) {
    (*reqs)[i].block = r.first + rng() % r.blocks();
    (*reqs)[i].count = 1;
    (*reqs)[i].buf = dest + i * 4096;
  }
  return e.device->ReadBatch(*reqs);
}

// `depth` requests of `blocks` sequential blocks each, from *next on (wrapping inside `r`).
Status DeviceSequentialBatch(FileEnv& e, const BlockRange& r, uint32_t blocks, size_t depth,
                             uint64_t* next, std::vector<blockdev::ReadRequest>* reqs) {
  reqs->resize(depth);
  for (size_t i = 0; i < depth; i++) {
    if (*next < r.first || *next + blocks > r.end) *next = r.first;
    (*reqs)[i].block = *next;
    (*reqs)[i].count = blocks;
    (*reqs)[i].buf = e.io.data() + i * blocks * 4096;
    *next += blocks;
  }
  return e.device->ReadBatch(*reqs);
}

// Evicts what a previous benchmark left in the cache (other than inner pages, which eviction
// spares): pins and releases twice the cache's frames of blocks of `filler` (pinned rather than
// prefetched, so that their eviction does not count as wasted read-ahead).
void Cool(FileEnv& e, const BlockRange& filler) {
  static uint64_t offset = 0;
  const uint64_t chunk = std::max<uint32_t>(1, e.cache->frames() / 8);
  std::vector<uint64_t> pages(chunk);
  std::vector<PageCache::SharedGuard> guards(chunk);
  std::vector<Status> statuses(chunk);
  for (uint64_t done = 0; done < 2ull * e.cache->frames(); done += chunk) {
    for (uint64_t& p : pages) p = filler.first + offset++ % filler.blocks();
    (void)e.cache->PinSharedBatch(pages, nullptr, guards, statuses);
    for (PageCache::SharedGuard& g : guards) g.Release();
  }
}

// The device alone, not interleaved with anything (for reference; the Cold benchmarks below
// measure their own baselines in the same run).
void BM_Device_RandomRead4K_QD64(benchmark::State& state) {
  FileEnv& e = FileEnv::Get();
  if (!e.ok) return state.SkipWithError("no file environment");
  state.SetLabel(e.describe);
  std::mt19937_64 rng(7);
  std::vector<blockdev::ReadRequest> reqs;
  uint64_t reads = 0;
  for (auto _ : state) {
    if (!DeviceRandomBatch(e, e.seq.range, 64, rng, &reqs).ok()) {
      return state.SkipWithError("read failed");
    }
    reads += reqs.size();
  }
  state.counters["IOPS"] =
      benchmark::Counter(static_cast<double>(reads), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Device_RandomRead4K_QD64)->UseRealTime()->MinTime(2.0);

void BM_Device_SeqRead4K_QD64(benchmark::State& state) {
  FileEnv& e = FileEnv::Get();
  if (!e.ok) return state.SkipWithError("no file environment");
  std::vector<blockdev::ReadRequest> reqs;
  uint64_t next = 0, bytes = 0;
  for (auto _ : state) {
    if (!DeviceSequentialBatch(e, e.seq.range, 1, 64, &next, &reqs).ok()) {
      return state.SkipWithError("read");
    }
    bytes += 64 * 4096;
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_Device_SeqRead4K_QD64)->UseRealTime()->MinTime(2.0);

void BM_Device_SeqRead1M_QD8(benchmark::State& state) {
  FileEnv& e = FileEnv::Get();
  if (!e.ok) return state.SkipWithError("no file environment");
  std::vector<blockdev::ReadRequest> reqs;
  uint64_t next = 0, bytes = 0;
  for (auto _ : state) {
    if (!DeviceSequentialBatch(e, e.seq.range, 256, 8, &next, &reqs).ok()) {
      return state.SkipWithError("read");
    }
    bytes += 8 << 20;
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_Device_SeqRead1M_QD8)->UseRealTime()->MinTime(2.0);

// MultiGet of 64 random keys of the sequential tree (inner pages resident, leaves not: the tree
// is >= 10x the cache), or 64 Gets one at a time (Arg 0: what peer engines do). Each iteration
// also times one device batch of 64 random 4 KiB reads of the tree's blocks, before or after
// the lookups in turn, so that keys/s and the device's IOPS are measured under the same load.
// ratio_vs_device = keys/s / device IOPS (the target: >= 0.8 with one leaf read per key).
void BM_Cold_MultiGet64(benchmark::State& state) {
  FileEnv& e = FileEnv::Get();
  if (!e.ok) return state.SkipWithError("no file environment");
  FileTree& t = e.seq;
  const bool batched = state.range(0) != 0;
  std::mt19937_64 rng(11);
  std::vector<std::string> keys(64);
  std::vector<std::string_view> views(64);
  std::vector<std::string> values;
  std::vector<Status> statuses;
  std::vector<blockdev::ReadRequest> reqs;
  auto fill = [&] {
    for (size_t i = 0; i < keys.size(); i++) {
      keys[i] = Key(rng() % t.keys);
      views[i] = keys[i];
    }
  };
  for (int i = 0; i < 300; i++) {  // reach the steady state: inner pages resident
    fill();
    (void)t.tree->MultiGet(views, &values, &statuses);
  }
  const BTreeReadStats rs = t.tree->read_stats();
  const PageCacheStats cs = e.cache->stats();
  uint64_t done = 0, device_reads = 0, tree_batches = 0, tree_submits = 0, round = 0;
  uint64_t tree_reads = 0, tree_fixed = 0, tree_waits = 0, spread_reads = 0, spread_next = 0;
  double tree_s = 0, device_s = 0, tree_cpu_s = 0, device_cpu_s = 0, tree_wait_s = 0,
         device_wait_s = 0, tree_io_s = 0, spread_s = 0;
  auto device_batch = [&]() -> Status {
    const double w0 = ThreadRunqueueSeconds();
    const auto t0 = Clock::now();
    const double c0 = ThreadCpuSeconds();
    Status s = DeviceRandomBatch(e, t.range, 64, rng, &reqs);
    device_cpu_s += ThreadCpuSeconds() - c0;
    device_s += Seconds(t0);
    device_wait_s += ThreadRunqueueSeconds() - w0;
    device_reads += reqs.size();
    return s;
  };
  // The same batch landing in the next 64 blocks of a cache-sized buffer each time (as the
  // frames a cache's eviction hands out move through its memory), not always in the same 256
  // KiB: for information. On a virtual disk whose host copies the data into the guest's
  // memory, a destination that moves costs the device time (docs/PERFORMANCE.md).
  auto spread_batch = [&]() -> Status {
    const uint64_t slots = e.spread.size() / 4096;
    if (spread_next + 64 > slots) spread_next = 0;
    const auto t0 = Clock::now();
    Status s = DeviceRandomBatch(e, t.range, 64, rng, &reqs, e.spread.data() + spread_next * 4096);
    spread_s += Seconds(t0);
    spread_reads += reqs.size();
    spread_next += 64;
    return s;
  };
  // A batch as the baseline's, its blocks then checksummed (untimed), as a cache verifies every
  // page it reads: once the CPU has read the destination, the device writes it as slowly as fresh
  // memory (docs/PERFORMANCE.md, "Where a cold MultiGet's last fifth goes").
  uint64_t used_reads = 0, used_sum = 0;
  double used_s = 0;
  auto used_batch = [&]() -> Status {
    const auto t0 = Clock::now();
    // Its own 256 KiB of the registered buffer: the baseline's must stay unread by the CPU.
    Status s = DeviceRandomBatch(e, t.range, 64, rng, &reqs, e.io.data() + (4 << 20));
    used_s += Seconds(t0);
    used_reads += reqs.size();
    for (const blockdev::ReadRequest& r : reqs) used_sum += ComputeBlockChecksum({r.buf, 4096});
    return s;
  };
  auto lookups = [&]() -> Status {
    fill();
    const blockdev::DeviceStats ds = e.device->stats();
    const double w0 = ThreadRunqueueSeconds();
    const double io0 = e.timed->read_seconds();
    const auto t0 = Clock::now();
    const double c0 = ThreadCpuSeconds();
    if (batched) {
      VDE_RETURN_IF_ERROR(t.tree->MultiGet(views, &values, &statuses));
    } else {
      values.resize(1);
      for (std::string_view k : views) VDE_RETURN_IF_ERROR(t.tree->Get(k, &values[0]));
    }
    tree_cpu_s += ThreadCpuSeconds() - c0;
    tree_s += Seconds(t0);
    tree_io_s += e.timed->read_seconds() - io0;
    tree_wait_s += ThreadRunqueueSeconds() - w0;
    const blockdev::DeviceStats ds2 = e.device->stats();
    tree_batches += ds2.batches - ds.batches;
    tree_submits += ds2.submissions - ds.submissions;
    tree_reads += ds2.reads - ds.reads;
    tree_fixed += ds2.fixed_ops - ds.fixed_ops;
    tree_waits += ds2.waits - ds.waits;
    done += keys.size();
    return Status::OK();
  };
  // Each step goes first, second, third and last in turn.
  const std::array<std::function<Status()>, 4> steps = {device_batch, lookups, spread_batch,
                                                        used_batch};
  for (auto _ : state) {
    const uint64_t r = round++;
    Status s;
    for (uint64_t k = 0; k < steps.size() && s.ok(); k++) s = steps[(r + k) % steps.size()]();
    if (!s.ok()) return state.SkipWithError(s.ToString().c_str());
  }
  const double keys_per_s = static_cast<double>(done) / tree_s;
  const double iops = static_cast<double>(device_reads) / device_s;
  const BTreeReadStats rs2 = t.tree->read_stats();
  const PageCacheStats cs2 = e.cache->stats();
  const double calls = static_cast<double>(state.iterations());
  state.counters["keys/s"] = keys_per_s;
  state.counters["device_IOPS"] = iops;
  state.counters["ratio_vs_device"] = keys_per_s / iops;
  const double spread_iops = static_cast<double>(spread_reads) / spread_s;
  state.counters["device_spread_IOPS"] = spread_iops;
  state.counters["ratio_vs_spread"] = keys_per_s / spread_iops;
  const double used_iops = static_cast<double>(used_reads) / used_s;
  state.counters["device_used_IOPS"] = used_iops;
  state.counters["ratio_vs_used"] = keys_per_s / used_iops;
  benchmark::DoNotOptimize(used_sum);
  state.counters["misses/key"] = static_cast<double>(cs2.misses - cs.misses) / done;
  state.counters["cpu_us/key"] = tree_cpu_s * 1e6 / static_cast<double>(done);
  state.counters["device_cpu_us/read"] = device_cpu_s * 1e6 / static_cast<double>(device_reads);
  state.counters["runq_us/key"] = tree_wait_s * 1e6 / static_cast<double>(done);
  // Wall time per key inside the device's reads, and outside them; the device batch's whole
  // time per read compares with the first.
  state.counters["io_us/key"] = tree_io_s * 1e6 / static_cast<double>(done);
  state.counters["non_io_us/key"] = (tree_s - tree_io_s) * 1e6 / static_cast<double>(done);
  state.counters["device_us/read"] = device_s * 1e6 / static_cast<double>(device_reads);
  state.counters["device_runq_us/read"] = device_wait_s * 1e6 / static_cast<double>(device_reads);
  state.counters["batches/call"] = static_cast<double>(tree_batches) / calls;
  state.counters["submits/call"] = static_cast<double>(tree_submits) / calls;
  state.counters["waits/call"] = static_cast<double>(tree_waits) / calls;
  // Share of the lookups' reads that went out as READ_FIXED (registered buffers).
  state.counters["fixed_frac"] =
      static_cast<double>(tree_fixed) / static_cast<double>(std::max<uint64_t>(1, tree_reads));
  if (batched && rs2.leaf_batches > rs.leaf_batches) {
    state.counters["leaves/batch"] = static_cast<double>(rs2.leaves_read - rs.leaves_read) /
                                     static_cast<double>(rs2.leaf_batches - rs.leaf_batches);
  }
  state.counters["inner_resident"] = cs2.inner_pages;
  state.counters["tree/cache"] = static_cast<double>(t.range.blocks()) / e.cache->frames();
}
BENCHMARK(BM_Cold_MultiGet64)->Arg(1)->Arg(0)->UseRealTime()->MinTime(3.0);

// A device baseline for a scan: reads about `pages` blocks the way the device reads best for
// the comparison at hand, adding the bytes it read to *bytes.
struct Baseline {
  const char* name;
  std::function<Status(uint64_t pages, uint64_t* bytes)> read;
  double seconds = 0;
  double cpu_seconds = 0;
  double runq_seconds = 0;
  uint64_t bytes = 0;
};

// A full scan of `t` with one iterator (IteratorOptions::readahead_max = Arg), from a cold cache
// (cooled with blocks of `filler`). After every 1/16 of the keys the scan pauses and each
// baseline reads as many bytes as the scan read meanwhile, so all are measured under the same
// load. ratio_vs_device = the scan's bytes/s over the first baseline's.
void ColdScan(benchmark::State& state, FileTree& t, const BlockRange& filler,
              std::vector<Baseline> baselines) {
  FileEnv& e = FileEnv::Get();
  constexpr uint64_t kSlices = 16;
  IteratorOptions o;
  o.readahead_max = static_cast<uint32_t>(state.range(0));
  uint64_t entries = 0, pages = 0, scan_batches = 0, scan_reads = 0, scan_fixed = 0;
  double scan_s = 0, scan_cpu_s = 0, scan_wait_s = 0, scan_io_s = 0, scan_all_cpu_s = 0;
  double drain_s = 0;  // waiting at the end of each slice for the read-ahead still in flight
  PageCacheStats cs{}, cs2{};
  BTreeReadStats rs{}, rs2{};
  for (auto _ : state) {
    Cool(e, filler);
    cs = e.cache->stats();
    rs = t.tree->read_stats();
    auto it = t.tree->NewIterator(o);
    uint64_t n = 0;
    for (uint64_t slice = 1; slice <= kSlices; slice++) {
      const uint64_t read_before = e.cache->stats().pages_read;
      const blockdev::DeviceStats ds = e.device->stats();
      const double w0 = ThreadRunqueueSeconds();
      const double io0 = e.timed->read_seconds();
      const auto t0 = Clock::now();
      const double c0 = ThreadCpuSeconds();
      const double p0 = ProcessCpuSeconds();
      if (slice == 1) it->SeekToFirst();
      const uint64_t stop = slice == kSlices ? ~uint64_t{0} : t.keys * slice / kSlices;
      for (; it->Valid() && n < stop; it->Next()) {
        benchmark::DoNotOptimize(it->value().data());
        n++;
      }
      // The reads the scan started are part of its time (and its pages_read): finish them
      // before the baselines run.
      const auto d0 = Clock::now();
      e.cache->WaitForReadAhead();
      drain_s += Seconds(d0);
      scan_all_cpu_s += ProcessCpuSeconds() - p0;
      scan_cpu_s += ThreadCpuSeconds() - c0;
      scan_s += Seconds(t0);
      scan_io_s += e.timed->read_seconds() - io0;
      scan_wait_s += ThreadRunqueueSeconds() - w0;
      if (!it->status().ok()) return state.SkipWithError(it->status().ToString().c_str());
      const blockdev::DeviceStats ds2 = e.device->stats();
      scan_batches += ds2.batches - ds.batches;
      scan_reads += ds2.reads - ds.reads;
      scan_fixed += ds2.fixed_ops - ds.fixed_ops;
      const uint64_t got = e.cache->stats().pages_read - read_before;
      pages += got;
      for (Baseline& b : baselines) {
        const double w1 = ThreadRunqueueSeconds();
        const auto t1 = Clock::now();
        const double c1 = ThreadCpuSeconds();
        Status s = b.read(got, &b.bytes);
        b.cpu_seconds += ThreadCpuSeconds() - c1;
        b.seconds += Seconds(t1);
        b.runq_seconds += ThreadRunqueueSeconds() - w1;
        if (!s.ok()) return state.SkipWithError(s.ToString().c_str());
      }
    }
    if (n != t.keys) return state.SkipWithError("the scan saw the wrong number of keys");
    entries += n;
    cs2 = e.cache->stats();
    rs2 = t.tree->read_stats();
  }
  const double scan_bps = static_cast<double>(pages) * 4096 / scan_s;
  state.counters["entries/s"] = static_cast<double>(entries) / scan_s;
  state.counters["scan_MiB/s"] = scan_bps / (1 << 20);
  for (size_t i = 0; i < baselines.size(); i++) {
    const Baseline& b = baselines[i];
    const double bps = static_cast<double>(b.bytes) / b.seconds;
    state.counters[std::string(b.name) + "_MiB/s"] = bps / (1 << 20);
    state.counters[i == 0 ? std::string("ratio_vs_device") : "ratio_vs_" + std::string(b.name)] =
        scan_bps / bps;
    // Its CPU time (submission and completion) and run-queue wait per 4 KiB it read.
    const double b_pages = static_cast<double>(b.bytes) / 4096;
    state.counters[std::string(b.name) + "_us/page"] = b.seconds * 1e6 / b_pages;
    state.counters[std::string(b.name) + "_cpu_us/page"] = b.cpu_seconds * 1e6 / b_pages;
    state.counters[std::string(b.name) + "_runq_us/page"] = b.runq_seconds * 1e6 / b_pages;
  }
  // Per scan (the last one): how the pages came in.
  state.counters["pages"] = static_cast<double>(cs2.pages_read - cs.pages_read);
  state.counters["cpu_us/page"] =
      scan_cpu_s * 1e6 / static_cast<double>(std::max<uint64_t>(1, pages));
  // With the read-ahead threads: what the machine's cores gave the scan.
  state.counters["all_cpu_us/page"] =
      scan_all_cpu_s * 1e6 / static_cast<double>(std::max<uint64_t>(1, pages));
  state.counters["runq_us/page"] =
      scan_wait_s * 1e6 / static_cast<double>(std::max<uint64_t>(1, pages));
  // Of the scan's time, what it spent at the end of each slice waiting for its read-ahead.
  state.counters["drain_us/page"] =
      drain_s * 1e6 / static_cast<double>(std::max<uint64_t>(1, pages));
  // Wall time per page inside the device's reads and outside them (compare the baselines' us).
  state.counters["io_us/page"] =
      scan_io_s * 1e6 / static_cast<double>(std::max<uint64_t>(1, pages));
  state.counters["non_io_us/page"] =
      (scan_s - scan_io_s) * 1e6 / static_cast<double>(std::max<uint64_t>(1, pages));
  state.counters["demand_misses"] = static_cast<double>(cs2.misses - cs.misses);
  state.counters["pages/batch"] =
      static_cast<double>(pages) / static_cast<double>(std::max<uint64_t>(1, scan_batches));
  state.counters["fixed_frac"] =
      static_cast<double>(scan_fixed) / static_cast<double>(std::max<uint64_t>(1, scan_reads));
  state.counters["prefetch_wasted"] = static_cast<double>(cs2.prefetch_wasted - cs.prefetch_wasted);
  state.counters["ra_windows"] = static_cast<double>(rs2.readahead_windows - rs.readahead_windows);
  state.counters["tree/cache"] = static_cast<double>(t.range.blocks()) / e.cache->frames();
}

// The tree loaded in key order, against the device reading the same blocks sequentially in
// 1 MiB requests, 8 at a time (the target: >= 0.7x); for information also in 4 KiB requests,
// 64 at a time (what read-ahead issues), and in 256 KiB requests one at a time (a read-ahead
// window of 64 as one request).
void BM_Cold_ScanSeq(benchmark::State& state) {
  FileEnv& e = FileEnv::Get();
  if (!e.ok) return state.SkipWithError("no file environment");
  std::vector<blockdev::ReadRequest> reqs;
  // Half the tree away from the scan, so that neither reads what the other has just read (the
  // host may cache the file).
  const uint64_t half = e.seq.range.first + e.seq.range.blocks() / 2;
  uint64_t next[3] = {half, half, half};  // where each baseline reads next
  // A baseline reading batches of `per_batch` requests of `blocks` blocks each, sequentially.
  auto sequential = [&](const char* name, uint32_t blocks, uint32_t per_batch, uint64_t* at) {
    return Baseline{name, [&, blocks, per_batch, at](uint64_t pages, uint64_t* bytes) -> Status {
                      const uint64_t batch = uint64_t{blocks} * per_batch;
                      for (uint64_t done = 0; done < pages; done += batch) {
                        VDE_RETURN_IF_ERROR(
                            DeviceSequentialBatch(e, e.seq.range, blocks, per_batch, at, &reqs));
                        *bytes += batch * 4096;
                      }
                      return Status::OK();
                    }};
  };
  std::vector<Baseline> b;
  b.push_back(sequential("seq1M", 256, 8, &next[0]));
  b.push_back(sequential("seq4K", 1, 64, &next[1]));
  b.push_back(sequential("seq256K", 64, 1, &next[2]));
  ColdScan(state, e.seq, e.rnd.range, std::move(b));
}
BENCHMARK(BM_Cold_ScanSeq)
    ->ArgName("readahead")
    ->Arg(64)
    ->Arg(256)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// The tree loaded in random order (its leaves scattered over its blocks), against the device
// reading random 4 KiB blocks of the same range N at a time, N the read-ahead window (the
// target: >= 0.7x).
void BM_Cold_ScanRandom(benchmark::State& state) {
  FileEnv& e = FileEnv::Get();
  if (!e.ok) return state.SkipWithError("no file environment");
  std::vector<blockdev::ReadRequest> reqs;
  std::mt19937_64 rng(13);
  std::vector<Baseline> b;
  // At the read-ahead depth: the window's reads (split by the ring's depth, as the scan's are).
  const auto depth = static_cast<uint32_t>(state.range(0));
  b.push_back({"rand4K", [&](uint64_t pages, uint64_t* bytes) -> Status {
                 for (uint64_t done = 0; done < pages; done += depth) {
                   VDE_RETURN_IF_ERROR(DeviceRandomBatch(e, e.rnd.range, depth, rng, &reqs));
                   *bytes += uint64_t{depth} * 4096;
                 }
                 return Status::OK();
               }});
  ColdScan(state, e.rnd, e.seq.range, std::move(b));
}
BENCHMARK(BM_Cold_ScanRandom)
    ->ArgName("readahead")
    ->Arg(64)
    ->Arg(256)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// What a page read from the device costs to check, per 4 KiB leaf of the key-order tree: the
// block checksum (VerifyBlock) and the node's structural validation (ValidateNode), each over
// 4096 pages (16 MiB, beyond the CPU caches, as pages fresh from the device are) or over the
// same page again and again (in the CPU cache).
void BM_PageCheck(benchmark::State& state) {
  FileEnv& e = FileEnv::Get();
  if (!e.ok) return state.SkipWithError("no file environment");
  const bool validate = state.range(0) != 0, cached = state.range(1) != 0;
  constexpr size_t kPages = 4096;
  static AlignedBuffer pages;
  if (pages.size() == 0) {
    pages = AlignedBuffer(kPages * 4096, 4096);
    std::vector<blockdev::ReadRequest> reqs(kPages);
    for (size_t i = 0; i < kPages; i++) {
      reqs[i].block = e.seq.range.first + e.seq.range.blocks() / 2 + i;
      reqs[i].buf = pages.data() + i * 4096;
    }
    if (!e.device->ReadBatch(reqs).ok()) return state.SkipWithError("read failed");
  }
  size_t i = 0, leaves = 0;
  for (auto _ : state) {
    const size_t k = cached ? 0 : i++ % kPages;
    const std::span<const std::byte> page(pages.data() + k * 4096, 4096);
    const uint64_t block = e.seq.range.first + e.seq.range.blocks() / 2 + k;
    Status s = validate ? ValidateNode(page, block, e.path)
                        : VerifyBlock(page, block, BlockType::kFree, e.path, nullptr);
    if (!s.ok()) return state.SkipWithError(s.ToString().c_str());
    leaves++;
  }
  state.SetItemsProcessed(static_cast<int64_t>(leaves));
}
BENCHMARK(BM_PageCheck)->ArgNames({"validate", "cached"})->ArgsProduct({{0, 1}, {0, 1}});

}  // namespace
}  // namespace vde::index

BENCHMARK_MAIN();
