#include "blockdev/open_block_device.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "blockdev/file_block_device.h"

#ifdef VDE_HAVE_IO_URING
#include "blockdev/io_uring_block_device.h"
#include "blockdev/io_uring_ring.h"
#endif

namespace vde::blockdev {

namespace {

std::atomic<bool> io_uring_disabled_for_testing{false};

Result<OpenedDevice> OpenFile(const std::string& path, const DeviceOptions& opts,
                              std::string reason) {
  VDE_ASSIGN_OR_RETURN(std::unique_ptr<FileBlockDevice> dev, FileBlockDevice::Open(path, opts));
  OpenedDevice out;
  out.notes = dev->notes();
  out.device = std::move(dev);
  out.backend = Backend::kFile;
  out.reason = std::move(reason);
  return out;
}

}  // namespace

std::string_view BackendName(Backend b) noexcept {
  switch (b) {
    case Backend::kAuto:
      return "auto";
    case Backend::kIoUring:
      return "io_uring";
    case Backend::kFile:
      return "file";
  }
  return "unknown";
}

Result<Backend> ParseBackend(std::string_view s) {
  if (s == "auto") return Backend::kAuto;
  if (s == "io_uring" || s == "uring") return Backend::kIoUring;
  if (s == "file") return Backend::kFile;
  return Status::InvalidArgument("unknown block device backend \"" + std::string(s) +
                                 "\" (expected auto, io_uring or file)");
}

Status ProbeIoUring() {
  if (io_uring_disabled_for_testing.load(std::memory_order_acquire)) {
    return Status::NotSupported("io_uring disabled for testing");
  }
#ifdef VDE_HAVE_IO_URING
  // The kernel's answer does not change while the process runs; ask once.
  static std::once_flag once;
  static Status cached;
  std::call_once(once, [] { cached = uring::ProbeKernel(); });
  return cached;
#else
  return Status::NotSupported("built without liburing");
#endif
}

void DisableIoUringForTesting() {
  io_uring_disabled_for_testing.store(true, std::memory_order_release);
}

Result<OpenedDevice> OpenBlockDevice(const std::string& path, const DeviceOptions& opts) {
  if (opts.backend == Backend::kFile) return OpenFile(path, opts, "requested by options");

  Status probe = ProbeIoUring();
  if (!probe.ok()) {
    if (opts.backend == Backend::kIoUring) {
      return Status::NotSupported("io_uring requested for " + path +
                                  " but unusable: " + std::string(probe.message()));
    }
    return OpenFile(path, opts, std::string(probe.message()));
  }

#ifdef VDE_HAVE_IO_URING
  Result<std::unique_ptr<IoUringBlockDevice>> dev = IoUringBlockDevice::Open(path, opts);
  if (!dev.has_value()) {
    // NotSupported comes only from ring setup, before the file is touched: fall back. Any
    // other error (NotFound, AlreadyExists, InvalidArgument...) is the caller's to see.
    if (opts.backend == Backend::kAuto && dev.error().IsNotSupported()) {
      return OpenFile(path, opts, std::string(dev.error().message()));
    }
    return dev.error();
  }
  OpenedDevice out;
  out.notes = (*dev)->notes();
  out.device = std::move(*dev);
  out.backend = Backend::kIoUring;
  out.reason = "io_uring available";
  return out;
#else
  // Unreachable: without liburing the probe always fails.
  return OpenFile(path, opts, "built without liburing");
#endif
}

}  // namespace vde::blockdev
