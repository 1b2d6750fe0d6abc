// vdisk inspect: shows what a virtual disk is made of (Disk::InspectPath), and its store's
// indexes (Store::ListIndexes, GetIndexStats, opened read-only), as text or JSON.
// The JSON schema is documented in docs/TOOLS.md; add fields, never rename or remove them.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tools/vdisk/cli_common.h"
#include "tools/vdisk/commands.h"
#include "tools/vdisk/kv_common.h"
#include "tools/vdisk/kv_format.h"
#include "vde/disk.h"
#include "vde/store.h"

namespace vde::vdisk {
namespace {

using Json = nlohmann::ordered_json;

constexpr const char* kInspectFooter =
    R"(Opens the disk read-only and never writes to it. A disk with one damaged superblock copy
is still shown (exit 0) and the damaged copy is reported; if the allocator map is damaged the
rest is shown and the exit code is 2. Each index of the store is walked page by page for its
entries, height, pages by level, fill (leaves and inner pages) and node encodings; if the
store cannot be read the indexes are shown as unavailable and the exit code is 2 (or 3 for an
I/O error). Counters of a running store (batched reads, read-ahead, splits) are zero on a
fresh open: see --stats of load, scan and get.

Examples:
  vdisk inspect data.vdisk
  vdisk inspect data.vdisk --json | jq .space)";

struct InspectArgs {
  std::string path;
  bool json = false;
  blockdev::Backend backend = blockdev::Backend::kAuto;
  uint64_t cache_bytes = kDefaultCacheBytes;
};

Json StatusJson(const Status& s) {
  return s.ok() ? Json(nullptr) : Json(s.ToString());
}

// The store's indexes: none for a disk without a store (no catalog yet); `error` when the store
// could not be opened, and an error per index when one could not be walked.
struct IndexesInfo {
  std::vector<std::pair<std::string, Result<IndexStats>>> indexes;
  Status error;
};

IndexesInfo ReadIndexes(const InspectArgs& a, const DiskInfo& info) {
  IndexesInfo r;
  if (info.catalog_root == 0) return r;
  if (!info.allocator_error.ok()) {
    r.error = Status::Corruption("not read: the allocator map is damaged");
    return r;
  }
  StoreArgs sa;
  sa.path = a.path;
  sa.backend = a.backend;
  sa.cache_bytes = a.cache_bytes;
  auto opened = OpenStore(sa, /*read_only=*/true);
  if (!opened.has_value()) {
    r.error = opened.error();
    return r;
  }
  Store& store = *opened->store;
  for (const std::string& name : store.ListIndexes()) {
    Result<IndexStats> st = store.GetIndexStats(name);
    if (!st.has_value()) st = st.error().WithContext("index '" + Escape(name) + "' of " + a.path);
    r.indexes.emplace_back(name, std::move(st));
  }
  r.error = store.Close();
  return r;
}

// The first error among the indexes, OK if none.
Status FirstError(const IndexesInfo& x) {
  if (!x.error.ok()) return x.error;
  for (const auto& [name, st] : x.indexes) {
    if (!st.has_value()) return st.error();
  }
  return Status::OK();
}

Json IndexesJson(const IndexesInfo& x) {
  Json list = Json::array();
  for (const auto& [name, st] : x.indexes) {
    const IndexStats s = st.has_value() ? *st : IndexStats{};
    uint64_t pages = 0;
    for (uint64_t p : s.pages_per_level) pages += p;
    list.push_back({{"name", name},
                    {"id", s.id},
                    {"entries", s.entries},
                    {"height", s.height},
                    {"pages", pages},
                    {"pages_per_level", s.pages_per_level},
                    {"fill_factor", s.fill_factor},
                    {"leaf_fill_factor", s.leaf_fill_factor},
                    {"inner_fill_factor", s.inner_fill_factor},
                    {"fill_per_level", s.fill_per_level},
                    {"pages_by_encoding",
                     {{"variable", s.variable_pages},
                      {"fixed_keys", s.fixed_key_pages},
                      {"fixed_entries", s.fixed_entry_pages}}},
                    {"overflow_values", s.overflow_values},
                    {"overflow_blocks", s.overflow_blocks},
                    {"root", s.root},
                    {"error", StatusJson(st.status())}});
  }
  return list;
}

Json ToJson(const DiskInfo& info, const IndexesInfo& indexes) {
  Json j;
  j["path"] = info.path;
  j["format_version"] = info.format_version;
  j["features"] = {{"compat", info.features_compat},
                   {"ro_compat", info.features_ro_compat},
                   {"incompat", info.features_incompat},
                   {"names", info.feature_names}};
  j["uuid"] = info.uuid;
  j["block_size"] = info.block_size;
  j["block_count"] = info.block_count;
  j["size_bytes"] = info.size_bytes;
  j["virtual_size_bytes"] = info.virtual_size_bytes;
  j["growable"] = info.growable;
  j["max_size_bytes"] = info.max_size_bytes;
  j["growth_step_bytes"] = info.growth_step_bytes;
  j["file_size_bytes"] = info.file_size_bytes;
  j["host_allocated_bytes"] = info.host_size_bytes;
  j["creation_time_ns"] = info.creation_time_ns;
  j["creation_time"] = FormatTime(info.creation_time_ns);
  j["checkpoint"] = {{"generation", info.generation},
                     {"time_ns", info.checkpoint_time_ns},
                     {"time", FormatTime(info.checkpoint_time_ns)}};
  j["catalog_root"] = info.catalog_root;
  j["log_region"] = {{"start", info.log_region.start}, {"blocks", info.log_region.blocks}};
  j["space"] = {{"blocks_used", info.blocks_used},
                {"blocks_free", info.blocks_free},
                {"blocks_pending_reuse", info.blocks_pending_reuse},
                {"blocks_metadata", info.blocks_metadata},
                {"free_extents", info.free_extents},
                {"largest_free_extent_blocks", info.largest_free_extent},
                {"error", StatusJson(info.allocator_error)}};
  Json copies = Json::array();
  for (size_t i = 0; i < info.superblocks.size(); i++) {
    const SuperblockCopyInfo& c = info.superblocks[i];
    copies.push_back({{"copy", i},
                      {"block", c.block},
                      {"valid", c.valid},
                      {"generation", c.valid ? Json(c.generation) : Json(nullptr)},
                      {"current", c.current},
                      {"error", StatusJson(c.error)}});
  }
  j["superblocks"] = std::move(copies);
  j["backend"] = {{"name", blockdev::BackendName(info.backend)},
                  {"reason", info.backend_reason},
                  {"notes", info.backend_notes},
                  {"device", info.device_description}};
  j["indexes"] = IndexesJson(indexes);
  j["indexes_error"] = StatusJson(indexes.error);
  return j;
}

void Line(const char* label, const std::string& value) {
  std::printf("%-18s%s\n", label, value.c_str());
}

// "1000 entries, height 2, pages 1/12 (root to leaves), 71.3% full".
std::string IndexSummary(const IndexStats& s, uint32_t block_size) {
  std::string pages;
  for (auto it = s.pages_per_level.rbegin(); it != s.pages_per_level.rend(); ++it) {
    pages += (pages.empty() ? "" : "/") + std::to_string(*it);
  }
  char fill[32];
  std::snprintf(fill, sizeof fill, "%.1f%% full", s.fill_factor * 100);
  std::string text = Count(s.entries, "entry", "entries") + ", height " + std::to_string(s.height) +
                     ", pages " + pages +
                     (s.pages_per_level.size() > 1 ? " (root to leaves)" : "") + ", " + fill;
  if (s.overflow_values != 0) {
    text += ", " + Count(s.overflow_values, "value", "values") + " out of line in " +
            FormatBlocks(s.overflow_blocks, block_size);
  }
  return text;
}

// "fill leaves 97.6%, inner 91.2%; encodings: 700 fixed-entries, 13 variable": the second line
// of an index, with the encodings in use.
std::string IndexLayout(const IndexStats& s) {
  char fill[64];
  std::snprintf(fill, sizeof fill, "fill leaves %.1f%%", s.leaf_fill_factor * 100);
  std::string text = fill;
  if (s.height > 1) {
    std::snprintf(fill, sizeof fill, ", inner %.1f%%", s.inner_fill_factor * 100);
    text += fill;
  }
  std::string encodings;
  for (const auto& [pages, name] :
       {std::pair{s.fixed_entry_pages, "fixed-entries"}, std::pair{s.fixed_key_pages, "fixed-keys"},
        std::pair{s.variable_pages, "variable"}}) {
    if (pages == 0) continue;
    encodings += (encodings.empty() ? "" : ", ") + std::to_string(pages) + " " + name;
  }
  return text + "; encodings: " + (encodings.empty() ? "none" : encodings);
}

void PrintIndexes(const IndexesInfo& x, uint32_t block_size) {
  if (!x.error.ok()) {
    Line("indexes:", "unavailable: " + x.error.ToString());
    return;
  }
  if (x.indexes.empty()) {
    Line("indexes:", "none");
    return;
  }
  Line("indexes:", std::to_string(x.indexes.size()));
  for (const auto& [name, st] : x.indexes) {
    std::string label = "  " + Escape(name) + ":";
    if (label.size() >= 18) label += " ";
    Line(label.c_str(),
         st.has_value() ? IndexSummary(*st, block_size) : "unavailable: " + st.error().ToString());
    if (st.has_value()) Line("", IndexLayout(*st));
  }
}

void PrintText(const DiskInfo& info, const IndexesInfo& indexes) {
  const uint32_t bs = info.block_size;
  std::string features = "none";
  if (!info.feature_names.empty()) {
    features.clear();
    for (const std::string& f : info.feature_names) features += (features.empty() ? "" : ", ") + f;
  }
  Line("path:", info.path);
  Line("format:", "version " + std::to_string(info.format_version) + ", features: " + features);
  Line("uuid:", info.uuid);
  Line("block size:", FormatSize(bs) + " (" + std::to_string(bs) + " bytes)");
  Line("virtual size:",
       FormatBlocks(info.virtual_size_bytes / bs, bs) +
           (info.growable && info.max_size_bytes == 0 ? ", growable without limit" : ""));
  std::string size = FormatBlocks(info.block_count, bs);
  if (info.growable) size += ", grows in steps of " + FormatSize(info.growth_step_bytes);
  Line("disk size:", size);
  Line("host file:", FormatSize(info.file_size_bytes) + ", " + FormatSize(info.host_size_bytes) +
                         " allocated on the host");
  Line("created:", FormatTime(info.creation_time_ns));
  Line("checkpoint:", "generation " + std::to_string(info.generation) + ", " +
                          FormatTime(info.checkpoint_time_ns));
  Line("catalog root:",
       info.catalog_root == 0 ? "none" : "block " + std::to_string(info.catalog_root));
  Line("log region:", info.log_region.blocks == 0
                          ? std::string("none")
                          : "blocks " + std::to_string(info.log_region.start) + " +" +
                                FormatBlocks(info.log_region.blocks, bs));

  std::printf("space:\n");
  if (!info.allocator_error.ok()) {
    Line("  unavailable:", info.allocator_error.ToString());
  } else {
    Line("  used:", FormatBlocks(info.blocks_used, bs) + ", " +
                        std::to_string(info.blocks_metadata) + " of them metadata");
    Line("  free:", FormatBlocks(info.blocks_free, bs));
    Line("  pending reuse:", FormatBlocks(info.blocks_pending_reuse, bs));
    Line("  free extents:", std::to_string(info.free_extents) + ", largest " +
                                FormatBlocks(info.largest_free_extent, bs));
  }

  std::printf("superblocks:\n");
  for (const SuperblockCopyInfo& c : info.superblocks) {
    std::string label = "  copy " + std::to_string(c.block) + ":";
    std::string what = c.valid ? "valid, generation " + std::to_string(c.generation) +
                                     (c.current ? ", current" : "")
                               : "INVALID: " + c.error.ToString();
    Line(label.c_str(), "block " + std::to_string(c.block) + ", " + what);
  }

  Line("backend:",
       std::string(blockdev::BackendName(info.backend)) + " (" + info.backend_reason + ")");
  for (const std::string& note : info.backend_notes) Line("  note:", note);
  Line("  device:", info.device_description);
  PrintIndexes(indexes, bs);
}

int RunInspect(const InspectArgs& a) {
  if (int rc = CheckBackendUsable(a.backend); rc != kExitOk) return rc;
  auto info = Disk::InspectPath(a.path, a.backend);
  if (!info.has_value()) return Fail(info.error());
  const IndexesInfo indexes = ReadIndexes(a, *info);
  if (a.json) {
    // Paths, index names and messages need not be UTF-8: replace what is not rather than throw.
    std::string out = ToJson(*info, indexes).dump(2, ' ', false, Json::error_handler_t::replace);
    std::printf("%s\n", out.c_str());
  } else {
    PrintText(*info, indexes);
  }
  for (const SuperblockCopyInfo& c : info->superblocks) {
    if (!c.valid)
      Warn("superblock copy " + std::to_string(c.block) + " is damaged; " + a.path +
           " relies on the other copy");
  }
  if (!info->allocator_error.ok()) return Fail(info->allocator_error);
  return Done(FirstError(indexes));
}

}  // namespace

Command RegisterInspect(CLI::App& top) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* app =
      top.add_subcommand("inspect", "Show a virtual disk's format, space, superblocks and indexes");
  app->footer(kInspectFooter);
  app->add_option("PATH", args->path, "The disk file")->type_name("")->required();
  app->add_flag("--json", args->json, "Print JSON (schema in docs/TOOLS.md) instead of text");
  AddBackendOption(app, &args->backend);
  AddSizeOption(app, "--cache", &args->cache_bytes, "Page cache size for walking the indexes")
      ->default_str("64M");
  return Command{app, [args] { return RunInspect(*args); }};
}

}  // namespace vde::vdisk
