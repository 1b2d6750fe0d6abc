// Iterator: walks the keys of one index in bytewise order, both ways, within ReadOptions' bounds.
//
// Made by Store::NewIterator. A snapshot: it sees the index as of its creation (never part of a
// write batch), while writers go on; blocks the writers free meanwhile are kept until it is
// destroyed. One thread at a time may use an iterator; several iterators may be used by several
// threads at once, alongside writers. The iterator must be destroyed before its Store.
//
// Errors: positioning stops (Valid() false) and status() says why: NotFound when the index was
// dropped, Corruption naming the file and block for a damaged page, IOError for a failed read.
// Reaching the end (or a bound) is Valid() false with status() OK.
#pragma once

#include <memory>
#include <string_view>

#include "blockdev/status.h"

namespace vde {

class Iterator {
 public:
  ~Iterator();
  Iterator(const Iterator&) = delete;
  Iterator& operator=(const Iterator&) = delete;

  // Positioned at a key (within the bounds) with no error.
  bool Valid() const;
  void SeekToFirst();
  void SeekToLast();
  // The first key >= target.
  void Seek(std::string_view target);
  // The last key <= target.
  void SeekForPrev(std::string_view target);
  // REQUIRES: Valid().
  void Next();
  void Prev();

  // REQUIRES: Valid(). The views stay good until the iterator moves or is destroyed.
  std::string_view key() const;
  // Reads an out-of-line value on first use; if that fails, returns an empty view, and status()
  // says why (the iterator is then no longer Valid()).
  std::string_view value() const;
  Status status() const;

 private:
  friend class Store;
  friend class StoreImpl;
  struct Rep;
  explicit Iterator(std::unique_ptr<Rep> rep);
  std::unique_ptr<Rep> rep_;
};

}  // namespace vde
