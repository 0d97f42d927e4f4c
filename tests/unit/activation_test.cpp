// Activation kernels and Softmax/LogSoftmax/Hardmax, against double-precision
// references of the ONNX formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>

#include "isa_test_util.hpp"
#include "kernel_harness.hpp"
#include "kernels/cpu/avx512_math.hpp"
#include "kernels/cpu/elementwise_isa.hpp"
#include "kernels/cpu/post_ops.hpp"

namespace deskml {
namespace {

using testing::make_node;
using testing::run_node;

Tensor run1(const graph::Node& node, const std::vector<Tensor>& inputs, int threads = 1) {
  auto r = run_node(node, inputs, threads);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  if (!r.ok()) return {};
  return (*r)[0];
}

std::vector<float> sweep() {
  std::vector<float> xs = {0.0f, -0.0f, 1e-7f, -1e-7f, 50.0f, -50.0f, 100.0f, -100.0f, INFINITY, -INFINITY};
  for (float x = -12.0f; x < 12.0f; x += 0.01f) xs.push_back(x);
  return xs;
}

void expect_matches(const std::string& op, std::map<std::string, graph::AttributeValue> attrs,
                    const std::function<double(double)>& ref, double rtol = 2e-6, double atol = 1e-7) {
  const auto xs = sweep();
  Tensor x = Tensor::from_vector<float>(xs, {static_cast<int64_t>(xs.size())});
  auto y = run1(make_node(op, 1, 1, 17, std::move(attrs)), {x});
  ASSERT_TRUE(y.defined());
  for (size_t i = 0; i < xs.size(); ++i) {
    const double r = ref(xs[i]);
    const float got = y.data<float>()[i];
    if (std::isnan(r)) {
      EXPECT_TRUE(std::isnan(got)) << op << " at " << xs[i];
    } else if (std::isinf(r)) {
      EXPECT_EQ(got, static_cast<float>(r)) << op << " at " << xs[i];
    } else {
      EXPECT_NEAR(got, r, atol + rtol * std::abs(r)) << op << " at " << xs[i];
    }
  }
  // NaN in, NaN out (Shrink's reference maps NaN to 0).
  auto n = run1(make_node(op, 1, 1, 17), {Tensor::from_vector<float>({NAN}, {1})});
  EXPECT_EQ(std::isnan(n.data<float>()[0]), op != "Shrink") << op;
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }

// Each test body runs on every instruction set level (isa_test_util.hpp).
class ActivationIsa : public testing::IsaTest {};
INSTANTIATE_TEST_SUITE_P(Isa, ActivationIsa, testing::all_isas(), testing::isa_name);

TEST_P(ActivationIsa, MatchReferences) {
  expect_matches("Relu", {}, [](double x) { return x < 0 ? 0.0 : x; });
  expect_matches("LeakyRelu", {{"alpha", 0.1f}}, [](double x) { return x < 0 ? x * static_cast<double>(0.1f) : x; });
  expect_matches("Sigmoid", {}, sigmoid);
  expect_matches("Tanh", {}, [](double x) { return std::tanh(x); });
  expect_matches(
      "HardSigmoid", {}, [](double x) { return std::clamp(0.2 * x + 0.5, 0.0, 1.0); }, 1e-6);
  expect_matches(
      "HardSwish", {}, [](double x) { return x * std::clamp(x / 6 + 0.5, 0.0, 1.0); }, 1e-6);
  expect_matches("Elu", {{"alpha", 2.0f}}, [](double x) { return x < 0 ? 2.0 * std::expm1(x) : x; });
  expect_matches("Selu", {}, [](double x) {
    const double a = 1.67326319217681884765625, g = 1.05070102214813232421875;
    return x <= 0 ? g * a * std::expm1(x) : g * x;
  });
  expect_matches("Celu", {{"alpha", 2.0f}}, [](double x) { return x < 0 ? 2.0 * std::expm1(x / 2.0) : x; });
  expect_matches("Softplus", {}, softplus);
  expect_matches("Softsign", {}, [](double x) { return std::isinf(x) ? (x > 0 ? 1.0 : -1.0) : x / (1 + std::abs(x)); });
  expect_matches("ThresholdedRelu", {{"alpha", 2.0f}}, [](double x) { return x > 2.0 ? x : 0.0; });
  expect_matches(
      "Mish", {}, [](double x) { return std::isinf(x) ? (x > 0 ? x : 0.0) : x * std::tanh(softplus(x)); }, 4e-6);
  // Float erf cannot resolve 1 + erf(x) below ~1e-7, so Gelu's far negative tail is only absolutely accurate.
  expect_matches(
      "Gelu", {},
      [](double x) { return std::isinf(x) ? (x > 0 ? x : 0.0) : 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }, 4e-6,
      1e-6);
  expect_matches(
      "Gelu", {{"approximate", std::string("tanh")}},
      [](double x) {
        if (std::isinf(x)) return x > 0 ? x : 0.0;
        return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
      },
      4e-6);
  expect_matches("Shrink", {{"lambd", 1.5f}, {"bias", 0.5f}},
                 [](double x) { return x < -1.5 ? x + 0.5 : (x > 1.5 ? x - 0.5 : 0.0); });
}

TEST_P(ActivationIsa, ReluOnIntegersAndHalf) {
  auto y = run1(make_node("Relu", 1, 1, 14), {Tensor::from_vector<int32_t>({-3, 0, 4}, {3})});
  EXPECT_EQ(y.data<int32_t>()[0], 0);
  EXPECT_EQ(y.data<int32_t>()[2], 4);
  auto h = run1(make_node("Sigmoid", 1, 1), {Tensor::from_vector<Float16>({Float16(0.0f)}, {1})});
  EXPECT_EQ(static_cast<float>(h.data<Float16>()[0]), 0.5f);
}

TEST(Activation, PReluBroadcastsSlope) {
  Tensor x = Tensor::from_vector<float>({-1, 2, -3, 4, -5, 6}, {1, 2, 3});
  Tensor slope = Tensor::from_vector<float>({0.5f, 2.0f}, {2, 1});
  auto y = run1(make_node("PRelu", 2, 1), {x, slope});
  EXPECT_EQ(std::vector<float>(y.data<float>(), y.data<float>() + 6), (std::vector<float>{-0.5f, 2, -1.5f, 4, -10, 6}));
  // The slope must broadcast to X, not grow it.
  EXPECT_FALSE(run_node(make_node("PRelu", 2, 1), {x, Tensor::from_vector<float>({1, 2, 3, 4}, {4, 1, 1})}).ok());
}

TEST(Activation, PReluBeforeOpset7IsPerChannel) {
  Tensor x = Tensor::from_vector<float>({-1, -1, -1, -1, -1, -1}, {1, 3, 2});
  Tensor slope = Tensor::from_vector<float>({1, 2, 3}, {3});
  auto y = run1(make_node("PRelu", 2, 1, 6), {x, slope});
  EXPECT_EQ(std::vector<float>(y.data<float>(), y.data<float>() + 6), (std::vector<float>{-1, -1, -2, -2, -3, -3}));
}

TEST(Activation, GeluRejectsUnknownApproximation) {
  EXPECT_FALSE(run_node(make_node("Gelu", 1, 1, 20, {{"approximate", std::string("fast")}}),
                        {Tensor::from_vector<float>({1}, {1})})
                   .ok());
}

// --- Softmax family ----------------------------------------------------------

std::vector<double> ref_softmax(const std::vector<float>& x, int64_t outer, int64_t len, int64_t inner, bool log) {
  std::vector<double> y(x.size());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t j = 0; j < inner; ++j) {
      double m = -INFINITY;
      for (int64_t k = 0; k < len; ++k) m = std::max(m, static_cast<double>(x[(o * len + k) * inner + j]));
      double s = 0;
      for (int64_t k = 0; k < len; ++k) s += std::exp(x[(o * len + k) * inner + j] - m);
      for (int64_t k = 0; k < len; ++k) {
        const double v = x[(o * len + k) * inner + j] - m;
        y[(o * len + k) * inner + j] = log ? v - std::log(s) : std::exp(v) / s;
      }
    }
  }
  return y;
}

