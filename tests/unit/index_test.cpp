// Unit tests for the index kernel family (index*.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "kernel_harness.hpp"

namespace deskml {
namespace {

using testing::make_node;
using testing::run_node;
using I64s = std::vector<int64_t>;

template <typename T>
std::vector<T> vals(const Tensor& t) {
  auto s = t.values<T>();
  return {s.begin(), s.end()};
}

Tensor iota_f(Shape shape) {
  Tensor t(DataType::kFloat32, shape);
  std::iota(t.data<float>(), t.data<float>() + t.numel(), 0.0f);
  return t;
}

Tensor i64(I64s v, Shape shape = {-1}) {
  if (shape == Shape{-1}) shape = {static_cast<int64_t>(v.size())};
  return Tensor::from_vector<int64_t>(v, shape);
}

std::vector<Tensor> run_ok(const graph::Node& node, const std::vector<Tensor>& inputs, int threads = 1) {
  auto r = run_node(node, inputs, threads);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? *r : std::vector<Tensor>{};
}

Status run_status(const graph::Node& node, const std::vector<Tensor>& inputs) {
  auto r = run_node(node, inputs);
  return r.ok() ? Status::Ok() : r.status();
}

TEST(IndexKernels, GatherAxesAndNegativeIndices) {
  const Tensor x = iota_f({3, 4});
  auto out = run_ok(make_node("Gather", 2, 1, 13), {x, i64({2, -3}, {2, 1})});
  EXPECT_EQ(out[0].shape(), (Shape{2, 1, 4}));
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{8, 9, 10, 11, 0, 1, 2, 3}));
  out = run_ok(make_node("Gather", 2, 1, 13, {{"axis", int64_t{1}}}),
               {x, Tensor::from_vector<int32_t>({3, 0}, {2})});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{3, 0, 7, 4, 11, 8}));
  out = run_ok(make_node("Gather", 2, 1, 13, {{"axis", int64_t{-1}}}), {x, Tensor::scalar<int64_t>(-1)});
  EXPECT_EQ(out[0].shape(), (Shape{3}));
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{3, 7, 11}));
  const Tensor s = Tensor::from_vector<std::string>({"a", "b", "c"}, {3});
  EXPECT_EQ(vals<std::string>(run_ok(make_node("Gather", 2, 1, 13), {s, i64({2, 2, 0})})[0]),
            (std::vector<std::string>{"c", "c", "a"}));
  auto st = run_status(make_node("Gather", 2, 1, 13), {x, i64({3})});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("out of range"), std::string::npos) << st.message();
  EXPECT_FALSE(run_status(make_node("Gather", 2, 1, 13), {x, i64({-4})}).ok());
  EXPECT_FALSE(run_status(make_node("Gather", 2, 1, 13, {{"axis", int64_t{2}}}), {x, i64({0})}).ok());
  EXPECT_FALSE(run_status(make_node("Gather", 2, 1, 13), {x, iota_f({1})}).ok());
}

TEST(IndexKernels, GatherElementsAndNd) {
  const Tensor x = iota_f({2, 3});
  auto out = run_ok(make_node("GatherElements", 2, 1, 13, {{"axis", int64_t{1}}}), {x, i64({2, -3, 0, 1}, {2, 2})});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{2, 0, 3, 4}));
  out = run_ok(make_node("GatherElements", 2, 1, 13), {x, i64({1, 0}, {1, 2})});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{3, 1}));
  EXPECT_FALSE(run_status(make_node("GatherElements", 2, 1, 13), {x, i64({2}, {1, 1})}).ok());
  EXPECT_FALSE(run_status(make_node("GatherElements", 2, 1, 13), {x, i64({0, 0, 0, 0}, {1, 4})}).ok());
  EXPECT_FALSE(run_status(make_node("GatherElements", 2, 1, 13), {x, i64({0})}).ok());

  const Tensor d = iota_f({2, 2, 2});
  out = run_ok(make_node("GatherND", 2, 1, 13), {d, i64({0, 1, 1, 0}, {2, 2})});
  EXPECT_EQ(out[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{2, 3, 4, 5}));
  out = run_ok(make_node("GatherND", 2, 1, 13, {{"batch_dims", int64_t{1}}}), {d, i64({1, -1}, {2, 1})});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{2, 3, 6, 7}));
  out = run_ok(make_node("GatherND", 2, 1, 13), {d, i64({1, 0, 1}, {1, 3})});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{5}));
  EXPECT_FALSE(run_status(make_node("GatherND", 2, 1, 13), {d, i64({2, 0}, {1, 2})}).ok());
  EXPECT_FALSE(run_status(make_node("GatherND", 2, 1, 13), {d, i64({0, 0, 0, 0}, {1, 4})}).ok());
  EXPECT_FALSE(run_status(make_node("GatherND", 2, 1, 13, {{"batch_dims", int64_t{1}}}), {d, i64({0, 0, 0}, {3, 1})})
                   .ok());
}

