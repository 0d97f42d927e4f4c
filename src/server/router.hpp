// Maps a request target to a KServe v2 endpoint. Path segments are percent-decoded
// before model names are validated, so `..%2F` cannot smuggle a separator past the check.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.hpp"
#include "server/http_types.hpp"

namespace deskml::server {

enum class Endpoint {
  kHealthLive,
  kHealthReady,
  kServerMetadata,
  kModelMetadata,
  kModelReady,
  kModelInfer,
  kModelInferStream,  // NDJSON, one line per item
  kStream,            // GET /v2/stream: the WebSocket upgrade
  kModelStats,
  kRepositoryIndex,
  kRepositoryLoad,
  kRepositoryUnload,
  kMetrics,
};

struct Route {
  Endpoint endpoint;
  std::string model;               // validated with validate_model_name
  std::optional<int64_t> version;  // from /versions/{v}
  http::verb method;               // the one method the endpoint answers
  bool public_endpoint = false;    // /v2/health/*: no token needed
};

// Repository load/unload/index, statistics and metrics: these always need the token,
// even when --open-inference lets inference and metadata through without one.
bool is_management(Endpoint e);

// `%XX` escapes decoded; InvalidArgument for a malformed one. Nothing else is special.
Result<std::string> percent_decode(std::string_view s);

// NotFound for an unknown path, InvalidArgument for a bad model name or version.
Result<Route> route(std::string_view target);

}  // namespace deskml::server
