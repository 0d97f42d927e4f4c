// Reductions (Reduce*, ArgMax/ArgMin) and losses (NegativeLogLikelihoodLoss,
// SoftmaxCrossEntropyLoss).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>

#include "kernel_harness.hpp"

namespace deskml {
namespace {

using graph::AttributeValue;
using testing::make_node;
using testing::run_node;

Tensor f32(std::vector<float> v, Shape s) { return Tensor::from_vector<float>(v, std::move(s)); }
Tensor i64(std::vector<int64_t> v, Shape s) { return Tensor::from_vector<int64_t>(v, std::move(s)); }

std::vector<float> random_floats(int64_t n, uint32_t seed, float lo = -2.f, float hi = 2.f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(gen);
  return v;
}

Tensor run1(const graph::Node& node, const std::vector<Tensor>& inputs, int threads = 1) {
  auto r = run_node(node, inputs, threads);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  if (!r.ok()) return {};
  return r.value()[0];
}

void expect_near_all(const Tensor& got, const std::vector<double>& want, double tol = 1e-4) {
  ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size()));
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double g = got.float_at(i), w = want[static_cast<size_t>(i)];
    if (std::isnan(w)) {
      EXPECT_TRUE(std::isnan(g)) << "at " << i;
    } else if (std::isinf(w)) {
      EXPECT_EQ(g, w) << "at " << i;
    } else {
      EXPECT_NEAR(g, w, tol * (1 + std::abs(w))) << "at " << i;
    }
  }
}

// Naive reference: reduces `x` (row-major `shape`) over `mask` with init/step/finish.
std::vector<double> naive_reduce(const std::vector<float>& x, const Shape& shape, const std::vector<bool>& mask,
                                 double init, const std::function<double(double, double)>& step,
                                 const std::function<double(double, int64_t)>& finish) {
  Shape out_shape;
  for (size_t i = 0; i < shape.size(); ++i) out_shape.push_back(mask[i] ? 1 : shape[i]);
  const int64_t out_n = shape_numel(out_shape);
  std::vector<double> acc(static_cast<size_t>(out_n), init);
  std::vector<int64_t> cnt(static_cast<size_t>(out_n), 0);
  const auto in_strides = shape_strides(shape);
  const auto out_strides = shape_strides(out_shape);
  for (int64_t i = 0; i < static_cast<int64_t>(x.size()); ++i) {
    int64_t o = 0;
    for (size_t d = 0; d < shape.size(); ++d) {
      const int64_t idx = (i / in_strides[d]) % shape[d];
      if (!mask[d]) o += idx * out_strides[d];
    }
    acc[static_cast<size_t>(o)] = step(acc[static_cast<size_t>(o)], x[static_cast<size_t>(i)]);
    ++cnt[static_cast<size_t>(o)];
  }
  for (int64_t o = 0; o < out_n; ++o)
    acc[static_cast<size_t>(o)] = finish(acc[static_cast<size_t>(o)], cnt[static_cast<size_t>(o)]);
  return acc;
}

struct RefOp {
  const char* op;
  double init;
  std::function<double(double, double)> step;
  std::function<double(double, int64_t)> finish;
};

std::vector<RefOp> ref_ops() {
  auto id = [](double a, int64_t) { return a; };
  return {
      {"ReduceSum", 0, [](double a, double x) { return a + x; }, id},
      {"ReduceMean", 0, [](double a, double x) { return a + x; }, [](double a, int64_t n) { return a / n; }},
      {"ReduceMax", -INFINITY, [](double a, double x) { return std::max(a, x); }, id},
      {"ReduceMin", INFINITY, [](double a, double x) { return std::min(a, x); }, id},
      {"ReduceProd", 1, [](double a, double x) { return a * x; }, id},
      {"ReduceL1", 0, [](double a, double x) { return a + std::abs(x); }, id},
      {"ReduceL2", 0, [](double a, double x) { return a + x * x; }, [](double a, int64_t) { return std::sqrt(a); }},
      {"ReduceLogSum", 0, [](double a, double x) { return a + x; }, [](double a, int64_t) { return std::log(a); }},
      {"ReduceLogSumExp", 0, [](double a, double x) { return a + std::exp(x); },
       [](double a, int64_t) { return std::log(a); }},
      {"ReduceSumSquare", 0, [](double a, double x) { return a + x * x; }, id},
  };
}

