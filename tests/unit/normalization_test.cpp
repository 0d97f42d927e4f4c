// Normalization kernels: BatchNormalization, InstanceNormalization,
// LayerNormalization, GroupNormalization, LRN, MeanVarianceNormalization, LpNormalization.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernel_harness.hpp"

namespace deskml {
namespace {

using graph::AttributeValue;
using testing::make_node;
using testing::run_node;

Tensor f32(std::vector<float> v, Shape s) { return Tensor::from_vector<float>(v, std::move(s)); }

std::vector<float> random_floats(int64_t n, uint32_t seed, float lo = -2.f, float hi = 2.f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(gen);
  return v;
}

std::vector<Tensor> run(const graph::Node& node, const std::vector<Tensor>& inputs, int threads = 1) {
  auto r = run_node(node, inputs, threads);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? r.value() : std::vector<Tensor>{};
}

void expect_near_all(const Tensor& got, const std::vector<double>& want, double tol = 1e-4) {
  ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size()));
  for (int64_t i = 0; i < got.numel(); ++i) {
    EXPECT_NEAR(got.float_at(i), want[static_cast<size_t>(i)], tol * (1 + std::abs(want[static_cast<size_t>(i)])))
        << "at " << i;
  }
}

// Normalizes x viewed as (groups, len) with population statistics.
std::vector<double> standardize(const std::vector<float>& x, int64_t groups, int64_t len, double eps,
                                std::vector<double>* means = nullptr, std::vector<double>* invs = nullptr) {
  std::vector<double> y(x.size());
  for (int64_t g = 0; g < groups; ++g) {
    double m = 0, v = 0;
    for (int64_t i = 0; i < len; ++i) m += x[static_cast<size_t>(g * len + i)];
    m /= static_cast<double>(len);
    for (int64_t i = 0; i < len; ++i) v += std::pow(x[static_cast<size_t>(g * len + i)] - m, 2);
    v /= static_cast<double>(len);
    const double inv = 1 / std::sqrt(v + eps);
    if (means) means->push_back(m);
    if (invs) invs->push_back(inv);
    for (int64_t i = 0; i < len; ++i)
      y[static_cast<size_t>(g * len + i)] = (x[static_cast<size_t>(g * len + i)] - m) * inv;
  }
  return y;
}

TEST(BatchNorm, InferenceMatchesFormula) {
  const Shape shape = {2, 3, 2, 2};
  const auto x = random_floats(24, 1);
  const std::vector<float> s = {0.5f, 1.f, -2.f}, b = {0.f, 1.f, 2.f}, m = {0.1f, -0.2f, 0.3f}, v = {1.f, 0.5f, 2.f};
  std::vector<double> want(24);
  for (int64_t i = 0; i < 24; ++i) {
    const auto c = static_cast<size_t>((i / 4) % 3);
    want[static_cast<size_t>(i)] = s[c] * (x[static_cast<size_t>(i)] - m[c]) / std::sqrt(v[c] + 1e-5) + b[c];
  }
  for (int opset : {6, 9, 15}) {
    auto node = make_node("BatchNormalization", 5, 1, opset, {});
    auto out = run(node, {f32(x, shape), f32(s, {3}), f32(b, {3}), f32(m, {3}), f32(v, {3})});
    ASSERT_EQ(out.size(), 1u);
    expect_near_all(out[0], want);
  }
  // (N, C) input; float16 data with float parameters (opset 15 allows mixed types).
  std::vector<Float16> xh;
  for (int i = 0; i < 6; ++i) xh.push_back(Float16(x[static_cast<size_t>(i)]));
  auto node = make_node("BatchNormalization", 5, 1, 15, {});
  auto out = run(node, {Tensor::from_vector<Float16>(xh, {2, 3}), f32(s, {3}), f32(b, {3}), f32(m, {3}), f32(v, {3})});
  ASSERT_EQ(out[0].dtype(), DataType::kFloat16);
  for (int64_t i = 0; i < 6; ++i) {
    const auto c = static_cast<size_t>(i % 3);
    const double xv = static_cast<float>(xh[static_cast<size_t>(i)]);
    EXPECT_NEAR(out[0].float_at(i), s[c] * (xv - m[c]) / std::sqrt(v[c] + 1e-5) + b[c], 1e-2);
  }
}

