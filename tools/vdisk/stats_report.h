// `--stats` of vdisk load, scan and get: a snapshot of the store's counters (Store::GetStats)
// and of the command's index (Store::GetIndexStats), taken before the store closes, printed to
// stderr after the command's own output (stdout stays as scripts expect it). The counters are
// the ones a freshly opened disk has at zero, so `vdisk inspect` leaves them out: batched reads
// and their sizes, read-ahead, MultiGet, splits by kind, cache hits and misses.
//
// Header-only so that each command takes it with one include. Single-threaded command-line code.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdio>
#include <optional>
#include <string>

#include "tools/vdisk/cli_common.h"
#include "tools/vdisk/kv_common.h"
#include "vde/store.h"

namespace vde::vdisk {

struct StatsSnapshot {
  std::string where;  // "index 'x' of d.vdisk"
  StoreStats store;
  Result<IndexStats> index = IndexStats{};
};

inline CLI::Option* AddStatsFlag(CLI::App* app, bool* stats) {
  return app->add_flag("--stats", *stats,
                       "Then print the store's counters (batched reads, read-ahead, splits, "
                       "cache) to stderr; walks the index for them");
}

// Takes the snapshot. REQUIRES: the store is open. The store's counters are read first, so the
// walk of the index that GetIndexStats makes is not counted in them. An invalid `index` (a
// read-only disk without a store) has no index counters.
inline StatsSnapshot TakeStats(const Store& store, const Index& index, const StoreArgs& args) {
  StatsSnapshot s;
  s.where = args.Where();
  s.store = store.GetStats();
  if (!index.valid()) {
    s.index = Status::NotFound("the disk holds no store yet");
  } else {
    s.index = store.GetIndexStats(index.name());
  }
  return s;
}

// Prints the snapshot to stderr, one "label: counts" line each; each line begins with a count.
inline void PrintStats(const StatsSnapshot& s) {
  auto line = [](const char* label, const std::string& text) {
    std::fprintf(stderr, "  %-16s%s\n", label, text.c_str());
  };
  auto pages = [](uint64_t n) { return Count(n, "page", "pages"); };
  auto batches = [](uint64_t n) { return Count(n, "batch", "batches"); };
  std::fprintf(stderr, "stats of %s:\n", s.where.c_str());
  const StoreStats& st = s.store;
  line("cache:", Count(st.cache_hits, "hit", "hits") + ", " +
                     Count(st.cache_misses, "miss", "misses") + ", " + pages(st.pages_read) +
                     " read, " + std::to_string(st.pages_written) + " written, " +
                     Count(st.evictions, "eviction", "evictions") + ", " +
                     std::to_string(st.cache_inner_pages) + " inner pages resident");
  line("batched reads:", batches(st.batch_reads) + ", " + pages(st.batch_pages) + ", largest " +
                             std::to_string(st.max_batch_pages));
  static constexpr const char* kBuckets[] = {"1",     "2-3",   "4-7",    "8-15",
                                             "16-31", "32-63", "64-127", "128+"};
  std::string sizes;
  for (size_t i = 0; i < st.batch_pages_log2.size(); i++) {
    sizes += (sizes.empty() ? "" : " ") + std::string(kBuckets[i]) + ":" +
             std::to_string(st.batch_pages_log2[i]);
  }
  line("batch sizes:", sizes + " (pages: batches)");
  line("prefetch:", batches(st.prefetch_reads) + ", " + pages(st.prefetch_pages) + " read, " +
                        std::to_string(st.prefetch_used) + " used, " +
                        std::to_string(st.prefetch_wasted) + " wasted");
  if (!s.index.has_value()) {
    line("index:", "unavailable: " + s.index.error().ToString());
    return;
  }
  const IndexStats& x = *s.index;
  auto leaves = [](uint64_t n) { return Count(n, "leaf", "leaves"); };
  line("read-ahead:", Count(x.readahead_windows, "window", "windows") + ", " +
                          leaves(x.readahead_leaves) + ", largest window " +
                          std::to_string(x.readahead_max_window));
  line("multi-get:",
       Count(x.multi_gets, "call", "calls") + ", " + Count(x.multi_get_keys, "key", "keys") + ", " +
           Count(x.leaf_batches, "leaf batch", "leaf batches") + ", " + leaves(x.leaves_read) +
           ", at most " + std::to_string(x.max_leaves_per_batch) + " per batch");
  line("splits:", std::to_string(x.splits_ascending) + " ascending, " +
                      std::to_string(x.splits_descending) + " descending, " +
                      std::to_string(x.splits_middle) + " middle");
}

// The last line of a command with --stats: prints the snapshot (if one was taken) when `s`, the
// command's final status, is OK; then Done(s).
inline int DoneWithStats(const Status& s, const std::optional<StatsSnapshot>& stats) {
  if (s.ok() && stats.has_value()) PrintStats(*stats);
  return Done(s);
}

}  // namespace vde::vdisk
