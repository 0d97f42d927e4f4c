// The graph optimizer (src/optimizer): each pass on small hand-built graphs,
// checking that the rewrite happens and that it does not happen where it would
// be wrong. Numerics (optimised vs unoptimised sessions) are in
// optimizer_numerics_test.cpp.
#include "optimizer/optimizer.hpp"

#include <gtest/gtest.h>

#include "optimizer_test_util.hpp"

namespace deskml {
namespace {

using namespace optimizer_test;  // NOLINT: test helpers

TEST(OptimizerRemoveIdentities, RemovesIdentityAndRewiresReaders) {
  Builder b;
  b.input("x", dims({2, 3}));
  const std::string r = b.op("Relu", {"x"});
  const std::string i = b.op("Identity", {r});
  b.node("Neg", {i}, {"y"});
  b.output("y");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::remove_identities(e); }), 1);
  EXPECT_EQ(count_ops(b.g, "Identity"), 0u);
  ASSERT_EQ(b.g.nodes.size(), 2u);
  EXPECT_EQ(b.g.nodes[1].inputs[0], r);
}

TEST(OptimizerRemoveIdentities, GraphOutputKeepsItsName) {
  Builder b;
  b.input("x", dims({2, 3}));
  const std::string t = b.op("Relu", {"x"});
  b.node("Identity", {t}, {"y"});
  b.node("Neg", {t}, {"z"});  // another reader of the renamed value
  b.output("y");
  b.output("z");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::remove_identities(e); }), 1);
  EXPECT_EQ(count_ops(b.g, "Identity"), 0u);
  const Node* relu = producer_of(b.g, "y");
  ASSERT_NE(relu, nullptr) << "the graph output 'y' must still be produced";
  EXPECT_EQ(relu->op_type, "Relu");
  const Node* neg = producer_of(b.g, "z");
  ASSERT_NE(neg, nullptr);
  EXPECT_EQ(neg->inputs[0], "y");
  EXPECT_EQ(b.g.outputs[0].name, "y");
}

TEST(OptimizerRemoveIdentities, IdentityBetweenTwoGraphOutputsIsKept) {
  Builder b;
  b.input("x", dims({2}));
  b.node("Relu", {"x"}, {"y1"});
  b.node("Identity", {"y1"}, {"y2"});
  b.output("y1");
  b.output("y2");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::remove_identities(e); }), 0);
  ASSERT_NE(producer_of(b.g, "y1"), nullptr);
  ASSERT_NE(producer_of(b.g, "y2"), nullptr);
}

TEST(OptimizerRemoveIdentities, IdentityOfGraphInputToGraphOutputIsKept) {
  Builder b;
  b.input("x", dims({2}));
  b.node("Identity", {"x"}, {"y"});
  b.output("y");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::remove_identities(e); }), 0);
  EXPECT_EQ(count_ops(b.g, "Identity"), 1u);
}

// If(c) with a then-branch computing Add(v, v) from the outer value `v`.
Node if_reading(Builder& b, const std::string& cond, const std::string& outer, const std::string& out) {
  auto then_g = std::make_shared<Graph>();
  then_g->outputs = {tensor_info("t_out", std::nullopt)};
  Node add;
  add.op_type = "Add";
  add.opset = 17;
  add.inputs = {outer, outer};
  add.outputs = {"t_out"};
  then_g->nodes = {add};
  auto else_g = std::make_shared<Graph>();
  else_g->outputs = {tensor_info("e_out", std::nullopt)};
  Node neg;
  neg.op_type = "Neg";
  neg.opset = 17;
  neg.inputs = {outer};
  neg.outputs = {"e_out"};
  else_g->nodes = {neg};
  Node& n = b.node("If", {cond}, {out});
  n.attributes["then_branch"] = graph::GraphPtr(then_g);
  n.attributes["else_branch"] = graph::GraphPtr(else_g);
  return n;
}

TEST(OptimizerRemoveIdentities, ValueReadInsideSubgraphIsNotRenamed) {
  Builder b;
  b.input("c", dims({}), DataType::kBool);
  b.input("x", dims({3}));
  const std::string r = b.op("Relu", {"x"});
  b.node("Identity", {r}, {"inner"});  // "inner" is read only by the If's branches
  if_reading(b, "c", "inner", "y");
  b.output("y");
  const graph::Model original = b.model();
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::remove_identities(e); }), 0);
  EXPECT_EQ(count_ops(b.g, "Identity"), 1u);
  ASSERT_NE(producer_of(b.g, "inner"), nullptr);

  // And through a session: the branch still finds its value.
  const Feeds feeds = {{"c", Tensor::scalar<bool>(true)}, {"x", Tensor::from_vector<float>({1, -2, 3}, {3})}};
  ASSERT_NO_FATAL_FAILURE(check_levels(original, feeds));
}

TEST(OptimizerRemoveIdentities, GraphOutputIdentityOfSubgraphReadValueIsKept) {
  Builder b;
  b.input("c", dims({}), DataType::kBool);
  b.input("x", dims({3}));
  const std::string r = b.op("Relu", {"x"});  // read by the If's branches: must keep its name
  b.node("Identity", {r}, {"y"});
  if_reading(b, "c", r, "z");
  b.output("y");
  b.output("z");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::remove_identities(e); }), 0);
  ASSERT_NE(producer_of(b.g, r), nullptr);
  EXPECT_EQ(producer_of(b.g, r)->op_type, "Relu");
}

TEST(OptimizerRemoveIdentities, InferenceDropoutIsRemoved) {
  Builder b;
  b.input("x", dims({2, 3}));
  b.node("Dropout", {"x", b.scalar(0.5f)}, {"d", "unused_mask"});  // the mask is named but read by nothing
  b.node("Neg", {"d"}, {"y"});
  b.output("y");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::remove_identities(e); }), 1);
  EXPECT_EQ(count_ops(b.g, "Dropout"), 0u);
  ASSERT_EQ(b.g.nodes.size(), 1u);
  EXPECT_EQ(b.g.nodes[0].inputs[0], "x");
}

TEST(OptimizerRemoveIdentities, DropoutWithUsedMaskIsKept) {
  Builder b;
  b.input("x", dims({2, 3}));
  b.node("Dropout", {"x"}, {"d", "mask"});
  b.node("Neg", {"d"}, {"y"});
  b.node("Cast", {"mask"}, {"m"}, {{"to", int64_t{1}}});
  b.output("y");
  b.output("m");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::remove_identities(e); }), 0);
  EXPECT_EQ(count_ops(b.g, "Dropout"), 1u);
}

TEST(OptimizerRemoveIdentities, DropoutWithMaskAsGraphOutputIsKept) {
  Builder b;
  b.input("x", dims({2, 3}));
  b.node("Dropout", {"x"}, {"d", "mask"});
  b.node("Neg", {"d"}, {"y"});
  b.output("y");
  b.output("mask", DataType::kBool);
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::remove_identities(e); }), 0);
  EXPECT_EQ(count_ops(b.g, "Dropout"), 1u);
}

