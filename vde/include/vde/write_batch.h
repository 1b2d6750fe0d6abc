// WriteBatch: puts and deletes across any indexes of one store, applied by Store::Write as one
// atomic unit: afterwards either all of them are visible or none is, including when one fails
// part-way (NoSpace, an I/O error) and after a crash and reopen.
//
// Operations apply in the order added; a later operation on the same key wins. Limits (key and
// value sizes, the index still existing) are checked by Store::Write before anything is applied.
// A batch copies its keys and values, so the caller's buffers may be reused at once. Not
// thread-safe: build a batch in one thread (it may then be written from any thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace vde {

class Index;
struct IndexState;

class WriteBatch {
 public:
  WriteBatch();
  ~WriteBatch();
  WriteBatch(const WriteBatch&);
  WriteBatch& operator=(const WriteBatch&);
  WriteBatch(WriteBatch&&) noexcept;
  WriteBatch& operator=(WriteBatch&&) noexcept;

  // Into the store's default index.
  void Put(std::string_view key, std::string_view value);
  void Delete(std::string_view key);
  // Into `index` (a handle from the store the batch will be written to).
  void Put(const Index& index, std::string_view key, std::string_view value);
  void Delete(const Index& index, std::string_view key);

  void Clear();
  // Number of operations.
  size_t count() const { return count_; }
  // Bytes of the encoded operations (about the keys and values added).
  size_t ApproximateSize() const { return rep_.size(); }

 private:
  friend class StoreImpl;
  uint32_t Slot(const Index& index);

  // Encoded operations, each: u8 tag (1 put, 2 delete), varint index slot, varint key length,
  // key, and for a put varint value length, value. Slot 0 is the default index; slot i > 0 is
  // indexes_[i - 1]. The write-ahead log will append this encoding.
  std::string rep_;
  std::vector<std::shared_ptr<IndexState>> indexes_;
  size_t count_ = 0;
};

}  // namespace vde
