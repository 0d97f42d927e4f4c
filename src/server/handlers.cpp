#include "server/handlers.hpp"

#include <boost/asio/post.hpp>
#include <charconv>
#include <nlohmann/json.hpp>
#include <string>

#include "server/errors.hpp"
#include "server/infer_codec.hpp"
#include "serving/log.hpp"

#ifndef DESKML_VERSION
#define DESKML_VERSION "0.0.0"
#endif

namespace deskml::server {
namespace {

using nlohmann::json;
namespace asio = boost::asio;

constexpr const char* kInferenceHeaderLength = "Inference-Header-Content-Length";

Response ok_json(const json& j) {
  return json_response(http::status::ok, j.dump(-1, ' ', false, json::error_handler_t::replace));
}

// Runs `fn` (returning a Response) on the blocking pool and answers with it.
template <typename Fn>
void run_blocking(ServerState& state, Responder done, Fn fn) {
  asio::post(state.blocking, [done = std::move(done), fn = std::move(fn)]() mutable {
    Response res;
    try {
      res = fn();
    } catch (const std::exception& e) {
      res = error_response(http::status::internal_server_error, e.what());
    }
    done(std::move(res));
  });
}

json dims_json(const graph::ValueType& type) {
  json shape = json::array();
  if (!type.shape) return json::array({-1});
  for (const auto& d : *type.shape) shape.push_back(d.known() ? d.value : -1);
  return shape;
}

json tensor_metadata(const std::vector<graph::ValueInfo>& values) {
  json out = json::array();
  for (const auto& v : values) {
    const DataType dt = v.type.dtype;
    out.push_back({{"name", v.name},
                   {"datatype", dt == DataType::kUndefined ? std::string() : std::string(dtype_kserve_name(dt))},
                   {"shape", dims_json(v.type)}});
  }
  return out;
}

Response model_metadata(ServerState& state, const Route& route) {
  auto md = state.runtime.metadata(route.model, route.version);
  if (!md.ok()) return error_response(md.status());
  json versions = json::array();
  for (int64_t v : md->versions) versions.push_back(std::to_string(v));
  return ok_json({{"name", md->name},
                  {"versions", versions},
                  {"platform", "onnx"},
                  {"inputs", tensor_metadata(md->inputs)},
                  {"outputs", tensor_metadata(md->outputs)},
                  {"parameters", {{"max_batch_size", md->max_batch_size}}}});
}

Response model_ready(ServerState& state, const Route& route) {
  auto st = state.runtime.model_status(route.model, route.version);
  if (!st.ok()) return error_response(st.status());
  if (st->state == serving::ModelState::kReady) return ok_json({{"name", route.model}, {"ready", true}});
  // Triton's convention: a model that is not ready answers 400.
  std::string why = std::string("model '") + route.model + "' is " + serving::model_state_name(st->state);
  if (!st->reason.empty()) why += ": " + st->reason;
  Response res = error_response(http::status::bad_request, why);
  res.body() = json({{"error", why}, {"name", route.model}, {"ready", false}})
                   .dump(-1, ' ', false, json::error_handler_t::replace);
  return res;
}

Response repository_index(ServerState& state, const std::string& body) {
  bool ready_only = false;
  if (!body.empty()) {
    auto j = parse_json(body, state.options.max_json_depth);
    if (!j.ok()) return error_response(j.status());
    if (!j->is_object()) return error_response(http::status::bad_request, "the body must be a JSON object");
    if (const auto r = j->find("ready"); r != j->end()) {
      if (!r->is_boolean()) return error_response(http::status::bad_request, "\"ready\" must be true or false");
      ready_only = r->get<bool>();
    }
  }
  json out = json::array();
  for (const auto& m : state.runtime.models()) {
    if (ready_only && m.state != serving::ModelState::kReady) continue;
    json row = {{"name", m.name}, {"state", serving::model_state_name(m.state)}, {"reason", m.reason}};
    if (m.version > 0) row["version"] = std::to_string(m.version);
    out.push_back(std::move(row));
  }
  return ok_json(out);
}

Response repository_load(ServerState& state, const Route& route, bool load) {
  Status st = load ? state.runtime.load(route.model, route.version) : state.runtime.unload(route.model, route.version);
  if (!st.ok()) return error_response(st, state.options.retry_after);
  return ok_json(json::object());
}

// Triton's statistics shape, from the runtime's Prometheus registry and ModelStatus.
Response model_stats(ServerState& state, const Route& route) {
  auto st = state.runtime.model_status(route.model, route.version);
  if (!st.ok()) return error_response(st.status());
  const auto& m = state.runtime.metrics().model(route.model);
  auto hist = [](prometheus::Histogram* h) {
    const auto c = h->Collect().histogram;
    return std::pair<uint64_t, double>{c.sample_count, c.sample_sum};
  };
  double failures = 0;
  json failures_by_reason = json::object();
  for (const auto& family : state.runtime.metrics().registry()->Collect()) {
    if (family.name != "deskml_request_failures_total") continue;
    for (const auto& metric : family.metric) {
      std::string model, reason;
      for (const auto& l : metric.label) {
        if (l.name == "model") model = l.value;
        if (l.name == "reason") reason = l.value;
      }
      if (model != route.model) continue;
      failures += metric.counter.value;
      failures_by_reason[reason] = static_cast<uint64_t>(metric.counter.value);
    }
  }
  const auto [queue_count, queue_s] = hist(m.queue_seconds);
  const auto [compute_count, compute_s] = hist(m.compute_seconds);
  auto ns = [](double s) { return static_cast<uint64_t>(s * 1e9); };
  json row = {{"name", route.model},
              {"version", st->version > 0 ? std::to_string(st->version) : std::string()},
              {"state", serving::model_state_name(st->state)},
              {"inference_count", static_cast<uint64_t>(m.requests->Value())},
              {"execution_count", compute_count},
              {"inference_stats",
               {{"success", {{"count", static_cast<uint64_t>(m.successes->Value())}}},
                {"fail", {{"count", static_cast<uint64_t>(failures)}, {"by_reason", failures_by_reason}}},
                {"queue", {{"count", queue_count}, {"ns", ns(queue_s)}}},
                {"compute_infer", {{"count", compute_count}, {"ns", ns(compute_s)}}},
                {"cache_hit", {{"count", static_cast<uint64_t>(m.cache_hits->Value())}}},
                {"cache_miss", {{"count", static_cast<uint64_t>(m.cache_misses->Value())}}}}},
              {"outstanding", st->outstanding},
              {"queued", st->queued},
              {"resident_bytes", st->resident_bytes}};
  return ok_json({{"model_stats", json::array({row})}});
}

void infer(ServerState& state, const Route& route, Request req, asio::any_io_executor ex, Responder done,
           const CallContext& context) {
  std::optional<size_t> json_size;
  if (const auto it = req.find(kInferenceHeaderLength); it != req.end()) {
    size_t n = 0;
    const auto v = it->value();
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || end != v.data() + v.size()) {
      return done(error_response(http::status::bad_request, "Inference-Header-Content-Length is not a number"));
    }
    json_size = n;
  }
  TensorLimits limits{state.options.max_tensor_elements};
  auto parsed = parse_infer_request(req.body(), json_size, state.options.max_json_depth, limits);
  if (!parsed.ok()) return done(error_response(parsed.status()));
  auto request = std::make_shared<InferRequest>(std::move(parsed).value());

