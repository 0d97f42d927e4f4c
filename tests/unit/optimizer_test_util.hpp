// Shared by the optimizer tests: building small graphs, running them through
// sessions at optimisation levels 0 and 2, comparing the results.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "graph/shape_inference.hpp"
#include "kernels/cpu/cpu_registry.hpp"
#include "optimizer/optimizer.hpp"
#include "runtime/session.hpp"

namespace deskml::optimizer_test {

using graph::AttributeValue;
using graph::Dim;
using graph::Graph;
using graph::Node;
using graph::ValueInfo;
using Attrs = std::map<std::string, AttributeValue>;
using Ints = std::vector<int64_t>;
using Feeds = std::vector<std::pair<std::string, Tensor>>;

inline constexpr float kTolerance = 1e-4f;

// ---------------------------------------------------------------------------
// Building graphs

inline std::vector<Dim> dims(std::initializer_list<int64_t> ds) {
  std::vector<Dim> out;
  for (int64_t d : ds) out.push_back(Dim::of(d));
  return out;
}

inline ValueInfo tensor_info(const std::string& name, std::optional<std::vector<Dim>> shape,
                             DataType dt = DataType::kFloat32) {
  ValueInfo vi;
  vi.name = name;
  vi.type.dtype = dt;
  vi.type.shape = std::move(shape);
  return vi;
}

struct Builder {
  Graph g;
  std::mt19937 rng;
  int opset = 17;
  int counter = 0;

  explicit Builder(uint32_t seed = 20240611) : rng(seed) {}

  Tensor random(const Shape& shape, float lo, float hi) {
    std::uniform_real_distribution<float> dist(lo, hi);
    Tensor t(DataType::kFloat32, shape);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
    return t;
  }
  std::string fresh(const std::string& base) { return base + std::to_string(counter++); }

  void input(const std::string& name, std::vector<Dim> d, DataType dt = DataType::kFloat32) {
    g.inputs.push_back(tensor_info(name, std::move(d), dt));
  }
  // Outputs are declared without a shape unless one is given.
  void output(const std::string& name, DataType dt = DataType::kFloat32,
              std::optional<std::vector<Dim>> shape = std::nullopt) {
    g.outputs.push_back(tensor_info(name, std::move(shape), dt));
  }
  std::string init(const std::string& name, Tensor t) {
    g.initializers[name] = std::move(t);
    return name;
  }
  std::string scalar(float v) { return init(fresh("k"), Tensor::scalar<float>(v)); }
  Node& node(const std::string& op, std::vector<std::string> in, std::vector<std::string> out, Attrs attrs = {}) {
    Node n;
    n.name = fresh(op + "_");
    n.op_type = op;
    n.opset = opset;
    n.inputs = std::move(in);
    n.outputs = std::move(out);
    n.attributes = std::move(attrs);
    g.nodes.push_back(std::move(n));
    return g.nodes.back();
  }
  // One-output node with a fresh output name; returns the output.
  std::string op(const std::string& op, std::vector<std::string> in, Attrs attrs = {}) {
    const std::string out = fresh(op + "_out");
    node(op, std::move(in), {out}, std::move(attrs));
    return out;
  }
  // Conv with random weights (and bias), kernel k x k (or k for 1-D when spatial == 1).
  std::string conv(const std::string& x, int64_t cin, int64_t cout, int64_t k, Attrs attrs = {}, bool bias = true,
                   size_t spatial = 2) {
    const int64_t group = attrs.count("group") ? std::get<int64_t>(attrs.at("group")) : 1;
    Shape ws = {cout, cin / group};
    for (size_t i = 0; i < spatial; ++i) ws.push_back(k);
    const float a = 1.0f / std::sqrt(static_cast<float>(cin / group * static_cast<int64_t>(std::pow(k, spatial))));
    const std::string w = init(fresh("w"), random(ws, -a, a));
    std::vector<std::string> in = {x, w};
    if (bias) in.push_back(init(fresh("b"), random({cout}, -0.2f, 0.2f)));
    return op("Conv", in, std::move(attrs));
  }
  std::string batch_norm(const std::string& x, int64_t c) {
    const std::string s = init(fresh("bn_s"), random({c}, 0.5f, 1.5f));
    const std::string b = init(fresh("bn_b"), random({c}, -0.3f, 0.3f));
    const std::string m = init(fresh("bn_m"), random({c}, -0.3f, 0.3f));
    const std::string v = init(fresh("bn_v"), random({c}, 0.5f, 1.5f));
    return op("BatchNormalization", {x, s, b, m, v}, {{"epsilon", 1e-5f}});
  }
  std::string clip(const std::string& x, float lo, float hi) { return op("Clip", {x, scalar(lo), scalar(hi)}); }
  graph::Model model() const {
    graph::Model m;
    m.ir_version = 8;
    m.opsets[""] = opset;
    m.graph = g;
    return m;
  }
};

inline Attrs pads1() { return {{"pads", Ints{1, 1, 1, 1}}}; }

// ---------------------------------------------------------------------------
// Inspecting graphs

inline size_t count_ops(const Graph& g, const std::string& op, const std::string& domain = "") {
  return static_cast<size_t>(std::count_if(g.nodes.begin(), g.nodes.end(),
                                           [&](const Node& n) { return n.op_type == op && n.domain == domain; }));
}
inline size_t count_fused(const Graph& g, const std::string& op) { return count_ops(g, op, optimizer::kDeskmlDomain); }

inline const Node* find_op(const Graph& g, const std::string& op, const std::string& domain = "") {
  for (const auto& n : g.nodes) {
    if (n.op_type == op && n.domain == domain) return &n;
  }
  return nullptr;
}
inline const Node* producer_of(const Graph& g, const std::string& value) {
  for (const auto& n : g.nodes) {
    if (std::find(n.outputs.begin(), n.outputs.end(), value) != n.outputs.end()) return &n;
  }
  return nullptr;
}
inline std::string op_list(const Graph& g) {
  std::string s;
  for (const auto& n : g.nodes) s += (s.empty() ? "" : " ") + (n.domain.empty() ? "" : n.domain + ".") + n.op_type;
  return s;
}

// Runs one pass on `g` the way optimize() does (shapes inferred first).
template <typename Pass>
inline int apply(Graph& g, Pass&& pass) {
  (void)graph::infer_shapes(g);
  optimizer::GraphEditor editor(g);
  return pass(editor);
}
inline const kernels::KernelRegistry& cpu() { return kernels::cpu::cpu_registry(); }

// ---------------------------------------------------------------------------
// Running sessions

inline Result<std::unique_ptr<runtime::Session>> make_session(const graph::Model& model, int level,
                                                              bool channels_last = true, bool winograd = true,
                                                              bool blocked_layout = true) {
  runtime::SessionOptions options;
  options.threads = 1;
  options.optimization_level = level;
  options.channels_last = channels_last;
  options.winograd = winograd;
  options.blocked_layout = blocked_layout;
  return runtime::Session::create(model, options);
}

inline std::vector<std::pair<std::string, Tensor>> run_session(const runtime::Session& s, const Feeds& feeds) {
  auto out = s.run(feeds);
  EXPECT_TRUE(out.ok()) << out.status().to_string();
  if (!out.ok()) return {};
  return std::move(out).value();
}

inline float max_abs_diff(const Tensor& a, const Tensor& b) {
  float worst = 0.0f;
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  for (int64_t i = 0; i < a.numel(); ++i) {
    const float d = std::fabs(pa[i] - pb[i]);
    if (!(d <= worst)) worst = d;  // NaN propagates as a failure
  }
  return worst;
}

inline void expect_close(const std::vector<std::pair<std::string, Tensor>>& want,
                         const std::vector<std::pair<std::string, Tensor>>& got, const std::string& what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(what + ", output " + want[i].first);
    ASSERT_EQ(want[i].second.shape(), got[i].second.shape());
    ASSERT_EQ(want[i].second.dtype(), got[i].second.dtype());
    if (want[i].second.dtype() != DataType::kFloat32) continue;
    EXPECT_LE(max_abs_diff(want[i].second, got[i].second), kTolerance);
  }
}