TEST(BatchNorm, TrainingModeOutputsRunningStats) {
  const Shape shape = {2, 2, 3};
  const auto x = random_floats(12, 2);
  const std::vector<float> s = {1.f, 2.f}, b = {0.f, -1.f}, m = {0.5f, -0.5f}, v = {1.f, 2.f};
  auto node = make_node("BatchNormalization", 5, 3, 15, {{"training_mode", int64_t{1}}, {"momentum", 0.8f}});
  auto out = run(node, {f32(x, shape), f32(s, {2}), f32(b, {2}), f32(m, {2}), f32(v, {2})});
  ASSERT_EQ(out.size(), 3u);
  std::vector<double> want_y(12), want_m(2), want_v(2);
  for (size_t c = 0; c < 2; ++c) {
    double mean = 0, var = 0;
    for (size_t n = 0; n < 2; ++n)
      for (size_t i = 0; i < 3; ++i) mean += x[n * 6 + c * 3 + i];
    mean /= 6;
    for (size_t n = 0; n < 2; ++n)
      for (size_t i = 0; i < 3; ++i) var += std::pow(x[n * 6 + c * 3 + i] - mean, 2);
    var /= 6;
    for (size_t n = 0; n < 2; ++n)
      for (size_t i = 0; i < 3; ++i)
        want_y[n * 6 + c * 3 + i] = s[c] * (x[n * 6 + c * 3 + i] - mean) / std::sqrt(var + 1e-5) + b[c];
    want_m[c] = m[c] * 0.8 + mean * 0.2;
    want_v[c] = v[c] * 0.8 + var * 0.2;
  }
  expect_near_all(out[0], want_y);
  expect_near_all(out[1], want_m);
  expect_near_all(out[2], want_v);
}

TEST(BatchNorm, NonSpatialAndBadShapes) {
  // opset 7, spatial=0: one statistic per (C, D) position.
  const auto x = random_floats(8, 3);
  const std::vector<float> s = {1, 2, 3, 4}, b = {0, 0, 1, 1}, m = {0, 1, 0, 1}, v = {1, 1, 4, 4};
  auto node = make_node("BatchNormalization", 5, 1, 7, {{"spatial", int64_t{0}}});
  auto out = run(node, {f32(x, {2, 2, 2}), f32(s, {2, 2}), f32(b, {2, 2}), f32(m, {2, 2}), f32(v, {2, 2})});
  std::vector<double> want(8);
  for (size_t i = 0; i < 8; ++i) {
    const size_t k = i % 4;
    want[i] = s[k] * (x[i] - m[k]) / std::sqrt(v[k] + 1e-5) + b[k];
  }
  expect_near_all(out[0], want);
  auto bad = make_node("BatchNormalization", 5, 1, 15, {});
  EXPECT_FALSE(run_node(bad, {f32(x, {2, 2, 2}), f32(s, {4}), f32(b, {4}), f32(m, {4}), f32(v, {4})}).ok());
  EXPECT_FALSE(run_node(bad, {f32({1, 2}, {2}), f32({1}, {1}), f32({1}, {1}), f32({1}, {1}), f32({1}, {1})}).ok());
}

TEST(InstanceNorm, MatchesReference) {
  const auto x = random_floats(2 * 3 * 5, 4);
  auto node = make_node("InstanceNormalization", 3, 1, 6, {{"epsilon", 1e-3f}});
  auto out = run(node, {f32(x, {2, 3, 5}), f32({1, 2, 3}, {3}), f32({0, 0.5f, -1}, {3})});
  auto want = standardize(x, 6, 5, 1e-3);
  const double s[3] = {1, 2, 3}, b[3] = {0, 0.5, -1};
  for (size_t i = 0; i < want.size(); ++i) want[i] = want[i] * s[(i / 5) % 3] + b[(i / 5) % 3];
  expect_near_all(out[0], want);
  EXPECT_FALSE(run_node(node, {f32(x, {2, 3, 5}), f32({1, 2}, {2}), f32({0, 0}, {2})}).ok());
}

