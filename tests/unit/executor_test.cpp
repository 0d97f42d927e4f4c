// The executor: ordering, liveness, subgraphs and feed validation, on graphs built by hand.
#include <gtest/gtest.h>

#include "runtime/session.hpp"

namespace deskml {
namespace {

using graph::Dim;
using graph::Graph;
using graph::Node;
using graph::ValueInfo;
using graph::ValueType;

ValueInfo tensor_info(const std::string& name, DataType dt, std::vector<Dim> dims) {
  ValueInfo vi;
  vi.name = name;
  vi.type.dtype = dt;
  vi.type.shape = std::move(dims);
  return vi;
}

Node node(const std::string& op, std::vector<std::string> in, std::vector<std::string> out) {
  Node n;
  n.op_type = op;
  n.opset = 17;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  return n;
}

graph::Model model_of(Graph g) {
  graph::Model m;
  m.opsets[""] = 17;
  m.graph = std::move(g);
  return m;
}

TEST(Executor, RunsNodesInDependencyOrderWhateverTheFileOrder) {
  Graph g;
  g.inputs = {tensor_info("x", DataType::kFloat32, {Dim::named("n")})};
  g.outputs = {tensor_info("z", DataType::kFloat32, {Dim::named("n")})};
  g.nodes = {node("Add", {"y", "x"}, {"z"}), node("Add", {"x", "x"}, {"y"})};  // listed out of order
  auto session = runtime::Session::create(model_of(std::move(g)));
  ASSERT_TRUE(session.ok()) << session.status().to_string();
  auto out = (*session)->run({{"x", Tensor::from_vector<float>({1, 2, 3}, {3})}});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const auto v = (*out)[0].second.values<float>();
  EXPECT_EQ(std::vector<float>(v.begin(), v.end()), (std::vector<float>{3, 6, 9}));
}

TEST(Executor, RejectsCyclesAndDanglingInputs) {
  Graph cyc;
  cyc.outputs = {tensor_info("a", DataType::kFloat32, {})};
  cyc.nodes = {node("Add", {"b", "b"}, {"a"}), node("Add", {"a", "a"}, {"b"})};
  auto s1 = runtime::Session::create(model_of(std::move(cyc)));
  ASSERT_FALSE(s1.ok());
  EXPECT_EQ(s1.status().code(), StatusCode::kInvalidModel);
  EXPECT_NE(s1.status().message().find("cycle"), std::string::npos) << s1.status().message();

  Graph dangling;
  dangling.outputs = {tensor_info("a", DataType::kFloat32, {})};
  dangling.nodes = {node("Add", {"nothing", "nothing"}, {"a"})};
  auto s2 = runtime::Session::create(model_of(std::move(dangling)));
  ASSERT_FALSE(s2.ok());
  EXPECT_EQ(s2.status().code(), StatusCode::kInvalidModel);
}

TEST(Executor, UnknownOpIsUnsupportedAtLoad) {
  Graph g;
  g.inputs = {tensor_info("x", DataType::kFloat32, {})};
  g.outputs = {tensor_info("y", DataType::kFloat32, {})};
  g.nodes = {node("NoSuchOp", {"x"}, {"y"})};
  auto s = runtime::Session::create(model_of(std::move(g)));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kUnsupported);
}

TEST(Executor, ValidatesFeeds) {
  Graph g;
  g.inputs = {tensor_info("x", DataType::kFloat32, {Dim::named("n"), Dim::of(2)})};
  g.outputs = {tensor_info("y", DataType::kFloat32, {})};
  g.nodes = {node("Add", {"x", "x"}, {"y"})};
  auto s = runtime::Session::create(model_of(std::move(g)));
  ASSERT_TRUE(s.ok());
  auto& session = **s;
  EXPECT_EQ(session.run({{"x", Tensor::zeros(DataType::kInt32, {1, 2})}}).status().code(),
            StatusCode::kInvalidArgument);  // dtype
  EXPECT_EQ(session.run({{"x", Tensor::zeros(DataType::kFloat32, {1, 3})}}).status().code(),
            StatusCode::kInvalidArgument);  // fixed dim
  EXPECT_EQ(session.run({{"x", Tensor::zeros(DataType::kFloat32, {2})}}).status().code(),
            StatusCode::kInvalidArgument);  // rank
  EXPECT_EQ(session.run({{"q", Tensor::zeros(DataType::kFloat32, {1, 2})}}).status().code(),
            StatusCode::kInvalidArgument);  // unknown name
  EXPECT_EQ(session.run(std::vector<std::pair<std::string, Tensor>>{}).status().code(),
            StatusCode::kInvalidArgument);  // missing
  EXPECT_TRUE(session.run({{"x", Tensor::zeros(DataType::kFloat32, {5, 2})}}).ok());
}

TEST(Executor, IfReadsOuterScopeValues) {
  auto then_g = std::make_shared<Graph>();
  then_g->outputs = {tensor_info("t_out", DataType::kFloat32, {})};
  then_g->nodes = {node("Add", {"x", "x"}, {"t_out"})};  // reads x from the outer graph
  auto else_g = std::make_shared<Graph>();
  else_g->outputs = {tensor_info("e_out", DataType::kFloat32, {})};
  else_g->nodes = {node("Identity", {"x"}, {"e_out"})};

  Graph g;
  g.inputs = {tensor_info("c", DataType::kBool, {}), tensor_info("x", DataType::kFloat32, {Dim::of(2)})};
  g.outputs = {tensor_info("y", DataType::kFloat32, {})};
  Node n = node("If", {"c"}, {"y"});
  n.attributes["then_branch"] = graph::GraphPtr(then_g);
  n.attributes["else_branch"] = graph::GraphPtr(else_g);
  g.nodes = {n};
  auto s = runtime::Session::create(model_of(std::move(g)));
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  const auto x = Tensor::from_vector<float>({1.5f, -2.0f}, {2});
  auto yes = (*s)->run({{"c", Tensor::scalar<bool>(true)}, {"x", x}});
  ASSERT_TRUE(yes.ok()) << yes.status().to_string();
  EXPECT_FLOAT_EQ((*yes)[0].second.data<float>()[0], 3.0f);
  auto no = (*s)->run({{"c", Tensor::scalar<bool>(false)}, {"x", x}});
  ASSERT_TRUE(no.ok()) << no.status().to_string();
  EXPECT_FLOAT_EQ((*no)[0].second.data<float>()[1], -2.0f);
}

TEST(Executor, LoopCarriesStateAndStacksScanOutputs) {
  // body(i, cond, acc) -> (cond, acc + acc, acc)
  auto body = std::make_shared<Graph>();
  body->inputs = {tensor_info("i", DataType::kInt64, {}), tensor_info("cond_in", DataType::kBool, {}),
                  tensor_info("acc", DataType::kFloat32, {Dim::of(1)})};
  body->outputs = {tensor_info("cond_out", DataType::kBool, {}), tensor_info("acc2", DataType::kFloat32, {}),
                   tensor_info("scan", DataType::kFloat32, {})};
  body->nodes = {node("Identity", {"cond_in"}, {"cond_out"}), node("Add", {"acc", "acc"}, {"acc2"}),
                 node("Identity", {"acc"}, {"scan"})};
  Graph g;
  g.inputs = {tensor_info("m", DataType::kInt64, {}), tensor_info("a0", DataType::kFloat32, {Dim::of(1)})};
  g.outputs = {tensor_info("final", DataType::kFloat32, {}), tensor_info("all", DataType::kFloat32, {})};
  Node n = node("Loop", {"m", "", "a0"}, {"final", "all"});
  n.attributes["body"] = graph::GraphPtr(body);
  g.nodes = {n};
  auto s = runtime::Session::create(model_of(std::move(g)));
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  auto out = (*s)->run({{"m", Tensor::scalar<int64_t>(4)}, {"a0", Tensor::from_vector<float>({1}, {1})}});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_FLOAT_EQ((*out)[0].second.data<float>()[0], 16.0f);
  EXPECT_EQ((*out)[1].second.shape(), (Shape{4, 1}));
  EXPECT_FLOAT_EQ((*out)[1].second.data<float>()[3], 8.0f);
}

}  // namespace
}  // namespace deskml
