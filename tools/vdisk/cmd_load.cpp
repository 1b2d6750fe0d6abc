// vdisk load: reads a dump (kv_format.h) into an index, in WriteBatches, with a progress line on
// a terminal, and checkpoints at the end (Close).
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tools/vdisk/cli_common.h"
#include "tools/vdisk/commands.h"
#include "tools/vdisk/kv_common.h"
#include "tools/vdisk/kv_format.h"
#include "tools/vdisk/progress.h"
#include "tools/vdisk/stats_report.h"

namespace vde::vdisk {
namespace {

constexpr uint64_t kDefaultBatch = 1000;
// A batch is also written once it holds this much, so that --batch 1000 of 1 MiB values does
// not hold a gigabyte in memory.
constexpr size_t kMaxBatchBytes = 16 << 20;

constexpr const char* kLoadFooter =
    R"(Reads a dump as written by vdisk dump (from FILE, or standard input for - or no FILE) and
puts every key into the index, replacing existing values; keys not in the dump are kept.
Keys are written in batches of --batch keys (or 16 MiB), each applied atomically (smaller
ones where the disk is too full for a whole batch), and made durable by a checkpoint at the
end. A load that fails part-way (a damaged dump, a full disk) keeps the batches before the
failure; loading the same dump again is safe. On a terminal, a progress line on stderr shows
keys and bytes and their rates; piped or with --quiet there is none.

Examples:
  vdisk load data.vdisk data.dump
  vdisk dump old.vdisk | vdisk load new.vdisk
  zcat blobs.dump.gz | vdisk load data.vdisk --index blobs --create-index)";

struct LoadArgs {
  StoreArgs store;
  std::string input = "-";
  uint64_t batch = kDefaultBatch;
  bool create_index = false;
  bool quiet = false;
  bool stats = false;
};

// Writes records into one index in batches. Store::Write keeps back room to undo every key of
// a batch, a few blocks per key, so on a small or nearly full disk a batch may be refused with
// NoSpace although its data would fit. The loader then checkpoints (making the blocks freed
// since the last checkpoint reusable) and retries, and then halves the batch, down to single
// keys: a load fails for lack of space only when a key on its own does not fit.
class Loader {
 public:
  Loader(Store& store, const Index& index, const LoadArgs& a)
      : store_(store), index_(index), args_(a) {}

  // Queues one record, writing the batch once it holds --batch keys or kMaxBatchBytes.
  Status Add(std::string key, std::string value) {
    pending_bytes_ += key.size() + value.size();
    pending_.emplace_back(std::move(key), std::move(value));
    if (pending_.size() >= args_.batch || pending_bytes_ >= kMaxBatchBytes) return Flush();
    return Status::OK();
  }

  // Writes what is queued.
  Status Flush() {
    Status s = Write(0, pending_.size());
    pending_.clear();
    pending_bytes_ = 0;
    return s;
  }

  uint64_t keys() const { return keys_; }    // written
  uint64_t bytes() const { return bytes_; }  // of the keys and values written

 private:
  using Record = std::pair<std::string, std::string>;

  // Writes pending_[begin, end) as one batch, or as smaller ones if the store has no room.
  Status Write(size_t begin, size_t end) {
    if (begin == end) return Status::OK();
    WriteBatch batch;
    uint64_t bytes = 0;
    for (size_t i = begin; i < end; i++) {
      batch.Put(index_, pending_[i].first, pending_[i].second);
      bytes += pending_[i].first.size() + pending_[i].second.size();
    }
    Status s = store_.Write(batch);
    if (s.IsNoSpace() && store_.GetStats().pending_blocks > 0) {
      VDE_RETURN_IF_ERROR(store_.Checkpoint().WithContext("checkpointing " + args_.store.Where()));
      s = store_.Write(batch);
    }
    if (s.IsNoSpace() && end - begin > 1) {
      const size_t mid = begin + (end - begin) / 2;
      VDE_RETURN_IF_ERROR(Write(begin, mid));
      return Write(mid, end);
    }
    if (!s.ok()) {
      return s.WithContext("loading " + args_.store.Where() + " (" + Count(keys_, "key", "keys") +
                           " loaded, then " + Quote(pending_[begin].first) + " failed)");
    }
    keys_ += end - begin;
    bytes_ += bytes;
    return Status::OK();
  }

