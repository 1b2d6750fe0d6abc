// The framework of the BlockDevice conformance suite: the configurations it runs against, the
// fixture every test runs in, and helpers to make and check block contents. The tests are
// value-parameterised by configuration: block_device_conformance_io.cpp (the I/O contract),
// block_device_conformance_threads.cpp (concurrency) and block_device_conformance_errors.cpp
// (the error contract), compiled once into an object library; a test executable links it and
// instantiates the three suites for its configurations with VDE_INSTANTIATE_CONFORMANCE.
// (Value- rather than type-parameterised: as typed tests every body was compiled once per
// configuration, and the one translation unit took minutes and most of a gigabyte to build.)
//
// A configuration is written as a factory struct with
//   static constexpr const char* kName;   // the name in test names: "FileDirect"
//   static constexpr bool kPersistent;    // backed by a file at `path`: data survives reopening
//   static void Adjust(DeviceOptions&);   // backend options: direct_io, queue_depth, ...
//   static Result<OpenedForTest> Open(const std::string& path, const DeviceOptions& opts,
//                                     std::span<std::byte> arena);
// and passed to the suites as ConfigOf<Factory>(). Open opens (or creates) the device as opts
// says, registers `arena` with RegisterMemory when the configuration is about registered
// buffers, and sets OpenedForTest::skip when this machine cannot run the configuration (no
// io_uring, SQPOLL refused): the test is then skipped with that reason. A non-persistent
// configuration (memory) creates a fresh device of opts.create_blocks blocks for every open,
// read-only when opts.mode is kReadOnly.
//
// Thread safety: a fixture belongs to its test's main thread; Arena::Carve is not thread-safe,
// so tests carve every buffer before starting threads.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <ostream>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "blockdev/aligned_buffer.h"
#include "blockdev/block_device.h"
#include "blockdev/open_block_device.h"
#include "blockdev/status.h"
#include "tests/test_util.h"

namespace vde::blockdev::conformance {

struct OpenedForTest {
  std::unique_ptr<BlockDevice> device;  // null when `skip` is set
  std::vector<std::string> notes;       // the backend's fallback notes, printed by the fixture
  std::string skip;                     // non-empty: this machine cannot run the configuration
};

inline std::string JoinNotes(const std::vector<std::string>& notes) {
  if (notes.empty()) return "(no notes)";
  std::string s;
  for (const auto& n : notes) s += (s.empty() ? "" : "; ") + n;
  return s;
}

// A configuration as a value: the factory struct's name, flag and functions.
struct DeviceConfig {
  const char* name;
  bool persistent;
  void (*adjust)(DeviceOptions& opts);
  Result<OpenedForTest> (*open)(const std::string& path, const DeviceOptions& opts,
                                std::span<std::byte> arena);
};

template <typename Factory>
DeviceConfig ConfigOf() {
  return {Factory::kName, Factory::kPersistent, &Factory::Adjust, &Factory::Open};
}

inline void PrintTo(const DeviceConfig& c, std::ostream* os) {
  *os << c.name;
}

// The gtest name generator: tests are named .../<test>/<configuration>.
struct ConfigName {
  std::string operator()(const ::testing::TestParamInfo<DeviceConfig>& info) const {
    return info.param.name;
  }
};

// Test buffers come from one aligned arena so that configurations with registered buffers can
// hand it to RegisterMemory once per device. A bump allocator: Reset() reuses it from the start.
class Arena {
 public:
  static constexpr size_t kAlign = 4096;  // at least what any device requires

  explicit Arena(size_t bytes) : buf_(bytes, kAlign) {}

  std::span<std::byte> region() { return buf_.span(); }

  // `bytes` bytes aligned to kAlign. Running out is a bug in the test, reported by exception
  // (which gtest turns into a failure of the test).
  std::span<std::byte> Carve(size_t bytes) {
    size_t at = (used_ + kAlign - 1) & ~(kAlign - 1);
    if (at + bytes > buf_.size()) {
      throw std::length_error("test arena exhausted: " + std::to_string(bytes) + " bytes wanted, " +
                              std::to_string(buf_.size() - used_) + " left");
    }
    used_ = at + bytes;
    return {buf_.data() + at, bytes};
  }
  void Reset() { used_ = 0; }

