#include "graph/shape_inference.hpp"

#include <gtest/gtest.h>

namespace deskml::graph {
namespace {

ValueInfo info(const std::string& name, DataType dt, std::vector<Dim> dims) {
  ValueInfo vi;
  vi.name = name;
  vi.type.dtype = dt;
  vi.type.shape = std::move(dims);
  return vi;
}

Node make(const std::string& op, std::vector<std::string> in, std::vector<std::string> out,
          std::map<std::string, AttributeValue> attrs = {}) {
  Node n;
  n.op_type = op;
  n.opset = 17;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  n.attributes = std::move(attrs);
  return n;
}

TEST(ShapeInference, CnnHeadKeepsTheSymbolicBatch) {
  Graph g;
  g.inputs = {info("x", DataType::kFloat32, {Dim::named("batch"), Dim::of(3), Dim::of(32), Dim::of(32)})};
  g.initializers["w"] = Tensor::zeros(DataType::kFloat32, {8, 3, 3, 3});
  g.initializers["fc"] = Tensor::zeros(DataType::kFloat32, {8, 10});
  g.nodes = {
      make("Conv", {"x", "w"}, {"c"}, {{"strides", std::vector<int64_t>{2, 2}}, {"pads", std::vector<int64_t>{1, 1, 1, 1}}}),
      make("Relu", {"c"}, {"r"}),
      make("GlobalAveragePool", {"r"}, {"p"}),
      make("Flatten", {"p"}, {"f"}),
      make("MatMul", {"f", "fc"}, {"y"}),
      make("Shape", {"y"}, {"s"}),
  };
  auto stats = infer_shapes(g);
  ASSERT_TRUE(stats.ok()) << stats.status().to_string();
  EXPECT_EQ(g.value_types["c"].to_string(), "float[batch,8,16,16]");
  EXPECT_EQ(g.value_types["p"].to_string(), "float[batch,8,1,1]");
  EXPECT_EQ(g.value_types["f"].to_string(), "float[?,8]");  // batch*1*1 is not a plain symbol
  EXPECT_EQ(g.value_types["y"].to_string(), "float[?,10]");
  EXPECT_EQ(g.value_types["s"].to_string(), "int64[2]");
  EXPECT_EQ(stats->typed, 6u);
}

TEST(ShapeInference, BroadcastAndReshapeWithConstantShape) {
  Graph g;
  g.inputs = {info("a", DataType::kFloat32, {Dim::named("n"), Dim::of(1), Dim::of(4)}),
              info("b", DataType::kFloat32, {Dim::of(3), Dim::of(1)})};
  g.initializers["shape"] = Tensor::from_vector<int64_t>({0, -1}, {2});
  g.nodes = {make("Add", {"a", "b"}, {"s"}), make("Less", {"a", "b"}, {"l"}),
             make("Reshape", {"s", "shape"}, {"r"})};
  ASSERT_TRUE(infer_shapes(g).ok());
  EXPECT_EQ(g.value_types["s"].to_string(), "float[n,3,4]");
  EXPECT_EQ(g.value_types["l"].to_string(), "bool[n,3,4]");
  EXPECT_EQ(g.value_types["r"].to_string(), "float[n,12]");  // -1 = 3 * 4
}

TEST(ShapeInference, ProvablyIncompatibleShapesAreAnError) {
  Graph g;
  g.inputs = {info("a", DataType::kFloat32, {Dim::of(2)}), info("b", DataType::kFloat32, {Dim::of(3)})};
  g.nodes = {make("Add", {"a", "b"}, {"c"})};
  auto r = infer_shapes(g);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidModel);
}

TEST(ShapeInference, UnknownOpsLeaveOutputsUnknownButDoNotFail) {
  Graph g;
  g.inputs = {info("a", DataType::kFloat32, {Dim::of(2)})};
  g.nodes = {make("SomeCustomOp", {"a"}, {"b"}), make("Relu", {"b"}, {"c"})};
  auto r = infer_shapes(g);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(g.value_types["c"].to_string(), "undefined[...]");
}

TEST(ShapeInference, ReshapeToAShapeComputedFromShapeKeepsSymbols) {
  // As PyTorch exports attention: Reshape(x, Concat(Shape(x)[0], Shape(x)[1], 6, -1)) and back.
  Graph g;
  g.inputs = {info("x", DataType::kFloat32, {Dim::named("batch"), Dim::named("seq"), Dim::of(384)})};
  g.initializers["zero"] = Tensor::from_vector<int64_t>({0}, {});
  g.initializers["one"] = Tensor::from_vector<int64_t>({1}, {1});
  g.initializers["axes"] = Tensor::from_vector<int64_t>({0}, {1});
  g.initializers["heads"] = Tensor::from_vector<int64_t>({6, -1}, {2});
  g.initializers["flat"] = Tensor::from_vector<int64_t>({-1}, {1});
  g.initializers["start"] = Tensor::from_vector<int64_t>({0}, {1});
  g.initializers["end"] = Tensor::from_vector<int64_t>({2}, {1});
  g.nodes = {
      make("Shape", {"x"}, {"s"}),
      make("Gather", {"s", "zero"}, {"b"}),  // scalar: batch
      make("Gather", {"s", "one"}, {"q"}),   // [seq]
      make("Unsqueeze", {"b", "axes"}, {"b1"}),
      make("Concat", {"b1", "q", "heads"}, {"t"}, {{"axis", int64_t{0}}}),
      make("Reshape", {"x", "t"}, {"r"}),            // [batch, seq, 6, 64]
      make("Slice", {"s", "start", "end"}, {"bs"}),  // [batch, seq]
      make("Cast", {"bs"}, {"bs64"}, {{"to", int64_t{7}}}),
      make("Concat", {"bs64", "flat"}, {"t2"}, {{"axis", int64_t{0}}}),
      make("Reshape", {"r", "t2"}, {"back"}),  // [batch, seq, 384]
      make("Concat", {"flat", "q"}, {"t3"}, {{"axis", int64_t{0}}}),
      make("Reshape", {"x", "t3"}, {"rows"}),  // [batch*384, seq]: -1 is no plain symbol
      make("Add", {"back", "x"}, {"sum"}),
  };
  ASSERT_TRUE(infer_shapes(g).ok());
  EXPECT_EQ(g.value_types["r"].to_string(), "float[batch,seq,6,64]");
  EXPECT_EQ(g.value_types["back"].to_string(), "float[batch,seq,384]");
  EXPECT_EQ(g.value_types["rows"].to_string(), "float[?,seq]");
  EXPECT_EQ(g.value_types["sum"].to_string(), "float[batch,seq,384]");
}

TEST(ShapeInference, ReshapeMinusOneTakesTheLeftOverSymbol) {
  Graph g;
  g.inputs = {info("x", DataType::kFloat32, {Dim::named("n"), Dim::of(4), Dim::of(6)}),
              info("u", DataType::kFloat32, {Dim::of(4), Dim{}})};
  g.initializers["t"] = Tensor::from_vector<int64_t>({-1, 24}, {2});
  g.initializers["t2"] = Tensor::from_vector<int64_t>({8, -1}, {2});
  g.nodes = {make("Reshape", {"x", "t"}, {"a"}), make("Reshape", {"x", "t2"}, {"b"}),
             make("Reshape", {"u", "t"}, {"c"})};
  ASSERT_TRUE(infer_shapes(g).ok());
  EXPECT_EQ(g.value_types["a"].to_string(), "float[n,24]");
  EXPECT_EQ(g.value_types["b"].to_string(), "float[8,?]");  // 3n is no plain symbol
  EXPECT_EQ(g.value_types["c"].to_string(), "float[?,24]");
}

}  // namespace
}  // namespace deskml::graph
