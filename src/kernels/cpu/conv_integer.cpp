// ConvInteger and QLinearConv: 8-bit convolutions with zero points, int32 accumulation.
#include <cmath>
#include <limits>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/conv_geometry.hpp"
#include "kernels/cpu/cpu_registry.hpp"

namespace deskml::kernels::cpu {
namespace {

bool is_8bit(DataType t) { return t == DataType::kUInt8 || t == DataType::kInt8; }

// A zero point: absent (0), a scalar, or (for weights) one value per output channel.
std::vector<int32_t> zero_points(const KernelContext& ctx, const Tensor* zp, DataType expected, int64_t per_channel,
                                 const char* name) {
  std::vector<int32_t> out(static_cast<size_t>(per_channel), 0);
  if (zp == nullptr) return out;
  if (zp->dtype() != expected) throw_status(ctx.error(std::string(name) + " must have the same type as its input"));
  if (zp->numel() == 1 && zp->rank() <= 1) {
    std::fill(out.begin(), out.end(), static_cast<int32_t>(zp->int_at(0)));
  } else if (per_channel > 1 && zp->rank() == 1 && zp->numel() == per_channel) {
    for (int64_t i = 0; i < per_channel; ++i) out[static_cast<size_t>(i)] = static_cast<int32_t>(zp->int_at(i));
  } else {
    throw_status(ctx.error(std::string(name) + " must be a scalar" +
                           (per_channel > 1 ? " or have one value per output channel" : std::string())));
  }
  return out;
}

// acc[n, m, ...] = conv(x - x_zp, w - w_zp[m]) as int32.
Tensor integer_conv(const KernelContext& ctx, const ConvGeometry& g, const Tensor& x, const Tensor& w, int32_t x_zp,
                    const std::vector<int32_t>& w_zp) {
  Tensor acc(DataType::kInt32, g.output_shape());
  if (acc.numel() == 0) return acc;
  const ConvGeometry g3 = g.as_3d();
  auto run = [&](auto xt, auto wt) {
    using TX = decltype(xt);
    using TW = decltype(wt);
    reference_conv<TX, TW, int32_t>(g3, x.data<TX>(), w.data<TW>(), x_zp, w_zp.data(), acc.data<int32_t>(),
                                    ctx.threads());
  };
  if (x.dtype() == DataType::kUInt8) {
    w.dtype() == DataType::kUInt8 ? run(uint8_t{}, uint8_t{}) : run(uint8_t{}, int8_t{});
  } else {
    w.dtype() == DataType::kUInt8 ? run(int8_t{}, uint8_t{}) : run(int8_t{}, int8_t{});
  }
  return acc;
}

class ConvIntegerKernel final : public Kernel {
 public:
  explicit ConvIntegerKernel(const graph::Node& node) : attrs_(node) {}
  Status compute(KernelContext& ctx) override {
    const Tensor& x = ctx.required_input(0);
    const Tensor& w = ctx.required_input(1);
    if (!is_8bit(x.dtype()) || !is_8bit(w.dtype())) return ctx.error("x and w must be uint8 or int8");
    const ConvGeometry g = conv_geometry(attrs_, x.shape(), w.shape(), ctx.node().label());
    const std::vector<int32_t> x_zp = zero_points(ctx, ctx.input(2), x.dtype(), 1, "x_zero_point");
    const std::vector<int32_t> w_zp = zero_points(ctx, ctx.input(3), w.dtype(), g.out_channels, "w_zero_point");
    ctx.set_output(0, integer_conv(ctx, g, x, w, x_zp[0], w_zp));
    return Status::Ok();
  }