TEST(Reduce, AllOpsAllAxisPatternsMatchNaive) {
  const Shape shape = {3, 4, 5, 2};
  // LogSum needs positive inputs; everything else takes signed values.
  const auto xs = random_floats(shape_numel(shape), 7, 0.1f, 1.5f);
  const std::vector<std::vector<int64_t>> patterns = {{}, {0}, {1}, {3}, {-1}, {0, 2}, {1, 3}, {0, 1, 2, 3}, {1, 2}};
  for (const auto& op : ref_ops()) {
    for (const auto& axes : patterns) {
      for (int keep : {0, 1}) {
        std::vector<bool> mask(shape.size(), axes.empty());
        for (int64_t a : axes) mask[static_cast<size_t>(a < 0 ? a + 4 : a)] = true;
        const auto want = naive_reduce(xs, shape, mask, op.init, op.step, op.finish);
        // Attribute form (opset 13 for all but ReduceSum, which is opset 11 here).
        const bool is_sum = std::string(op.op) == "ReduceSum";
        std::map<std::string, AttributeValue> attrs = {{"keepdims", int64_t{keep}}};
        if (!axes.empty()) attrs["axes"] = axes;
        auto node = make_node(op.op, 1, 1, is_sum ? 11 : 13, attrs);
        Tensor y = run1(node, {f32(xs, shape)});
        SCOPED_TRACE(std::string(op.op) + " keep=" + std::to_string(keep) + " axes=" + shape_to_string(axes));
        expect_near_all(y, want);
        Shape want_shape;
        for (size_t i = 0; i < shape.size(); ++i) {
          if (!mask[i])
            want_shape.push_back(shape[i]);
          else if (keep)
            want_shape.push_back(1);
        }
        EXPECT_EQ(y.shape(), want_shape);
        // Input form (opset 18; 13 for ReduceSum).
        auto node2 = make_node(op.op, 2, 1, is_sum ? 13 : 18, {{"keepdims", int64_t{keep}}});
        Tensor y2 =
            run1(node2, {f32(xs, shape), axes.empty() ? Tensor() : i64(axes, {static_cast<int64_t>(axes.size())})});
        expect_near_all(y2, want);
      }
    }
  }
}

TEST(Reduce, ParallelMatchesSerial) {
  const Shape shape = {64, 33, 129};
  const auto xs = random_floats(shape_numel(shape), 11);
  for (const auto& axes : std::vector<std::vector<int64_t>>{{0}, {1}, {2}, {0, 2}, {0, 1, 2}, {1, 2}}) {
    for (const char* op : {"ReduceMean", "ReduceMax", "ReduceLogSumExp", "ReduceSumSquare"}) {
      auto node = make_node(op, 1, 1, 13, {{"axes", axes}});
      Tensor a = run1(node, {f32(xs, shape)}, 1);
      Tensor b = run1(node, {f32(xs, shape)}, 4);
      ASSERT_EQ(a.shape(), b.shape());
      for (int64_t i = 0; i < a.numel(); ++i)
        EXPECT_NEAR(a.float_at(i), b.float_at(i), 1e-4 * (1 + std::abs(a.float_at(i))));
      std::vector<bool> mask(3, false);
      for (int64_t ax : axes) mask[static_cast<size_t>(ax)] = true;
      for (const auto& r : ref_ops()) {
        if (std::string(r.op) == op) expect_near_all(b, naive_reduce(xs, shape, mask, r.init, r.step, r.finish), 1e-4);
      }
    }
  }
}

TEST(Reduce, NoopWithEmptyAxes) {
  const Tensor x = f32({1, -2, 3, -4}, {2, 2});
  auto sum = make_node("ReduceSum", 2, 1, 13, {{"noop_with_empty_axes", int64_t{1}}});
  Tensor y = run1(sum, {x, i64({}, {0})});
  EXPECT_EQ(y.shape(), (Shape{2, 2}));
  expect_near_all(y, {1, -2, 3, -4});
  auto l1 = make_node("ReduceL1", 1, 1, 18, {{"noop_with_empty_axes", int64_t{1}}});
  expect_near_all(run1(l1, {x}), {1, 2, 3, 4});
  auto sq = make_node("ReduceSumSquare", 1, 1, 18, {{"noop_with_empty_axes", int64_t{1}}});
  expect_near_all(run1(sq, {x}), {1, 4, 9, 16});
  // Without the flag, empty axes reduce everything.
  auto all = make_node("ReduceSum", 2, 1, 13, {{"keepdims", int64_t{0}}});
  Tensor s = run1(all, {x, i64({}, {0})});
  EXPECT_EQ(s.shape(), Shape{});
  expect_near_all(s, {-2});
}

