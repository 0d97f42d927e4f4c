// One HTTP/1.1 connection: reads a request's header, applies the security checks
// (Host, Origin, token) and the route before reading the body, hands the request
// to a handler, and writes the answer when it comes back — from whatever thread —
// by posting to the connection's strand. Keep-alive until the client or a
// shutdown ends it.
#pragma once

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <memory>
#include <optional>
#include <string>

#include "server/http_types.hpp"
#include "server/router.hpp"
#include "server/server_state.hpp"

namespace deskml::server {

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(boost::asio::ip::tcp::socket socket, std::shared_ptr<ServerState> state);
  void start();

 private:
  void read_header();
  void on_header(boost::beast::error_code ec);
  void read_body();
  void on_body(boost::beast::error_code ec);
  // Checks what can be checked from the header alone; an error response when refused.
  std::optional<Response> screen(const Request& req);
  // Sends `res` (CORS and connection headers added); `close` ends the connection after it.
  void send(Response res, bool close);
  void on_write(boost::beast::error_code ec, bool close);
  void close();
  // After refusing a request whose body was not read: stop sending, then read and drop
  // what the client still sends (bounded in time), so closing does not reset the
  // connection before the client has read the answer.
  void linger_close();

  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  std::shared_ptr<ServerState> state_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<Route> route_;
  std::shared_ptr<Response> response_;  // alive until its write completes
  std::string cors_origin_;             // the request's allowed Origin, echoed back
  std::string continue_;
  std::array<char, 16384> discard_{};  // "100 Continue" while it is being written
  unsigned version_ = 11;
  bool keep_alive_ = true;
};

}  // namespace deskml::server
