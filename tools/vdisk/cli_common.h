// Shared pieces of the vdisk command-line tool: exit codes, error reporting, size parsing and
// formatting, and the CLI11 options several commands take. docs/TOOLS.md documents the
// behaviour seen by users; keep the two in step.
//
// Everything here is single-threaded command-line code; the functions are pure except the
// ones that print (Fail, Warn), which write to stderr.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#include "blockdev/open_block_device.h"
#include "blockdev/status.h"

namespace vde::vdisk {

// The process exit codes, documented in docs/TOOLS.md and `vdisk --help`.
inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 1;    // bad command line or option values (InvalidArgument)
inline constexpr int kExitCorrupt = 2;  // not a virtual disk, damaged, or a newer format
inline constexpr int kExitIo = 3;       // I/O error, no space, read-only or busy file system
inline constexpr int kExitPath = 4;     // the file is missing, or exists where it must not

// The exit code for a failed Status (kExitOk for OK).
int ExitCodeFor(const Status& s);

// Prints "vdisk: <status>" to stderr and returns ExitCodeFor(s).
int Fail(const Status& s);

// kExitOk for OK, else Fail(s): the last line of a command whose final step can fail.
int Done(const Status& s);

// Prints "vdisk: warning: <msg>" to stderr.
void Warn(std::string_view msg);

// Parses a size: decimal digits with an optional fraction and an optional binary unit,
// case-insensitive: B (bytes), K/KiB, M/MiB, G/GiB, T/TiB, P/PiB (powers of 1024), e.g. 4096,
// 4K, 4KiB, 10G, 1.5G. The result must be a whole number of bytes. Decimal units (KB, GB) are
// refused as ambiguous. InvalidArgument, naming the text and the cause, for anything else or
// for a value that does not fit 64 bits.
Result<uint64_t> ParseSize(std::string_view text);

// "512 bytes", "4 KiB", "1.5 GiB", "10.0 GiB" (one decimal when not a whole number of the unit).
std::string FormatSize(uint64_t bytes);

// "1 key", "2 keys": `n` and the noun that goes with it.
std::string Count(uint64_t n, std::string_view one, std::string_view many);

// "16384 blocks (64 MiB)" for blocks of block_size bytes; "1 block (4 KiB)".
std::string FormatBlocks(uint64_t blocks, uint32_t block_size);

// UTC, ISO 8601: "2024-05-01T12:34:56Z"; "-" for 0.
std::string FormatTime(uint64_t ns_since_epoch);

// Adds a size option: the value is parsed by ParseSize while the command line is parsed, so a
// bad value is a usage error (exit 1) naming the option. `*bytes` receives the byte count.
CLI::Option* AddSizeOption(CLI::App* app, const std::string& name, uint64_t* bytes,
                           const std::string& description);

// Adds `--backend auto|io_uring|file`, parsed by blockdev::ParseBackend.
CLI::Option* AddBackendOption(CLI::App* app, blockdev::Backend* backend);

// kExitOk, or (after printing why) kExitIo when `backend` is io_uring, asked for explicitly,
// and this machine cannot use it. Checked up front because the device would report it as
// NotSupported, which for vdisk means a disk from a newer version (exit 2).
int CheckBackendUsable(blockdev::Backend backend);

}  // namespace vde::vdisk
