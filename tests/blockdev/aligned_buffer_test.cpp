#include "blockdev/aligned_buffer.h"

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace vde {
namespace {

bool AllZero(const AlignedBuffer& b) {
  for (std::byte x : b.span()) {
    if (x != std::byte{0}) return false;
  }
  return true;
}

TEST(AlignedBuffer, OrdinaryPagesAreAlignedAndZeroed) {
  AlignedBuffer b(3 * 4096 + 5, 4096);
  ASSERT_NE(b.data(), nullptr);
  EXPECT_EQ(b.size(), 3u * 4096 + 5);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % 4096, 0u);
  EXPECT_TRUE(AllZero(b));
  AlignedBuffer moved(std::move(b));
  EXPECT_EQ(moved.size(), 3u * 4096 + 5);
}

TEST(AlignedBuffer, HugePagesAlignLargeBuffersToAHugePage) {
  AlignedBuffer big(5 * AlignedBuffer::kHugePageBytes / 2, 4096, AlignedBuffer::Pages::kHuge);
  ASSERT_NE(big.data(), nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big.data()) % AlignedBuffer::kHugePageBytes, 0u);
  EXPECT_TRUE(AllZero(big));
  big.data()[big.size() - 1] = std::byte{7};  // all of it is writable
  // Smaller than a huge page: the asked-for alignment only, as for ordinary pages.
  AlignedBuffer small(8 * 4096, 4096, AlignedBuffer::Pages::kHuge);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small.data()) % 4096, 0u);
  EXPECT_TRUE(AllZero(small));
}

TEST(AlignedBuffer, HugeBuffersMoveAndRelease) {
  AlignedBuffer a(3 * AlignedBuffer::kHugePageBytes, 4096, AlignedBuffer::Pages::kHuge);
  a.data()[0] = std::byte{1};
  AlignedBuffer b(std::move(a));
  EXPECT_EQ(b.data()[0], std::byte{1});
  AlignedBuffer c(5000, 4096);  // from the heap
  c = std::move(b);             // frees c's heap memory, takes b's mapping
  EXPECT_EQ(c.data()[0], std::byte{1});
  EXPECT_EQ(c.size(), 3 * AlignedBuffer::kHugePageBytes);
  AlignedBuffer d(AlignedBuffer::kHugePageBytes, 4096, AlignedBuffer::Pages::kHuge);
  d = std::move(c);  // unmaps d's own mapping first
  d.data()[d.size() - 1] = std::byte{2};
  EXPECT_EQ(d.data()[0], std::byte{1});
}

// The mapping that holds a kHuge buffer is one the kernel may back with transparent huge pages
// (smaps' THPeligible), wherever the kernel offers them at all. Whether it does back it depends
// on free memory, so that is not asserted.
TEST(AlignedBuffer, HugePagesAreRequestedFromTheKernel) {
  std::ifstream mode_file("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string mode;
  std::getline(mode_file, mode);
  if (mode.empty() || mode.find("[never]") != std::string::npos) {
    GTEST_SKIP() << "transparent huge pages are not available here (mode '" << mode << "')";
  }
  AlignedBuffer b(2 * AlignedBuffer::kHugePageBytes, 4096, AlignedBuffer::Pages::kHuge);
  const auto addr = reinterpret_cast<uintptr_t>(b.data());
  std::ifstream smaps("/proc/self/smaps");
  ASSERT_TRUE(smaps.good());
  std::string line;
  bool inside = false, found = false;
  while (std::getline(smaps, line)) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-') {
      inside = lo <= addr && addr < hi;
      continue;
    }
    if (inside && line.rfind("THPeligible:", 0) == 0) {
      EXPECT_NE(line.find('1'), std::string::npos) << line;
      found = true;
    }
  }
  if (!found) GTEST_SKIP() << "this kernel's smaps has no THPeligible line";
}

}  // namespace
}  // namespace vde
