// The HTTP message types the server's parts pass around (Beast's, with string bodies).
#pragma once

#include <boost/beast/http.hpp>
#include <functional>

namespace deskml::server {

namespace http = boost::beast::http;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;
// Hands a finished response back to its connection; callable from any thread, exactly once.
using Responder = std::function<void(Response)>;

}  // namespace deskml::server
