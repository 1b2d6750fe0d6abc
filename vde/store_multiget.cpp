// Store::MultiGet: many keys of one index in one call, through index::BTree::MultiGet, which
// walks the inner levels once for the whole batch and reads the leaves it needs with one device
// submission per chunk (docs/READ_PATH.md). Same locking and index resolution as Store::Get.
#include <mutex>
#include <shared_mutex>

#include "vde/store_impl.h"

namespace vde {

namespace {

// Looks up `keys` in `index` (the default when null). The lock block at the top mirrors
// StoreImpl::GetOne (store.cpp) line for line: change the two together.
Status LookUp(const StoreImpl& m, const IndexState* index, std::span<const std::string_view> keys,
              std::vector<std::string>* values, std::vector<Status>* statuses) {
  std::shared_lock lk(m.mu_);
  VDE_RETURN_IF_ERROR(m.CheckOpen());
  VDE_ASSIGN_OR_RETURN(IndexState * st, m.Resolve(index));
  m.gets_.Add(keys.size());

  Status s = st->tree->MultiGet(keys, values, statuses);
  // Name the index in NotFound, as Get does.
  const Status missing = Status::NotFound("key not found in index '" + st->name + "'");
  for (Status& k : *statuses) {
    if (k.IsNotFound()) k = missing;
  }
  return s;
}

// Runs `s` (the handle check, OK if none) then the lookup. A call that fails before the tree
// answers (BTree::MultiGet always sizes *statuses) gives its error to every key.
Status Run(const StoreImpl& m, Status s, const IndexState* index,
           std::span<const std::string_view> keys, std::vector<std::string>* values,
           std::vector<Status>* statuses) {
  statuses->clear();
  if (s.ok()) s = LookUp(m, index, keys, values, statuses);
  if (statuses->size() != keys.size()) {
    values->assign(keys.size(), std::string());
    statuses->assign(keys.size(), s);
  }
  return s;
}

}  // namespace

Status Store::MultiGet(std::span<const std::string_view> keys, std::vector<std::string>* values,
                       std::vector<Status>* statuses) const {
  return Run(*impl_, Status::OK(), nullptr, keys, values, statuses);
}

Status Store::MultiGet(const Index& index, std::span<const std::string_view> keys,
                       std::vector<std::string>* values, std::vector<Status>* statuses) const {
  return Run(*impl_, StoreImpl::CheckHandle(index), index.state_.get(), keys, values, statuses);
}

}  // namespace vde
