// OpenBlockDevice(): which backend it picks and why, the errors it returns for bad paths and
// options, the tmpfs O_DIRECT fallback, and ParseBackend/BackendName. Runs with and without
// liburing in the build. The io_uring-disabled fallback is in open_block_device_fallback_test
// (DisableIoUringForTesting is process-global).
#include "blockdev/open_block_device.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "blockdev/aligned_buffer.h"
#include "tests/test_util.h"

namespace vde::blockdev {
namespace {

using vde::testing::ScratchDir;

std::string Join(const std::vector<std::string>& notes) {
  std::string s;
  for (const std::string& n : notes) s += (s.empty() ? "" : "; ") + n;
  return s;
}

DeviceOptions Create(uint64_t blocks, Backend backend = Backend::kAuto) {
  DeviceOptions o;
  o.mode = OpenMode::kCreate;
  o.create_blocks = blocks;
  o.backend = backend;
  return o;
}

// Writes one block and reads it back through `dev`.
void RoundTrip(BlockDevice& dev) {
  AlignedBuffer w(dev.block_size(), 4096), r(dev.block_size(), 4096);
  for (size_t i = 0; i < w.size(); ++i) w.data()[i] = std::byte(i * 7 + 3);
  ASSERT_TRUE(dev.Write(1, 1, w.span()).ok());
  ASSERT_TRUE(dev.Flush().ok());
  ASSERT_TRUE(dev.Read(1, 1, r.span()).ok());
  EXPECT_EQ(std::memcmp(w.data(), r.data(), w.size()), 0);
}

TEST(OpenBlockDevice, AutoPicksIoUringWhenTheProbeSucceeds) {
  Status probe = ProbeIoUring();
  ScratchDir dir;
#ifndef VDE_HAVE_IO_URING
  EXPECT_TRUE(probe.IsNotSupported());
  EXPECT_NE(std::string(probe.message()).find("built without liburing"), std::string::npos);
  auto f = OpenBlockDevice(dir.File("f"), Create(16));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->backend, Backend::kFile);
  EXPECT_EQ(f->reason, "built without liburing");
  RoundTrip(*f->device);
#endif
  if (!probe.ok()) GTEST_SKIP() << "io_uring unavailable: " << probe.ToString();
  auto r = OpenBlockDevice(dir.File("a"), Create(16));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->backend, Backend::kIoUring);
  EXPECT_EQ(r->reason, "io_uring available");
  EXPECT_EQ(r->device->Describe().rfind("io_uring (", 0), 0u) << r->device->Describe();
  EXPECT_EQ(r->device->block_count(), 16u);
  RoundTrip(*r->device);
  // The answer is cached and stable.
  EXPECT_TRUE(ProbeIoUring().ok());
}

TEST(OpenBlockDevice, ExplicitIoUringOpensOrSaysWhyNot) {
  ScratchDir dir;
  auto r = OpenBlockDevice(dir.File("a"), Create(8, Backend::kIoUring));
  Status probe = ProbeIoUring();
  if (!probe.ok()) {
    EXPECT_TRUE(r.status().IsNotSupported()) << r.status().ToString();
    EXPECT_NE(r.status().ToString().find(std::string(probe.message())), std::string::npos);
    return;
  }
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->backend, Backend::kIoUring);
  RoundTrip(*r->device);
}

TEST(OpenBlockDevice, FileBackendWhenRequested) {
  ScratchDir dir;
  auto r = OpenBlockDevice(dir.File("a"), Create(8, Backend::kFile));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->backend, Backend::kFile);
  EXPECT_EQ(r->reason, "requested by options");
  EXPECT_EQ(r->device->Describe().rfind("file", 0), 0u) << r->device->Describe();
  RoundTrip(*r->device);
}

// tmpfs refused O_DIRECT before Linux 6.6: there the device opens buffered, says so in a note,
// and works, on either backend. Where tmpfs accepts O_DIRECT the device must simply work; the
// test then reports itself skipped, since the fallback went unexercised.
TEST(OpenBlockDevice, TmpfsWithoutODirectFallsBackToBuffered) {
  struct statfs fs {};
  if (::statfs("/dev/shm", &fs) != 0 || fs.f_type != TMPFS_MAGIC) {
    GTEST_SKIP() << "/dev/shm is not a tmpfs here";
  }
  std::string tmpl = "/dev/shm/vde_open_test.XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) GTEST_SKIP() << "cannot make a directory in /dev/shm";
  const std::filesystem::path dir = tmpl;
  const std::string probe_path = (dir / "probe").string();
  const int fd = ::open(probe_path.c_str(), O_CREAT | O_RDWR | O_DIRECT | O_CLOEXEC, 0644);
  const bool refused = fd < 0 && errno == EINVAL;
  if (fd >= 0) ::close(fd);
  for (Backend b : {Backend::kAuto, Backend::kFile}) {
    const std::string path = (dir / std::string(BackendName(b))).string();
    auto r = OpenBlockDevice(path, Create(8, b));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const std::string notes = Join(r->notes);
    const std::string d = r->device->Describe();
    if (refused) {
      EXPECT_NE(notes.find("O_DIRECT"), std::string::npos) << BackendName(b) << ": " << notes;
      EXPECT_EQ(r->device->alignment(), 1u);
      EXPECT_NE(d.find("buffered"), std::string::npos) << d;
    } else {
      EXPECT_EQ(notes.find("O_DIRECT"), std::string::npos) << BackendName(b) << ": " << notes;
      EXPECT_NE(d.find("O_DIRECT"), std::string::npos) << d;
    }
    RoundTrip(*r->device);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (!refused) {
    GTEST_SKIP() << "tmpfs accepts O_DIRECT on this kernel (Linux 6.6+): devices there work, "
                    "the buffered fallback was not exercised";
  }
}

// The same errors from every backend choice. Where io_uring is unusable, an explicit kIoUring
// fails with NotSupported before it looks at the path (ExplicitIoUringOpensOrSaysWhyNot).
class OpenErrors : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    Status probe = ProbeIoUring();
    if (GetParam() == Backend::kIoUring && !probe.ok()) {
      GTEST_SKIP() << "io_uring unavailable: " << probe.ToString();
    }
  }
};

