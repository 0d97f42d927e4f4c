// QuantizeLinear, DequantizeLinear (per tensor and per axis) and DynamicQuantizeLinear.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"

namespace deskml::kernels::cpu {
namespace {

// How a scale/zero-point pair applies to x: one value, or one per index of `axis`.
struct QuantParams {
  int64_t count = 1;  // 1: per tensor
  int64_t inner = 1;  // elements per index of the axis (per-axis only)
};

QuantParams quant_params(const KernelContext& ctx, const Tensor& x, const Tensor& scale, const Tensor* zp) {
  if (ctx.node().attr_int("block_size", 0) != 0) {
    throw_status(unsupported(ctx.node().label() + ": blocked quantization (block_size) is not supported"));
  }
  if (zp && zp->shape() != scale.shape()) throw_status(ctx.error("scale and zero point must have one shape"));
  QuantParams p;
  if (scale.numel() == 1 && scale.rank() <= 1) return p;
  if (scale.rank() != 1 || ctx.opset() < 13) {
    throw_status(ctx.error("scale must be a scalar" + std::string(ctx.opset() >= 13 ? " or a 1-D tensor" : "")));
  }
  if (x.rank() == 0) throw_status(ctx.error("a 1-D scale needs an input with at least one dimension"));
  const int64_t axis = normalize_axis_or_throw(ctx.node().attr_int("axis", 1), x.rank());
  if (scale.dim(0) != x.dim(axis)) {
    throw_status(ctx.error("scale has " + std::to_string(scale.dim(0)) + " values but axis " + std::to_string(axis) +
                           " of the input has " + std::to_string(x.dim(axis))));
  }
  p.count = scale.dim(0);
  for (int64_t d = axis + 1; d < x.rank(); ++d) p.inner *= x.dim(d);
  return p;
}

// Scale values as float (scales may be float16/bfloat16 from opset 19).
std::vector<float> scale_values(const KernelContext& ctx, const Tensor& s) {
  if (!dtype_is_float(s.dtype()) || s.dtype() == DataType::kFloat64) throw_status(ctx.error("scale must be float"));
  std::vector<float> out(static_cast<size_t>(s.numel()));
  for (int64_t i = 0; i < s.numel(); ++i) out[static_cast<size_t>(i)] = static_cast<float>(s.float_at(i));
  return out;
}

std::vector<int64_t> zero_values(const Tensor* zp, int64_t count) {
  std::vector<int64_t> out(static_cast<size_t>(count), 0);
  if (zp) {
    for (int64_t i = 0; i < count; ++i) out[static_cast<size_t>(i)] = zp->int_at(i);
  }
  return out;
}

template <typename Q, typename X>
void quantize_loop(const X* x, Q* y, int64_t n, const QuantParams& p, const std::vector<float>& scale,
                   const std::vector<int64_t>& zero, int threads) {
  using C = std::conditional_t<std::is_same_v<X, int32_t>, double, float>;
  constexpr C lo = static_cast<C>(std::numeric_limits<Q>::min());
  constexpr C hi = static_cast<C>(std::numeric_limits<Q>::max());
  parallel_for(n, threads, 4, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const size_t k = p.count == 1 ? 0 : static_cast<size_t>((i / p.inner) % p.count);
      C v = std::nearbyint(static_cast<C>(x[i]) / static_cast<C>(scale[k])) + static_cast<C>(zero[k]);
      if (std::isnan(v)) v = static_cast<C>(zero[k]);
      y[i] = static_cast<Q>(std::clamp(v, lo, hi));
    }
  });
}

Status quantize_linear(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  const Tensor& scale = ctx.required_input(1);
  const Tensor* zp = ctx.input(2);
  const QuantParams p = quant_params(ctx, x, scale, zp);
  const std::vector<float> s = scale_values(ctx, scale);
  const std::vector<int64_t> z = zero_values(zp, p.count);
  const DataType out_type = zp ? zp->dtype() : DataType::kUInt8;
  Tensor& y = ctx.allocate_output(0, out_type, x.shape());
  Tensor xf;
  const Tensor* xin = &x;
  if (x.dtype() == DataType::kFloat16 || x.dtype() == DataType::kBFloat16) {
    xf = x.cast(DataType::kFloat32);
    xin = &xf;
  } else if (x.dtype() != DataType::kFloat32 && x.dtype() != DataType::kInt32) {
    return ctx.error("x must be float or int32");
  }
  auto run = [&](auto qtag) {
    using Q = decltype(qtag);
    if (xin->dtype() == DataType::kFloat32) {
      quantize_loop<Q>(xin->data<float>(), y.data<Q>(), x.numel(), p, s, z, ctx.threads());
    } else {
      quantize_loop<Q>(xin->data<int32_t>(), y.data<Q>(), x.numel(), p, s, z, ctx.threads());
    }
  };
  switch (out_type) {
    case DataType::kUInt8:
      run(uint8_t{});
      break;
    case DataType::kInt8:
      run(int8_t{});
      break;
    case DataType::kUInt16:
      run(uint16_t{});
      break;
    case DataType::kInt16:
      run(int16_t{});
      break;
    default:
      return unsupported(ctx.node().label() + ": unsupported zero point type " + std::string(dtype_name(out_type)));
  }
  return Status::Ok();
}

