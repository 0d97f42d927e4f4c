// One HTTP/1.1 connection: reads a request's header, applies the security checks
// (Host, Origin, token) and the route before reading the body, hands the request
// to a handler, and writes the answer when it comes back — from whatever thread —
// by posting to the connection's strand. Keep-alive until the client or a
// shutdown ends it.
//
// While a request is with the runtime the connection keeps reading: end of stream or
// an error there (the client went away) cancels the request's CancelToken, so the
// runtime drops it from its queue. It also answers the NDJSON streaming endpoint
// (chunked, one line per item) and hands a WebSocket upgrade to WsSession.
#pragma once

#include <array>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "server/http_types.hpp"
#include "server/router.hpp"
#include "server/server_state.hpp"

namespace deskml::server {

// TCP or Unix domain socket alike.
using Stream = boost::beast::basic_stream<boost::asio::generic::stream_protocol>;

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  // `remote` names the peer in access logs ("127.0.0.1:5123", "unix").
  HttpSession(Stream::socket_type socket, std::shared_ptr<ServerState> state, std::string remote);
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
  void serve_static_file();
  void on_write(boost::beast::error_code ec, bool close);
  // The request is answered: read the next one (or let the pending watch do it).
  void next_request();
  void close();
  // After refusing a request whose body was not read: stop sending, then read and drop
  // what the client still sends (bounded in time), so closing does not reset the
  // connection before the client has read the answer.
  void linger_close();

  // While busy: one read that notices the client closing (or takes its next,
  // pipelined request into buffer_).
  void watch_peer();
  void on_watch(boost::beast::error_code ec, size_t n);

  // POST .../infer_stream: chunked NDJSON, one line per item as it completes.
  void start_item_stream(Request req);
  void on_item(size_t index, const std::string& id, bool ok, nlohmann::json fields);
  void queue_chunk(std::string data);
  void write_chunks();
  void end_item_stream(bool failed);

  // GET /v2/stream with an Upgrade header: becomes a WsSession.
  void upgrade(Request req);

  void log_access(unsigned status, size_t bytes_out);

  Stream stream_;
  boost::beast::flat_buffer buffer_;
  std::shared_ptr<ServerState> state_;
  std::string remote_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<Route> route_;
  bool static_file_ = false;  // the request is for a file of the --ui folder
  bool head_ = false;         // a HEAD request: the response goes without its body
  std::shared_ptr<Response> response_;  // alive until its write completes
  std::string response_head_;           // its serialized header, while it is written
  std::string cors_origin_;             // the request's allowed Origin, echoed back
  std::string continue_;                // "100 Continue" while it is being written
  std::string ws_protocol_;             // `bearer.<token>` when the upgrade authenticated with it
  std::array<char, 16384> discard_{};
  unsigned version_ = 11;
  bool keep_alive_ = true;

  // The request in progress, for the access log and cancellation.
  std::chrono::steady_clock::time_point started_;
  std::string method_, target_, request_id_;
  size_t bytes_in_ = 0;
  unsigned status_ = 0;
  std::shared_ptr<serving::CancelToken> cancel_;
  uint64_t tracked_ = 0;  // cancel_'s id in ServerState (0: not tracked)

  bool busy_ = false;      // a request is with a handler or the runtime
  bool watching_ = false;  // watch_peer's read is pending
  bool peer_gone_ = false;
  boost::asio::steady_timer idle_timer_;  // the keep-alive timeout while the watch read waits

  // The NDJSON stream in progress.
  size_t items_total_ = 0, items_done_ = 0, items_failed_ = 0;
  std::deque<std::string> chunks_;
  bool writing_chunks_ = false;
  bool stream_complete_ = false;  // the final line is queued
  bool chunked_ = true;           // HTTP/1.0 clients get raw lines and a close
  size_t stream_bytes_ = 0;
};

}  // namespace deskml::server
