// AlignedBuffer: a move-only owner of zero-filled memory aligned for O_DIRECT I/O.
//
// Not thread-safe by itself; the bytes may be shared between threads by the owner's own rules.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <span>
#include <utility>

namespace vde {

class AlignedBuffer {
 public:
  AlignedBuffer() noexcept = default;
  // Allocates `size` bytes (rounded up to a multiple of `alignment`) aligned to `alignment`,
  // which must be a power of two. Throws std::bad_alloc when memory is exhausted.
  AlignedBuffer(size_t size, size_t alignment) : size_(size) {
    if (size == 0) return;
    size_t rounded = (size + alignment - 1) & ~(alignment - 1);
    data_ = static_cast<std::byte*>(std::aligned_alloc(alignment, rounded));
    if (data_ == nullptr) throw std::bad_alloc();
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
  std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace vde