  serving::InferOptions options;
  options.version = route.version;
  if (request->priority) options.priority = *request->priority;
  if (request->timeout_us) options.deadline = serving::Clock::now() + std::chrono::microseconds(*request->timeout_us);
  options.cancel = context.cancel ? context.cancel : std::make_shared<serving::CancelToken>();
  options.request_id = context.request_id;
  const uint64_t tracked = state.track(options.cancel);
  state.runtime_pending.fetch_add(1);
  const auto retry_after = state.options.retry_after;
  state.infer_async(route.model, *request, std::move(options),
                    [&state, ex, done, request, tracked, retry_after](Result<serving::InferResponse> result) {
                      // Encoding happens on the connection's executor, not on the runtime's worker.
                      asio::post(ex, [done, request, retry_after, result = std::move(result)]() {
                        if (!result.ok()) return done(error_response(result.status(), retry_after));
                        auto encoded = encode_infer_response(result.value(), *request);
                        if (!encoded.ok()) return done(error_response(encoded.status()));
                        Response res = json_response(http::status::ok, std::move(encoded->body));
                        if (encoded->json_size) {
                          res.set(http::field::content_type, "application/octet-stream");
                          res.set(kInferenceHeaderLength, std::to_string(*encoded->json_size));
                        }
                        done(std::move(res));
                      });
                      state.untrack(tracked);
                      state.runtime_pending.fetch_sub(1);
                    });
}

}  // namespace

void handle(ServerState& state, const Route& route, Request req, asio::any_io_executor ex, Responder done,
            const CallContext& context) {
  switch (route.endpoint) {
    case Endpoint::kHealthLive:
      return done(ok_json({{"live", true}}));
    case Endpoint::kHealthReady:
      if (state.stopping.load()) return done(error_response(http::status::service_unavailable, "shutting down"));
      return done(ok_json({{"ready", true}}));
    case Endpoint::kServerMetadata:
      return done(ok_json({{"name", "deskml"},
                           {"version", DESKML_VERSION},
                           {"extensions", {"binary_tensor_data", "model_repository", "statistics", "streaming"}}}));
    case Endpoint::kMetrics: {
      Response res{http::status::ok, 11};
      res.set(http::field::content_type, "text/plain; version=0.0.4");
      res.body() = state.runtime.metrics().text();
      return done(std::move(res));
    }
    case Endpoint::kModelInfer:
      return infer(state, route, std::move(req), std::move(ex), std::move(done), context);
    case Endpoint::kModelInferStream:  // answered by the connection itself (http_session.cpp, ws_session.cpp)
    case Endpoint::kStream:
      break;
    case Endpoint::kModelMetadata:
      return run_blocking(state, std::move(done), [&state, route] { return model_metadata(state, route); });
    case Endpoint::kModelReady:
      return run_blocking(state, std::move(done), [&state, route] { return model_ready(state, route); });
    case Endpoint::kModelStats:
      return run_blocking(state, std::move(done), [&state, route] { return model_stats(state, route); });
    case Endpoint::kRepositoryIndex:
      return run_blocking(state, std::move(done),
                          [&state, body = std::move(req.body())] { return repository_index(state, body); });
    case Endpoint::kRepositoryLoad:
    case Endpoint::kRepositoryUnload:
      return run_blocking(state, std::move(done), [&state, route] {
        return repository_load(state, route, route.endpoint == Endpoint::kRepositoryLoad);
      });
  }
  done(error_response(http::status::not_found, "no such endpoint"));
}

}  // namespace deskml::server
