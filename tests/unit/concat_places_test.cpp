// Zero-copy Concat (runtime/concat_places.hpp): producers write straight into
// the Concat's output when it is one contiguous run per input, and anything
// else still gets the right answer by copying.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "kernels/cpu/cpu_registry.hpp"
#include "runtime/execution_plan.hpp"

namespace deskml {
namespace {

using graph::Graph;
using graph::Node;

// test.Probe: y = x + `add`, written through allocate_output; records where.
std::vector<const float*>& probe_outputs() {
  static std::vector<const float*> out;
  return out;
}
std::atomic<bool> probe_records{true};  // off while several threads run

const kernels::KernelRegistry& probe_registry() {
  static const kernels::KernelRegistry r = [] {
    kernels::KernelRegistry reg("test");
    reg.add(
        "Probe", 1, INT_MAX, {DataType::kFloat32},
        [](kernels::KernelContext& ctx) {
          const Tensor& x = ctx.required_input(0);
          const auto add = static_cast<float>(ctx.node().attr_int("add", 0));
          Tensor& y = ctx.allocate_output(0, DataType::kFloat32, x.shape());
          for (int64_t i = 0; i < x.numel(); ++i) y.data<float>()[i] = x.data<float>()[i] + add;
          if (probe_records) probe_outputs().push_back(y.data<float>());
          return Status::Ok();
        },
        "test");
    return reg;
  }();
  return r;
}

Node probe(const std::string& in, const std::string& out, int64_t add) {
  Node n;
  n.op_type = "Probe";
  n.domain = "test";
  n.opset = 1;
  n.inputs = {in};
  n.outputs = {out};
  n.attributes["add"] = add;
  return n;
}

Node op(const std::string& type, std::vector<std::string> in, const std::string& out, int64_t axis = 1) {
  Node n;
  n.op_type = type;
  n.opset = 17;
  n.inputs = std::move(in);
  n.outputs = {out};
  if (type == "Concat") n.attributes["axis"] = axis;
  return n;
}

Graph graph_of(std::vector<Node> nodes, std::vector<std::string> outputs) {
  Graph g;
  graph::ValueInfo x;
  x.name = "x";
  x.type.dtype = DataType::kFloat32;
  g.inputs = {x};
  for (auto& name : outputs) {
    graph::ValueInfo o;
    o.name = name;
    o.type.dtype = DataType::kFloat32;
    g.outputs.push_back(o);
  }
  g.nodes = std::move(nodes);
  return g;
}

Tensor iota(Shape shape) {
  Tensor t(DataType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(i);
  return t;
}

class ConcatPlaces : public ::testing::Test {
 protected:
  void build(Graph g) {
    graph_ = std::move(g);  // the plan points into it
    auto plan = runtime::ExecutionPlan::build(graph_, {&probe_registry(), &kernels::cpu::cpu_registry()});
    ASSERT_TRUE(plan.ok()) << plan.status().to_string();
    plan_ = std::move(plan).value();
  }
  std::vector<Tensor> run(const Tensor& x) {
    probe_outputs().clear();
    std::vector<Value> in;
    in.push_back(Value::from_tensor(x));
    auto out = plan_->run(std::move(in), nullptr, runtime::RunControl{});
    EXPECT_TRUE(out.ok()) << out.status().to_string();
    std::vector<Tensor> tensors;
    if (out.ok()) {
      for (auto& v : *out) tensors.push_back(v.tensor);
    }
    return tensors;
  }
  // Concat(x + 1, x + 2) along `axis`, computed directly.
  static std::vector<float> expected(const Tensor& x, int64_t axis, std::vector<int64_t> adds = {1, 2}) {
    const Shape& s = x.shape();
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= s[static_cast<size_t>(d)];
    for (size_t d = static_cast<size_t>(axis); d < s.size(); ++d) inner *= s[d];
    std::vector<float> out;
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t a : adds) {
        for (int64_t i = 0; i < inner; ++i) out.push_back(x.data<float>()[o * inner + i] + static_cast<float>(a));
      }
    }
    return out;
  }
  static std::vector<float> values(const Tensor& t) {
    auto v = t.values<float>();
    return {v.begin(), v.end()};
  }

  Graph graph_;
  std::unique_ptr<runtime::ExecutionPlan> plan_;
};

TEST_F(ConcatPlaces, ProducersWriteIntoTheOutputFromTheSecondRun) {
  build(graph_of({probe("x", "a", 1), probe("x", "b", 2), op("Concat", {"a", "b"}, "y")}, {"y"}));
  const Tensor x = iota({1, 2, 3});
  // The first run learns the Concat's input shapes and copies.
  auto first = run(x);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].shape(), (Shape{1, 4, 3}));
  EXPECT_EQ(values(first[0]), expected(x, 1));
  EXPECT_NE(probe_outputs()[0], first[0].data<float>());
  for (int i = 0; i < 2; ++i) {
    auto y = run(x);
    ASSERT_EQ(y.size(), 1u);
    EXPECT_EQ(values(y[0]), expected(x, 1));
    ASSERT_EQ(probe_outputs().size(), 2u);
    EXPECT_EQ(probe_outputs()[0], y[0].data<float>());
    EXPECT_EQ(probe_outputs()[1], y[0].data<float>() + 6);
  }
}