void check_softmax(const std::string& op, int opset, int64_t axis, const Shape& shape, int64_t outer, int64_t len,
                   int64_t inner, int threads = 1) {
  std::mt19937 rng(static_cast<uint32_t>(outer * 31 + len * 7 + inner));
  std::normal_distribution<float> dist(0.0f, 3.0f);
  std::vector<float> xs(static_cast<size_t>(shape_numel(shape)));
  for (auto& v : xs) v = dist(rng);
  auto y = run1(make_node(op, 1, 1, opset, {{"axis", axis}}), {Tensor::from_vector<float>(xs, shape)}, threads);
  ASSERT_TRUE(y.defined());
  const auto ref = ref_softmax(xs, outer, len, inner, op == "LogSoftmax");
  for (size_t i = 0; i < xs.size(); ++i) {
    ASSERT_NEAR(y.data<float>()[i], ref[i], 1e-6 + 1e-5 * std::abs(ref[i])) << op << " opset " << opset << " i=" << i;
  }
}

TEST_P(ActivationIsa, AxisSemanticsBeforeAndFromOpset13) {
  for (const std::string op : {"Softmax", "LogSoftmax"}) {
    // Opset 13: along the axis alone.
    check_softmax(op, 13, -1, {3, 4, 5}, 12, 5, 1);
    check_softmax(op, 13, 1, {3, 4, 5}, 3, 4, 5);
    check_softmax(op, 13, 0, {3, 4, 5}, 1, 3, 20);
    check_softmax(op, 13, 1, {2, 7, 300}, 2, 7, 300, 3);  // several column blocks
    // Opset 11: coerced to 2-D at axis.
    check_softmax(op, 11, 1, {3, 4, 5}, 3, 20, 1);
    check_softmax(op, 11, 0, {3, 4, 5}, 1, 60, 1);
    check_softmax(op, 11, -1, {3, 4, 5}, 12, 5, 1);
    check_softmax(op, 11, 3, {3, 4, 5}, 60, 1, 1);
    check_softmax(op, 13, -1, {64, 1000}, 64, 1000, 1, 4);
  }
}

