// Opening a block device: the options every backend takes, and the factory that picks the best
// backend the build and the kernel offer.
//
// OpenBlockDevice() tries io_uring when the build has liburing and a run-time probe succeeds
// (ring setup plus io_uring_probe for every opcode used), otherwise the FileBlockDevice. It never
// fails because io_uring is missing, nor because the file system refuses O_DIRECT (tmpfs): it
// falls back and says so in OpenedDevice::reason / notes. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "blockdev/block_device.h"
#include "blockdev/status.h"

namespace vde::blockdev {

enum class Backend : uint8_t { kAuto, kIoUring, kFile };

std::string_view BackendName(Backend b) noexcept;  // "auto", "io_uring", "file"
// Parses "auto", "io_uring" (or "uring"), "file". InvalidArgument otherwise.
Result<Backend> ParseBackend(std::string_view s);

enum class OpenMode : uint8_t {
  kReadOnly,          // existing file; writes, flush and grow fail with ReadOnly
  kReadWrite,         // existing file
  kCreate,            // new file of create_blocks blocks; AlreadyExists if the path exists
  kCreateOrTruncate,  // new file, replacing any existing one
};

struct DeviceOptions {
  uint32_t block_size = kDefaultBlockSize;
  OpenMode mode = OpenMode::kReadWrite;
  uint64_t create_blocks = 0;  // size of a file made by kCreate / kCreateOrTruncate
  Backend backend = Backend::kAuto;
  // O_DIRECT on Linux where the file system allows it; where it refuses (EINVAL: tmpfs), the
  // device opens buffered and says so in OpenedDevice::notes.
  bool direct_io = true;

  // io_uring only.
  unsigned queue_depth = 128;    // entries per ring; larger batches are split
  unsigned max_rings = 4;        // per-thread rings; threads beyond share one ring under a lock
  bool sqpoll = false;           // IORING_SETUP_SQPOLL; refused -> falls back with a note
  bool register_buffers = true;  // honour RegisterMemory() with io_uring_register_buffers
};

struct OpenedDevice {
  std::unique_ptr<BlockDevice> device;
  Backend backend = Backend::kFile;  // what was chosen: kIoUring or kFile
  // Why this backend, e.g. "io_uring available", "io_uring disabled by kernel.io_uring_disabled",
  // "io_uring_setup: EPERM", "built without liburing", "requested by options".
  std::string reason;
  // Fallbacks within the backend, e.g. "O_DIRECT refused by the file system: buffered I/O",
  // "SQPOLL refused (EPERM): no SQPOLL".
  std::vector<std::string> notes;
};

// Opens `path` as a block device of opts.block_size-byte blocks.
// Errors: NotFound (missing file), AlreadyExists (kCreate on an existing path), InvalidArgument
// (bad block size, a file whose size is not a multiple of the block size), IOError, and, when
// opts.backend is kIoUring explicitly, NotSupported with the reason io_uring is unusable.
Result<OpenedDevice> OpenBlockDevice(const std::string& path, const DeviceOptions& opts);

// Whether io_uring can be used here: OK, or NotSupported naming the reason ("built without
// liburing", "io_uring disabled by kernel.io_uring_disabled", "io_uring_setup: EPERM",
// "opcode READ_FIXED not supported"). Cheap after the first call (the answer is cached).
Status ProbeIoUring();

// Test hook: makes ProbeIoUring() report NotSupported("disabled for testing") for the rest of
// the process, as if io_uring were unavailable at run time.
void DisableIoUringForTesting();

}  // namespace vde::blockdev