TEST(OptimizerRemoveIdentities, DropoutWithNonConstantTrainingModeIsKept) {
  Builder b;
  b.input("x", dims({2, 3}));
  b.input("training", dims({}), DataType::kBool);
  b.node("Dropout", {"x", "", "training"}, {"d"});
  b.node("Neg", {"d"}, {"y"});
  b.output("y");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::remove_identities(e); }), 0);
  EXPECT_EQ(count_ops(b.g, "Dropout"), 1u);
}

// ===========================================================================
// eliminate_dead_code

TEST(OptimizerDeadCode, RemovesUnreadNodesAndInitializers) {
  Builder b;
  b.input("x", dims({2, 3}));
  b.node("Relu", {"x"}, {"y"});
  const std::string w = b.init("w", b.random({2, 3}, -1, 1));
  const std::string m = b.op("Mul", {"x", w});
  b.op("Exp", {m});  // a dead chain of two nodes
  b.output("y");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::eliminate_dead_code(e); }), 2);
  ASSERT_EQ(b.g.nodes.size(), 1u);
  EXPECT_EQ(b.g.nodes[0].op_type, "Relu");
  EXPECT_EQ(b.g.initializers.count("w"), 0u);
}

TEST(OptimizerDeadCode, KeepsNodeReadOnlyInsideSubgraph) {
  Builder b;
  b.input("c", dims({}), DataType::kBool);
  b.input("x", dims({3}));
  const std::string r = b.op("Relu", {"x"});
  if_reading(b, "c", r, "y");
  b.output("y");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::eliminate_dead_code(e); }), 0);
  ASSERT_NE(producer_of(b.g, r), nullptr);
}

// A branch whose output *is* an outer value (no node in the branch reads it):
// ONNX allows it and the executor runs it (level 0), so the optimizer must keep
// the value's producer and its name.
graph::Model model_with_branch_output_from_outer_scope(bool through_identity) {
  Builder b;
  b.input("c", dims({}), DataType::kBool);
  b.input("x", dims({3}));
  b.node("Relu", {"x"}, {through_identity ? "r" : "t"});
  if (through_identity) b.node("Identity", {"r"}, {"t"});
  auto then_g = std::make_shared<Graph>();
  then_g->outputs = {tensor_info("t", std::nullopt)};  // the outer value itself
  auto else_g = std::make_shared<Graph>();
  else_g->outputs = {tensor_info("e_out", std::nullopt)};
  Node neg;
  neg.op_type = "Neg";
  neg.opset = 17;
  neg.inputs = {"x"};
  neg.outputs = {"e_out"};
  else_g->nodes = {neg};
  Node& n = b.node("If", {"c"}, {"y"});
  n.attributes["then_branch"] = graph::GraphPtr(then_g);
  n.attributes["else_branch"] = graph::GraphPtr(else_g);
  b.output("y");
  return b.model();
}

TEST(OptimizerDeadCode, KeepsProducerOfValueThatIsASubgraphOutput) {
  graph::Model m = model_with_branch_output_from_outer_scope(false);
  apply(m.graph, [](auto& e) { return optimizer::eliminate_dead_code(e); });
  EXPECT_NE(producer_of(m.graph, "t"), nullptr) << "the then-branch's output 't' lost its producer";

  const Feeds feeds = {{"c", Tensor::scalar<bool>(true)}, {"x", Tensor::from_vector<float>({1, -2, 3}, {3})}};
  const graph::Model original = model_with_branch_output_from_outer_scope(false);
  auto s0 = make_session(original, 0);
  ASSERT_TRUE(s0.ok()) << s0.status().to_string();  // the executor itself supports it
  ASSERT_NO_FATAL_FAILURE(check_levels(original, feeds));
}

TEST(OptimizerRemoveIdentities, KeepsNameOfValueThatIsASubgraphOutput) {
  graph::Model m = model_with_branch_output_from_outer_scope(true);
  apply(m.graph, [](auto& e) { return optimizer::remove_identities(e); });
  EXPECT_NE(producer_of(m.graph, "t"), nullptr) << "the then-branch's output 't' was renamed away";
  const Feeds feeds = {{"c", Tensor::scalar<bool>(true)}, {"x", Tensor::from_vector<float>({1, -2, 3}, {3})}};
  ASSERT_NO_FATAL_FAILURE(check_levels(model_with_branch_output_from_outer_scope(true), feeds));
}

// ===========================================================================
// fold_constants

TEST(OptimizerFoldConstants, FoldsConstantNodesAndConstantChains) {
  Builder b;
  b.input("x", dims({3}));
  b.node("Constant", {}, {"c"}, {{"value", Tensor::from_vector<float>({1, 2, 3}, {3})}});
  const std::string w = b.init("w", Tensor::from_vector<float>({10, 20, 30}, {3}));
  b.node("Add", {"c", w}, {"s"});
  b.node("Mul", {"x", "s"}, {"y"});
  b.output("y");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fold_constants(e, cpu()); }), 2);
  ASSERT_EQ(b.g.nodes.size(), 1u);
  EXPECT_EQ(b.g.nodes[0].op_type, "Mul");
  ASSERT_EQ(b.g.initializers.count("s"), 1u);
  const auto v = b.g.initializers.at("s").values<float>();
  EXPECT_EQ(std::vector<float>(v.begin(), v.end()), (std::vector<float>{11, 22, 33}));
}

TEST(OptimizerFoldConstants, DoesNotFoldRandomOps) {
  // A registry that can run the random ops (deterministically), so only the
  // pass's own rule keeps them from being folded; Neg is the control.
  kernels::KernelRegistry reg("test");
  auto fill = [](kernels::KernelContext& ctx) {
    const Shape shape = ctx.input(0) ? ctx.input(0)->shape() : Shape{2};
    Tensor& y = ctx.allocate_output(0, DataType::kFloat32, shape);
    for (int64_t i = 0; i < y.numel(); ++i) y.data<float>()[i] = 0.25f;
    return Status::Ok();
  };
  reg.add("RandomNormalLike", 1, INT_MAX, {}, fill);
  reg.add("RandomUniformLike", 1, INT_MAX, {}, fill);
  reg.add("RandomNormal", 1, INT_MAX, {}, fill);
  reg.add("Neg", 1, INT_MAX, {}, [](kernels::KernelContext& ctx) {
    const Tensor& x = ctx.required_input(0);
    Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
    for (int64_t i = 0; i < x.numel(); ++i) y.data<float>()[i] = -x.data<float>()[i];
    return Status::Ok();
  });
  Builder b;
  b.input("x", dims({2}));
  const std::string k = b.init("k", Tensor::from_vector<float>({1, 2}, {2}));
  const std::string r1 = b.op("RandomNormalLike", {k});
  const std::string r2 = b.op("RandomUniformLike", {k});
  const std::string r3 = b.op("RandomNormal", {}, {{"shape", Ints{2}}});
  const std::string n = b.op("Neg", {k});
  const std::string s1 = b.op("Add", {r1, r2});
  const std::string s2 = b.op("Add", {r3, n});
  b.node("Sum", {"x", s1, s2}, {"y"});
  b.output("y");
  EXPECT_EQ(apply(b.g, [&](auto& e) { return optimizer::fold_constants(e, reg); }), 1);  // Neg only
  EXPECT_EQ(count_ops(b.g, "RandomNormalLike"), 1u);
  EXPECT_EQ(count_ops(b.g, "RandomUniformLike"), 1u);
  EXPECT_EQ(count_ops(b.g, "RandomNormal"), 1u);
  EXPECT_EQ(count_ops(b.g, "Neg"), 0u);
}