TEST(Reduce, EmptySetsGiveIdentities) {
  const Tensor x(DataType::kFloat32, {2, 0, 3});
  auto check = [&](const char* op, double want) {
    auto node = make_node(op, 1, 1, 11, {{"axes", std::vector<int64_t>{1}}, {"keepdims", int64_t{1}}});
    Tensor y = run1(node, {x});
    EXPECT_EQ(y.shape(), (Shape{2, 1, 3})) << op;
    expect_near_all(y, std::vector<double>(6, want));
  };
  check("ReduceSum", 0);
  check("ReduceProd", 1);
  check("ReduceMax", -INFINITY);
  check("ReduceMin", INFINITY);
  check("ReduceMean", NAN);
  check("ReduceL2", 0);
  check("ReduceLogSum", -INFINITY);
  check("ReduceLogSumExp", -INFINITY);
  // Integer max over nothing is the lowest value.
  auto node = make_node("ReduceMax", 1, 1, 13, {{"axes", std::vector<int64_t>{1}}});
  Tensor yi = run1(node, {Tensor(DataType::kInt32, {2, 0})});
  ASSERT_EQ(yi.numel(), 2);
  EXPECT_EQ(yi.data<int32_t>()[0], std::numeric_limits<int32_t>::lowest());
  // A zero-sized kept dim gives an empty output.
  auto node2 = make_node("ReduceSum", 1, 1, 11, {{"axes", std::vector<int64_t>{1}}});
  EXPECT_EQ(run1(node2, {Tensor(DataType::kFloat32, {0, 4})}).shape(), (Shape{0, 1}));
}

TEST(Reduce, IntegerAndHalfTypes) {
  auto node = make_node("ReduceSum", 1, 1, 11, {{"axes", std::vector<int64_t>{1}}, {"keepdims", int64_t{0}}});
  Tensor s = run1(node, {Tensor::from_vector<int32_t>({1, 2, 3, 4, 5, 6}, {2, 3})});
  ASSERT_EQ(s.dtype(), DataType::kInt32);
  EXPECT_EQ(s.data<int32_t>()[0], 6);
  EXPECT_EQ(s.data<int32_t>()[1], 15);
  auto mean = make_node("ReduceMean", 1, 1, 13, {{"axes", std::vector<int64_t>{0}}});
  Tensor m = run1(mean, {Tensor::from_vector<int64_t>({1, 2, 4, 7}, {2, 2})});
  EXPECT_EQ(m.data<int64_t>()[0], 2);  // (1 + 4) / 2 truncates
  EXPECT_EQ(m.data<int64_t>()[1], 4);
  auto mx = make_node("ReduceMax", 1, 1, 13, {{"keepdims", int64_t{0}}});
  Tensor u = run1(mx, {Tensor::from_vector<uint8_t>({3, 250, 7}, {3})});
  EXPECT_EQ(u.data<uint8_t>()[0], 250);
  auto prod = make_node("ReduceProd", 1, 1, 13, {});
  Tensor p = run1(prod, {Tensor::from_vector<int64_t>({2, -3, 4}, {3})});
  EXPECT_EQ(p.data<int64_t>()[0], -24);
  std::vector<Float16> h = {Float16(1.5f), Float16(2.5f), Float16(-1.0f), Float16(3.0f)};
  Tensor hm = run1(mean, {Tensor::from_vector<Float16>(h, {2, 2})});
  ASSERT_EQ(hm.dtype(), DataType::kFloat16);
  expect_near_all(hm, {0.25, 2.75});
  auto bmax = make_node("ReduceMax", 2, 1, 20, {{"keepdims", int64_t{0}}});
  Tensor any = run1(bmax, {Tensor::from_vector<bool>({false, true, false, false}, {2, 2}), i64({1}, {1})});
  ASSERT_EQ(any.dtype(), DataType::kBool);
  EXPECT_TRUE(any.data<bool>()[0]);
  EXPECT_FALSE(any.data<bool>()[1]);
  auto bmin = make_node("ReduceMin", 1, 1, 13, {{"keepdims", int64_t{0}}});
  EXPECT_FALSE(run1(bmin, {Tensor::from_vector<bool>({true, false}, {2})}).data<bool>()[0]);
  EXPECT_FALSE(run_node(make_node("ReduceSum", 1, 1, 11, {}), {Tensor::from_vector<bool>({true}, {1})}).ok());
  auto l2 = make_node("ReduceL2", 1, 1, 13, {{"keepdims", int64_t{0}}});
  Tensor d = run1(l2, {Tensor::from_vector<double>({3, 4}, {2})});
  EXPECT_DOUBLE_EQ(d.data<double>()[0], 5.0);
}

