// Elementwise math, part 1: unary ops (Abs .. BitwiseNot) and the family's
// registration. Binary ops live in elementwise_binary.cpp, variadic ops and
// Where/Clip in elementwise_variadic.cpp, Cast/CastLike in elementwise_cast.cpp.
#include <cmath>
#include <type_traits>

#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/elementwise_common.hpp"

namespace deskml::kernels::cpu {

void register_elementwise_binary_kernels(KernelRegistry& r);
void register_elementwise_variadic_kernels(KernelRegistry& r);
void register_elementwise_cast_kernels(KernelRegistry& r);

namespace {

using namespace ew;

// Same dtype in and out, float types only.
template <typename Op>
Status unary_float(KernelContext& ctx, int64_t cost, const Op& op) {
  const Tensor& x = ctx.required_input(0);
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
  dispatch_floats(x.dtype(), ctx.node().op_type, [&](auto tag) {
    using T = decltype(tag);
    map_unary(x.data<T>(), y.data<T>(), x.numel(), ctx.threads(), cost, op);
  });
  return Status::Ok();
}

// Same dtype in and out, floats and integers.
template <typename Op>
Status unary_number(KernelContext& ctx, int64_t cost, const Op& op) {
  const Tensor& x = ctx.required_input(0);
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
  dispatch_numbers(x.dtype(), ctx.node().op_type, [&](auto tag) {
    using T = decltype(tag);
    map_unary(x.data<T>(), y.data<T>(), x.numel(), ctx.threads(), cost, op);
  });
  return Status::Ok();
}

// Float types in, bool out.
template <typename Op>
Status unary_float_predicate(KernelContext& ctx, const Op& op) {
  const Tensor& x = ctx.required_input(0);
  Tensor& y = ctx.allocate_output(0, DataType::kBool, x.shape());
  dispatch_floats(x.dtype(), ctx.node().op_type, [&](auto tag) {
    using T = decltype(tag);
    map_unary(x.data<T>(), y.data<bool>(), x.numel(), ctx.threads(), 1, op);
  });
  return Status::Ok();
}

// Two's-complement negation without signed-overflow UB (numpy wraps too).
template <typename T>
inline T neg_wrap(T v) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;
    return static_cast<T>(U{0} - static_cast<U>(v));
  } else {
    return -v;
  }
}

template <typename T>
inline T abs_value(T v) {
  if constexpr (std::is_unsigned_v<T>) {
    return v;
  } else if constexpr (std::is_integral_v<T>) {
    return v < 0 ? neg_wrap(v) : v;
  } else {
    return std::abs(v);
  }
}

template <typename T>
inline T sign_value(T v) {
  if constexpr (std::is_unsigned_v<T>) {
    return static_cast<T>(v > 0 ? 1 : 0);
  } else if constexpr (std::is_integral_v<T>) {
    return static_cast<T>((v > 0) - (v < 0));
  } else {
    const T s = static_cast<T>((v > 0) - (v < 0));
    return select(v != v, v, s);
  }
}

Status erf_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  if (dtype_is_float(x.dtype())) {
    return unary_float(ctx, 8, [](auto v) { return fast_erf(v); });
  }
  // Integer erf is defined by the spec (all numeric types); compute in double and truncate.
  return unary_number(ctx, 8, [](auto v) {
    using T = decltype(v);
    return saturate_cast<T>(std::erf(static_cast<double>(v)));
  });
}

Status isinf_kernel(KernelContext& ctx) {
  const bool pos = ctx.node().attr_int("detect_positive", 1) != 0;
  const bool neg = ctx.node().attr_int("detect_negative", 1) != 0;
  return unary_float_predicate(ctx, [pos, neg](auto v) {
    using T = decltype(v);
    return (pos && v == std::numeric_limits<T>::infinity()) || (neg && v == -std::numeric_limits<T>::infinity());
  });
}

Status not_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  if (x.dtype() != DataType::kBool) return ctx.error("Not expects a bool tensor, got " + x.description());
  Tensor& y = ctx.allocate_output(0, DataType::kBool, x.shape());
  map_unary(x.data<bool>(), y.data<bool>(), x.numel(), ctx.threads(), 1, [](bool v) { return !v; });
  return Status::Ok();
}