TEST(OptimizerFoldConstants, DoesNotFoldInitializerThatIsAlsoAnInput) {
  Builder b;
  b.input("x", dims({3}));
  b.input("w", dims({3}));  // overridable by the caller
  b.init("w", Tensor::from_vector<float>({1, 2, 3}, {3}));
  const std::string n = b.op("Neg", {"w"});
  b.node("Add", {"x", n}, {"y"});
  b.output("y");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fold_constants(e, cpu()); }), 0);
  EXPECT_EQ(count_ops(b.g, "Neg"), 1u);

  // Feeding w changes the result at every level.
  const graph::Model m = b.model();
  const Feeds feeds = {{"x", Tensor::from_vector<float>({1, 1, 1}, {3})},
                       {"w", Tensor::from_vector<float>({5, 6, 7}, {3})}};
  auto s = make_session(m, 2);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  const auto out = run_session(**s, feeds);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FLOAT_EQ(out[0].second.data<float>()[0], -4.0f);
}

TEST(OptimizerFoldConstants, DoesNotFoldNodeProducingAGraphOutput) {
  Builder b;
  const std::string w = b.init("w", Tensor::from_vector<float>({1, 2}, {2}));
  b.node("Neg", {w}, {"y"});
  b.output("y");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fold_constants(e, cpu()); }), 0);
  EXPECT_EQ(count_ops(b.g, "Neg"), 1u);
}

TEST(OptimizerFoldConstants, FoldsShapeOfStaticValueButNotOfDynamicOne) {
  Builder b;
  b.input("x", dims({2, 3, 4}));
  b.input("u", {Dim::named("N"), Dim::of(3)});
  const std::string sx = b.op("Shape", {"x"});
  const std::string su = b.op("Shape", {"u"});
  const std::string sp = b.op("Shape", {"x"}, {{"start", int64_t{-2}}});  // opset 15: a slice of the shape
  b.node("Cast", {sp}, {"fp"}, {{"to", int64_t{1}}});
  b.output("fp");
  b.node("Cast", {sx}, {"fx"}, {{"to", int64_t{1}}});
  b.node("Cast", {su}, {"fu"}, {{"to", int64_t{1}}});
  b.output("fx");
  b.output("fu");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fold_constants(e, cpu()); }), 2);
  EXPECT_EQ(count_ops(b.g, "Shape"), 1u);
  ASSERT_EQ(b.g.initializers.count(sx), 1u);
  const auto v = b.g.initializers.at(sx).values<int64_t>();
  EXPECT_EQ(std::vector<int64_t>(v.begin(), v.end()), (Ints{2, 3, 4}));
  ASSERT_EQ(b.g.initializers.count(sp), 1u);
  const auto vp = b.g.initializers.at(sp).values<int64_t>();
  EXPECT_EQ(std::vector<int64_t>(vp.begin(), vp.end()), (Ints{3, 4}));
  ASSERT_NE(producer_of(b.g, su), nullptr);
}

// MaxPool with ceil_mode where the last window would start in the right padding:
// the kernel drops that window (out = 3), so Shape of it must say 3 however the
// optimizer gets there.
TEST(OptimizerFoldConstants, ShapeOfCeilModePoolMatchesWhatTheKernelComputes) {
  Builder b;
  b.input("x", dims({1, 2, 5, 5}));
  const std::string p = b.op(
      "MaxPool", {"x"},
      {{"kernel_shape", Ints{2, 2}}, {"strides", Ints{2, 2}}, {"pads", Ints{1, 1, 1, 1}}, {"ceil_mode", int64_t{1}}});
  const std::string s = b.op("Shape", {p});
  b.node("Cast", {s}, {"shape_as_float"}, {{"to", int64_t{1}}});
  b.node("Neg", {p}, {"pooled"});
  b.output("shape_as_float");
  b.output("pooled");
  const Feeds feeds = {{"x", b.random({1, 2, 5, 5}, -1, 1)}};
  // The root cause: inference gives the pool 4 x 4 (no last-window rule), and
  // fold_constants turns that into a constant.
  {
    Graph g = b.g;
    (void)graph::infer_shapes(g);
    auto t = g.type_of(p);
    ASSERT_TRUE(t && t->shape);
    EXPECT_EQ((*t->shape)[2].value, 3) << "inferred " << t->to_string();
  }
  auto s0 = make_session(b.model(), 0);
  ASSERT_TRUE(s0.ok());
  const auto want = run_session(**s0, feeds);
  ASSERT_EQ(want.size(), 2u);
  ASSERT_EQ(want[1].second.shape(), (Shape{1, 2, 3, 3}));  // what the kernel computes
  ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), feeds));
}

// ===========================================================================
// fold_batch_norm

TEST(OptimizerFoldBatchNorm, FoldsIntoConv) {
  Builder b;
  b.input("x", dims({1, 4, 6, 6}));
  const std::string c = b.conv("x", 4, 8, 3, pads1());
  const std::string bn = b.batch_norm(c, 8);
  b.node("Relu", {bn}, {"y"});
  b.output("y");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fold_batch_norm(e); }), 1);
  EXPECT_EQ(count_ops(b.g, "BatchNormalization"), 0u);
  const Node* conv = producer_of(b.g, bn);
  ASSERT_NE(conv, nullptr);
  EXPECT_EQ(conv->op_type, "Conv");
  ASSERT_EQ(conv->inputs.size(), 3u);
  EXPECT_NE(b.g.initializers.count(conv->inputs[1]), 0u);
  EXPECT_NE(b.g.initializers.count(conv->inputs[2]), 0u);
}

TEST(OptimizerFoldBatchNorm, FoldsIntoConvWithoutBias) {
  Builder b;
  b.input("x", dims({1, 4, 6, 6}));
  const std::string c = b.conv("x", 4, 8, 3, pads1(), /*bias=*/false);
  b.node("BatchNormalization",
         {c, b.init("s", b.random({8}, 0.5f, 1.5f)), b.init("sh", b.random({8}, -1, 1)),
          b.init("m", b.random({8}, -1, 1)), b.init("v", b.random({8}, 0.5f, 1.5f))},
         {"y"});
  b.output("y");
  const graph::Model original = b.model();
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fold_batch_norm(e); }), 1);
  ASSERT_NO_FATAL_FAILURE(check_levels(original, {{"x", b.random({1, 4, 6, 6}, -1, 1)}}));
}

TEST(OptimizerFoldBatchNorm, NotWhenConvOutputHasTwoReaders) {
  Builder b;
  b.input("x", dims({1, 4, 6, 6}));
  const std::string c = b.conv("x", 4, 8, 3, pads1());
  b.node("Relu", {b.batch_norm(c, 8)}, {"y"});
  b.node("Neg", {c}, {"z"});
  b.output("y");
  b.output("z");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fold_batch_norm(e); }), 0);
  EXPECT_EQ(count_ops(b.g, "BatchNormalization"), 1u);
}

