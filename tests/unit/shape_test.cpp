// Unit tests for the shape kernel family (shape*.cpp).
#include <gtest/gtest.h>

#include <climits>
#include <numeric>
#include <random>

#include "kernel_harness.hpp"

namespace deskml {
namespace {

using testing::make_node;
using testing::run_node;
using Attrs = std::map<std::string, graph::AttributeValue>;
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

Tensor i64(I64s v) {
  const int64_t n = static_cast<int64_t>(v.size());
  return Tensor::from_vector<int64_t>(v, {n});
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

// --- views --------------------------------------------------------------------

TEST(ShapeKernels, ReshapeZeroAndInferredDims) {
  const Tensor x = iota_f({2, 3, 4});
  auto out = run_ok(make_node("Reshape", 2, 1, 14), {x, i64({0, -1})});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].shape(), (Shape{2, 12}));
  EXPECT_EQ(out[0].raw_data(), x.raw_data()) << "Reshape should return a view";
  out = run_ok(make_node("Reshape", 2, 1, 14), {x, i64({-1, 0, 2})});
  EXPECT_EQ(out[0].shape(), (Shape{4, 3, 2}));
  // allowzero: a literal 0 dim (only valid for empty tensors).
  const Tensor empty(DataType::kFloat32, {0, 3});
  out = run_ok(make_node("Reshape", 2, 1, 14, {{"allowzero", int64_t{1}}}), {empty, i64({3, 0})});
  EXPECT_EQ(out[0].shape(), (Shape{3, 0}));
}

TEST(ShapeKernels, ReshapeErrors) {
  const Tensor x = iota_f({2, 3});
  EXPECT_FALSE(run_status(make_node("Reshape", 2, 1, 14), {x, i64({-1, -1})}).ok());
  EXPECT_FALSE(run_status(make_node("Reshape", 2, 1, 14), {x, i64({4, 2})}).ok());
  EXPECT_FALSE(run_status(make_node("Reshape", 2, 1, 14), {x, i64({5, -1})}).ok());
  EXPECT_FALSE(run_status(make_node("Reshape", 2, 1, 14), {x, i64({0, 0, 0})}).ok());
  EXPECT_FALSE(run_status(make_node("Reshape", 2, 1, 14, {{"allowzero", int64_t{1}}}), {x, i64({0, -1})}).ok());
}

TEST(ShapeKernels, ReshapeOpset1UsesAttribute) {
  auto out = run_ok(make_node("Reshape", 1, 1, 1, {{"shape", I64s{3, -1}}}), {iota_f({2, 3})});
  EXPECT_EQ(out[0].shape(), (Shape{3, 2}));
}

TEST(ShapeKernels, FlattenAxes) {
  const Tensor x = iota_f({2, 3, 4, 5});
  EXPECT_EQ(run_ok(make_node("Flatten", 1, 1, 13, {{"axis", int64_t{0}}}), {x})[0].shape(), (Shape{1, 120}));
  EXPECT_EQ(run_ok(make_node("Flatten", 1, 1, 13, {{"axis", int64_t{-1}}}), {x})[0].shape(), (Shape{24, 5}));
  EXPECT_EQ(run_ok(make_node("Flatten", 1, 1, 13, {{"axis", int64_t{4}}}), {x})[0].shape(), (Shape{120, 1}));
  EXPECT_EQ(run_ok(make_node("Flatten", 1, 1, 13), {x})[0].raw_data(), x.raw_data());
  EXPECT_FALSE(run_status(make_node("Flatten", 1, 1, 13, {{"axis", int64_t{5}}}), {x}).ok());
}

TEST(ShapeKernels, SqueezeAndUnsqueeze) {
  const Tensor x = iota_f({1, 3, 1, 2});
  EXPECT_EQ(run_ok(make_node("Squeeze", 1, 1, 11), {x})[0].shape(), (Shape{3, 2}));
  EXPECT_EQ(run_ok(make_node("Squeeze", 1, 1, 11, {{"axes", I64s{-2}}}), {x})[0].shape(), (Shape{1, 3, 2}));
  EXPECT_EQ(run_ok(make_node("Squeeze", 2, 1, 13), {x, i64({0})})[0].shape(), (Shape{3, 1, 2}));
  EXPECT_EQ(run_ok(make_node("Squeeze", 2, 1, 13), {x, Tensor()})[0].shape(), (Shape{3, 2}));
  EXPECT_EQ(run_ok(make_node("Squeeze", 2, 1, 13), {x, i64({})})[0].shape(), (Shape{3, 2}));
  EXPECT_FALSE(run_status(make_node("Squeeze", 2, 1, 13), {x, i64({1})}).ok());
  EXPECT_FALSE(run_status(make_node("Squeeze", 2, 1, 13), {x, i64({4})}).ok());

  const Tensor y = iota_f({3, 4});
  EXPECT_EQ(run_ok(make_node("Unsqueeze", 1, 1, 11, {{"axes", I64s{0, -1}}}), {y})[0].shape(), (Shape{1, 3, 4, 1}));
  auto out = run_ok(make_node("Unsqueeze", 2, 1, 13), {y, i64({3, 1})});
  EXPECT_EQ(out[0].shape(), (Shape{3, 1, 4, 1}));
  EXPECT_EQ(out[0].raw_data(), y.raw_data());
  EXPECT_FALSE(run_status(make_node("Unsqueeze", 2, 1, 13), {y, i64({1, 1})}).ok());
  EXPECT_FALSE(run_status(make_node("Unsqueeze", 2, 1, 13), {y, i64({4})}).ok());
  EXPECT_FALSE(run_status(make_node("Unsqueeze", 1, 1, 13), {y}).ok());
}

TEST(ShapeKernels, ShapeAndSize) {
  const Tensor x(DataType::kString, {2, 3, 4});
  EXPECT_EQ(vals<int64_t>(run_ok(make_node("Shape", 1, 1, 13), {x})[0]), (I64s{2, 3, 4}));
  EXPECT_EQ(vals<int64_t>(run_ok(make_node("Shape", 1, 1, 15, {{"start", int64_t{-2}}}), {x})[0]), (I64s{3, 4}));
  EXPECT_EQ(vals<int64_t>(run_ok(make_node("Shape", 1, 1, 15, {{"start", int64_t{1}}, {"end", int64_t{-1}}}), {x})[0]),
            (I64s{3}));
  EXPECT_EQ(run_ok(make_node("Shape", 1, 1, 15, {{"start", int64_t{5}}}), {x})[0].shape(), (Shape{0}));
  auto size = run_ok(make_node("Size", 1, 1, 13), {x})[0];
  EXPECT_EQ(size.shape(), Shape{});
  EXPECT_EQ(size.data<int64_t>()[0], 24);
}

TEST(ShapeKernels, IdentityPassesTensorsAndSequences) {
  const Tensor x = iota_f({2, 2});
  EXPECT_EQ(run_ok(make_node("Identity", 1, 1, 16), {x})[0].raw_data(), x.raw_data());
  // A sequence goes through unchanged.
  const graph::Node node = make_node("Identity", 1, 1, 16);
  const auto* def = kernels::cpu::cpu_registry().find("Identity", "", 16, DataType::kUndefined);
  ASSERT_NE(def, nullptr);
  auto kernel = def->factory(node);
  Value seq = Value::from_sequence({x, iota_f({3})}, DataType::kFloat32);
  const Value* ins[] = {&seq};
  std::vector<Value> outs(1);
  kernels::KernelContext ctx(node, ins, outs, nullptr, 1);
  ASSERT_TRUE(kernel->compute(ctx).ok());
  ASSERT_TRUE(outs[0].is_sequence());
  ASSERT_EQ(outs[0].sequence.size(), 2u);
  EXPECT_EQ(outs[0].sequence[1].shape(), Shape{3});
  // An empty optional stays empty.
  const Value* none[] = {nullptr};
  kernels::KernelContext ctx2(node, none, outs, nullptr, 1);
  ASSERT_TRUE(kernel->compute(ctx2).ok());
  EXPECT_TRUE(outs[0].is_none());
}

TEST(ShapeKernels, DropoutInference) {
  const Tensor x = iota_f({2, 3});
  auto out = run_ok(make_node("Dropout", 1, 2, 13), {x});
  EXPECT_EQ(out[0].raw_data(), x.raw_data());
  ASSERT_EQ(out[1].dtype(), DataType::kBool);
  EXPECT_EQ(vals<bool>(out[1]), std::vector<bool>(6, true));
  out = run_ok(make_node("Dropout", 1, 2, 7), {x});
  EXPECT_EQ(out[1].dtype(), DataType::kFloat32);
  EXPECT_EQ(vals<float>(out[1]), std::vector<float>(6, 1.0f));
  const Tensor train = Tensor::scalar<bool>(true);
  auto st = run_status(make_node("Dropout", 3, 1, 13), {x, Tensor::scalar<float>(0.5f), train});
  EXPECT_EQ(st.code(), StatusCode::kUnsupported);
  out = run_ok(make_node("Dropout", 3, 1, 13), {x, Tensor::scalar<float>(0.0f), train});
  EXPECT_EQ(vals<float>(out[0]), vals<float>(x));
}

// --- layout -------------------------------------------------------------------

// Naive transpose for checking the strided/tiled paths.
Tensor naive_transpose(const Tensor& x, const I64s& perm) {
  Shape os(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) os[i] = x.shape()[static_cast<size_t>(perm[i])];
  Tensor out(DataType::kFloat32, os);
  const auto is = shape_strides(x.shape());
  const auto ost = shape_strides(os);
  for (int64_t o = 0; o < out.numel(); ++o) {
    int64_t off = 0;
    for (size_t d = 0; d < os.size(); ++d) off += ((o / ost[d]) % os[d]) * is[static_cast<size_t>(perm[d])];
    out.data<float>()[o] = x.data<float>()[off];
  }
  return out;
}

TEST(ShapeKernels, TransposeMatchesNaive) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 60; ++trial) {
    const size_t rank = 1 + rng() % 5;
    Shape shape(rank);
    for (auto& d : shape) d = 1 + rng() % 6;
    if (trial % 10 == 0) shape = {67, 45};      // tiled path, uneven tiles
    if (trial % 10 == 1) shape = {3, 130, 70};  // tiled path with an outer dim
    if (trial % 10 == 2) shape = {2, 40, 3};    // NHWC-like small stride-1 dim
    I64s perm(shape.size());
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    const Tensor x = iota_f(shape);
    auto out = run_ok(make_node("Transpose", 1, 1, 13, {{"perm", perm}}), {x}, 4);
    const Tensor ref = naive_transpose(x, perm);
    ASSERT_EQ(out[0].shape(), ref.shape());
    ASSERT_EQ(vals<float>(out[0]), vals<float>(ref)) << "shape " << shape_to_string(shape) << " perm "
                                                      << shape_to_string(perm);
  }
}

