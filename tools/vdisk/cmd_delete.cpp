// vdisk delete: removes one key (Store::Delete) and checkpoints (Close).
#include <memory>
#include <string>

#include "tools/vdisk/cli_common.h"
#include "tools/vdisk/commands.h"
#include "tools/vdisk/kv_common.h"
#include "tools/vdisk/kv_format.h"

namespace vde::vdisk {
namespace {

constexpr const char* kDeleteFooter =
    R"(Deleting a key that is not there succeeds (exit 0), as rm -f does: afterwards the key is
absent either way. The index must exist (exit 4 otherwise).

Examples:
  vdisk delete data.vdisk user:42
  vdisk delete data.vdisk -e 'bin\x00key' --index blobs)";

struct DeleteArgs {
  StoreArgs store;
  std::string key;
};

int RunDelete(const DeleteArgs& a) {
  auto key = ArgBytes(a.store, "KEY", a.key);
  if (!key.has_value()) return Fail(key.error());
  if (int rc = CheckBackendUsable(a.store.backend); rc != kExitOk) return rc;

  auto target = OpenIndexOf(a.store, /*read_only=*/false, /*create=*/false);
  if (!target.has_value()) return Fail(target.error());
  Store& store = target->store();
  const Index& index = target->index;
  Status s = store.Delete(index, *key);
  if (!s.ok()) return Fail(s.WithContext("delete " + Quote(*key) + " from " + a.store.Where()));
  return Done(store.Close());
}

}  // namespace

Command RegisterDelete(CLI::App& top) {
  auto args = std::make_shared<DeleteArgs>();
  CLI::App* app = top.add_subcommand("delete", "Remove a key");
  app->footer(kDeleteFooter);
  AddStoreOptions(app, &args->store, /*keys_typed=*/true);
  app->add_option("KEY", args->key, "The key")->type_name("")->required();
  return Command{app, [args] { return RunDelete(*args); }};
}

}  // namespace vde::vdisk