TEST(IndexKernels, ScatterElementsReductions) {
  const Tensor x = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2});
  const Tensor idx = i64({1, 1, -2, 0}, {2, 2});
  const Tensor upd = Tensor::from_vector<float>({10, 20, 30, 40}, {2, 2});
  auto run = [&](const std::string& red, int opset) {
    return vals<float>(
        run_ok(make_node("ScatterElements", 3, 1, opset, {{"axis", int64_t{1}}, {"reduction", red}}), {x, idx, upd})[0]);
  };
  EXPECT_EQ(run("none", 16), (std::vector<float>{1, 20, 40, 4}));
  EXPECT_EQ(run("add", 16), (std::vector<float>{1, 32, 73, 4}));
  EXPECT_EQ(run("mul", 16), (std::vector<float>{1, 400, 3600, 4}));
  EXPECT_EQ(run("max", 18), (std::vector<float>{1, 20, 40, 4}));
  EXPECT_EQ(run("min", 18), (std::vector<float>{1, 2, 3, 4}));
  auto out = run_ok(make_node("Scatter", 3, 1, 10), {x, i64({1, 0}, {1, 2}), Tensor::from_vector<float>({7, 8}, {1, 2})});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{1, 8, 7, 4}));
  const Tensor s = Tensor::from_vector<std::string>({"a", "b"}, {2});
  out = run_ok(make_node("ScatterElements", 3, 1, 13), {s, i64({1}), Tensor::from_vector<std::string>({"z"}, {1})});
  EXPECT_EQ(vals<std::string>(out[0]), (std::vector<std::string>{"a", "z"}));
  EXPECT_FALSE(run_status(make_node("ScatterElements", 3, 1, 16, {{"reduction", std::string("add")}}),
                          {s, i64({1}), Tensor::from_vector<std::string>({"z"}, {1})})
                   .ok());
  EXPECT_FALSE(run_status(make_node("ScatterElements", 3, 1, 13), {x, i64({2}, {1, 1}), iota_f({1, 1})}).ok());
  EXPECT_FALSE(run_status(make_node("ScatterElements", 3, 1, 13), {x, i64({0}, {1, 1}), iota_f({1, 2})}).ok());
  const Tensor h = Tensor::from_vector<Float16>({Float16(1.0f), Float16(2.0f)}, {2});
  out = run_ok(make_node("ScatterElements", 3, 1, 16, {{"reduction", std::string("add")}}),
               {h, i64({0, 0}), Tensor::from_vector<Float16>({Float16(0.5f), Float16(0.25f)}, {2})});
  EXPECT_EQ(static_cast<float>(out[0].data<Float16>()[0]), 1.75f);
}

TEST(IndexKernels, ScatterNd) {
  const Tensor x = iota_f({2, 2, 2});
  auto out = run_ok(make_node("ScatterND", 3, 1, 13),
                    {x, i64({1, 0}, {2, 1}), Tensor::from_vector<float>({10, 11, 12, 13, 20, 21, 22, 23}, {2, 2, 2})});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{20, 21, 22, 23, 10, 11, 12, 13}));
  out = run_ok(make_node("ScatterND", 3, 1, 16, {{"reduction", std::string("mul")}}),
               {x, i64({1, 1, 1, 1, 1, 1}, {2, 3}), Tensor::from_vector<float>({2, 3}, {2})});
  EXPECT_EQ(out[0].data<float>()[7], 42.0f);
  out = run_ok(make_node("ScatterND", 3, 1, 18, {{"reduction", std::string("max")}}),
               {x, i64({0, -1}, {1, 2}), Tensor::from_vector<float>({5, 1}, {1, 2})});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{0, 1, 5, 3, 4, 5, 6, 7}));
  EXPECT_FALSE(run_status(make_node("ScatterND", 3, 1, 13), {x, i64({2}, {1, 1}), iota_f({1, 2, 2})}).ok());
  EXPECT_FALSE(run_status(make_node("ScatterND", 3, 1, 13), {x, i64({0}, {1, 1}), iota_f({1, 2})}).ok());
}

