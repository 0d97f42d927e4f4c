#include "server/http_session.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <cmath>

#include "server/errors.hpp"
#include "server/handlers.hpp"
#include "server/router.hpp"
#include "server/static_files.hpp"
#include "server/streaming.hpp"
#include "server/ws_session.hpp"
#include "serving/log.hpp"

namespace deskml::server {

namespace beast = boost::beast;
namespace asio = boost::asio;
using nlohmann::json;

namespace {

// A client's X-Request-Id when it is short and printable, else a new id.
std::string request_id_for(const Request& req) {
  const auto given = req["X-Request-Id"];
  if (!given.empty() && given.size() <= 64 &&
      std::all_of(given.begin(), given.end(), [](char c) { return c > ' ' && c < 127 && c != '"'; })) {
    return std::string(given);
  }
  return serving::log::new_request_id();
}

// Splits `s` at `sep`, trimming spaces; calls fn(piece) until it returns true.
template <typename Fn>
bool any_piece(std::string_view s, char sep, Fn fn) {
  while (!s.empty()) {
    const size_t end = std::min(s.find(sep), s.size());
    std::string_view piece = s.substr(0, end);
    while (!piece.empty() && piece.front() == ' ') piece.remove_prefix(1);
    while (!piece.empty() && piece.back() == ' ') piece.remove_suffix(1);
    if (fn(piece)) return true;
    s.remove_prefix(std::min(end + 1, s.size()));
  }
  return false;
}

}  // namespace

void append_response_head(const Response& res, std::string& out) {
  const unsigned version = res.version();
  const unsigned code = res.result_int();
  const char line[] = {'H',
                       'T',
                       'T',
                       'P',
                       '/',
                       static_cast<char>('0' + version / 10 % 10),
                       '.',
                       static_cast<char>('0' + version % 10),
                       ' ',
                       static_cast<char>('0' + code / 100 % 10),
                       static_cast<char>('0' + code / 10 % 10),
                       static_cast<char>('0' + code % 10),
                       ' '};
  out.append(line, sizeof line);
  auto reason = res.reason();
  if (reason.empty()) reason = http::obsolete_reason(res.result());
  out.append(reason.data(), reason.size());
  out += "\r\n";
  for (const auto& field : res) {
    const auto name = field.name_string();
    const auto value = field.value();
    out.append(name.data(), name.size());
    out += ": ";
    out.append(value.data(), value.size());
    out += "\r\n";
  }
  out += "\r\n";
}

HttpSession::HttpSession(Stream::socket_type socket, std::shared_ptr<ServerState> state, std::string remote)
    : stream_(std::move(socket)),
      state_(std::move(state)),
      remote_(std::move(remote)),
      idle_timer_(stream_.get_executor()) {}

void HttpSession::start() {
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read_header(); });
}