Status dequantize_linear(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  const Tensor& scale = ctx.required_input(1);
  const Tensor* zp = ctx.input(2);
  if (zp && zp->dtype() != x.dtype()) return ctx.error("x_zero_point must have x's type");
  const QuantParams p = quant_params(ctx, x, scale, zp);
  const std::vector<float> s = scale_values(ctx, scale);
  const std::vector<int64_t> z = zero_values(zp, p.count);
  Tensor yf(DataType::kFloat32, x.shape());
  float* yp = yf.data<float>();
  auto run = [&](auto tag) {
    using X = decltype(tag);
    const X* xp = x.data<X>();
    parallel_for(x.numel(), ctx.threads(), 2, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const size_t k = p.count == 1 ? 0 : static_cast<size_t>((i / p.inner) % p.count);
        yp[i] = static_cast<float>(static_cast<int64_t>(xp[i]) - z[k]) * s[k];
      }
    });
  };
  switch (x.dtype()) {
    case DataType::kUInt8:
      run(uint8_t{});
      break;
    case DataType::kInt8:
      run(int8_t{});
      break;
    case DataType::kUInt16:
      run(uint16_t{});
      break;
    case DataType::kInt16:
      run(int16_t{});
      break;
    case DataType::kInt32:
      run(int32_t{});
      break;
    default:
      return unsupported(ctx.node().label() + ": unsupported input type " + std::string(dtype_name(x.dtype())));
  }
  // From opset 19 the output has the scale's type.
  ctx.set_output(0, scale.dtype() == DataType::kFloat32 ? yf : yf.cast(scale.dtype()));
  return Status::Ok();
}

Status dynamic_quantize_linear(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  if (x.dtype() != DataType::kFloat32) return ctx.error("x must be float");
  const float* xp = x.data<float>();
  const int64_t n = x.numel();
  float lo = 0.0f, hi = 0.0f;  // the range always includes 0
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(xp[i])) continue;
    lo = std::min(lo, xp[i]);
    hi = std::max(hi, xp[i]);
  }
  const float scale = (hi - lo) / 255.0f;
  if (!std::isfinite(scale)) return ctx.error("the input's range is not finite (it holds inf), so no uint8 scale exists");
  float zero = 0.0f;
  if (scale > 0.0f) zero = std::clamp(std::nearbyint((0.0f - lo) / scale), 0.0f, 255.0f);
  Tensor& y = ctx.allocate_output(0, DataType::kUInt8, x.shape());
  uint8_t* yp = y.data<uint8_t>();
  parallel_for(n, ctx.threads(), 4, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float v = scale > 0.0f ? std::nearbyint(xp[i] / scale) + zero : zero;
      if (std::isnan(v)) v = zero;
      yp[i] = static_cast<uint8_t>(std::clamp(v, 0.0f, 255.0f));
    }
  });
  ctx.allocate_output(1, DataType::kFloat32, {}).data<float>()[0] = scale;
  ctx.allocate_output(2, DataType::kUInt8, {}).data<uint8_t>()[0] = static_cast<uint8_t>(zero);
  return Status::Ok();
}

}  // namespace

void register_quantize_kernels(KernelRegistry& r) {
  r.add("QuantizeLinear", 10, INT_MAX, {DataType::kFloat32, DataType::kInt32, DataType::kFloat16, DataType::kBFloat16},
        quantize_linear);
  r.add("DequantizeLinear", 10, INT_MAX,
        {DataType::kUInt8, DataType::kInt8, DataType::kInt32, DataType::kUInt16, DataType::kInt16}, dequantize_linear);
  r.add("DynamicQuantizeLinear", 11, INT_MAX, {DataType::kFloat32}, dynamic_quantize_linear);
}

}  // namespace deskml::kernels::cpu