TEST(OptimizerFoldBatchNorm, NotWhenWeightsAreNotConstant) {
  Builder b;
  b.input("x", dims({1, 4, 6, 6}));
  b.input("w", dims({8, 4, 3, 3}));
  const std::string c = b.op("Conv", {"x", "w"}, pads1());
  b.node("Relu", {b.batch_norm(c, 8)}, {"y"});
  b.output("y");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fold_batch_norm(e); }), 0);
  EXPECT_EQ(count_ops(b.g, "BatchNormalization"), 1u);
}

TEST(OptimizerFoldBatchNorm, NotWhenStatisticsAreOverridable) {
  Builder b;
  b.input("x", dims({1, 4, 6, 6}));
  const std::string c = b.conv("x", 4, 8, 3, pads1());
  const std::string bn = b.batch_norm(c, 8);
  b.input(producer_of(b.g, bn)->inputs[3], dims({8}));  // the mean is also a graph input
  b.node("Relu", {bn}, {"y"});
  b.output("y");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fold_batch_norm(e); }), 0);
  EXPECT_EQ(count_ops(b.g, "BatchNormalization"), 1u);
}

// ===========================================================================
// fuse_activation_patterns

TEST(OptimizerActivationPatterns, RecognisesSiLUInEitherOperandOrder) {
  Builder b;
  b.input("x", dims({2, 8}));
  const std::string s1 = b.op("Sigmoid", {"x"});
  const std::string m1 = b.op("Mul", {"x", s1});
  const std::string s2 = b.op("Sigmoid", {m1});
  b.node("Mul", {s2, m1}, {"y"});
  b.output("y");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fuse_activation_patterns(e); }), 2);
  EXPECT_EQ(count_fused(b.g, "Swish"), 2u);
  EXPECT_EQ(count_ops(b.g, "Sigmoid"), 0u);
  EXPECT_EQ(count_ops(b.g, "Mul"), 0u);
  const Node* last = producer_of(b.g, "y");
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(last->op_type, "Swish");
  EXPECT_EQ(last->inputs, (std::vector<std::string>{m1}));
}

TEST(OptimizerActivationPatterns, SigmoidGateOfAnotherValueIsNotSiLU) {
  Builder b;
  b.input("x", dims({2, 8}));
  b.input("z", dims({2, 8}));
  const std::string s = b.op("Sigmoid", {"x"});
  b.node("Mul", {"z", s}, {"y"});  // squeeze-excite style gate
  b.output("y");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fuse_activation_patterns(e); }), 0);
  EXPECT_EQ(count_ops(b.g, "Sigmoid"), 1u);
}

TEST(OptimizerActivationPatterns, SigmoidWithAnotherReaderIsNotSiLU) {
  Builder b;
  b.input("x", dims({2, 8}));
  b.node("Sigmoid", {"x"}, {"s"});
  b.node("Mul", {"x", "s"}, {"y"});
  b.output("y");
  b.output("s");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fuse_activation_patterns(e); }), 0);
  EXPECT_EQ(count_ops(b.g, "Sigmoid"), 1u);
}

TEST(OptimizerActivationPatterns, RecognisesErfGeluInBothOrders) {
  Builder b;
  b.input("x", dims({2, 8}));
  const std::string g1 = erf_gelu(b, "x", /*half_first=*/false);
  const std::string g2 = erf_gelu(b, g1, /*half_first=*/true);
  const std::string g3 = erf_gelu(b, g2, /*half_first=*/false, /*scaled_by_mul=*/true);
  b.node("Neg", {g3}, {"y"});
  b.output("y");
  const graph::Model original = b.model();
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fuse_activation_patterns(e); }), 3);
  EXPECT_EQ(count_fused(b.g, "Gelu"), 3u);
  EXPECT_EQ(count_ops(b.g, "Erf"), 0u);
  EXPECT_EQ(count_ops(b.g, "Mul"), 0u);
  EXPECT_EQ(b.g.nodes.size(), 4u) << op_list(b.g);
  ASSERT_NE(producer_of(b.g, g2), nullptr);
  EXPECT_EQ(producer_of(b.g, g2)->inputs, (std::vector<std::string>{g1}));
  ASSERT_NO_FATAL_FAILURE(check_levels(original, {{"x", b.random({2, 8}, -3, 3)}}));
}

TEST(OptimizerActivationPatterns, ErfGeluWithWrongConstantIsNotFused) {
  Builder b;
  b.input("x", dims({2, 8}));
  const std::string g = erf_gelu(b, "x", false, false, /*sqrt2=*/2.0f);
  b.node("Neg", {g}, {"y"});
  b.output("y");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fuse_activation_patterns(e); }), 0);
  EXPECT_EQ(count_ops(b.g, "Erf"), 1u);
}

TEST(OptimizerActivationPatterns, ErfGeluWithSharedIntermediateIsNotFused) {
  Builder b;
  b.input("x", dims({2, 8}));
  const std::string g = erf_gelu(b, "x", true);
  b.output(g);
  // The Erf output is also a graph output.
  const Node* erf = find_op(b.g, "Erf");
  ASSERT_NE(erf, nullptr);
  b.output(erf->outputs[0]);
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fuse_activation_patterns(e); }), 0);
  EXPECT_EQ(count_ops(b.g, "Erf"), 1u);
}

// ===========================================================================
// fuse_conv

TEST(OptimizerFuseConv, ConvReluBecomesFusedConv) {
  Builder b;
  b.input("x", dims({1, 4, 6, 6}));
  const std::string c = b.conv("x", 4, 8, 3, pads1());
  b.node("Relu", {c}, {"y"});
  b.output("y");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fuse_conv(e); }), 1);
  ASSERT_EQ(b.g.nodes.size(), 1u);
  const Node& f = b.g.nodes[0];
  EXPECT_EQ(f.op_type, "FusedConv");
  EXPECT_EQ(f.domain, optimizer::kDeskmlDomain);
  EXPECT_EQ(f.attr_string("activation"), "Relu");
  EXPECT_EQ(f.attr_ints("pads"), (Ints{1, 1, 1, 1}));
  EXPECT_EQ(f.outputs, (std::vector<std::string>{"y"}));
  EXPECT_EQ(f.inputs.size(), 3u);
}

TEST(OptimizerFuseConv, ConvOutputWithTwoReadersIsNotFusedWithRelu) {
  Builder b;
  b.input("x", dims({1, 4, 6, 6}));
  const std::string c = b.conv("x", 4, 8, 3, pads1());
  b.node("Relu", {c}, {"y"});
  b.node("Sigmoid", {c}, {"z"});
  b.output("y");
  b.output("z");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fuse_conv(e); }), 1);
  EXPECT_EQ(count_ops(b.g, "Relu"), 1u);
  EXPECT_EQ(count_ops(b.g, "Sigmoid"), 1u);
  const Node* f = producer_of(b.g, c);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->op_type, "FusedConv");
  EXPECT_FALSE(f->has_attr("activation"));
}

