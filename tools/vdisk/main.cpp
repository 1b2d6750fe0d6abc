// vdisk: the command-line tool for vde virtual disks. See docs/TOOLS.md.
//
// main() builds the CLI11 app, lets every subcommand register itself, parses, and runs the one
// chosen. CLI11 reports parse errors, --help and --version by throwing; they are caught here
// and nowhere else, and every other failure comes back as an exit code.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "tools/vdisk/cli_common.h"
#include "tools/vdisk/commands.h"
#include "vde/format.h"

#ifndef VDE_VERSION
#define VDE_VERSION "unknown"
#endif

namespace vde::vdisk {
namespace {

using RegisterFn = Command (*)(CLI::App&);
constexpr RegisterFn kCommands[] = {
    RegisterCreate,   // cmd_create.cpp
    RegisterInspect,  // cmd_inspect.cpp
    RegisterPut,      // cmd_put.cpp
    RegisterGet,      // cmd_get.cpp
    RegisterDelete,   // cmd_delete.cpp
    RegisterScan,     // cmd_scan.cpp
    RegisterLoad,     // cmd_load.cpp
    RegisterDump,     // cmd_dump.cpp
};

constexpr const char* kFooter =
    R"(Sizes take binary units: 4096, 4K, 4KiB, 64M, 10G, 1.5G (1G = 1024^3 bytes).

Exit codes:
  0  success
  1  usage: bad command line or option values
  2  not a virtual disk (or not a dump), damaged, or from a newer vdisk (format version,
     features, dump version)
  3  I/O error, no space, a read-only or busy file system, or a disk in use by another vdisk
  4  the file, index or key does not exist, or a file exists where a new one was asked for
See docs/TOOLS.md for details.)";

int Run(int argc, char** argv) {
  CLI::App app("vdisk: create and inspect vde virtual disks, and read and write their keys",
               "vdisk");
  // Inherited by the subcommands, so it must be set before they are added.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "vdisk: " + std::string(e.what()) + "\nRun with --help for more information.\n";
  });
  app.set_version_flag("--version", std::string("vdisk ") + VDE_VERSION + " (disk format version " +
                                        std::to_string(format::kFormatVersion) + ")");
  app.footer(kFooter);
  app.require_subcommand(1);

  std::vector<Command> commands;
  for (RegisterFn reg : kCommands) commands.push_back(reg(app));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive here too, with exit code 0.
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  for (const Command& c : commands) {
    if (c.app->parsed()) return c.run();
  }
  return kExitUsage;  // unreachable: require_subcommand(1)
}

}  // namespace
}  // namespace vde::vdisk

int main(int argc, char** argv) {
  try {
    return vde::vdisk::Run(argc, argv);
  } catch (const std::exception& e) {
    // Only std::bad_alloc and the like can get here; the commands report errors as Status.
    std::fprintf(stderr, "vdisk: internal error: %s\n", e.what());
    return vde::vdisk::kExitIo;
  }
}
