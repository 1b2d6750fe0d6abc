// Text forms of byte strings for vdisk's key-value commands: the escaping that put, get, scan
// and dump share, and the dump file format that dump writes and load reads. docs/TOOLS.md
// ("Escapes" and "Dump format") is the user's description; keep the two in step.
//
// Escaped text is printable ASCII with no tab or newline, so a key or value is always one field
// of one line, and every byte string has exactly one escaped form (Unescape(Escape(b)) == b and
// Escape is a function of the bytes alone), which is what lets dumps compare byte for byte.
//
// Single-threaded command-line code; DumpReader and DumpWriter own no thread state and may be
// used from one thread at a time.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "blockdev/status.h"

namespace vde::vdisk {

// Appends the escaped form of `bytes` to *out: bytes 0x20 to 0x7e other than backslash stand for
// themselves; backslash is "\\", tab "\t", newline "\n", carriage return "\r", and every other
// byte (NUL, other control bytes, 0x7f to 0xff) is "\xNN" with two lower-case hex digits.
void AppendEscaped(std::string_view bytes, std::string* out);
std::string Escape(std::string_view bytes);

// For messages: the escaped form in double quotes, cut to about `max` characters with "..."
// so that a 1 MiB key does not flood the terminal.
std::string Quote(std::string_view bytes, size_t max = 80);

// The inverse of Escape. Also accepts upper-case hex digits and any raw byte (so "caf\xc3\xa9"
// and the UTF-8 "café" mean the same). InvalidArgument, naming the offset, for a backslash that
// does not start one of the escapes above (a literal backslash is "\\").
Result<std::string> Unescape(std::string_view text);

// ---- Dump format --------------------------------------------------------------------------
//
//   vde-dump 1\n                          header: the format name and version
//   <escaped key>\t<escaped value>\n      one line per record, in key order
//   vde-dump-end <records>\n              trailer: the record count, in decimal
//
// A record line holds exactly one tab (keys are never empty, so a line without a tab is never a
// record). The trailer makes a cut-off dump detectable: a reader accepts a dump only once it has
// seen a trailer whose count matches, and nothing after it.

inline constexpr std::string_view kDumpMagic = "vde-dump";
inline constexpr std::string_view kDumpEndMagic = "vde-dump-end";
inline constexpr uint32_t kDumpVersion = 1;

// Writes a dump to a stdio stream it does not own. Errors are IOError naming `name`.
class DumpWriter {
 public:
  DumpWriter(FILE* out, std::string name) : out_(out), name_(std::move(name)) {}

  Status Begin();  // the header
  Status Add(std::string_view key, std::string_view value);
  Status Finish();  // the trailer, then flushes the stream

  uint64_t records() const { return records_; }
  uint64_t bytes() const { return bytes_; }  // written so far

 private:
  Status Put(const std::string& text);

  FILE* out_;
  std::string name_;
  std::string line_;  // reused for each record
  uint64_t records_ = 0;
  uint64_t bytes_ = 0;
};

// Reads a dump from a stdio stream it does not own, a line at a time (a line may be any length).
// Errors name `name` and the line: Corruption for anything malformed (no header, a bad escape,
// a tab too many or too few, a carriage return as from a CRLF file, no trailer, a wrong count,
// text after the trailer), NotSupported for a newer format version, IOError for a failed read.
class DumpReader {
 public:
  DumpReader(FILE* in, std::string name) : in_(in), name_(std::move(name)) {}

  // Reads and checks the header.
  Status Begin();
  // Reads the next record into *key and *value and returns true, or checks the trailer (and
  // that nothing follows it) and returns false.
  Result<bool> Next(std::string* key, std::string* value);

  uint64_t records() const { return records_; }
  uint64_t bytes_read() const { return bytes_read_; }

 private:
  // Reads one line, without its newline, into line_. False at the end of the input;
  // Corruption for a last line without a newline.
  Result<bool> ReadLine();
  Status Bad(std::string_view why) const;

  FILE* in_;
  std::string name_;
  std::string chunk_;  // read ahead from in_; chunk_[pos_...] is not consumed yet
  size_t pos_ = 0;
  bool eof_ = false;
  std::string line_;
  uint64_t line_no_ = 0;
  uint64_t records_ = 0;
  uint64_t bytes_read_ = 0;
};

}  // namespace vde::vdisk
