// WriteBatch: the encoded operations (write_batch.h gives the encoding).
#include "vde/write_batch.h"

#include "vde/store.h"
#include "vde/varint.h"

namespace vde {

namespace {
enum : char { kTagPut = 1, kTagDelete = 2 };
}  // namespace

WriteBatch::WriteBatch() = default;
WriteBatch::~WriteBatch() = default;
WriteBatch::WriteBatch(const WriteBatch&) = default;
WriteBatch& WriteBatch::operator=(const WriteBatch&) = default;
WriteBatch::WriteBatch(WriteBatch&&) noexcept = default;
WriteBatch& WriteBatch::operator=(WriteBatch&&) noexcept = default;

uint32_t WriteBatch::Slot(const Index& index) {
  for (size_t i = 0; i < indexes_.size(); i++) {
    if (indexes_[i] == index.state_) return static_cast<uint32_t>(i + 1);
  }
  indexes_.push_back(index.state_);  // a null state is reported by Store::Write
  return static_cast<uint32_t>(indexes_.size());
}

void WriteBatch::Put(std::string_view key, std::string_view value) {
  rep_.push_back(kTagPut);
  PutVarint64(&rep_, 0);
  PutLengthPrefixed(&rep_, key);
  PutLengthPrefixed(&rep_, value);
  count_++;
}

void WriteBatch::Delete(std::string_view key) {
  rep_.push_back(kTagDelete);
  PutVarint64(&rep_, 0);
  PutLengthPrefixed(&rep_, key);
  count_++;
}

void WriteBatch::Put(const Index& index, std::string_view key, std::string_view value) {
  rep_.push_back(kTagPut);
  PutVarint64(&rep_, Slot(index));
  PutLengthPrefixed(&rep_, key);
  PutLengthPrefixed(&rep_, value);
  count_++;
}

void WriteBatch::Delete(const Index& index, std::string_view key) {
  rep_.push_back(kTagDelete);
  PutVarint64(&rep_, Slot(index));
  PutLengthPrefixed(&rep_, key);
  count_++;
}

void WriteBatch::Clear() {
  rep_.clear();
  indexes_.clear();
  count_ = 0;
}

}  // namespace vde
