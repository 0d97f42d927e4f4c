// Sequence and optional kernels: SequenceEmpty/Construct/Insert/At/Erase/Length,
// SplitToSequence, ConcatFromSequence, SequenceMap, Optional*.
#include <gtest/gtest.h>

#include "kernel_harness.hpp"
#include "runtime/session.hpp"

namespace deskml {
namespace {

using graph::AttributeValue;
using testing::make_node;

// Runs a node on arbitrary values (sequences, empty optionals) through the CPU registry.
Result<std::vector<Value>> run_values(const graph::Node& node, const std::vector<Value>& inputs, int threads = 1) {
  const auto& registry = kernels::cpu::cpu_registry();
  const auto* def = registry.find(node.op_type, node.domain, node.opset, [&](int i) {
    if (i < 0 || static_cast<size_t>(i) >= inputs.size()) return DataType::kUndefined;
    const Value& v = inputs[static_cast<size_t>(i)];
    return v.is_tensor() ? v.tensor.dtype() : v.sequence_dtype;
  });
  if (def == nullptr) return unsupported("no CPU kernel for " + node.op_type);
  auto kernel = def->factory(node);
  std::vector<const Value*> ptrs;
  for (const auto& v : inputs) ptrs.push_back(v.is_none() ? nullptr : &v);
  std::vector<Value> outputs(node.outputs.size());
  kernels::KernelContext ctx(node, ptrs, outputs, nullptr, threads);
  try {
    DESKML_RETURN_IF_ERROR(kernel->compute(ctx));
  } catch (const Error& e) {
    return e.status();
  }
  return outputs;
}

Value seq(std::vector<Tensor> items, DataType dt = DataType::kFloat32) {
  return Value::from_sequence(std::move(items), dt);
}
Value tensor(Tensor t) { return Value::from_tensor(std::move(t)); }
Tensor f32(std::vector<float> v, Shape s) { return Tensor::from_vector<float>(v, std::move(s)); }
Tensor i64(int64_t v) { return Tensor::scalar<int64_t>(v); }

template <typename T>
std::vector<T> vals(const Tensor& t) {
  auto s = t.values<T>();
  return {s.begin(), s.end()};
}

// Runs a node expected to succeed and returns its first output.
Value run_ok(const graph::Node& node, const std::vector<Value>& inputs, int threads = 1) {
  auto r = run_values(node, inputs, threads);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  if (!r.ok()) return {};
  return (*r)[0];
}

void expect_error(const graph::Node& node, const std::vector<Value>& inputs, const std::string& fragment) {
  auto r = run_values(node, inputs);
  ASSERT_FALSE(r.ok()) << node.op_type << " should have failed";
  EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().message();
}

Value three() {
  return seq({f32({1}, {1}), f32({2, 2}, {2}), f32({3, 3, 3}, {3})});
}

TEST(Sequence, EmptyHasTheRequestedType) {
  auto out = run_ok(make_node("SequenceEmpty", 0, 1, 17, {{"dtype", AttributeValue(int64_t{6})}}), {});
  ASSERT_TRUE(out.is_sequence());
  EXPECT_TRUE(out.sequence.empty());
  EXPECT_EQ(out.sequence_dtype, DataType::kInt32);
  auto def = run_ok(make_node("SequenceEmpty", 0, 1), {});
  EXPECT_EQ(def.sequence_dtype, DataType::kFloat32);
  expect_error(make_node("SequenceEmpty", 0, 1, 17, {{"dtype", AttributeValue(int64_t{99})}}), {}, "dtype");
}

TEST(Sequence, ConstructAndLength) {
  auto s = run_ok(make_node("SequenceConstruct", 2, 1), {tensor(f32({1}, {1})), tensor(f32({2, 3}, {2}))});
  ASSERT_TRUE(s.is_sequence());
  EXPECT_EQ(s.sequence.size(), 2u);
  EXPECT_EQ(s.sequence_dtype, DataType::kFloat32);
  auto n = run_ok(make_node("SequenceLength", 1, 1), {s});
  ASSERT_TRUE(n.is_tensor());
  EXPECT_EQ(n.tensor.dtype(), DataType::kInt64);
  EXPECT_EQ(n.tensor.rank(), 0);
  EXPECT_EQ(n.tensor.int_at(0), 2);
  expect_error(make_node("SequenceConstruct", 2, 1), {tensor(f32({1}, {1})), tensor(i64(1))}, "cannot join");
  expect_error(make_node("SequenceLength", 1, 1), {tensor(i64(1))}, "sequence");
  expect_error(make_node("SequenceConstruct", 1, 1), {three()}, "not a sequence");
}

TEST(Sequence, InsertAtBackFrontAndNegativePositions) {
  const Tensor t = f32({9}, {1});
  auto back = run_ok(make_node("SequenceInsert", 2, 1), {three(), tensor(t)});
  ASSERT_EQ(back.sequence.size(), 4u);
  EXPECT_EQ(vals<float>(back.sequence[3]), std::vector<float>{9});
  auto front = run_ok(make_node("SequenceInsert", 3, 1), {three(), tensor(t), tensor(i64(0))});
  EXPECT_EQ(vals<float>(front.sequence[0]), std::vector<float>{9});
  auto neg = run_ok(make_node("SequenceInsert", 3, 1), {three(), tensor(t), tensor(i64(-1))});
  EXPECT_EQ(vals<float>(neg.sequence[2]), std::vector<float>{9});
  EXPECT_EQ(neg.sequence[3].numel(), 3);
  auto at_end = run_ok(make_node("SequenceInsert", 3, 1),
                       {three(), tensor(t), tensor(Tensor::from_vector<int32_t>({3}, {}))});
  EXPECT_EQ(vals<float>(at_end.sequence[3]), std::vector<float>{9});
  // An empty sequence without a known type takes the tensor's.
  auto into_empty = run_ok(make_node("SequenceInsert", 2, 1), {seq({}, DataType::kUndefined), tensor(i64(4))});
  EXPECT_EQ(into_empty.sequence_dtype, DataType::kInt64);

  expect_error(make_node("SequenceInsert", 3, 1), {three(), tensor(t), tensor(i64(4))}, "out of range");
  expect_error(make_node("SequenceInsert", 3, 1), {three(), tensor(t), tensor(i64(-4))}, "out of range");
  expect_error(make_node("SequenceInsert", 2, 1), {three(), tensor(i64(1))}, "cannot join");
  expect_error(make_node("SequenceInsert", 2, 1), {seq({}, DataType::kInt32), tensor(t)}, "cannot join");
  expect_error(make_node("SequenceInsert", 3, 1), {three(), tensor(t), tensor(f32({0}, {}))}, "int32 or int64");
  expect_error(make_node("SequenceInsert", 3, 1),
               {three(), tensor(t), tensor(Tensor::from_vector<int64_t>({0, 1}, {2}))}, "scalar");
}

TEST(Sequence, AtAndErase) {
  auto at = run_ok(make_node("SequenceAt", 2, 1), {three(), tensor(i64(-1))});
  ASSERT_TRUE(at.is_tensor());
  EXPECT_EQ(vals<float>(at.tensor), (std::vector<float>{3, 3, 3}));
  expect_error(make_node("SequenceAt", 2, 1), {three(), tensor(i64(3))}, "out of range");
  expect_error(make_node("SequenceAt", 2, 1), {three(), tensor(i64(-4))}, "out of range");
  expect_error(make_node("SequenceAt", 2, 1), {seq({}), tensor(i64(0))}, "empty");

  auto last = run_ok(make_node("SequenceErase", 1, 1), {three()});
  ASSERT_EQ(last.sequence.size(), 2u);
  EXPECT_EQ(last.sequence[1].numel(), 2);
  auto first = run_ok(make_node("SequenceErase", 2, 1), {three(), tensor(i64(-3))});
  ASSERT_EQ(first.sequence.size(), 2u);
  EXPECT_EQ(first.sequence[0].numel(), 2);
  expect_error(make_node("SequenceErase", 2, 1), {three(), tensor(i64(3))}, "out of range");
  expect_error(make_node("SequenceErase", 1, 1), {seq({})}, "empty");
}

TEST(Sequence, SplitWithoutSplitInput) {
  // [2, 3] along axis 1 -> three [2, 1] pieces, or [2] with keepdims = 0.
  const Tensor x = f32({1, 2, 3, 4, 5, 6}, {2, 3});
  auto kept = run_ok(make_node("SplitToSequence", 1, 1, 17, {{"axis", AttributeValue(int64_t{1})}}), {tensor(x)});
  ASSERT_EQ(kept.sequence.size(), 3u);
  EXPECT_EQ(kept.sequence[1].shape(), (Shape{2, 1}));
  EXPECT_EQ(vals<float>(kept.sequence[1]), (std::vector<float>{2, 5}));
  auto squeezed = run_ok(make_node("SplitToSequence", 1, 1, 17,
                                   {{"axis", AttributeValue(int64_t{-1})}, {"keepdims", AttributeValue(int64_t{0})}}),
                         {tensor(x)});
  ASSERT_EQ(squeezed.sequence.size(), 3u);
  EXPECT_EQ(squeezed.sequence[2].shape(), (Shape{2}));
  EXPECT_EQ(vals<float>(squeezed.sequence[2]), (std::vector<float>{3, 6}));
  // Along axis 0 the pieces are views of contiguous rows.
  auto rows = run_ok(make_node("SplitToSequence", 1, 1, 17, {{"keepdims", AttributeValue(int64_t{0})}}), {tensor(x)});
  ASSERT_EQ(rows.sequence.size(), 2u);
  EXPECT_EQ(rows.sequence[1].shape(), (Shape{3}));
  EXPECT_EQ(vals<float>(rows.sequence[1]), (std::vector<float>{4, 5, 6}));
  expect_error(make_node("SplitToSequence", 1, 1), {tensor(i64(3))}, "scalar");
  expect_error(make_node("SplitToSequence", 1, 1, 17, {{"axis", AttributeValue(int64_t{2})}}), {tensor(x)}, "");
}

TEST(Sequence, SplitWithScalarAndListSplits) {
  std::vector<float> data(10);
  for (int i = 0; i < 10; ++i) data[static_cast<size_t>(i)] = static_cast<float>(i);
  const Tensor x = f32(data, {2, 5});
  // Scalar 2 along axis 1: pieces of 2, 2, 1; keepdims is ignored.
  auto chunks = run_ok(make_node("SplitToSequence", 2, 1, 17,
                                 {{"axis", AttributeValue(int64_t{1})}, {"keepdims", AttributeValue(int64_t{0})}}),
                       {tensor(x), tensor(i64(2))});
  ASSERT_EQ(chunks.sequence.size(), 3u);
  EXPECT_EQ(chunks.sequence[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(vals<float>(chunks.sequence[0]), (std::vector<float>{0, 1, 5, 6}));
  EXPECT_EQ(chunks.sequence[2].shape(), (Shape{2, 1}));
  EXPECT_EQ(vals<float>(chunks.sequence[2]), (std::vector<float>{4, 9}));
  // A list along axis 1.
  auto parts = run_ok(make_node("SplitToSequence", 2, 1, 17, {{"axis", AttributeValue(int64_t{1})}}),
                      {tensor(x), tensor(Tensor::from_vector<int32_t>({1, 4}, {2}))});
  ASSERT_EQ(parts.sequence.size(), 2u);
  EXPECT_EQ(vals<float>(parts.sequence[1]), (std::vector<float>{1, 2, 3, 4, 6, 7, 8, 9}));
  expect_error(make_node("SplitToSequence", 2, 1, 17, {{"axis", AttributeValue(int64_t{1})}}),
               {tensor(x), tensor(Tensor::from_vector<int64_t>({1, 3}, {2}))}, "sum to 4");
  expect_error(make_node("SplitToSequence", 2, 1), {tensor(x), tensor(i64(0))}, "positive");
  expect_error(make_node("SplitToSequence", 2, 1), {tensor(x), tensor(f32({1}, {}))}, "int32 or int64");
}

TEST(Sequence, SplitAndConcatStrings) {
  const Tensor x = Tensor::from_vector<std::string>({"a", "b", "c", "d"}, {2, 2});
  auto cols = run_ok(make_node("SplitToSequence", 1, 1, 17, {{"axis", AttributeValue(int64_t{1})}}), {tensor(x)});
  ASSERT_EQ(cols.sequence.size(), 2u);
  EXPECT_EQ(vals<std::string>(cols.sequence[1]), (std::vector<std::string>{"b", "d"}));
  auto back = run_ok(make_node("ConcatFromSequence", 1, 1, 17, {{"axis", AttributeValue(int64_t{1})}}), {cols});
  ASSERT_TRUE(back.is_tensor());
  EXPECT_EQ(back.tensor.shape(), (Shape{2, 2}));
  EXPECT_EQ(vals<std::string>(back.tensor), (std::vector<std::string>{"a", "b", "c", "d"}));
}

TEST(Sequence, ConcatAndStack) {
  const Value s = seq({f32({1, 2, 3, 4}, {2, 2}), f32({5, 6}, {2, 1})});
  auto cat = run_ok(make_node("ConcatFromSequence", 1, 1, 17, {{"axis", AttributeValue(int64_t{-1})}}), {s});
  EXPECT_EQ(cat.tensor.shape(), (Shape{2, 3}));
  EXPECT_EQ(vals<float>(cat.tensor), (std::vector<float>{1, 2, 5, 3, 4, 6}));

  const Value same = seq({f32({1, 2}, {2}), f32({3, 4}, {2}), f32({5, 6}, {2})});
  auto stack0 = run_ok(make_node("ConcatFromSequence", 1, 1, 17,
                                 {{"axis", AttributeValue(int64_t{0})}, {"new_axis", AttributeValue(int64_t{1})}}),
                       {same});
  EXPECT_EQ(stack0.tensor.shape(), (Shape{3, 2}));
  EXPECT_EQ(vals<float>(stack0.tensor), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  auto stack_last = run_ok(make_node("ConcatFromSequence", 1, 1, 17,
                                     {{"axis", AttributeValue(int64_t{-1})}, {"new_axis", AttributeValue(int64_t{1})}}),
                           {same});
  EXPECT_EQ(stack_last.tensor.shape(), (Shape{2, 3}));
  EXPECT_EQ(vals<float>(stack_last.tensor), (std::vector<float>{1, 3, 5, 2, 4, 6}));
  // A single element is reshaped, not copied.
  auto one = run_ok(make_node("ConcatFromSequence", 1, 1, 17,
                              {{"axis", AttributeValue(int64_t{1})}, {"new_axis", AttributeValue(int64_t{1})}}),
                    {seq({f32({1, 2}, {2})})});
  EXPECT_EQ(one.tensor.shape(), (Shape{2, 1}));

  expect_error(make_node("ConcatFromSequence", 1, 1, 17, {{"axis", AttributeValue(int64_t{0})}}), {s}, "cannot concatenate");
  expect_error(make_node("ConcatFromSequence", 1, 1, 17, {{"axis", AttributeValue(int64_t{0})}}), {seq({})}, "empty");
  expect_error(make_node("ConcatFromSequence", 1, 1), {same}, "axis");
  expect_error(make_node("ConcatFromSequence", 1, 1, 17, {{"axis", AttributeValue(int64_t{2})}}), {same}, "");
  expect_error(make_node("ConcatFromSequence", 1, 1, 17, {{"axis", AttributeValue(int64_t{0})}}),
               {seq({f32({1}, {1}), Tensor::from_vector<int64_t>({1}, {1})})}, "different types");
  expect_error(make_node("ConcatFromSequence", 1, 1, 17, {{"axis", AttributeValue(int64_t{0})}}),
               {seq({f32({1}, {}), f32({2}, {})})}, "scalars");
}

TEST(Sequence, LargeSplitAndConcatRoundTripOnManyThreads) {
  // [64, 3000] split into uneven column blocks and concatenated back, with parallel copies.
  const int64_t rows = 64, cols = 3000;
  std::vector<float> data(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i % 9973);
  const Tensor x = f32(data, {rows, cols});
  auto parts = run_ok(make_node("SplitToSequence", 2, 1, 17, {{"axis", AttributeValue(int64_t{1})}}),
                      {tensor(x), tensor(Tensor::from_vector<int64_t>({1000, 1, 1999}, {3}))}, 4);
  ASSERT_EQ(parts.sequence.size(), 3u);
  EXPECT_EQ(parts.sequence[2].shape(), (Shape{rows, 1999}));
  EXPECT_EQ(parts.sequence[1].data<float>()[5], data[5 * cols + 1000]);
  auto back = run_ok(make_node("ConcatFromSequence", 1, 1, 17, {{"axis", AttributeValue(int64_t{1})}}), {parts}, 4);
  ASSERT_EQ(back.tensor.shape(), (Shape{rows, cols}));
  EXPECT_EQ(vals<float>(back.tensor), data);
  // Stacking the rows back (new_axis) after splitting them off with keepdims = 0.
  auto rows_seq = run_ok(make_node("SplitToSequence", 1, 1, 17, {{"keepdims", AttributeValue(int64_t{0})}}),
                         {tensor(x)}, 4);
  auto stacked = run_ok(make_node("ConcatFromSequence", 1, 1, 17,
                                  {{"axis", AttributeValue(int64_t{1})}, {"new_axis", AttributeValue(int64_t{1})}}),
                        {rows_seq}, 4);
  ASSERT_EQ(stacked.tensor.shape(), (Shape{cols, rows}));
  EXPECT_EQ(stacked.tensor.data<float>()[7 * rows + 3], data[3 * cols + 7]);
}

TEST(Optional, ConstructTestAndGet) {
  const Tensor t = f32({1, 2}, {2});
  auto some = run_ok(make_node("Optional", 1, 1, 15), {tensor(t)});
  ASSERT_TRUE(some.is_tensor());
  graph::Node typed = make_node("Optional", 0, 1, 15, {{"type", AttributeValue(int64_t{1})}});
  auto none = run_ok(typed, {});
  EXPECT_TRUE(none.is_none());
  expect_error(make_node("Optional", 0, 1, 15), {}, "type");

  auto has = run_ok(make_node("OptionalHasElement", 1, 1, 15), {some});
  EXPECT_EQ(has.tensor.dtype(), DataType::kBool);
  EXPECT_EQ(has.tensor.rank(), 0);
  EXPECT_TRUE(has.tensor.data<bool>()[0]);
  auto hasnt = run_ok(make_node("OptionalHasElement", 1, 1, 15), {Value{}});
  EXPECT_FALSE(hasnt.tensor.data<bool>()[0]);
  auto got = run_ok(make_node("OptionalGetElement", 1, 1, 15), {some});
  EXPECT_EQ(vals<float>(got.tensor), (std::vector<float>{1, 2}));
  expect_error(make_node("OptionalGetElement", 1, 1, 15), {Value{}}, "empty");

  // Sequences pass through too.
  auto seq_opt = run_ok(make_node("Optional", 1, 1, 15), {three()});
  ASSERT_TRUE(seq_opt.is_sequence());
  auto seq_back = run_ok(make_node("OptionalGetElement", 1, 1, 18), {seq_opt});
  EXPECT_EQ(seq_back.sequence.size(), 3u);
  auto seq_has = run_ok(make_node("OptionalHasElement", 1, 1, 18), {seq({})});
  EXPECT_TRUE(seq_has.tensor.data<bool>()[0]);
}

// --- SequenceMap through the executor, with bodies made of sequence ops only ----------

graph::ValueInfo info(const std::string& name, graph::ValueType::Kind kind, DataType dt) {
  graph::ValueInfo vi;
  vi.name = name;
  vi.type.kind = kind;
  vi.type.dtype = dt;
  return vi;
}

graph::Node node(const std::string& op, std::vector<std::string> in, std::vector<std::string> out,
                 std::map<std::string, AttributeValue> attrs = {}) {
  graph::Node n;
  n.op_type = op;
  n.opset = 17;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  n.attributes = std::move(attrs);
  return n;
}

TEST(SequenceMap, RunsTheBodyPerElementWithTensorsBroadcast) {
  using Kind = graph::ValueType::Kind;
  // body(x, y) = ConcatFromSequence(SequenceConstruct(x, y), axis 0), plus SequenceLength(SplitToSequence(x)).
  auto body = std::make_shared<graph::Graph>();
  body->inputs = {info("x", Kind::kTensor, DataType::kFloat32), info("y", Kind::kTensor, DataType::kFloat32)};
  body->outputs = {info("cat", Kind::kTensor, DataType::kFloat32), info("len", Kind::kTensor, DataType::kInt64)};
  body->nodes = {node("SequenceConstruct", {"x", "y"}, {"pair"}),
                 node("ConcatFromSequence", {"pair"}, {"cat"}, {{"axis", AttributeValue(int64_t{0})}}),
                 node("SplitToSequence", {"x"}, {"pieces"}), node("SequenceLength", {"pieces"}, {"len"})};

  graph::Model m;
  m.opsets[""] = 17;
  m.graph.inputs = {info("s", Kind::kSequence, DataType::kFloat32), info("t", Kind::kTensor, DataType::kFloat32)};
  m.graph.outputs = {info("cats", Kind::kSequence, DataType::kFloat32),
                     info("lens", Kind::kSequence, DataType::kInt64)};
  m.graph.nodes = {node("SequenceMap", {"s", "t"}, {"cats", "lens"},
                        {{"body", AttributeValue(graph::GraphPtr(body))}})};
  auto session = runtime::Session::create(std::move(m));
  ASSERT_TRUE(session.ok()) << session.status().to_string();

  runtime::NamedValues feeds = {{"s", three()}, {"t", tensor(f32({7}, {1}))}};
  auto out = (*session)->run(feeds);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const Value& cats = (*out)[0].second;
  const Value& lens = (*out)[1].second;
  ASSERT_TRUE(cats.is_sequence());
  ASSERT_EQ(cats.sequence.size(), 3u);
  EXPECT_EQ(vals<float>(cats.sequence[1]), (std::vector<float>{2, 2, 7}));
  ASSERT_EQ(lens.sequence.size(), 3u);
  EXPECT_EQ(lens.sequence[2].int_at(0), 3);

  // An empty input sequence maps to empty outputs typed by the body.
  runtime::NamedValues empty = {{"s", seq({})}, {"t", tensor(f32({7}, {1}))}};
  auto none = (*session)->run(empty);
  ASSERT_TRUE(none.ok()) << none.status().to_string();
  EXPECT_TRUE((*none)[1].second.sequence.empty());
  EXPECT_EQ((*none)[1].second.sequence_dtype, DataType::kInt64);

  // Sequences of different lengths are rejected.
  graph::Model m2;
  m2.opsets[""] = 17;
  m2.graph.inputs = {info("a", Kind::kSequence, DataType::kFloat32), info("b", Kind::kSequence, DataType::kFloat32)};
  m2.graph.outputs = {info("cats", Kind::kSequence, DataType::kFloat32),
                      info("lens", Kind::kSequence, DataType::kInt64)};
  m2.graph.nodes = {node("SequenceMap", {"a", "b"}, {"cats", "lens"},
                         {{"body", AttributeValue(graph::GraphPtr(body))}})};
  auto s2 = runtime::Session::create(std::move(m2));
  ASSERT_TRUE(s2.ok()) << s2.status().to_string();
  auto bad = (*s2)->run(runtime::NamedValues{{"a", three()}, {"b", seq({f32({1}, {1})})}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("elements"), std::string::npos) << bad.status().message();
  auto good = (*s2)->run(runtime::NamedValues{{"a", three()}, {"b", three()}});
  ASSERT_TRUE(good.ok()) << good.status().to_string();
  EXPECT_EQ(vals<float>((*good)[0].second.sequence[0]), (std::vector<float>{1, 1}));
}

}  // namespace
}  // namespace deskml