Status bitwise_not_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
  dispatch_integers(x.dtype(), "BitwiseNot", [&](auto tag) {
    using T = decltype(tag);
    map_unary(x.data<T>(), y.data<T>(), x.numel(), ctx.threads(), 1, [](T v) { return static_cast<T>(~v); });
  });
  return Status::Ok();
}

template <typename Op>
KernelFn float_fn(int64_t cost, Op op) {
  return [cost, op](KernelContext& ctx) { return unary_float(ctx, cost, op); };
}

}  // namespace

void register_elementwise_kernels(KernelRegistry& r) {
  using namespace types;
  const std::vector<DataType> signed_numbers = kSignedNumeric;
  r.add("Abs", 1, INT_MAX, kNumeric,
        [](KernelContext& ctx) { return unary_number(ctx, 1, [](auto v) { return abs_value(v); }); });
  r.add("Neg", 1, INT_MAX, signed_numbers,
        [](KernelContext& ctx) { return unary_number(ctx, 1, [](auto v) { return neg_wrap(v); }); });
  r.add("Sign", 9, INT_MAX, kNumeric,
        [](KernelContext& ctx) { return unary_number(ctx, 1, [](auto v) { return sign_value(v); }); });
  r.add("Exp", 1, INT_MAX, kFloat, float_fn(8, [](auto v) { return fast_exp(v); }));
  r.add("Log", 1, INT_MAX, kFloat, float_fn(8, [](auto v) { return fast_log(v); }));
  r.add("Sqrt", 1, INT_MAX, kFloat, float_fn(4, [](auto v) { return std::sqrt(v); }));
  r.add("Reciprocal", 1, INT_MAX, kFloat, float_fn(2, [](auto v) { return decltype(v)(1) / v; }));
  r.add("Floor", 1, INT_MAX, kFloat, float_fn(2, [](auto v) { return floor_value(v); }));
  r.add("Ceil", 1, INT_MAX, kFloat, float_fn(2, [](auto v) { return ceil_value(v); }));
  r.add("Round", 11, INT_MAX, kFloat, float_fn(2, [](auto v) { return round_even(v); }));
  r.add("Sin", 7, INT_MAX, kFloat, float_fn(16, [](auto v) { return std::sin(v); }));
  r.add("Cos", 7, INT_MAX, kFloat, float_fn(16, [](auto v) { return std::cos(v); }));
  r.add("Tan", 7, INT_MAX, kFloat, float_fn(16, [](auto v) { return std::tan(v); }));
  r.add("Asin", 7, INT_MAX, kFloat, float_fn(16, [](auto v) { return std::asin(v); }));
  r.add("Acos", 7, INT_MAX, kFloat, float_fn(16, [](auto v) { return std::acos(v); }));
  r.add("Atan", 7, INT_MAX, kFloat, float_fn(16, [](auto v) { return std::atan(v); }));
  r.add("Sinh", 9, INT_MAX, kFloat, float_fn(16, [](auto v) { return std::sinh(v); }));
  r.add("Cosh", 9, INT_MAX, kFloat, float_fn(16, [](auto v) { return std::cosh(v); }));
  r.add("Asinh", 9, INT_MAX, kFloat, float_fn(16, [](auto v) { return std::asinh(v); }));
  r.add("Acosh", 9, INT_MAX, kFloat, float_fn(16, [](auto v) { return std::acosh(v); }));
  r.add("Atanh", 9, INT_MAX, kFloat, float_fn(16, [](auto v) { return std::atanh(v); }));
  r.add("Erf", 9, INT_MAX, kNumeric, erf_kernel);
  r.add("IsNaN", 9, INT_MAX, kFloat,
        [](KernelContext& ctx) { return unary_float_predicate(ctx, [](auto v) { return v != v; }); });
  r.add("IsInf", 10, INT_MAX, kFloat, isinf_kernel);
  r.add("Not", 1, INT_MAX, {DataType::kBool}, not_kernel);
  r.add("BitwiseNot", 18, INT_MAX, kInteger, bitwise_not_kernel);

  register_elementwise_binary_kernels(r);
  register_elementwise_variadic_kernels(r);
  register_elementwise_cast_kernels(r);
}

}  // namespace deskml::kernels::cpu