TEST(OptimizerFuseConv, ConvOutputThatIsAGraphOutputIsNotFusedWithRelu) {
  Builder b;
  b.input("x", dims({1, 4, 6, 6}));
  b.node("Conv", {"x", b.init("w", b.random({8, 4, 3, 3}, -1, 1))}, {"c"}, pads1());
  b.node("Relu", {"c"}, {"y"});
  b.output("c");
  b.output("y");
  apply(b.g, [](auto& e) { return optimizer::fuse_conv(e); });
  EXPECT_EQ(count_ops(b.g, "Relu"), 1u);
  ASSERT_NE(producer_of(b.g, "c"), nullptr);
}

TEST(OptimizerFuseConv, ResidualAddIsFusedWithActivationsBeforeAndAfter) {
  Builder b;
  b.input("x", dims({1, 8, 6, 6}));
  b.input("r", dims({1, 8, 6, 6}));
  const std::string c = b.conv("x", 8, 8, 3, pads1());
  const std::string a = b.op("Relu", {c});
  const std::string s = b.op("Add", {"r", a});  // residual first
  b.node("Relu", {s}, {"y"});
  b.output("y");
  const graph::Model original = b.model();
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fuse_conv(e); }), 1);
  ASSERT_EQ(b.g.nodes.size(), 1u) << op_list(b.g);
  const Node& f = b.g.nodes[0];
  EXPECT_EQ(f.op_type, "FusedConv");
  ASSERT_EQ(f.inputs.size(), 4u);
  EXPECT_EQ(f.inputs[3], "r");
  EXPECT_EQ(f.attr_string("pre_activation"), "Relu");
  EXPECT_EQ(f.attr_string("activation"), "Relu");
  EXPECT_EQ(f.outputs[0], "y");
  ASSERT_NO_FATAL_FAILURE(
      check_levels(original, {{"x", b.random({1, 8, 6, 6}, -1, 1)}, {"r", b.random({1, 8, 6, 6}, -1, 1)}}));
}

TEST(OptimizerFuseConv, BroadcastingAddIsNotFusedAsResidual) {
  Builder b;
  b.input("x", dims({2, 8, 6, 6}));
  b.input("gate", dims({2, 8, 1, 1}));
  const std::string c1 = b.conv("x", 8, 8, 3, pads1());
  const std::string s1 = b.op("Add", {c1, "gate"});  // [N,C,1,1]
  const std::string c2 = b.conv(s1, 8, 8, 3, pads1());
  const std::string s2 = b.op("Add", {c2, b.init("cbias", b.random({8, 1, 1}, -1, 1))});  // constant [C,1,1]
  const std::string c3 = b.conv(s2, 8, 8, 3, pads1());
  b.input("row", {Dim::named("N"), Dim::of(8), Dim::of(6), Dim::of(6)});  // batch unknown: may broadcast
  b.node("Add", {c3, "row"}, {"y"});
  b.output("y");
  const graph::Model original = b.model();
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fuse_conv(e); }), 3);
  EXPECT_EQ(count_ops(b.g, "Add"), 3u) << op_list(b.g);
  for (const auto& n : b.g.nodes) {
    if (n.op_type == "FusedConv") {
      EXPECT_EQ(n.input(3), "") << n.name;
    }
  }
  // Numerically too, with a batch-1 'row' that broadcasts over the batch.
  ASSERT_NO_FATAL_FAILURE(check_levels(original, {{"x", b.random({2, 8, 6, 6}, -1, 1)},
                                                  {"gate", b.random({2, 8, 1, 1}, -1, 1)},
                                                  {"row", b.random({1, 8, 6, 6}, -1, 1)}}));
}

TEST(OptimizerFuseConv, ClipWithNonConstantBoundIsNotFused) {
  Builder b;
  b.input("x", dims({1, 4, 6, 6}));
  b.input("lo", dims({}));
  const std::string c = b.conv("x", 4, 8, 3, pads1());
  b.node("Clip", {c, "lo", b.scalar(6.0f)}, {"y"});
  b.output("y");
  apply(b.g, [](auto& e) { return optimizer::fuse_conv(e); });
  EXPECT_EQ(count_ops(b.g, "Clip"), 1u);
}

TEST(OptimizerFuseConv, ClipWithConstantBoundsIsFused) {
  Builder b;
  b.input("x", dims({1, 4, 6, 6}));
  const std::string c = b.conv("x", 4, 8, 3, pads1());
  b.node("Clip", {c, b.scalar(0.0f), b.scalar(6.0f)}, {"y"});
  b.output("y");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fuse_conv(e); }), 1);
  ASSERT_EQ(b.g.nodes.size(), 1u);
  EXPECT_EQ(b.g.nodes[0].attr_string("activation"), "Clip");
  EXPECT_FLOAT_EQ(b.g.nodes[0].attr_float("activation_alpha", -1), 0.0f);
  EXPECT_FLOAT_EQ(b.g.nodes[0].attr_float("activation_beta", -1), 6.0f);
}

// ===========================================================================
// fuse_matmul

TEST(OptimizerFuseMatMul, MatMulAddReluBecomesFusedMatMul) {
  Builder b;
  b.input("x", dims({4, 16}));
  const std::string w = b.init("w", b.random({16, 8}, -0.25f, 0.25f));
  const std::string bias = b.init("bias", b.random({8}, -0.2f, 0.2f));
  const std::string m = b.op("MatMul", {"x", w});
  const std::string a = b.op("Add", {bias, m});
  b.node("Relu", {a}, {"y"});
  b.output("y");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fuse_matmul(e); }), 1);
  ASSERT_EQ(b.g.nodes.size(), 1u) << op_list(b.g);
  const Node& f = b.g.nodes[0];
  EXPECT_EQ(f.op_type, "FusedMatMul");
  EXPECT_EQ(f.inputs, (std::vector<std::string>{"x", w, bias}));
  EXPECT_EQ(f.attr_int("trans_b", -1), 0);
  EXPECT_EQ(f.attr_string("activation"), "Relu");
  EXPECT_EQ(f.outputs[0], "y");
}

TEST(OptimizerFuseMatMul, GemmTransBWithBiasAndRelu) {
  Builder b;
  b.input("x", dims({4, 16}));
  const std::string w = b.init("w", b.random({8, 16}, -0.25f, 0.25f));
  const std::string bias = b.init("bias", b.random({8}, -0.2f, 0.2f));
  const std::string m = b.op("Gemm", {"x", w, bias}, {{"transB", int64_t{1}}});
  b.node("Relu", {m}, {"y"});
  b.output("y");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fuse_matmul(e); }), 1);
  ASSERT_EQ(b.g.nodes.size(), 1u);
  EXPECT_EQ(b.g.nodes[0].attr_int("trans_b", -1), 1);
  EXPECT_EQ(b.g.nodes[0].inputs.size(), 3u);
}

