// A KServe v2 inference request body (JSON, or JSON followed by binary tensors) to
// serving inputs, and a serving response back to a body.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.hpp"
#include "features/row_batch.hpp"
#include "server/tensor_json.hpp"
#include "serving/request.hpp"

namespace deskml::server {

struct InferRequest {
  std::string id;  // echoed in the response
  serving::Tensors inputs;
  // {"features": {"source": NAME, "keys": [...]}} instead of "inputs": the model's
  // inputs come from the rows of those keys in one of its declared feature sources
  // (features/feature_service.hpp). Keys are integers or strings.
  struct FeatureLookup {
    std::string source;
    std::vector<features::Key> keys;
  };
  std::optional<FeatureLookup> features;
  struct Output {
    std::string name;
    bool binary = false;
  };
  std::vector<Output> outputs;        // empty: every output of the model
  bool binary_outputs = false;        // parameters.binary_data_output: every output as binary
  std::optional<int> priority;        // parameters.priority
  std::optional<int64_t> timeout_us;  // parameters.timeout: a deadline, in microseconds from now
};

// `json_size` is the Inference-Header-Content-Length header (absent: the body is all JSON).
Result<InferRequest> parse_infer_request(std::string_view body, std::optional<size_t> json_size, int max_json_depth,
                                         const TensorLimits& limits);

// The same from a parsed JSON object (extra keys are ignored); `binary` holds the bytes
// of inputs with `parameters.binary_data_size` (empty when there are none).
Result<InferRequest> parse_infer_request(const nlohmann::json& request, std::string_view binary,
                                         const TensorLimits& limits);

struct EncodedResponse {
  std::string body;
  std::optional<size_t> json_size;  // set when binary outputs follow the JSON
};

// The outputs the request asked for (all when it named none), each as JSON or binary.
// An output name the model does not produce is InvalidArgument.
// The response's JSON header; binary outputs carry parameters.binary_data_size and their
// bytes are appended to `binary` in output order.
Result<nlohmann::json> infer_response_json(const serving::InferResponse& response, const InferRequest& request,
                                           std::string& binary);
Result<EncodedResponse> encode_infer_response(const serving::InferResponse& response, const InferRequest& request);
// The `outputs` array alone, every tensor as JSON `data` (binary flags are ignored): for
// the streaming endpoints, whose messages are JSON only.
Result<nlohmann::json> infer_outputs_json(const serving::InferResponse& response, const InferRequest& request);

}  // namespace deskml::server
