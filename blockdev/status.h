// Status and Result<T>: the one way every vde layer reports failure.
//
// A Status is OK (costs one null pointer) or carries a code, an errno where one applies, and a
// message that names the file, the block and the cause. Result<T> holds either a T or a non-OK
// Status and is shaped like std::expected<T, Status> (has_value, value, error, operator*, ->), so
// a later move to C++23 is mechanical.
//
// Both are [[nodiscard]]: the build uses -Werror=unused-result, so an ignored error is a compile
// error. Status is immutable once made and safe to copy and read from any number of threads.
#pragma once

#include <cassert>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace vde {

class [[nodiscard]] Status {
 public:
  enum class Code : uint8_t {
    kOk = 0,
    kNotFound,
    kCorruption,
    kNotSupported,
    kInvalidArgument,
    kIOError,
    kNoSpace,
    kOutOfRange,
    kReadOnly,
    kBusy,
    kAlreadyExists,
  };

  Status() noexcept = default;  // OK

  static Status OK() noexcept { return Status(); }
  static Status NotFound(std::string_view msg) { return Status(Code::kNotFound, 0, msg); }
  static Status Corruption(std::string_view msg) { return Status(Code::kCorruption, 0, msg); }
  static Status NotSupported(std::string_view msg) { return Status(Code::kNotSupported, 0, msg); }
  static Status InvalidArgument(std::string_view msg) {
    return Status(Code::kInvalidArgument, 0, msg);
  }
  // `err` is a positive errno value (0 when there is none, as for a short transfer).
  static Status IOError(std::string_view msg, int err = 0) {
    return Status(Code::kIOError, err, msg);
  }
  static Status NoSpace(std::string_view msg, int err = 0) {
    return Status(Code::kNoSpace, err, msg);
  }
  static Status OutOfRange(std::string_view msg) { return Status(Code::kOutOfRange, 0, msg); }
  static Status ReadOnly(std::string_view msg) { return Status(Code::kReadOnly, 0, msg); }
  static Status Busy(std::string_view msg) { return Status(Code::kBusy, 0, msg); }
  static Status AlreadyExists(std::string_view msg) { return Status(Code::kAlreadyExists, 0, msg); }

  // Converts an errno value (positive, or negative as liburing returns it) into a Status whose
  // message is "<context>: <strerror>". ENOSPC and EDQUOT map to NoSpace, ENOENT to NotFound,
  // EROFS/EACCES/EPERM on a write to ReadOnly only when the caller says so; all else is IOError.
  static Status FromErrno(int err, std::string_view context);

  bool ok() const noexcept { return rep_ == nullptr; }
  Code code() const noexcept { return rep_ ? rep_->code : Code::kOk; }
  int err() const noexcept { return rep_ ? rep_->err : 0; }
  // The message without the code prefix; empty for OK.
  std::string_view message() const noexcept {
    return rep_ ? std::string_view(rep_->msg) : std::string_view();
  }

  bool IsNotFound() const noexcept { return code() == Code::kNotFound; }
  bool IsCorruption() const noexcept { return code() == Code::kCorruption; }
  bool IsNotSupported() const noexcept { return code() == Code::kNotSupported; }
  bool IsInvalidArgument() const noexcept { return code() == Code::kInvalidArgument; }
  bool IsIOError() const noexcept { return code() == Code::kIOError; }
  bool IsNoSpace() const noexcept { return code() == Code::kNoSpace; }
  bool IsOutOfRange() const noexcept { return code() == Code::kOutOfRange; }
  bool IsReadOnly() const noexcept { return code() == Code::kReadOnly; }
  bool IsBusy() const noexcept { return code() == Code::kBusy; }
  bool IsAlreadyExists() const noexcept { return code() == Code::kAlreadyExists; }

  // "OK", or "<code name>: <message>", e.g. "corruption: block 8123 of db.vdisk: checksum ...".
  std::string ToString() const;

  // Returns a copy of this status whose message is "<prefix>: <message>". OK stays OK.
  Status WithContext(std::string_view prefix) const;

  static std::string_view CodeName(Code code) noexcept;

 private:
  struct Rep {
    Code code;
    int err;
    std::string msg;
  };
  Status(Code code, int err, std::string_view msg)
      : rep_(std::make_shared<const Rep>(Rep{code, err, std::string(msg)})) {}

  std::shared_ptr<const Rep> rep_;  // null means OK
};

// Holds a T or a non-OK Status. Constructing a Result from an OK Status is a bug (asserted).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(const T& v) : v_(std::in_place_index<0>, v) {}  // NOLINT(google-explicit-constructor)
  Result(T&& v) : v_(std::in_place_index<0>, std::move(v)) {}    // NOLINT
  Result(Status s) : v_(std::in_place_index<1>, std::move(s)) {  // NOLINT
    assert(!std::get<1>(v_).ok() && "Result<T> built from an OK status");
  }

  bool has_value() const noexcept { return v_.index() == 0; }
  bool ok() const noexcept { return has_value(); }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // The error; OK when a value is held (so `return r.status();` is always safe).
  Status status() const { return has_value() ? Status::OK() : std::get<1>(v_); }
  const Status& error() const& { return std::get<1>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace vde

#define VDE_CONCAT_INNER_(a, b) a##b
#define VDE_CONCAT_(a, b) VDE_CONCAT_INNER_(a, b)

// Returns the Status of `expr` from the enclosing function when it is not OK.
#define VDE_RETURN_IF_ERROR(expr)    \
  do {                               \
    ::vde::Status vde_s_ = (expr);   \
    if (!vde_s_.ok()) return vde_s_; \
  } while (0)

// `lhs = *expr` when expr (a Result<T>) holds a value; otherwise returns its Status.
#define VDE_ASSIGN_OR_RETURN(lhs, expr) \
  VDE_ASSIGN_OR_RETURN_IMPL_(VDE_CONCAT_(vde_r_, __LINE__), lhs, expr)
#define VDE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.has_value()) return tmp.error();        \
  lhs = std::move(*tmp)
