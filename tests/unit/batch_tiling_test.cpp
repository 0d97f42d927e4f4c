// Batch tiling: which graphs keep the samples of a batch apart (and so may run
// a large batch in pieces), the chunk rule, and split runs that give the same
// outputs as whole ones.
#include "runtime/batch_tiling.hpp"

#include <gtest/gtest.h>

#include "runtime/session.hpp"
#include "serving_models.hpp"

namespace deskml {
namespace {

using graph::Dim;
using graph::Node;
using serving::testing::filled;
using serving::testing::random_tensor;

graph::ValueInfo tensor_info(const std::string& name, std::vector<Dim> dims) {
  graph::ValueInfo vi{name, {}, ""};
  vi.type.dtype = DataType::kFloat32;
  vi.type.shape = std::move(dims);
  return vi;
}

// x float[N, 4] -> `nodes` -> y float[N, ...].
graph::Graph rows_graph(std::vector<Node> nodes, std::map<std::string, Tensor> constants = {}) {
  graph::Graph g;
  g.inputs = {tensor_info("x", {Dim::named("N"), Dim::of(4)})};
  g.outputs = {tensor_info("y", {Dim::named("N")})};
  g.nodes = std::move(nodes);
  for (auto& [name, t] : constants) g.initializers[name] = t;
  return g;
}

Node node(const std::string& op, std::vector<std::string> in, std::map<std::string, graph::AttributeValue> attrs = {}) {
  Node n{op, op, "", 17, std::move(in), {"y"}, {}};
  for (auto& [k, v] : attrs) n.attributes[k] = v;
  return n;
}

TEST(BatchTiling, PerSampleGraphsAreSeparable) {
  using Ints = std::vector<int64_t>;
  using runtime::batch_separable;
  const Tensor row = filled({4}, 1.f), one_row = filled({1, 4}, 1.f), w = filled({4, 3}, 0.5f);
  EXPECT_TRUE(batch_separable(rows_graph({node("Relu", {"x"})})));
  EXPECT_TRUE(batch_separable(rows_graph({node("Add", {"x", "c"})}, {{"c", row}})));
  EXPECT_TRUE(batch_separable(rows_graph({node("Mul", {"c", "x"})}, {{"c", one_row}})));
  EXPECT_TRUE(batch_separable(rows_graph({node("Softmax", {"x"}, {{"axis", int64_t{-1}}})})));
  EXPECT_TRUE(batch_separable(rows_graph({node("MatMul", {"x", "w"})}, {{"w", w}})));
  EXPECT_TRUE(batch_separable(
      rows_graph({node("Reshape", {"x", "s"})}, {{"s", Tensor::from_vector<int64_t>({0, 2, 2}, {3})}})));
  EXPECT_TRUE(batch_separable(rows_graph({node("Concat", {"x", "x"}, {{"axis", int64_t{1}}})})));
  EXPECT_TRUE(batch_separable(rows_graph({node("Transpose", {"x"}, {{"perm", Ints{0, 1}}})})));
  // Two steps: x -> Relu -> h -> Add(h, x) -> y.
  Node relu = node("Relu", {"x"});
  relu.outputs = {"h"};
  EXPECT_TRUE(batch_separable(rows_graph({relu, node("Add", {"h", "x"})})));
  // A fused product with a residual of the same sample: y = h x W4 + h.
  const Tensor w4 = filled({4, 4}, 0.5f);
  Node fused = node("FusedMatMul", {"h", "w", "", "h"});
  fused.domain = "deskml";
  EXPECT_TRUE(batch_separable(rows_graph({relu, fused}, {{"w", w4}})));
}

TEST(BatchTiling, AnythingThatCouldMixSamplesIsNot) {
  using Ints = std::vector<int64_t>;
  using runtime::batch_separable;
  const Tensor spans_batch = filled({8, 4}, 1.f), w = filled({4, 3}, 0.5f);
  // Over the batch axis, or an op not known to keep samples apart.
  EXPECT_FALSE(batch_separable(rows_graph({node("Softmax", {"x"}, {{"axis", int64_t{0}}})})));
  EXPECT_FALSE(batch_separable(rows_graph({node("ReduceMean", {"x"}, {{"axes", Ints{0}}})})));
  EXPECT_FALSE(batch_separable(rows_graph({node("Concat", {"x", "x"}, {{"axis", int64_t{0}}})})));
  EXPECT_FALSE(batch_separable(rows_graph({node("Transpose", {"x"}, {{"perm", Ints{1, 0}}})})));
  EXPECT_FALSE(batch_separable(rows_graph({node("Transpose", {"x"})})));  // default perm reverses
  EXPECT_FALSE(batch_separable(rows_graph({node("Flatten", {"x"}, {{"axis", int64_t{0}}})})));
  // A constant as long as the batch would broadcast differently in pieces.
  EXPECT_FALSE(batch_separable(rows_graph({node("Add", {"x", "c"})}, {{"c", spans_batch}})));
  // Samples meeting each other: x times x's transpose, or reshaped across rows.
  Node t = node("Transpose", {"x"}, {{"perm", Ints{1, 0}}});
  t.outputs = {"xt"};
  EXPECT_FALSE(batch_separable(rows_graph({t, node("MatMul", {"x", "xt"})})));
  EXPECT_FALSE(batch_separable(rows_graph({node("MatMul", {"w", "x"})}, {{"w", w}})));
  Node fused_constant_sum = node("FusedMatMul", {"x", "w", "", "c"});
  fused_constant_sum.domain = "deskml";
  EXPECT_FALSE(batch_separable(rows_graph({fused_constant_sum}, {{"w", w}, {"c", spans_batch}})));
  EXPECT_FALSE(
      batch_separable(rows_graph({node("Reshape", {"x", "s"})}, {{"s", Tensor::from_vector<int64_t>({-1, 8}, {2})}})));
  // The batch size read as data.
  Node shape = node("Shape", {"x"});
  shape.outputs = {"s"};
  EXPECT_FALSE(batch_separable(rows_graph({shape, node("Reshape", {"x", "s"})})));
  // No symbolic batch axis, or an output that is not batched.
  graph::Graph fixed = rows_graph({node("Relu", {"x"})});
  fixed.inputs[0] = tensor_info("x", {Dim::of(1), Dim::of(4)});
  EXPECT_FALSE(batch_separable(fixed));
  graph::Graph constant_out = rows_graph({node("Relu", {"c"})}, {{"c", w}});
  EXPECT_FALSE(batch_separable(constant_out));
}

TEST(BatchTiling, ChunksFillThreeQuartersOfTheCacheWithThreeTensors) {
  EXPECT_EQ(runtime::batch_chunk(1 << 20, 32 << 20, 200), 8);
  // ResNet-50's largest tensor, a 32 MiB L3: 2; a plan of 59 nodes may run so, one of 118 gets 4.
  EXPECT_EQ(runtime::batch_chunk(3211264, 32 << 20, 59), 2);
  EXPECT_EQ(runtime::batch_chunk(3211264, 32 << 20, 118), 4);
  EXPECT_EQ(runtime::batch_chunk(int64_t{64} << 20, 32 << 20, 200), runtime::kMinBatchChunk);
  EXPECT_EQ(runtime::batch_chunk(int64_t{64} << 20, 32 << 20, 10), runtime::kMinBatchChunkFewNodes);
  EXPECT_EQ(runtime::batch_chunk(1 << 10, 32 << 20, 59), 8192);
  EXPECT_EQ(runtime::batch_chunk(0, 32 << 20, 59), 0);
  EXPECT_EQ(runtime::batch_chunk(1 << 10, 0, 59), 0);
}

// x float[N,3,10,10] -> Conv 3x3 (8, pads 1) -> Relu -> GlobalAveragePool -> Flatten -> Gemm (5) -> Softmax.
graph::Model cnn(bool softmax_over_batch) {
  graph::Model m;
  m.ir_version = 8;
  m.opsets = {{"", 17}};
  graph::Graph& g = m.graph;
  g.inputs = {tensor_info("x", {Dim::named("N"), Dim::of(3), Dim::of(10), Dim::of(10)})};
  g.outputs = {tensor_info("y", {Dim::named("N"), Dim::of(5)})};
  g.initializers = {{"w", random_tensor({8, 3, 3, 3}, 1)},
                    {"b", random_tensor({8}, 2)},
                    {"fw", random_tensor({8, 5}, 3)},
                    {"fb", random_tensor({5}, 4)}};
  auto add = [&](const std::string& op, std::vector<std::string> in, const std::string& out,
                 std::map<std::string, graph::AttributeValue> attrs = {}) {
    Node n{op + "_" + out, op, "", 17, std::move(in), {out}, {}};
    for (auto& [k, v] : attrs) n.attributes[k] = v;
    g.nodes.push_back(n);
  };
  add("Conv", {"x", "w", "b"}, "c", {{"pads", std::vector<int64_t>{1, 1, 1, 1}}});
  add("Relu", {"c"}, "r");
  add("GlobalAveragePool", {"r"}, "p");
  add("Flatten", {"p"}, "f");
  add("Gemm", {"f", "fw", "fb"}, "logits");
  add("Softmax", {"logits"}, "y", {{"axis", int64_t{softmax_over_batch ? 0 : 1}}});
  return m;
}

Tensor run(const runtime::Session& s, const Tensor& x) {
  auto out = s.run(std::vector<std::pair<std::string, Tensor>>{{"x", x}});
  EXPECT_TRUE(out.ok()) << out.status().to_string();
  return out.ok() ? (*out)[0].second : Tensor();
}

TEST(BatchTiling, SplitRunsGiveTheWholeRunsOutputs) {
  runtime::SessionOptions whole_options, split_options;
  whole_options.batch_chunk = 0;
  split_options.batch_chunk = 3;
  auto whole = runtime::Session::create(cnn(false), whole_options);
  auto split = runtime::Session::create(cnn(false), split_options);
  ASSERT_TRUE(whole.ok() && split.ok());
  EXPECT_EQ((*whole)->batch_chunk(), 0);
  EXPECT_EQ((*split)->batch_chunk(), 3);
  for (int64_t batch : {1, 3, 4, 8}) {  // pieces of 3, 3 and 2 at batch 8
    const Tensor x = random_tensor({batch, 3, 10, 10}, static_cast<uint32_t>(batch));
    const Tensor a = run(**whole, x), b = run(**split, x);
    ASSERT_EQ(a.shape(), (Shape{batch, 5}));
    ASSERT_EQ(b.shape(), a.shape());
    for (int64_t i = 0; i < a.numel(); ++i) EXPECT_NEAR(a.data<float>()[i], b.data<float>()[i], 1e-6f) << i;
  }
  // The default sizes chunks to the cache: this model's samples are tiny, so
  // chunks are large; the decision is made, not skipped.
  auto sized = runtime::Session::create(cnn(false), {});
  ASSERT_TRUE(sized.ok());
  EXPECT_GT((*sized)->batch_chunk(), 8);
}

TEST(BatchTiling, ModelsThatMixSamplesAreNeverSplit) {
  runtime::SessionOptions o;
  o.batch_chunk = 2;
  auto s = runtime::Session::create(cnn(true), o);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->batch_chunk(), 0);
  Tensor x = filled({4, 3, 10, 10}, 0.25f);
  x.data<float>()[0] = 3.f;  // one sample differs: a softmax over the batch sees it
  const Tensor y = run(**s, x);
  float column = 0;
  for (int64_t b = 0; b < 4; ++b) column += y.data<float>()[b * 5];
  EXPECT_NEAR(column, 1.f, 1e-5f);  // normalised over all four samples together
}

}  // namespace
}  // namespace deskml
