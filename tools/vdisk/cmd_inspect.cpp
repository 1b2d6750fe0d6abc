// vdisk inspect: shows what a virtual disk is made of (Disk::InspectPath), as text or JSON.
// The JSON schema is documented in docs/TOOLS.md; add fields, never rename or remove them.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <string>

#include "tools/vdisk/cli_common.h"
#include "tools/vdisk/commands.h"
#include "vde/disk.h"

namespace vde::vdisk {
namespace {

using Json = nlohmann::ordered_json;

constexpr const char* kInspectFooter =
    R"(Opens the disk read-only and never writes to it. A disk with one damaged superblock copy
is still shown (exit 0) and the damaged copy is reported; if the allocator map is damaged the
rest is shown and the exit code is 2.

Examples:
  vdisk inspect data.vdisk
  vdisk inspect data.vdisk --json | jq .space)";

struct InspectArgs {
  std::string path;
  bool json = false;
  blockdev::Backend backend = blockdev::Backend::kAuto;
};

Json StatusJson(const Status& s) {
  return s.ok() ? Json(nullptr) : Json(s.ToString());
}

Json ToJson(const DiskInfo& info) {
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
  // One object per named index once the catalog exists: name, entries, height, pages, fill.
  j["indexes"] = Json::array();
  return j;
}

void Line(const char* label, const std::string& value) {
  std::printf("%-18s%s\n", label, value.c_str());
}

void PrintText(const DiskInfo& info) {
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
  Line("indexes:", "none");
}

int RunInspect(const InspectArgs& a) {
  if (int rc = CheckBackendUsable(a.backend); rc != kExitOk) return rc;
  auto info = Disk::InspectPath(a.path, a.backend);
  if (!info.has_value()) return Fail(info.error());
  if (a.json) {
    // Paths and messages need not be UTF-8: replace what is not rather than throw.
    std::string out = ToJson(*info).dump(2, ' ', false, Json::error_handler_t::replace);
    std::printf("%s\n", out.c_str());
  } else {
    PrintText(*info);
  }
  for (const SuperblockCopyInfo& c : info->superblocks) {
    if (!c.valid)
      Warn("superblock copy " + std::to_string(c.block) + " is damaged; " + a.path +
           " relies on the other copy");
  }
  if (!info->allocator_error.ok()) return Fail(info->allocator_error);
  return kExitOk;
}

}  // namespace

Command RegisterInspect(CLI::App& top) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* app =
      top.add_subcommand("inspect", "Show a virtual disk's format, space and superblocks");
  app->footer(kInspectFooter);
  app->add_option("PATH", args->path, "The disk file")->type_name("")->required();
  app->add_flag("--json", args->json, "Print JSON (schema in docs/TOOLS.md) instead of text");
  AddBackendOption(app, &args->backend);
  return Command{app, [args] { return RunInspect(*args); }};
}

}  // namespace vde::vdisk
