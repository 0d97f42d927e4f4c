#include "server/stdio_server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <array>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <memory>
#include <mutex>

#include "server/handlers.hpp"
#include "server/infer_codec.hpp"
#include "server/router.hpp"
#include "server/server_state.hpp"
#include "server/tensor_json.hpp"
#include "serving/log.hpp"
#include "serving/model_name.hpp"

namespace deskml::server {

using nlohmann::json;
namespace asio = boost::asio;

int rpc_code_for(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 0;
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
    case StatusCode::kUnsupported:
      return rpc::kInvalidParams;
    case StatusCode::kNotFound:
      return rpc::kNotFound;
    case StatusCode::kResourceExhausted:
    case StatusCode::kUnavailable:
      return rpc::kUnavailable;
    case StatusCode::kDeadlineExceeded:
      return rpc::kDeadlineExceeded;
    case StatusCode::kCancelled:
      return rpc::kCancelled;
    case StatusCode::kInvalidModel:
    case StatusCode::kIoError:
    case StatusCode::kInternal:
      break;
  }
  return rpc::kServerError;
}

namespace {

constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = (uint32_t{static_cast<uint8_t>(bytes[i])} << 16) |
                       (uint32_t{static_cast<uint8_t>(bytes[i + 1])} << 8) | static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t{static_cast<uint8_t>(bytes[i])} << 16;
    if (rest == 2) v |= uint32_t{static_cast<uint8_t>(bytes[i + 1])} << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

Result<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return invalid_argument("base64 text length is not a multiple of 4");
  std::array<int8_t, 256> value;
  value.fill(-1);
  for (size_t i = 0; i < kAlphabet.size(); ++i) value[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int pad = 0;
    uint32_t v = 0;
    for (size_t k = 0; k < 4; ++k) {
      const char c = text[i + k];
      if (c == '=' && last && k >= 2 && (k == 3 || text[i + 3] == '=')) {
        ++pad;
        v <<= 6;
        continue;
      }
      const int8_t d = value[static_cast<uint8_t>(c)];
      if (d < 0 || pad > 0) return invalid_argument("invalid base64 text");
      v = (v << 6) | static_cast<uint32_t>(d);
    }
    out += static_cast<char>((v >> 16) & 0xff);
    if (pad < 2) out += static_cast<char>((v >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(v & 0xff);
  }
  return out;
}

namespace {

// One JSON-RPC call being answered: its id, and whether it is a notification (no
// "id" member), which is run but never answered.
struct Call {
  json id;  // null for a notification or an unreadable request
  bool notification = false;
};

Route make_route(Endpoint endpoint, std::string model = {}, std::optional<int64_t> version = {}) {
  Route r{};
  r.endpoint = endpoint;
  r.model = std::move(model);
  r.version = version;
  return r;
}

class StdioServer {
 public:
  StdioServer(serving::Runtime& runtime, const ServerOptions& options, int out_fd, features::FeatureService* features)
      : state_(std::make_shared<ServerState>(runtime, options, 0)), out_fd_(out_fd) {
    state_->features = features;
  }

  void dispatch(std::string_view line);
  void refuse_long_line() {
    begin();
    error(Call{nullptr, false}, rpc::kInvalidRequest,
          "the message exceeds " + std::to_string(state_->options.max_body_bytes) + " bytes");
  }
  // After end of input: waits for what is in flight, cancelling it after the drain timeout.
  void drain();

  void result(const Call& call, json value) {
    if (!call.notification) write({{"jsonrpc", "2.0"}, {"id", call.id}, {"result", std::move(value)}});
    finish();
  }
  void error(const Call& call, int code, const std::string& message, json data = nullptr) {
    if (!call.notification) {
      json err = {{"code", code}, {"message", message}};
      if (!data.is_null()) err["data"] = std::move(data);
      write({{"jsonrpc", "2.0"}, {"id", call.id}, {"error", std::move(err)}});
    }
    finish();
  }
  void error(const Call& call, const Status& status) {
    json data = {{"status", status_code_name(status.code())}};
    if (status.code() == StatusCode::kResourceExhausted) data["retry_after"] = state_->options.retry_after.count();
    error(call, rpc_code_for(status.code()), status.message(), std::move(data));
  }

 private:
  void begin() {
    std::lock_guard lock(pending_mutex_);
    ++pending_;
  }
  void finish() {
    std::lock_guard lock(pending_mutex_);
    if (--pending_ == 0) pending_cv_.notify_all();
  }
  void write(const json& message);

  void run(const Call& call, const std::string& method, const json& params);
  void infer(const Call& call, const json& params);
  // Answers through the HTTP handler for `route` (the same JSON as the REST API).
  void via_handler(const Call& call, Route route, std::string body = {});
  // Runs `fn` (returning Result<json>) on the blocking pool.
  template <typename Fn>
  void blocking(const Call& call, Fn fn) {
    asio::post(state_->blocking, [this, call, fn = std::move(fn)]() mutable {
      try {
        Result<json> r = fn();
        if (r.ok()) return result(call, std::move(r).value());
        error(call, r.status());
      } catch (const std::exception& e) {
        error(call, rpc::kInternalError, e.what());
      }
    });
  }

  std::shared_ptr<ServerState> state_;
  asio::thread_pool encoders_{2};  // turns results into lines, off the runtime's workers
  int out_fd_;
  std::mutex out_mutex_;
  bool out_broken_ = false;
  std::mutex pending_mutex_;
  std::condition_variable pending_cv_;
  int64_t pending_ = 0;
};

void StdioServer::write(const json& message) {
  std::string line = message.dump(-1, ' ', false, json::error_handler_t::replace);
  line += '\n';
  std::lock_guard lock(out_mutex_);
  if (out_broken_) return;
  size_t off = 0;
  while (off < line.size()) {
    const ssize_t n = ::write(out_fd_, line.data() + off, line.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // The parent stopped reading; nothing more can be answered. Input EOF ends the process.
      out_broken_ = true;
      serving::log::event(spdlog::level::warn, "stdio_write_failed", {{"error", std::strerror(errno)}});
      return;
    }
    off += static_cast<size_t>(n);
  }
}

// The `version` parameter: a positive integer, or a string of digits as KServe writes it.
Result<std::optional<int64_t>> version_param(const json& params) {
  const auto it = params.find("version");
  if (it == params.end() || it->is_null()) return std::optional<int64_t>();
  int64_t v = 0;
  if (it->is_number_integer()) {
    v = it->get<int64_t>();
  } else if (it->is_string() && !it->get_ref<const std::string&>().empty() &&
             it->get_ref<const std::string&>().size() <= 18 &&
             it->get_ref<const std::string&>().find_first_not_of("0123456789") == std::string::npos) {
    v = std::stoll(it->get<std::string>());
  } else {
    return invalid_argument("\"version\" must be a positive integer");
  }
  if (v <= 0) return invalid_argument("\"version\" must be a positive integer");
  return std::optional<int64_t>(v);
}

Result<std::string> model_param(const json& params) {
  const auto it = params.find("model");
  if (it == params.end() || !it->is_string()) return invalid_argument("\"model\" (a string) is required");
  DESKML_RETURN_IF_ERROR(serving::validate_model_name(it->get_ref<const std::string&>()));
  return it->get<std::string>();
}

void StdioServer::dispatch(std::string_view line) {
  begin();
  auto parsed = parse_json(line, state_->options.max_json_depth);
  if (!parsed.ok()) return error(Call{nullptr, false}, rpc::kParseError, parsed.status().message());
  const json& msg = *parsed;
  if (msg.is_array()) {
    return error(Call{nullptr, false}, rpc::kInvalidRequest, "batch requests are not supported");
  }
  if (!msg.is_object()) return error(Call{nullptr, false}, rpc::kInvalidRequest, "a request is a JSON object");
  Call call{nullptr, true};
  if (const auto id = msg.find("id"); id != msg.end()) {
    call.notification = false;
    if (!id->is_string() && !id->is_number() && !id->is_null()) {
      return error(call, rpc::kInvalidRequest, "\"id\" must be a string, a number or null");
    }
    call.id = *id;
  }
  const auto version = msg.find("jsonrpc");
  if (version == msg.end() || *version != "2.0") {
    call.notification = false;  // an invalid request is answered even without an id
    return error(call, rpc::kInvalidRequest, "\"jsonrpc\" must be \"2.0\"");
  }
  const auto method = msg.find("method");
  if (method == msg.end() || !method->is_string()) {
    call.notification = false;
    return error(call, rpc::kInvalidRequest, "\"method\" must be a string");
  }
  json params = json::object();
  if (const auto p = msg.find("params"); p != msg.end() && !p->is_null()) {
    if (!p->is_object()) return error(call, rpc::kInvalidParams, "\"params\" must be an object");
    params = *p;
  }
  try {
    run(call, method->get<std::string>(), params);
  } catch (const std::exception& e) {
    error(call, rpc::kInternalError, e.what());
  }
}

void StdioServer::run(const Call& call, const std::string& method, const json& params) {
  auto invalid = [&](const Status& st) { error(call, rpc::kInvalidParams, st.message()); };
  if (method == "health") {
    return result(call, {{"live", true}, {"ready", !state_->stopping.load()}});
  }
  if (method == "server_metadata") return via_handler(call, make_route(Endpoint::kServerMetadata));
  if (method == "metrics") return result(call, state_->runtime.metrics().text());
  if (method == "repository_index") {
    if (const auto r = params.find("ready"); r != params.end() && !r->is_boolean()) {
      return invalid(invalid_argument("\"ready\" must be true or false"));
    }
    return via_handler(call, make_route(Endpoint::kRepositoryIndex), params.dump());
  }
  if (method == "infer") return infer(call, params);

  const bool model_method = method == "model_metadata" || method == "model_ready" || method == "load" ||
                            method == "unload" || method == "stats";
  if (!model_method) return error(call, rpc::kMethodNotFound, "no method '" + method + "'");
  auto model = model_param(params);
  if (!model.ok()) return invalid(model.status());
  auto version = version_param(params);
  if (!version.ok()) return invalid(version.status());
  Route route = make_route(Endpoint::kModelMetadata, *model, *version);

  if (method == "model_metadata") return via_handler(call, route);
  if (method == "stats") {
    route.endpoint = Endpoint::kModelStats;
    return via_handler(call, route);
  }
  if (method == "model_ready") {
    return blocking(call, [this, route]() -> Result<json> {
      DESKML_ASSIGN_OR_RETURN(auto st, state_->runtime.model_status(route.model, route.version));
      json out = {{"name", route.model},
                  {"ready", st.state == serving::ModelState::kReady},
                  {"state", serving::model_state_name(st.state)}};
      if (st.version > 0) out["version"] = std::to_string(st.version);
      if (!st.reason.empty()) out["reason"] = st.reason;
      return out;
    });
  }
  const bool load = method == "load";
  return blocking(call, [this, route, load]() -> Result<json> {
    DESKML_RETURN_IF_ERROR(load ? state_->runtime.load(route.model, route.version)
                                : state_->runtime.unload(route.model, route.version));
    return json::object();
  });
}

void StdioServer::via_handler(const Call& call, Route route, std::string body) {
  Request req{http::verb::post, "/", 11};
  req.body() = std::move(body);
  handle(*state_, route, std::move(req), encoders_.get_executor(), [this, call](Response res) {
    json body = json::parse(res.body(), nullptr, false);
    if (res.result() == http::status::ok) return result(call, std::move(body));
    const std::string message = body.is_object() && body.contains("error") && body["error"].is_string()
                                    ? body["error"].get<std::string>()
                                    : std::string(res.reason());
    // The handler answered with an HTTP status; name the runtime status it stands for.
    switch (res.result()) {
      case http::status::not_found:
        return error(call, rpc::kNotFound, message, {{"status", "NotFound"}});
      case http::status::bad_request:
        return error(call, rpc::kInvalidParams, message, {{"status", "InvalidArgument"}});
      case http::status::service_unavailable:
        return error(call, rpc::kUnavailable, message, {{"status", "Unavailable"}});
      case http::status::gateway_timeout:
        return error(call, rpc::kDeadlineExceeded, message, {{"status", "DeadlineExceeded"}});
      default:
        return error(call, rpc::kServerError, message, {{"status", "Internal"}});
    }
  });
}

// `infer` params: {model, version?, id?, inputs, outputs?, parameters?}, the KServe v2
// request body plus model and version. An input may give its bytes as "data_base64"
// (Triton's binary form, base64) instead of "data"; an output asked for with
// parameters.binary_data (or every output, with parameters.binary_data_output) comes
// back as "data_base64".
void StdioServer::infer(const Call& call, const json& params) {
  auto model = model_param(params);
  if (!model.ok()) return error(call, rpc::kInvalidParams, model.status().message());
  auto version = version_param(params);
  if (!version.ok()) return error(call, rpc::kInvalidParams, version.status().message());

  json header = params;
  header.erase("model");
  header.erase("version");
  std::string binary;
  if (const auto inputs = header.find("inputs"); inputs != header.end() && inputs->is_array()) {
    for (auto& input : *inputs) {
      if (!input.is_object()) continue;  // the codec names the problem
      const auto b64 = input.find("data_base64");
      if (b64 == input.end()) continue;
      if (!b64->is_string()) return error(call, rpc::kInvalidParams, "\"data_base64\" must be a string");
      if (input.contains("data")) return error(call, rpc::kInvalidParams, "an input has both data and data_base64");
      auto bytes = base64_decode(b64->get_ref<const std::string&>());
      if (!bytes.ok()) return error(call, rpc::kInvalidParams, "data_base64: " + bytes.status().message());
      json& p = input["parameters"];
      if (!p.is_null() && !p.is_object()) return error(call, rpc::kInvalidParams, "input parameters must be an object");
      p["binary_data_size"] = bytes->size();
      binary += *bytes;
      input.erase("data_base64");
    }
  }
  const TensorLimits limits{state_->options.max_tensor_elements};
  auto parsed = parse_infer_request(header, binary, limits);
  if (!parsed.ok()) return error(call, parsed.status());
  auto request = std::make_shared<InferRequest>(std::move(parsed).value());

  serving::InferOptions options;
  options.version = *version;
  if (request->priority) options.priority = *request->priority;
  if (request->timeout_us) options.deadline = serving::Clock::now() + std::chrono::microseconds(*request->timeout_us);
  options.cancel = std::make_shared<serving::CancelToken>();
  const uint64_t tracked = state_->track(options.cancel);
  state_->infer_async(*model, *request, std::move(options),
                      [this, call, request, tracked](Result<serving::InferResponse> result) {
                        state_->untrack(tracked);
                        asio::post(encoders_, [this, call, request, result = std::move(result)]() {
                          if (!result.ok()) return error(call, result.status());
                          std::string bytes;
                          auto encoded = infer_response_json(result.value(), *request, bytes);
                          if (!encoded.ok()) return error(call, encoded.status());
                          json out = std::move(encoded).value();
                          size_t offset = 0;
                          for (auto& o : out["outputs"]) {
                            const auto p = o.find("parameters");
                            if (p == o.end() || !p->contains("binary_data_size")) continue;
                            const size_t n = (*p)["binary_data_size"].get<size_t>();
                            o["data_base64"] = base64_encode(std::string_view(bytes).substr(offset, n));
                            offset += n;
                            o.erase("parameters");
                          }
                          this->result(call, std::move(out));
                        });
                      });
}

void StdioServer::drain() {
  state_->stopping = true;
  std::unique_lock lock(pending_mutex_);
  if (!pending_cv_.wait_for(lock, state_->options.drain_timeout, [&] { return pending_ == 0; })) {
    serving::log::event(spdlog::level::warn, "stdio_drain_timeout", {{"cancelling", pending_}});
    lock.unlock();
    state_->cancel_all();
    lock.lock();
    pending_cv_.wait(lock, [&] { return pending_ == 0; });
  }
  lock.unlock();
  encoders_.join();
  state_->blocking.join();
}

}  // namespace

namespace {

// SIGTERM and SIGINT end the input like EOF does: the handler writes a byte to a
// pipe that the read loop polls beside stdin (the signal may land on any thread).
int g_stop_pipe[2] = {-1, -1};

extern "C" void on_stop_signal(int) {
  const char byte = 1;
  [[maybe_unused]] const ssize_t n = ::write(g_stop_pipe[1], &byte, 1);
}

// Waits until `in_fd` is readable or a stop signal arrived; false for a signal.
bool wait_for_input(int in_fd) {
  for (;;) {
    pollfd fds[2] = {{in_fd, POLLIN, 0}, {g_stop_pipe[0], POLLIN, 0}};
    const int n = ::poll(fds, g_stop_pipe[0] >= 0 ? 2 : 1, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return true;  // let read() report the problem
    if (g_stop_pipe[0] >= 0 && (fds[1].revents & POLLIN)) return false;
    if (fds[0].revents) return true;
  }
}

}  // namespace

Status serve_stdio(serving::Runtime& runtime, const ServerOptions& options, int in_fd, int out_fd,
                   features::FeatureService* features) {
  // A parent that died leaves a broken pipe: writes fail with EPIPE instead of killing us.
  std::signal(SIGPIPE, SIG_IGN);
  if (g_stop_pipe[0] < 0 && ::pipe2(g_stop_pipe, O_CLOEXEC | O_NONBLOCK) == 0) {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
  }
  StdioServer server(runtime, options, out_fd, features);
  const size_t max_line = options.max_body_bytes;
  std::string line;
  bool overlong = false;  // discarding the rest of a line that is too long
  std::array<char, 65536> buf;
  for (;;) {
    if (!wait_for_input(in_fd)) {
      serving::log::event(spdlog::level::info, "stdio_stopping", {{"reason", "signal"}});
      break;
    }
    const ssize_t n = ::read(in_fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      serving::log::event(spdlog::level::warn, "stdio_read_failed", {{"error", std::strerror(errno)}});
      break;
    }
    if (n == 0) break;
    std::string_view chunk(buf.data(), static_cast<size_t>(n));
    while (!chunk.empty()) {
      const size_t nl = chunk.find('\n');
      const std::string_view part = chunk.substr(0, nl);
      if (!overlong) {
        if (line.size() + part.size() > max_line) {
          overlong = true;
          line.clear();
          line.shrink_to_fit();
        } else {
          line.append(part);
        }
      }
      if (nl == std::string_view::npos) break;
      chunk.remove_prefix(nl + 1);
      if (overlong) {
        server.refuse_long_line();
        overlong = false;
        continue;
      }
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") != std::string::npos) server.dispatch(line);
      line.clear();
    }
  }
  if (overlong) {
    server.refuse_long_line();
  } else if (line.find_first_not_of(" \t\r") != std::string::npos) {
    server.dispatch(line);  // a last message without its newline
  }
  server.drain();
  return Status::Ok();
}

}  // namespace deskml::server