// NCHW -> NHWC with a few channels (an image's 3) takes the interleaving path
// for 2, 3 and 4 columns, over several tiles and an outer batch dim.
TEST(ShapeKernels, ChannelsLastTransposeOfFewChannels) {
  for (int64_t c : {1, 2, 3, 4, 5}) {
    for (const Shape& shape : {Shape{1, c, 224, 224}, Shape{3, c, 37, 29}}) {
      const Tensor x = iota_f(shape);
      const I64s perm = {0, 2, 3, 1};
      auto out = run_ok(make_node("Transpose", 1, 1, 13, {{"perm", perm}}), {x}, 2);
      ASSERT_EQ(vals<float>(out[0]), vals<float>(naive_transpose(x, perm))) << shape_to_string(shape);
    }
  }
}

TEST(ShapeKernels, TransposeDefaultStringsAndErrors) {
  const Tensor s = Tensor::from_vector<std::string>({"a", "b", "c", "d", "e", "f"}, {2, 3});
  auto out = run_ok(make_node("Transpose", 1, 1, 13), {s});
  EXPECT_EQ(out[0].shape(), (Shape{3, 2}));
  EXPECT_EQ(vals<std::string>(out[0]), (std::vector<std::string>{"a", "d", "b", "e", "c", "f"}));
  EXPECT_FALSE(run_status(make_node("Transpose", 1, 1, 13, {{"perm", I64s{0, 0}}}), {s}).ok());
  EXPECT_FALSE(run_status(make_node("Transpose", 1, 1, 13, {{"perm", I64s{0}}}), {s}).ok());
}

