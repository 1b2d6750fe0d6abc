// BufferTable: how registered memory is split into iovecs of at most 1 GiB (the kernel's limit
// per registered buffer) and how a request's buffer is matched to one. Only addresses are
// computed, so the regions below need no memory behind them.
#include <gtest/gtest.h>

#include <cstdint>
#include <span>

#include "blockdev/io_uring_ring.h"

namespace vde::blockdev::uring {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;

std::span<std::byte> Fake(uintptr_t base, uint64_t len) {
  return {reinterpret_cast<std::byte*>(base), static_cast<size_t>(len)};
}
const void* At(uintptr_t a) {
  return reinterpret_cast<const void*>(a);
}

TEST(BufferTable, LargeRegionIsSplitIntoGibibyteIovecs) {
  const uintptr_t base = uintptr_t{1} << 40;
  auto t = BufferTable().With(Fake(base, 2 * kGiB + kGiB / 2));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_NE(*t, nullptr);
  const auto& iov = (*t)->iovecs();
  ASSERT_EQ(iov.size(), 3u);
  EXPECT_EQ(iov[0].iov_len, kGiB);
  EXPECT_EQ(iov[1].iov_len, kGiB);
  EXPECT_EQ(iov[2].iov_len, kGiB / 2);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(iov[2].iov_base), base + 2 * kGiB);
  EXPECT_EQ((*t)->total_bytes(), 2 * kGiB + kGiB / 2);

  EXPECT_EQ((*t)->Find(At(base), 4096), 0);
  EXPECT_EQ((*t)->Find(At(base + kGiB - 4096), 4096), 0);
  EXPECT_EQ((*t)->Find(At(base + kGiB - 4096), 8192), -1);  // straddles two iovecs
  EXPECT_EQ((*t)->Find(At(base + kGiB), 4096), 1);
  EXPECT_EQ((*t)->Find(At(base + 2 * kGiB + 12288), 4096), 2);
  EXPECT_EQ((*t)->Find(At(base + 2 * kGiB + kGiB / 2 - 4096), 4096), 2);
  EXPECT_EQ((*t)->Find(At(base + 2 * kGiB + kGiB / 2 - 4096), 8192), -1);  // runs off the end
  EXPECT_EQ((*t)->Find(At(base + 2 * kGiB + kGiB / 2), 4096), -1);
  EXPECT_EQ((*t)->Find(At(base - 4096), 4096), -1);
}

TEST(BufferTable, RegionsAreKeptInAddressOrder) {
  const uintptr_t hi = uintptr_t{1} << 40, lo = uintptr_t{1} << 39;
  auto t1 = BufferTable().With(Fake(hi, 1 << 20));
  ASSERT_TRUE(t1.ok());
  auto t2 = (*t1)->With(Fake(lo, kGiB + 4096));
  ASSERT_TRUE(t2.ok());
  ASSERT_NE(*t2, nullptr);
  ASSERT_EQ((*t2)->iovecs().size(), 3u);
  EXPECT_EQ((*t2)->Find(At(lo), 4096), 0);
  EXPECT_EQ((*t2)->Find(At(lo + kGiB), 4096), 1);
  EXPECT_EQ((*t2)->Find(At(hi + 4096), 4096), 2);
  EXPECT_EQ((*t2)->Find(At(lo + kGiB + 4096), 4096), -1);  // between the regions
  // The first table is unchanged (tables are immutable snapshots).
  EXPECT_EQ((*t1)->iovecs().size(), 1u);
  EXPECT_EQ((*t1)->Find(At(hi), 4096), 0);
}

TEST(BufferTable, OverlapsAreRefusedAndContainedRegionsAreNoOps) {
  const uintptr_t base = uintptr_t{1} << 40;
  auto t = BufferTable().With(Fake(base, 1 << 20));
  ASSERT_TRUE(t.ok());
  auto inside = (*t)->With(Fake(base + 4096, 8192));
  ASSERT_TRUE(inside.ok());
  EXPECT_EQ(*inside, nullptr);
  EXPECT_TRUE((*t)->With(Fake(base - 4096, 8192)).status().IsInvalidArgument());
  EXPECT_TRUE((*t)->With(Fake(base + (1 << 20) - 4096, 8192)).status().IsInvalidArgument());
  EXPECT_TRUE((*t)->With(Fake(base - 4096, 2 << 20)).status().IsInvalidArgument());
  auto adjacent = (*t)->With(Fake(base + (1 << 20), 4096));
  ASSERT_TRUE(adjacent.ok());
  EXPECT_NE(*adjacent, nullptr);
}

TEST(BufferTable, MoreIovecsThanTheKernelTakesIsNotSupported) {
  const uintptr_t base = uintptr_t{1} << 44;
  auto t = BufferTable().With(Fake(base, (kMaxRegisteredBuffers + 1) * kGiB));
  EXPECT_TRUE(t.status().IsNotSupported()) << t.status().ToString();
  auto ok = BufferTable().With(Fake(base, kMaxRegisteredBuffers * kGiB));
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
}

}  // namespace
}  // namespace vde::blockdev::uring