 private:
  AlignedBuffer buf_;
  size_t used_ = 0;
};

inline void FillRandom(std::span<std::byte> b, std::mt19937_64& rng) {
  size_t i = 0;
  for (; i + 8 <= b.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(b.data() + i, &v, 8);
  }
  for (; i < b.size(); ++i) b[i] = static_cast<std::byte>(rng());
}

// Compares `got` with `want`, blocks of `bs` bytes numbered from `first_block`, and names the
// first block and byte that differ.
inline ::testing::AssertionResult SameBlocks(std::span<const std::byte> got,
                                             std::span<const std::byte> want, uint64_t first_block,
                                             uint32_t bs) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << "size " << got.size() << " != expected " << want.size();
  }
  if (std::memcmp(got.data(), want.data(), got.size()) == 0) {
    return ::testing::AssertionSuccess();
  }
  size_t i = 0;
  while (got[i] == want[i]) ++i;
  return ::testing::AssertionFailure()
         << "block " << first_block + i / bs << " differs at byte " << i % bs << ": got 0x"
         << std::hex << static_cast<int>(got[i]) << ", expected 0x" << static_cast<int>(want[i])
         << std::dec;
}

inline bool AllZero(std::span<const std::byte> b) {
  for (std::byte x : b) {
    if (x != std::byte{0}) return false;
  }
  return true;
}

// What the device should hold: a plain copy of every block.
class Model {
 public:
  Model(uint32_t bs, uint64_t blocks) : bs_(bs), bytes_(blocks * bs) {}

  void Write(uint64_t block, std::span<const std::byte> data) {
    std::memcpy(bytes_.data() + block * bs_, data.data(), data.size());
  }
  std::span<const std::byte> Blocks(uint64_t block, uint64_t count) const {
    return {bytes_.data() + block * bs_, count * bs_};
  }
  void Grow(uint64_t blocks) { bytes_.resize(blocks * bs_); }
  uint64_t block_count() const { return bytes_.size() / bs_; }

 private:
  uint32_t bs_;
  std::vector<std::byte> bytes_;
};

// A message for EXPECT_*: the status, its code and text.
inline std::string Show(const Status& s) {
  return s.ToString();
}

// The device OpenBlockDevice() returns for opts.backend = kBackend, with the default options
// otherwise (registered buffers: the arena is registered). With kMustBeFile, an open that picks
// anything but the file backend fails the test.
template <Backend kBackend, bool kMustBeFile>
struct FactoryConfig {
  static constexpr const char* kName = kBackend == Backend::kFile ? "FactoryFile"
                                       : kMustBeFile              ? "FactoryAutoFallback"
                                                                  : "FactoryAuto";
  static constexpr bool kPersistent = true;
  static void Adjust(DeviceOptions& opts) { opts.backend = kBackend; }
  static Result<OpenedForTest> Open(const std::string& path, const DeviceOptions& opts,
                                    std::span<std::byte> arena) {
    VDE_ASSIGN_OR_RETURN(OpenedDevice opened, OpenBlockDevice(path, opts));
    if (opened.device == nullptr || (kMustBeFile && opened.backend != Backend::kFile)) {
      return Status::Corruption(path + ": OpenBlockDevice chose " +
                                std::string(BackendName(opened.backend)) + " (" + opened.reason +
                                "), not the file backend");
    }
    VDE_RETURN_IF_ERROR(opened.device->RegisterMemory(arena));
    OpenedForTest out;
    out.device = std::move(opened.device);
    out.notes = std::move(opened.notes);
    out.notes.push_back("backend " + std::string(BackendName(opened.backend)) + ": " +
                        opened.reason);
    return out;
  }
};

