// vdisk get: prints the value of one key (Store::Get), escaped or raw.
#include <cstdio>
#include <memory>
#include <string>

#include "tools/vdisk/cli_common.h"
#include "tools/vdisk/commands.h"
#include "tools/vdisk/kv_common.h"
#include "tools/vdisk/kv_format.h"

namespace vde::vdisk {
namespace {

constexpr const char* kGetFooter =
    R"(Prints the value and a newline, escaped (\\ \t \n \r \xNN for anything but printable
ASCII) so that binary values are unambiguous; --raw writes the exact bytes instead, without
a newline. A missing key exits 4, like a missing file or index. Opens the disk read-only.

Examples:
  vdisk get data.vdisk user:42
  vdisk get data.vdisk photo:1 --index blobs --raw > photo.jpg
  vdisk get data.vdisk -e 'bin\x00key')";

struct GetArgs {
  StoreArgs store;
  std::string key;
  bool raw = false;
};

int RunGet(const GetArgs& a) {
  auto key = ArgBytes(a.store, "KEY", a.key);
  if (!key.has_value()) return Fail(key.error());
  if (int rc = CheckBackendUsable(a.store.backend); rc != kExitOk) return rc;

  auto opened = OpenStore(a.store, /*read_only=*/true);
  if (!opened.has_value()) return Fail(opened.error());
  Store& store = *opened->store;
  auto index = FindIndex(store, a.store, /*create=*/false);
  if (!index.has_value()) return Fail(index.error());
  const std::string missing = "no key " + Quote(*key) + " in " + a.store.Where();
  if (!index->valid()) return Fail(Status::NotFound(missing + " (the disk holds no store yet)"));
  std::string value;
  Status s = store.Get(*index, *key, &value);
  if (s.IsNotFound()) return Fail(Status::NotFound(missing));
  if (!s.ok()) return Fail(s.WithContext("get " + Quote(*key) + " from " + a.store.Where()));
  s = store.Close();
  if (!s.ok()) return Fail(s);

  if (a.raw) {
    std::fwrite(value.data(), 1, value.size(), stdout);
  } else {
    std::string line = Escape(value);
    line.push_back('\n');
    std::fwrite(line.data(), 1, line.size(), stdout);
  }
  return Done(FlushStdout());
}

}  // namespace

Command RegisterGet(CLI::App& top) {
  auto args = std::make_shared<GetArgs>();
  CLI::App* app = top.add_subcommand("get", "Print the value of a key");
  app->footer(kGetFooter);
  AddStoreOptions(app, &args->store, /*keys_typed=*/true);
  app->add_option("KEY", args->key, "The key")->type_name("")->required();
  app->add_flag("--raw", args->raw, "Write the value's exact bytes, without a newline");
  return Command{app, [args] { return RunGet(*args); }};
}

}  // namespace vde::vdisk
