#include "server/infer_codec.hpp"

#include <nlohmann/json.hpp>

#include "features/feature_source.hpp"
#include "server/infer_json_fast.hpp"

namespace deskml::server {
namespace {

using nlohmann::json;

// A boolean parameter given as true/false (or, leniently, 0/1).
bool flag(const json& params, const char* key) {
  const auto it = params.find(key);
  if (it == params.end()) return false;
  if (it->is_boolean()) return it->get<bool>();
  return it->is_number_integer() && it->get<int64_t>() != 0;
}

}  // namespace

Result<InferRequest> parse_infer_request(std::string_view body, std::optional<size_t> json_size, int max_json_depth,
                                         const TensorLimits& limits) {
  std::string_view header = body, binary;
  if (json_size) {
    if (*json_size > body.size()) {
      return invalid_argument("Inference-Header-Content-Length " + std::to_string(*json_size) +
                              " is larger than the body (" + std::to_string(body.size()) + " bytes)");
    }
    header = body.substr(0, *json_size);
    binary = body.substr(*json_size);
  }
  // The common request goes without a DOM; anything else (errors included) takes the
  // DOM path below, which decides exactly as it always has.
  if (binary.empty()) {
    if (auto fast = parse_infer_request_fast(header, max_json_depth, limits)) return std::move(*fast);
  }
  DESKML_ASSIGN_OR_RETURN(json j, parse_json(header, max_json_depth));
  return parse_infer_request(j, binary, limits);
}

Result<InferRequest> parse_infer_request(const json& j, std::string_view binary, const TensorLimits& limits) {
  if (!j.is_object()) return invalid_argument("the request must be a JSON object");

  InferRequest req;
  if (const auto id = j.find("id"); id != j.end()) {
    if (!id->is_string()) return invalid_argument("\"id\" must be a string");
    req.id = id->get<std::string>();
  }
  if (const auto p = j.find("parameters"); p != j.end()) {
    if (!p->is_object()) return invalid_argument("\"parameters\" must be an object");
    req.binary_outputs = flag(*p, "binary_data_output");
    if (const auto pr = p->find("priority"); pr != p->end()) {
      if (!pr->is_number_integer()) return invalid_argument("parameters.priority must be an integer");
      const int64_t v = pr->get<int64_t>();
      if (v < -1000000 || v > 1000000) return invalid_argument("parameters.priority is out of range");
      req.priority = static_cast<int>(v);
    }
    if (const auto t = p->find("timeout"); t != p->end()) {
      if (!t->is_number_integer() || t->get<int64_t>() < 0) {
        return invalid_argument("parameters.timeout must be a non-negative integer (microseconds)");
      }
      req.timeout_us = t->get<int64_t>();
    }
  }
  const auto inputs = j.find("inputs");
  if (const auto f = j.find("features"); f != j.end()) {
    if (inputs != j.end() && !(inputs->is_array() && inputs->empty())) {
      return invalid_argument("a request gives \"inputs\" or \"features\", not both");
    }
    const auto source = f->is_object() ? f->find("source") : f->end();
    const auto keys = f->is_object() ? f->find("keys") : f->end();
    if (!f->is_object() || source == f->end() || !source->is_string() ||
        source->get_ref<const std::string&>().empty() || keys == f->end() || !keys->is_array() || keys->empty()) {
      return invalid_argument("\"features\" must be {\"source\": NAME, \"keys\": [KEY, ...]} with at least one key");
    }
    if (keys->size() > features::kMaxLookupKeys) {
      return invalid_argument(std::to_string(keys->size()) + " keys in one request; at most " +
                              std::to_string(features::kMaxLookupKeys));
    }
    InferRequest::FeatureLookup lookup;
    lookup.source = source->get<std::string>();
    for (const auto& k : *keys) {
      if (k.is_number_integer()) {
        lookup.keys.emplace_back(k.get<int64_t>());
      } else if (k.is_string()) {
        lookup.keys.emplace_back(k.get<std::string>());
      } else {
        return invalid_argument("feature keys must be integers or strings");
      }
    }
    req.features = std::move(lookup);
  } else if (inputs == j.end() || !inputs->is_array()) {
    return invalid_argument("the request has no \"inputs\" array (or \"features\" lookup)");
  }
  static const json kNoInputs = json::array();
  const json& input_list = inputs != j.end() && inputs->is_array() ? *inputs : kNoInputs;
  for (const auto& input : input_list) {
    DESKML_ASSIGN_OR_RETURN(Tensor t, decode_input(input, binary, limits));
    const std::string& name = input["name"].get_ref<const std::string&>();
    if (serving::find_tensor(req.inputs, name)) return invalid_argument("input '" + name + "' is given twice");
    req.inputs.emplace_back(name, std::move(t));
  }
  if (!binary.empty()) {
    return invalid_argument(std::to_string(binary.size()) + " bytes of binary data are not claimed by any input");
  }
  if (const auto outputs = j.find("outputs"); outputs != j.end()) {
    if (!outputs->is_array()) return invalid_argument("\"outputs\" must be an array");
    for (const auto& o : *outputs) {
      const auto name = o.is_object() ? o.find("name") : o.end();
      if (name == o.end() || !name->is_string()) return invalid_argument("a requested output has no \"name\"");
      InferRequest::Output out{name->get<std::string>(), req.binary_outputs};
      if (const auto p = o.find("parameters"); p != o.end()) {
        if (!p->is_object()) return invalid_argument("output \"parameters\" must be an object");
        if (p->contains("binary_data") || p->contains("binary_data_output")) {
          out.binary = flag(*p, "binary_data") || flag(*p, "binary_data_output");
        }
      }
      req.outputs.push_back(std::move(out));
    }
  }
  return req;
}

Result<json> infer_outputs_json(const serving::InferResponse& response, const InferRequest& request) {
  json outputs = json::array();
  auto add = [&](const std::string& name) -> Status {
    const Tensor* t = serving::find_tensor(response.outputs, name);
    if (!t) return invalid_argument("model '" + response.model + "' has no output '" + name + "'");
    if (!t->defined()) return internal_error("output '" + name + "' was not produced");
    outputs.push_back({{"name", name},
                       {"datatype", std::string(dtype_kserve_name(t->dtype()))},
                       {"shape", t->shape()},
                       {"data", tensor_to_json_data(*t)}});
    return Status::Ok();
  };
  if (request.outputs.empty()) {
    for (const auto& [name, t] : response.outputs) DESKML_RETURN_IF_ERROR(add(name));
  } else {
    for (const auto& w : request.outputs) DESKML_RETURN_IF_ERROR(add(w.name));
  }
  return outputs;
}

Result<json> infer_response_json(const serving::InferResponse& response, const InferRequest& request,
                                 std::string& binary) {
  std::vector<InferRequest::Output> wanted = request.outputs;
  if (wanted.empty()) {
    for (const auto& [name, t] : response.outputs) wanted.push_back({name, request.binary_outputs});
  }
  json outputs = json::array();
  for (const auto& w : wanted) {
    const Tensor* t = serving::find_tensor(response.outputs, w.name);
    if (!t) return invalid_argument("model '" + response.model + "' has no output '" + w.name + "'");
    if (!t->defined()) return internal_error("output '" + w.name + "' was not produced");
    json o = {{"name", w.name}, {"datatype", std::string(dtype_kserve_name(t->dtype()))}, {"shape", t->shape()}};
    if (w.binary) {
      o["parameters"] = {{"binary_data_size", append_tensor_binary(*t, binary)}};
    } else {
      o["data"] = tensor_to_json_data(*t);
    }
    outputs.push_back(std::move(o));
  }
  json j = {{"model_name", response.model}, {"model_version", std::to_string(response.version)}, {"outputs", outputs}};
  if (!request.id.empty()) j["id"] = request.id;
  return j;
}

Result<EncodedResponse> encode_infer_response(const serving::InferResponse& response, const InferRequest& request) {
  // The bytes infer_response_json(...).dump() gives, written directly: keys in the
  // order nlohmann's std::map keeps them (id, model_name, model_version, outputs; in an
  // output data, datatype, name, parameters, shape).
  auto write_output = [&](const std::string& name, bool binary_out, std::string& body, std::string& binary) -> Status {
    const Tensor* t = serving::find_tensor(response.outputs, name);
    if (!t) return invalid_argument("model '" + response.model + "' has no output '" + name + "'");
    if (!t->defined()) return internal_error("output '" + name + "' was not produced");
    body += '{';
    if (!binary_out) {
      body += "\"data\":";
      append_tensor_json_data(body, *t);
      body += ',';
    }
    body += "\"datatype\":";
    append_json_string(body, dtype_kserve_name(t->dtype()));
    body += ",\"name\":";
    append_json_string(body, name);
    if (binary_out) {
      body += ",\"parameters\":{\"binary_data_size\":";
      body += std::to_string(append_tensor_binary(*t, binary));
      body += '}';
    }
    body += ",\"shape\":[";
    for (size_t i = 0; i < t->shape().size(); ++i) {
      if (i > 0) body += ',';
      body += std::to_string(t->shape()[i]);
    }
    body += "]}";
    return Status::Ok();
  };

  EncodedResponse out;
  std::string& body = out.body;
  std::string binary;
  body.reserve(256);
  body += '{';
  if (!request.id.empty()) {
    body += "\"id\":";
    append_json_string(body, request.id);
    body += ',';
  }
  body += "\"model_name\":";
  append_json_string(body, response.model);
  body += ",\"model_version\":";
  append_json_string(body, std::to_string(response.version));
  body += ",\"outputs\":[";
  bool any_binary = false, first = true;
  auto add = [&](const std::string& name, bool binary_out) -> Status {
    if (!first) body += ',';
    first = false;
    any_binary = any_binary || binary_out;
    return write_output(name, binary_out, body, binary);
  };
  if (request.outputs.empty()) {
    for (const auto& [name, t] : response.outputs) DESKML_RETURN_IF_ERROR(add(name, request.binary_outputs));
  } else {
    for (const auto& w : request.outputs) DESKML_RETURN_IF_ERROR(add(w.name, w.binary));
  }
  body += "]}";
  if (!binary.empty() || any_binary) {
    out.json_size = body.size();
    body += binary;
  }
  return out;
}

}  // namespace deskml::server
