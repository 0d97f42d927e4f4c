// libFuzzer target for the HTTP server's request path: raw bytes go through Beast's
// request parser with the server's limits, the security checks (token, Host, Origin),
// the router, and the KServe handlers, which decode the JSON and binary-extension
// bodies and run two tiny in-memory models (FP32 and BYTES identities). Nothing may
// crash, leak or trip a sanitizer, and every request gets exactly one answer.
//
// Seeds: tests/fuzz/http_corpus/ (raw HTTP requests, one per file).
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "server/handlers.hpp"
#include "server/infer_codec.hpp"
#include "server/infer_json_fast.hpp"
#include "server/router.hpp"
#include "server/server_state.hpp"
#include "serving/runtime.hpp"
#include "serving_models.hpp"

namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace models = deskml::serving::testing;
using namespace deskml;

// y = Identity(x) for a 1-D tensor of `elem_type` (an onnx::TensorProto::DataType).
std::string identity_model(int elem_type) {
  auto m = models::detail::new_model();
  auto* g = m.mutable_graph();
  models::detail::add_value(g->mutable_input(), "x", {-1});
  models::detail::add_value(g->mutable_output(), "y", {-1});
  g->mutable_input(0)->mutable_type()->mutable_tensor_type()->set_elem_type(elem_type);
  g->mutable_output(0)->mutable_type()->mutable_tensor_type()->set_elem_type(elem_type);
  models::detail::add_node(g, "Identity", {"x"}, {"y"});
  return m.SerializeAsString();
}

constexpr const char* kToken = "fuzz-token";

struct Harness {
  models::TempDir dir;
  std::unique_ptr<serving::Runtime> runtime;
  std::shared_ptr<server::ServerState> state;
  asio::io_context ioc;

  Harness() {
    serving::RuntimeOptions ro;
    ro.threads = 1;
    ro.poll_interval = std::chrono::milliseconds(0);
    ro.cache_dir = dir.path() / "cache";
    auto rt = serving::Runtime::create(ro);
    if (!rt.ok()) fail("runtime: " + rt.status().to_string());
    runtime = std::move(rt).value();
    add("fp32", identity_model(onnx::TensorProto::FLOAT));
    add("text", identity_model(onnx::TensorProto::STRING));
    server::ServerOptions options;
    options.token = kToken;
    options.max_body_bytes = 1 << 20;
    options.max_header_bytes = 8 * 1024;
    options.max_json_depth = 32;
    options.max_tensor_elements = 1 << 20;
    state = std::make_shared<server::ServerState>(*runtime, options, 8000);
  }

  void add(const std::string& name, const std::string& bytes) {
    const auto file = dir.path() / (name + ".onnx");
    models::write_file(file, bytes);
    serving::ModelConfig config;
    config.keep_alive = serving::KeepAlive::kForever;
    if (Status st = runtime->add_model_file(name, file, config); !st.ok()) fail("model: " + st.to_string());
  }

  [[noreturn]] static void fail(const std::string& why) {
    std::fprintf(stderr, "fuzz_http: %s\n", why.c_str());
    std::abort();
  }
};

Harness& harness() {
  static Harness* h = new Harness();  // never destroyed: the runtime outlives every input
  return *h;
}

