// A one-line progress display for long-running vdisk commands (load), drawn on stderr and
// redrawn in place at most a few times a second: records and bytes done, their rates, and a bar
// with a percentage when the total is known.
//
// It draws only when enabled, which callers decide with ProgressWanted: a terminal on stderr,
// never a pipe or a file, so scripts and logs see no control characters. Single-threaded.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace vde::vdisk {

// Whether a progress display belongs on stderr: it is a terminal and `quiet` is not set.
bool ProgressWanted(bool quiet);

class Progress {
 public:
  // `what` leads the line ("loading"); `total_bytes` is the input size, 0 when unknown.
  Progress(bool enabled, std::string what, uint64_t total_bytes);
  // Erases the line if Finish was not called.
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Records done and input bytes consumed so far; redraws when enough time has passed.
  void Update(uint64_t records, uint64_t bytes);
  // Redraws now, with `note` after the counts ("checkpointing"): for a slow last step.
  void Note(uint64_t records, uint64_t bytes, const std::string& note);
  // Erases the line, leaving the terminal as it was before the first draw.
  void Finish();

  // The text of the line for these counts after `seconds` (no control characters): what the
  // display shows, exposed for tests.
  static std::string Line(const std::string& what, uint64_t records, uint64_t bytes,
                          uint64_t total_bytes, double seconds);

 private:
  using Clock = std::chrono::steady_clock;
  void Draw(const std::string& line);

  bool enabled_;
  bool drawn_ = false;
  std::string what_;
  uint64_t total_bytes_;
  Clock::time_point start_;
  Clock::time_point next_draw_;
};

}  // namespace vde::vdisk
