// The HTTP message types the server's parts pass around (Beast's, with string bodies).
#pragma once

#include <boost/beast/http.hpp>
#include <functional>
#include <string>

namespace deskml::server {

namespace http = boost::beast::http;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;
// Hands a finished response back to its connection; callable from any thread, exactly once.
using Responder = std::function<void(Response)>;

// The status line and header fields of `res` as Beast's serializer writes them
// ("HTTP/1.1 200 OK\r\n", each field as stored, then an empty line), appended to `out`.
void append_response_head(const Response& res, std::string& out);

}  // namespace deskml::server
