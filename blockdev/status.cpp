#include "blockdev/status.h"

#include <cerrno>
#include <cstring>

namespace vde {

namespace {

std::string ErrnoText(int err) {
  char buf[128];
  // GNU strerror_r returns a pointer that may or may not be `buf`.
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  const char* s = strerror_r(err, buf, sizeof(buf));
  return std::string(s) + " (errno " + std::to_string(err) + ")";
#else
  if (strerror_r(err, buf, sizeof(buf)) != 0) return "errno " + std::to_string(err);
  return std::string(buf) + " (errno " + std::to_string(err) + ")";
#endif
}

}  // namespace

Status Status::FromErrno(int err, std::string_view context) {
  if (err < 0) err = -err;
  std::string msg(context);
  msg += ": ";
  msg += ErrnoText(err);
  switch (err) {
    case ENOSPC:
#ifdef EDQUOT
    case EDQUOT:
#endif
      return Status(Code::kNoSpace, err, msg);
    case ENOENT:
      return Status(Code::kNotFound, err, msg);
    case EROFS:
      return Status(Code::kReadOnly, err, msg);
    case EEXIST:
      return Status(Code::kAlreadyExists, err, msg);
    case EINVAL:
      return Status(Code::kInvalidArgument, err, msg);
    case EOPNOTSUPP:
      return Status(Code::kNotSupported, err, msg);
    default:
      return Status(Code::kIOError, err, msg);
  }
}

std::string_view Status::CodeName(Code code) noexcept {
  switch (code) {
    case Code::kOk:
      return "OK";
    case Code::kNotFound:
      return "not found";
    case Code::kCorruption:
      return "corruption";
    case Code::kNotSupported:
      return "not supported";
    case Code::kInvalidArgument:
      return "invalid argument";
    case Code::kIOError:
      return "I/O error";
    case Code::kNoSpace:
      return "no space";
    case Code::kOutOfRange:
      return "out of range";
    case Code::kReadOnly:
      return "read-only";
    case Code::kBusy:
      return "busy";
    case Code::kAlreadyExists:
      return "already exists";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s(CodeName(rep_->code));
  s += ": ";
  s += rep_->msg;
  return s;
}

Status Status::WithContext(std::string_view prefix) const {
  if (ok()) return *this;
  std::string msg(prefix);
  msg += ": ";
  msg += rep_->msg;
  return Status(rep_->code, rep_->err, msg);
}

}  // namespace vde