TEST(OptimizerFuseMatMul, NotWhenWeightsAreNotConstant) {
  Builder b;
  b.input("x", dims({4, 16}));
  b.input("w", dims({16, 8}));
  b.node("Relu", {b.op("MatMul", {"x", "w"})}, {"y"});
  b.output("y");
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fuse_matmul(e); }), 0);
  EXPECT_EQ(count_ops(b.g, "MatMul"), 1u);
}

TEST(OptimizerFuseMatMul, BiasThatRaisesTheRankIsNotFused) {
  Builder b;
  b.input("x", dims({4, 16}));
  const std::string w = b.init("w", b.random({16, 8}, -0.25f, 0.25f));
  const std::string m = b.op("MatMul", {"x", w});
  b.node("Add", {m, b.init("bias", b.random({1, 1, 8}, -1, 1))}, {"y"});  // [4,8] + [1,1,8] -> [1,4,8]
  b.output("y");
  const graph::Model original = b.model();
  apply(b.g, [](auto& e) { return optimizer::fuse_matmul(e); });
  EXPECT_EQ(count_ops(b.g, "Add"), 1u) << op_list(b.g);
  ASSERT_NO_FATAL_FAILURE(check_levels(original, {{"x", b.random({4, 16}, -1, 1)}}));
}

TEST(OptimizerFuseMatMul, GemmWithAlphaTransAOrBroadcastCIsNotFused) {
  Builder b;
  b.input("x", dims({4, 16}));
  b.input("xt", dims({16, 4}));
  const std::string w = b.init("w", b.random({16, 8}, -0.25f, 0.25f));
  b.node("Gemm", {"x", w}, {"y1"}, {{"alpha", 0.5f}});
  b.node("Gemm", {"xt", w}, {"y2"}, {{"transA", int64_t{1}}});
  b.node("Gemm", {"x", w, b.init("cfull", b.random({4, 8}, -1, 1))}, {"y3"});
  b.node("Gemm", {"x", w, b.init("cb", b.random({8}, -1, 1))}, {"y4"}, {{"beta", 2.0f}});
  for (const char* y : {"y1", "y2", "y3", "y4"}) b.output(y);
  const graph::Model original = b.model();
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fuse_matmul(e); }), 0);
  EXPECT_EQ(count_ops(b.g, "Gemm"), 4u);
  ASSERT_NO_FATAL_FAILURE(check_levels(original, {{"x", b.random({4, 16}, -1, 1)}, {"xt", b.random({16, 4}, -1, 1)}}));
}

TEST(OptimizerFuseMatMul, ResidualAddBecomesTheSumInput) {
  // A transformer layer: h = Relu(x W1 + b1); y = h W2 + b2 + h (the skip), then an activation.
  Builder b;
  b.input("x", {Dim::named("batch"), Dim::of(5), Dim::of(16)});
  const std::string h = b.op("Relu", {b.op("Add", {b.op("MatMul", {"x", b.init("w1", b.random({16, 16}, -0.3f, 0.3f))}),
                                                   b.init("b1", b.random({16}, -0.2f, 0.2f))})});
  const std::string m = b.op("Add", {b.op("MatMul", {h, b.init("w2", b.random({16, 16}, -0.3f, 0.3f))}),
                                     b.init("b2", b.random({16}, -0.2f, 0.2f))});
  b.node("Tanh", {b.op("Add", {h, m})}, {"y"});
  b.output("y");
  const graph::Model original = b.model();
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fuse_matmul(e); }), 2);
  ASSERT_EQ(b.g.nodes.size(), 2u) << op_list(b.g);
  const Node& f = b.g.nodes[1];
  EXPECT_EQ(f.op_type, "FusedMatMul");
  EXPECT_EQ(f.inputs, (std::vector<std::string>{h, "w2", "b2", h}));
  EXPECT_EQ(f.attr_string("activation"), "Tanh");
  EXPECT_FALSE(f.has_attr("pre_activation"));
  EXPECT_EQ(f.outputs[0], "y");
  ASSERT_NO_FATAL_FAILURE(check_levels(original, {{"x", b.random({3, 5, 16}, -1, 1)}}));
}

TEST(OptimizerFuseMatMul, ResidualAfterAnActivationWithoutBias) {
  // y = Relu(x W) + r, r read again afterwards (so the sum cannot reuse r's buffer).
  Builder b;
  b.input("x", dims({4, 16}));
  b.input("r", dims({4, 8}));
  const std::string m = b.op("Relu", {b.op("MatMul", {"x", b.init("w", b.random({16, 8}, -0.25f, 0.25f))})});
  b.node("Add", {"r", m}, {"y"});
  b.node("Mul", {"r", "y"}, {"z"});
  b.output("z");
  const graph::Model original = b.model();
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fuse_matmul(e); }), 1);
  ASSERT_EQ(b.g.nodes.size(), 2u) << op_list(b.g);
  const Node& f = b.g.nodes[0];
  EXPECT_EQ(f.inputs, (std::vector<std::string>{"x", "w", "", "r"}));
  EXPECT_EQ(f.attr_string("pre_activation"), "Relu");
  EXPECT_FALSE(f.has_attr("activation"));
  ASSERT_NO_FATAL_FAILURE(check_levels(original, {{"x", b.random({4, 16}, -1, 1)}, {"r", b.random({4, 8}, -1, 1)}}));
}

TEST(OptimizerFuseMatMul, BroadcastingAddIsNotAResidual) {
  Builder b;
  b.input("x", dims({4, 16}));
  b.input("r", dims({1, 8}));
  b.node("Add", {b.op("MatMul", {"x", b.init("w", b.random({16, 8}, -0.25f, 0.25f))}), "r"}, {"y"});
  b.output("y");
  const graph::Model original = b.model();
  EXPECT_EQ(apply(b.g, [](auto& e) { return optimizer::fuse_matmul(e); }), 1);
  EXPECT_EQ(count_ops(b.g, "Add"), 1u) << op_list(b.g);
  ASSERT_NO_FATAL_FAILURE(check_levels(original, {{"x", b.random({4, 16}, -1, 1)}, {"r", b.random({1, 8}, -1, 1)}}));
}

// ===========================================================================
// convert_to_channels_last

int fuse_and_convert(Graph& g) {
  (void)graph::infer_shapes(g);
  optimizer::GraphEditor editor(g);
  optimizer::fuse_conv(editor);
  const int n = optimizer::convert_to_channels_last(editor);
  optimizer::eliminate_dead_code(editor);
  return n;
}