// The fixture: a scratch directory with the device's path, and the buffer arena.
class DeviceTest : public ::testing::TestWithParam<DeviceConfig> {
 protected:
  // Large enough for the biggest test (a batch of 1000 blocks of 4 KiB, written and read back).
  static constexpr size_t kArenaBytes = size_t{16} << 20;

  DeviceTest() : arena_(kArenaBytes), path_(dir_.File("dev.vdisk")) {}

  const DeviceConfig& config() const { return GetParam(); }
  bool persistent() const { return GetParam().persistent; }

  // Options to create a device of `blocks` blocks of `bs` bytes, as the configuration wants.
  DeviceOptions CreateOptions(uint32_t bs, uint64_t blocks) const;
  // Options to reopen an existing device; `blocks` sizes a fresh memory device.
  DeviceOptions ReopenOptions(uint32_t bs, OpenMode mode, uint64_t blocks = 0) const;

  Result<OpenedForTest> TryOpen(const DeviceOptions& opts) { return TryOpenAt(path_, opts); }
  Result<OpenedForTest> TryOpenAt(const std::string& path, const DeviceOptions& opts) {
    return config().open(path, opts, arena_.region());
  }

  // Opens the device at `path` (default path_). Skips the test when the configuration cannot
  // run here and fails it when the open fails; either way *dev is left null.
  void OpenOrSkip(const DeviceOptions& opts, std::unique_ptr<BlockDevice>* dev,
                  const std::string& path = {});

  // Reads `count` blocks from `block` through the single-request API and compares them with
  // the model.
  void ExpectBlocks(BlockDevice& dev, const Model& model, uint64_t block, uint64_t count);

  // Writes `count` random blocks at `block` and records them in the model.
  void WriteRandom(BlockDevice& dev, Model& model, uint64_t block, uint32_t count,
                   std::mt19937_64& rng);

  testing::ScratchDir dir_;
  Arena arena_;  // declared before any device a test opens, so it outlives them all
  std::string path_;
};

// The suites (see the .cpp files of the same names).
class BlockDeviceConformance : public DeviceTest {
 protected:
  // Writes random blocks across a device of `bs`-byte blocks, reads them back singly and in
  // batches, and (persistent configurations) again after flush and reopen.
  void RunAtBlockSize(uint32_t bs);
};

class BlockDeviceConcurrency : public DeviceTest {};

class BlockDeviceErrors : public DeviceTest {
 protected:
  // Expects `s` to fail with `code` and name the device's path, plus `what` when non-empty.
  static void ExpectError(const Status& s, Status::Code code, const BlockDevice& dev,
                          const std::string& what = {});
  // Opening must fail with `code`, naming `path`; skips when the configuration cannot run here.
  void ExpectOpenFails(const std::string& path, const DeviceOptions& opts, Status::Code code);
  // Makes a file of `bytes` bytes at `path` behind the device's back.
  static void MakeFile(const std::string& path, uint64_t bytes);
};

}  // namespace vde::blockdev::conformance

// Declares `std::unique_ptr<BlockDevice> dev` opened with `opts` at the fixture's path, or
// returns from the test (skipped or failed). Only in test bodies of a DeviceTest suite.
#define VDE_OPEN_DEVICE(dev, opts)  \
  std::unique_ptr<BlockDevice> dev; \
  this->OpenOrSkip((opts), &dev);   \
  if (dev == nullptr) return

// Runs the three suites against `configs`, a ::testing::ValuesIn(...) of DeviceConfig.
#define VDE_INSTANTIATE_CONFORMANCE(configs)                                        \
  INSTANTIATE_TEST_SUITE_P(Devices, BlockDeviceConformance, configs, ConfigName()); \
  INSTANTIATE_TEST_SUITE_P(Devices, BlockDeviceConcurrency, configs, ConfigName()); \
  INSTANTIATE_TEST_SUITE_P(Devices, BlockDeviceErrors, configs, ConfigName())
