// MatMul, Gemm, MatMulInteger, QLinearMatMul, Einsum, and the quantization ops.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernel_harness.hpp"

namespace deskml {
namespace {

using testing::make_node;
using testing::run_node;
using Attrs = std::map<std::string, graph::AttributeValue>;

Tensor random_values(const Shape& shape, uint32_t seed, DataType dtype = DataType::kFloat32) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(-4, 4);  // small integers: exact in every type
  Tensor t(DataType::kFloat64, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = dist(rng) * (dtype_is_float(dtype) ? 0.5 : 1.0);
  return t.cast(dtype);
}

// Batched matmul on already broadcast 3-D double views: c[b] = a[b] * b[b].
Tensor matmul3(const Tensor& a, const Tensor& b) {
  const int64_t nb = a.dim(0), m = a.dim(1), k = a.dim(2), n = b.dim(2);
  Tensor c = Tensor::zeros(DataType::kFloat64, {nb, m, n});
  for (int64_t q = 0; q < nb; ++q) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p)
          s += a.data<double>()[(q * m + i) * k + p] * b.data<double>()[(q * k + p) * n + j];
        c.data<double>()[(q * m + i) * n + j] = s;
      }
    }
  }
  return c;
}

void expect_values(const Tensor& got, const std::vector<double>& want, const Shape& shape, double tol = 1e-6) {
  ASSERT_EQ(got.shape(), shape);
  const Tensor g = got.cast(DataType::kFloat64);
  ASSERT_EQ(static_cast<size_t>(g.numel()), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(g.data<double>()[i], want[i], tol) << "at " << i;
}

std::vector<double> as_doubles(const Tensor& t) {
  const Tensor d = t.cast(DataType::kFloat64);
  return std::vector<double>(d.data<double>(), d.data<double>() + d.numel());
}

TEST(MatMul, BroadcastsBatchesForEveryType) {
  // a [2, 1, 3, 4] x b [3, 4, 5] -> [2, 3, 3, 5]
  for (DataType dt : {DataType::kFloat32, DataType::kFloat64, DataType::kInt32, DataType::kInt64, DataType::kUInt32,
                      DataType::kFloat16}) {
    const Tensor a = random_values({2, 1, 3, 4}, 1, dt == DataType::kUInt32 ? DataType::kFloat64 : dt);
    const Tensor b = random_values({3, 4, 5}, 2, dt == DataType::kUInt32 ? DataType::kFloat64 : dt);
    Tensor ua = a, ub = b;
    if (dt == DataType::kUInt32) {  // non-negative values for the unsigned type
      ua = a.cast(DataType::kFloat64);
      ub = b.cast(DataType::kFloat64);
      for (int64_t i = 0; i < ua.numel(); ++i) ua.data<double>()[i] = std::abs(ua.data<double>()[i]);
      for (int64_t i = 0; i < ub.numel(); ++i) ub.data<double>()[i] = std::abs(ub.data<double>()[i]);
      ua = ua.cast(dt);
      ub = ub.cast(dt);
    }
    auto r = run_node(make_node("MatMul", 2, 1, 13), {ua, ub}, 2);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ((*r)[0].dtype(), dt);
    // Expected: broadcast explicitly then multiply.
    Tensor a3(DataType::kFloat64, {6, 3, 4}), b3(DataType::kFloat64, {6, 4, 5});
    const Tensor ad = ua.cast(DataType::kFloat64), bd = ub.cast(DataType::kFloat64);
    for (int64_t i = 0; i < 2; ++i) {
      for (int64_t j = 0; j < 3; ++j) {
        std::copy_n(ad.data<double>() + i * 12, 12, a3.data<double>() + (i * 3 + j) * 12);
        std::copy_n(bd.data<double>() + j * 20, 20, b3.data<double>() + (i * 3 + j) * 20);
      }
    }
    expect_values((*r)[0], as_doubles(matmul3(a3, b3)), {2, 3, 3, 5});
  }
}

TEST(MatMul, OneDimensionalOperandsArePromotedAndSqueezed) {
  const Tensor v = Tensor::from_vector<float>({1, 2, 3}, {3});
  const Tensor m = Tensor::from_vector<float>({1, 0, 0, 1, 1, 1}, {3, 2});
  auto vm = run_node(make_node("MatMul", 2, 1), {v, m});
  ASSERT_TRUE(vm.ok());
  expect_values((*vm)[0], {4, 5}, {2});
  const Tensor mt = Tensor::from_vector<float>({1, 0, 1, 0, 1, 1}, {2, 3});
  auto mv = run_node(make_node("MatMul", 2, 1), {mt, v});
  ASSERT_TRUE(mv.ok());
  expect_values((*mv)[0], {4, 5}, {2});
  auto dot = run_node(make_node("MatMul", 2, 1), {v, v});
  ASSERT_TRUE(dot.ok());
  expect_values((*dot)[0], {14}, {});
  // batched matrix times vector: [2, 2, 3] x [3] -> [2, 2]
  const Tensor bm = Tensor::from_vector<double>({1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1}, {2, 2, 3});
  auto bmv = run_node(make_node("MatMul", 2, 1), {bm, v.cast(DataType::kFloat64)});
  ASSERT_TRUE(bmv.ok());
  expect_values((*bmv)[0], {1, 2, 3, 6}, {2, 2});
}

TEST(MatMul, EmptyInnerDimensionGivesZerosAndMismatchFails) {
  auto r =
      run_node(make_node("MatMul", 2, 1), {Tensor(DataType::kFloat32, {2, 0}), Tensor(DataType::kFloat32, {0, 3})});
  ASSERT_TRUE(r.ok());
  expect_values((*r)[0], {0, 0, 0, 0, 0, 0}, {2, 3});
  EXPECT_FALSE(run_node(make_node("MatMul", 2, 1), {random_values({2, 3}, 1), random_values({4, 2}, 2)}).ok());
  EXPECT_FALSE(run_node(make_node("MatMul", 2, 1), {random_values({2, 2, 3}, 1), random_values({3, 3, 2}, 2)}).ok());
  EXPECT_FALSE(run_node(make_node("MatMul", 2, 1), {random_values({}, 1), random_values({3}, 2)}).ok());
}

TEST(FusedMatMul, ResidualSumWithActivationsBeforeAndAfter) {
  // Y = Tanh(Relu(A x B + bias) + Sum), A [2,3,4] flattened into rows.
  graph::Node node = make_node(
      "FusedMatMul", 4, 1, 1,
      {{"trans_b", int64_t{0}}, {"pre_activation", std::string("Relu")}, {"activation", std::string("Tanh")}});
  node.domain = "deskml";
  const Tensor a = random_values({2, 3, 4}, 20), b = random_values({4, 5}, 21), bias = random_values({5}, 22),
               sum = random_values({2, 3, 5}, 23);
  auto r = run_node(node, {a, b, bias, sum}, 2);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const Tensor p =
      matmul3(a.cast(DataType::kFloat64).reshaped({1, 6, 4}), b.cast(DataType::kFloat64).reshaped({1, 4, 5}));
  std::vector<double> want;
  for (int64_t i = 0; i < 30; ++i) {
    const double v = std::max(0.0, p.data<double>()[i] + bias.cast(DataType::kFloat64).data<double>()[i % 5]);
    want.push_back(std::tanh(v + sum.cast(DataType::kFloat64).data<double>()[i]));
  }
  expect_values((*r)[0], want, {2, 3, 5}, 1e-5);
  // The caller's residual is left alone (the harness does not let the kernel take it).
  EXPECT_EQ(as_doubles(sum), as_doubles(random_values({2, 3, 5}, 23)));

  // No bias, an empty inner dimension: Y = Relu(0) + Sum, then Tanh.
  auto e = run_node(node, {Tensor(DataType::kFloat32, {2, 0}), Tensor(DataType::kFloat32, {0, 5}), Tensor(),
                           random_values({2, 5}, 24)});
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  std::vector<double> want_e;
  for (double v : as_doubles(random_values({2, 5}, 24))) want_e.push_back(std::tanh(v));
  expect_values((*e)[0], want_e, {2, 5}, 1e-6);

  // A residual of another shape is an error, not a broadcast.
  auto bad = run_node(node, {a, b, bias, random_values({1, 5}, 25)});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("fused sum input"), std::string::npos) << bad.status().to_string();
}

