// Runs the BlockDevice conformance suite against every implementation and mode that can be
// opened directly: MemoryBlockDevice, FileBlockDevice buffered and O_DIRECT, and (when built
// with liburing) IoUringBlockDevice with and without registered buffers, with per-thread rings
// or one shared ring, and with SQPOLL; and whatever OpenBlockDevice() picks with default options.
// The factory's fallback is run by block_device_conformance_fallback_test.cpp, in a process of
// its own.
#include <gtest/gtest.h>

#include <memory>
#include <span>
#include <string>

#include "blockdev/file_block_device.h"
#include "blockdev/memory_block_device.h"
#include "tests/blockdev/block_device_conformance.h"

#if defined(VDE_HAVE_IO_URING) && __has_include("blockdev/io_uring_block_device.h")
#include "blockdev/io_uring_block_device.h"
#define VDE_TEST_IO_URING 1
#endif

namespace vde::blockdev::conformance {
namespace {

// A memory device that insists on 512-byte alignment, so the alignment checks are exercised
// without a file system. Every open makes a fresh device: it has no path to reopen.
struct MemoryConfig {
  static constexpr const char* kName = "Memory";
  static constexpr bool kPersistent = false;
  static void Adjust(DeviceOptions& /*opts*/) {}
  static Result<OpenedForTest> Open(const std::string& /*path*/, const DeviceOptions& opts,
                                    std::span<std::byte> arena) {
    VDE_ASSIGN_OR_RETURN(auto dev,
                         MemoryBlockDevice::Create(opts.block_size, opts.create_blocks, 512,
                                                   opts.mode == OpenMode::kReadOnly));
    VDE_RETURN_IF_ERROR(dev->RegisterMemory(arena));  // the default: does nothing, OK
    OpenedForTest out;
    out.device = std::move(dev);
    return out;
  }
};

template <bool kDirect>
struct FileConfig {
  static constexpr const char* kName = kDirect ? "FileDirect" : "FileBuffered";
  static constexpr bool kPersistent = true;
  static void Adjust(DeviceOptions& opts) {
    opts.backend = Backend::kFile;
    opts.direct_io = kDirect;
  }
  static Result<OpenedForTest> Open(const std::string& path, const DeviceOptions& opts,
                                    std::span<std::byte> arena) {
    VDE_ASSIGN_OR_RETURN(auto dev, FileBlockDevice::Open(path, opts));
    VDE_RETURN_IF_ERROR(dev->RegisterMemory(arena));
    OpenedForTest out;
    out.notes = dev->notes();
    out.device = std::move(dev);
    return out;
  }
};

#ifdef VDE_TEST_IO_URING
// io_uring in one mode. The queue depth is kept small so that batches overflow it.
template <bool kRegistered, unsigned kRings, bool kSqpoll>
struct IoUringConfig {
  static constexpr const char* kName = kSqpoll       ? "IoUringSqpoll"
                                       : kRings == 0 ? "IoUringSharedRing"
                                       : kRegistered ? "IoUringRegistered"
                                                     : "IoUringUnregistered";
  static constexpr bool kPersistent = true;
  static void Adjust(DeviceOptions& opts) {
    opts.backend = Backend::kIoUring;
    opts.direct_io = true;
    opts.queue_depth = 16;
    opts.max_rings = kRings;
    opts.sqpoll = kSqpoll;
    opts.register_buffers = kRegistered;
  }
  static Result<OpenedForTest> Open(const std::string& path, const DeviceOptions& opts,
                                    std::span<std::byte> arena) {
    auto r = IoUringBlockDevice::Open(path, opts);
    OpenedForTest out;
    if (!r.ok()) {
      if (!r.error().IsNotSupported()) return r.error();
      out.skip = "io_uring unavailable: " + r.error().ToString();
      return out;
    }
    std::unique_ptr<IoUringBlockDevice> dev = std::move(*r);
    if (kSqpoll && !dev->sqpoll_active()) {
      out.skip = "SQPOLL refused: " + JoinNotes(dev->notes());
      return out;
    }
    if (kRegistered) {
      VDE_RETURN_IF_ERROR(dev->RegisterMemory(arena));
      if (!dev->buffers_registered()) {
        out.skip = "buffer registration refused: " + JoinNotes(dev->notes());
        return out;
      }
    }
    out.notes = dev->notes();
    out.device = std::move(dev);
    return out;
  }
};
#endif

const DeviceConfig kConfigs[] = {
    ConfigOf<MemoryConfig>(),
    ConfigOf<FileConfig<false>>(),
    ConfigOf<FileConfig<true>>(),
    ConfigOf<FactoryConfig<Backend::kAuto, false>>(),
#ifdef VDE_TEST_IO_URING
    ConfigOf<IoUringConfig<true, 4, false>>(),
    ConfigOf<IoUringConfig<false, 4, false>>(),
    ConfigOf<IoUringConfig<true, 0, false>>(),
    ConfigOf<IoUringConfig<true, 4, true>>(),
#endif
};

}  // namespace

VDE_INSTANTIATE_CONFORMANCE(::testing::ValuesIn(kConfigs));

}  // namespace vde::blockdev::conformance