TEST_P(ActivationIsa, LargeAndInfiniteInputs) {
  auto y = run1(make_node("Softmax", 1, 1, 13), {Tensor::from_vector<float>({10000, 10001, -INFINITY, 10003}, {4})});
  const float* p = y.data<float>();
  EXPECT_NEAR(p[3], 1.0 / (1 + std::exp(-2.0) + std::exp(-3.0)), 1e-6);
  EXPECT_EQ(p[2], 0.0f);
  auto l = run1(make_node("LogSoftmax", 1, 1, 13), {Tensor::from_vector<float>({1000, 1000}, {2})});
  EXPECT_NEAR(l.data<float>()[0], -std::log(2.0), 1e-6);
}

TEST_P(ActivationIsa, HalfComputesInFloat) {
  auto y = run1(make_node("Softmax", 1, 1, 13), {Tensor::from_vector<Float16>({Float16(1.0f), Float16(1.0f)}, {2})});
  ASSERT_EQ(y.dtype(), DataType::kFloat16);
  EXPECT_EQ(static_cast<float>(y.data<Float16>()[0]), 0.5f);
}

TEST(Softmax, RejectsBadAxis) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2});
  EXPECT_FALSE(run_node(make_node("Softmax", 1, 1, 13, {{"axis", int64_t{2}}}), {x}).ok());
  EXPECT_FALSE(run_node(make_node("Softmax", 1, 1, 11, {{"axis", int64_t{3}}}), {x}).ok());
  EXPECT_FALSE(run_node(make_node("Hardmax", 1, 1, 13, {{"axis", int64_t{-3}}}), {x}).ok());
}

