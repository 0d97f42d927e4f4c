// Sessions: one model file run directly on the caller's thread (runtime::Session).
#include <cstdint>
#include <string>

#include "capi/handles.hpp"

namespace deskml::capi {
namespace {

Status describe(const graph::ValueInfo& info, deskml_dtype* dtype, int64_t* dims, size_t capacity, size_t* rank) {
  const auto& type = info.type;
  if (dtype != nullptr) *dtype = static_cast<deskml_dtype>(type.dtype);
  if (type.shape) {
    const auto& shape = *type.shape;
    if (rank != nullptr) *rank = shape.size();
    DESKML_CHECK_ARG(capacity == 0 || dims != nullptr, "dims is NULL with capacity " + std::to_string(capacity));
    for (size_t i = 0; i < shape.size() && i < capacity; ++i) dims[i] = shape[i].known() ? shape[i].value : -1;
  } else if (rank != nullptr) {
    *rank = SIZE_MAX;  // the model does not declare the rank
  }
  return Status::Ok();
}

}  // namespace
}  // namespace deskml::capi

using namespace deskml;
using namespace deskml::capi;

extern "C" {

deskml_status deskml_session_options_create(deskml_session_options** out) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(out);
    *out = new deskml_session_options{};
    return Status::Ok();
  });
}

void deskml_session_options_destroy(deskml_session_options* options) { delete options; }

deskml_status deskml_session_options_set_threads(deskml_session_options* options, int threads) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(options);
    DESKML_CHECK_ARG(threads >= 0, "threads must be >= 0");
    options->options.threads = threads;
    return Status::Ok();
  });
}

deskml_status deskml_session_options_set_optimization_level(deskml_session_options* options, int level) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(options);
    DESKML_CHECK_ARG(level >= 0 && level <= 2, "optimization level must be 0, 1 or 2");
    options->options.optimization_level = level;
    return Status::Ok();
  });
}

deskml_status deskml_session_create(const char* model_path, const deskml_session_options* options,
                                    deskml_session** out) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(model_path);
    DESKML_CAPI_REQUIRE(out);
    const runtime::SessionOptions o = options ? options->options : runtime::SessionOptions{};
    DESKML_ASSIGN_OR_RETURN(auto session, runtime::Session::load(model_path, o));
    *out = new deskml_session{std::move(session)};
    return Status::Ok();
  });
}

void deskml_session_destroy(deskml_session* session) { delete session; }

size_t deskml_session_input_count(const deskml_session* session) {
  return session ? session->session->inputs().size() : 0;
}

const char* deskml_session_input_name(const deskml_session* session, size_t index) {
  if (session == nullptr || index >= session->session->inputs().size()) return nullptr;
  return session->session->inputs()[index].name.c_str();
}

deskml_status deskml_session_input_info(const deskml_session* session, size_t index, deskml_dtype* dtype, int64_t* dims,
                                        size_t capacity, size_t* rank) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(session);
    const auto& inputs = session->session->inputs();
    DESKML_CHECK_ARG(index < inputs.size(), "input index " + std::to_string(index) + " out of range (the model has " +
                                                std::to_string(inputs.size()) + ")");
    return describe(inputs[index], dtype, dims, capacity, rank);
  });
}

size_t deskml_session_output_count(const deskml_session* session) {
  return session ? session->session->outputs().size() : 0;
}

const char* deskml_session_output_name(const deskml_session* session, size_t index) {
  if (session == nullptr || index >= session->session->outputs().size()) return nullptr;
  return session->session->outputs()[index].name.c_str();
}

deskml_status deskml_session_output_info(const deskml_session* session, size_t index, deskml_dtype* dtype,
                                         int64_t* dims, size_t capacity, size_t* rank) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(session);
    const auto& outputs = session->session->outputs();
    DESKML_CHECK_ARG(index < outputs.size(), "output index " + std::to_string(index) + " out of range (the model has " +
                                                 std::to_string(outputs.size()) + ")");
    return describe(outputs[index], dtype, dims, capacity, rank);
  });
}

deskml_status deskml_session_run(const deskml_session* session, const char* const* names,
                                 const deskml_tensor* const* inputs, size_t count, deskml_result** out) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(session);
    DESKML_CAPI_REQUIRE(out);
    DESKML_ASSIGN_OR_RETURN(auto feeds, named_inputs(names, inputs, count));
    DESKML_ASSIGN_OR_RETURN(auto outputs, session->session->run(feeds));
    *out = make_result(std::move(outputs), 0, "");
    return Status::Ok();
  });
}

}  // extern "C"
