// vdisk get: prints the value of one key (Store::Get), escaped or raw, or of several keys, one
// line each (Store::MultiGet).
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tools/vdisk/cli_common.h"
#include "tools/vdisk/commands.h"
#include "tools/vdisk/kv_common.h"
#include "tools/vdisk/kv_format.h"
#include "tools/vdisk/stats_report.h"

namespace vde::vdisk {
namespace {

constexpr const char* kGetFooter =
    R"(Prints the value and a newline, escaped (\\ \t \n \r \xNN for anything but printable
ASCII) so that binary values are unambiguous; --raw writes the exact bytes instead, without
a newline. A missing key exits 4, like a missing file or index. Opens the disk read-only.

With several keys, looked up together: one line per key, in the order given, the escaped key,
a tab and the escaped value, or \N (which no escaped value can be) for a missing key; exit 4
when any is missing, after printing every line. --raw takes one key.

Examples:
  vdisk get data.vdisk user:42
  vdisk get data.vdisk user:1 user:2 user:3
  vdisk get data.vdisk photo:1 --index blobs --raw > photo.jpg
  vdisk get data.vdisk -e 'bin\x00key')";

struct GetArgs {
  StoreArgs store;
  std::vector<std::string> keys;  // one or more
  bool raw = false;
  bool stats = false;
};

// Marks a missing key's value in the output of several keys: not an escape (Unescape refuses
// it), so it never stands for a value. PostgreSQL's COPY text format marks NULL the same way.
constexpr std::string_view kMissingValue = "\\N";

// Several keys: one Store::MultiGet, then one line per key in the order given.
int RunGetMany(const GetArgs& a) {
  if (a.raw) {
    return Fail(Status::InvalidArgument(
        "--raw takes one KEY: the exact bytes of several values could not be told apart"));
  }
  std::vector<std::string> keys;
  for (const std::string& text : a.keys) {
    auto key = ArgBytes(a.store, "KEY", text);
    if (!key.has_value()) return Fail(key.error());
    keys.push_back(std::move(*key));
  }
  if (int rc = CheckBackendUsable(a.store.backend); rc != kExitOk) return rc;

  auto target = OpenIndexOf(a.store, /*read_only=*/true, /*create=*/false);
  if (!target.has_value()) return Fail(target.error());
  Store& store = target->store();
  const Index& index = target->index;
  // A disk without a store yet: an empty index, every key missing.
  std::vector<std::string> values(keys.size());
  std::vector<Status> statuses(keys.size(), Status::NotFound("the disk holds no store yet"));
  if (index.valid()) {
    const std::vector<std::string_view> views(keys.begin(), keys.end());
    Status s = store.MultiGet(index, views, &values, &statuses);
    if (!s.ok()) {  // name the first key that failed (not merely missing)
      for (size_t i = 0; i < keys.size(); i++) {
        if (!statuses[i].ok() && !statuses[i].IsNotFound()) {
          return Fail(
              statuses[i].WithContext("get " + Quote(keys[i]) + " from " + a.store.Where()));
        }
      }
      return Fail(s.WithContext("get from " + a.store.Where()));
    }
  }
  std::optional<StatsSnapshot> stats;
  if (a.stats) stats = TakeStats(store, index, a.store);
  Status s = store.Close();
  if (!s.ok()) return Fail(s);

  std::string out;
  std::vector<size_t> missing;
  for (size_t i = 0; i < keys.size(); i++) {
    AppendEscaped(keys[i], &out);
    out.push_back('\t');
    if (statuses[i].ok()) {
      AppendEscaped(values[i], &out);
    } else {
      out += kMissingValue;
      missing.push_back(i);
    }
    out.push_back('\n');
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  const int rc = DoneWithStats(FlushStdout(), stats);
  if (rc != kExitOk || missing.empty()) return rc;
  std::string names;
  for (size_t j = 0; j < missing.size() && j < 3; j++) {
    names += (j == 0 ? "" : ", ") + Quote(keys[missing[j]]);
  }
  if (missing.size() > 3) names += ", ...";
  std::string msg = missing.size() == 1 ? "no key " + names + " in " + a.store.Where()
                                        : std::to_string(missing.size()) + " of " +
                                              Count(keys.size(), "key", "keys") + " are not in " +
                                              a.store.Where() + ": " + names;
  if (!index.valid()) msg += " (the disk holds no store yet)";
  return Fail(Status::NotFound(msg));
}

int RunGet(const GetArgs& a) {
  if (a.keys.size() > 1) return RunGetMany(a);
  auto key = ArgBytes(a.store, "KEY", a.keys.front());
  if (!key.has_value()) return Fail(key.error());
  if (int rc = CheckBackendUsable(a.store.backend); rc != kExitOk) return rc;

  auto target = OpenIndexOf(a.store, /*read_only=*/true, /*create=*/false);
  if (!target.has_value()) return Fail(target.error());
  Store& store = target->store();
  const Index& index = target->index;
  const std::string missing = "no key " + Quote(*key) + " in " + a.store.Where();
  if (!index.valid()) return Fail(Status::NotFound(missing + " (the disk holds no store yet)"));
  std::string value;
  Status s = store.Get(index, *key, &value);
  if (s.IsNotFound()) return Fail(Status::NotFound(missing));
  if (!s.ok()) return Fail(s.WithContext("get " + Quote(*key) + " from " + a.store.Where()));
  std::optional<StatsSnapshot> stats;
  if (a.stats) stats = TakeStats(store, index, a.store);
  s = store.Close();
  if (!s.ok()) return Fail(s);

  if (a.raw) {
    std::fwrite(value.data(), 1, value.size(), stdout);
  } else {
    std::string line = Escape(value);
    line.push_back('\n');
    std::fwrite(line.data(), 1, line.size(), stdout);
  }
  return DoneWithStats(FlushStdout(), stats);
}

}  // namespace

Command RegisterGet(CLI::App& top) {
  auto args = std::make_shared<GetArgs>();
  CLI::App* app = top.add_subcommand("get", "Print the value of a key, or of several");
  app->footer(kGetFooter);
  AddStoreOptions(app, &args->store, /*keys_typed=*/true);
  app->add_option("KEY", args->keys, "The key, or several keys (looked up together)")
      ->type_name("")
      ->required();
  app->add_flag("--raw", args->raw, "Write the value's exact bytes, without a newline");
  AddStatsFlag(app, &args->stats);
  return Command{app, [args] { return RunGet(*args); }};
}

}  // namespace vde::vdisk
