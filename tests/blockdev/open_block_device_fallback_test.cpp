// OpenBlockDevice() when io_uring is unavailable at run time: DisableIoUringForTesting() makes the
// probe fail, the factory falls back to the file backend and says why, and an explicit request
// for io_uring fails with NotSupported. An executable of its own: the switch is process-global.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "blockdev/aligned_buffer.h"
#include "blockdev/open_block_device.h"
#include "tests/test_util.h"

namespace vde::blockdev {
namespace {

class OpenBlockDeviceFallback : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { DisableIoUringForTesting(); }
};

DeviceOptions Create(uint64_t blocks, Backend backend) {
  DeviceOptions o;
  o.mode = OpenMode::kCreate;
  o.create_blocks = blocks;
  o.backend = backend;
  return o;
}

TEST_F(OpenBlockDeviceFallback, ProbeReportsDisabled) {
  Status s = ProbeIoUring();
  EXPECT_TRUE(s.IsNotSupported()) << s.ToString();
  EXPECT_NE(std::string(s.message()).find("disabled"), std::string::npos) << s.ToString();
}

TEST_F(OpenBlockDeviceFallback, AutoFallsBackToFileAndSaysWhy) {
  vde::testing::ScratchDir dir;
  auto r = OpenBlockDevice(dir.File("a"), Create(8, Backend::kAuto));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->backend, Backend::kFile);
  EXPECT_NE(r->reason.find("disabled"), std::string::npos) << r->reason;
  EXPECT_EQ(r->device->Describe().rfind("file", 0), 0u) << r->device->Describe();
  AlignedBuffer w(4096, 4096), rd(4096, 4096);
  std::memset(w.data(), 0x5A, w.size());
  ASSERT_TRUE(r->device->Write(3, 1, w.span()).ok());
  ASSERT_TRUE(r->device->Flush().ok());
  ASSERT_TRUE(r->device->Read(3, 1, rd.span()).ok());
  EXPECT_EQ(std::memcmp(w.data(), rd.data(), w.size()), 0);
}

TEST_F(OpenBlockDeviceFallback, ExplicitIoUringIsNotSupportedAndTouchesNothing) {
  vde::testing::ScratchDir dir;
  auto r = OpenBlockDevice(dir.File("a"), Create(8, Backend::kIoUring));
  EXPECT_TRUE(r.status().IsNotSupported()) << r.status().ToString();
  EXPECT_NE(r.status().ToString().find("disabled"), std::string::npos) << r.status().ToString();
  // The file was not created, so kCreate can still go to another backend.
  auto f = OpenBlockDevice(dir.File("a"), Create(8, Backend::kFile));
  EXPECT_TRUE(f.ok()) << f.status().ToString();
}

}  // namespace
}  // namespace vde::blockdev
