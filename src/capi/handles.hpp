// What the C API's opaque handles are on the C++ side, and the guard every entry
// point runs its body in (no exception leaves the library; failures become a
// status code plus the thread's last-error message).
#pragma once

#include <deskml/deskml.h>

#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/status.hpp"
#include "core/tensor.hpp"
#include "runtime/session.hpp"
#include "serving/request.hpp"
#include "serving/runtime.hpp"

struct deskml_tensor {
  deskml::Tensor tensor;
};

struct deskml_result {
  deskml::Status status;
  std::vector<std::string> names;
  std::vector<deskml_tensor> outputs;  // parallel to names
  int64_t version = 0;
  std::string request_id;
};

struct deskml_session_options {
  deskml::runtime::SessionOptions options;
};

struct deskml_session {
  std::unique_ptr<deskml::runtime::Session> session;
};

struct deskml_engine_options {
  deskml::serving::RuntimeOptions options;
};

struct deskml_engine {
  std::unique_ptr<deskml::serving::Runtime> runtime;
};

struct deskml_infer_options {
  std::optional<int64_t> timeout_ms;
  std::optional<int64_t> deadline_ns;
  int priority = 0;
  std::optional<int64_t> version;
  std::string request_id;
  bool use_cache = true;
};

struct deskml_request {
  std::shared_ptr<deskml::serving::CancelToken> cancel;
  std::string id;
};

namespace deskml::capi {

// Records `status` as this thread's last error (cleared when ok) and returns its code.
deskml_status report(const Status& status) noexcept;
deskml_status to_c(StatusCode code);
// Records `message` as this thread's last error and returns `code` (for codes with no StatusCode).
deskml_status fail(deskml_status code, const std::string& message) noexcept;
const char* last_error_message() noexcept;

// Runs `body` (returning Status) and turns whatever it throws into a status.
template <typename Fn>
deskml_status guarded(Fn&& body) noexcept {
  try {
    return report(body());
  } catch (const Error& e) {
    return report(e.status());
  } catch (const std::bad_alloc&) {
    return report(Status(StatusCode::kResourceExhausted, "out of memory"));
  } catch (const std::exception& e) {
    return report(internal_error(std::string("unexpected exception: ") + e.what()));
  } catch (...) {
    return report(internal_error("unexpected exception"));
  }
}

// For accessors that cannot report a status: `fallback` if `body` throws.
template <typename T, typename Fn>
T or_default(T fallback, Fn&& body) noexcept {
  try {
    return body();
  } catch (...) {
    return fallback;
  }
}

#define DESKML_CAPI_REQUIRE(ptr) DESKML_CHECK_ARG((ptr) != nullptr, #ptr " is NULL")

// Pairs names[i] with inputs[i], checking every pointer.
Result<std::vector<std::pair<std::string, Tensor>>> named_inputs(const char* const* names,
                                                                 const deskml_tensor* const* inputs, size_t count);

// Moves outputs into a new result (status ok).
deskml_result* make_result(std::vector<std::pair<std::string, Tensor>> outputs, int64_t version,
                           std::string request_id);

}  // namespace deskml::capi