TEST(ShapeKernels, ConcatTypesAndErrors) {
  const Tensor a = Tensor::from_vector<std::string>({"a", "b"}, {2, 1});
  const Tensor b = Tensor::from_vector<std::string>({"c", "d", "e", "f"}, {2, 2});
  auto out = run_ok(make_node("Concat", 2, 1, 13, {{"axis", int64_t{-1}}}), {a, b});
  EXPECT_EQ(out[0].shape(), (Shape{2, 3}));
  EXPECT_EQ(vals<std::string>(out[0]), (std::vector<std::string>{"a", "c", "d", "b", "e", "f"}));
  const Tensor e(DataType::kString, {2, 0});
  EXPECT_EQ(run_ok(make_node("Concat", 3, 1, 13, {{"axis", int64_t{1}}}), {a, e, b})[0].shape(), (Shape{2, 3}));
  EXPECT_FALSE(run_status(make_node("Concat", 2, 1, 13, {{"axis", int64_t{0}}}), {a, b}).ok());
  EXPECT_FALSE(run_status(make_node("Concat", 2, 1, 13, {{"axis", int64_t{2}}}), {a, b}).ok());
  EXPECT_FALSE(run_status(make_node("Concat", 2, 1, 13), {a, b}).ok()) << "axis is required";
  const Tensor h = Tensor::from_vector<Float16>({Float16(1.0f), Float16(2.0f)}, {2});
  out = run_ok(make_node("Concat", 2, 1, 13, {{"axis", int64_t{0}}}), {h, h});
  EXPECT_EQ(static_cast<float>(out[0].data<Float16>()[3]), 2.0f);
}