 private:
  ConvAttrs attrs_;
};

std::vector<float> scales(const KernelContext& ctx, const Tensor& s, int64_t per_channel, const char* name) {
  if (s.dtype() != DataType::kFloat32) throw_status(ctx.error(std::string(name) + " must be float"));
  std::vector<float> out(static_cast<size_t>(per_channel));
  if (s.numel() == 1 && s.rank() <= 1) {
    std::fill(out.begin(), out.end(), s.data<float>()[0]);
  } else if (per_channel > 1 && s.rank() == 1 && s.numel() == per_channel) {
    std::copy(s.data<float>(), s.data<float>() + per_channel, out.begin());
  } else {
    throw_status(ctx.error(std::string(name) + " must be a scalar" +
                           (per_channel > 1 ? " or have one value per output channel" : std::string())));
  }
  return out;
}

template <typename Q>
void requantize(const int32_t* acc, Q* y, int64_t planes, int64_t channels, int64_t plane,
                const std::vector<float>& multiplier, int32_t zero_point, int threads) {
  constexpr float lo = static_cast<float>(std::numeric_limits<Q>::min());
  constexpr float hi = static_cast<float>(std::numeric_limits<Q>::max());
  parallel_for(planes, threads, plane, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float mult = multiplier[static_cast<size_t>(p % channels)];
      for (int64_t i = 0; i < plane; ++i) {
        const float v = std::nearbyint(static_cast<float>(acc[p * plane + i]) * mult) + static_cast<float>(zero_point);
        y[p * plane + i] = static_cast<Q>(std::clamp(v, lo, hi));
      }
    }
  });
}

class QLinearConvKernel final : public Kernel {
 public:
  explicit QLinearConvKernel(const graph::Node& node) : attrs_(node) {}
  Status compute(KernelContext& ctx) override {
    const Tensor& x = ctx.required_input(0);
    const Tensor& w = ctx.required_input(3);
    const Tensor& y_zp_t = ctx.required_input(7);
    if (!is_8bit(x.dtype()) || !is_8bit(w.dtype()) || !is_8bit(y_zp_t.dtype())) {
      return ctx.error("x, w and y_zero_point must be uint8 or int8");
    }
    const ConvGeometry g = conv_geometry(attrs_, x.shape(), w.shape(), ctx.node().label());
    const int64_t m = g.out_channels;
    const float x_scale = scales(ctx, ctx.required_input(1), 1, "x_scale")[0];
    const std::vector<float> w_scale = scales(ctx, ctx.required_input(4), m, "w_scale");
    const float y_scale = scales(ctx, ctx.required_input(6), 1, "y_scale")[0];
    const std::vector<int32_t> x_zp = zero_points(ctx, &ctx.required_input(2), x.dtype(), 1, "x_zero_point");
    const std::vector<int32_t> w_zp = zero_points(ctx, &ctx.required_input(5), w.dtype(), m, "w_zero_point");
    const int32_t y_zp = zero_points(ctx, &y_zp_t, y_zp_t.dtype(), 1, "y_zero_point")[0];
    const Tensor* bias = ctx.input(8);
    if (bias && (bias->dtype() != DataType::kInt32 || bias->rank() != 1 || bias->dim(0) != m)) {
      return ctx.error("B must be int32 with shape [" + std::to_string(m) + "]");
    }
    Tensor acc = integer_conv(ctx, g, x, w, x_zp[0], w_zp);
    const int64_t plane = g.out_size(), planes = g.batch * m;
    int32_t* ap = acc.data<int32_t>();
    if (bias) {
      const int32_t* bp = bias->data<int32_t>();
      for (int64_t p = 0; p < planes; ++p) {
        for (int64_t i = 0; i < plane; ++i) ap[p * plane + i] += bp[p % m];
      }
    }
    std::vector<float> multiplier(static_cast<size_t>(m));
    for (size_t i = 0; i < multiplier.size(); ++i) multiplier[i] = x_scale * w_scale[i] / y_scale;
    Tensor& y = ctx.allocate_output(0, y_zp_t.dtype(), g.output_shape());
    if (y.dtype() == DataType::kUInt8) {
      requantize(ap, y.data<uint8_t>(), planes, m, plane, multiplier, y_zp, ctx.threads());
    } else {
      requantize(ap, y.data<int8_t>(), planes, m, plane, multiplier, y_zp, ctx.threads());
    }
    return Status::Ok();
  }

 private:
  ConvAttrs attrs_;
};

}  // namespace

void register_conv_integer_kernels(KernelRegistry& r) {
  KernelDef def;
  def.op = "ConvInteger";
  def.since = 10;
  def.types = {DataType::kUInt8, DataType::kInt8};
  def.factory = [](const graph::Node& node) { return std::make_unique<ConvIntegerKernel>(node); };
  r.add(def);
  def.op = "QLinearConv";
  def.factory = [](const graph::Node& node) { return std::make_unique<QLinearConvKernel>(node); };
  r.add(def);
}

}  // namespace deskml::kernels::cpu
