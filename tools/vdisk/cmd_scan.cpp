// vdisk scan: lists keys (and values) in key order, or in reverse, within bounds.
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "tools/vdisk/cli_common.h"
#include "tools/vdisk/commands.h"
#include "tools/vdisk/kv_common.h"
#include "tools/vdisk/kv_format.h"
#include "tools/vdisk/stats_report.h"

namespace vde::vdisk {
namespace {

constexpr const char* kScanFooter =
    R"(Prints one line per key, in bytewise key order: the escaped key, a tab, the escaped value
(the escapes are \\ \t \n \r \xNN, so every line splits at its one tab). Keys k with
FROM <= k < TO that begin with PREFIX are listed; the bounds combine. With --escaped the
bounds are escaped text too. Opens the disk read-only.

Examples:
  vdisk scan data.vdisk --prefix user: --limit 10
  vdisk scan data.vdisk --from a --to n --keys-only
  vdisk scan data.vdisk --reverse --limit 1          # the last key)";

struct ScanArgs {
  StoreArgs store;
  std::string prefix, from, to;
  uint64_t limit = std::numeric_limits<uint64_t>::max();
  bool reverse = false;
  bool keys_only = false;
  bool stats = false;
};

// The iterator bounds for the options: the intersection of the prefix's range and [from, to).
Result<ReadOptions> Bounds(const ScanArgs& a) {
  VDE_ASSIGN_OR_RETURN(std::string prefix, ArgBytes(a.store, "--prefix", a.prefix));
  VDE_ASSIGN_OR_RETURN(std::string from, ArgBytes(a.store, "--from", a.from));
  VDE_ASSIGN_OR_RETURN(std::string to, ArgBytes(a.store, "--to", a.to));
  ReadOptions r = ReadOptions::Prefix(prefix);
  if (from > r.lower_bound) r.lower_bound = from;
  if (!to.empty() && (r.upper_bound.empty() || to < r.upper_bound)) r.upper_bound = to;
  return r;
}

// Prints the keys `it` walks, at most `limit` of them.
Status List(Iterator& it, const ScanArgs& a) {
  std::string line;
  uint64_t n = 0;
  if (a.reverse) {
    it.SeekToLast();
  } else {
    it.SeekToFirst();
  }
  for (; it.Valid() && n < a.limit; n++) {
    line.clear();
    AppendEscaped(it.key(), &line);
    if (!a.keys_only) {
      std::string_view value = it.value();
      if (!it.status().ok()) break;
      line.push_back('\t');
      AppendEscaped(value, &line);
    }
    line.push_back('\n');
    if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size()) break;
    if (a.reverse) {
      it.Prev();
    } else {
      it.Next();
    }
  }
  VDE_RETURN_IF_ERROR(FlushStdout());
  return it.status().WithContext("scanning " + a.store.Where());
}

int RunScan(const ScanArgs& a) {
  auto bounds = Bounds(a);
  if (!bounds.has_value()) return Fail(bounds.error());
  if (int rc = CheckBackendUsable(a.store.backend); rc != kExitOk) return rc;

  auto target = OpenIndexOf(a.store, /*read_only=*/true, /*create=*/false);
  if (!target.has_value()) return Fail(target.error());
  Store& store = target->store();
  const Index& index = target->index;
  const bool empty_range =
      !bounds->upper_bound.empty() && bounds->lower_bound >= bounds->upper_bound;
  if (index.valid() && !empty_range && a.limit > 0) {
    std::unique_ptr<Iterator> it = store.NewIterator(index, *bounds);
    Status s = List(*it, a);
    if (!s.ok()) return Fail(s);
  }
  std::optional<StatsSnapshot> stats;
  if (a.stats) stats = TakeStats(store, index, a.store);
  return DoneWithStats(store.Close(), stats);
}

}  // namespace

Command RegisterScan(CLI::App& top) {
  auto args = std::make_shared<ScanArgs>();
  CLI::App* app = top.add_subcommand("scan", "List keys and values in key order");
  app->footer(kScanFooter);
  AddStoreOptions(app, &args->store, /*keys_typed=*/true);
  app->add_option("--prefix", args->prefix, "Only keys that begin with P")->type_name("P");
  app->add_option("--from", args->from, "Only keys >= K")->type_name("K");
  app->add_option("--to", args->to, "Only keys < K")->type_name("K");
  app->add_option("--limit", args->limit, "At most N keys")
      ->type_name("N")
      ->check(CLI::NonNegativeNumber);
  app->add_flag("--reverse", args->reverse, "From the last key backwards");
  app->add_flag("--keys-only", args->keys_only, "Print only the keys");
  AddStatsFlag(app, &args->stats);
  return Command{app, [args] { return RunScan(*args); }};
}

}  // namespace vde::vdisk
