// RunOptions::profile: per-node timings of a run, on graphs built by hand.
#include <gtest/gtest.h>

#include "runtime/session.hpp"

namespace deskml {
namespace {

using graph::Dim;
using graph::Graph;
using graph::Node;
using graph::ValueInfo;

ValueInfo tensor_info(const std::string& name, DataType dt, std::vector<Dim> dims) {
  ValueInfo vi;
  vi.name = name;
  vi.type.dtype = dt;
  vi.type.shape = std::move(dims);
  return vi;
}

Node node(const std::string& op, const std::string& name, std::vector<std::string> in, std::vector<std::string> out) {
  Node n;
  n.op_type = op;
  n.name = name;
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

std::unique_ptr<runtime::Session> two_node_session() {
  Graph g;
  g.inputs = {tensor_info("x", DataType::kFloat32, {Dim::named("n")})};
  g.outputs = {tensor_info("z", DataType::kFloat32, {Dim::named("n")})};
  g.nodes = {node("Add", "double_it", {"x", "x"}, {"y"}), node("Relu", "clip_it", {"y"}, {"z"})};
  auto session = runtime::Session::create(model_of(std::move(g)));
  EXPECT_TRUE(session.ok()) << session.status().to_string();
  return session.ok() ? std::move(session).value() : nullptr;
}

runtime::NamedValues feeds() { return {{"x", Value::from_tensor(Tensor::from_vector<float>({1, -2, 3}, {3}))}}; }

TEST(Profile, RecordsEveryNodeOfARunInOrder) {
  auto session = two_node_session();
  ASSERT_NE(session, nullptr);
  runtime::Profile profile;
  runtime::RunOptions options;
  options.profile = &profile;
  auto out = session->run(feeds(), options);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const auto v = (*out)[0].second.tensor.values<float>();
  EXPECT_EQ(std::vector<float>(v.begin(), v.end()), (std::vector<float>{2, 0, 6}));

  ASSERT_EQ(profile.entries.size(), 2u);
  EXPECT_EQ(profile.entries[0].op_type, "Add");
  EXPECT_EQ(profile.entries[0].node_name, "double_it");
  EXPECT_EQ(profile.entries[1].op_type, "Relu");
  EXPECT_EQ(profile.entries[1].node_name, "clip_it");
  for (const auto& e : profile.entries) {
    EXPECT_GE(e.ms, 0.0);
    EXPECT_EQ(e.depth, 0);
  }

  // Entries accumulate across runs until cleared.
  ASSERT_TRUE(session->run(feeds(), options).ok());
  EXPECT_EQ(profile.entries.size(), 4u);
  EXPECT_EQ(profile.entries[2].op_type, "Add");
  profile.clear();
  EXPECT_TRUE(profile.entries.empty());
}

TEST(Profile, NothingIsRecordedWithoutASink) {
  auto session = two_node_session();
  ASSERT_NE(session, nullptr);
  runtime::Profile profile;
  ASSERT_TRUE(session->run(feeds()).ok());
  ASSERT_TRUE(session->run(feeds(), runtime::RunOptions{}).ok());
  EXPECT_TRUE(profile.entries.empty());
}

TEST(Profile, SubgraphNodesAreOneLevelDeeperAndComeFirst) {
  auto then_g = std::make_shared<Graph>();
  then_g->outputs = {tensor_info("t_out", DataType::kFloat32, {})};
  then_g->nodes = {node("Add", "inner_add", {"x", "x"}, {"t_out"})};
  auto else_g = std::make_shared<Graph>();
  else_g->outputs = {tensor_info("e_out", DataType::kFloat32, {})};
  else_g->nodes = {node("Identity", "inner_identity", {"x"}, {"e_out"})};
  Graph g;
  g.inputs = {tensor_info("c", DataType::kBool, {}), tensor_info("x", DataType::kFloat32, {Dim::of(2)})};
  g.outputs = {tensor_info("y", DataType::kFloat32, {})};
  Node n = node("If", "branch", {"c"}, {"y"});
  n.attributes["then_branch"] = graph::GraphPtr(then_g);
  n.attributes["else_branch"] = graph::GraphPtr(else_g);
  g.nodes = {n};
  auto s = runtime::Session::create(model_of(std::move(g)));
  ASSERT_TRUE(s.ok()) << s.status().to_string();

  runtime::Profile profile;
  runtime::RunOptions options;
  options.profile = &profile;
  runtime::NamedValues in{{"c", Value::from_tensor(Tensor::scalar<bool>(true))},
                          {"x", Value::from_tensor(Tensor::from_vector<float>({1.5f, -2.0f}, {2}))}};
  ASSERT_TRUE((*s)->run(in, options).ok());
  ASSERT_EQ(profile.entries.size(), 2u);
  EXPECT_EQ(profile.entries[0].op_type, "Add");
  EXPECT_EQ(profile.entries[0].depth, 1);
  EXPECT_EQ(profile.entries[1].op_type, "If");
  EXPECT_EQ(profile.entries[1].depth, 0);
  EXPECT_GE(profile.entries[1].ms, profile.entries[0].ms);
}

}  // namespace
}  // namespace deskml