TEST(IndexKernels, NonZero) {
  const Tensor b = Tensor::from_vector<bool>({true, false, false, true, true, false}, {2, 3});
  auto out = run_ok(make_node("NonZero", 1, 1, 13), {b});
  EXPECT_EQ(out[0].shape(), (Shape{2, 3}));
  EXPECT_EQ(vals<int64_t>(out[0]), (I64s{0, 1, 1, 0, 0, 1}));
  out = run_ok(make_node("NonZero", 1, 1, 13), {Tensor::scalar<float>(3.0f)});
  EXPECT_EQ(out[0].shape(), (Shape{0, 1}));
  const Tensor h = Tensor::from_vector<Float16>({Float16(0.0f), Float16(-0.0f), Float16(2.0f)}, {3});
  EXPECT_EQ(vals<int64_t>(run_ok(make_node("NonZero", 1, 1, 13), {h})[0]), (I64s{2}));
}

TEST(IndexKernels, OneHot) {
  const Tensor idx = i64({0, -1, 5, 1}, {2, 2});
  const Tensor depth = Tensor::scalar<float>(3.0f);
  const Tensor values = Tensor::from_vector<int32_t>({0, 7}, {2});
  auto out = run_ok(make_node("OneHot", 3, 1, 11), {idx, depth, values});
  EXPECT_EQ(out[0].shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(vals<int32_t>(out[0]), (std::vector<int32_t>{7, 0, 0, 0, 0, 7, 0, 0, 0, 0, 7, 0}));
  out = run_ok(make_node("OneHot", 3, 1, 11, {{"axis", int64_t{0}}}), {idx, depth, values});
  EXPECT_EQ(out[0].shape(), (Shape{3, 2, 2}));
  EXPECT_EQ(vals<int32_t>(out[0]), (std::vector<int32_t>{7, 0, 0, 0, 0, 0, 0, 7, 0, 7, 0, 0}));
  EXPECT_FALSE(run_status(make_node("OneHot", 3, 1, 11), {idx, Tensor::scalar<float>(0.0f), values}).ok());
  EXPECT_FALSE(run_status(make_node("OneHot", 3, 1, 11, {{"axis", int64_t{3}}}), {idx, depth, values}).ok());
}

TEST(IndexKernels, Compress) {
  const Tensor x = iota_f({3, 2});
  const Tensor c = Tensor::from_vector<bool>({false, true}, {2});
  auto out = run_ok(make_node("Compress", 2, 1, 11, {{"axis", int64_t{0}}}), {x, c});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{2, 3}));
  out = run_ok(make_node("Compress", 2, 1, 11, {{"axis", int64_t{-1}}}), {x, c});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{1, 3, 5}));
  out = run_ok(make_node("Compress", 2, 1, 11), {x, Tensor::from_vector<bool>({true, false, false, true}, {4})});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{0, 3}));
  EXPECT_FALSE(
      run_status(make_node("Compress", 2, 1, 11, {{"axis", int64_t{1}}}), {x, Tensor::from_vector<bool>({0, 0, 1}, {3})})
          .ok());
}

TEST(IndexKernels, ReverseSequence) {
  const Tensor x = iota_f({4, 4});
  auto out = run_ok(make_node("ReverseSequence", 2, 1, 10, {{"batch_axis", int64_t{1}}, {"time_axis", int64_t{0}}}),
                    {x, i64({4, 3, 2, 1})});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{12, 9, 6, 3, 8, 5, 2, 7, 4, 1, 10, 11, 0, 13, 14, 15}));
  out = run_ok(make_node("ReverseSequence", 2, 1, 10, {{"batch_axis", int64_t{0}}, {"time_axis", int64_t{1}}}),
               {x, i64({1, 2, 3, 4})});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{0, 1, 2, 3, 5, 4, 6, 7, 10, 9, 8, 11, 15, 14, 13, 12}));
  EXPECT_FALSE(run_status(make_node("ReverseSequence", 2, 1, 10), {x, i64({5, 1, 1, 1})}).ok());
  EXPECT_FALSE(run_status(make_node("ReverseSequence", 2, 1, 10), {x, i64({1, 1})}).ok());
}

