// MatMulInteger and QLinearMatMul: 8-bit matrix products with zero points, int32 accumulation.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/matmul_loops.hpp"

namespace deskml::kernels::cpu {
namespace {

bool is_8bit(DataType t) { return t == DataType::kUInt8 || t == DataType::kInt8; }

// The shape a per-row (A) or per-column (B) quantization parameter broadcasts
// with against its operand: a 1-D per-row vector [M] reads as [M, 1].
Shape param_shape(const Tensor& param, const Tensor& operand, bool per_row) {
  if (param.numel() == 1) return {};
  if (per_row && param.rank() == 1 && operand.rank() >= 2 && param.dim(0) == operand.dim(-2)) {
    return {param.dim(0), 1};
  }
  return param.shape();
}

void check_param(const KernelContext& ctx, const Tensor& param, const Tensor& operand, bool per_row, const char* name) {
  const Shape ps = param_shape(param, operand, per_row);
  // Per row of A means one value per M (K axis of size 1); per column of B one per N (K axis of size 1).
  const bool k_is_unit = ps.empty() || (per_row ? ps.back() == 1 : ps.size() == 1 || ps[ps.size() - 2] == 1);
  auto b = broadcast_shapes(ps, operand.shape());
  if (!k_is_unit || !b.ok() || *b != operand.shape()) {
    throw_status(ctx.error(std::string(name) + " " + shape_to_string(param.shape()) + " does not match its input " +
                           shape_to_string(operand.shape())));
  }
}

// x - zero_point as int32, the zero point broadcast per tensor, row or column.
Tensor shifted(const KernelContext& ctx, const Tensor& x, const Tensor* zp, bool per_row, const char* name) {
  Tensor out(DataType::kInt32, x.shape());
  int32_t* o = out.data<int32_t>();
  if (zp && zp->dtype() != x.dtype()) throw_status(ctx.error(std::string(name) + " must have its input's type"));
  if (zp) check_param(ctx, *zp, x, per_row, name);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    if (zp == nullptr || zp->numel() == 1) {
      const int32_t z = zp ? static_cast<int32_t>(zp->data<T>()[0]) : 0;
      for (int64_t i = 0; i < x.numel(); ++i) o[i] = static_cast<int32_t>(xp[i]) - z;
      return;
    }
    const T* zv = zp->data<T>();
    for_each_broadcast<2>(x.shape(), {x.shape(), param_shape(*zp, x, per_row)}, [&](int64_t i, int64_t xi, int64_t zi) {
      o[i] = static_cast<int32_t>(xp[xi]) - static_cast<int32_t>(zv[zi]);
    });
  };
  if (x.dtype() == DataType::kUInt8) {
    run(uint8_t{});
  } else {
    run(int8_t{});
  }
  return out;
}

Tensor integer_matmul(const KernelContext& ctx, const Tensor& a, const Tensor* a_zp, const Tensor& b,
                      const Tensor* b_zp, MatMulShape& shape) {
  if (!is_8bit(a.dtype()) || !is_8bit(b.dtype())) throw_status(ctx.error("A and B must be uint8 or int8"));
  auto s = matmul_shape(a.shape(), b.shape());
  if (!s.ok()) throw_status(ctx.error(s.status().message()));
  shape = *s;
  const Tensor a32 = shifted(ctx, a, a_zp, true, "a_zero_point");
  const Tensor b32 = shifted(ctx, b, b_zp, false, "b_zero_point");
  Tensor y(DataType::kInt32, shape.out);
  if (y.numel() > 0) {
    batched_gemm<int32_t, int32_t, int32_t, int64_t>(shape.a_offsets, shape.b_offsets, shape.m, shape.n, shape.k,
                                                     a32.data<int32_t>(), b32.data<int32_t>(), y.data<int32_t>(),
                                                     ctx.threads());
  }
  return y;
}

Status matmul_integer(KernelContext& ctx) {
  MatMulShape shape;
  ctx.set_output(0,
                 integer_matmul(ctx, ctx.required_input(0), ctx.input(2), ctx.required_input(1), ctx.input(3), shape));
  return Status::Ok();
}

// A scale as a vector over `count` rows or columns (one value repeated for a scalar).
std::vector<float> scale_vector(const KernelContext& ctx, const Tensor& s, int64_t count, const char* name) {
  if (s.dtype() != DataType::kFloat32) throw_status(ctx.error(std::string(name) + " must be float"));
  std::vector<float> out(static_cast<size_t>(count));
  if (s.numel() == 1) {
    std::fill(out.begin(), out.end(), s.data<float>()[0]);
  } else if (s.rank() == 1 && s.numel() == count) {
    std::copy(s.data<float>(), s.data<float>() + count, out.begin());
  } else {
    throw_status(ctx.error(std::string(name) + " must be a scalar or a 1-D tensor of " + std::to_string(count)));
  }
  return out;
}

template <typename Q>
void requantize(const int32_t* acc, Q* y, int64_t total, int64_t m, int64_t n, const std::vector<float>& a_scale,
                const std::vector<float>& b_scale, float y_scale, int32_t zp, int threads) {
  constexpr float lo = static_cast<float>(std::numeric_limits<Q>::min());
  constexpr float hi = static_cast<float>(std::numeric_limits<Q>::max());
  parallel_for(total, threads, 4, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t col = i % n, row = (i / n) % m;
      const float mult = a_scale[static_cast<size_t>(row)] * b_scale[static_cast<size_t>(col)] / y_scale;
      const float v = std::nearbyint(static_cast<float>(acc[i]) * mult) + static_cast<float>(zp);
      y[i] = static_cast<Q>(std::clamp(v, lo, hi));
    }
  });
}

Status qlinear_matmul(KernelContext& ctx) {
  const Tensor& a = ctx.required_input(0);
  const Tensor& b = ctx.required_input(3);
  const Tensor& y_zp = ctx.required_input(7);
  if (!is_8bit(y_zp.dtype()) || y_zp.numel() != 1) return ctx.error("y_zero_point must be a uint8 or int8 scalar");
  MatMulShape s;
  const Tensor acc = integer_matmul(ctx, a, &ctx.required_input(2), b, &ctx.required_input(5), s);
  const std::vector<float> a_scale = scale_vector(ctx, ctx.required_input(1), s.m, "a_scale");
  const std::vector<float> b_scale = scale_vector(ctx, ctx.required_input(4), s.n, "b_scale");
  const std::vector<float> y_scale = scale_vector(ctx, ctx.required_input(6), 1, "y_scale");
  Tensor& y = ctx.allocate_output(0, y_zp.dtype(), s.out);
  const int32_t zp = static_cast<int32_t>(y_zp.int_at(0));
  if (y.dtype() == DataType::kUInt8) {
    requantize(acc.data<int32_t>(), y.data<uint8_t>(), y.numel(), s.m, s.n, a_scale, b_scale, y_scale[0], zp,
               ctx.threads());
  } else {
    requantize(acc.data<int32_t>(), y.data<int8_t>(), y.numel(), s.m, s.n, a_scale, b_scale, y_scale[0], zp,
               ctx.threads());
  }
  return Status::Ok();
}

}  // namespace

void register_matmul_integer_kernels(KernelRegistry& r) {
  r.add("MatMulInteger", 10, INT_MAX, {DataType::kUInt8, DataType::kInt8}, matmul_integer);
  r.add("QLinearMatMul", 10, INT_MAX, {DataType::kUInt8, DataType::kInt8}, qlinear_matmul);
}

}  // namespace deskml::kernels::cpu