TEST_F(ConcatPlaces, ABatchAboveOneOrANewShapeCopies) {
  build(graph_of({probe("x", "a", 1), probe("x", "b", 2), op("Concat", {"a", "b"}, "y")}, {"y"}));
  const Tensor batch2 = iota({2, 2, 3});
  for (int i = 0; i < 2; ++i) {
    auto y = run(batch2);  // inputs are not contiguous runs of the output
    EXPECT_EQ(values(y[0]), expected(batch2, 1));
    EXPECT_NE(probe_outputs()[0], y[0].data<float>());
  }
  run(iota({1, 2, 3}));
  auto y1 = run(iota({1, 2, 3}));
  EXPECT_EQ(probe_outputs()[0], y1[0].data<float>());
  run(batch2);  // cannot be placed: the batch-1 places stay
  y1 = run(iota({1, 2, 3}));
  EXPECT_EQ(probe_outputs()[0], y1[0].data<float>());
  const Tensor wider = iota({1, 2, 5});  // differs from the latest run: copied
  auto y = run(wider);
  EXPECT_EQ(values(y[0]), expected(wider, 1));
  EXPECT_NE(probe_outputs()[0], y[0].data<float>());
  y = run(wider);  // learned
  EXPECT_EQ(values(y[0]), expected(wider, 1));
  EXPECT_EQ(probe_outputs()[0], y[0].data<float>());
}

TEST_F(ConcatPlaces, AnAxisWithOnesBeforeIt) {
  build(graph_of({probe("x", "a", 1), probe("x", "b", 2), op("Concat", {"a", "b"}, "y", -1)}, {"y"}));
  const Tensor x = iota({1, 1, 4});
  run(x);
  auto y = run(x);
  EXPECT_EQ(y[0].shape(), (Shape{1, 1, 8}));
  EXPECT_EQ(values(y[0]), expected(x, 2));
  EXPECT_EQ(probe_outputs()[1], y[0].data<float>() + 4);
}

TEST_F(ConcatPlaces, ValuesReadElsewhereKeepTheirOwnBuffers) {
  // `a` is read again after the Concat (Neg, in place where it may), `b` is a
  // graph output, `c` is concatenated twice: only `d` gets a place.
  build(graph_of({probe("x", "a", 1), probe("x", "b", 2), probe("x", "c", 3), probe("x", "d", 4),
                  op("Concat", {"a", "b", "c", "c", "d"}, "y"), op("Neg", {"a"}, "z")},
                 {"y", "z", "b"}));
  const Tensor x = iota({1, 2, 2});
  for (int i = 0; i < 3; ++i) {
    auto out = run(x);
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(values(out[0]), expected(x, 1, {1, 2, 3, 3, 4}));
    std::vector<float> neg = expected(x, 1, {1});
    for (float& v : neg) v = -v;
    EXPECT_EQ(values(out[1]), neg);
    EXPECT_EQ(values(out[2]), expected(x, 1, {2}));
    ASSERT_EQ(probe_outputs().size(), 4u);
    for (int k = 0; k < 3; ++k) EXPECT_NE(probe_outputs()[static_cast<size_t>(k)], out[0].data<float>() + 4 * k);
    if (i > 0) {
      EXPECT_EQ(probe_outputs()[3], out[0].data<float>() + 16);
    }
  }
}

TEST_F(ConcatPlaces, AConcatInsideAConcatIsPlacedToo) {
  build(graph_of({probe("x", "a", 1), probe("x", "b", 2), op("Concat", {"a", "b"}, "ab"), probe("x", "c", 3),
                  op("Concat", {"ab", "c"}, "y")},
                 {"y"}));
  const Tensor x = iota({1, 3});
  run(x);
  auto y = run(x);
  EXPECT_EQ(values(y[0]), expected(x, 1, {1, 2, 3}));
  ASSERT_EQ(probe_outputs().size(), 3u);
  EXPECT_EQ(probe_outputs()[0], y[0].data<float>());
  EXPECT_EQ(probe_outputs()[1], y[0].data<float>() + 3);
  EXPECT_EQ(probe_outputs()[2], y[0].data<float>() + 6);
}

TEST_F(ConcatPlaces, ConcurrentRunsOfOnePlanWithDifferentShapes) {
  build(graph_of({probe("x", "a", 1), probe("x", "b", 2), op("Concat", {"a", "b"}, "y")}, {"y"}));
  probe_records = false;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const Tensor x = iota({1, 2, static_cast<int64_t>(3 + t % 2)});
      const std::vector<float> want = expected(x, 1);
      for (int i = 0; i < 200; ++i) {
        std::vector<Value> in;
        in.push_back(Value::from_tensor(x));
        auto out = plan_->run(std::move(in), nullptr, runtime::RunControl{});
        if (!out.ok() || values((*out)[0].tensor) != want) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  probe_records = true;
  EXPECT_EQ(wrong.load(), 0);
}

TEST(TensorView, SharesStorageAndChecksItsRange) {
  Tensor t = iota({2, 3});
  Tensor v = t.view(2, {2, 2});
  EXPECT_EQ(v.shape(), (Shape{2, 2}));
  EXPECT_EQ(v.data<float>(), t.data<float>() + 2);
  EXPECT_FALSE(t.sole_owner());
  EXPECT_THROW(t.view(3, {4}), Error);
  EXPECT_THROW(t.view(-1, {1}), Error);
  EXPECT_EQ(t.view(6, {0}).numel(), 0);
}

}  // namespace
}  // namespace deskml