TEST(Reduce, LogSumExpIsStableAndMaxPropagatesNaN) {
  auto lse = make_node("ReduceLogSumExp", 1, 1, 13, {{"keepdims", int64_t{0}}});
  expect_near_all(run1(lse, {f32({1000, 1000}, {2})}), {1000 + std::log(2.0)});
  expect_near_all(run1(lse, {f32({-INFINITY, -INFINITY}, {2})}), {-INFINITY});
  auto mx = make_node("ReduceMax", 1, 1, 13, {{"keepdims", int64_t{0}}});
  expect_near_all(run1(mx, {f32({1, NAN, 3}, {3})}), {NAN});
}

TEST(Reduce, BadAxesAreErrors) {
  auto bad = make_node("ReduceSum", 1, 1, 11, {{"axes", std::vector<int64_t>{2}}});
  EXPECT_FALSE(run_node(bad, {f32({1, 2}, {2})}).ok());
  auto dup = make_node("ReduceMean", 1, 1, 13, {{"axes", std::vector<int64_t>{0, -2}}});
  EXPECT_FALSE(run_node(dup, {f32({1, 2, 3, 4}, {2, 2})}).ok());
  auto bad_input = make_node("ReduceMax", 2, 1, 18, {});
  EXPECT_FALSE(run_node(bad_input, {f32({1, 2}, {2}), i64({5}, {1})}).ok());
  EXPECT_FALSE(run_node(bad_input, {f32({1, 2}, {2}), f32({0}, {1})}).ok());
}

TEST(ArgMax, AxesKeepdimsAndLastIndex) {
  const Tensor x = f32({2, 5, 5, 1, 7, 7, 3, 0, 9}, {3, 3});
  auto am = make_node("ArgMax", 1, 1, 13, {{"axis", int64_t{1}}});
  Tensor y = run1(am, {x});
  EXPECT_EQ(y.shape(), (Shape{3, 1}));
  EXPECT_EQ(y.to_int64_vector(), (std::vector<int64_t>{1, 1, 2}));
  auto last = make_node("ArgMax", 1, 1, 13, {{"axis", int64_t{-1}}, {"select_last_index", int64_t{1}}});
  EXPECT_EQ(run1(last, {x}).to_int64_vector(), (std::vector<int64_t>{2, 2, 2}));
  auto col = make_node("ArgMin", 1, 1, 13, {{"axis", int64_t{0}}, {"keepdims", int64_t{0}}});
  Tensor c = run1(col, {x});
  EXPECT_EQ(c.shape(), (Shape{3}));
  EXPECT_EQ(c.to_int64_vector(), (std::vector<int64_t>{1, 2, 0}));
  auto col_last = make_node("ArgMax", 1, 1, 13, {{"axis", int64_t{0}}, {"select_last_index", int64_t{1}}});
  EXPECT_EQ(run1(col_last, {x}).to_int64_vector(), (std::vector<int64_t>{2, 1, 2}));
}

TEST(ArgMax, TypesNaNAndErrors) {
  auto am = make_node("ArgMax", 1, 1, 13, {{"keepdims", int64_t{0}}});
  EXPECT_EQ(run1(am, {f32({1, NAN, 5, NAN}, {4})}).to_int64_vector(), (std::vector<int64_t>{1}));
  auto amin = make_node("ArgMin", 1, 1, 11, {{"keepdims", int64_t{0}}});
  EXPECT_EQ(run1(amin, {Tensor::from_vector<int32_t>({4, -9, 3}, {3})}).to_int64_vector(), (std::vector<int64_t>{1}));
  EXPECT_EQ(run1(amin, {Tensor::from_vector<uint8_t>({4, 9, 3}, {3})}).to_int64_vector(), (std::vector<int64_t>{2}));
  auto bad = make_node("ArgMax", 1, 1, 13, {{"axis", int64_t{2}}});
  EXPECT_FALSE(run_node(bad, {f32({1, 2}, {2})}).ok());
  EXPECT_FALSE(run_node(am, {Tensor(DataType::kFloat32, {0})}).ok());
}