void HttpSession::read_header() {
  parser_.emplace();
  parser_->header_limit(state_->options.max_header_bytes);
  parser_->body_limit(state_->options.max_body_bytes);
  route_.reset();
  static_file_ = false;
  head_ = false;
  cors_origin_.clear();
  stream_.expires_after(state_->options.idle_timeout);
  http::async_read_header(stream_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
}

void HttpSession::on_header(beast::error_code ec) {
  started_ = std::chrono::steady_clock::now();
  method_.clear();
  target_.clear();
  request_id_.clear();
  ws_protocol_.clear();
  bytes_in_ = 0;
  status_ = 0;
  if (ec == http::error::header_limit) {
    state_->in_flight.fetch_add(1);
    return send(error_response(http::status::request_header_fields_too_large, "request header too large"), true);
  }
  if (ec == http::error::body_limit) {  // Beast checks Content-Length against the limit with the header
    state_->in_flight.fetch_add(1);
    return send(error_response(http::status::payload_too_large,
                               "the body is larger than " + std::to_string(state_->options.max_body_bytes) + " bytes"),
                true);
  }
  if (ec) return close();  // end of stream, timeout, garbage: nothing to answer
  state_->in_flight.fetch_add(1);
  const Request& req = parser_->get();
  method_ = std::string(req.method_string());
  target_ = std::string(req.target().substr(0, std::min<size_t>(req.target().find('?'), 512)));
  request_id_ = request_id_for(req);
  version_ = req.version();
  keep_alive_ = req.keep_alive();
  if (auto refusal = screen(req)) {
    // The body was not read, so the connection cannot carry another request.
    return send(std::move(*refusal), true);
  }
  if (req.method() == http::verb::options) {
    Response res{http::status::no_content, version_};
    res.set(http::field::allow, "GET, POST, OPTIONS");
    if (!cors_origin_.empty()) {
      res.set(http::field::access_control_allow_methods, "GET, POST, OPTIONS");
      res.set(http::field::access_control_allow_headers,
              "Authorization, Content-Type, Inference-Header-Content-Length");
      res.set(http::field::access_control_max_age, "600");
    }
    return send(std::move(res), !parser_->is_done());
  }
  if (beast::iequals(req[http::field::expect], "100-continue")) {
    continue_ = "HTTP/1.1 100 Continue\r\n\r\n";
    return asio::async_write(stream_, asio::buffer(continue_),
                             [self = shared_from_this()](beast::error_code e, size_t) {
                               if (e) {
                                 self->state_->in_flight.fetch_sub(1);
                                 return self->close();
                               }
                               self->read_body();
                             });
  }
  read_body();
}

std::optional<Response> HttpSession::screen(const Request& req) {
  const SecurityPolicy& policy = state_->policy;
  if (!policy.host_allowed(req[http::field::host])) {
    return error_response(http::status::forbidden, "the Host header must name this machine's loopback address");
  }
  if (const auto origin = req.find(http::field::origin); origin != req.end()) {
    if (!policy.origin_allowed(origin->value())) {
      return error_response(http::status::forbidden, "origin not allowed");
    }
    cors_origin_ = std::string(origin->value());
  }
  if (req.method() == http::verb::options) return std::nullopt;  // a CORS preflight needs no token
  if (!state_->options.ui_dir.empty() && is_static_target(req.target())) {
    // The UI's files: no token (the page holds no secret); Host and Origin were checked above.
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      Response res = error_response(http::status::method_not_allowed, "use GET or HEAD for the UI's files");
      res.set(http::field::allow, "GET, HEAD");
      return res;
    }
    if (const auto len = parser_->content_length(); len && *len > 0) {
      return error_response(http::status::bad_request, "a request for a UI file has no body");
    }
    static_file_ = true;
    head_ = req.method() == http::verb::head;
    return std::nullopt;
  }
  auto r = route(req.target());
  const bool is_public =
      r.ok() && (r->public_endpoint || (state_->options.open_inference && !is_management(r->endpoint)));
  bool authorized = is_public || policy.authorized(req[http::field::authorization]);
  if (r.ok() && r->endpoint == Endpoint::kStream) {
    // Browsers cannot set headers on a WebSocket: the token may come as the subprotocol
    // `bearer.<token>` (echoed back, as browsers require) or as `?token=`.
    any_piece(req[http::field::sec_websocket_protocol], ',', [&](std::string_view p) {
      if (p.substr(0, 7) != "bearer." || !policy.authorized("Bearer " + std::string(p.substr(7)))) return false;
      authorized = true;
      ws_protocol_ = std::string(p);
      return true;
    });
    const auto target = req.target();
    if (const size_t q = target.find('?'); !authorized && q != std::string_view::npos) {
      authorized = any_piece(target.substr(q + 1), '&', [&](std::string_view p) {
        return p.substr(0, 6) == "token=" && policy.authorized("Bearer " + std::string(p.substr(6)));
      });
    }
  }
  if (!authorized) {
    Response res = error_response(http::status::unauthorized, "missing or wrong bearer token");
    res.set(http::field::www_authenticate, "Bearer");
    return res;
  }
  if (!r.ok()) return error_response(r.status());
  if (req.method() != r->method) {
    Response res = error_response(http::status::method_not_allowed,
                                  "use " + std::string(http::to_string(r->method)) + " for this endpoint");
    res.set(http::field::allow, http::to_string(r->method));
    return res;
  }
  if (const auto len = parser_->content_length(); len && *len > state_->options.max_body_bytes) {
    return error_response(http::status::payload_too_large,
                          "the body is larger than " + std::to_string(state_->options.max_body_bytes) + " bytes");
  }
  route_ = std::move(r).value();
  return std::nullopt;
}