TEST(Gemm, TransposesScalesAndBroadcastsC) {
  const Tensor a = random_values({4, 3}, 10), b = random_values({5, 4}, 11);  // A^T is [3,4], B^T is [4,5]
  for (DataType dt : {DataType::kFloat32, DataType::kFloat64, DataType::kInt64}) {
    const bool is_float = dtype_is_float(dt);
    const float alpha = is_float ? 0.5f : 1.0f, beta = is_float ? 2.0f : 1.0f;
    for (const Shape& cshape : {Shape{}, Shape{1}, Shape{5}, Shape{1, 5}, Shape{3, 1}, Shape{3, 5}}) {
      const Tensor c = random_values(cshape, 12, dt);
      Attrs attrs = {{"transA", int64_t{1}}, {"transB", int64_t{1}}, {"alpha", alpha}, {"beta", beta}};
      const Tensor at = a.cast(dt), bt = b.cast(dt);
      auto r = run_node(make_node("Gemm", 3, 1, 13, attrs), {at, bt, c});
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      const Tensor ad = at.cast(DataType::kFloat64), bd = bt.cast(DataType::kFloat64), cd = c.cast(DataType::kFloat64);
      std::vector<double> want(15);
      for (int64_t i = 0; i < 3; ++i) {
        for (int64_t j = 0; j < 5; ++j) {
          double s = 0;
          for (int64_t p = 0; p < 4; ++p) s += ad.data<double>()[p * 3 + i] * bd.data<double>()[j * 4 + p];
          int64_t ci = 0;
          if (cshape == Shape{5} || cshape == Shape{1, 5}) ci = j;
          if (cshape == Shape{3, 1}) ci = i;
          if (cshape == Shape{3, 5}) ci = i * 5 + j;
          want[static_cast<size_t>(i * 5 + j)] = alpha * s + beta * cd.data<double>()[ci];
        }
      }
      expect_values((*r)[0], want, {3, 5});
    }
  }
}

