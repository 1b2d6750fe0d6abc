#include "tools/vdisk/kv_common.h"

#include <fcntl.h>

#include <cerrno>
#include <cstdio>

#include "tools/vdisk/cli_common.h"
#include "tools/vdisk/kv_format.h"

namespace vde::vdisk {

namespace {

// The byte OpenStore locks: far past the end of any disk file.
constexpr off_t kLockByte = off_t{1} << 62;

IoBackend ToIoBackend(blockdev::Backend b) {
  switch (b) {
    case blockdev::Backend::kIoUring:
      return IoBackend::kIoUring;
    case blockdev::Backend::kFile:
      return IoBackend::kFile;
    case blockdev::Backend::kAuto:
      break;
  }
  return IoBackend::kAuto;
}

}  // namespace

std::string StoreArgs::IndexName() const {
  return index.empty() ? std::string(Store::kDefaultIndex) : index;
}

std::string StoreArgs::Where() const {
  return "index '" + Escape(IndexName()) + "' of " + path;
}

void AddStoreOptions(CLI::App* app, StoreArgs* args, bool keys_typed) {
  app->add_option("PATH", args->path, "The disk file")->type_name("")->required();
  app->add_option("--index", args->index, "The index to use (default: the index \"default\")")
      ->type_name("NAME");
  AddSizeOption(app, "--cache", &args->cache_bytes, "Page cache size")->default_str("64M");
  AddBackendOption(app, &args->backend);
  if (keys_typed) {
    app->add_flag("-e,--escaped", args->escaped,
                  "Keys, values and bounds are escaped text: \\\\ \\t \\n \\r \\xNN");
  }
}

Result<OpenedStore> OpenStore(const StoreArgs& args, bool read_only) {
  OpenedStore opened;
  // A write lock needs a descriptor open for writing; opening one also reports a file the user
  // may not write, or on a read-only file system, in the terms of the file (EACCES, EROFS).
  opened.lock = blockdev::UniqueFd(
      ::open(args.path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY));
  if (!opened.lock.valid()) {
    Status s = Status::FromErrno(errno, args.path);
    if (!s.IsNotFound()) return s;
    return Status::NotFound(std::string(s.message()) + " (make a disk with `vdisk create`)");
  }
  struct flock fl {};
  fl.l_type = read_only ? F_RDLCK : F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = kLockByte;
  fl.l_len = 1;
  if (::fcntl(opened.lock.get(), F_OFD_SETLK, &fl) != 0) {
    if (errno == EAGAIN || errno == EACCES) {
      return Status::Busy(args.path + ": in use by another vdisk " +
                          (read_only ? "writing to it" : "process") +
                          " (try again when it has finished)");
    }
    return Status::FromErrno(errno, "locking " + args.path);
  }
  Options o;
  o.read_only = read_only;
  o.cache_bytes = args.cache_bytes;
  o.backend = ToIoBackend(args.backend);
  VDE_ASSIGN_OR_RETURN(opened.store, Store::Open(args.path, o));
  return opened;
}

Result<Index> FindIndex(Store& store, const StoreArgs& args, bool create) {
  const std::string name = args.IndexName();
  Result<Index> index = store.OpenIndex(name);
  if (index.has_value()) return index;
  if (!index.error().IsNotFound()) return index.error().WithContext(args.path);
  if (name == Store::kDefaultIndex && store.ListIndexes().empty()) return Index();
  if (create) {
    Result<Index> made = store.CreateIndex(name);
    if (!made.has_value()) return made.error().WithContext(args.path);
    return made;
  }
  return Status::NotFound(args.Where() + " does not exist (put or load with --create-index " +
                          "makes one)");
}

Result<OpenedIndex> OpenIndexOf(const StoreArgs& args, bool read_only, bool create) {
  OpenedIndex target;
  VDE_ASSIGN_OR_RETURN(target.opened, OpenStore(args, read_only));
  VDE_ASSIGN_OR_RETURN(target.index, FindIndex(*target.opened.store, args, create));
  return target;
}

Result<std::string> ArgBytes(const StoreArgs& args, std::string_view what, std::string_view text) {
  if (!args.escaped) return std::string(text);
  Result<std::string> bytes = Unescape(text);
  if (!bytes.has_value()) return bytes.error().WithContext(std::string(what));
  return bytes;
}

std::string StreamName(const std::string& path) {
  return path == "-" ? std::string("standard input") : path;
}

Result<std::string> ReadAll(const std::string& path) {
  const std::string name = StreamName(path);
  UniqueFile owned;
  FILE* in = stdin;
  if (path != "-") {
    owned.reset(std::fopen(path.c_str(), "rb"));
    if (owned == nullptr) return Status::FromErrno(errno, "opening " + name);
    in = owned.get();
  }
  std::string bytes;
  char buf[64 << 10];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, in)) > 0) bytes.append(buf, n);
  if (std::ferror(in) != 0) return Status::FromErrno(errno, "reading " + name);
  return bytes;
}

Status FlushStdout() {
  if (std::fflush(stdout) != 0 || std::ferror(stdout) != 0) {
    return Status::FromErrno(errno, "writing to standard output");
  }
  return Status::OK();
}

}  // namespace vde::vdisk
