#include "tests/blockdev/block_device_conformance.h"

#include <cstdio>
#include <string>
#include <utility>

namespace vde::blockdev::conformance {

DeviceOptions DeviceTest::CreateOptions(uint32_t bs, uint64_t blocks) const {
  DeviceOptions o;
  o.block_size = bs;
  o.mode = OpenMode::kCreate;
  o.create_blocks = blocks;
  config().adjust(o);
  return o;
}

DeviceOptions DeviceTest::ReopenOptions(uint32_t bs, OpenMode mode, uint64_t blocks) const {
  DeviceOptions o;
  o.block_size = bs;
  o.mode = mode;
  o.create_blocks = blocks;
  config().adjust(o);
  return o;
}

void DeviceTest::OpenOrSkip(const DeviceOptions& opts, std::unique_ptr<BlockDevice>* dev,
                            const std::string& path) {
  dev->reset();
  auto r = TryOpenAt(path.empty() ? path_ : path, opts);
  ASSERT_TRUE(r.ok()) << config().name << ": open failed: " << Show(r.status());
  if (!r->skip.empty()) GTEST_SKIP() << config().name << ": " << r->skip;
  ASSERT_NE(r->device, nullptr);
  if (!r->notes.empty()) {
    std::printf("[   NOTE   ] %s: %s\n", r->device->Describe().c_str(),
                JoinNotes(r->notes).c_str());
  }
  *dev = std::move(r->device);
}

void DeviceTest::ExpectBlocks(BlockDevice& dev, const Model& model, uint64_t block,
                              uint64_t count) {
  auto buf = arena_.Carve(count * dev.block_size());
  Status s = dev.Read(block, static_cast<uint32_t>(count), buf);
  ASSERT_TRUE(s.ok()) << Show(s);
  EXPECT_TRUE(SameBlocks(buf, model.Blocks(block, count), block, dev.block_size()));
}

void DeviceTest::WriteRandom(BlockDevice& dev, Model& model, uint64_t block, uint32_t count,
                             std::mt19937_64& rng) {
  auto buf = arena_.Carve(static_cast<size_t>(count) * dev.block_size());
  FillRandom(buf, rng);
  Status s = dev.Write(block, count, buf);
  ASSERT_TRUE(s.ok()) << Show(s);
  model.Write(block, buf);
}

}  // namespace vde::blockdev::conformance