TEST(ShapeKernels, SplitAcrossOpsets) {
  const Tensor x = iota_f({2, 6});
  auto out = run_ok(make_node("Split", 1, 2, 2, {{"axis", int64_t{1}}, {"split", I64s{2, 4}}}), {x});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{0, 1, 6, 7}));
  EXPECT_EQ(out[1].shape(), (Shape{2, 4}));
  out = run_ok(make_node("Split", 2, 3, 13, {{"axis", int64_t{1}}}), {x, i64({1, 0, 5})});
  EXPECT_EQ(out[1].shape(), (Shape{2, 0}));
  EXPECT_EQ(vals<float>(out[2]), (std::vector<float>{1, 2, 3, 4, 5, 7, 8, 9, 10, 11}));
  out = run_ok(make_node("Split", 1, 3, 13, {{"axis", int64_t{-1}}}), {x});
  EXPECT_EQ(vals<float>(out[2]), (std::vector<float>{4, 5, 10, 11}));
  // Opset 18: num_outputs with a smaller last chunk.
  out = run_ok(make_node("Split", 1, 4, 18, {{"axis", int64_t{1}}, {"num_outputs", int64_t{4}}}), {x});
  EXPECT_EQ(out[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(out[3].shape(), (Shape{2, 0}));
  out = run_ok(make_node("Split", 2, 2, 13, {{"axis", int64_t{1}}}), {x, i64({})});
  EXPECT_EQ(out[1].shape(), (Shape{2, 3}));
  EXPECT_FALSE(run_status(make_node("Split", 1, 4, 13, {{"axis", int64_t{1}}}), {x}).ok());
  EXPECT_FALSE(run_status(make_node("Split", 2, 2, 13, {{"axis", int64_t{1}}}), {x, i64({2, 3})}).ok());
  EXPECT_FALSE(run_status(make_node("Split", 2, 2, 13, {{"axis", int64_t{2}}}), {x, i64({1, 1})}).ok());
  const Tensor b = Tensor::from_vector<bool>({true, false, true, true}, {4});
  out = run_ok(make_node("Split", 1, 2, 13), {b});
  EXPECT_EQ(vals<bool>(out[1]), (std::vector<bool>{true, true}));
}

// Naive slice along every axis with (start, step, count) already resolved.
TEST(ShapeKernels, SliceMatchesNaive) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    const size_t rank = 1 + rng() % 4;
    Shape shape(rank);
    for (auto& d : shape) d = 1 + rng() % 7;
    const Tensor x = iota_f(shape);
    I64s starts, ends, axes, steps;
    for (size_t d = 0; d < rank; ++d) {
      if (rng() % 3 == 0) continue;
      axes.push_back(rng() % 2 ? static_cast<int64_t>(d) : static_cast<int64_t>(d) - static_cast<int64_t>(rank));
      starts.push_back(static_cast<int64_t>(rng() % 20) - 10);
      ends.push_back(rng() % 5 == 0 ? (rng() % 2 ? INT64_MAX : INT64_MIN) : static_cast<int64_t>(rng() % 20) - 10);
      int64_t st = static_cast<int64_t>(rng() % 7) - 3;
      if (st == 0) st = 1;
      steps.push_back(st);
    }
    auto out = run_ok(make_node("Slice", 5, 1, 13), {x, i64(starts), i64(ends), i64(axes), i64(steps)}, 2);
    ASSERT_EQ(out.size(), 1u);
    // Reference: per-axis list of selected indices (numpy semantics).
    std::vector<I64s> sel(rank);
    for (size_t d = 0; d < rank; ++d) {
      for (int64_t i = 0; i < shape[d]; ++i) sel[d].push_back(i);
    }
    for (size_t k = 0; k < axes.size(); ++k) {
      const size_t d = static_cast<size_t>(axes[k] < 0 ? axes[k] + static_cast<int64_t>(rank) : axes[k]);
      const int64_t n = shape[d];
      int64_t b = starts[k] < 0 ? starts[k] + n : starts[k];
      int64_t e = ends[k] < 0 ? (ends[k] == INT64_MIN ? -1 : ends[k] + n) : ends[k];
      sel[d].clear();
      if (steps[k] > 0) {
        b = std::clamp<int64_t>(b, 0, n);
        e = std::clamp<int64_t>(e, 0, n);
        for (int64_t i = b; i < e; i += steps[k]) sel[d].push_back(i);
      } else {
        b = std::clamp<int64_t>(b, 0, n - 1);  // the spec clamps start to [0, n-1] (numpy would give -1)
        e = std::clamp<int64_t>(e, -1, n - 1);
        for (int64_t i = b; i > e; i += steps[k]) sel[d].push_back(i);
      }
    }
    Shape os(rank);
    for (size_t d = 0; d < rank; ++d) os[d] = static_cast<int64_t>(sel[d].size());
    ASSERT_EQ(out[0].shape(), os);
    const auto is = shape_strides(shape);
    const auto ost = shape_strides(os);
    for (int64_t o = 0; o < out[0].numel(); ++o) {
      int64_t off = 0;
      for (size_t d = 0; d < rank; ++d) off += sel[d][static_cast<size_t>((o / ost[d]) % os[d])] * is[d];
      ASSERT_EQ(out[0].data<float>()[o], x.data<float>()[off]) << "trial " << trial;
    }
  }
}

