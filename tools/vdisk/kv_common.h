// What vdisk's key-value commands (put, get, delete, scan, load, dump) share: the disk path and
// the options every one of them takes (--index, --cache, --backend, and --escaped where keys are
// typed), opening the store, finding the index, and reading keys from the command line.
//
// Single-threaded command-line code. Errors are Status values naming the file and the index;
// the commands print them with Fail (cli_common.h).
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "blockdev/open_block_device.h"
#include "blockdev/posix_file.h"
#include "blockdev/status.h"
#include "vde/store.h"

namespace vde::vdisk {

inline constexpr uint64_t kDefaultCacheBytes = 64ull << 20;

struct StoreArgs {
  std::string path;
  std::string index;  // --index; empty for the default index
  uint64_t cache_bytes = kDefaultCacheBytes;
  blockdev::Backend backend = blockdev::Backend::kAuto;
  bool escaped = false;  // --escaped: keys, values and bounds are in the escaped form

  // The index's name as given, or "default".
  std::string IndexName() const;
  // "index 'x' of d.vdisk", with the name escaped, for messages.
  std::string Where() const;
};

// Adds the PATH positional (first, so the command's own positionals follow it), --index,
// --cache and --backend. With `keys_typed`, also --escaped.
void AddStoreOptions(CLI::App* app, StoreArgs* args, bool keys_typed);

// A store opened by a command, and the lock that keeps other vdisk processes off its disk
// meanwhile: an open-file-description lock (fcntl F_OFD_SETLK) on one byte far past the end of
// any disk, shared for reading and exclusive for writing. The disk layer takes no lock of its
// own, and two processes writing one disk would each allocate the same free blocks and each
// checkpoint over the other. Only vdisk honours this lock; being a byte-range lock, it cannot
// collide with a whole-file flock that the disk layer may take one day.
struct OpenedStore {
  blockdev::UniqueFd lock;  // first, so it is released after the store closes
  std::unique_ptr<Store> store;
};

// Opens the store in args.path. read_only never writes (get, scan, dump, inspect); otherwise a
// disk fresh from `vdisk create` gets its store here. A missing file is NotFound naming it; a
// disk another vdisk is writing (or, for a write, reading) is Busy.
Result<OpenedStore> OpenStore(const StoreArgs& args, bool read_only);

// The index args names. NotFound naming it and the file when it does not exist, unless
// `create` (then it is made). A store opened read-only on a disk that has no store yet (never
// opened for writing) has no indexes at all: its default index is returned as an invalid
// Index, which callers treat as empty.
Result<Index> FindIndex(Store& store, const StoreArgs& args, bool create);

// What every key-value command starts with: OpenStore, then FindIndex in it.
struct OpenedIndex {
  OpenedStore opened;
  Index index;
  Store& store() const { return *opened.store; }
};
Result<OpenedIndex> OpenIndexOf(const StoreArgs& args, bool read_only, bool create);

// A key, value or bound from the command line: the bytes as typed, or unescaped with --escaped
// (InvalidArgument naming `what` for a bad escape).
Result<std::string> ArgBytes(const StoreArgs& args, std::string_view what, std::string_view text);

// Owns a stdio stream; closing it (ignoring the result) on destruction. Streams written to are
// closed explicitly, with the result checked, before the owner lets go.
struct FileCloser {
  void operator()(FILE* f) const { (void)std::fclose(f); }
};
using UniqueFile = std::unique_ptr<FILE, FileCloser>;

// "standard input" for "-", else the path: how messages name an input or output file.
std::string StreamName(const std::string& path);

// The whole content of the file at `path`, or of standard input for "-". Errors name the file.
Result<std::string> ReadAll(const std::string& path);

// Flushes stdout; IOError if that or any earlier write to it failed (a full disk, a closed pipe
// with SIGPIPE ignored).
Status FlushStdout();

}  // namespace vde::vdisk