TEST(Hardmax, FirstMaxWinsAlongAxis) {
  Tensor x = Tensor::from_vector<float>({3, 3, 3, 1, 0, 5, 5, 2}, {2, 4});
  auto y = run1(make_node("Hardmax", 1, 1, 13), {x});
  EXPECT_EQ(std::vector<float>(y.data<float>(), y.data<float>() + 8), (std::vector<float>{1, 0, 0, 0, 0, 1, 0, 0}));
  auto c = run1(make_node("Hardmax", 1, 1, 13, {{"axis", int64_t{0}}}), {x});
  EXPECT_EQ(std::vector<float>(c.data<float>(), c.data<float>() + 8), (std::vector<float>{1, 0, 0, 0, 0, 1, 1, 1}));
  auto old = run1(make_node("Hardmax", 1, 1, 11, {{"axis", int64_t{0}}}), {x});  // over all 8
  EXPECT_EQ(std::vector<float>(old.data<float>(), old.data<float>() + 8), (std::vector<float>{0, 0, 0, 0, 0, 1, 0, 0}));
}

// A fused SiLU applied after the producer (FusedActivation::apply, the pass
// FusedConv runs when faster_unfused()): close to x * sigmoid(alpha x) across
// the whole range, +inf and NaN kept, odd lengths covered.
TEST(Activation, FusedSiluPassMatchesTheFormula) {
  for (float alpha : {1.0f, 1.702f}) {
    kernels::cpu::FusedActivation act;
    act.name = "Swish";
    act.alpha = alpha;
    std::vector<float> x;
    for (float v = -120.0f; v <= 120.0f; v += 0.0137f) x.push_back(v);
    x.push_back(std::numeric_limits<float>::infinity());
    x.push_back(std::numeric_limits<float>::quiet_NaN());
    x.push_back(0.0f);
    std::vector<float> y = x;
    act.apply(y.data(), static_cast<int64_t>(y.size()), 2);
    for (size_t i = 0; i + 3 < x.size(); ++i) {
      const double v = x[i], want = v / (1.0 + std::exp(-static_cast<double>(alpha) * v));
      ASSERT_NEAR(y[i], want, 1e-5 * std::fabs(want) + 1e-30) << "x = " << v << ", alpha " << alpha;
    }
    EXPECT_EQ(y[y.size() - 3], std::numeric_limits<float>::infinity());
    EXPECT_TRUE(std::isnan(y[y.size() - 2]));
    EXPECT_EQ(y[y.size() - 1], 0.0f);
  }
}

#if defined(__GNUC__) && defined(__x86_64__)
// The attention kernel's AVX-512 softmax row: every length around the vector
// width, a mask with -inf, a NaN, against a double-precision reference.
TEST(Activation, Avx512SoftmaxRowMatchesTheReference) {
  if (!kernels::cpu::ew::has_avx512()) GTEST_SKIP() << "no AVX-512 here";
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-30.0f, 30.0f);
  for (int64_t n : {1, 5, 15, 16, 17, 31, 32, 33, 128, 130}) {
    for (bool masked : {false, true}) {
      std::vector<float> x(static_cast<size_t>(n)), m(static_cast<size_t>(n));
      for (auto& v : x) v = dist(rng);
      for (int64_t i = 0; i < n; ++i) m[static_cast<size_t>(i)] = i % 3 == 1 ? -INFINITY : dist(rng) * 0.1f;
      if (masked) m[0] = 0.0f;  // at least one key stays open
      std::vector<float> y = x;
      kernels::cpu::avx512::softmax_row(y.data(), masked ? m.data() : nullptr, n, 0.125f);
      std::vector<double> want(static_cast<size_t>(n));
      double top = -INFINITY, sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        want[static_cast<size_t>(i)] = x[static_cast<size_t>(i)] * 0.125 + (masked ? m[static_cast<size_t>(i)] : 0.0);
        top = std::max(top, want[static_cast<size_t>(i)]);
      }
      for (auto& w : want) sum += w = std::exp(w - top);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_NEAR(y[static_cast<size_t>(i)], want[static_cast<size_t>(i)] / sum,
                    1e-6 + 1e-5 * want[static_cast<size_t>(i)] / sum)
            << "n " << n << " masked " << masked << " at " << i;
      }
    }
  }
  std::vector<float> bad = {1.0f, NAN, 2.0f};
  kernels::cpu::avx512::softmax_row(bad.data(), nullptr, 3, 1.0f);
  for (float v : bad) EXPECT_TRUE(std::isnan(v));
}
#endif

}  // namespace
}  // namespace deskml