TEST(ShapeKernels, SliceOpset1AndErrors) {
  const Tensor x = iota_f({3, 4});
  auto out = run_ok(make_node("Slice", 1, 1, 1, {{"starts", I64s{1, -3}}, {"ends", I64s{10, -1}}, {"axes", I64s{0, 1}}}),
                    {x});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{5, 6, 9, 10}));
  EXPECT_FALSE(run_status(make_node("Slice", 5, 1, 13), {x, i64({0}), i64({1}), i64({0}), i64({0})}).ok());
  EXPECT_FALSE(run_status(make_node("Slice", 4, 1, 13), {x, i64({0, 0}), i64({1, 1}), i64({0, 0})}).ok());
  EXPECT_FALSE(run_status(make_node("Slice", 4, 1, 13), {x, i64({0}), i64({1}), i64({2})}).ok());
  EXPECT_FALSE(run_status(make_node("Slice", 3, 1, 13), {x, i64({0}), i64({1, 2})}).ok());
}

TEST(ShapeKernels, ExpandAndTile) {
  const Tensor x = Tensor::from_vector<int32_t>({1, 2, 3}, {3, 1});
  auto out = run_ok(make_node("Expand", 2, 1, 13), {x, i64({2, 1, 2})});
  EXPECT_EQ(out[0].shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(vals<int32_t>(out[0]), (std::vector<int32_t>{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3}));
  out = run_ok(make_node("Expand", 2, 1, 13), {x, i64({1})});
  EXPECT_EQ(out[0].shape(), (Shape{3, 1}));
  EXPECT_FALSE(run_status(make_node("Expand", 2, 1, 13), {x, i64({2, 2})}).ok());

  const Tensor s = Tensor::from_vector<std::string>({"a", "b", "c", "d"}, {2, 2});
  out = run_ok(make_node("Tile", 2, 1, 13), {s, i64({2, 2})});
  EXPECT_EQ(out[0].shape(), (Shape{4, 4}));
  EXPECT_EQ(vals<std::string>(out[0]),
            (std::vector<std::string>{"a", "b", "a", "b", "c", "d", "c", "d", "a", "b", "a", "b", "c", "d", "c", "d"}));
  out = run_ok(make_node("Tile", 2, 1, 13), {x, i64({1, 3})});
  EXPECT_EQ(vals<int32_t>(out[0]), (std::vector<int32_t>{1, 1, 1, 2, 2, 2, 3, 3, 3}));
  EXPECT_EQ(run_ok(make_node("Tile", 2, 1, 13), {x, i64({0, 3})})[0].shape(), (Shape{0, 3}));
  EXPECT_FALSE(run_status(make_node("Tile", 2, 1, 13), {x, i64({2})}).ok());
  EXPECT_FALSE(run_status(make_node("Tile", 2, 1, 13), {x, i64({-1, 1})}).ok());
  EXPECT_FALSE(run_status(make_node("Tile", 2, 1, 13), {x, i64({INT64_MAX, 2})}).ok());
}

TEST(ShapeKernels, DepthToSpaceRoundTrip) {
  const Tensor x = iota_f({1, 8, 2, 3});
  for (const char* mode : {"DCR", "CRD"}) {
    auto d2s = run_ok(make_node("DepthToSpace", 1, 1, 13, {{"blocksize", int64_t{2}}, {"mode", std::string(mode)}}), {x});
    ASSERT_EQ(d2s[0].shape(), (Shape{1, 2, 4, 6}));
    // Reference from the spec's reshape/transpose formulation.
    const float* in = x.data<float>();
    const float* o = d2s[0].data<float>();
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t h = 0; h < 4; ++h)
        for (int64_t w = 0; w < 6; ++w) {
          const int64_t b1 = h % 2, b2 = w % 2;
          const int64_t ic = std::string(mode) == "DCR" ? (b1 * 2 + b2) * 2 + c : c * 4 + b1 * 2 + b2;
          ASSERT_EQ(o[(c * 4 + h) * 6 + w], in[(ic * 2 + h / 2) * 3 + w / 2]) << mode;
        }
    if (std::string(mode) == "DCR") {
      auto back = run_ok(make_node("SpaceToDepth", 1, 1, 13, {{"blocksize", int64_t{2}}}), {d2s[0]});
      EXPECT_EQ(vals<float>(back[0]), vals<float>(x));
    }
  }
  EXPECT_FALSE(run_status(make_node("DepthToSpace", 1, 1, 13, {{"blocksize", int64_t{3}}}), {x}).ok());
  EXPECT_FALSE(run_status(make_node("DepthToSpace", 1, 1, 13, {{"blocksize", INT64_MAX}}), {x}).ok());
  EXPECT_FALSE(run_status(make_node("SpaceToDepth", 1, 1, 13, {{"blocksize", INT64_MAX}}), {iota_f({1, 1, 0, 0})}).ok());
  EXPECT_FALSE(run_status(make_node("SpaceToDepth", 1, 1, 13, {{"blocksize", int64_t{2}}}), {iota_f({1, 1, 3, 4})}).ok());
  EXPECT_FALSE(run_status(make_node("SpaceToDepth", 1, 1, 13, {{"blocksize", int64_t{2}}}), {iota_f({4, 4})}).ok());
}

