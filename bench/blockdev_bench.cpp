// Block-device benchmark: 4 KiB random reads over a file of at least 1 GiB, O_DIRECT, one thread,
// at batch sizes 1, 8, 32 and 128, for each backend and mode:
//
//   RandRead4K/io_uring_fixed   IoUringBlockDevice, buffers registered (READ_FIXED)
//   RandRead4K/io_uring         IoUringBlockDevice, plain READ
//   RandRead4K/io_uring_sqpoll  IoUringBlockDevice, SQPOLL and registered buffers (skipped with a
//                               reason where the kernel refuses SQPOLL)
//   RandRead4K/file             FileBlockDevice: a batch is that many preads, one after another
//
// Counters: items_per_second is IOPS; enters_per_1k_io is the device's `submissions` plus `waits`
// (io_uring_enter calls, or syscalls for the file backend) per 1000 reads; fixed_ops_frac is the
// share of reads that went through registered buffers. All rates use wall-clock time (UseRealTime):
// with SQPOLL the submitting thread's CPU time says nothing about throughput.
//
// The file comes from --vde_bench_file=PATH (else $VDE_BENCH_FILE, else ./vde_blockdev_bench.dat)
// and must live on a disk file system, not tmpfs. An existing file at least
// --vde_bench_file_mib (default 1024, or $VDE_BENCH_FILE_MIB) large is read as it is; a missing one
// is written once with pseudo-random data through O_DIRECT and deleted at exit unless
// --vde_bench_keep_file is given. --vde_bench_prepare_only writes the file (if missing) and exits;
// bench/fio_compare.sh uses it so that fio and this benchmark read the same bytes.
//
// Ratios against fio measured in the same run are the numbers to quote: see bench/fio_compare.sh
// and docs/PERFORMANCE.md.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "blockdev/aligned_buffer.h"
#include "blockdev/block_device.h"
#include "blockdev/file_block_device.h"
#include "blockdev/open_block_device.h"
#include "blockdev/status.h"
#ifdef VDE_HAVE_IO_URING
#include "blockdev/io_uring_block_device.h"
#endif

namespace vde::blockdev {
namespace {

constexpr uint32_t kBlockSize = 4096;
constexpr uint32_t kMaxBatch = 128;
// Fixed ring depth, at least the largest batch so that no batch is split.
constexpr unsigned kQueueDepth = 128;
constexpr uint64_t kTmpfsMagic = 0x01021994;

// Where the benchmark file is and whether this process made it. Set once in main() before any
// benchmark runs; read-only afterwards.
struct BenchFile {
  std::string path;
  uint64_t min_bytes = 0;
  bool keep = false;
  bool created = false;
};

BenchFile& TheFile() {
  static BenchFile f;
  return f;
}

// splitmix64: cheap, and good enough to spread reads uniformly over the file.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Close enough to uniform in [0, n): the modulo bias is below 1e-13 for a 1 GiB file.
  uint64_t Below(uint64_t n) { return Next() % n; }

