#include "server/errors.hpp"

#include <nlohmann/json.hpp>
#include <string>

namespace deskml::server {

http::status http_status_for(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return http::status::ok;
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
    case StatusCode::kUnsupported:
      return http::status::bad_request;
    case StatusCode::kNotFound:
      return http::status::not_found;
    case StatusCode::kResourceExhausted:
    case StatusCode::kUnavailable:
    case StatusCode::kCancelled:
      return http::status::service_unavailable;
    case StatusCode::kDeadlineExceeded:
      return http::status::gateway_timeout;
    case StatusCode::kInvalidModel:
    case StatusCode::kIoError:
    case StatusCode::kInternal:
      break;
  }
  return http::status::internal_server_error;
}

Response json_response(http::status status, std::string body) {
  Response res{status, 11};
  res.set(http::field::content_type, "application/json");
  res.body() = std::move(body);
  return res;
}

Response error_response(http::status status, std::string_view message) {
  nlohmann::json j = {{"error", std::string(message)}};
  return json_response(status, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

Response error_response(const Status& status, std::chrono::seconds retry_after) {
  Response res = error_response(http_status_for(status.code()), status.message());
  if (status.code() == StatusCode::kResourceExhausted) {
    res.set(http::field::retry_after, std::to_string(retry_after.count()));
  }
  return res;
}

}  // namespace deskml::server