TEST(LayerNorm, AxesOutputsAndBroadcast) {
  const Shape shape = {2, 3, 4};
  const auto x = random_floats(24, 5);
  for (int64_t axis : {-1, 1, 0, -2}) {
    const int64_t a = axis < 0 ? axis + 3 : axis;
    const int64_t len = a == 0 ? 24 : a == 1 ? 12 : 4;
    const auto w = random_floats(len, 6), b = random_floats(len, 7);
    Shape ns(shape.begin() + a, shape.end());
    auto node = make_node("LayerNormalization", 3, 3, 17, {{"axis", axis}, {"epsilon", 1e-3f}});
    auto out = run(node, {f32(x, shape), f32(w, ns), f32(b, ns)});
    ASSERT_EQ(out.size(), 3u);
    std::vector<double> means, invs;
    auto want = standardize(x, 24 / len, len, 1e-3, &means, &invs);
    for (size_t i = 0; i < want.size(); ++i)
      want[i] = want[i] * w[i % static_cast<size_t>(len)] + b[i % static_cast<size_t>(len)];
    expect_near_all(out[0], want);
    expect_near_all(out[1], means);
    expect_near_all(out[2], invs);
    Shape stat_shape = shape;
    for (size_t d = static_cast<size_t>(a); d < 3; ++d) stat_shape[d] = 1;
    EXPECT_EQ(out[1].shape(), stat_shape);
    EXPECT_EQ(out[2].dtype(), DataType::kFloat32);
  }
  // No bias, scale broadcast from (1, 4) over the normalized shape (3, 4), threads > 1.
  auto node = make_node("LayerNormalization", 2, 1, 17, {{"axis", int64_t{1}}});
  auto out = run(node, {f32(x, shape), f32({1, 2, 3, 4}, {1, 4})}, 4);
  auto want = standardize(x, 2, 12, 1e-5);
  for (size_t i = 0; i < want.size(); ++i) want[i] *= static_cast<double>(i % 4 + 1);
  expect_near_all(out[0], want);
  // Bad scale shape and axis.
  EXPECT_FALSE(run_node(node, {f32(x, shape), f32({1, 2, 3}, {3})}).ok());
  auto bad_axis = make_node("LayerNormalization", 2, 1, 17, {{"axis", int64_t{3}}});
  EXPECT_FALSE(run_node(bad_axis, {f32(x, shape), f32({1}, {1})}).ok());
  // Not before opset 17.
  EXPECT_FALSE(run_node(make_node("LayerNormalization", 2, 1, 16, {}), {f32(x, shape), f32({1, 2, 3, 4}, {4})}).ok());
}

// Rows as a transformer has them (384 values), one with a tail past the last
// 16 (37), and rows far from zero (about 10000, their values 1 apart), whose
// mean and deviations must keep their low digits: float32 at 1 and 2 threads,
// against a float64 reference.
TEST(LayerNorm, LongRowsAndRowsFarFromZero) {
  for (const int64_t len : {int64_t{384}, int64_t{37}}) {
    for (const float offset : {0.0f, 10000.0f}) {
      const int64_t rows = 9;
      auto x = random_floats(rows * len, 11, offset - 0.5f, offset + 0.5f);
      const auto w = random_floats(len, 12), b = random_floats(len, 13);
      auto want = standardize(x, rows, len, 1e-5);
      for (size_t i = 0; i < want.size(); ++i)
        want[i] = want[i] * w[i % static_cast<size_t>(len)] + b[i % static_cast<size_t>(len)];
      auto node = make_node("LayerNormalization", 3, 1, 17, {});
      for (int threads : {1, 2}) {
        SCOPED_TRACE("len " + std::to_string(len) + " offset " + std::to_string(offset) + " threads " +
                     std::to_string(threads));
        auto out = run(node, {f32(x, {rows, len}), f32(w, {len}), f32(b, {len})}, threads);
        ASSERT_EQ(out.size(), 1u);
        expect_near_all(out[0], want);
      }
    }
  }
}

TEST(LayerNorm, HalfAndDouble) {
  const auto x = random_floats(16, 8);
  std::vector<Float16> xh;
  std::vector<double> xd;
  for (float v : x) {
    xh.push_back(Float16(v));
    xd.push_back(v);
  }
  auto want = standardize(x, 2, 8, 1e-5);
  auto node = make_node("LayerNormalization", 2, 1, 17, {});
  std::vector<Float16> wh(8, Float16(1.f));
  auto oh = run(node, {Tensor::from_vector<Float16>(xh, {2, 8}), Tensor::from_vector<Float16>(wh, {8})});
  ASSERT_EQ(oh[0].dtype(), DataType::kFloat16);
  expect_near_all(oh[0], want, 1e-2);
  auto od = run(
      node, {Tensor::from_vector<double>(xd, {2, 8}), Tensor::from_vector<double>(std::vector<double>(8, 1.0), {8})});
  ASSERT_EQ(od[0].dtype(), DataType::kFloat64);
  expect_near_all(od[0], want, 1e-9);
}