TEST(ArgMax, LongRowsMatchNaive) {
  // Rows longer than the vector lanes, with repeated extremes and a NaN row.
  std::vector<float> x(3 * 100);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 37) % 11);
  x[150] = NAN;
  x[170] = NAN;
  const Tensor t = f32(x, {3, 100});
  for (const char* op : {"ArgMax", "ArgMin"}) {
    for (int64_t last : {0, 1}) {
      auto node =
          make_node(op, 1, 1, 13, {{"axis", int64_t{1}}, {"keepdims", int64_t{0}}, {"select_last_index", last}});
      const auto got = run1(node, {t}, 2).to_int64_vector();
      ASSERT_EQ(got.size(), 3u);
      for (size_t r = 0; r < 3; ++r) {
        int64_t want = -1;
        for (int64_t i = 0; i < 100; ++i) {
          const float v = x[r * 100 + static_cast<size_t>(i)];
          if (r == 1) {
            if (std::isnan(v) && (want < 0 || last)) want = i;
            continue;
          }
          const float b = want < 0 ? v : x[r * 100 + static_cast<size_t>(want)];
          const bool better = std::string(op) == "ArgMax" ? (last ? v >= b : v > b) : (last ? v <= b : v < b);
          if (want < 0 || better) want = i;
        }
        EXPECT_EQ(got[r], want) << op << " last=" << last << " row " << r;
      }
    }
  }
}

TEST(Loss, NllWeightsAndIgnoreIndex) {
  // (N=2, C=3, d=2) log-probabilities, targets with one ignored element.
  const Tensor lp = f32({-1, -2, -3, -4, -5, -6, -0.5, -1.5, -2.5, -3.5, -4.5, -5.5}, {2, 3, 2});
  const Tensor t = i64({0, 2, 1, -1}, {2, 2});
  const Tensor w = f32({1, 2, 3}, {3});
  auto none = make_node("NegativeLogLikelihoodLoss", 3, 1, 13,
                        {{"reduction", std::string("none")}, {"ignore_index", int64_t{-1}}});
  // loss[n,d] = -lp[n, t, d] * w[t]
  expect_near_all(run1(none, {lp, t, w}), {1 * 1, 6 * 3, 2.5 * 2, 0});
  auto mean = make_node("NegativeLogLikelihoodLoss", 3, 1, 13, {{"ignore_index", int64_t{-1}}});
  Tensor m = run1(mean, {lp, t, w});
  EXPECT_EQ(m.shape(), Shape{});
  expect_near_all(m, {(1 + 18 + 5.0) / (1 + 3 + 2)});
  auto sum = make_node("NegativeLogLikelihoodLoss", 2, 1, 13, {{"reduction", std::string("sum")}});
  EXPECT_FALSE(run_node(sum, {lp, t}).ok());  // -1 is out of range without ignore_index
  EXPECT_FALSE(run_node(sum, {lp, i64({0, 3, 1, 1}, {2, 2})}).ok());
  EXPECT_FALSE(run_node(sum, {lp, i64({0, 1}, {2})}).ok());  // shape mismatch
  auto bad = make_node("NegativeLogLikelihoodLoss", 2, 1, 13, {{"reduction", std::string("avg")}});
  EXPECT_FALSE(run_node(bad, {lp, i64({0, 1, 1, 1}, {2, 2})}).ok());
}

TEST(Loss, SoftmaxCrossEntropyWithLogProb) {
  const Tensor x = f32({1, 2, 3, 0, 0, 0}, {2, 3});
  const Tensor t = i64({2, 0}, {2});
  auto node = make_node("SoftmaxCrossEntropyLoss", 2, 2, 13, {});
  auto r = run_node(node, {x, t});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const double lse0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  const double lse1 = std::log(3.0);
  expect_near_all(r.value()[1], {1 - lse0, 2 - lse0, 3 - lse0, -lse1, -lse1, -lse1});
  expect_near_all(r.value()[0], {((lse0 - 3) + lse1) / 2});
  // Large logits stay finite.
  auto big = run_node(node, {f32({1000, 0, 0, 1000, 0, 0}, {2, 3}), t});
  ASSERT_TRUE(big.ok());
  expect_near_all(big.value()[0], {500.0}, 1e-3);
}

}  // namespace
}  // namespace deskml
