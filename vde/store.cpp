// Store: opening and closing, named indexes, point reads. The write path is in store_write.cpp,
// checkpoints in store_checkpoint.cpp, MultiGet in store_multiget.cpp, statistics in
// store_stats.cpp, iterators in store_iterator.cpp.
#include <filesystem>
#include <mutex>
#include <shared_mutex>

#include "blockdev/open_block_device.h"
#include "vde/store_impl.h"

namespace vde {

namespace {

blockdev::Backend ToBackend(IoBackend b) {
  switch (b) {
    case IoBackend::kIoUring:
      return blockdev::Backend::kIoUring;
    case IoBackend::kFile:
      return blockdev::Backend::kFile;
    case IoBackend::kAuto:
      break;
  }
  return blockdev::Backend::kAuto;
}

Status CheckIndexName(std::string_view name) {
  if (name.empty() || name.size() > kMaxIndexNameSize) {
    return Status::InvalidArgument("index name of " + std::to_string(name.size()) +
                                   " bytes (names are 1 to " + std::to_string(kMaxIndexNameSize) +
                                   " bytes)");
  }
  return Status::OK();
}

std::string Quoted(std::string_view name) {
  return "index '" + std::string(name) + "'";
}

}  // namespace

ReadOptions ReadOptions::Prefix(std::string_view prefix) {
  ReadOptions r;
  r.lower_bound = std::string(prefix);
  // The smallest key greater than every key with the prefix: drop trailing 0xff bytes, then
  // increment the last byte. All 0xff (or empty): no upper bound.
  std::string upper(prefix);
  while (!upper.empty() && static_cast<unsigned char>(upper.back()) == 0xff) upper.pop_back();
  if (!upper.empty()) {
    upper.back() = static_cast<char>(static_cast<unsigned char>(upper.back()) + 1);
    r.upper_bound = std::move(upper);
  }
  return r;
}

const std::string& Index::name() const {
  static const std::string kNone;
  return state_ != nullptr ? state_->name : kNone;
}

// ---- StoreImpl: open and close ----------------------------------------------------------------

StoreImpl::~StoreImpl() {
  StopBackground();
  for (auto& [name, st] : indexes_) st->tree.reset();
  indexes_.clear();
  if (default_ != nullptr) default_->tree.reset();
  catalog_.reset();
  cache_.reset();
  // A Disk destroyed without Close() writes nothing: it reopens at the last checkpoint.
  disk_.reset();
}

Status StoreImpl::Init(const std::string& path, const Options& options) {
  options_ = options;
  if (options.checkpoint_interval.count() < 0) {
    return Status::InvalidArgument("Options::checkpoint_interval is negative");
  }
  // The exact minimum depends on the block size; this catches the hopeless before any file is
  // made (PageCache::Create checks the rest).
  if (options.cache_bytes <
      index::PageCache::BudgetFor(index::PageCache::kMinFrames, blockdev::kMinBlockSize)) {
    return Status::InvalidArgument("Options::cache_bytes of " +
                                   std::to_string(options.cache_bytes) +
                                   " bytes is below the page cache's minimum of " +
                                   std::to_string(index::PageCache::kMinFrames) + " pages");
  }
  std::error_code ec;
  const bool exists = std::filesystem::exists(path, ec);
  if (exists && options.error_if_exists) {
    return Status::AlreadyExists(path + ": exists (Options::error_if_exists)");
  }
  if (!exists) {
    if (!options.create_if_missing) {
      return Status::NotFound(path + ": no such file (set Options::create_if_missing)");
    }
    if (options.read_only) {
      return Status::InvalidArgument(path + ": create_if_missing with read_only");
    }
    CreateOptions co;
    co.size_bytes = options.disk_size_bytes;
    co.block_size = options.block_size;
    co.growable = options.growable;
    co.max_size_bytes = options.max_size_bytes;
    co.growth_step_bytes = options.growth_step_bytes;
    co.backend = ToBackend(options.backend);
    co.direct_io = options.direct_io;
    VDE_ASSIGN_OR_RETURN(disk_, Disk::Create(path, co));
    created_ = true;
  } else {
    OpenOptions oo;
    oo.read_only = options.read_only;
    oo.backend = ToBackend(options.backend);
    oo.direct_io = options.direct_io;
    VDE_ASSIGN_OR_RETURN(disk_, Disk::Open(path, oo));
  }

  // Disk::block_size() reads the superblock copy a checkpoint replaces: keep our own.
  block_size_ = disk_->block_size();
  VDE_ASSIGN_OR_RETURN(DiskInfo info, disk_->Inspect());
  const uint64_t max_blocks =
      info.growable && info.max_size_bytes != 0 ? info.max_size_bytes / info.block_size : 0;
  source_ = std::make_unique<StoreBlockSource>(disk_.get(), info.growable, max_blocks, &snapshots_);
  source_->Refresh();
  index::PageCacheOptions po;
  po.budget_bytes = options.cache_bytes;
  Result<std::unique_ptr<index::PageCache>> cache = index::PageCache::Create(&disk_->device(), po);
  if (!cache.has_value()) return cache.error().WithContext("Options::cache_bytes");
  cache_ = std::move(*cache);

  if (disk_->catalog_root() == 0) {
    // A disk without a store. Read-only, it stays empty: there is nothing to read.
    if (disk_->read_only()) return Status::OK();
    VDE_ASSIGN_OR_RETURN(catalog_, Catalog::Create(disk_.get(), cache_.get(), source_.get()));
    VDE_RETURN_IF_ERROR(RecomputeReserve());
    VDE_ASSIGN_OR_RETURN(default_, CreateIndexLocked(Store::kDefaultIndex, IndexOptions{}));
    VDE_RETURN_IF_ERROR(CheckpointLocked());
  } else {
    std::vector<Catalog::Entry> entries;
    VDE_ASSIGN_OR_RETURN(catalog_, Catalog::Load(disk_.get(), cache_.get(), source_.get(),
                                                 disk_->catalog_root(), &entries));
    for (Catalog::Entry& e : entries) {
      index::BTreeOptions bo;
      bo.max_inline_value = e.record.max_inline_value;
      bo.snapshots = &snapshots_;
      Result<std::unique_ptr<index::BTree>> tree =
          index::BTree::Open(cache_.get(), source_.get(), e.record.root, bo);
      if (!tree.has_value()) return tree.error().WithContext(Quoted(e.name));
      auto st = std::make_shared<IndexState>();
      st->owner = this;
      st->name = e.name;
      st->record = e.record;
      st->tree = std::move(*tree);
      indexes_.emplace(e.name, std::move(st));
    }
    auto it = indexes_.find(Store::kDefaultIndex);
    if (it == indexes_.end()) {
      return Status::Corruption(path + ": catalog block " + std::to_string(disk_->catalog_root()) +
                                ": the default index is missing");
    }
    default_ = it->second;
    VDE_RETURN_IF_ERROR(RecomputeReserve());
  }
  StartBackground();
  return Status::OK();
}

Status StoreImpl::CloseImpl(bool force) {
  {
    std::shared_lock lk(mu_);
    if (closed_) return Status::OK();
    const int64_t live = live_iterators_.load();
    if (live > 0 && !force) {
      return Status::Busy(disk_->path() + ": " + std::to_string(live) +
                          " iterators are still open; destroy them before Close");
    }
  }
  StopBackground();
  std::lock_guard cp(cp_mu_);
  std::lock_guard w(write_mu_);
  std::unique_lock lk(mu_);
  if (closed_) return Status::OK();
  Status s;
  {
    std::lock_guard sl(stats_mu_);
    s = poisoned_;
    if (s.ok() && !disk_->read_only()) s = disk_failed_;
  }
  if (s.ok() && !disk_->read_only() && dirty_.load()) s = CheckpointLocked();
  closed_ = true;
  for (auto& [name, st] : indexes_) st->tree.reset();
  if (default_ != nullptr) default_->tree.reset();
  catalog_.reset();
  cache_.reset();
  // After a failure above, Disk::Close would checkpoint whatever the allocator holds: skip it
  // and let the disk reopen at the last good checkpoint.
  if (s.ok()) s = disk_->Close();
  return s;
}

Status StoreImpl::CheckOpen() const {
  if (closed_) return Status::InvalidArgument("the store is closed");
  if (!poisoned_flag_.load(std::memory_order_acquire)) return Status::OK();
  std::lock_guard sl(stats_mu_);
  return poisoned_;
}

Status StoreImpl::Poison(Status s) {
  std::lock_guard sl(stats_mu_);
  poisoned_ = s;
  poisoned_flag_.store(true, std::memory_order_release);
  return s;
}

Status StoreImpl::CheckWritable() const {
  VDE_RETURN_IF_ERROR(CheckOpen());
  if (disk_->read_only()) {
    return Status::ReadOnly(disk_->path() + ": the store was opened read-only");
  }
  std::lock_guard sl(stats_mu_);
  return disk_failed_;
}

Result<IndexState*> StoreImpl::Resolve(const IndexState* index) const {
  if (index == nullptr) {
    if (default_ == nullptr) {
      return Status::NotFound(disk_->path() + ": index 'default' does not exist (the disk " +
                              "holds no store yet; open it writable once)");
    }
    index = default_.get();
  }
  if (index->owner != this) {
    return Status::InvalidArgument(Quoted(index->name) + ": the handle belongs to another store");
  }
  if (index->dropped.load(std::memory_order_acquire))
    return Status::NotFound(Quoted(index->name) + " was dropped");
  return const_cast<IndexState*>(index);
}

Status StoreImpl::RecomputeReserve() {
  // A checkpoint rewrites (copy-on-write) at most every page of the catalog's names tree, since
  // record updates never change a record's size and so never split, plus the header block.
  VDE_ASSIGN_OR_RETURN(index::BTreeStats st, catalog_->names().GetStats());
  uint64_t pages = 0;
  for (uint64_t p : st.pages_per_level) pages += p;
  checkpoint_reserve_ = pages + 2;
  return Status::OK();
}

Result<std::shared_ptr<IndexState>> StoreImpl::CreateIndexLocked(std::string_view name,
                                                                 const IndexOptions& options) {
  // The write-ahead log will record index creation here.
  source_->set_keep(checkpoint_reserve_);
  index::BTreeOptions bo;
  bo.max_inline_value = options.max_inline_value;
  bo.snapshots = &snapshots_;
  Result<std::unique_ptr<index::BTree>> tree =
      index::BTree::Create(cache_.get(), source_.get(), bo);
  if (!tree.has_value()) {
    source_->set_keep(0);
    return tree.error().WithContext("creating " + Quoted(name));
  }
  dirty_.store(true);
  CatalogRecord r;
  r.root = (*tree)->root();
  r.id = catalog_->TakeIndexId();
  r.created_generation = disk_->next_generation();
  r.max_inline_value = options.max_inline_value;
  Status s = catalog_->Put(name, r, true);
  source_->set_keep(0);
  if (!s.ok()) {
    Status d = (*tree)->Destroy();
    if (!d.ok()) s = s.WithContext("(freeing the new index failed too: " + d.ToString() + ")");
    return s.WithContext("creating " + Quoted(name));
  }
  auto st = std::make_shared<IndexState>();
  st->owner = this;
  st->name = std::string(name);
  st->record = r;
  st->tree = std::move(*tree);
  {
    std::lock_guard m(map_mu_);
    indexes_.emplace(st->name, st);
  }
  VDE_RETURN_IF_ERROR(RecomputeReserve());
  return st;
}

// ---- Store: lifecycle and indexes --------------------------------------------------------------

Store::Store(std::unique_ptr<StoreImpl> impl) : impl_(std::move(impl)) {}

Store::~Store() {
  Status s = impl_->CloseImpl(/*force=*/true);
  (void)s;  // documented: call Close() to see the error
}

Result<std::unique_ptr<Store>> Store::Open(const std::string& path, const Options& options) {
  auto impl = std::make_unique<StoreImpl>();
  Status s = impl->Init(path, options);
  if (!s.ok()) {
    const bool created = impl->created_;
    impl.reset();
    std::error_code ec;
    if (created) std::filesystem::remove(path, ec);  // do not leave a half-made store behind
    return s;
  }
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Status Store::Close() {
  return impl_->CloseImpl(/*force=*/false);
}

Result<Index> Store::CreateIndex(std::string_view name, const IndexOptions& options) {
  VDE_RETURN_IF_ERROR(CheckIndexName(name));
  std::lock_guard w(impl_->write_mu_);
  std::shared_lock lk(impl_->mu_);
  VDE_RETURN_IF_ERROR(impl_->CheckWritable());
  if (impl_->indexes_.count(name) != 0) {
    return Status::AlreadyExists(Quoted(name) + " already exists");
  }
  VDE_ASSIGN_OR_RETURN(std::shared_ptr<IndexState> st, impl_->CreateIndexLocked(name, options));
  return Index(std::move(st));
}

Result<Index> Store::OpenIndex(std::string_view name) const {
  std::shared_lock lk(impl_->mu_);
  VDE_RETURN_IF_ERROR(impl_->CheckOpen());
  std::lock_guard m(impl_->map_mu_);
  auto it = impl_->indexes_.find(name);
  if (it == impl_->indexes_.end()) return Status::NotFound(Quoted(name) + " does not exist");
  return Index(it->second);
}

Status Store::DropIndex(std::string_view name) {
  std::lock_guard w(impl_->write_mu_);
  std::shared_lock lk(impl_->mu_);
  VDE_RETURN_IF_ERROR(impl_->CheckWritable());
  auto it = impl_->indexes_.find(name);
  if (it == impl_->indexes_.end()) return Status::NotFound(Quoted(name) + " does not exist");
  if (name == kDefaultIndex) {
    return Status::InvalidArgument("the default index cannot be dropped");
  }
  // The write-ahead log will record the drop here.
  std::shared_ptr<IndexState> st = it->second;
  impl_->source_->set_keep(impl_->checkpoint_reserve_);
  Status s = impl_->catalog_->Delete(name);
  impl_->source_->set_keep(0);
  VDE_RETURN_IF_ERROR(s);
  impl_->dirty_.store(true);
  st->dropped.store(true, std::memory_order_release);
  {
    std::lock_guard m(impl_->map_mu_);
    impl_->indexes_.erase(it);
  }
  // Readers check `dropped` under mu_ shared: once mu_ has been held exclusively for an instant,
  // none is left inside the tree, and none enters it again. Destroy requires exactly that.
  lk.unlock();
  { std::unique_lock grace(impl_->mu_); }
  lk.lock();
  if (impl_->closed_) return Status::OK();
  // Out of the catalog first: a failure below leaks blocks (fsck finds them) but never leaves
  // the catalog naming freed ones.
  s = st->tree->Destroy();
  Status r = impl_->RecomputeReserve();
  if (!s.ok()) {
    return s.WithContext(Quoted(name) + " dropped, but freeing its blocks failed (they stay " +
                         "allocated)");
  }
  return r;
}

std::vector<std::string> Store::ListIndexes() const {
  std::shared_lock lk(impl_->mu_);
  std::vector<std::string> names;
  if (!impl_->CheckOpen().ok()) return names;
  std::lock_guard m(impl_->map_mu_);
  for (const auto& [name, st] : impl_->indexes_) names.push_back(name);
  return names;
}

Index Store::default_index() const {
  std::shared_lock lk(impl_->mu_);
  return Index(impl_->default_);
}

// ---- Store: reads -------------------------------------------------------------------------------

Status StoreImpl::CheckHandle(const Index& index) {
  if (!index.valid()) return Status::InvalidArgument("the Index handle names no index");
  return Status::OK();
}

Status StoreImpl::GetOne(const IndexState* index, std::string_view key, std::string* value) const {
  std::shared_lock lk(mu_);
  VDE_RETURN_IF_ERROR(CheckOpen());
  VDE_ASSIGN_OR_RETURN(IndexState * st, Resolve(index));
  gets_.Add();
  Status s = st->tree->Get(key, value);
  if (s.IsNotFound()) return Status::NotFound("key not found in " + Quoted(st->name));
  return s;
}

Status Store::Get(std::string_view key, std::string* value) const {
  return impl_->GetOne(nullptr, key, value);
}

Status Store::Get(const Index& index, std::string_view key, std::string* value) const {
  VDE_RETURN_IF_ERROR(StoreImpl::CheckHandle(index));
  return impl_->GetOne(index.state_.get(), key, value);
}

uint32_t Store::max_key_size() const {
  return index::MaxKeySize(impl_->block_size_);
}

uint64_t Store::max_value_size() {
  return index::kMaxValueSize;
}

}  // namespace vde
