// Activations: Relu and friends. All are elementwise maps over one input
// (PRelu broadcasts its slope); float types compute in their own precision,
// half types in float.
#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/elementwise_common.hpp"
#include "kernels/cpu/int_arith.hpp"

namespace deskml::kernels::cpu {

namespace {

using namespace ew;

template <typename Op>
Status activation(KernelContext& ctx, int64_t cost, const Op& op) {
  const Tensor& x = ctx.required_input(0);
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
  dispatch_floats(x.dtype(), ctx.node().op_type, [&](auto tag) {
    using T = decltype(tag);
    map_unary(x.data<T>(), y.data<T>(), x.numel(), ctx.threads(), cost, op);
  });
  return Status::Ok();
}

// Builds a kernel from `make(node)`, which reads the attributes and returns the per-element op.
template <typename Make>
KernelFn activation_fn(int64_t cost, Make make) {
  return [cost, make](KernelContext& ctx) { return activation(ctx, cost, make(ctx.node())); };
}

Status relu_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
  dispatch_numbers(x.dtype(), "Relu", [&](auto tag) {
    using T = decltype(tag);
    // v < 0 ? 0 : v keeps NaN, as numpy's maximum(x, 0).
    map_unary(x.data<T>(), y.data<T>(), x.numel(), ctx.threads(), 1, [](auto v) {
      using C = decltype(v);
      return select(v < C(0), C(0), v);
    });
  });
  return Status::Ok();
}

Status prelu_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  Tensor slope = ctx.required_input(1);
  // Before opset 7 a 1-D slope holds one value per channel (dim 1), as PyTorch exported it.
  if (ctx.opset() < 7 && slope.rank() == 1 && x.rank() >= 2 && slope.numel() > 1 && slope.numel() == x.dim(1)) {
    Shape s(static_cast<size_t>(x.rank() - 1), 1);
    s[0] = slope.numel();
    slope = slope.reshaped(s);
  }
  if (slope.dtype() != x.dtype()) {
    return ctx.error("slope " + slope.description() + " must have the type of X " + x.description());
  }
  auto shape = broadcast_shapes(x.shape(), slope.shape());
  if (!shape.ok() || *shape != x.shape()) {
    return ctx.error("slope " + slope.description() + " does not broadcast to X " + x.description());
  }
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
  dispatch_numbers(x.dtype(), "PRelu", [&](auto tag) {
    using T = decltype(tag);
    binary_apply<T, T, T>(x, slope, y, ctx.threads(), 1, [](auto v, auto s) {
      using C = decltype(v);
      return select(v < C(0), mul_wrap<C>(v, static_cast<C>(s)), v);
    });
  });
  return Status::Ok();
}

Status shrink_kernel(KernelContext& ctx) {
  const double lambd = ctx.node().attr_float("lambd", 0.5f);
  const double bias = ctx.node().attr_float("bias", 0.0f);
  const Tensor& x = ctx.required_input(0);
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
  dispatch_numbers(x.dtype(), "Shrink", [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    if constexpr (std::is_floating_point_v<C>) {
      const C l = static_cast<C>(lambd);
      const C b = static_cast<C>(bias);
      map_unary(x.data<T>(), y.data<T>(), x.numel(), ctx.threads(), 1,
                [l, b](C v) { return select(v < -l, v + b, select(v > l, v - b, C(0))); });
    } else {
      map_unary(x.data<T>(), y.data<T>(), x.numel(), ctx.threads(), 1, [lambd, bias](C v) {
        const double d = static_cast<double>(v);
        return saturate_cast<T>(d < -lambd ? d + bias : (d > lambd ? d - bias : 0.0));
      });
    }
  });
  return Status::Ok();
}

Status gelu_kernel(KernelContext& ctx) {
  const std::string approximate = ctx.node().attr_string("approximate", "none");
  // Far enough left Gelu is -0 in the type; clamping there keeps -inf from giving -inf * 0.
  if (approximate == "none") {
    return activation(ctx, 12, [](auto v) {
      using C = decltype(v);
      const C x = vmax(v, C(sizeof(C) == 4 ? -10 : -40));
      const C e = fast_erf(x * C(0.70710678118654752440));
      return C(0.5) * x * (C(1) + e);
    });
  }
  if (approximate == "tanh") {
    return activation(ctx, 12, [](auto v) {
      using C = decltype(v);
      const C x = vmax(v, C(sizeof(C) == 4 ? -10 : -40));
      // 0.5 * (1 + tanh(u)) == sigmoid(2u), which keeps its relative accuracy far left.
      const C inner = C(2 * 0.79788456080286535588) * (x + C(0.044715) * x * x * x);
      return x * fast_sigmoid(inner);
    });
  }
  return ctx.error("approximate must be 'none' or 'tanh', got '" + approximate + "'");
}