// --- generators -----------------------------------------------------------------

TEST(ShapeKernels, PadModes) {
  const Tensor x = Tensor::from_vector<int32_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  auto pad = [&](const std::string& mode, I64s pads) {
    return run_ok(make_node("Pad", 2, 1, 13, {{"mode", mode}}), {x, i64(pads)})[0];
  };
  Tensor out = pad("constant", {0, 1, 1, 0});
  EXPECT_EQ(out.shape(), (Shape{3, 4}));
  EXPECT_EQ(vals<int32_t>(out), (std::vector<int32_t>{0, 1, 2, 3, 0, 4, 5, 6, 0, 0, 0, 0}));
  out = pad("reflect", {0, 2, 0, 2});
  EXPECT_EQ(vals<int32_t>(out), (std::vector<int32_t>{3, 2, 1, 2, 3, 2, 1, 6, 5, 4, 5, 6, 5, 4}));
  out = pad("reflect", {0, 5, 0, 0});  // wider than the axis: keeps reflecting (numpy)
  EXPECT_EQ(vals<int32_t>(out), (std::vector<int32_t>{2, 1, 2, 3, 2, 1, 2, 3, 5, 4, 5, 6, 5, 4, 5, 6}));
  out = pad("edge", {1, 1, 0, 0});
  EXPECT_EQ(vals<int32_t>(out), (std::vector<int32_t>{1, 1, 2, 3, 1, 1, 2, 3, 4, 4, 5, 6}));
  out = pad("constant", {0, -1, 0, -1});  // negative pads crop
  EXPECT_EQ(vals<int32_t>(out), (std::vector<int32_t>{2, 5}));
  // Opset 2: pads and value are attributes.
  const Tensor f = iota_f({1, 2});
  out = run_ok(make_node("Pad", 1, 1, 2, {{"pads", I64s{0, 1, 0, 0}}, {"value", 7.5f}}), {f})[0];
  EXPECT_EQ(vals<float>(out), (std::vector<float>{7.5f, 0, 1}));
  // Opset 18 axes; constant value input; strings.
  out = run_ok(make_node("Pad", 4, 1, 18), {x, i64({1, 1}), Tensor::scalar<int32_t>(9), i64({-1})})[0];
  EXPECT_EQ(vals<int32_t>(out), (std::vector<int32_t>{9, 1, 2, 3, 9, 9, 4, 5, 6, 9}));
  const Tensor s = Tensor::from_vector<std::string>({"a", "b"}, {2});
  out = run_ok(make_node("Pad", 3, 1, 13), {s, i64({1, 0}), Tensor::scalar<std::string>("z")})[0];
  EXPECT_EQ(vals<std::string>(out), (std::vector<std::string>{"z", "a", "b"}));
  out = run_ok(make_node("Pad", 2, 1, 13, {{"mode", std::string("edge")}}), {s, i64({0, 2})})[0];
  EXPECT_EQ(vals<std::string>(out), (std::vector<std::string>{"a", "b", "b", "b"}));
  EXPECT_FALSE(run_status(make_node("Pad", 2, 1, 13), {x, i64({1, 1})}).ok());
  EXPECT_FALSE(run_status(make_node("Pad", 2, 1, 13), {x, i64({0, -4, 0, 0})}).ok());
  EXPECT_FALSE(run_status(make_node("Pad", 2, 1, 13), {x, i64({INT64_MAX, INT64_MAX, 0, 0})}).ok());
  EXPECT_FALSE(run_status(make_node("Pad", 2, 1, 13, {{"mode", std::string("bogus")}}), {x, i64({0, 0, 0, 0})}).ok());
}

