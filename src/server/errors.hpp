// Errors as HTTP responses: `{"error": "..."}` with the status a StatusCode maps to.
// The mapping lives here and nowhere else.
#pragma once

#include <chrono>
#include <string_view>

#include "core/status.hpp"
#include "server/http_types.hpp"

namespace deskml::server {

// InvalidArgument/OutOfRange/Unsupported 400, NotFound 404, ResourceExhausted 503 (with
// Retry-After), Unavailable 503, DeadlineExceeded 504, Cancelled 503, anything else 500.
http::status http_status_for(StatusCode code);

// A JSON body response; Content-Type application/json.
Response json_response(http::status status, std::string body);
// {"error": message} with `status`.
Response error_response(http::status status, std::string_view message);
// {"error": status.message()} with http_status_for(status.code()); Retry-After when the
// runtime refused for load (ResourceExhausted).
Response error_response(const Status& status, std::chrono::seconds retry_after = std::chrono::seconds(1));

}  // namespace deskml::server
