// AlignedBuffer: a move-only owner of zero-filled memory aligned for O_DIRECT I/O.
//
// Not thread-safe by itself; the bytes may be shared between threads by the owner's own rules.
#pragma once

#include <cstddef>
#include <span>
#include <utility>

namespace vde {

class AlignedBuffer {
 public:
  enum class Pages { kDefault, kHuge };
  static constexpr size_t kHugePageBytes = size_t{2} << 20;

  AlignedBuffer() noexcept = default;
  // Allocates `size` bytes (rounded up to a multiple of `alignment`) aligned to `alignment`,
  // which must be a power of two. Throws std::bad_alloc when memory is exhausted.
  //
  // With Pages::kHuge, a buffer of at least kHugePageBytes is mapped afresh from the kernel,
  // aligned to that size, and its whole multiples of it are advised to be backed by transparent
  // huge pages (madvise(MADV_HUGEPAGE)) before the first touch, so that runs of it are
  // physically contiguous: a device transfer into a run then needs one scatter-gather segment
  // instead of one per 4 KiB page. (From the heap, the memory may already be faulted in as
  // ordinary pages, which the advice then does not change.) The tail past the last whole huge
  // page stays in ordinary pages, so the buffer takes no more memory than asked for. Advisory:
  // where the kernel has no huge pages to give, the buffer is made of ordinary pages and works
  // the same.
  AlignedBuffer(size_t size, size_t alignment, Pages pages = Pages::kDefault);
  ~AlignedBuffer() { Release(); }

  AlignedBuffer(AlignedBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)),
        mapped_(std::exchange(o.mapped_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      Release();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      mapped_ = std::exchange(o.mapped_, 0);
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
  void Release() noexcept;

  std::byte* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_ = 0;  // bytes mapped with mmap (kHuge), or 0: from the heap
};

}  // namespace vde