TEST(ShapeKernels, ConstantVariants) {
  EXPECT_EQ(vals<float>(run_ok(make_node("Constant", 0, 1, 13, {{"value", iota_f({2})}}), {})[0]),
            (std::vector<float>{0, 1}));
  EXPECT_EQ(run_ok(make_node("Constant", 0, 1, 13, {{"value_float", 2.5f}}), {})[0].data<float>()[0], 2.5f);
  EXPECT_EQ(vals<int64_t>(run_ok(make_node("Constant", 0, 1, 13, {{"value_ints", I64s{1, 2}}}), {})[0]), (I64s{1, 2}));
  EXPECT_EQ(run_ok(make_node("Constant", 0, 1, 13, {{"value_int", int64_t{4}}}), {})[0].data<int64_t>()[0], 4);
  auto strs = run_ok(make_node("Constant", 0, 1, 13, {{"value_strings", std::vector<std::string>{"x", "y"}}}), {});
  EXPECT_EQ(vals<std::string>(strs[0]), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(run_ok(make_node("Constant", 0, 1, 13, {{"value_floats", std::vector<float>{1, 2, 3}}}), {})[0].shape(),
            Shape{3});
  EXPECT_FALSE(run_status(make_node("Constant", 0, 1, 13), {}).ok());
}

TEST(ShapeKernels, ConstantOfShape) {
  auto out = run_ok(make_node("ConstantOfShape", 1, 1, 9), {i64({2, 3})});
  EXPECT_EQ(out[0].dtype(), DataType::kFloat32);
  EXPECT_EQ(vals<float>(out[0]), std::vector<float>(6, 0.0f));
  out = run_ok(make_node("ConstantOfShape", 1, 1, 9, {{"value", Tensor::from_vector<int32_t>({7}, {1})}}), {i64({2})});
  EXPECT_EQ(vals<int32_t>(out[0]), (std::vector<int32_t>{7, 7}));
  out = run_ok(make_node("ConstantOfShape", 1, 1, 9), {i64({})});
  EXPECT_EQ(out[0].shape(), Shape{});
  EXPECT_FALSE(run_status(make_node("ConstantOfShape", 1, 1, 9), {i64({-1})}).ok());
}

TEST(ShapeKernels, Range) {
  auto out = run_ok(make_node("Range", 3, 1, 11),
                    {Tensor::scalar<float>(1.0f), Tensor::scalar<float>(2.0f), Tensor::scalar<float>(0.25f)});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{1.0f, 1.25f, 1.5f, 1.75f}));
  out = run_ok(make_node("Range", 3, 1, 11),
               {Tensor::scalar<int32_t>(10), Tensor::scalar<int32_t>(4), Tensor::scalar<int32_t>(-3)});
  EXPECT_EQ(vals<int32_t>(out[0]), (std::vector<int32_t>{10, 7}));
  out = run_ok(make_node("Range", 3, 1, 11),
               {Tensor::scalar<int64_t>(0), Tensor::scalar<int64_t>(-5), Tensor::scalar<int64_t>(1)});
  EXPECT_EQ(out[0].shape(), Shape{0});
  EXPECT_FALSE(run_status(make_node("Range", 3, 1, 11), {Tensor::scalar<int64_t>(0), Tensor::scalar<int64_t>(5),
                                                         Tensor::scalar<int64_t>(0)})
                   .ok());
  EXPECT_FALSE(run_status(make_node("Range", 3, 1, 11), {Tensor::scalar<int64_t>(INT64_MIN),
                                                         Tensor::scalar<int64_t>(INT64_MAX), Tensor::scalar<int64_t>(1)})
                   .ok());
}