void HttpSession::read_body() {
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code ec, size_t) { self->on_body(ec); });
}

void HttpSession::on_body(beast::error_code ec) {
  if (ec == http::error::body_limit) {
    return send(error_response(http::status::payload_too_large, "the body is too large"), true);
  }
  if (ec) {
    state_->in_flight.fetch_sub(1);
    return close();
  }
  bytes_in_ = parser_->get().body().size();
  if (static_file_) return serve_static_file();
  // No timer while the runtime works: a request may legitimately take long.
  stream_.expires_never();
  if (route_->endpoint == Endpoint::kStream) return upgrade(parser_->release());
  busy_ = true;
  if (route_->endpoint == Endpoint::kModelInferStream) return start_item_stream(parser_->release());
  CallContext context{request_id_, nullptr};
  if (route_->endpoint == Endpoint::kModelInfer) {
    context.cancel = cancel_ = std::make_shared<serving::CancelToken>();
    watch_peer();
  }
  Responder done = [self = shared_from_this()](Response res) {
    asio::post(self->stream_.get_executor(),
               [self, res = std::move(res)]() mutable { self->send(std::move(res), false); });
  };
  handle(*state_, *route_, parser_->release(), stream_.get_executor(), std::move(done), context);
}

// UI files are small and local: read on the I/O thread (the blocking pool is for model loads,
// which may take seconds).
void HttpSession::serve_static_file() {
  busy_ = true;
  auto file = read_static_file(state_->options.ui_dir, parser_->get().target(), state_->options.max_ui_file_bytes);
  if (!file.ok()) {
    const bool missing = file.status().code() == StatusCode::kNotFound;
    return send(missing ? error_response(http::status::not_found, "no such file") : error_response(file.status()),
                false);
  }
  Response res{http::status::ok, version_};
  res.set(http::field::content_type, file->content_type);
  res.set(http::field::cache_control, "no-cache");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Referrer-Policy", "no-referrer");
  if (file->content_type.substr(0, 9) == "text/html") {
    // The page may talk to this server only, load nothing from elsewhere, and run no inline script.
    res.set("Content-Security-Policy",
            "default-src 'self'; connect-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
            "base-uri 'none'; form-action 'none'");
  }
  res.body() = std::move(file->body);
  send(std::move(res), false);
}

void HttpSession::send(Response res, bool close) {
  res.version(version_);
  res.set(http::field::server, "deskml");
  if (!request_id_.empty()) res.set("X-Request-Id", request_id_);
  status_ = res.result_int();
  if (!cors_origin_.empty()) {
    res.set(http::field::access_control_allow_origin, cors_origin_);
    res.set(http::field::vary, "Origin");
    res.set(http::field::access_control_expose_headers, "Inference-Header-Content-Length, Retry-After");
  }
  close = close || !keep_alive_ || state_->stopping.load();
  res.keep_alive(!close);
  res.prepare_payload();
  if (head_) {  // the headers a GET would get, Content-Length included, and no body
    const size_t length = res.body().size();
    res.body().clear();
    res.content_length(length);
  }
  response_ = std::make_shared<Response>(std::move(res));
  stream_.expires_after(std::chrono::seconds(30));
  auto on_written = [self = shared_from_this(), close](beast::error_code ec, size_t) { self->on_write(ec, close); };
  if (response_->chunked()) return http::async_write(stream_, *response_, std::move(on_written));
  // A Content-Length body (every answer here): the header serialized once into one
  // string and written with the body, which costs far less than Beast's serializer.
  response_head_.clear();
  append_response_head(*response_, response_head_);
  const std::array<asio::const_buffer, 2> buffers{asio::buffer(response_head_), asio::buffer(response_->body())};
  asio::async_write(stream_, buffers, std::move(on_written));
}