// The model at level 0 and level 2 (with and without channels-last) on the same
// feeds: outputs agree within kTolerance. `optimized` receives the level-2 graph.
inline void check_levels(const graph::Model& model, const Feeds& feeds, Graph* optimized = nullptr) {
  auto s0 = make_session(model, 0);
  ASSERT_TRUE(s0.ok()) << s0.status().to_string();
  auto s2 = make_session(model, 2);
  ASSERT_TRUE(s2.ok()) << s2.status().to_string();
  auto s2n = make_session(model, 2, /*channels_last=*/false);
  ASSERT_TRUE(s2n.ok()) << s2n.status().to_string();
  const auto want = run_session(**s0, feeds);
  ASSERT_FALSE(want.empty());
  {
    SCOPED_TRACE("optimised graph: " + op_list((*s2)->model().graph));
    expect_close(want, run_session(**s2, feeds), "level 2");
    // A second run: in-place kernels must not have clobbered anything the plan keeps.
    expect_close(want, run_session(**s2, feeds), "level 2, second run");
  }
  expect_close(want, run_session(**s2n, feeds), "level 2 without channels-last");
  auto s2b = make_session(model, 2, /*channels_last=*/true, /*winograd=*/true, /*blocked_layout=*/false);
  ASSERT_TRUE(s2b.ok()) << s2b.status().to_string();
  expect_close(want, run_session(**s2b, feeds), "level 2 without the blocked layout");
  if (optimized) *optimized = (*s2)->model().graph;
}

// ===========================================================================
// remove_identities

// x * 0.5 * (1 + erf(x / sqrt2)), as PyTorch exports it: ((x * 0.5) * (1 + erf)) when
// `half_first`, else ((x * (1 + erf)) * 0.5). `scaled_by_mul` uses x * (1/sqrt2).
inline std::string erf_gelu(Builder& b, const std::string& x, bool half_first, bool scaled_by_mul = false,
                            float sqrt2 = std::sqrt(2.0f)) {
  const std::string d = scaled_by_mul ? b.op("Mul", {x, b.scalar(1.0f / sqrt2)}) : b.op("Div", {x, b.scalar(sqrt2)});
  const std::string e = b.op("Erf", {d});
  const std::string a = b.op("Add", {e, b.scalar(1.0f)});
  if (half_first) {
    const std::string h = b.op("Mul", {x, b.scalar(0.5f)});
    return b.op("Mul", {h, a});
  }
  const std::string m = b.op("Mul", {x, a});
  return b.op("Mul", {m, b.scalar(0.5f)});
}

}  // namespace deskml::optimizer_test
