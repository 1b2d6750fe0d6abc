#include "tools/vdisk/cli_common.h"

#include <time.h>

#include <array>
#include <cctype>
#include <cinttypes>
#include <cstdio>
#include <utility>

namespace vde::vdisk {

namespace {

struct Unit {
  std::string_view name;  // lower case
  uint64_t multiplier;
};

constexpr std::array<Unit, 12> kUnits = {{
    {"", 1},
    {"b", 1},
    {"k", 1ull << 10},
    {"kib", 1ull << 10},
    {"m", 1ull << 20},
    {"mib", 1ull << 20},
    {"g", 1ull << 30},
    {"gib", 1ull << 30},
    {"t", 1ull << 40},
    {"tib", 1ull << 40},
    {"p", 1ull << 50},
    {"pib", 1ull << 50},
}};

// What FormatSize steps through, largest first.
constexpr std::array<std::pair<uint64_t, std::string_view>, 5> kFormatUnits = {{
    {1ull << 50, "PiB"},
    {1ull << 40, "TiB"},
    {1ull << 30, "GiB"},
    {1ull << 20, "MiB"},
    {1ull << 10, "KiB"},
}};

// Largest number of fraction digits accepted ("1.5G", "0.125T"): enough for any size a person
// types, small enough that digits * unit cannot overflow for units up to TiB.
constexpr size_t kMaxFractionDigits = 6;
constexpr uint64_t kMaxFractionScale = 1'000'000;  // 10^kMaxFractionDigits

Status BadSize(std::string_view text, std::string_view why) {
  return Status::InvalidArgument("invalid size \"" + std::string(text) + "\": " + std::string(why));
}

}  // namespace

int ExitCodeFor(const Status& s) {
  using C = Status::Code;
  switch (s.code()) {
    case C::kOk:
      return kExitOk;
    case C::kInvalidArgument:
    case C::kOutOfRange:
      return kExitUsage;
    case C::kCorruption:
    case C::kNotSupported:
      return kExitCorrupt;
    case C::kNotFound:
    case C::kAlreadyExists:
      return kExitPath;
    case C::kIOError:
    case C::kNoSpace:
    case C::kReadOnly:
    case C::kBusy:
      return kExitIo;
  }
  return kExitIo;
}

int Fail(const Status& s) {
  std::fprintf(stderr, "vdisk: %s\n", s.ToString().c_str());
  return ExitCodeFor(s);
}

int Done(const Status& s) {
  return s.ok() ? kExitOk : Fail(s);
}

void Warn(std::string_view msg) {
  std::fprintf(stderr, "vdisk: warning: %.*s\n", static_cast<int>(msg.size()), msg.data());
}

Result<uint64_t> ParseSize(std::string_view text) {
  size_t i = 0;
  auto is_digit = [&](size_t at) {
    return at < text.size() && std::isdigit(static_cast<unsigned char>(text[at])) != 0;
  };
  if (!is_digit(0)) return BadSize(text, "expected a number, e.g. 4096, 4K, 10G or 1.5GiB");
  uint64_t whole = 0;
  for (; is_digit(i); i++) {
    if (__builtin_mul_overflow(whole, 10, &whole) ||
        __builtin_add_overflow(whole, static_cast<uint64_t>(text[i] - '0'), &whole)) {
      return BadSize(text, "too large");
    }
  }
  uint64_t fraction = 0;
  uint64_t fraction_scale = 1;  // 10^(fraction digits)
  if (i < text.size() && text[i] == '.') {
    i++;
    if (!is_digit(i)) return BadSize(text, "expected digits after the decimal point");
    for (; is_digit(i); i++) {
      if (fraction_scale == kMaxFractionScale) {
        return BadSize(text, "more than " + std::to_string(kMaxFractionDigits) +
                                 " digits after the decimal point");
      }
      fraction = fraction * 10 + static_cast<uint64_t>(text[i] - '0');
      fraction_scale *= 10;
    }
  }
  std::string unit;
  for (; i < text.size(); i++) {
    unit += static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
  }
  const Unit* found = nullptr;
  for (const Unit& u : kUnits) {
    if (u.name == unit) found = &u;
  }
  if (found == nullptr) {
    if (unit == "kb" || unit == "mb" || unit == "gb" || unit == "tb" || unit == "pb") {
      return BadSize(text, "decimal units are ambiguous; use " +
                               std::string(1, static_cast<char>(std::toupper(unit[0]))) + " or " +
                               std::string(1, static_cast<char>(std::toupper(unit[0]))) +
                               "iB (units are powers of 1024)");
    }
    return BadSize(text, "unknown unit \"" + unit + "\" (use B, K, M, G, T or P, or KiB...PiB)");
  }
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(whole, found->multiplier, &bytes)) {
    return BadSize(text, "too large");
  }
  if (fraction != 0) {
    uint64_t scaled = 0;
    if (__builtin_mul_overflow(fraction, found->multiplier, &scaled)) {
      return BadSize(text, "too large");
    }
    if (scaled % fraction_scale != 0) return BadSize(text, "not a whole number of bytes");
    if (__builtin_add_overflow(bytes, scaled / fraction_scale, &bytes)) {
      return BadSize(text, "too large");
    }
  }
  return bytes;
}