void HttpSession::on_write(beast::error_code ec, bool close) {
  log_access(status_, response_ ? response_->body().size() : 0);
  response_.reset();
  response_head_.clear();
  state_->in_flight.fetch_sub(1);
  busy_ = false;
  cancel_.reset();
  if (ec) return this->close();
  if (close) return parser_ && !parser_->is_done() ? linger_close() : this->close();
  next_request();
}

void HttpSession::next_request() {
  if (peer_gone_) return close();
  if (!watching_) return read_header();
  // The watch read is still waiting: it takes the next request when one comes. Until
  // then the keep-alive timeout applies as it does to read_header.
  idle_timer_.expires_after(state_->options.idle_timeout);
  idle_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (!ec && self->watching_ && !self->busy_) self->close();
  });
}

void HttpSession::watch_peer() {
  // Bytes already buffered are a pipelined request: the client is not leaving.
  if (watching_ || peer_gone_ || buffer_.size() > 0) return;
  watching_ = true;
  stream_.async_read_some(buffer_.prepare(4096),
                          [self = shared_from_this()](beast::error_code ec, size_t n) { self->on_watch(ec, n); });
}

void HttpSession::on_watch(beast::error_code ec, size_t n) {
  watching_ = false;
  idle_timer_.cancel();
  if (!ec) {
    buffer_.commit(n);
    if (!busy_) read_header();  // else: parsed once the answer is written
    return;
  }
  peer_gone_ = true;
  if (!busy_) return close();
  // The client closed (or the connection broke) while its request is queued or running:
  // the runtime drops it; its answer (Cancelled) is then written to nobody.
  if (cancel_) cancel_->cancel();
  if (serving::log::enabled(spdlog::level::info)) {
    serving::log::event(spdlog::level::info, "client_gone", {{"request_id", request_id_}, {"remote", remote_}});
  }
}

void HttpSession::start_item_stream(Request req) {
  auto items = parse_stream_items(req.body(), state_->options);
  if (!items.ok()) return send(error_response(items.status()), false);
  items_total_ = items->size();
  items_done_ = items_failed_ = stream_bytes_ = 0;
  stream_complete_ = false;
  chunked_ = version_ >= 11;
  status_ = 200;
  const bool close_after = !chunked_ || !keep_alive_ || state_->stopping.load();
  std::string head = chunked_ ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.0 200 OK\r\n";
  head += "Server: deskml\r\nContent-Type: application/x-ndjson\r\nCache-Control: no-store\r\n";
  head += "X-Request-Id: " + request_id_ + "\r\n";
  if (chunked_) head += "Transfer-Encoding: chunked\r\n";
  if (close_after) head += "Connection: close\r\n";
  if (!cors_origin_.empty()) head += "Access-Control-Allow-Origin: " + cors_origin_ + "\r\nVary: Origin\r\n";
  head += "\r\n";
  chunks_.push_back(std::move(head));
  write_chunks();

  cancel_ = std::make_shared<serving::CancelToken>();
  tracked_ = state_->track(cancel_);
  watch_peer();
  // All at once, so the batcher can put them in one batch.
  for (size_t i = 0; i < items->size(); ++i) {
    std::string item_id = (*items)[i].id;  // echoed on the item's line, answer or error
    submit_item(*state_, stream_.get_executor(), route_->model, route_->version,
                std::make_shared<InferRequest>(std::move((*items)[i])), cancel_, request_id_ + "." + std::to_string(i),
                [self = shared_from_this(), i, item_id = std::move(item_id)](bool ok, json fields) {
                  self->on_item(i, item_id, ok, std::move(fields));
                });
  }
}