TEST(OptimizerChannelsLast, ConvChainGetsExactlyOneTransposePair) {
  Builder b;
  b.input("x", dims({2, 8, 9, 9}));
  const std::string c1 = b.conv("x", 8, 16, 3, pads1());
  const std::string r = b.op("Relu", {c1});
  const std::string c2 = b.conv(r, 16, 16, 3, pads1());
  const std::string p = b.op("GlobalAveragePool", {c2});
  b.node("Flatten", {p}, {"y"});
  b.output("y");
  const graph::Model original = b.model();
  EXPECT_EQ(fuse_and_convert(b.g), 3);  // two FusedConv and the pool
  EXPECT_EQ(count_ops(b.g, "Transpose"), 2u) << op_list(b.g);
  EXPECT_EQ(count_fused(b.g, "FusedConv"), 2u);
  EXPECT_EQ(count_fused(b.g, "NhwcGlobalAveragePool"), 1u);
  EXPECT_EQ(count_ops(b.g, "GlobalAveragePool"), 0u);
  for (const auto& n : b.g.nodes) {
    if (n.op_type == "FusedConv") {
      EXPECT_EQ(n.attr_int("channels_last", 0), 1);
    }
  }
  // In: x -> Transpose(0,2,3,1) -> first conv; out: pool -> Transpose(0,3,1,2) -> Flatten.
  const Node* flatten = find_op(b.g, "Flatten");
  ASSERT_NE(flatten, nullptr);
  const Node* back = producer_of(b.g, flatten->inputs[0]);
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(back->op_type, "Transpose");
  EXPECT_EQ(back->attr_ints("perm"), (Ints{0, 3, 1, 2}));
  EXPECT_EQ(flatten->inputs[0], p);  // the NCHW value keeps its name
  size_t to_nhwc = 0;
  for (const auto& n : b.g.nodes) {
    if (n.op_type == "Transpose" && n.inputs[0] == "x") {
      ++to_nhwc;
      EXPECT_EQ(n.attr_ints("perm"), (Ints{0, 2, 3, 1}));
    }
  }
  EXPECT_EQ(to_nhwc, 1u);
  // The graph is still runnable and topologically ordered.
  auto order = graph::topological_order(b.g);
  ASSERT_TRUE(order.ok()) << order.status().to_string();
  for (size_t i = 0; i < order->size(); ++i) EXPECT_EQ((*order)[i], i);
  Graph optimized;
  ASSERT_NO_FATAL_FAILURE(check_levels(original, {{"x", b.random({2, 8, 9, 9}, -1, 1)}}, &optimized));
  EXPECT_EQ(count_ops(optimized, "Transpose"), 2u) << op_list(optimized);
}

TEST(OptimizerChannelsLast, LeavesOneDimensionalConvModelAlone) {
  Builder b;
  b.input("x", dims({2, 8, 20}));
  const std::string c1 = b.conv("x", 8, 8, 3, {{"pads", Ints{1, 1}}}, true, 1);
  const std::string r = b.op("Relu", {c1});
  const std::string c2 = b.conv(r, 8, 8, 3, {{"pads", Ints{1, 1}}}, true, 1);
  b.node("MaxPool", {c2}, {"y"}, {{"kernel_shape", Ints{2}}});
  b.output("y");
  EXPECT_EQ(fuse_and_convert(b.g), 0);
  EXPECT_EQ(count_ops(b.g, "Transpose"), 0u) << op_list(b.g);
  EXPECT_EQ(count_ops(b.g, "MaxPool"), 1u);
  for (const auto& n : b.g.nodes) EXPECT_EQ(n.attr_int("channels_last", 0), 0);
}

TEST(OptimizerChannelsLast, NothingToDoWithoutAConv) {
  Builder b;
  b.input("x", dims({2, 8, 9, 9}));
  const std::string r = b.op("Relu", {"x"});
  b.node("MaxPool", {r}, {"y"}, {{"kernel_shape", Ints{2, 2}}});
  b.output("y");
  EXPECT_EQ(fuse_and_convert(b.g), 0);
  EXPECT_EQ(count_ops(b.g, "Transpose"), 0u);
}

TEST(OptimizerChannelsLast, GraphOutputInsideTheRegionIsTransposedBack) {
  Builder b;
  b.input("x", dims({2, 8, 9, 9}));
  const std::string c1 = b.conv("x", 8, 8, 3, pads1());
  b.node("Relu", {c1}, {"mid"});
  const std::string c2 = b.conv("mid", 8, 8, 3, pads1());
  b.node("Sigmoid", {c2}, {"y"});
  b.output("mid", DataType::kFloat32, dims({2, 8, 9, 9}));
  b.output("y", DataType::kFloat32, dims({2, 8, 9, 9}));
  const graph::Model original = b.model();
  fuse_and_convert(b.g);
  EXPECT_EQ(count_ops(b.g, "Transpose"), 3u) << op_list(b.g);  // one in, one back per output
  ASSERT_NE(producer_of(b.g, "mid"), nullptr);
  EXPECT_EQ(producer_of(b.g, "mid")->op_type, "Transpose");
  ASSERT_NO_FATAL_FAILURE(check_levels(original, {{"x", b.random({2, 8, 9, 9}, -1, 1)}}));
}

TEST(OptimizerChannelsLast, ValueReadBySubgraphIsStillAvailableInNCHW) {
  Builder b;
  b.input("c", dims({}), DataType::kBool);
  b.input("x", dims({1, 4, 5, 5}));
  const std::string c1 = b.conv("x", 4, 4, 3, pads1());
  const std::string r = b.op("Relu", {c1});
  const std::string c2 = b.conv(r, 4, 4, 3, pads1());
  if_reading(b, "c", r, "y");  // the branch reads the Relu's (NCHW) value
  b.node("Neg", {c2}, {"z"});
  b.output("y");
  b.output("z");
  const graph::Model original = b.model();
  for (bool cond : {true, false}) {
    ASSERT_NO_FATAL_FAILURE(
        check_levels(original, {{"c", Tensor::scalar<bool>(cond)}, {"x", b.random({1, 4, 5, 5}, -1, 1)}}));
  }
}
// optimize() (and the planner) order nodes with graph::topological_order; an
// If whose branch output is an outer value must come after that value's producer
// even when the file lists it first.
TEST(OptimizerGraphOrder, BranchOutputReadFromOuterScopeOrdersItsProducerFirst) {
  Builder b;
  b.input("c", dims({}), DataType::kBool);
  b.input("x", dims({3}));
  auto branch = std::make_shared<Graph>();
  branch->outputs = {tensor_info("t", std::nullopt)};  // no nodes: the outer value itself
  Node& n = b.node("If", {"c"}, {"y"});
  n.attributes["then_branch"] = graph::GraphPtr(branch);
  n.attributes["else_branch"] = graph::GraphPtr(branch);
  b.node("Relu", {"x"}, {"t"});
  b.output("y");
  auto order = graph::topological_order(b.g);
  ASSERT_TRUE(order.ok()) << order.status().to_string();
  EXPECT_EQ(*order, (std::vector<size_t>{1, 0})) << "the If must run after the Relu producing 't'";
  for (int level : {0, 2}) {
    auto s = make_session(b.model(), level);
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    const auto out =
        run_session(**s, {{"c", Tensor::scalar<bool>(true)}, {"x", Tensor::from_vector<float>({1, -2, 3}, {3})}});
    ASSERT_EQ(out.size(), 1u);
    ASSERT_TRUE(out[0].second.defined()) << "level " << level << ": the If's output is missing";
    EXPECT_FLOAT_EQ(out[0].second.data<float>()[1], 0.0f);
  }
}

// optimize() as a whole: level 1 cleans up but does not fuse; level 2 reports every pass.
// ===========================================================================
// allow_winograd

