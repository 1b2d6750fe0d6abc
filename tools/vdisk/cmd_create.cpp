// vdisk create: makes a new virtual disk file (Disk::Create) and prints what it made.
#include <sys/stat.h>

#include <cstdio>
#include <memory>
#include <string>

#include "tools/vdisk/cli_common.h"
#include "tools/vdisk/commands.h"
#include "vde/disk.h"
#include "vde/format.h"

namespace vde::vdisk {
namespace {

constexpr uint64_t kDefaultGrowthStep = 64ull << 20;

constexpr const char* kCreateFooter = R"(Sizes:
  Fixed-size disk: --size is the disk's size; the file is made that large at once (sparse where
  the file system allows).
  Growable disk (--growable): --size is the virtual size, the most the disk may grow to, and the
  file starts small (one growth step) and grows on demand. Without --size the disk may grow
  without limit. With --max-size, --max-size is the virtual size and --size the file's initial
  size instead.
  Every size must be a multiple of the block size; a disk has at least 8 blocks.

Examples:
  vdisk create data.vdisk --size 10G
  vdisk create thin.vdisk --size 100G --growable
  vdisk create thin.vdisk --growable --size 1G --max-size 100G --growth-step 256M
  vdisk create small.vdisk --size 64M --block-size 16K --force)";

struct CreateArgs {
  std::string path;
  uint64_t size = 0;
  uint64_t block_size = blockdev::kDefaultBlockSize;
  bool growable = false;
  uint64_t max_size = 0;
  uint64_t growth_step = kDefaultGrowthStep;
  bool force = false;
  blockdev::Backend backend = blockdev::Backend::kAuto;
  CLI::Option* size_opt = nullptr;
  CLI::Option* max_size_opt = nullptr;
};

Status Usage(const std::string& msg) {
  return Status::InvalidArgument(msg);
}

// Turns the command line into CreateOptions (see kCreateFooter for the meaning of the sizes).
Result<CreateOptions> ToCreateOptions(const CreateArgs& a) {
  if (a.block_size > blockdev::kMaxBlockSize ||
      !blockdev::IsValidBlockSize(static_cast<uint32_t>(a.block_size))) {
    return Usage("--block-size " + FormatSize(a.block_size) +
                 " is not a power of two from 512 bytes to 64 KiB");
  }
  CreateOptions o;
  o.block_size = static_cast<uint32_t>(a.block_size);
  o.force = a.force;
  o.backend = a.backend;
  const bool has_size = a.size_opt->count() > 0;
  auto check_multiple = [&](const char* option, uint64_t bytes) -> Status {
    if (bytes % o.block_size == 0) return Status::OK();
    return Usage(std::string(option) + " " + std::to_string(bytes) +
                 " bytes is not a multiple of the block size (" + FormatSize(o.block_size) + ")");
  };
  if (!a.growable) {
    if (!has_size) return Usage("--size is required (or --growable for a disk that grows)");
    VDE_RETURN_IF_ERROR(check_multiple("--size", a.size));
    o.size_bytes = a.size;
    return o;
  }
  o.growable = true;
  o.growth_step_bytes = a.growth_step;
  if (a.growth_step == 0) return Usage("--growth-step must not be 0");
  VDE_RETURN_IF_ERROR(check_multiple("--growth-step", a.growth_step));
  if (a.max_size_opt->count() > 0) {
    if (a.max_size == 0) return Usage("--max-size must not be 0 (omit it for no limit)");
    VDE_RETURN_IF_ERROR(check_multiple("--max-size", a.max_size));
    VDE_RETURN_IF_ERROR(check_multiple("--size", a.size));
    if (a.size > a.max_size) {
      return Usage("--size (the initial size, " + FormatSize(a.size) + ") exceeds --max-size (" +
                   FormatSize(a.max_size) + ")");
    }
    o.size_bytes = a.size;
    o.max_size_bytes = a.max_size;
  } else {
    VDE_RETURN_IF_ERROR(check_multiple("--size", a.size));
    o.size_bytes = 0;  // start small
    o.max_size_bytes = a.size;
  }
  if (o.max_size_bytes != 0 && o.max_size_bytes < format::kMinDiskBlocks * o.block_size) {
    return Usage("the virtual size " + FormatSize(o.max_size_bytes) + " is below the minimum of " +
                 std::to_string(format::kMinDiskBlocks) + " blocks");
  }
  return o;
}

