#include "blockdev/aligned_buffer.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace vde {

namespace {

#if defined(__linux__) && defined(MADV_HUGEPAGE)
// A fresh anonymous mapping of `bytes` (a multiple of the system's page size) starting at a
// multiple of kHugePageBytes, its whole huge pages advised; nullptr when the kernel refuses the
// mapping.
std::byte* MapHuge(size_t bytes) {
  constexpr size_t kHuge = AlignedBuffer::kHugePageBytes;
  const size_t span = bytes + kHuge;  // room to slide the start to a huge-page boundary
  void* m = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return nullptr;
  const auto base = reinterpret_cast<uintptr_t>(m);
  const uintptr_t start = (base + kHuge - 1) & ~(uintptr_t{kHuge} - 1);
  // Give back the slack on either side.
  if (start > base) (void)munmap(m, start - base);
  if (base + span > start + bytes) {
    (void)munmap(reinterpret_cast<void*>(start + bytes), base + span - (start + bytes));
  }
  auto* p = reinterpret_cast<std::byte*>(start);
  (void)madvise(p, bytes & ~(kHuge - 1), MADV_HUGEPAGE);  // advisory: may be refused
  return p;
}
#endif

}  // namespace

AlignedBuffer::AlignedBuffer(size_t size, size_t alignment, Pages pages) : size_(size) {
  if (size == 0) return;
  const size_t rounded = (size + alignment - 1) & ~(alignment - 1);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (pages == Pages::kHuge && rounded >= kHugePageBytes) {
    const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t bytes = (rounded + page - 1) & ~(page - 1);
    if (alignment <= kHugePageBytes) {
      data_ = MapHuge(bytes);
      if (data_ == nullptr) throw std::bad_alloc();
      mapped_ = bytes;
      return;  // fresh anonymous memory reads as zeros
    }
  }
#else
  (void)pages;
#endif
  void* p = nullptr;
  if (posix_memalign(&p, std::max(alignment, sizeof(void*)), rounded) != 0) {
    throw std::bad_alloc();
  }
  data_ = static_cast<std::byte*>(p);
  std::memset(data_, 0, rounded);
}

void AlignedBuffer::Release() noexcept {
  if (data_ == nullptr) return;
#if defined(__linux__)
  if (mapped_ != 0) {
    (void)munmap(data_, mapped_);
    data_ = nullptr;
    return;
  }
#endif
  std::free(data_);
  data_ = nullptr;
}

}  // namespace vde
