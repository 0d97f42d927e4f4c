// Elementwise math, part 3: variadic Sum/Mean/Max/Min, Where and Clip.
#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/elementwise_common.hpp"

namespace deskml::kernels::cpu {

namespace {

using namespace ew;

// NaN-propagating max/min, as numpy's maximum/minimum.
template <typename T>
inline T max_value(T a, T b) {
  return select((a >= b) | (a != a), a, b);
}
template <typename T>
inline T min_value(T a, T b) {
  return select((a <= b) | (a != a), a, b);
}

enum class Variadic { kSum, kMean, kMax, kMin };

template <Variadic V>
Status variadic_kernel(KernelContext& ctx) {
  if (ctx.num_inputs() == 0) return ctx.error("needs at least one input");
  std::vector<const Tensor*> ins;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) ins.push_back(&ctx.required_input(i));
  const DataType dtype = ins[0]->dtype();
  Shape shape = ins[0]->shape();
  for (size_t i = 1; i < ins.size(); ++i) {
    if (ins[i]->dtype() != dtype) {
      return ctx.error("inputs have different types: " + ins[0]->description() + " and " + ins[i]->description());
    }
    auto s = broadcast_shapes(shape, ins[i]->shape());
    if (!s.ok()) return ctx.error(s.status().message());
    shape = *s;
  }
  if (ins.size() == 1) {
    ctx.set_output(0, *ins[0]);
    return Status::Ok();
  }
  Tensor& out = ctx.allocate_output(0, dtype, shape);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    auto op = [](auto a, auto b) {
      if constexpr (V == Variadic::kMax) {
        return max_value(a, b);
      } else if constexpr (V == Variadic::kMin) {
        return min_value(a, b);
      } else {
        return a + b;
      }
    };
    binary_apply<T, T, T>(*ins[0], *ins[1], out, ctx.threads(), 1, op);
    // Later inputs accumulate in place: out is read and written at the same index only.
    for (size_t i = 2; i < ins.size(); ++i) binary_apply<T, T, T>(out, *ins[i], out, ctx.threads(), 1, op);
    if constexpr (V == Variadic::kMean) {
      using C = compute_t<T>;
      const C n = static_cast<C>(ins.size());
      T* p = out.data<T>();
      map_unary(p, p, out.numel(), ctx.threads(), 1, [n](C v) { return v / n; });
    }
  };
  if constexpr (V == Variadic::kMax || V == Variadic::kMin) {
    dispatch_numbers(dtype, ctx.node().op_type, run);
  } else {
    dispatch_floats(dtype, ctx.node().op_type, run);
  }
  return Status::Ok();
}

Status where_kernel(KernelContext& ctx) {
  const Tensor& c = ctx.required_input(0);
  const Tensor& x = ctx.required_input(1);
  const Tensor& y = ctx.required_input(2);
  if (c.dtype() != DataType::kBool) return ctx.error("condition must be bool, got " + c.description());
  if (x.dtype() != y.dtype()) {
    return ctx.error("X and Y have different types: " + x.description() + " and " + y.description());
  }
  auto s1 = broadcast_shapes(c.shape(), x.shape());
  if (!s1.ok()) return ctx.error(s1.status().message());
  auto s2 = broadcast_shapes(*s1, y.shape());
  if (!s2.ok()) return ctx.error(s2.status().message());
  Tensor& out = ctx.allocate_output(0, x.dtype(), *s2);
  const auto plan = make_broadcast_plan<3>(out.shape(), {&c.shape(), &x.shape(), &y.shape()});
  dispatch_all(x.dtype(), "Where", [&](auto tag) {
    using T = decltype(tag);
    const bool* pc = c.data<bool>();
    const T* px = x.data<T>();
    const T* py = y.data<T>();
    T* po = out.data<T>();
    const int64_t sc = plan.inner_stride[0];
    const int64_t sx = plan.inner_stride[1];
    const int64_t sy = plan.inner_stride[2];
    broadcast_rows(plan, ctx.threads(), 1, [&](const std::array<int64_t, 3>& off, int64_t o, int64_t len) {
      const bool* cc = pc + off[0];
      const T* xx = px + off[1];
      const T* yy = py + off[2];
      T* oo = po + o;
      // Both sides are read and blended (select) so that the loops vectorize.
      if (sc != 0 && sx != 0 && sy != 0) {
        for (int64_t i = 0; i < len; ++i) oo[i] = select(cc[i], xx[i], yy[i]);
      } else if (sc != 0 && sx != 0) {
        const T yv = yy[0];
        for (int64_t i = 0; i < len; ++i) oo[i] = select(cc[i], xx[i], yv);
      } else if (sc != 0 && sy != 0) {
        const T xv = xx[0];
        for (int64_t i = 0; i < len; ++i) oo[i] = select(cc[i], xv, yy[i]);
      } else {
        for (int64_t i = 0; i < len; ++i) oo[i] = select(cc[i * sc], xx[i * sx], yy[i * sy]);
      }
    });
  });
  return Status::Ok();
}