TEST(ShapeKernels, EyeLikeAndTrilu) {
  const Tensor x(DataType::kInt32, {3, 4});
  auto out = run_ok(make_node("EyeLike", 1, 1, 9, {{"k", int64_t{1}}}), {x});
  EXPECT_EQ(vals<int32_t>(out[0]), (std::vector<int32_t>{0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}));
  out = run_ok(make_node("EyeLike", 1, 1, 9, {{"dtype", int64_t{11}}, {"k", int64_t{-2}}}), {x});
  EXPECT_EQ(vals<double>(out[0]), (std::vector<double>{0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}));
  EXPECT_EQ(vals<int32_t>(run_ok(make_node("EyeLike", 1, 1, 9, {{"k", int64_t{100}}}), {x})[0]),
            std::vector<int32_t>(12, 0));
  EXPECT_FALSE(run_status(make_node("EyeLike", 1, 1, 9), {iota_f({3})}).ok());

  const Tensor m = iota_f({2, 2, 3});
  out = run_ok(make_node("Trilu", 1, 1, 14), {m});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{0, 1, 2, 0, 4, 5, 6, 7, 8, 0, 10, 11}));
  out = run_ok(make_node("Trilu", 2, 1, 14, {{"upper", int64_t{0}}}), {m, Tensor::scalar<int64_t>(-1)});
  EXPECT_EQ(vals<float>(out[0]), (std::vector<float>{0, 0, 0, 3, 0, 0, 0, 0, 0, 9, 0, 0}));
  out = run_ok(make_node("Trilu", 2, 1, 14, {{"upper", int64_t{0}}}), {m, Tensor::scalar<int64_t>(INT64_MAX)});
  EXPECT_EQ(vals<float>(out[0]), vals<float>(m));
  const Tensor b = Tensor::from_vector<bool>({true, true, true, true}, {2, 2});
  EXPECT_EQ(vals<bool>(run_ok(make_node("Trilu", 1, 1, 14), {b})[0]), (std::vector<bool>{true, true, false, true}));
  EXPECT_FALSE(run_status(make_node("Trilu", 1, 1, 14), {iota_f({3})}).ok());
}

}  // namespace
}  // namespace deskml