TEST(IndexKernels, UniqueSortedAndUnsorted) {
  const Tensor x = Tensor::from_vector<float>({2, 1, 1, 3, 4, 3}, {6});
  auto out = run_ok(make_node("Unique", 1, 4, 11, {{"sorted", int64_t{0}}}), {x});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{2, 1, 3, 4}));
  EXPECT_EQ(vals<int64_t>(out[1]), (I64s{0, 1, 3, 4}));
  EXPECT_EQ(vals<int64_t>(out[2]), (I64s{0, 1, 1, 2, 3, 2}));
  EXPECT_EQ(vals<int64_t>(out[3]), (I64s{1, 2, 2, 1}));
  out = run_ok(make_node("Unique", 1, 4, 11), {x});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(vals<int64_t>(out[1]), (I64s{1, 0, 3, 4}));
  EXPECT_EQ(vals<int64_t>(out[2]), (I64s{1, 0, 0, 2, 3, 2}));
  const Tensor m = Tensor::from_vector<int32_t>({1, 0, 0, 1, 0, 0, 2, 3, 4}, {3, 3});
  out = run_ok(make_node("Unique", 1, 4, 11, {{"axis", int64_t{0}}}), {m});
  EXPECT_EQ(out[0].shape(), (Shape{2, 3}));
  EXPECT_EQ(vals<int64_t>(out[3]), (I64s{2, 1}));
  const Tensor s = Tensor::from_vector<std::string>({"b", "a", "b"}, {3});
  out = run_ok(make_node("Unique", 1, 1, 11), {s});
  EXPECT_EQ(vals<std::string>(out[0]), (std::vector<std::string>{"a", "b"}));
  const Tensor n = Tensor::from_vector<float>({NAN, 1, NAN}, {3});
  EXPECT_EQ(run_ok(make_node("Unique", 1, 1, 11), {n})[0].numel(), 2);
}

TEST(IndexKernels, TopKTiesAndModes) {
  const Tensor x = Tensor::from_vector<float>({1, 3, 3, 2, 5, 5, 0, 1}, {2, 4});
  auto out = run_ok(make_node("TopK", 2, 2, 11), {x, i64({2})});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{3, 3, 5, 5}));
  EXPECT_EQ(vals<int64_t>(out[1]), (I64s{1, 2, 0, 1}));
  out = run_ok(make_node("TopK", 2, 2, 11, {{"largest", int64_t{0}}, {"axis", int64_t{0}}}), {x, i64({1})});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{1, 3, 0, 1}));
  EXPECT_EQ(vals<int64_t>(out[1]), (I64s{0, 0, 1, 1}));
  out = run_ok(make_node("TopK", 1, 2, 1, {{"k", int64_t{1}}}), {x});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{3, 5}));
  out = run_ok(make_node("TopK", 2, 2, 11), {x, i64({0})});
  EXPECT_EQ(out[0].shape(), (Shape{2, 0}));
  const Tensor h = Tensor::from_vector<Float16>({Float16(1.0f), Float16(-2.0f), Float16(4.0f)}, {3});
  out = run_ok(make_node("TopK", 2, 2, 11), {h, i64({3})});
  EXPECT_EQ(vals<int64_t>(out[1]), (I64s{2, 0, 1}));
  EXPECT_FALSE(run_status(make_node("TopK", 2, 2, 11), {x, i64({5})}).ok());
  EXPECT_FALSE(run_status(make_node("TopK", 2, 2, 11), {x, i64({-1})}).ok());
}

TEST(IndexKernels, CumSum) {
  const Tensor x = Tensor::from_vector<int32_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  auto cs = [&](int64_t axis, int64_t exclusive, int64_t reverse) {
    return vals<int32_t>(run_ok(make_node("CumSum", 2, 1, 14, {{"exclusive", exclusive}, {"reverse", reverse}}),
                                {x, Tensor::scalar<int32_t>(static_cast<int32_t>(axis))})[0]);
  };
  EXPECT_EQ(cs(1, 0, 0), (std::vector<int32_t>{1, 3, 6, 4, 9, 15}));
  EXPECT_EQ(cs(1, 1, 0), (std::vector<int32_t>{0, 1, 3, 0, 4, 9}));
  EXPECT_EQ(cs(-1, 0, 1), (std::vector<int32_t>{6, 5, 3, 15, 11, 6}));
  EXPECT_EQ(cs(1, 1, 1), (std::vector<int32_t>{5, 3, 0, 11, 6, 0}));
  EXPECT_EQ(cs(0, 0, 0), (std::vector<int32_t>{1, 2, 3, 5, 7, 9}));
  EXPECT_FALSE(run_status(make_node("CumSum", 2, 1, 14), {x, Tensor::scalar<int32_t>(2)}).ok());
  // A long row split across chunks and threads.
  Tensor big(DataType::kFloat64, {3, 5000});
  std::fill_n(big.data<double>(), big.numel(), 1.0);
  auto out = run_ok(make_node("CumSum", 2, 1, 14), {big, Tensor::scalar<int64_t>(0)}, 4);
  EXPECT_EQ(out[0].data<double>()[2 * 5000 + 4999], 3.0);
}

}  // namespace
}  // namespace deskml