TEST(OptimizerWinograd, MarksOnlyThreeByThreeStrideOneConvsWithConstantWeights) {
  Builder b;
  b.input("x", dims({1, 16, 12, 12}));
  b.input("w_in", dims({16, 16, 3, 3}));
  const std::string yes = b.conv("x", 16, 16, 3, pads1());
  const std::string strided = b.conv(yes, 16, 16, 3, {{"pads", Ints{1, 1, 1, 1}}, {"strides", Ints{2, 2}}});
  const std::string pointwise = b.conv(yes, 16, 16, 1);
  const std::string grouped = b.conv(yes, 16, 16, 3, {{"pads", Ints{1, 1, 1, 1}}, {"group", int64_t{4}}});
  const std::string dilated = b.conv(yes, 16, 16, 3, {{"pads", Ints{2, 2, 2, 2}}, {"dilations", Ints{2, 2}}});
  const std::string fed = b.op("Conv", {yes, "w_in"}, pads1());
  const std::string explicit_ones = b.conv(yes, 16, 16, 3, {{"pads", Ints{1, 1, 1, 1}}, {"strides", Ints{1, 1}}});
  for (const auto& v : {strided, pointwise, grouped, dilated, fed, explicit_ones}) b.output(v);
  EXPECT_EQ(apply(b.g, optimizer::allow_winograd), 2);
  for (const auto& n : b.g.nodes) {
    const bool want = n.outputs[0] == yes || n.outputs[0] == explicit_ones;
    EXPECT_EQ(n.attr_int("winograd", 0), want ? 1 : 0) << n.label();
  }
  EXPECT_EQ(apply(b.g, optimizer::allow_winograd), 0);  // marked once
}

TEST(OptimizerWinograd, OptionTurnsThePassOff) {
  Builder b;
  b.input("x", dims({1, 16, 12, 12}));
  b.node("Relu", {b.conv("x", 16, 16, 3, pads1())}, {"y"});
  b.output("y");
  for (bool on : {true, false}) {
    graph::Model m = b.model();
    (void)graph::infer_shapes(m.graph);
    optimizer::OptimizeOptions o;
    o.winograd = on;
    ASSERT_TRUE(optimizer::optimize(m, cpu(), o).ok());
    const Node* conv = find_op(m.graph, "FusedConv", optimizer::kDeskmlDomain);
    ASSERT_NE(conv, nullptr) << op_list(m.graph);
    EXPECT_EQ(conv->attr_int("winograd", 0), on ? 1 : 0);
  }
}

// ===========================================================================
// fuse_conv_max_pool

// A blocked FusedConv whose only reader is a blocked max pool: fused, the
// pool's attributes prefixed; not when the conv's output is read elsewhere,
// the pool is dilated or returns Indices, or the conv sums a residual.
TEST(OptimizerConvPool, FusesABlockedConvIntoTheMaxPoolThatAloneReadsIt) {
  const auto blocked = [](const std::string& op) {
    Node n;
    n.op_type = op;
    n.domain = optimizer::kDeskmlDomain;
    n.attributes["blocked"] = int64_t{16};
    return n;
  };
  const auto build = [&](const std::string& variant) {
    Builder b;
    b.input("x", dims({1, 1, 8, 8, 16}));
    Node conv = blocked("FusedConv");
    conv.inputs = {"x", b.init("w", b.random({16, 16, 3, 3}, -1, 1))};
    if (variant == "residual") conv.inputs = {"x", "w", "", "x"};
    conv.outputs = {"c"};
    conv.attributes["activation"] = std::string("Relu");
    Node pool = blocked("NhwcMaxPool");
    pool.inputs = {"c"};
    pool.outputs = {"y"};
    pool.attributes["kernel_shape"] = Ints{3, 3};
    pool.attributes["strides"] = Ints{2, 2};
    pool.attributes["ceil_mode"] = int64_t{1};
    if (variant == "dilated") pool.attributes["dilations"] = Ints{2, 2};
    if (variant == "indices") pool.outputs.push_back("i");
    b.g.nodes.push_back(conv);
    b.g.nodes.push_back(pool);
    b.output("y");
    if (variant == "indices") b.output("i");
    if (variant == "read twice") b.output("c");
    return b;
  };
  Builder yes = build("");
  EXPECT_EQ(apply(yes.g, optimizer::fuse_conv_max_pool), 1);
  ASSERT_EQ(yes.g.nodes.size(), 1u) << op_list(yes.g);
  const Node& n = yes.g.nodes[0];
  EXPECT_EQ(n.op_type, "FusedConvMaxPool");
  EXPECT_EQ(n.outputs, std::vector<std::string>{"y"});
  EXPECT_EQ(n.attr_string("activation"), "Relu");
  EXPECT_EQ(n.attr_ints("pool_kernel_shape"), (Ints{3, 3}));
  EXPECT_EQ(n.attr_ints("pool_strides"), (Ints{2, 2}));
  EXPECT_EQ(n.attr_int("pool_ceil_mode", 0), 1);
  EXPECT_EQ(n.attr_int("blocked", 0), 16);
  for (const std::string variant : {"read twice", "dilated", "indices", "residual"}) {
    Builder no = build(variant);
    EXPECT_EQ(apply(no.g, optimizer::fuse_conv_max_pool), 0) << variant;
    EXPECT_EQ(no.g.nodes.size(), 2u) << variant;
  }
}

TEST(OptimizerPipeline, LevelsAndReport) {
  Builder b;
  b.input("x", dims({1, 4, 6, 6}));
  const std::string i = b.op("Identity", {"x"});
  b.node("Relu", {b.conv(i, 4, 8, 3, pads1())}, {"y"});
  b.output("y");
  graph::Model m1 = b.model();
  std::vector<optimizer::PassResult> report;
  (void)graph::infer_shapes(m1.graph);
  optimizer::OptimizeOptions o1;
  o1.level = 1;
  ASSERT_TRUE(optimizer::optimize(m1, cpu(), o1, &report).ok());
  EXPECT_EQ(count_ops(m1.graph, "Identity"), 0u);
  EXPECT_EQ(count_ops(m1.graph, "Conv"), 1u);
  EXPECT_EQ(count_ops(m1.graph, "Relu"), 1u);

  graph::Model m2 = b.model();
  report.clear();
  (void)graph::infer_shapes(m2.graph);
  ASSERT_TRUE(optimizer::optimize(m2, cpu(), {}, &report).ok());
  EXPECT_EQ(count_fused(m2.graph, "FusedConv"), 1u) << op_list(m2.graph);
  std::vector<std::string> passes;
  for (const auto& p : report) passes.push_back(p.pass);
  EXPECT_NE(std::find(passes.begin(), passes.end(), "fuse-conv"), passes.end());
  EXPECT_NE(std::find(passes.begin(), passes.end(), "channels-last"), passes.end());

  graph::Model m0 = b.model();
  optimizer::OptimizeOptions o0;
  o0.level = 0;
  ASSERT_TRUE(optimizer::optimize(m0, cpu(), o0).ok());
  EXPECT_EQ(m0.graph.nodes.size(), 3u);
}

}  // namespace
}  // namespace deskml
