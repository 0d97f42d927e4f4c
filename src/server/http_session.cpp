#include "server/http_session.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "server/errors.hpp"
#include "server/handlers.hpp"
#include "server/router.hpp"

namespace deskml::server {

namespace beast = boost::beast;
namespace asio = boost::asio;

HttpSession::HttpSession(asio::ip::tcp::socket socket, std::shared_ptr<ServerState> state)
    : stream_(std::move(socket)), state_(std::move(state)) {}

void HttpSession::start() {
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read_header(); });
}

void HttpSession::read_header() {
  parser_.emplace();
  parser_->header_limit(state_->options.max_header_bytes);
  parser_->body_limit(state_->options.max_body_bytes);
  route_.reset();
  cors_origin_.clear();
  stream_.expires_after(state_->options.idle_timeout);
  http::async_read_header(stream_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
}

void HttpSession::on_header(beast::error_code ec) {
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
  auto r = route(req.target());
  const bool is_public = r.ok() && r->public_endpoint;
  if (!is_public && !policy.authorized(req[http::field::authorization])) {
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
  // No timer while the runtime works: a request may legitimately take long.
  stream_.expires_never();
  Responder done = [self = shared_from_this()](Response res) {
    asio::post(self->stream_.get_executor(),
               [self, res = std::move(res)]() mutable { self->send(std::move(res), false); });
  };
  handle(*state_, *route_, parser_->release(), stream_.get_executor(), std::move(done));
}

void HttpSession::send(Response res, bool close) {
  res.version(version_);
  res.set(http::field::server, "deskml");
  if (!cors_origin_.empty()) {
    res.set(http::field::access_control_allow_origin, cors_origin_);
    res.set(http::field::vary, "Origin");
    res.set(http::field::access_control_expose_headers, "Inference-Header-Content-Length, Retry-After");
  }
  close = close || !keep_alive_ || state_->stopping.load();
  res.keep_alive(!close);
  res.prepare_payload();
  response_ = std::make_shared<Response>(std::move(res));
  stream_.expires_after(std::chrono::seconds(30));
  http::async_write(stream_, *response_,
                    [self = shared_from_this(), close](beast::error_code ec, size_t) { self->on_write(ec, close); });
}

void HttpSession::on_write(beast::error_code ec, bool close) {
  response_.reset();
  state_->in_flight.fetch_sub(1);
  if (ec) return this->close();
  if (close) return parser_ && !parser_->is_done() ? linger_close() : this->close();
  read_header();
}

void HttpSession::linger_close() {
  beast::error_code ec;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
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
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  stream_.socket().close(ec);
}

}  // namespace deskml::server