void HttpSession::on_item(size_t index, const std::string& id, bool ok, json fields) {
  ++items_done_;
  if (!ok) ++items_failed_;
  if (!peer_gone_) {
    json line = {{"index", index}};
    if (!id.empty()) line["id"] = id;
    if (ok) {
      line["model_name"] = std::move(fields["model_name"]);
      line["model_version"] = std::move(fields["model_version"]);
      line["outputs"] = std::move(fields["outputs"]);
    } else {
      line["error"] = std::move(fields["error"]);
    }
    line["progress"] = {{"done", items_done_}, {"total", items_total_}};
    queue_chunk(line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
  }
  if (items_done_ < items_total_) return;
  state_->untrack(tracked_);
  tracked_ = 0;
  stream_complete_ = true;
  if (peer_gone_) {
    if (!writing_chunks_) end_item_stream(true);
    return;
  }
  queue_chunk(json({{"done", true}, {"total", items_total_}, {"failed", items_failed_}}).dump() + "\n");
  if (chunked_) chunks_.push_back("0\r\n\r\n");
  write_chunks();
}

void HttpSession::queue_chunk(std::string data) {
  if (chunked_) {
    char size[20];
    const int n = std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    data.insert(0, size, static_cast<size_t>(n));
    data += "\r\n";
  }
  chunks_.push_back(std::move(data));
  write_chunks();
}

void HttpSession::write_chunks() {
  if (writing_chunks_ || chunks_.empty()) return;
  writing_chunks_ = true;
  stream_.expires_after(std::chrono::seconds(30));
  asio::async_write(stream_, asio::buffer(chunks_.front()),
                    [self = shared_from_this()](beast::error_code ec, size_t n) {
                      self->writing_chunks_ = false;
                      self->stream_bytes_ += n;
                      self->chunks_.pop_front();
                      if (ec || self->peer_gone_) {
                        // The client is gone: what is still queued in the runtime is dropped.
                        self->peer_gone_ = true;
                        self->chunks_.clear();
                        if (self->cancel_) self->cancel_->cancel();
                        if (self->stream_complete_) self->end_item_stream(true);
                        return;
                      }
                      if (!self->chunks_.empty()) return self->write_chunks();
                      if (self->stream_complete_) self->end_item_stream(false);
                    });
}

void HttpSession::end_item_stream(bool failed) {
  log_access(status_, stream_bytes_);
  state_->in_flight.fetch_sub(1);
  busy_ = false;
  cancel_.reset();
  stream_.expires_never();
  if (failed || !chunked_ || !keep_alive_ || state_->stopping.load()) return close();
  next_request();
}

void HttpSession::upgrade(Request req) {
  if (!beast::websocket::is_upgrade(req)) {
    busy_ = true;
    return send(error_response(http::status::upgrade_required, "/v2/stream is a WebSocket endpoint"), false);
  }
  log_access(101, 0);
  state_->in_flight.fetch_sub(1);  // the WebSocket counts its own requests
  std::make_shared<WsSession>(std::move(stream_), state_, ws_protocol_)->start(std::move(req));
}

void HttpSession::log_access(unsigned status, size_t bytes_out) {
  if (!serving::log::enabled(spdlog::level::info)) return;
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_).count();
  serving::log::event(spdlog::level::info, "http_access",
                      {{"method", method_},
                       {"path", target_},
                       {"status", status},
                       {"ms", std::round(ms * 1000) / 1000},
                       {"bytes_in", bytes_in_},
                       {"bytes_out", bytes_out},
                       {"remote", remote_},
                       {"request_id", request_id_}});
}

void HttpSession::linger_close() {
  beast::error_code ec;
  stream_.socket().shutdown(asio::socket_base::shutdown_send, ec);
  stream_.expires_after(std::chrono::seconds(5));
  struct Drain {
    std::shared_ptr<HttpSession> self;
    void operator()(beast::error_code e, size_t) {
      if (e) return self->close();
      self->stream_.async_read_some(asio::buffer(self->discard_), std::move(*this));
    }
  };
  stream_.async_read_some(asio::buffer(discard_), Drain{shared_from_this()});
}

void HttpSession::close() {
  beast::error_code ec;
  idle_timer_.cancel();
  stream_.socket().shutdown(asio::socket_base::shutdown_send, ec);
  stream_.socket().close(ec);
}

}  // namespace deskml::server
