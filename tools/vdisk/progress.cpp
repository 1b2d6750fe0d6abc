#include "tools/vdisk/progress.h"

#include <unistd.h>

#include <cstdio>

#include "tools/vdisk/cli_common.h"

namespace vde::vdisk {

namespace {

constexpr std::chrono::milliseconds kRedrawEvery{200};
constexpr int kBarWidth = 24;

// A count per second in three or four characters: "950", "12k", "1.5M".
std::string Rate(double per_second) {
  char buf[32];
  if (per_second >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.1fM", per_second / 1e6);
  } else if (per_second >= 1e4) {
    std::snprintf(buf, sizeof buf, "%.0fk", per_second / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f", per_second);
  }
  return buf;
}

}  // namespace

bool ProgressWanted(bool quiet) {
  return !quiet && ::isatty(STDERR_FILENO) == 1;
}

Progress::Progress(bool enabled, std::string what, uint64_t total_bytes)
    : enabled_(enabled),
      what_(std::move(what)),
      total_bytes_(total_bytes),
      start_(Clock::now()),
      next_draw_(start_ + kRedrawEvery) {}

Progress::~Progress() {
  Finish();
}

std::string Progress::Line(const std::string& what, uint64_t records, uint64_t bytes,
                           uint64_t total_bytes, double seconds) {
  std::string line = what + ": ";
  if (total_bytes != 0) {
    const uint64_t done = bytes < total_bytes ? bytes : total_bytes;
    const double frac = static_cast<double>(done) / static_cast<double>(total_bytes);
    const int filled = static_cast<int>(frac * kBarWidth);
    char pct[16];
    std::snprintf(pct, sizeof pct, "%3d%% [", static_cast<int>(frac * 100));
    line += pct;
    line += std::string(static_cast<size_t>(filled), '#');
    line += std::string(static_cast<size_t>(kBarWidth - filled), ' ');
    line += "] ";
  }
  line += Count(records, "key", "keys") + ", " + FormatSize(bytes);
  if (seconds > 0) {
    line += ", " + Rate(static_cast<double>(records) / seconds) + " keys/s, " +
            FormatSize(static_cast<uint64_t>(static_cast<double>(bytes) / seconds)) + "/s";
  }
  return line;
}

void Progress::Update(uint64_t records, uint64_t bytes) {
  if (!enabled_) return;
  const Clock::time_point now = Clock::now();
  if (now < next_draw_) return;
  next_draw_ = now + kRedrawEvery;
  Draw(Line(what_, records, bytes, total_bytes_,
            std::chrono::duration<double>(now - start_).count()));
}

void Progress::Note(uint64_t records, uint64_t bytes, const std::string& note) {
  if (!enabled_) return;
  Draw(Line(what_, records, bytes, total_bytes_,
            std::chrono::duration<double>(Clock::now() - start_).count()) +
       "; " + note);
}

void Progress::Draw(const std::string& line) {
  // \r to the line start, the text, then erase whatever a longer earlier line left.
  std::fprintf(stderr, "\r%s\033[K", line.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::Finish() {
  if (drawn_) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
  }
  drawn_ = false;
  enabled_ = false;
}

}  // namespace vde::vdisk