  Store& store_;
  const Index& index_;
  const LoadArgs& args_;
  std::vector<Record> pending_;
  uint64_t pending_bytes_ = 0;
  uint64_t keys_ = 0;
  uint64_t bytes_ = 0;
};

// Reads the dump into the loader, then writes what is left.
Status LoadInto(DumpReader& reader, Loader& loader, Progress& progress) {
  VDE_RETURN_IF_ERROR(reader.Begin());
  std::string key, value;
  for (;;) {
    VDE_ASSIGN_OR_RETURN(bool got, reader.Next(&key, &value));
    if (!got) break;
    VDE_RETURN_IF_ERROR(loader.Add(std::move(key), std::move(value)));
    key.clear();
    value.clear();
    progress.Update(reader.records(), reader.bytes_read());
  }
  return loader.Flush();
}

int RunLoad(const LoadArgs& a) {
  if (int rc = CheckBackendUsable(a.store.backend); rc != kExitOk) return rc;
  // The input first: a missing dump should not open (and, for a fresh disk, change) the disk.
  const std::string name = StreamName(a.input);
  UniqueFile owned;
  FILE* in = stdin;
  uint64_t total = 0;
  if (a.input != "-") {
    owned.reset(std::fopen(a.input.c_str(), "rb"));
    if (owned == nullptr) return Fail(Status::FromErrno(errno, "opening " + name));
    in = owned.get();
  }
  struct stat st {};
  if (::fstat(::fileno(in), &st) == 0 && S_ISREG(st.st_mode)) {
    total = static_cast<uint64_t>(st.st_size);  // for the progress bar's share
  }

  const auto start = std::chrono::steady_clock::now();
  auto target = OpenIndexOf(a.store, /*read_only=*/false, a.create_index);
  if (!target.has_value()) return Fail(target.error());
  Store& store = target->store();
  const Index& index = target->index;

  DumpReader reader(in, name);
  Progress progress(ProgressWanted(a.quiet), "loading", total);
  Loader loader(store, index, a);
  Status s = LoadInto(reader, loader, progress);
  std::optional<StatsSnapshot> stats;
  if (a.stats && s.ok()) stats = TakeStats(store, index, a.store);
  // Close checkpoints what was written, also after a failure (see kLoadFooter).
  progress.Note(reader.records(), reader.bytes_read(), "checkpointing");
  Status c = store.Close();
  progress.Finish();
  if (!s.ok()) {
    const int rc = Fail(s);
    if (!c.ok()) Warn("the checkpoint at close failed too: " + c.ToString());
    return rc;
  }
  if (!c.ok()) return Fail(c);
  if (!a.quiet) {
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("loaded %s (%s) into %s in %.2f s\n", Count(loader.keys(), "key", "keys").c_str(),
                FormatSize(loader.bytes()).c_str(), a.store.Where().c_str(), secs);
  }
  return DoneWithStats(FlushStdout(), stats);
}

}  // namespace

Command RegisterLoad(CLI::App& top) {
  auto args = std::make_shared<LoadArgs>();
  CLI::App* app = top.add_subcommand("load", "Read a dump into an index");
  app->footer(kLoadFooter);
  AddStoreOptions(app, &args->store, /*keys_typed=*/false);
  app->add_option("FILE", args->input, "The dump to read; - (the default) for standard input")
      ->type_name("");
  app->add_option("--batch", args->batch, "Keys per atomic write batch")
      ->type_name("N")
      ->default_str("1000")
      ->check(CLI::PositiveNumber);
  app->add_flag("--create-index", args->create_index, "Create the --index if it does not exist");
  app->add_flag("-q,--quiet", args->quiet, "No progress line and no summary");
  AddStatsFlag(app, &args->stats);
  return Command{app, [args] { return RunLoad(*args); }};
}

}  // namespace vde::vdisk