 private:
  uint64_t s_;
};

// Makes sure TheFile().path holds at least min_bytes of real data. A missing file is written with
// large O_DIRECT writes of pseudo-random bytes (so neither the page cache nor a deduplicating
// host serves the reads) and fdatasync'ed. An existing smaller file is an error: it may not be
// ours to overwrite.
Status PrepareFile(BenchFile& f) {
  std::string dir = f.path.substr(0, f.path.find_last_of('/') + 1);
  struct statfs sfs {};
  if (::statfs(dir.empty() ? "." : dir.c_str(), &sfs) != 0) {
    return Status::FromErrno(errno, "statfs of the directory of " + f.path);
  }
  if (static_cast<uint64_t>(sfs.f_type) == kTmpfsMagic) {
    return Status::InvalidArgument(f.path + " is on tmpfs: the benchmark must read a disk");
  }
  struct stat st {};
  if (::stat(f.path.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(f.path + " is not a regular file");
    if (static_cast<uint64_t>(st.st_size) < f.min_bytes) {
      return Status::InvalidArgument(f.path + " exists and holds " + std::to_string(st.st_size) +
                                     " bytes, fewer than the " + std::to_string(f.min_bytes) +
                                     " asked for: delete it or ask for less");
    }
    return Status::OK();
  }
  if (errno != ENOENT) return Status::FromErrno(errno, "stat " + f.path);

  int fd = ::open(f.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_DIRECT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FromErrno(errno, "create " + f.path + " with O_DIRECT");
  f.created = true;
  constexpr size_t kChunk = 1 << 20;
  AlignedBuffer chunk(kChunk, kBlockSize);
  Rng rng(0x5eedf11e);
  Status s;
  for (uint64_t off = 0; off < f.min_bytes && s.ok(); off += kChunk) {
    auto* words = reinterpret_cast<uint64_t*>(chunk.data());
    for (size_t i = 0; i < kChunk / sizeof(uint64_t); ++i) words[i] = rng.Next();
    size_t len = static_cast<size_t>(std::min<uint64_t>(kChunk, f.min_bytes - off));
    ssize_t n = ::pwrite(fd, chunk.data(), len, static_cast<off_t>(off));
    if (n < 0) {
      s = Status::FromErrno(errno, "write " + f.path + " at " + std::to_string(off));
    } else if (static_cast<size_t>(n) != len) {
      s = Status::IOError("short write to " + f.path + " at " + std::to_string(off));
    }
  }
  if (s.ok() && ::fdatasync(fd) != 0) s = Status::FromErrno(errno, "fdatasync " + f.path);
  ::close(fd);
  return s;
}

enum class Mode { kIoUringFixed, kIoUring, kIoUringSqpoll, kFile };

// An open device ready for the benchmark, or the reason it cannot run.
struct Prepared {
  std::unique_ptr<BlockDevice> device;
  std::string skip_reason;
};

std::string JoinNotes(const std::vector<std::string>& notes) {
  std::string out;
  for (const auto& n : notes) out += (out.empty() ? "" : "; ") + n;
  return out;
}

Prepared OpenFor(Mode mode, std::span<std::byte> buffers) {
  const BenchFile& f = TheFile();
  DeviceOptions opts;
  opts.block_size = kBlockSize;
  opts.mode = OpenMode::kReadOnly;
  opts.direct_io = true;
  opts.queue_depth = kQueueDepth;
  opts.max_rings = 1;
  opts.sqpoll = mode == Mode::kIoUringSqpoll;
  opts.register_buffers = mode != Mode::kIoUring;
  Prepared p;
  if (mode == Mode::kFile) {
    opts.backend = Backend::kFile;
    auto r = FileBlockDevice::Open(f.path, opts);
    if (!r.has_value()) return {nullptr, r.error().ToString()};
    if (!(*r)->direct()) return {nullptr, "no O_DIRECT: " + JoinNotes((*r)->notes())};
    p.device = std::move(*r);
    return p;
  }
#ifdef VDE_HAVE_IO_URING
  opts.backend = Backend::kIoUring;
  auto r = IoUringBlockDevice::Open(f.path, opts);
  if (!r.has_value()) return {nullptr, r.error().ToString()};
  auto& dev = *r;
  if (!dev->notes().empty() && mode != Mode::kIoUringSqpoll) {
    // A fallback (buffered I/O, no fixed buffers) would measure something else.
    return {nullptr, "device fell back: " + JoinNotes(dev->notes())};
  }
  if (mode == Mode::kIoUringSqpoll && !dev->sqpoll_active()) {
    return {nullptr, "SQPOLL not active: " + JoinNotes(dev->notes())};
  }
  if (mode != Mode::kIoUring) {
    Status s = dev->RegisterMemory(buffers);
    if (!s.ok()) return {nullptr, "RegisterMemory: " + s.ToString()};
    if (!dev->buffers_registered()) {
      return {nullptr, "buffers not registered: " + JoinNotes(dev->notes())};
    }
  }
  p.device = std::move(dev);
  return p;
#else
  (void)buffers;
  return {nullptr, "built without liburing"};
#endif
}

void BM_RandomRead(benchmark::State& state, Mode mode) {
  const auto batch = static_cast<uint32_t>(state.range(0));
  AlignedBuffer buffers(size_t{kMaxBatch} * kBlockSize, kBlockSize);
  Prepared p = OpenFor(mode, buffers.span());
  if (p.device == nullptr) {
    state.SkipWithError(p.skip_reason.c_str());
    return;
  }
  BlockDevice& dev = *p.device;
  const uint64_t blocks = dev.block_count();
  std::vector<ReadRequest> reqs(batch);
  for (uint32_t i = 0; i < batch; ++i) reqs[i].buf = buffers.data() + size_t{i} * kBlockSize;
  Rng rng(0x0b10c + batch);

  const DeviceStats before = dev.stats();
  for (auto _ : state) {
    for (ReadRequest& r : reqs) r.block = rng.Below(blocks);
    Status s = dev.ReadBatch(reqs);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  const DeviceStats after = dev.stats();

  const auto reads = static_cast<double>(after.reads - before.reads);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * batch);
  state.counters["enters_per_1k_io"] =
      reads > 0 ? 1000.0 *
                      static_cast<double>(after.submissions + after.waits - before.submissions -
                                          before.waits) /
                      reads
                : 0;
  state.counters["fixed_ops_frac"] =
      reads > 0 ? static_cast<double>(after.fixed_ops - before.fixed_ops) / reads : 0;
  state.SetLabel(dev.Describe());
}

// Sequential windows of 256 adjacent 4 KiB blocks (what scan read-ahead reads, merged by the
// io_uring device into 256 KiB READVs), each block landing in its own 4 KiB slot of a 32 MiB
// registered region (a page cache's frames): in adjacent slots (`scattered:0`), or in slots
// spread over the whole region (`scattered:1`, windows take successive slots of a random
// permutation, reshuffled once used up). The two differ only in where the bytes land in memory.
void BM_ReadWindowIntoSlots(benchmark::State& state) {
  constexpr uint32_t kWindow = 256;
  constexpr size_t kSlots = (size_t{32} << 20) / kBlockSize;
  const bool scattered = state.range(0) != 0;
  AlignedBuffer region(kSlots * kBlockSize, kBlockSize);
  Prepared p = OpenFor(Mode::kIoUringFixed, region.span());
  if (p.device == nullptr) {
    state.SkipWithError(p.skip_reason.c_str());
    return;
  }
  BlockDevice& dev = *p.device;
  const uint64_t blocks = dev.block_count();
  std::vector<uint32_t> slots(kSlots);
  for (uint32_t i = 0; i < kSlots; i++) slots[i] = i;
  std::vector<ReadRequest> reqs(kWindow);
  Rng rng(0x5ca7);
  uint64_t next = 0;
  size_t used = kSlots;  // slots of the current permutation handed out
  for (auto _ : state) {
    if (next + kWindow > blocks) next = 0;
    if (scattered && used + kWindow > kSlots) {
      for (size_t i = kSlots - 1; i > 0; i--) std::swap(slots[i], slots[rng.Below(i + 1)]);
      used = 0;
    }
    for (uint32_t i = 0; i < kWindow; i++) {
      const size_t slot = scattered ? slots[used + i] : (next + i) % kSlots;
      reqs[i].block = next + i;
      reqs[i].buf = region.data() + slot * kBlockSize;
    }
    used += kWindow;
    next += kWindow;
    Status s = dev.ReadBatch(reqs);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kWindow * kBlockSize);
  state.SetLabel(dev.Describe());
}

void RegisterAll() {
  benchmark::RegisterBenchmark("ReadWindowIntoSlots", BM_ReadWindowIntoSlots)
      ->ArgName("scattered")
      ->Arg(0)
      ->Arg(1)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  struct Entry {
    const char* name;
    Mode mode;
  };
  static constexpr Entry kEntries[] = {
      {"RandRead4K/io_uring_fixed", Mode::kIoUringFixed},
      {"RandRead4K/io_uring", Mode::kIoUring},
      {"RandRead4K/io_uring_sqpoll", Mode::kIoUringSqpoll},
      {"RandRead4K/file", Mode::kFile},
  };
  for (const Entry& e : kEntries) {
    benchmark::RegisterBenchmark(e.name, BM_RandomRead, e.mode)
        ->ArgName("batch")
        ->Arg(1)
        ->Arg(8)
        ->Arg(32)
        ->Arg(kMaxBatch)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
}

// Removes our --vde_bench_* flags from argv (Google Benchmark rejects flags it does not know).
// Returns false, after printing why, on a malformed flag.
bool ParseOwnFlags(int* argc, char** argv, BenchFile* f, bool* prepare_only) {
  const char* env_path = std::getenv("VDE_BENCH_FILE");
  const char* env_mib = std::getenv("VDE_BENCH_FILE_MIB");
  f->path = env_path != nullptr && *env_path != '\0' ? env_path : "vde_blockdev_bench.dat";
  std::string mib = env_mib != nullptr && *env_mib != '\0' ? env_mib : "1024";
  int out = 1;
  for (int i = 1; i < *argc; ++i) {
    std::string_view a = argv[i];
    if (a.starts_with("--vde_bench_file=")) {
      f->path = a.substr(a.find('=') + 1);
    } else if (a.starts_with("--vde_bench_file_mib=")) {
      mib = a.substr(a.find('=') + 1);
    } else if (a == "--vde_bench_keep_file") {
      f->keep = true;
    } else if (a == "--vde_bench_prepare_only") {
      *prepare_only = true;
    } else {
      argv[out++] = argv[i];
    }
  }
  *argc = out;
  char* end = nullptr;
  unsigned long long n = std::strtoull(mib.c_str(), &end, 10);
  if (end == mib.c_str() || *end != '\0' || n == 0) {
    std::fprintf(stderr, "blockdev_bench: bad file size '%s' MiB\n", mib.c_str());
    return false;
  }
  f->min_bytes = static_cast<uint64_t>(n) << 20;
  return !f->path.empty();
}

}  // namespace
}  // namespace vde::blockdev

int main(int argc, char** argv) {
  using namespace vde::blockdev;
  BenchFile& f = TheFile();
  bool prepare_only = false;
  if (!ParseOwnFlags(&argc, argv, &f, &prepare_only)) return 2;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;

  vde::Status s = PrepareFile(f);
  if (!s.ok()) {
    std::fprintf(stderr, "blockdev_bench: %s\n", s.ToString().c_str());
    if (f.created) ::unlink(f.path.c_str());
    return 1;
  }
  if (prepare_only) return 0;  // the caller keeps the file it asked for

  RegisterAll();
  benchmark::AddCustomContext("vde_bench_file", f.path);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (f.created && !f.keep) ::unlink(f.path.c_str());
  return 0;
}