TEST(Gemm, OptionalCAndShapeErrors) {
  const Tensor a = random_values({2, 3}, 1), b = random_values({3, 4}, 2);
  auto r = run_node(make_node("Gemm", 2, 1, 11), {a, b});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].shape(), (Shape{2, 4}));
  EXPECT_FALSE(run_node(make_node("Gemm", 2, 1, 9), {a, b}).ok());  // C required before opset 11
  EXPECT_FALSE(run_node(make_node("Gemm", 3, 1, 13), {a, b, random_values({3}, 3)}).ok());
  EXPECT_FALSE(run_node(make_node("Gemm", 2, 1, 13), {a, random_values({4, 3}, 3)}).ok());
  EXPECT_FALSE(run_node(make_node("Gemm", 2, 1, 13), {random_values({2, 3, 1}, 1), b}).ok());
}

TEST(MatMulInteger, PerRowAndPerColumnZeroPoints) {
  const Tensor a = Tensor::from_vector<uint8_t>({11, 12, 13, 21, 22, 23}, {2, 3});
  const Tensor b = Tensor::from_vector<int8_t>({1, -2, 3, -4, 5, -6}, {3, 2});
  const Tensor az = Tensor::from_vector<uint8_t>({10, 20}, {2});
  const Tensor bz = Tensor::from_vector<int8_t>({1, -1}, {2});
  auto r = run_node(make_node("MatMulInteger", 4, 1, 10), {a, b, az, bz});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  // a - az = [[1,2,3],[1,2,3]]; b - bz = [[0,-1],[2,-3],[4,-5]]
  EXPECT_EQ((*r)[0].dtype(), DataType::kInt32);
  expect_values((*r)[0], {16, -22, 16, -22}, {2, 2});
  EXPECT_FALSE(
      run_node(make_node("MatMulInteger", 3, 1, 10), {a, b, Tensor::from_vector<uint8_t>({1, 2, 3}, {3})}).ok());
}

TEST(QLinearMatMul, RequantizesToTheOutputZeroPoint) {
  const Tensor a = Tensor::from_vector<uint8_t>({10, 12, 14, 16}, {2, 2});
  const Tensor b = Tensor::from_vector<int8_t>({2, -2, 4, 6}, {2, 2});
  auto r = run_node(make_node("QLinearMatMul", 8, 1, 10),
                    {a, Tensor::scalar<float>(0.5f), Tensor::scalar<uint8_t>(10), b, Tensor::scalar<float>(0.25f),
                     Tensor::scalar<int8_t>(0), Tensor::scalar<float>(0.125f), Tensor::scalar<int8_t>(-3)});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  // a - 10 = [[0,2],[4,6]]; acc = [[8,12],[32,28]]; scale 0.5*0.25/0.125 = 1 -> acc - 3, saturated at 127
  EXPECT_EQ((*r)[0].dtype(), DataType::kInt8);
  expect_values((*r)[0], {5, 9, 29, 25}, {2, 2});
}

