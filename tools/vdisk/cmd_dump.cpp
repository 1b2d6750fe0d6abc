// vdisk dump: writes every key and value of one index in the dump format (kv_format.h), which
// vdisk load reads back exactly.
#include <cerrno>
#include <cstdio>
#include <memory>
#include <string>

#include "tools/vdisk/cli_common.h"
#include "tools/vdisk/commands.h"
#include "tools/vdisk/kv_common.h"
#include "tools/vdisk/kv_format.h"

namespace vde::vdisk {
namespace {

constexpr const char* kDumpFooter =
    R"(The dump is text: a header line "vde-dump 1", one line per key in key order (the escaped
key, a tab, the escaped value), and a last line "vde-dump-end N" with the number of keys.
Any bytes round-trip exactly through dump and load. Opens the disk read-only. With -o, a
dump that fails part-way removes the file.

Examples:
  vdisk dump data.vdisk -o data.dump
  vdisk dump old.vdisk | vdisk load new.vdisk
  vdisk dump data.vdisk --index blobs | gzip > blobs.dump.gz)";

struct DumpArgs {
  StoreArgs store;
  std::string output;  // empty: stdout
};

Status WriteDump(Store& store, const Index& index, DumpWriter& w, const DumpArgs& a) {
  VDE_RETURN_IF_ERROR(w.Begin());
  if (index.valid()) {
    std::unique_ptr<Iterator> it = store.NewIterator(index);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::string_view value = it->value();
      if (!it->status().ok()) break;
      VDE_RETURN_IF_ERROR(w.Add(it->key(), value));
    }
    VDE_RETURN_IF_ERROR(it->status().WithContext("dumping " + a.store.Where()));
  }
  return w.Finish();
}

int RunDump(const DumpArgs& a) {
  if (int rc = CheckBackendUsable(a.store.backend); rc != kExitOk) return rc;
  auto target = OpenIndexOf(a.store, /*read_only=*/true, /*create=*/false);
  if (!target.has_value()) return Fail(target.error());
  Store& store = target->store();
  const Index& index = target->index;

  if (a.output.empty() || a.output == "-") {
    DumpWriter w(stdout, "standard output");
    Status s = WriteDump(store, index, w, a);
    if (!s.ok()) return Fail(s);
    return Done(store.Close());
  }
  // The file is made only once the disk has opened, so a mistyped PATH leaves nothing behind.
  UniqueFile out(std::fopen(a.output.c_str(), "wb"));
  if (out == nullptr) return Fail(Status::FromErrno(errno, "creating " + a.output));
  DumpWriter w(out.get(), a.output);
  Status s = WriteDump(store, index, w, a);
  if (s.ok() && std::fclose(out.release()) != 0)
    s = Status::FromErrno(errno, "writing " + a.output);
  if (!s.ok()) {
    out.reset();
    std::remove(a.output.c_str());
    return Fail(s);
  }
  s = store.Close();
  if (!s.ok()) return Fail(s);
  std::printf("dumped %s (%s) from %s to %s\n", Count(w.records(), "key", "keys").c_str(),
              FormatSize(w.bytes()).c_str(), a.store.Where().c_str(), a.output.c_str());
  return Done(FlushStdout());
}

}  // namespace

Command RegisterDump(CLI::App& top) {
  auto args = std::make_shared<DumpArgs>();
  CLI::App* app = top.add_subcommand("dump", "Write an index's keys and values as a dump");
  app->footer(kDumpFooter);
  AddStoreOptions(app, &args->store, /*keys_typed=*/false);
  app->add_option("-o,--output", args->output, "Write to FILE instead of standard output")
      ->type_name("FILE");
  return Command{app, [args] { return RunDump(*args); }};
}

}  // namespace vde::vdisk
