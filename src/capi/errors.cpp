// Status codes, the per-thread last error and the version check.
#include <string>

#include "capi/handles.hpp"
#include "serving/log.hpp"

#ifndef DESKML_VERSION
#error "DESKML_VERSION must be defined by the build"
#endif

namespace deskml::capi {
namespace {

thread_local std::string last_error;

}  // namespace

deskml_status to_c(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return DESKML_OK;
    case StatusCode::kInvalidArgument:
      return DESKML_INVALID_ARGUMENT;
    case StatusCode::kInvalidModel:
      return DESKML_INVALID_MODEL;
    case StatusCode::kUnsupported:
      return DESKML_UNSUPPORTED;
    case StatusCode::kNotFound:
      return DESKML_NOT_FOUND;
    case StatusCode::kOutOfRange:
      return DESKML_OUT_OF_RANGE;
    case StatusCode::kIoError:
      return DESKML_IO_ERROR;
    case StatusCode::kResourceExhausted:
      return DESKML_RESOURCE_EXHAUSTED;
    case StatusCode::kCancelled:
      return DESKML_CANCELLED;
    case StatusCode::kDeadlineExceeded:
      return DESKML_DEADLINE_EXCEEDED;
    case StatusCode::kUnavailable:
      return DESKML_UNAVAILABLE;
    case StatusCode::kInternal:
      return DESKML_INTERNAL;
  }
  return DESKML_INTERNAL;
}

deskml_status report(const Status& status) noexcept {
  try {
    if (status.ok()) {
      last_error.clear();
    } else {
      last_error = status.message();
    }
  } catch (...) {
    // Out of memory while copying the message: the code still tells what happened.
  }
  return to_c(status.code());
}

deskml_status fail(deskml_status code, const std::string& message) noexcept {
  try {
    last_error = message;
  } catch (...) {
  }
  return code;
}

const char* last_error_message() noexcept { return last_error.c_str(); }

}  // namespace deskml::capi

extern "C" {

const char* deskml_version(void) { return DESKML_VERSION; }

int deskml_api_version(void) { return DESKML_API_VERSION; }

deskml_status deskml_check_api_version(int header_version) {
  if (header_version >= 1 && header_version <= DESKML_API_VERSION) return deskml::capi::report(deskml::Status::Ok());
  try {
    return deskml::capi::fail(DESKML_VERSION_MISMATCH,
                              "the application was built for deskml API version " + std::to_string(header_version) +
                                  "; this libdeskml " DESKML_VERSION " implements versions 1 to " +
                                  std::to_string(DESKML_API_VERSION));
  } catch (...) {
    return DESKML_VERSION_MISMATCH;
  }
}

deskml_status deskml_set_log_level(const char* level) {
  if (level == nullptr) return deskml::capi::fail(DESKML_INVALID_ARGUMENT, "level is NULL");
  try {
    return deskml::capi::report(deskml::serving::log::set_level(level));
  } catch (...) {
    return deskml::capi::fail(DESKML_INTERNAL, "setting the log level failed");
  }
}

const char* deskml_status_name(deskml_status status) {
  switch (status) {
    case DESKML_OK:
      return "OK";
    case DESKML_INVALID_ARGUMENT:
      return "InvalidArgument";
    case DESKML_INVALID_MODEL:
      return "InvalidModel";
    case DESKML_UNSUPPORTED:
      return "Unsupported";
    case DESKML_NOT_FOUND:
      return "NotFound";
    case DESKML_OUT_OF_RANGE:
      return "OutOfRange";
    case DESKML_IO_ERROR:
      return "IoError";
    case DESKML_RESOURCE_EXHAUSTED:
      return "ResourceExhausted";
    case DESKML_CANCELLED:
      return "Cancelled";
    case DESKML_DEADLINE_EXCEEDED:
      return "DeadlineExceeded";
    case DESKML_UNAVAILABLE:
      return "Unavailable";
    case DESKML_INTERNAL:
      return "Internal";
    case DESKML_VERSION_MISMATCH:
      return "VersionMismatch";
  }
  return "Unknown";
}

const char* deskml_last_error(void) { return deskml::capi::last_error_message(); }

}  // extern "C"
