// Results: a status and named outputs, and the input pairing shared by runs and submits.
#include <cstring>
#include <string>

#include "capi/handles.hpp"

namespace deskml::capi {

Result<std::vector<std::pair<std::string, Tensor>>> named_inputs(const char* const* names,
                                                                 const deskml_tensor* const* inputs, size_t count) {
  DESKML_CHECK_ARG(count == 0 || (names != nullptr && inputs != nullptr), "names or inputs is NULL");
  std::vector<std::pair<std::string, Tensor>> named;
  named.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    DESKML_CHECK_ARG(names[i] != nullptr, "names[" + std::to_string(i) + "] is NULL");
    DESKML_CHECK_ARG(inputs[i] != nullptr, "inputs[" + std::to_string(i) + "] ('" + names[i] + "') is NULL");
    named.emplace_back(names[i], inputs[i]->tensor);
  }
  return named;
}

deskml_result* make_result(std::vector<std::pair<std::string, Tensor>> outputs, int64_t version,
                           std::string request_id) {
  auto r = std::make_unique<deskml_result>();
  r->names.reserve(outputs.size());
  r->outputs.reserve(outputs.size());
  for (auto& [name, tensor] : outputs) {
    r->names.push_back(std::move(name));
    r->outputs.push_back(deskml_tensor{std::move(tensor)});
  }
  r->version = version;
  r->request_id = std::move(request_id);
  return r.release();
}

}  // namespace deskml::capi

using namespace deskml;

extern "C" {

void deskml_result_destroy(deskml_result* result) { delete result; }

deskml_status deskml_result_status(const deskml_result* result) {
  if (result == nullptr) return DESKML_INVALID_ARGUMENT;
  return capi::to_c(result->status.code());
}

const char* deskml_result_error(const deskml_result* result) {
  return result ? result->status.message().c_str() : "result is NULL";
}

size_t deskml_result_output_count(const deskml_result* result) { return result ? result->outputs.size() : 0; }

const char* deskml_result_output_name(const deskml_result* result, size_t index) {
  if (result == nullptr || index >= result->names.size()) return nullptr;
  return result->names[index].c_str();
}

const deskml_tensor* deskml_result_output(const deskml_result* result, size_t index) {
  if (result == nullptr || index >= result->outputs.size()) return nullptr;
  return &result->outputs[index];
}

const deskml_tensor* deskml_result_find_output(const deskml_result* result, const char* name) {
  if (result == nullptr || name == nullptr) return nullptr;
  for (size_t i = 0; i < result->names.size(); ++i) {
    if (result->names[i] == name) return &result->outputs[i];
  }
  return nullptr;
}

int64_t deskml_result_model_version(const deskml_result* result) { return result ? result->version : 0; }

const char* deskml_result_request_id(const deskml_result* result) { return result ? result->request_id.c_str() : ""; }

}  // extern "C"