// Clip bounds: attributes before opset 11, optional scalar inputs from 11.
template <typename T>
Status clip_bounds(const KernelContext& ctx, const Tensor& x, compute_t<T>& lo, compute_t<T>& hi) {
  using C = compute_t<T>;
  lo = std::numeric_limits<C>::lowest();
  hi = std::numeric_limits<C>::max();
  if constexpr (std::is_floating_point_v<C>) {
    lo = -std::numeric_limits<C>::infinity();
    hi = std::numeric_limits<C>::infinity();
  }
  if (ctx.opset() < 11) {
    if (ctx.node().has_attr("min")) lo = static_cast<C>(ctx.node().attr_float("min", 0.0f));
    if (ctx.node().has_attr("max")) hi = static_cast<C>(ctx.node().attr_float("max", 0.0f));
    return Status::Ok();
  }
  for (size_t i = 1; i <= 2; ++i) {
    const Tensor* b = ctx.input(i);
    if (b == nullptr) continue;
    if (b->dtype() != x.dtype()) {
      return ctx.error(std::string(i == 1 ? "min " : "max ") + b->description() + " must have the type of input " +
                       x.description());
    }
    if (b->numel() != 1) {
      return ctx.error(std::string(i == 1 ? "min " : "max ") + "must be a scalar, got " + b->description());
    }
    (i == 1 ? lo : hi) = load_as<C>(b->data<T>()[0]);
  }
  return Status::Ok();
}

Status clip_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
  Status status;
  dispatch_numbers(x.dtype(), "Clip", [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    C lo{};
    C hi{};
    status = clip_bounds<T>(ctx, x, lo, hi);
    if (!status.ok()) return;
    // min(max(x, lo), hi): NaN stays NaN, and lo > hi gives hi, as numpy.clip.
    map_unary(x.data<T>(), y.data<T>(), x.numel(), ctx.threads(), 1, [lo, hi](C v) {
      const C a = select(v < lo, lo, v);
      return select(a > hi, hi, a);
    });
  });
  return status;
}

}  // namespace

void register_elementwise_variadic_kernels(KernelRegistry& r) {
  using namespace types;
  r.add("Sum", 1, INT_MAX, kFloat, variadic_kernel<Variadic::kSum>);
  r.add("Mean", 1, INT_MAX, kFloat, variadic_kernel<Variadic::kMean>);
  r.add("Max", 1, INT_MAX, kNumeric, variadic_kernel<Variadic::kMax>);
  r.add("Min", 1, INT_MAX, kNumeric, variadic_kernel<Variadic::kMin>);
  KernelDef where;
  where.op = "Where";
  where.since = 9;
  where.type_input = 1;
  where.factory = [](const graph::Node&) { return std::make_unique<FunctionKernel>(where_kernel); };
  r.add(std::move(where));
  r.add("Clip", 1, 10, kFloat, clip_kernel);
  r.add("Clip", 11, INT_MAX, kNumeric, clip_kernel);
}

}  // namespace deskml::kernels::cpu