TEST(Einsum, CommonEquations) {
  const Tensor a = random_values({2, 3}, 1, DataType::kFloat64), b = random_values({3, 4}, 2, DataType::kFloat64);
  const Tensor sq = random_values({3, 3}, 3, DataType::kFloat64);
  auto einsum = [](const std::string& eq, std::vector<Tensor> in) {
    auto r = run_node(make_node("Einsum", in.size(), 1, 12, {{"equation", eq}}), in);
    EXPECT_TRUE(r.ok()) << eq << ": " << r.status().to_string();
    return r.ok() ? (*r)[0] : Tensor();
  };
  const auto ad = as_doubles(a), bd = as_doubles(b), sd = as_doubles(sq);
  // matmul, explicit and implicit
  std::vector<double> mm(8, 0.0);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 3; ++k) mm[i * 4 + j] += ad[i * 3 + k] * bd[k * 4 + j];
  expect_values(einsum("ij,jk->ik", {a, b}), mm, {2, 4});
  expect_values(einsum("ij,jk", {a, b}), mm, {2, 4});
  expect_values(einsum("ij, jk -> ik", {a.cast(DataType::kFloat32), b.cast(DataType::kFloat32)}), mm, {2, 4}, 1e-5);
  // transpose, trace, diagonal, sum
  expect_values(einsum("ij->ji", {a}), {ad[0], ad[3], ad[1], ad[4], ad[2], ad[5]}, {3, 2});
  expect_values(einsum("ii", {sq}), {sd[0] + sd[4] + sd[8]}, {});
  expect_values(einsum("ii->i", {sq}), {sd[0], sd[4], sd[8]}, {3});
  double total = 0;
  for (double v : ad) total += v;
  expect_values(einsum("ij->", {a}), {total}, {});
  // outer product, three operands
  const Tensor u = Tensor::from_vector<int64_t>({1, 2}, {2}), v = Tensor::from_vector<int64_t>({3, 4, 5}, {3});
  expect_values(einsum("i,j->ij", {u, v}), {3, 4, 5, 6, 8, 10}, {2, 3});
  const Tensor c = random_values({4, 2}, 4, DataType::kFloat64);
  const auto cd = as_doubles(c);
  std::vector<double> chain(4, 0.0);
  for (int i = 0; i < 2; ++i)
    for (int l = 0; l < 2; ++l)
      for (int k = 0; k < 4; ++k) chain[i * 2 + l] += mm[i * 4 + k] * cd[k * 2 + l];
  expect_values(einsum("ij,jk,kl->il", {a, b, c}), chain, {2, 2});
  // ellipsis with broadcasting batch dims: [2,1,2,3] x [3,3,4] -> [2,3,2,4]
  const Tensor ea = random_values({2, 1, 2, 3}, 5, DataType::kFloat64),
               eb = random_values({3, 3, 4}, 6, DataType::kFloat64);
  auto r = run_node(make_node("MatMul", 2, 1), {ea, eb});
  ASSERT_TRUE(r.ok());
  expect_values(einsum("...ij,...jk->...ik", {ea, eb}), as_doubles((*r)[0]), {2, 3, 2, 4});
  // batch diagonal
  const Tensor bdg = random_values({2, 3, 3}, 7, DataType::kFloat64);
  const auto bdd = as_doubles(bdg);
  expect_values(einsum("...ii->...i", {bdg}), {bdd[0], bdd[4], bdd[8], bdd[9], bdd[13], bdd[17]}, {2, 3});
}

TEST(Einsum, RejectsBadEquations) {
  const Tensor a = random_values({2, 3}, 1);
  auto run = [&](const std::string& eq, std::vector<Tensor> in) {
    return run_node(make_node("Einsum", in.size(), 1, 12, {{"equation", eq}}), in).ok();
  };
  EXPECT_FALSE(run("ij,jk->ik", {a}));                           // operand count
  EXPECT_FALSE(run("ijk->i", {a}));                              // rank
  EXPECT_FALSE(run("ij,ij->i", {a, random_values({3, 3}, 2)}));  // sizes disagree
  EXPECT_FALSE(run("ij->ik", {a}));                              // unknown output label
  EXPECT_FALSE(run("i1->i", {a}));                               // bad character
  EXPECT_FALSE(run("ij->ii", {a}));                              // repeated output label
}

