// Runs the BlockDevice conformance suite against what OpenBlockDevice() returns when io_uring is
// unavailable, in a process where DisableIoUringForTesting() has been called (hence this
// executable of its own: the switch is process-global), and when the file backend is asked for.
#include <gtest/gtest.h>

#include <memory>
#include <span>
#include <string>

#include "blockdev/open_block_device.h"
#include "tests/blockdev/block_device_conformance.h"

namespace vde::blockdev::conformance {
namespace {

// Disables io_uring before any test runs, as if the kernel lacked it.
class NoIoUringEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { DisableIoUringForTesting(); }
};
const auto* const kNoIoUring = ::testing::AddGlobalTestEnvironment(new NoIoUringEnvironment);

const DeviceConfig kConfigs[] = {
    ConfigOf<FactoryConfig<Backend::kAuto, true>>(),
    ConfigOf<FactoryConfig<Backend::kFile, true>>(),
};

TEST(OpenBlockDeviceFallback, AutoChoosesTheFileBackendAndSaysWhy) {
  testing::ScratchDir dir;
  Status probe = ProbeIoUring();
  EXPECT_TRUE(probe.IsNotSupported()) << Show(probe);
  DeviceOptions opts;
  opts.mode = OpenMode::kCreate;
  opts.create_blocks = 8;
  auto r = OpenBlockDevice(dir.File("a.vdisk"), opts);
  ASSERT_TRUE(r.ok()) << Show(r.status());
  EXPECT_EQ(r->backend, Backend::kFile);
  EXPECT_FALSE(r->reason.empty());
  EXPECT_NE(r->device->Describe().find("file"), std::string::npos) << r->device->Describe();
}

TEST(OpenBlockDeviceFallback, ExplicitIoUringIsNotSupported) {
  testing::ScratchDir dir;
  DeviceOptions opts;
  opts.mode = OpenMode::kCreate;
  opts.create_blocks = 8;
  opts.backend = Backend::kIoUring;
  auto r = OpenBlockDevice(dir.File("a.vdisk"), opts);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error().IsNotSupported()) << Show(r.error());
}

}  // namespace

VDE_INSTANTIATE_CONFORMANCE(::testing::ValuesIn(kConfigs));

}  // namespace vde::blockdev::conformance
