// AlignedBuffer: a move-only owner of zero-filled memory aligned for O_DIRECT I/O.
//
// Not thread-safe by itself; the bytes may be shared between threads by the owner's own rules.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <span>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace vde {

class AlignedBuffer {
 public:
  AlignedBuffer() noexcept = default;
  enum class Pages { kDefault, kHuge };
  static constexpr size_t kHugePageBytes = size_t{2} << 20;

  // Allocates `size` bytes (rounded up to a multiple of `alignment`) aligned to `alignment`,
  // which must be a power of two. Throws std::bad_alloc when memory is exhausted.
  //
  // With Pages::kHuge, a buffer of at least kHugePageBytes is aligned to that size and asks the
  // kernel to back its whole multiples of it with transparent huge pages (madvise(MADV_HUGEPAGE),
  // before the first touch), so that runs of it are physically contiguous: a device transfer into a
  // run then needs one scatter-gather segment instead of one per 4 KiB page. Advisory: where the
  // kernel has no huge pages to give, the buffer is made of ordinary pages and works the same.
  AlignedBuffer(size_t size, size_t alignment, Pages pages = Pages::kDefault) : size_(size) {
    if (size == 0) return;
    const size_t rounded = (size + alignment - 1) & ~(alignment - 1);
    // Huge pages cover whole multiples of kHugePageBytes only: the tail stays in ordinary
    // pages, so the buffer takes no more memory than asked for.
    const size_t huge = pages == Pages::kHuge ? rounded & ~(kHugePageBytes - 1) : 0;
    void* p = nullptr;
    if (posix_memalign(&p, huge > 0 ? std::max(alignment, kHugePageBytes) : alignment, rounded) !=
        0) {
      throw std::bad_alloc();
    }
    data_ = static_cast<std::byte*>(p);
    if (huge > 0) AdviseHugePages(data_, huge);
    std::memset(data_, 0, rounded);
  }
  ~AlignedBuffer() { std::free(data_); }

  AlignedBuffer(AlignedBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      std::free(data_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  std::byte* data() noexcept { return data_; }
  const std::byte* data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }
  std::span<std::byte> span() noexcept { return {data_, size_}; }
  std::span<const std::byte> span() const noexcept { return {data_, size_}; }

 private:
  static void AdviseHugePages(void* p, size_t n) noexcept {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    (void)madvise(p, n, MADV_HUGEPAGE);  // advisory: EINVAL where THP is compiled out
#else
    (void)p;
    (void)n;
#endif
  }

  std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace vde