TEST(QuantizeLinear, PerTensorAndPerAxisWithRoundingHalfToEven) {
  const Tensor x = Tensor::from_vector<float>({0.5f, 1.5f, 2.5f, -0.5f, 300.0f, -300.0f}, {6});
  auto r = run_node(make_node("QuantizeLinear", 3, 1, 13), {x, Tensor::scalar<float>(1.0f), Tensor::scalar<int8_t>(1)});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].dtype(), DataType::kInt8);
  expect_values((*r)[0], {1, 3, 3, 1, 127, -128}, {6});
  auto u = run_node(make_node("QuantizeLinear", 2, 1, 10), {x, Tensor::scalar<float>(2.0f)});
  ASSERT_TRUE(u.ok());
  EXPECT_EQ((*u)[0].dtype(), DataType::kUInt8);
  expect_values((*u)[0], {0, 1, 1, 0, 150, 0}, {6});
  const Tensor x2 = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  auto pa = run_node(make_node("QuantizeLinear", 3, 1, 13, {{"axis", int64_t{0}}}),
                     {x2, Tensor::from_vector<float>({1.0f, 2.0f}, {2}), Tensor::from_vector<uint8_t>({0, 10}, {2})});
  ASSERT_TRUE(pa.ok()) << pa.status().to_string();
  expect_values((*pa)[0], {1, 2, 3, 12, 12, 13}, {2, 3});
  EXPECT_FALSE(run_node(make_node("QuantizeLinear", 2, 1, 13), {x2, Tensor::from_vector<float>({1, 2}, {2})}).ok());
  EXPECT_FALSE(run_node(make_node("QuantizeLinear", 2, 1, 10), {x2, Tensor::from_vector<float>({1, 2, 3}, {3})}).ok());
}

TEST(DequantizeLinear, PerTensorAndPerAxis) {
  const Tensor x = Tensor::from_vector<int8_t>({-128, 0, 127, 10}, {2, 2});
  auto r =
      run_node(make_node("DequantizeLinear", 3, 1, 13), {x, Tensor::scalar<float>(0.5f), Tensor::scalar<int8_t>(10)});
  ASSERT_TRUE(r.ok());
  expect_values((*r)[0], {-69, -5, 58.5, 0}, {2, 2});
  auto pa = run_node(make_node("DequantizeLinear", 3, 1, 13, {{"axis", int64_t{-1}}}),
                     {x, Tensor::from_vector<float>({1.0f, 2.0f}, {2}), Tensor::from_vector<int8_t>({0, 1}, {2})});
  ASSERT_TRUE(pa.ok());
  expect_values((*pa)[0], {-128, -2, 127, 18}, {2, 2});
  auto i32 = run_node(make_node("DequantizeLinear", 2, 1, 13),
                      {Tensor::from_vector<int32_t>({-7, 9}, {2}), Tensor::scalar<float>(2.0f)});
  ASSERT_TRUE(i32.ok());
  expect_values((*i32)[0], {-14, 18}, {2});
}

TEST(DynamicQuantizeLinear, ScaleZeroPointAndValues) {
  const Tensor x = Tensor::from_vector<float>({0, 2, -3, -2.5f, 1.34f, 0.5f}, {6});
  auto r = run_node(make_node("DynamicQuantizeLinear", 1, 3, 11), {x});
  ASSERT_TRUE(r.ok());
  EXPECT_NEAR((*r)[1].data<float>()[0], 0.0196078438f, 1e-9);
  EXPECT_EQ((*r)[2].data<uint8_t>()[0], 153);
  expect_values((*r)[0], {153, 255, 0, 26, 221, 179}, {6});
  auto zeros = run_node(make_node("DynamicQuantizeLinear", 1, 3, 11), {Tensor::from_vector<float>({0, 0}, {2})});
  ASSERT_TRUE(zeros.ok());
  expect_values((*zeros)[0], {0, 0}, {2});
}

}  // namespace
}  // namespace deskml
