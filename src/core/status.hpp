// Status and Result<T>: how every expected failure travels through deskml.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace deskml {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,   // bad input from the caller: wrong shape, dtype, name
  kInvalidModel,      // the model file is malformed or inconsistent
  kUnsupported,       // valid ONNX we do not implement (op, dtype, attribute)
  kNotFound,          // unknown model, input, file
  kOutOfRange,        // a limit was exceeded (size, dims, depth)
  kIoError,           // the file system said no
  kResourceExhausted, // out of memory, queue full
  kCancelled,
  kDeadlineExceeded,
  kUnavailable,
  kInternal,          // a bug in deskml
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return {}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "InvalidArgument: message"
  std::string to_string() const;
  // Adds context in front of the message, keeping the code.
  Status with_context(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status invalid_model(std::string m) { return {StatusCode::kInvalidModel, std::move(m)}; }
inline Status unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }
inline Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status out_of_range(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status io_error(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status internal_error(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// Deep inside a kernel a plain return path is not always at hand; Error carries a
// Status up to the nearest boundary (the executor), which turns it back into one.
class Error : public std::runtime_error {
 public:
  explicit Error(Status status) : std::runtime_error(status.to_string()), status_(std::move(status)) {}
  const Status& status() const { return status_; }

 private:
  Status status_;
};

[[noreturn]] inline void throw_status(Status status) { throw Error(std::move(status)); }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : data_(std::move(status)) {  // NOLINT
    if (std::get<Status>(data_).ok()) data_ = Status(StatusCode::kInternal, "Result built from an ok Status");
  }

  bool ok() const { return std::holds_alternative<T>(data_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(data_);
  }
  T& value() & { return checked(); }
  const T& value() const& { return const_cast<Result*>(this)->checked(); }
  T&& value() && { return std::move(checked()); }
  T* operator->() { return &checked(); }
  const T* operator->() const { return &const_cast<Result*>(this)->checked(); }
  T& operator*() { return checked(); }

 private:
  T& checked() {
    if (!ok()) throw Error(std::get<Status>(data_));
    return std::get<T>(data_);
  }
  std::variant<T, Status> data_;
};

}  // namespace deskml

#define DESKML_CONCAT_INNER(a, b) a##b
#define DESKML_CONCAT(a, b) DESKML_CONCAT_INNER(a, b)

#define DESKML_RETURN_IF_ERROR(expr)              \
  do {                                            \
    ::deskml::Status _deskml_status = (expr);     \
    if (!_deskml_status.ok()) return _deskml_status; \
  } while (0)

#define DESKML_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

#define DESKML_ASSIGN_OR_RETURN(lhs, expr) \
  DESKML_ASSIGN_OR_RETURN_IMPL(DESKML_CONCAT(_deskml_result_, __LINE__), lhs, expr)

// Returns an InvalidArgument status (from a function returning Status/Result) when cond is false.
#define DESKML_CHECK_ARG(cond, msg)                                   \
  do {                                                                \
    if (!(cond)) return ::deskml::invalid_argument(msg);              \
  } while (0)
