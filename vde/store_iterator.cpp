// Iterator: a snapshot iterator over one B+tree (index/snapshot.h): it sees the index as of its
// creation while writers go on. Each call takes the store lock shared (only Close and DropIndex
// ever take it exclusively) and fails cleanly once its index is dropped or the store stops
// taking calls.
#include <mutex>
#include <shared_mutex>

#include "vde/store_impl.h"

namespace vde {

struct Iterator::Rep {
  const StoreImpl* store = nullptr;
  std::shared_ptr<IndexState> index;           // null when error is set at creation
  std::unique_ptr<index::BTree::Iterator> it;  // null when error is set at creation
  Status error;                                // why the iterator cannot be used

  ~Rep() {
    if (store != nullptr) store->live_iterators_.fetch_sub(1);
  }
  // OK when the tree may be used. REQUIRES: the store lock held (shared).
  Status Usable() {
    if (!error.ok()) return error;
    Status s = store->CheckOpen();
    if (s.ok() && index->dropped) s = Status::NotFound("index '" + index->name + "' was dropped");
    if (!s.ok()) error = s;
    return s;
  }
};

Iterator::Iterator(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}
Iterator::~Iterator() = default;

bool Iterator::Valid() const {
  return rep_->error.ok() && rep_->it->Valid();
}

void Iterator::SeekToFirst() {
  if (!rep_->error.ok()) return;
  std::shared_lock lk(rep_->store->mu_);
  if (rep_->Usable().ok()) rep_->it->SeekToFirst();
}

void Iterator::SeekToLast() {
  if (!rep_->error.ok()) return;
  std::shared_lock lk(rep_->store->mu_);
  if (rep_->Usable().ok()) rep_->it->SeekToLast();
}

void Iterator::Seek(std::string_view target) {
  if (!rep_->error.ok()) return;
  std::shared_lock lk(rep_->store->mu_);
  if (rep_->Usable().ok()) rep_->it->Seek(target);
}

void Iterator::SeekForPrev(std::string_view target) {
  if (!rep_->error.ok()) return;
  std::shared_lock lk(rep_->store->mu_);
  if (rep_->Usable().ok()) rep_->it->SeekForPrev(target);
}

void Iterator::Next() {
  if (!rep_->error.ok()) return;
  // Within the leaf copy no lock is needed: it is the snapshot's, whatever happens meanwhile.
  if (rep_->it->TryStepInLeaf(+1)) return;
  std::shared_lock lk(rep_->store->mu_);
  if (rep_->Usable().ok()) rep_->it->Next();
}

void Iterator::Prev() {
  if (!rep_->error.ok()) return;
  if (rep_->it->TryStepInLeaf(-1)) return;
  std::shared_lock lk(rep_->store->mu_);
  if (rep_->Usable().ok()) rep_->it->Prev();
}

std::string_view Iterator::key() const {
  return rep_->error.ok() ? rep_->it->key() : std::string_view();
}

std::string_view Iterator::value() const {
  if (!rep_->error.ok()) return {};
  if (!rep_->it->ValueNeedsRead()) return rep_->it->value();  // inline: from the leaf copy
  std::shared_lock lk(rep_->store->mu_);
  if (!rep_->Usable().ok()) return {};
  return rep_->it->value();
}

Status Iterator::status() const {
  if (!rep_->error.ok()) return rep_->error;
  return rep_->it->status();
}

std::unique_ptr<Iterator> StoreImpl::NewIteratorImpl(std::shared_ptr<IndexState> index,
                                                     const ReadOptions& options) const {
  auto rep = std::make_unique<Iterator::Rep>();
  rep->store = this;
  live_iterators_.fetch_add(1);
  // The iterator reads a snapshot (index/snapshot.h) taken between two writes, never inside a
  // batch: apply_mu_ is held by every write while it changes the trees.
  std::lock_guard a(apply_mu_);
  std::shared_lock lk(mu_);
  Status s = CheckOpen();
  Result<IndexState*> st = s.ok() ? Resolve(index.get()) : Result<IndexState*>(s);
  if (!st.has_value()) {
    rep->error = st.error();
  } else {
    rep->index = index != nullptr ? std::move(index) : default_;
    index::IteratorOptions io;
    io.lower_bound = options.lower_bound;
    io.upper_bound = options.upper_bound;
    rep->it = rep->index->tree->NewIterator(std::move(io));
  }
  return std::unique_ptr<Iterator>(new Iterator(std::move(rep)));
}

std::unique_ptr<Iterator> Store::NewIterator(const ReadOptions& options) const {
  return impl_->NewIteratorImpl(nullptr, options);
}

std::unique_ptr<Iterator> Store::NewIterator(const Index& index, const ReadOptions& options) const {
  if (!index.valid()) {
    auto rep = std::make_unique<Iterator::Rep>();
    rep->error = StoreImpl::CheckHandle(index);
    return std::unique_ptr<Iterator>(new Iterator(std::move(rep)));
  }
  return impl_->NewIteratorImpl(index.state_, options);
}

}  // namespace vde