TEST(GroupNorm, PerGroupAndPerChannelScale) {
  const Shape shape = {2, 4, 3};
  const auto x = random_floats(24, 9);
  auto base = standardize(x, 4, 6, 1e-5);  // 2 groups of 2 channels x 3 = 6 elements
  // Opset 18: scale and bias per group.
  auto n18 = make_node("GroupNormalization", 3, 1, 18, {{"num_groups", int64_t{2}}});
  auto o18 = run(n18, {f32(x, shape), f32({2, 3}, {2}), f32({1, -1}, {2})});
  std::vector<double> want(24);
  for (size_t i = 0; i < 24; ++i) {
    const size_t g = (i / 6) % 2;
    want[i] = base[i] * (g ? 3 : 2) + (g ? -1 : 1);
  }
  expect_near_all(o18[0], want);
  // Opset 21: per channel.
  auto n21 = make_node("GroupNormalization", 3, 1, 21, {{"num_groups", int64_t{2}}});
  auto o21 = run(n21, {f32(x, shape), f32({1, 2, 3, 4}, {4}), f32({0, 0, 1, 1}, {4})});
  for (size_t i = 0; i < 24; ++i) {
    const size_t c = (i / 3) % 4;
    want[i] = base[i] * static_cast<double>(c + 1) + (c >= 2 ? 1 : 0);
  }
  expect_near_all(o21[0], want);
  EXPECT_FALSE(run_node(n21, {f32(x, shape), f32({2, 3}, {2}), f32({1, -1}, {2})}).ok());
  auto bad = make_node("GroupNormalization", 3, 1, 18, {{"num_groups", int64_t{3}}});
  EXPECT_FALSE(run_node(bad, {f32(x, shape), f32({1, 1, 1}, {3}), f32({0, 0, 0}, {3})}).ok());
}

TEST(Lrn, MatchesReference) {
  const Shape shape = {1, 5, 2};
  const auto x = random_floats(10, 10);
  auto node = make_node("LRN", 1, 1, 13, {{"size", int64_t{3}}, {"alpha", 0.1f}, {"beta", 0.5f}, {"bias", 2.f}});
  auto out = run(node, {f32(x, shape)});
  std::vector<double> want(10);
  for (int c = 0; c < 5; ++c) {
    for (int i = 0; i < 2; ++i) {
      double sq = 0;
      for (int k = std::max(0, c - 1); k <= std::min(4, c + 1); ++k)
        sq += std::pow(x[static_cast<size_t>(k * 2 + i)], 2);
      want[static_cast<size_t>(c * 2 + i)] = x[static_cast<size_t>(c * 2 + i)] / std::pow(2 + 0.1 / 3 * sq, 0.5);
    }
  }
  expect_near_all(out[0], want);
  EXPECT_FALSE(run_node(make_node("LRN", 1, 1, 13, {}), {f32(x, shape)}).ok());  // size is required
}

TEST(Mvn, DefaultAndCustomAxes) {
  const auto x = random_floats(2 * 3 * 2 * 2, 11);
  auto node = make_node("MeanVarianceNormalization", 1, 1, 13, {});
  auto out = run(node, {f32(x, {2, 3, 2, 2})});
  // Per channel over N, H, W.
  std::vector<double> want(x.size());
  for (size_t c = 0; c < 3; ++c) {
    double m = 0, v = 0;
    for (size_t n = 0; n < 2; ++n)
      for (size_t i = 0; i < 4; ++i) m += x[n * 12 + c * 4 + i];
    m /= 8;
    for (size_t n = 0; n < 2; ++n)
      for (size_t i = 0; i < 4; ++i) v += std::pow(x[n * 12 + c * 4 + i] - m, 2);
    v = std::sqrt(v / 8);
    for (size_t n = 0; n < 2; ++n)
      for (size_t i = 0; i < 4; ++i) want[n * 12 + c * 4 + i] = (x[n * 12 + c * 4 + i] - m) / (v + 1e-9);
  }
  expect_near_all(out[0], want);
  auto last = make_node("MeanVarianceNormalization", 1, 1, 13, {{"axes", std::vector<int64_t>{-1}}});
  auto o2 = run(last, {f32(x, {6, 4})});
  auto w2 = standardize(x, 6, 4, 0);
  expect_near_all(o2[0], w2, 1e-3);
  EXPECT_FALSE(run_node(node, {f32(x, {6, 4})}).ok());  // default axes need rank 4
}

TEST(LpNorm, P1P2AndZeroVectors) {
  auto l2 = make_node("LpNormalization", 1, 1, 1, {{"axis", int64_t{0}}});
  expect_near_all(run(l2, {f32({3, 0, 4, 0}, {2, 2})})[0], {0.6, 0, 0.8, 0});
  auto l1 = make_node("LpNormalization", 1, 1, 1, {{"p", int64_t{1}}});
  expect_near_all(run(l1, {f32({1, -3, 2, 2}, {2, 2})})[0], {0.25, -0.75, 0.5, 0.5});
  auto bad = make_node("LpNormalization", 1, 1, 1, {{"p", int64_t{3}}});
  EXPECT_FALSE(run_node(bad, {f32({1, 2}, {2})}).ok());
}

}  // namespace
}  // namespace deskml
