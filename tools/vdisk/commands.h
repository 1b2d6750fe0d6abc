// The vdisk subcommands. Each lives in its own cmd_<name>.cpp and has one registration
// function, listed in main.cpp's kCommands: adding a command is a new file, a declaration here
// and one line there.
//
// A registration function adds its CLI::App subcommand (options, help text) to the top-level
// app and returns what runs it after the command line has parsed. The run function owns the
// parsed option values (they live in a struct it shares with the option callbacks), prints its
// output to stdout and its errors to stderr ("vdisk: ..."), and returns the process exit code
// (cli_common.h). It must not throw.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace vde::vdisk {

struct Command {
  CLI::App* app = nullptr;   // the subcommand; parsed() tells whether it was chosen
  std::function<int()> run;  // returns the exit code
};

Command RegisterCreate(CLI::App& top);   // cmd_create.cpp
Command RegisterInspect(CLI::App& top);  // cmd_inspect.cpp
Command RegisterPut(CLI::App& top);      // cmd_put.cpp
Command RegisterGet(CLI::App& top);      // cmd_get.cpp
Command RegisterDelete(CLI::App& top);   // cmd_delete.cpp
Command RegisterScan(CLI::App& top);     // cmd_scan.cpp
Command RegisterLoad(CLI::App& top);     // cmd_load.cpp
Command RegisterDump(CLI::App& top);     // cmd_dump.cpp

}  // namespace vde::vdisk
