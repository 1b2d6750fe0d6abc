// Allocator and Disk micro-benchmarks: single-block and extent allocation rates, the checkpoint
// of a heavily changed map, and the time to create and to open a thin 100 GiB growable disk.
// Disk files go to $TMPDIR (default /tmp), or to --dir=<path> given before the benchmark flags.
#include <benchmark/benchmark.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <mutex>
#include <unordered_map>

#include "blockdev/block_device.h"
#include "vde/allocator.h"
#include "vde/disk.h"

namespace {

using vde::Allocator;
using vde::AllocatorGeometry;

std::string g_dir;

// Reads zeros, keeps written blocks in a map: a device as large as wanted for the allocator.
class SparseDevice final : public vde::blockdev::BlockDevice {
 public:
  SparseDevice(uint32_t bs, uint64_t n) : BlockDevice("<sparse>", bs, n, 1, false) {}
  std::string Describe() const override { return "sparse memory"; }
  vde::Status ReadBatch(std::span<vde::blockdev::ReadRequest> reqs) override {
    std::lock_guard lock(mu_);
    for (auto& r : reqs) {
      for (uint32_t i = 0; i < r.count; i++) {
        auto it = blocks_.find(r.block + i);
        std::byte* dst = r.buf + size_t{i} * block_size();
        if (it == blocks_.end()) {
          std::memset(dst, 0, block_size());
        } else {
          std::memcpy(dst, it->second.data(), block_size());
        }
      }
      r.status = vde::Status::OK();
    }
    return vde::Status::OK();
  }
  vde::Status WriteBatch(std::span<vde::blockdev::WriteRequest> reqs) override {
    std::lock_guard lock(mu_);
    for (auto& w : reqs) {
      for (uint32_t i = 0; i < w.count; i++) {
        const std::byte* src = w.buf + size_t{i} * block_size();
        blocks_[w.block + i].assign(src, src + block_size());
      }
      w.status = vde::Status::OK();
    }
    return vde::Status::OK();
  }
  vde::Status Flush() override { return vde::Status::OK(); }
  vde::Status Grow(uint64_t n) override {
    if (n > block_count()) set_block_count(n);
    return vde::Status::OK();
  }

