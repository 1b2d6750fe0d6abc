#include "tools/vdisk/kv_format.h"

#include <cerrno>
#include <charconv>
#include <cstring>

namespace vde::vdisk {

namespace {

constexpr char kHexDigits[] = "0123456789abcdef";
constexpr size_t kReadChunk = 256 << 10;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Splits "<word> <decimal>" into its number; false unless `line` is exactly that.
bool ParseTagged(std::string_view line, std::string_view word, uint64_t* number) {
  if (line.size() <= word.size() + 1 || line.substr(0, word.size()) != word ||
      line[word.size()] != ' ') {
    return false;
  }
  std::string_view digits = line.substr(word.size() + 1);
  if (digits.size() > 1 && digits[0] == '0') return false;  // one spelling per number
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), *number);
  return ec == std::errc() && end == digits.data() + digits.size();
}

}  // namespace

void AppendEscaped(std::string_view bytes, std::string* out) {
  for (char ch : bytes) {
    const auto b = static_cast<unsigned char>(ch);
    switch (b) {
      case '\\':
        out->append("\\\\");
        continue;
      case '\t':
        out->append("\\t");
        continue;
      case '\n':
        out->append("\\n");
        continue;
      case '\r':
        out->append("\\r");
        continue;
      default:
        break;
    }
    if (b >= 0x20 && b < 0x7f) {
      out->push_back(ch);
    } else {
      const char esc[4] = {'\\', 'x', kHexDigits[b >> 4], kHexDigits[b & 0xf]};
      out->append(esc, sizeof esc);
    }
  }
}

std::string Escape(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  AppendEscaped(bytes, &out);
  return out;
}

std::string Quote(std::string_view bytes, size_t max) {
  std::string q = "\"";
  size_t i = 0;
  for (; i < bytes.size() && q.size() <= max; i++) AppendEscaped(bytes.substr(i, 1), &q);
  if (i < bytes.size()) q += "...";
  return q + "\"";
}

Result<std::string> Unescape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); i++) {
    if (text[i] != '\\') {
      out.push_back(text[i]);
      continue;
    }
    const size_t at = i;
    auto bad = [&](std::string_view why) {
      return Status::InvalidArgument("bad escape at offset " + std::to_string(at) + ": " +
                                     std::string(why) +
                                     " (escapes are \\\\ \\t \\n \\r and \\xNN; a backslash is "
                                     "\\\\)");
    };
    if (++i == text.size()) return bad("a lone backslash at the end");
    switch (text[i]) {
      case '\\':
        out.push_back('\\');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 'x': {
        const int hi = i + 1 < text.size() ? HexValue(text[i + 1]) : -1;
        const int lo = i + 2 < text.size() ? HexValue(text[i + 2]) : -1;
        if (hi < 0 || lo < 0) return bad("\\x takes two hex digits");
        out.push_back(static_cast<char>(hi << 4 | lo));
        i += 2;
        break;
      }
      default:
        return bad("unknown escape \\" + Escape(text.substr(i, 1)));
    }
  }
  return out;
}

// ---- DumpWriter -----------------------------------------------------------------------------

Status DumpWriter::Put(const std::string& text) {
  if (std::fwrite(text.data(), 1, text.size(), out_) != text.size()) {
    return Status::FromErrno(errno, "writing " + name_);
  }
  bytes_ += text.size();
  return Status::OK();
}

Status DumpWriter::Begin() {
  return Put(std::string(kDumpMagic) + " " + std::to_string(kDumpVersion) + "\n");
}

Status DumpWriter::Add(std::string_view key, std::string_view value) {
  line_.clear();
  AppendEscaped(key, &line_);
  line_.push_back('\t');
  AppendEscaped(value, &line_);
  line_.push_back('\n');
  VDE_RETURN_IF_ERROR(Put(line_));
  records_++;
  return Status::OK();
}

