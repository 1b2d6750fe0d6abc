// vdisk put: stores one key and value (Store::Put) and checkpoints (Close).
#include <memory>
#include <string>

#include "tools/vdisk/cli_common.h"
#include "tools/vdisk/commands.h"
#include "tools/vdisk/kv_common.h"
#include "tools/vdisk/kv_format.h"

namespace vde::vdisk {
namespace {

constexpr const char* kPutFooter =
    R"(Replaces the value if the key exists. KEY and VALUE are taken byte for byte as typed; with
--escaped they are escaped text (\\ \t \n \r \xNN), which reaches any byte. A value too long
for the command line (the kernel allows 128 KiB per argument) comes from --value-file. A key
or value that starts with '-' follows "--".

Examples:
  vdisk put data.vdisk user:42 'Ada Lovelace'
  vdisk put data.vdisk -e 'bin\x00key' '\xff\xfe'
  vdisk put data.vdisk photo:1 --value-file photo.jpg --index blobs --create-index
  vdisk put data.vdisk -- -dash-key value)";

struct PutArgs {
  StoreArgs store;
  std::string key;
  std::string value;
  std::string value_file;
  bool create_index = false;
  CLI::Option* value_opt = nullptr;
  CLI::Option* value_file_opt = nullptr;
};

int RunPut(const PutArgs& a) {
  const bool has_value = a.value_opt->count() > 0;
  const bool has_file = a.value_file_opt->count() > 0;
  if (has_value == has_file) {
    return Fail(Status::InvalidArgument("give the value either as VALUE or with --value-file"));
  }
  auto key = ArgBytes(a.store, "KEY", a.key);
  if (!key.has_value()) return Fail(key.error());
  auto value = has_file ? ReadAll(a.value_file) : ArgBytes(a.store, "VALUE", a.value);
  if (!value.has_value()) return Fail(value.error());
  if (int rc = CheckBackendUsable(a.store.backend); rc != kExitOk) return rc;

  auto target = OpenIndexOf(a.store, /*read_only=*/false, a.create_index);
  if (!target.has_value()) return Fail(target.error());
  Store& store = target->store();
  const Index& index = target->index;
  Status s = store.Put(index, *key, *value);
  if (!s.ok()) return Fail(s.WithContext("put " + Quote(*key) + " into " + a.store.Where()));
  return Done(store.Close());
}

}  // namespace

Command RegisterPut(CLI::App& top) {
  auto args = std::make_shared<PutArgs>();
  CLI::App* app = top.add_subcommand("put", "Store a key and its value");
  app->footer(kPutFooter);
  AddStoreOptions(app, &args->store, /*keys_typed=*/true);
  app->add_option("KEY", args->key, "The key (1 byte up to the limit, 1 KiB for 4K blocks)")
      ->type_name("")
      ->required();
  args->value_opt =
      app->add_option("VALUE", args->value, "The value (may be empty)")->type_name("");
  args->value_file_opt =
      app->add_option("--value-file", args->value_file, "Read the value from FILE (- for stdin)")
          ->type_name("FILE");
  app->add_flag("--create-index", args->create_index, "Create the --index if it does not exist");
  return Command{app, [args] { return RunPut(*args); }};
}

}  // namespace vde::vdisk