std::string FormatSize(uint64_t bytes) {
  for (const auto& [unit, name] : kFormatUnits) {
    if (bytes < unit) continue;
    char buf[64];
    if (bytes % unit == 0) {
      std::snprintf(buf, sizeof buf, "%" PRIu64 " %.*s", bytes / unit,
                    static_cast<int>(name.size()), name.data());
    } else {
      std::snprintf(buf, sizeof buf, "%.1f %.*s",
                    static_cast<double>(bytes) / static_cast<double>(unit),
                    static_cast<int>(name.size()), name.data());
    }
    return buf;
  }
  return std::to_string(bytes) + (bytes == 1 ? " byte" : " bytes");
}

std::string Count(uint64_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

std::string FormatBlocks(uint64_t blocks, uint32_t block_size) {
  return std::to_string(blocks) + (blocks == 1 ? " block (" : " blocks (") +
         FormatSize(blocks * block_size) + ")";
}

std::string FormatTime(uint64_t ns_since_epoch) {
  if (ns_since_epoch == 0) return "-";
  time_t secs = static_cast<time_t>(ns_since_epoch / 1'000'000'000);
  struct tm tm {};
  if (::gmtime_r(&secs, &tm) == nullptr) return std::to_string(ns_since_epoch) + " ns";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

CLI::Option* AddSizeOption(CLI::App* app, const std::string& name, uint64_t* bytes,
                           const std::string& description) {
  CLI::Validator size_check(
      [](std::string& text) -> std::string {
        auto r = ParseSize(text);
        return r.has_value() ? std::string() : std::string(r.error().message());
      },
      "");
  return app
      ->add_option_function<std::string>(
          name, [bytes](const std::string& text) { *bytes = *ParseSize(text); }, description)
      ->check(size_check)
      ->type_name("SIZE");
}

CLI::Option* AddBackendOption(CLI::App* app, blockdev::Backend* backend) {
  CLI::Validator backend_check(
      [](std::string& text) -> std::string {
        auto r = blockdev::ParseBackend(text);
        return r.has_value() ? std::string() : std::string(r.error().message());
      },
      "");
  return app
      ->add_option_function<std::string>(
          "--backend",
          [backend](const std::string& text) { *backend = *blockdev::ParseBackend(text); },
          "I/O backend: auto (io_uring when the kernel allows it, else file), io_uring or file")
      ->check(backend_check)
      ->type_name("auto|io_uring|file")
      ->default_str("auto");
}

int CheckBackendUsable(blockdev::Backend backend) {
  if (backend != blockdev::Backend::kIoUring) return kExitOk;
  Status s = blockdev::ProbeIoUring();
  if (s.ok()) return kExitOk;
  std::fprintf(stderr, "vdisk: --backend io_uring: io_uring is not usable here: %s\n",
               s.ToString().c_str());
  return kExitIo;
}

}  // namespace vde::vdisk
