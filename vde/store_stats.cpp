// Store statistics: Store::GetStats (counters of the store, its page cache and device, and its
// space) and Store::GetIndexStats (one index walked page by page, plus its tree's counters since
// open). Both take the store lock shared; the counters are read relaxed, so a snapshot taken
// while other threads work is consistent per counter, not across them.
#include <mutex>
#include <shared_mutex>

#include "vde/store_impl.h"

namespace vde {

StoreStats Store::GetStats() const {
  std::shared_lock lk(impl_->mu_);
  StoreStats s;
  const StoreImpl& m = *impl_;
  s.gets = m.gets_.Load();
  s.puts = m.puts_.load();
  s.deletes = m.deletes_.load();
  s.batches = m.batches_.load();
  s.checkpoints = m.checkpoints_.load();
  {
    std::lock_guard sl(m.stats_mu_);
    s.last_checkpoint_error = m.last_checkpoint_error_;
  }
  if (m.closed_) return s;
  const index::PageCacheStats cs = m.cache_->stats();
  s.cache_hits = cs.hits;
  s.cache_misses = cs.misses;
  s.pages_read = cs.pages_read;
  s.pages_written = cs.pages_written;
  s.evictions = cs.evictions;
  s.cache_bytes = cs.memory_bytes;
  s.cache_pages = cs.frames;
  s.cache_dirty_pages = cs.dirty;
  s.cache_inner_pages = cs.inner_pages;
  s.batch_reads = cs.batch_reads;
  s.batch_pages = cs.batch_pages;
  s.max_batch_pages = cs.max_batch_pages;
  s.batch_pages_log2 = cs.batch_pages_log2;
  s.prefetch_reads = cs.prefetch_reads;
  s.prefetch_pages = cs.prefetch_pages;
  s.prefetch_used = cs.prefetch_used;
  s.prefetch_wasted = cs.prefetch_wasted;
  s.generation = m.disk_->generation();
  const blockdev::DeviceStats ds = m.disk_->device().stats();
  s.device_reads = ds.reads;
  s.device_writes = ds.writes;
  s.blocks_read = ds.blocks_read;
  s.blocks_written = ds.blocks_written;
  s.flushes = ds.flushes;
  s.backend = std::string(blockdev::BackendName(m.disk_->backend()));
  s.backend_reason = m.disk_->backend_reason();
  for (const std::string& note : m.disk_->backend_notes()) s.backend_reason += "; " + note;
  const AllocatorStats as = m.disk_->allocator().stats();
  s.block_size = m.block_size_;
  s.disk_blocks = as.block_count;
  s.used_blocks = as.used_blocks;
  s.free_blocks = as.free_blocks;
  s.pending_blocks = as.pending_blocks;
  s.indexes = m.indexes_.size();
  return s;
}

Result<IndexStats> Store::GetIndexStats(std::string_view name) const {
  std::shared_lock lk(impl_->mu_);
  VDE_RETURN_IF_ERROR(impl_->CheckOpen());
  auto it = impl_->indexes_.find(name);
  if (it == impl_->indexes_.end()) {
    return Status::NotFound("index '" + std::string(name) + "' does not exist");
  }
  const IndexState& st = *it->second;
  VDE_ASSIGN_OR_RETURN(index::BTreeStats bs, st.tree->GetStats());
  IndexStats s;
  s.name = st.name;
  s.id = st.record.id;
  s.entries = bs.entries;
  s.height = bs.height;
  s.pages_per_level = std::move(bs.pages_per_level);
  s.fill_factor = bs.fill_factor;
  s.overflow_values = bs.overflow_values;
  s.overflow_blocks = bs.overflow_blocks;
  s.root = st.tree->root();
  s.leaf_fill_factor = bs.leaf_fill_factor;
  s.inner_fill_factor = bs.inner_fill_factor;
  s.fill_per_level = std::move(bs.fill_per_level);
  s.variable_pages = bs.variable_pages;
  s.fixed_key_pages = bs.fixed_key_pages;
  s.fixed_entry_pages = bs.fixed_entry_pages;
  s.splits_ascending = bs.splits_ascending;
  s.splits_descending = bs.splits_descending;
  s.splits_middle = bs.splits_middle;
  const index::BTreeReadStats rs = st.tree->read_stats();
  s.multi_gets = rs.multi_gets;
  s.multi_get_keys = rs.multi_get_keys;
  s.leaf_batches = rs.leaf_batches;
  s.leaves_read = rs.leaves_read;
  s.max_leaves_per_batch = rs.max_leaves_per_batch;
  s.readahead_windows = rs.readahead_windows;
  s.readahead_leaves = rs.readahead_leaves;
  s.readahead_max_window = rs.readahead_max_window;
  return s;
}

}  // namespace vde