// deskml.Swish: x * sigmoid(alpha x), recognised by the optimizer from Mul(x, Sigmoid(x)).
Status swish_kernel(KernelContext& ctx) {
  const float alpha = ctx.node().attr_float("alpha", 1.0f);
  return activation(ctx, 8, [alpha](auto v) {
    using C = decltype(v);
    return v * fast_sigmoid(v * C(alpha));
  });
}

}  // namespace

void register_activation_kernels(KernelRegistry& r) {
  using namespace types;
  // The optimizer's forms of SiLU and GELU (deskml domain, any model opset).
  r.add("Swish", 1, INT_MAX, kFloat, swish_kernel, "deskml");
  r.add("Gelu", 1, INT_MAX, kFloat, gelu_kernel, "deskml");
  r.add("Relu", 1, INT_MAX, kSignedNumeric, relu_kernel);
  r.add("LeakyRelu", 1, INT_MAX, kFloat, activation_fn(1, [](const graph::Node& n) {
          const float alpha = n.attr_float("alpha", 0.01f);
          return [alpha](auto v) {
            using C = decltype(v);
            return select(v < C(0), v * C(alpha), v);
          };
        }));
  r.add("PRelu", 1, INT_MAX, kNumeric, prelu_kernel);
  r.add("Sigmoid", 1, INT_MAX, kFloat,
        activation_fn(8, [](const graph::Node&) { return [](auto v) { return fast_sigmoid(v); }; }));
  r.add("HardSigmoid", 1, INT_MAX, kFloat, activation_fn(1, [](const graph::Node& n) {
          const float alpha = n.attr_float("alpha", 0.2f);
          const float beta = n.attr_float("beta", 0.5f);
          return [alpha, beta](auto v) {
            using C = decltype(v);
            // Value first in min/max so that NaN propagates.
            return vmax(vmin(C(alpha) * v + C(beta), C(1)), C(0));
          };
        }));
  r.add("HardSwish", 14, INT_MAX, kFloat, activation_fn(1, [](const graph::Node&) {
          return [](auto v) {
            using C = decltype(v);
            return v * vmax(vmin(v * C(1.0 / 6.0) + C(0.5), C(1)), C(0));
          };
        }));
  r.add("Tanh", 1, INT_MAX, kFloat,
        activation_fn(8, [](const graph::Node&) { return [](auto v) { return fast_tanh(v); }; }));
  // expm1 keeps relative accuracy for small negative inputs, where exp(x) - 1 cancels.
  r.add("Elu", 1, INT_MAX, kFloat, activation_fn(8, [](const graph::Node& n) {
          const float alpha = n.attr_float("alpha", 1.0f);
          return [alpha](auto v) {
            using C = decltype(v);
            return select(v < C(0), C(alpha) * fast_expm1(v), v);
          };
        }));
  r.add("Selu", 1, INT_MAX, kFloat, activation_fn(8, [](const graph::Node& n) {
          const float alpha = n.attr_float("alpha", 1.67326319217681884765625f);
          const float gamma = n.attr_float("gamma", 1.05070102214813232421875f);
          return [alpha, gamma](auto v) {
            using C = decltype(v);
            return select(v <= C(0), C(gamma) * C(alpha) * fast_expm1(v), C(gamma) * v);
          };
        }));
  r.add("Celu", 12, INT_MAX, kFloat, activation_fn(8, [](const graph::Node& n) {
          const float alpha = n.attr_float("alpha", 1.0f);
          return [alpha](auto v) {
            using C = decltype(v);
            return select(v < C(0), C(alpha) * fast_expm1(v / C(alpha)), v);
          };
        }));
  r.add("Softplus", 1, INT_MAX, kFloat,
        activation_fn(12, [](const graph::Node&) { return [](auto v) { return softplus(v); }; }));
  r.add("Softsign", 1, INT_MAX, kFloat, activation_fn(2, [](const graph::Node&) {
          return [](auto v) {
            using C = decltype(v);
            const C a = std::abs(v);
            return select(a == std::numeric_limits<C>::infinity(), std::copysign(C(1), v), v / (C(1) + a));
          };
        }));
  r.add("ThresholdedRelu", 10, INT_MAX, kFloat, activation_fn(1, [](const graph::Node& n) {
          const float alpha = n.attr_float("alpha", 1.0f);
          return [alpha](auto v) {
            using C = decltype(v);
            return select(v <= C(alpha), C(0), v);
          };
        }));
  // Gelu (opset 20) and Mish (opset 18) are newer than the ONNX here; models that carry them run anyway.
  r.add("Gelu", 1, INT_MAX, kFloat, gelu_kernel);
  r.add("Mish", 1, INT_MAX, kFloat, activation_fn(16, [](const graph::Node&) {
          // Below -100 mish is -0 in any float type; clamping keeps -inf from giving -inf * 0.
          return [](auto v) {
            using C = decltype(v);
            const C x = vmax(v, C(-100));
            return x * fast_tanh(softplus(x));
          };
        }));
  r.add("Shrink", 9, INT_MAX, kNumeric, shrink_kernel);
}

}  // namespace deskml::kernels::cpu
