// deskml.Attention against a float64 computation of softmax(Q K * scale + mask) V,
// at several thread counts, with the transposes an exported encoder folds in.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernel_harness.hpp"
#include "random_tensor.hpp"

namespace deskml {
namespace {

using testing::random_tensor;

// Element `idx` (logical, after `perm`) of `t`.
double at(const Tensor& t, const std::vector<int64_t>& perm, const std::vector<int64_t>& idx) {
  std::vector<int64_t> stored(idx.size());
  for (size_t i = 0; i < idx.size(); ++i) stored[static_cast<size_t>(perm[i])] = idx[i];
  int64_t off = 0;
  for (size_t d = 0; d < stored.size(); ++d) off = off * t.shape()[d] + stored[d];
  return t.data<float>()[off];
}

std::vector<int64_t> logical_dims(const Tensor& t, const std::vector<int64_t>& perm) {
  std::vector<int64_t> dims;
  for (int64_t p : perm) dims.push_back(t.shape()[static_cast<size_t>(p)]);
  return dims;
}

// [B, H, S, Dv] in float64; `mask` is [B, 1, 1, Skv] or absent.
std::vector<double> reference(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask, float scale,
                              const std::vector<int64_t>& qp, const std::vector<int64_t>& kp,
                              const std::vector<int64_t>& vp) {
  const auto qd = logical_dims(q, qp), kd = logical_dims(k, kp), vd = logical_dims(v, vp);
  const int64_t B = qd[0], H = qd[1], S = qd[2], D = qd[3], N = kd[3], Dv = vd[3];
  std::vector<double> y;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < S; ++i) {
        std::vector<double> s(static_cast<size_t>(N));
        double mx = -1e300;
        for (int64_t j = 0; j < N; ++j) {
          double acc = 0;
          for (int64_t d = 0; d < D; ++d) acc += at(q, qp, {b, h, i, d}) * at(k, kp, {b, h, d, j});
          acc *= scale;
          if (mask) acc += mask->data<float>()[b * N + j];
          s[static_cast<size_t>(j)] = acc;
          mx = std::max(mx, acc);
        }
        double sum = 0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (int64_t c = 0; c < Dv; ++c) {
          double acc = 0;
          for (int64_t j = 0; j < N; ++j) acc += s[static_cast<size_t>(j)] / sum * at(v, vp, {b, h, j, c});
          y.push_back(acc);
        }
      }
    }
  }
  return y;
}

graph::Node attention_node(float scale, std::vector<int64_t> qp, std::vector<int64_t> kp, std::vector<int64_t> vp,
                           std::vector<int64_t> op, size_t inputs) {
  auto n = testing::make_node("Attention", inputs, 1, 1);
  n.domain = "deskml";
  n.attributes["scale"] = scale;
  if (!qp.empty()) n.attributes["q_perm"] = qp;
  if (!kp.empty()) n.attributes["k_perm"] = kp;
  if (!vp.empty()) n.attributes["v_perm"] = vp;
  if (!op.empty()) n.attributes["out_perm"] = op;
  return n;
}

void expect_near(const Tensor& y, const std::vector<double>& want, const std::vector<int64_t>& out_perm) {
  // `want` is [B, H, S, Dv]; y is that through out_perm (identity when empty).
  ASSERT_EQ(y.numel(), static_cast<int64_t>(want.size()));
  const Shape& ys = y.shape();
  std::vector<int64_t> perm = out_perm.empty() ? std::vector<int64_t>{0, 1, 2, 3} : out_perm;
  std::vector<int64_t> logical(4);
  for (size_t i = 0; i < 4; ++i) logical[static_cast<size_t>(perm[i])] = ys[i];
  int64_t worst = -1;
  double worst_err = 0;
  for (int64_t f = 0; f < y.numel(); ++f) {
    std::vector<int64_t> idx(4);
    int64_t rest = f;
    for (size_t d = 4; d-- > 0;) {
      idx[d] = rest % logical[d];
      rest /= logical[d];
    }
    const double got = at(y, perm, idx);
    const double err = std::abs(got - want[static_cast<size_t>(f)]);
    if (err > worst_err) worst_err = err, worst = f;
  }
  EXPECT_LT(worst_err, 1e-5) << "at logical element " << worst;
}

TEST(AttentionKernel, MatchesTheDefinition) {
  const Tensor q = random_tensor({2, 3, 5, 4}, 1), k = random_tensor({2, 3, 4, 7}, 2),
               v = random_tensor({2, 3, 7, 6}, 3);
  const auto want = reference(q, k, v, nullptr, 0.5f, {0, 1, 2, 3}, {0, 1, 2, 3}, {0, 1, 2, 3});
  for (int threads : {1, 2, 8}) {
    auto y = testing::run_node(attention_node(0.5f, {}, {}, {}, {}, 3), {q, k, v}, threads);
    ASSERT_TRUE(y.ok()) << y.status().to_string();
    expect_near((*y)[0], want, {});
  }
}

TEST(AttentionKernel, TransposedOperandsAndABroadcastMask) {
  // As an exported encoder has them: Q, K, V as [B, S, H, D], K read as
  // [B, H, D, S], the output written back as [B, S, H, Dv].
  const Tensor q = random_tensor({2, 9, 4, 8}, 4), k = random_tensor({2, 9, 4, 8}, 5),
               v = random_tensor({2, 9, 4, 8}, 6);
  Tensor mask(DataType::kFloat32, {2, 1, 1, 9});
  for (int64_t i = 0; i < mask.numel(); ++i) mask.data<float>()[i] = i % 4 == 3 ? -10000.0f : 0.0f;
  const std::vector<int64_t> qp = {0, 2, 1, 3}, kp = {0, 2, 3, 1}, vp = {0, 2, 1, 3}, op = {0, 2, 1, 3};
  const auto want = reference(q, k, v, &mask, 0.35f, qp, kp, vp);
  for (int threads : {1, 2}) {
    auto y = testing::run_node(attention_node(0.35f, qp, kp, vp, op, 4), {q, k, v, mask}, threads);
    ASSERT_TRUE(y.ok()) << y.status().to_string();
    EXPECT_EQ((*y)[0].shape(), (Shape{2, 9, 4, 8}));
    expect_near((*y)[0], want, op);
  }
}

TEST(AttentionKernel, AMaskThatDoesNotBroadcastIsAnError) {
  const Tensor q = random_tensor({1, 2, 3, 4}, 7), k = random_tensor({1, 2, 4, 5}, 8),
               v = random_tensor({1, 2, 5, 4}, 9);
  const Tensor mask = random_tensor({1, 1, 1, 4}, 10);
  for (int threads : {1, 4}) {
    auto y = testing::run_node(attention_node(1.0f, {}, {}, {}, {}, 4), {q, k, v, mask}, threads);
    ASSERT_FALSE(y.ok());
    EXPECT_NE(y.status().message().find("does not broadcast"), std::string::npos) << y.status().message();
  }
}

}  // namespace
}  // namespace deskml