TEST_P(OpenErrors, MissingFileIsNotFoundNamingThePath) {
  ScratchDir dir;
  DeviceOptions o;
  o.backend = GetParam();
  const std::string path = dir.File("missing.vdisk");
  auto r = OpenBlockDevice(path, o);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsNotFound()) << r.status().ToString();
  EXPECT_NE(r.status().ToString().find(path), std::string::npos) << r.status().ToString();
}

TEST_P(OpenErrors, CreateOverAnExistingFileIsAlreadyExists) {
  ScratchDir dir;
  const std::string path = dir.File("a");
  DeviceOptions o = Create(8, GetParam());
  o.backend = Backend::kFile;
  ASSERT_TRUE(OpenBlockDevice(path, o).ok());
  o.backend = GetParam();
  auto r = OpenBlockDevice(path, o);
  EXPECT_TRUE(r.status().IsAlreadyExists()) << r.status().ToString();
  // kCreateOrTruncate replaces it.
  o.mode = OpenMode::kCreateOrTruncate;
  o.create_blocks = 4;
  auto t = OpenBlockDevice(path, o);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->device->block_count(), 4u);
}

TEST_P(OpenErrors, SizeNotAMultipleOfTheBlockSizeIsInvalidArgument) {
  ScratchDir dir;
  const std::string path = dir.File("odd");
  {
    std::ofstream out(path, std::ios::binary);
    out << std::string(4096 * 3 + 100, 'x');
  }
  DeviceOptions o;
  o.backend = GetParam();
  auto r = OpenBlockDevice(path, o);
  EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
  EXPECT_NE(r.status().ToString().find(path), std::string::npos) << r.status().ToString();
}

TEST_P(OpenErrors, BadBlockSizeIsInvalidArgument) {
  ScratchDir dir;
  for (uint32_t bs : {0u, 256u, 1000u, 131072u}) {
    DeviceOptions o = Create(8, GetParam());
    o.block_size = bs;
    auto r = OpenBlockDevice(dir.File("bs" + std::to_string(bs)), o);
    EXPECT_TRUE(r.status().IsInvalidArgument()) << bs << ": " << r.status().ToString();
    EXPECT_FALSE(std::filesystem::exists(dir.File("bs" + std::to_string(bs)))) << bs;
  }
}

TEST_P(OpenErrors, CreateWithZeroBlocksIsInvalidArgument) {
  ScratchDir dir;
  auto r = OpenBlockDevice(dir.File("z"), Create(0, GetParam()));
  EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
}

INSTANTIATE_TEST_SUITE_P(Backends, OpenErrors,
                         ::testing::Values(Backend::kAuto, Backend::kIoUring, Backend::kFile),
                         [](const ::testing::TestParamInfo<Backend>& p) {
                           return p.param == Backend::kAuto      ? std::string("Auto")
                                  : p.param == Backend::kIoUring ? std::string("IoUring")
                                                                 : std::string("File");
                         });

TEST(ParseBackend, KnownNamesRoundTrip) {
  for (Backend b : {Backend::kAuto, Backend::kIoUring, Backend::kFile}) {
    auto r = ParseBackend(BackendName(b));
    ASSERT_TRUE(r.ok()) << BackendName(b);
    EXPECT_EQ(*r, b);
  }
  EXPECT_EQ(BackendName(Backend::kAuto), "auto");
  EXPECT_EQ(BackendName(Backend::kIoUring), "io_uring");
  EXPECT_EQ(BackendName(Backend::kFile), "file");
  auto u = ParseBackend("uring");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(*u, Backend::kIoUring);
}

TEST(ParseBackend, UnknownNameIsInvalidArgument) {
  for (const char* s : {"", "posix", "IO_URING", "file ", "aio"}) {
    auto r = ParseBackend(s);
    EXPECT_TRUE(r.status().IsInvalidArgument()) << '"' << s << '"';
  }
}

}  // namespace
}  // namespace vde::blockdev
