// The JSON infer path without a DOM: a single-pass parser for the common shape of a
// KServe v2 infer request that writes numbers straight into the input tensors, and a
// writer for the response that appends to one string.
//
// The parser only answers when it is sure to agree with the DOM path
// (parse_json + parse_infer_request(json) in infer_codec.cpp): anything it does not
// handle itself (an error of any kind, "features", binary inputs, BYTES tensors,
// escapes or non-ASCII in strings, duplicate keys, integers past 64 bits, numbers that
// overflow a double, nesting near the limit) makes it return nullopt, and the caller
// parses the same text with the DOM, which gives the exact result or error message.
// The writer produces the same bytes as nlohmann::json::dump of the DOM response
// (keys in sorted order, floats through nlohmann's own shortest round-trip
// formatting, strings with anything to escape through nlohmann's serializer).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/tensor.hpp"
#include "server/infer_codec.hpp"
#include "server/tensor_json.hpp"

namespace deskml::server {

// The request in `json` (the JSON part only; no binary data may follow it), or nullopt
// when the DOM path must decide.
std::optional<InferRequest> parse_infer_request_fast(std::string_view json, int max_json_depth,
                                                     const TensorLimits& limits);

// `s` as a JSON string, as nlohmann::json(s).dump(-1, ' ', false, replace) writes it.
void append_json_string(std::string& out, std::string_view s);
// `t`'s elements as a flat JSON array: the bytes of tensor_to_json_data(t).dump(...).
void append_tensor_json_data(std::string& out, const Tensor& t);

}  // namespace deskml::server
