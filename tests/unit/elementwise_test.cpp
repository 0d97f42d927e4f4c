// Elementwise kernels: unary math, broadcasting binary ops, variadic ops,
// Where, Clip, Cast. Broadcasting is checked against a naive index walk.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "isa_test_util.hpp"
#include "kernel_harness.hpp"

namespace deskml {
namespace {

using testing::make_node;
using testing::run_node;

template <typename T>
Tensor tensor(std::vector<T> v, Shape shape) {
  return Tensor::from_vector<T>(v, std::move(shape));
}

Tensor run1(const graph::Node& node, const std::vector<Tensor>& inputs, int threads = 1) {
  auto r = run_node(node, inputs, threads);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  if (!r.ok()) return {};
  return (*r)[0];
}

template <typename T>
std::vector<T> vals(const Tensor& t) {
  auto s = t.values<T>();
  return {s.begin(), s.end()};
}

std::vector<float> random_floats(int64_t n, uint32_t seed, float lo = -3.0f, float hi = 3.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

// Element offset of output index `o` in an input of shape `in` broadcast to `out`.
int64_t naive_offset(int64_t o, const Shape& in, const Shape& out) {
  int64_t off = 0;
  int64_t stride = 1;
  const size_t lead = out.size() - in.size();
  for (size_t d = out.size(); d-- > 0;) {
    const int64_t i = o % out[d];
    o /= out[d];
    if (d >= lead) {
      const int64_t dim = in[d - lead];
      if (dim != 1) off += i * stride;
      stride *= dim;
    }
  }
  return off;
}

// Each test body runs on every instruction set level (isa_test_util.hpp).
class ElementwiseIsa : public testing::IsaTest {};
INSTANTIATE_TEST_SUITE_P(Isa, ElementwiseIsa, testing::all_isas(), testing::isa_name);

// --- unary -------------------------------------------------------------------

TEST_P(ElementwiseIsa, ExpMatchesLibmAcrossRange) {
  std::vector<float> xs = {0.0f,    -0.0f,   1.0f,    -1.0f, 88.0f,  88.7f,    88.8f,     -87.0f,
                           -100.0f, -104.0f, -200.0f, 1e-8f, -1e-8f, INFINITY, -INFINITY, NAN};
  for (float x = -90.0f; x < 90.0f; x += 0.0137f) xs.push_back(x);
  auto y = run1(make_node("Exp", 1, 1), {tensor(xs, {static_cast<int64_t>(xs.size())})});
  auto out = vals<float>(y);
  for (size_t i = 0; i < xs.size(); ++i) {
    const float ref = std::exp(xs[i]);
    if (std::isnan(ref)) {
      EXPECT_TRUE(std::isnan(out[i]));
    } else if (std::isinf(ref) || ref == 0.0f) {
      EXPECT_EQ(out[i], ref) << xs[i];
    } else if (ref < std::numeric_limits<float>::min()) {
      EXPECT_NEAR(out[i], ref, 1e-44f) << xs[i];  // denormal results: absolute error
    } else {
      EXPECT_NEAR(out[i] / ref, 1.0f, 4e-7f) << xs[i];
    }
  }
}

TEST_P(ElementwiseIsa, ErfIsAccurate) {
  std::vector<float> xs;
  for (float x = -6.0f; x < 6.0f; x += 0.001f) xs.push_back(x);
  xs.push_back(INFINITY);
  xs.push_back(-INFINITY);
  auto out = vals<float>(run1(make_node("Erf", 1, 1), {tensor(xs, {static_cast<int64_t>(xs.size())})}));
  for (size_t i = 0; i < xs.size(); ++i) EXPECT_NEAR(out[i], std::erf(xs[i]), 5e-7f) << xs[i];  // a few ulp near +-1
}

TEST_P(ElementwiseIsa, FloorCeilRoundMatchLibm) {
  std::vector<float> xs = {0.0f,        -0.0f,        0.5f,       -0.5f,       1.5f,       -1.5f,       2.5f,
                           0.49999997f, -0.49999997f, 8388607.5f, -8388607.5f, 8388608.0f, 16777217.0f, 1e20f,
                           -1e20f,      INFINITY,     -INFINITY,  1e-40f,      -1e-40f};
  for (float x = -20.0f; x < 20.0f; x += 0.37f) xs.push_back(x);
  Tensor x = tensor(xs, {static_cast<int64_t>(xs.size())});
  auto fl = vals<float>(run1(make_node("Floor", 1, 1), {x}));
  auto ce = vals<float>(run1(make_node("Ceil", 1, 1), {x}));
  auto ro = vals<float>(run1(make_node("Round", 1, 1), {x}));
  for (size_t i = 0; i < xs.size(); ++i) {
    EXPECT_EQ(fl[i], std::floor(xs[i])) << xs[i];
    EXPECT_EQ(std::signbit(fl[i]), std::signbit(std::floor(xs[i]))) << xs[i];
    EXPECT_EQ(ce[i], std::ceil(xs[i])) << xs[i];
    EXPECT_EQ(std::signbit(ce[i]), std::signbit(std::ceil(xs[i]))) << xs[i];
    EXPECT_EQ(ro[i], std::nearbyint(xs[i])) << xs[i];
  }
  auto n = vals<float>(run1(make_node("Floor", 1, 1), {tensor<float>({NAN}, {1})}));
  EXPECT_TRUE(std::isnan(n[0]));
}

TEST_P(ElementwiseIsa, LogMatchesLibm) {
  std::vector<float> xs = {1.0f, 2.0f, 0.5f, 1e-38f, 1e-42f, 1.4e-45f, 3e38f, 0.0f, -0.0f, -1.0f, INFINITY, NAN};
  for (float x = 0.001f; x < 100.0f; x *= 1.013f) xs.push_back(x);
  auto y = vals<float>(run1(make_node("Log", 1, 1), {tensor(xs, {static_cast<int64_t>(xs.size())})}));
  for (size_t i = 0; i < xs.size(); ++i) {
    const float ref = std::log(xs[i]);
    if (std::isnan(ref)) {
      EXPECT_TRUE(std::isnan(y[i])) << xs[i];
    } else if (std::isinf(ref)) {
      EXPECT_EQ(y[i], ref) << xs[i];
    } else {
      EXPECT_NEAR(y[i], ref, 2e-7 * std::max(1.0f, std::abs(ref))) << xs[i];
    }
  }
}

TEST_P(ElementwiseIsa, CastFloatToInt64AndHalf) {
  std::vector<float> xs = {1.9f, -1.9f, 3e9f, -3e9f, 1e19f, -1e19f, NAN, 2147483520.0f, -2147483648.0f};
  for (int i = 0; i < 600; ++i) xs.push_back(static_cast<float>(i) * 0.7f - 200.0f);  // whole blocks that fit
  Tensor x = tensor(xs, {static_cast<int64_t>(xs.size())});
  auto y = vals<int64_t>(run1(make_node("Cast", 1, 1, 13, {{"to", int64_t{7}}}), {x}));
  EXPECT_EQ(y[0], 1);
  EXPECT_EQ(y[1], -1);
  EXPECT_EQ(y[2], 3000000000LL);
  EXPECT_EQ(y[3], -3000000000LL);
  EXPECT_EQ(y[4], std::numeric_limits<int64_t>::max());
  EXPECT_EQ(y[5], std::numeric_limits<int64_t>::min());
  EXPECT_EQ(y[6], 0);
  EXPECT_EQ(y[7], 2147483520LL);
  EXPECT_EQ(y[8], -2147483648LL);
  for (size_t i = 9; i < xs.size(); ++i) ASSERT_EQ(y[i], static_cast<int64_t>(xs[i]));
  auto h = run1(make_node("Cast", 1, 1, 13, {{"to", int64_t{10}}}), {x});
  auto back = vals<float>(run1(make_node("Cast", 1, 1, 13, {{"to", int64_t{1}}}), {h}));
  for (size_t i = 0; i < xs.size(); ++i) {
    const float ref = static_cast<float>(Float16(xs[i]));
    if (std::isnan(ref)) {
      EXPECT_TRUE(std::isnan(back[i]));
    } else {
      EXPECT_EQ(back[i], ref) << xs[i];
    }
  }
}

TEST_P(ElementwiseIsa, RoundIsHalfToEven) {
  auto y = run1(make_node("Round", 1, 1), {tensor<float>({0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 2.4f, -2.6f}, {7})});
  EXPECT_EQ(vals<float>(y), (std::vector<float>{0.0f, 2.0f, 2.0f, -0.0f, -2.0f, 2.0f, -3.0f}));
}

TEST_P(ElementwiseIsa, SignAbsNegOnIntegersAndNaN) {
  auto s = run1(make_node("Sign", 1, 1), {tensor<float>({-2.0f, 0.0f, 3.0f, NAN}, {4})});
  auto sv = vals<float>(s);
  EXPECT_EQ(sv[0], -1.0f);
  EXPECT_EQ(sv[1], 0.0f);
  EXPECT_EQ(sv[2], 1.0f);
  EXPECT_TRUE(std::isnan(sv[3]));
  const int32_t min = std::numeric_limits<int32_t>::min();
  auto a = run1(make_node("Abs", 1, 1), {tensor<int32_t>({-5, 7, min}, {3})});
  EXPECT_EQ(vals<int32_t>(a), (std::vector<int32_t>{5, 7, min}));  // wraps like numpy
  auto n = run1(make_node("Neg", 1, 1), {tensor<int8_t>({-128, 5, 0}, {3})});
  EXPECT_EQ(vals<int8_t>(n), (std::vector<int8_t>{-128, -5, 0}));
  auto u = run1(make_node("Abs", 1, 1), {tensor<uint8_t>({200, 3}, {2})});
  EXPECT_EQ(vals<uint8_t>(u), (std::vector<uint8_t>{200, 3}));
}

TEST(Elementwise, IsInfHonoursDirections) {
  Tensor x = tensor<float>({INFINITY, -INFINITY, 1.0f, NAN}, {4});
  auto both = run1(make_node("IsInf", 1, 1), {x});
  EXPECT_EQ(vals<bool>(both), (std::vector<bool>{true, true, false, false}));
  auto pos = run1(make_node("IsInf", 1, 1, 17, {{"detect_negative", int64_t{0}}}), {x});
  EXPECT_EQ(vals<bool>(pos), (std::vector<bool>{true, false, false, false}));
  auto nan = run1(make_node("IsNaN", 1, 1), {x});
  EXPECT_EQ(vals<bool>(nan), (std::vector<bool>{false, false, false, true}));
}

TEST_P(ElementwiseIsa, Float16ComputesInFloat) {
  Tensor x = tensor<Float16>({Float16(1.0f), Float16(4.0f), Float16(0.25f)}, {3});
  auto y = run1(make_node("Sqrt", 1, 1), {x});
  ASSERT_EQ(y.dtype(), DataType::kFloat16);
  EXPECT_EQ(static_cast<float>(y.data<Float16>()[1]), 2.0f);
  EXPECT_EQ(static_cast<float>(y.data<Float16>()[2]), 0.5f);
}

TEST(Elementwise, NotAndBitwiseNot) {
  auto n = run1(make_node("Not", 1, 1), {tensor<bool>({true, false}, {2})});
  EXPECT_EQ(vals<bool>(n), (std::vector<bool>{false, true}));
  auto b = run1(make_node("BitwiseNot", 1, 1, 18), {tensor<uint8_t>({0, 255, 15}, {3})});
  EXPECT_EQ(vals<uint8_t>(b), (std::vector<uint8_t>{255, 0, 240}));
}

// --- binary ------------------------------------------------------------------

TEST_P(ElementwiseIsa, BroadcastMatchesNaiveWalk) {
  const std::vector<std::pair<Shape, Shape>> cases = {{{2, 3, 4}, {2, 3, 4}},
                                                      {{2, 3, 4}, {4}},
                                                      {{2, 3, 4}, {3, 1}},
                                                      {{2, 1, 4}, {1, 3, 1}},
                                                      {{5}, {}},
                                                      {{}, {5}},
                                                      {{1}, {1}},
                                                      {{4, 1, 1, 3}, {1, 5, 2, 1}},
                                                      {{2, 3, 4}, {2, 1, 4}},
                                                      {{1, 1, 7}, {3, 1, 1}},
                                                      {{2, 0, 3}, {1, 3}},
                                                      {{6, 1}, {1, 1}},
                                                      {{3, 1, 5, 1}, {5, 2}},
                                                      {{1, 8}, {8, 1}},
                                                      {{2, 3, 1, 1}, {1, 1}}};
  uint32_t seed = 1;
  for (int threads : {1, 3}) {
    for (const auto& [sa, sb] : cases) {
      Shape out = *broadcast_shapes(sa, sb);
      auto a = random_floats(shape_numel(sa), seed++);
      auto b = random_floats(shape_numel(sb), seed++);
      auto y = run1(make_node("Sub", 2, 1), {tensor(a, sa), tensor(b, sb)}, threads);
      ASSERT_EQ(y.shape(), out);
      auto yv = vals<float>(y);
      for (int64_t o = 0; o < shape_numel(out); ++o) {
        const float ref =
            a[static_cast<size_t>(naive_offset(o, sa, out))] - b[static_cast<size_t>(naive_offset(o, sb, out))];
        ASSERT_EQ(yv[static_cast<size_t>(o)], ref) << shape_to_string(sa) << " vs " << shape_to_string(sb);
      }
    }
  }
}

TEST(Elementwise, LargeBroadcastSplitsAcrossThreads) {
  // Rows of 1000 split mid-row between chunks must still line up.
  const Shape sa = {300, 1000};
  const Shape sb = {300, 1};
  auto a = random_floats(shape_numel(sa), 7);
  auto b = random_floats(300, 8);
  auto y = run1(make_node("Mul", 2, 1), {tensor(a, sa), tensor(b, sb)}, 7);
  auto yv = vals<float>(y);
  for (int64_t i = 0; i < 300 * 1000; ++i) ASSERT_EQ(yv[i], a[i] * b[i / 1000]) << i;
}

TEST(Elementwise, IntegerDivisionTruncatesAndNeverTraps) {
  const int32_t min = std::numeric_limits<int32_t>::min();
  auto y =
      run1(make_node("Div", 2, 1), {tensor<int32_t>({7, -7, 7, min, 5}, {5}), tensor<int32_t>({2, 2, 0, -1, -5}, {5})});
  EXPECT_EQ(vals<int32_t>(y), (std::vector<int32_t>{3, -3, 0, min, -1}));
}

TEST(Elementwise, IntegerArithmeticWraps) {
  auto y = run1(make_node("Add", 2, 1), {tensor<uint8_t>({250, 1}, {2}), tensor<uint8_t>({10, 1}, {2})});
  EXPECT_EQ(vals<uint8_t>(y), (std::vector<uint8_t>{4, 2}));
  auto m = run1(make_node("Mul", 2, 1), {tensor<uint16_t>({65535}, {1}), tensor<uint16_t>({65535}, {1})});
  EXPECT_EQ(vals<uint16_t>(m), (std::vector<uint16_t>{1}));
}

TEST(Elementwise, ModFollowsDivisorSignUnlessFmod) {
  Tensor x = tensor<int64_t>({-4, 7, 5, 4, -7, 8}, {6});
  Tensor d = tensor<int64_t>({2, -3, 8, -2, 3, 5}, {6});
  auto m = run1(make_node("Mod", 2, 1), {x, d});
  EXPECT_EQ(vals<int64_t>(m), (std::vector<int64_t>{0, -2, 5, 0, 2, 3}));
  auto f = run1(make_node("Mod", 2, 1, 17, {{"fmod", int64_t{1}}}), {x, d});
  EXPECT_EQ(vals<int64_t>(f), (std::vector<int64_t>{0, 1, 5, 0, -1, 3}));
  auto z = run1(make_node("Mod", 2, 1),
                {tensor<int32_t>({5, std::numeric_limits<int32_t>::min()}, {2}), tensor<int32_t>({0, -1}, {2})});
  EXPECT_EQ(vals<int32_t>(z), (std::vector<int32_t>{0, 0}));
  auto ff = run1(make_node("Mod", 2, 1, 17, {{"fmod", int64_t{1}}}),
                 {tensor<float>({-4.5f, 7.5f}, {2}), tensor<float>({2.0f, -2.0f}, {2})});
  EXPECT_EQ(vals<float>(ff), (std::vector<float>{-0.5f, 1.5f}));
  auto fp = run1(make_node("Mod", 2, 1), {tensor<float>({-4.5f, 7.5f}, {2}), tensor<float>({2.0f, -2.0f}, {2})});
  EXPECT_EQ(vals<float>(fp), (std::vector<float>{1.5f, -0.5f}));
}

TEST(Elementwise, PowMixedTypes) {
  auto a = run1(make_node("Pow", 2, 1), {tensor<int64_t>({1, 2, 3}, {3}), tensor<float>({4, 5, 6}, {3})});
  EXPECT_EQ(vals<int64_t>(a), (std::vector<int64_t>{1, 32, 729}));
  auto b = run1(make_node("Pow", 2, 1), {tensor<float>({1, 2, 3}, {3}), tensor<int32_t>({4, 5, 6}, {3})});
  EXPECT_EQ(vals<float>(b), (std::vector<float>{1, 32, 729}));
  auto c = run1(make_node("Pow", 2, 1), {tensor<int32_t>({2, 1, -1, 3}, {4}), tensor<int32_t>({10, -3, -3, -1}, {4})});
  EXPECT_EQ(vals<int32_t>(c), (std::vector<int32_t>{1024, 1, -1, 0}));
  auto sq = run1(make_node("Pow", 2, 1), {tensor<float>({-3, 0.5f}, {2}), Tensor::scalar<float>(2.0f)});
  EXPECT_EQ(vals<float>(sq), (std::vector<float>{9, 0.25f}));
  auto rt = run1(make_node("Pow", 2, 1), {tensor<float>({4, -0.0f, -INFINITY}, {3}), Tensor::scalar<float>(0.5f)});
  auto rv = vals<float>(rt);
  EXPECT_EQ(rv[0], 2.0f);
  EXPECT_FALSE(std::signbit(rv[1]));
  EXPECT_EQ(rv[2], INFINITY);
}

TEST(Elementwise, BitShiftAndBitwise) {
  auto l = run1(make_node("BitShift", 2, 1, 17, {{"direction", std::string("LEFT")}}),
                {tensor<uint8_t>({16, 4, 1, 1}, {4}), tensor<uint8_t>({1, 2, 3, 9}, {4})});
  EXPECT_EQ(vals<uint8_t>(l), (std::vector<uint8_t>{32, 16, 8, 0}));
  auto r = run1(make_node("BitShift", 2, 1, 17, {{"direction", std::string("RIGHT")}}),
                {tensor<uint32_t>({16, 4, 1}, {3}), tensor<uint32_t>({1, 2, 40}, {3})});
  EXPECT_EQ(vals<uint32_t>(r), (std::vector<uint32_t>{8, 1, 0}));
  auto bad = run_node(make_node("BitShift", 2, 1, 17, {{"direction", std::string("UP")}}),
                      {tensor<uint8_t>({1}, {1}), tensor<uint8_t>({1}, {1})});
  EXPECT_FALSE(bad.ok());
  auto x = run1(make_node("BitwiseXor", 2, 1, 18), {tensor<int32_t>({5, -1}, {2}), tensor<int32_t>({3}, {1})});
  EXPECT_EQ(vals<int32_t>(x), (std::vector<int32_t>{6, -4}));
}

TEST(Elementwise, ComparisonsAndLogic) {
  Tensor a = tensor<float>({1, 2, 3}, {3});
  Tensor b = tensor<float>({2}, {1});
  EXPECT_EQ(vals<bool>(run1(make_node("Less", 2, 1), {a, b})), (std::vector<bool>{true, false, false}));
  EXPECT_EQ(vals<bool>(run1(make_node("GreaterOrEqual", 2, 1), {a, b})), (std::vector<bool>{false, true, true}));
  EXPECT_EQ(vals<bool>(run1(make_node("Equal", 2, 1), {a, b})), (std::vector<bool>{false, true, false}));
  auto s =
      run1(make_node("Equal", 2, 1, 19), {tensor<std::string>({"a", "bc", ""}, {3}), tensor<std::string>({"bc"}, {1})});
  EXPECT_EQ(vals<bool>(s), (std::vector<bool>{false, true, false}));
  auto x = run1(make_node("Xor", 2, 1), {tensor<bool>({true, true, false}, {3}), tensor<bool>({true}, {1})});
  EXPECT_EQ(vals<bool>(x), (std::vector<bool>{false, false, true}));
}

TEST(Elementwise, BinaryRejectsBadInputs) {
  EXPECT_FALSE(run_node(make_node("Add", 2, 1), {tensor<float>({1, 2, 3}, {3}), tensor<float>({1, 2}, {2})}).ok());
  EXPECT_FALSE(run_node(make_node("Add", 2, 1), {tensor<float>({1}, {1}), tensor<double>({1}, {1})}).ok());
  EXPECT_FALSE(run_node(make_node("Add", 2, 1), {tensor<float>({1}, {1})}).ok());  // missing input
}

TEST(Elementwise, LegacyBroadcastBeforeOpset7) {
  Tensor a = Tensor::from_vector<float>(std::vector<float>(24, 1.0f), {2, 3, 4});
  Tensor b = tensor<float>({10, 20, 30}, {3});
  auto y = run1(make_node("Add", 2, 1, 6, {{"broadcast", int64_t{1}}, {"axis", int64_t{1}}}), {a, b});
  ASSERT_EQ(y.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(y.data<float>()[4], 21.0f);
  EXPECT_EQ(y.data<float>()[23], 31.0f);
  EXPECT_FALSE(run_node(make_node("Add", 2, 1, 6), {a, b}).ok());  // broadcast not set
}

// --- variadic, Where, Clip ---------------------------------------------------

TEST_P(ElementwiseIsa, VariadicBroadcastAndNaN) {
  Tensor a = tensor<float>({1, 5, NAN}, {3});
  Tensor b = tensor<float>({3}, {1});
  Tensor c = tensor<float>({2, 2, 2, 0, 0, 0}, {2, 3});
  auto mx = run1(make_node("Max", 3, 1), {a, b, c});
  ASSERT_EQ(mx.shape(), (Shape{2, 3}));
  auto mv = vals<float>(mx);
  EXPECT_EQ(mv[0], 3.0f);
  EXPECT_EQ(mv[1], 5.0f);
  EXPECT_TRUE(std::isnan(mv[2]));
  auto mean =
      run1(make_node("Mean", 3, 1), {tensor<float>({1, 2}, {2}), tensor<float>({3}, {1}), tensor<float>({5, 7}, {2})});
  EXPECT_EQ(vals<float>(mean), (std::vector<float>{3, 4}));
  auto sum1 = run1(make_node("Sum", 1, 1), {a});
  EXPECT_EQ(sum1.shape(), (Shape{3}));
  auto mn = run1(make_node("Min", 2, 1), {tensor<int8_t>({-3, 4}, {2}), tensor<int8_t>({0}, {1})});
  EXPECT_EQ(vals<int8_t>(mn), (std::vector<int8_t>{-3, 0}));
}

TEST_P(ElementwiseIsa, WhereBroadcastsThreeWays) {
  Tensor c = tensor<bool>({true, false}, {2, 1});
  Tensor x = tensor<int64_t>({1, 2, 3}, {3});
  Tensor y = tensor<int64_t>({-1}, {});
  auto w = run1(make_node("Where", 3, 1), {c, x, y});
  ASSERT_EQ(w.shape(), (Shape{2, 3}));
  EXPECT_EQ(vals<int64_t>(w), (std::vector<int64_t>{1, 2, 3, -1, -1, -1}));
  auto s = run1(make_node("Where", 3, 1), {tensor<bool>({false, true}, {2}), tensor<std::string>({"a", "b"}, {2}),
                                           tensor<std::string>({"z"}, {1})});
  EXPECT_EQ(vals<std::string>(s), (std::vector<std::string>{"z", "b"}));
  EXPECT_FALSE(run_node(make_node("Where", 3, 1), {x, x, y}).ok());  // condition not bool
}

TEST_P(ElementwiseIsa, ClipAttributesAndInputs) {
  Tensor x = tensor<float>({-6, 0, 6, NAN}, {4});
  auto old = run1(make_node("Clip", 1, 1, 6, {{"min", -5.0f}, {"max", 5.0f}}), {x});
  auto ov = vals<float>(old);
  EXPECT_EQ(ov[0], -5.0f);
  EXPECT_EQ(ov[2], 5.0f);
  EXPECT_TRUE(std::isnan(ov[3]));
  auto only_max = run1(make_node("Clip", 3, 1, 13), {x, Tensor(), Tensor::scalar<float>(1.0f)});
  EXPECT_EQ(vals<float>(only_max)[0], -6.0f);
  EXPECT_EQ(vals<float>(only_max)[2], 1.0f);
  auto crossed = run1(make_node("Clip", 3, 1, 13), {x, Tensor::scalar<float>(2.0f), Tensor::scalar<float>(1.0f)});
  EXPECT_EQ(vals<float>(crossed)[1], 1.0f);
  auto i8 = run1(make_node("Clip", 2, 1, 13), {tensor<int8_t>({-100, 50}, {2}), Tensor::scalar<int8_t>(0)});
  EXPECT_EQ(vals<int8_t>(i8), (std::vector<int8_t>{0, 50}));
  EXPECT_FALSE(run_node(make_node("Clip", 2, 1, 13), {x, tensor<float>({1, 2}, {2})}).ok());
}

// --- Cast --------------------------------------------------------------------

TEST_P(ElementwiseIsa, CastNumbers) {
  Tensor x = tensor<float>({1.9f, -1.9f, NAN, 1e10f, -1e10f, 0.0f}, {6});
  auto i = run1(make_node("Cast", 1, 1, 13, {{"to", int64_t{6}}}), {x});
  const int32_t max = std::numeric_limits<int32_t>::max();
  const int32_t min = std::numeric_limits<int32_t>::min();
  EXPECT_EQ(vals<int32_t>(i), (std::vector<int32_t>{1, -1, 0, max, min, 0}));
  auto b = run1(make_node("Cast", 1, 1, 13, {{"to", int64_t{9}}}), {x});
  EXPECT_EQ(vals<bool>(b), (std::vector<bool>{true, true, true, true, true, false}));
  auto h = run1(make_node("Cast", 1, 1, 13, {{"to", int64_t{10}}}), {tensor<double>({0.1, 65504.0, 1e6}, {3})});
  EXPECT_EQ(h.data<Float16>()[0].bits, Float16(0.1f).bits);
  EXPECT_TRUE(std::isinf(static_cast<float>(h.data<Float16>()[2])));
  auto same = run1(make_node("Cast", 1, 1, 13, {{"to", int64_t{1}}}), {x});
  EXPECT_EQ(same.raw_data(), x.raw_data());  // a view, no copy
  auto legacy = run1(make_node("Cast", 1, 1, 1, {{"to", std::string("DOUBLE")}}), {x});
  EXPECT_EQ(legacy.dtype(), DataType::kFloat64);
  auto like = run1(make_node("CastLike", 2, 1, 15), {x, tensor<int64_t>({0}, {1})});
  EXPECT_EQ(like.dtype(), DataType::kInt64);
  EXPECT_FALSE(run_node(make_node("Cast", 1, 1, 19, {{"to", int64_t{17}}}), {x}).ok());  // float8
}

TEST(Elementwise, CastStrings) {
  auto s = run1(make_node("Cast", 1, 1, 13, {{"to", int64_t{8}}}),
                {tensor<float>({0.039187793f, 1.0f, -2.5f, 1e-5f, 1e20f, NAN, -INFINITY}, {7})});
  EXPECT_EQ(vals<std::string>(s),
            (std::vector<std::string>{"0.039187793", "1.0", "-2.5", "1e-05", "1e+20", "NaN", "-INF"}));
  auto h = run1(make_node("Cast", 1, 1, 13, {{"to", int64_t{8}}}), {tensor<Float16>({Float16(0.1f)}, {1})});
  EXPECT_EQ(vals<std::string>(h), (std::vector<std::string>{"0.1"}));
  auto f = run1(make_node("Cast", 1, 1, 13, {{"to", int64_t{1}}}),
                {tensor<std::string>({"0.47892547", "+INF", "-inf", "NaN", "1E8", " 2 "}, {6})});
  auto fv = vals<float>(f);
  EXPECT_EQ(fv[0], 0.47892547f);
  EXPECT_EQ(fv[1], INFINITY);
  EXPECT_EQ(fv[2], -INFINITY);
  EXPECT_TRUE(std::isnan(fv[3]));
  EXPECT_EQ(fv[4], 1e8f);
  EXPECT_EQ(fv[5], 2.0f);
  auto i = run1(make_node("Cast", 1, 1, 13, {{"to", int64_t{7}}}),
                {tensor<std::string>({"9007199254740993", "100.5", "-3"}, {3})});
  EXPECT_EQ(vals<int64_t>(i), (std::vector<int64_t>{9007199254740993LL, 100, -3}));
  EXPECT_FALSE(run_node(make_node("Cast", 1, 1, 13, {{"to", int64_t{1}}}), {tensor<std::string>({"abc"}, {1})}).ok());
}

}  // namespace
}  // namespace deskml
