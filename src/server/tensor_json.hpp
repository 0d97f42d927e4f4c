// Tensors in the KServe v2 wire format: `{"name", "datatype", "shape", "data"}` with
// `data` flat or nested (row major), and Triton's binary form (little-endian, row
// major; BOOL one byte; BYTES a 4-byte length before each element). Encoding and
// decoding only: the server never looks at a tensor's layout beyond this.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/status.hpp"
#include "core/tensor.hpp"

namespace deskml::server {

struct TensorLimits {
  int64_t max_elements = int64_t{1} << 28;
};

// Parses JSON, refusing nesting deeper than `max_depth` (InvalidArgument) so a
// hostile body cannot exhaust the stack or memory with brackets.
Result<nlohmann::json> parse_json(std::string_view text, int max_depth);

// The tensor a `$request_input` describes. When it has `parameters.binary_data_size`,
// its contents are the next that many bytes of `binary`, which is advanced past them.
Result<Tensor> decode_input(const nlohmann::json& input, std::string_view& binary, const TensorLimits& limits);

// `t`'s elements as a flat JSON array (FP16/BF16 as numbers, BYTES as strings).
nlohmann::json tensor_to_json_data(const Tensor& t);
// Appends `t` in the binary form; returns the number of bytes appended.
size_t append_tensor_binary(const Tensor& t, std::string& out);

}  // namespace deskml::server