 private:
  std::mutex mu_;
  std::unordered_map<uint64_t, std::vector<std::byte>> blocks_;
};

struct Fresh {
  std::unique_ptr<SparseDevice> dev;
  std::unique_ptr<Allocator> alloc;
};

Fresh NewAllocator(uint64_t blocks) {
  Fresh f;
  f.dev = std::make_unique<SparseDevice>(4096, blocks);
  AllocatorGeometry geo{4096, blocks, false, 0, 0, false};
  auto a = Allocator::CreateEmpty(f.dev.get(), geo);
  if (!a.ok()) std::abort();
  f.alloc = std::move(*a);
  return f;
}

// 1,000,000 single-block allocations from an empty 8 GiB (2M-block) disk.
void BM_AllocateSingleBlocks(benchmark::State& state) {
  const int64_t n = 1000000;
  for (auto _ : state) {
    state.PauseTiming();
    Fresh f = NewAllocator(2 << 20);
    state.ResumeTiming();
    for (int64_t i = 0; i < n; i++) {
      auto b = f.alloc->AllocateBlock();
      if (!b.ok()) state.SkipWithError("allocation failed");
      benchmark::DoNotOptimize(b);
    }
    state.PauseTiming();
    f = {};
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_AllocateSingleBlocks)->Unit(benchmark::kMillisecond);

// 100,000 allocations of 16-block extents.
void BM_AllocateExtents16(benchmark::State& state) {
  const int64_t n = 100000;
  for (auto _ : state) {
    state.PauseTiming();
    Fresh f = NewAllocator(2 << 20);
    state.ResumeTiming();
    for (int64_t i = 0; i < n; i++) {
      auto e = f.alloc->Allocate(16);
      if (!e.ok()) state.SkipWithError("allocation failed");
      benchmark::DoNotOptimize(e);
    }
    state.PauseTiming();
    f = {};
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_AllocateExtents16)->Unit(benchmark::kMillisecond);

// Single-block allocation from a fragmented disk: every other block of the first 1M is free
// (500,000 one-block free extents), so each allocation is a best-fit search in a big tree.
void BM_AllocateFromFragmented(benchmark::State& state) {
  const int64_t n = 400000;
  for (auto _ : state) {
    state.PauseTiming();
    Fresh f = NewAllocator(2 << 20);
    auto big = f.alloc->Allocate(1 << 20);
    for (uint64_t b = big->start; b < big->end(); b += 2) {
      if (!f.alloc->FreeBlock(b).ok()) state.SkipWithError("free failed");
    }
    auto cp = f.alloc->PrepareCheckpoint(2);
    if (!cp.ok() || !f.alloc->WriteCheckpoint(*cp).ok()) state.SkipWithError("checkpoint");
    f.alloc->CommitCheckpoint(std::move(*cp));
    state.ResumeTiming();
    for (int64_t i = 0; i < n; i++) {
      auto b = f.alloc->AllocateBlock();
      benchmark::DoNotOptimize(b);
    }
    state.PauseTiming();
    state.counters["free_extents_at_start"] = 524288;
    f = {};
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_AllocateFromFragmented)->Unit(benchmark::kMillisecond);

// Freeing 100,000 scattered blocks then a checkpoint that rewrites the changed map blocks.
void BM_FreeScatteredAndCheckpoint(benchmark::State& state) {
  const int64_t n = 100000;
  for (auto _ : state) {
    state.PauseTiming();
    Fresh f = NewAllocator(2 << 20);
    auto big = f.alloc->Allocate(2000000);
    state.ResumeTiming();
    for (int64_t i = 0; i < n; i++) {
      if (!f.alloc->FreeBlock(big->start + uint64_t(i) * 19).ok()) state.SkipWithError("free");
    }
    auto cp = f.alloc->PrepareCheckpoint(2);
    if (!cp.ok() || !f.alloc->WriteCheckpoint(*cp).ok()) state.SkipWithError("checkpoint");
    state.counters["map_blocks_written"] = double(cp->writes.size());
    f.alloc->CommitCheckpoint(std::move(*cp));
    state.PauseTiming();
    f = {};
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_FreeScatteredAndCheckpoint)->Unit(benchmark::kMillisecond);

std::string DiskPath(const char* name) {
  std::filesystem::path dir =
      g_dir.empty() ? std::filesystem::temp_directory_path() : std::filesystem::path(g_dir);
  return (dir / (std::string("vde-bench-") + std::to_string(::getpid()) + "-" + name)).string();
}

vde::CreateOptions Thin100GiB() {
  vde::CreateOptions o;
  o.growable = true;
  o.max_size_bytes = 100ull << 30;
  o.growth_step_bytes = 64ull << 20;
  o.force = true;
  return o;
}

// Creating a thin 100 GiB growable disk (64 MiB file, a few metadata blocks written).
void BM_CreateThin100GiB(benchmark::State& state) {
  std::string p = DiskPath("create.vdisk");
  uint64_t host = 0;
  for (auto _ : state) {
    auto d = vde::Disk::Create(p, Thin100GiB());
    if (!d.ok()) {
      state.SkipWithError(d.status().ToString().c_str());
      break;
    }
    if (!(*d)->Close().ok()) state.SkipWithError("close");
    state.PauseTiming();
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0) host = uint64_t(st.st_blocks) * 512;
    ::unlink(p.c_str());
    state.ResumeTiming();
  }
  state.counters["host_MiB"] = double(host) / (1 << 20);
}
BENCHMARK(BM_CreateThin100GiB)->Unit(benchmark::kMillisecond);

// Opening (and closing) a thin 100 GiB disk, with or without 1 GiB of it allocated.
void BM_OpenThin100GiB(benchmark::State& state) {
  std::string p = DiskPath("open.vdisk");
  {
    auto d = vde::Disk::Create(p, Thin100GiB());
    if (!d.ok()) {
      state.SkipWithError(d.status().ToString().c_str());
      return;
    }
    for (int64_t i = 0; i < state.range(0); i++) {
      if (!(*d)->allocator().Allocate(1024).ok()) state.SkipWithError("allocate");
    }
    if (!(*d)->Close().ok()) state.SkipWithError("close");
  }
  for (auto _ : state) {
    auto d = vde::Disk::Open(p, {});
    if (!d.ok()) {
      state.SkipWithError(d.status().ToString().c_str());
      break;
    }
    if (!(*d)->Close().ok()) state.SkipWithError("close");
  }
  ::unlink(p.c_str());
}
BENCHMARK(BM_OpenThin100GiB)->Arg(0)->Arg(256)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; i++) {
    if (std::strncmp(argv[i], "--dir=", 6) == 0) {
      g_dir = argv[i] + 6;
      for (int j = i; j + 1 < argc; j++) argv[j] = argv[j + 1];
      argc--;
      break;
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