Status DumpWriter::Finish() {
  VDE_RETURN_IF_ERROR(Put(std::string(kDumpEndMagic) + " " + std::to_string(records_) + "\n"));
  if (std::fflush(out_) != 0) return Status::FromErrno(errno, "writing " + name_);
  return Status::OK();
}

// ---- DumpReader -----------------------------------------------------------------------------

Status DumpReader::Bad(std::string_view why) const {
  return Status::Corruption(name_ + ": line " + std::to_string(line_no_) + ": " + std::string(why));
}

Result<bool> DumpReader::ReadLine() {
  line_.clear();
  for (;;) {
    if (pos_ == chunk_.size()) {
      if (eof_) {
        if (line_.empty()) return false;
        line_no_++;
        return Bad("the last line has no newline: the dump was cut off");
      }
      chunk_.resize(kReadChunk);
      const size_t n = std::fread(chunk_.data(), 1, kReadChunk, in_);
      chunk_.resize(n);
      pos_ = 0;
      if (n < kReadChunk) {
        if (std::ferror(in_) != 0) return Status::FromErrno(errno, "reading " + name_);
        eof_ = true;
      }
      continue;
    }
    const char* start = chunk_.data() + pos_;
    const size_t avail = chunk_.size() - pos_;
    const auto* nl = static_cast<const char*>(std::memchr(start, '\n', avail));
    const size_t len = nl != nullptr ? static_cast<size_t>(nl - start) : avail;
    line_.append(start, len);
    pos_ += len;
    bytes_read_ += len;
    if (nl != nullptr) {
      pos_++;
      bytes_read_++;
      line_no_++;
      return true;
    }
  }
}

Status DumpReader::Begin() {
  VDE_ASSIGN_OR_RETURN(bool got, ReadLine());
  uint64_t version = 0;
  if (!got || !ParseTagged(line_, kDumpMagic, &version)) {
    return Status::Corruption(name_ + ": not a vde dump (the first line is not \"" +
                              std::string(kDumpMagic) + " " + std::to_string(kDumpVersion) + "\")");
  }
  if (version != kDumpVersion) {
    return Status::NotSupported(name_ + ": dump format version " + std::to_string(version) +
                                " (this vdisk reads version " + std::to_string(kDumpVersion) + ")");
  }
  return Status::OK();
}

Result<bool> DumpReader::Next(std::string* key, std::string* value) {
  VDE_ASSIGN_OR_RETURN(bool got, ReadLine());
  if (!got) {
    return Bad("no \"" + std::string(kDumpEndMagic) + "\" line after " + std::to_string(records_) +
               " records: the dump was cut off");
  }
  const size_t tab = line_.find('\t');
  if (tab == std::string::npos) {
    uint64_t count = 0;
    if (!ParseTagged(line_, kDumpEndMagic, &count)) {
      return Bad("expected a record (key, a tab, value) or \"" + std::string(kDumpEndMagic) +
                 " N\"");
    }
    if (count != records_) {
      return Bad("the dump ends claiming " + std::to_string(count) + " records, but holds " +
                 std::to_string(records_));
    }
    VDE_ASSIGN_OR_RETURN(bool more, ReadLine());
    if (more) return Bad("text after the \"" + std::string(kDumpEndMagic) + "\" line");
    return false;
  }
  if (line_.find('\t', tab + 1) != std::string::npos) {
    return Bad("more than one tab (a tab in a key or value is written \\t)");
  }
  if (line_.find('\r') != std::string::npos) {
    return Bad("a raw carriage return (a file with CRLF line ends? write it as \\r)");
  }
  if (tab == 0) return Bad("an empty key");
  Result<std::string> k = Unescape(std::string_view(line_).substr(0, tab));
  if (!k.has_value()) return Bad("key: " + std::string(k.error().message()));
  Result<std::string> v = Unescape(std::string_view(line_).substr(tab + 1));
  if (!v.has_value()) return Bad("value: " + std::string(v.error().message()));
  *key = std::move(*k);
  *value = std::move(*v);
  records_++;
  return true;
}

}  // namespace vde::vdisk