// Refuses to replace anything but a regular file, even with --force: a block device or a
// directory named by mistake must not be clobbered.
Status CheckTarget(const CreateArgs& a) {
  struct stat st {};
  if (::stat(a.path.c_str(), &st) != 0) return Status::OK();  // Create reports what is wrong
  if (!S_ISREG(st.st_mode)) {
    return Status::AlreadyExists(a.path +
                                 " (not a regular file: create makes files only, and --force does "
                                 "not replace other things)");
  }
  if (!a.force) {
    return Status::AlreadyExists(a.path + " (use --force to replace it)");
  }
  return Status::OK();
}

void PrintCreated(const DiskInfo& info) {
  const uint32_t bs = info.block_size;
  if (info.growable) {
    std::string limit = info.max_size_bytes == 0
                            ? std::string("without limit")
                            : "up to " + FormatBlocks(info.max_size_bytes / bs, bs);
    std::printf("created %s: growable disk, %s of %s, grows %s in steps of %s\n", info.path.c_str(),
                FormatBlocks(info.block_count, bs).c_str(), FormatSize(bs).c_str(), limit.c_str(),
                FormatSize(info.growth_step_bytes).c_str());
  } else {
    std::printf("created %s: fixed-size disk, %s of %s\n", info.path.c_str(),
                FormatBlocks(info.block_count, bs).c_str(), FormatSize(bs).c_str());
  }
  std::printf("uuid:    %s\n", info.uuid.c_str());
  std::printf("file:    %s, %s allocated on the host\n", FormatSize(info.file_size_bytes).c_str(),
              FormatSize(info.host_size_bytes).c_str());
  std::printf("backend: %s (%s)\n", std::string(blockdev::BackendName(info.backend)).c_str(),
              info.backend_reason.c_str());
  for (const std::string& note : info.backend_notes) std::printf("  note:  %s\n", note.c_str());
}

int RunCreate(const CreateArgs& a) {
  auto opts = ToCreateOptions(a);
  if (!opts.has_value()) return Fail(opts.error());
  if (int rc = CheckBackendUsable(a.backend); rc != kExitOk) return rc;
  Status s = CheckTarget(a);
  if (!s.ok()) return Fail(s);
  auto disk = Disk::Create(a.path, *opts);
  if (!disk.has_value()) return Fail(disk.error());
  auto info = (*disk)->Inspect();
  s = (*disk)->Close();
  if (!s.ok()) return Fail(s);
  // The disk exists and is closed cleanly; a failure to describe it is only worth a warning.
  if (!info.has_value()) {
    Warn("created " + a.path + ", but could not inspect it: " + info.error().ToString());
    return kExitOk;
  }
  PrintCreated(*info);
  return kExitOk;
}

}  // namespace

Command RegisterCreate(CLI::App& top) {
  auto args = std::make_shared<CreateArgs>();
  CLI::App* app = top.add_subcommand("create", "Create a new virtual disk file");
  app->footer(kCreateFooter);
  app->add_option("PATH", args->path, "The disk file to create")->type_name("")->required();
  args->size_opt = AddSizeOption(app, "--size", &args->size,
                                 "Disk size; with --growable the virtual size (see below)");
  AddSizeOption(app, "--block-size", &args->block_size,
                "Block size: a power of two from 512 to 64K")
      ->default_str("4K");
  CLI::Option* growable =
      app->add_flag("--growable", args->growable, "Start small and grow the file on demand");
  args->max_size_opt = AddSizeOption(app, "--max-size", &args->max_size,
                                     "Growable: the virtual size; --size is then the initial size")
                           ->needs(growable);
  AddSizeOption(app, "--growth-step", &args->growth_step, "Growable: how much the file grows by")
      ->default_str("64M")
      ->needs(growable);
  app->add_flag("--force", args->force, "Replace an existing file at PATH");
  AddBackendOption(app, &args->backend);
  return Command{app, [args] { return RunCreate(*args); }};
}

}  // namespace vde::vdisk