// Runs the handler for one routed request and waits for its one answer.
void answer(Harness& h, const server::Route& route, server::Request req) {
  auto answered = std::make_shared<std::atomic<int>>(0);
  auto work = asio::make_work_guard(h.ioc);
  server::handle(*h.state, route, std::move(req), h.ioc.get_executor(), [answered](server::Response res) {
    if (res.result_int() < 200 || res.result_int() > 599) Harness::fail("bad status");
    answered->fetch_add(1);
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (answered->load() == 0) {
    h.ioc.run_one_for(std::chrono::milliseconds(5));
    if (std::chrono::steady_clock::now() > deadline) Harness::fail("no answer within 20 s");
  }
  work.reset();
  h.ioc.poll();  // anything posted after the answer
  h.ioc.restart();
  if (answered->load() != 1) Harness::fail("answered more than once");
}

}  // namespace

// The DOM-free infer request parser may only accept what the DOM path accepts, and
// must then give the same request.
void check_fast_parser(std::string_view body, const server::ServerOptions& options) {
  const server::TensorLimits limits{options.max_tensor_elements};
  auto fast = server::parse_infer_request_fast(body, options.max_json_depth, limits);
  if (!fast) return;
  auto j = server::parse_json(body, options.max_json_depth);
  if (!j.ok()) Harness::fail("the fast parser accepted JSON the DOM refuses: " + j.status().message());
  auto dom = server::parse_infer_request(*j, {}, limits);
  if (!dom.ok()) Harness::fail("the fast parser accepted a request the DOM path refuses: " + dom.status().message());
  const server::InferRequest& a = *fast;
  const server::InferRequest& b = *dom;
  bool same = a.id == b.id && a.inputs.size() == b.inputs.size() && a.outputs.size() == b.outputs.size() &&
              !b.features && a.binary_outputs == b.binary_outputs && a.priority == b.priority &&
              a.timeout_us == b.timeout_us;
  for (size_t i = 0; same && i < a.inputs.size(); ++i) {
    const Tensor& x = a.inputs[i].second;
    const Tensor& y = b.inputs[i].second;
    same = a.inputs[i].first == b.inputs[i].first && x.dtype() == y.dtype() && x.shape() == y.shape() &&
           x.dtype() != DataType::kString &&
           (x.nbytes() == 0 || std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) == 0);
  }
  for (size_t i = 0; same && i < a.outputs.size(); ++i) {
    same = a.outputs[i].name == b.outputs[i].name && a.outputs[i].binary == b.outputs[i].binary;
  }
  if (!same) Harness::fail("the fast parser and the DOM path read a request differently");
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Harness& h = harness();
  const auto& options = h.state->options;

  http::request_parser<http::string_body> parser;
  parser.header_limit(options.max_header_bytes);
  parser.body_limit(options.max_body_bytes);
  parser.eager(true);
  boost::beast::error_code ec;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // Feed the bytes in two pieces, as a socket might deliver them.
  const size_t split = size > 0 ? data[0] % (size + 1) : 0;
  size_t used = parser.put(asio::buffer(input.data(), split), ec);
  if (ec == http::error::need_more) ec = {};
  if (!ec) {
    std::string rest(input.substr(used));
    while (!ec && !rest.empty() && !parser.is_done()) {
      const size_t n = parser.put(asio::buffer(rest), ec);
      if (ec == http::error::need_more) break;
      if (n == 0) break;
      rest.erase(0, n);
    }
    if (!ec && !parser.is_done()) parser.put_eof(ec);
  }
  if (ec || !parser.is_done()) return 0;
  server::Request req = parser.release();
  check_fast_parser(req.body(), options);

  // What HttpSession::screen checks from the header.
  const auto& policy = h.state->policy;
  const bool host_ok = policy.host_allowed(req[http::field::host]);
  const bool origin_ok = req.find(http::field::origin) == req.end() || policy.origin_allowed(req[http::field::origin]);
  const bool token_ok = policy.authorized(req[http::field::authorization]);

  auto route = server::route(req.target());
  if (!route.ok()) {
    if (route.status().message().empty()) Harness::fail("an error without a message");
    return 0;
  }
  // Repository management would change the models every later input sees.
  if (route->endpoint == server::Endpoint::kRepositoryLoad || route->endpoint == server::Endpoint::kRepositoryUnload) {
    return 0;
  }
  // The checks decide, but run the handler either way: its decoding is what is fuzzed.
  (void)host_ok;
  (void)origin_ok;
  (void)token_ok;
  answer(h, *route, std::move(req));
  return 0;
}
