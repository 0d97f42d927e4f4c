#include "server/ws_session.hpp"

#include <boost/asio/dispatch.hpp>
#include <cmath>

#include "server/streaming.hpp"
#include "serving/log.hpp"
#include "serving/model_name.hpp"

namespace deskml::server {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
using nlohmann::json;

WsSession::WsSession(Stream stream, std::shared_ptr<ServerState> state, std::string subprotocol)
    : ws_(std::move(stream)), state_(std::move(state)), subprotocol_(std::move(subprotocol)) {}

void WsSession::start(Request upgrade) {
  beast::get_lowest_layer(ws_).expires_never();
  ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
  ws_.set_option(websocket::stream_base::decorator([protocol = subprotocol_](websocket::response_type& res) {
    res.set(http::field::server, "deskml");
    if (!protocol.empty()) res.set(http::field::sec_websocket_protocol, protocol);
  }));
  ws_.read_message_max(state_->options.max_body_bytes);
  ws_.async_accept(upgrade, [self = shared_from_this()](beast::error_code ec) {
    if (ec) return self->gone();
    self->read();
  });
}

void WsSession::read() {
  ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
}

void WsSession::on_read(beast::error_code ec) {
  if (ec) return gone();
  if (!ws_.got_text()) {
    answer({{"error", "messages must be JSON text"}});
  } else {
    const std::string text = beast::buffers_to_string(buffer_.data());
    on_message(text);
  }
  buffer_.consume(buffer_.size());
  read();
}

void WsSession::on_message(std::string_view text) {
  auto parsed = parse_json(text, state_->options.max_json_depth);
  if (!parsed.ok()) return answer({{"error", parsed.status().message()}});
  const json& j = *parsed;
  if (!j.is_object()) return answer({{"error", "a message must be a JSON object"}});
  const json id = j.contains("id") ? j["id"] : json(nullptr);
  auto fail = [&](const std::string& why) { answer({{"id", id}, {"error", why}}); };
  if (const auto type = j.find("type"); type != j.end()) {
    if (*type == "cancel") {
      for (auto& [seq, p] : pending_) {
        if (p.id == id) p.cancel->cancel();  // its answer comes from the runtime: Cancelled
      }
      return;
    }
    if (*type != "infer") return fail("unknown message type");
  }
  if (state_->stopping.load()) return fail("shutting down");
  if (pending_.size() >= state_->options.max_ws_in_flight) {
    return fail("too many requests in flight on this connection (at most " +
                std::to_string(state_->options.max_ws_in_flight) + ")");
  }
  const auto model = j.find("model");
  if (model == j.end() || !model->is_string()) return fail("the message has no \"model\"");
  if (Status st = serving::validate_model_name(model->get<std::string>()); !st.ok()) return fail(st.message());
  std::optional<int64_t> version;
  if (const auto v = j.find("version"); v != j.end() && !v->is_null()) {
    int64_t n = 0;
    if (v->is_number_integer()) {
      n = v->get<int64_t>();
    } else if (v->is_string()) {
      const std::string& s = v->get_ref<const std::string&>();
      if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos)
        n = 0;
      else
        n = std::stoll(s);
    }
    if (n <= 0) return fail("\"version\" must be a positive integer");
    version = n;
  }
  auto request = parse_infer_request(j, {}, TensorLimits{state_->options.max_tensor_elements});
  if (!request.ok()) return fail(request.status().message());

  const uint64_t seq = next_seq_++;
  Pending p{id,
            std::make_shared<serving::CancelToken>(),
            0,
            model->get<std::string>(),
            serving::log::new_request_id(),
            std::chrono::steady_clock::now()};
  p.tracked = state_->track(p.cancel);
  auto cancel = p.cancel;
  const std::string request_id = p.request_id;
  pending_.emplace(seq, std::move(p));
  state_->in_flight.fetch_add(1);
  submit_item(*state_, ws_.get_executor(), model->get<std::string>(), version,
              std::make_shared<InferRequest>(std::move(request).value()), std::move(cancel), request_id,
              [self = shared_from_this(), seq](bool, json fields) {
                const auto it = self->pending_.find(seq);
                if (it == self->pending_.end()) return;
                fields["id"] = it->second.id;
                self->log_message(it->second, fields);
                self->state_->untrack(it->second.tracked);
                self->pending_.erase(it);
                self->state_->in_flight.fetch_sub(1);
                self->answer(std::move(fields));
              });
}

void WsSession::log_message(const Pending& p, const json& answer) const {
  if (!serving::log::enabled(spdlog::level::info)) return;
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - p.started).count();
  const auto error = answer.find("error");
  serving::log::event(spdlog::level::info, "ws_access",
                      {{"path", "/v2/stream"},
                       {"model", p.model},
                       {"ok", error == answer.end()},
                       {"error", error == answer.end() ? json(nullptr) : *error},
                       {"ms", std::round(ms * 1000) / 1000},
                       {"request_id", p.request_id}});
}

void WsSession::answer(json message) {
  if (gone_) return;
  out_.push_back(message.dump(-1, ' ', false, json::error_handler_t::replace));
  if (!writing_) write_next();
}

void WsSession::write_next() {
  writing_ = true;
  ws_.text(true);
  ws_.async_write(boost::asio::buffer(out_.front()), [self = shared_from_this()](beast::error_code ec, size_t) {
    self->out_.pop_front();
    self->writing_ = false;
    if (ec) self->gone();
    if (self->gone_) return self->out_.clear();
    if (!self->out_.empty()) self->write_next();
  });
}

void WsSession::gone() {
  if (gone_) return;
  gone_ = true;
  if (!writing_) out_.clear();  // else the write in progress still owns out_.front()
  for (auto& [seq, p] : pending_) p.cancel->cancel();
  // Their answers still arrive (Cancelled) and release the in-flight counts.
  beast::error_code ec;
  beast::get_lowest_layer(ws_).socket().close(ec);
}

}  // namespace deskml::server
