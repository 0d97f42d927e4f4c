// Elementwise math, part 2: binary ops with numpy broadcasting: arithmetic,
// Pow, Mod, bit shifts and bitwise ops, logic and comparisons.
#include <cmath>
#include <type_traits>

#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/elementwise_common.hpp"
#include "kernels/cpu/int_arith.hpp"

namespace deskml::kernels::cpu {

namespace {

using namespace ew;

enum class TypeSet { kNumbers, kIntegers, kUnsigned, kBool, kAll };

template <TypeSet S, typename Fn>
void dispatch_set(DataType t, std::string_view what, Fn&& fn) {
  if constexpr (S == TypeSet::kNumbers) {
    dispatch_numbers(t, what, fn);
  } else if constexpr (S == TypeSet::kIntegers) {
    dispatch_integers(t, what, fn);
  } else if constexpr (S == TypeSet::kUnsigned) {
    switch (t) {
      case DataType::kUInt8:
        return fn(uint8_t{});
      case DataType::kUInt16:
        return fn(uint16_t{});
      case DataType::kUInt32:
        return fn(uint32_t{});
      case DataType::kUInt64:
        return fn(uint64_t{});
      default:
        throw_status(unsupported(std::string(what) + ": expects unsigned integers, got " + std::string(dtype_name(t))));
    }
  } else if constexpr (S == TypeSet::kBool) {
    if (t != DataType::kBool) {
      throw_status(unsupported(std::string(what) + ": expects bool, got " + std::string(dtype_name(t))));
    }
    fn(bool{});
  } else {
    dispatch_all(t, what, fn);
  }
}

// Integer division truncates; division by zero gives 0 (as numpy does) instead of a trap.
template <typename T>
inline T div_safe(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    if (b == 0) return T{0};
    if constexpr (std::is_signed_v<T>) {
      if (b == -1) return static_cast<T>(wrap_t<T>{0} - static_cast<wrap_t<T>>(a));
    }
    return static_cast<T>(a / b);
  } else {
    return a / b;
  }
}

template <typename T>
inline T mod_value(T a, T b, bool fmod) {
  if constexpr (std::is_integral_v<T>) {
    if (b == 0) return T{0};
    if constexpr (std::is_signed_v<T>) {
      if (b == -1) return T{0};
      T r = static_cast<T>(a % b);
      if (!fmod && r != 0 && ((r < 0) != (b < 0))) r = static_cast<T>(r + b);
      return r;
    } else {
      return static_cast<T>(a % b);
    }
  } else {
    T r = std::fmod(a, b);
    if (!fmod && r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
  }
}

// Integer power by squaring, wrapping like numpy; negative exponents truncate 1/a^n.
template <typename T, typename E>
inline T int_pow(T a, E e) {
  if constexpr (std::is_signed_v<E>) {
    if (e < 0) {
      if (a == 1) return T{1};
      if constexpr (std::is_signed_v<T>) {
        if (a == -1) return (e % 2 == 0) ? T{1} : static_cast<T>(-1);
      }
      return T{0};
    }
  }
  wrap_t<T> result = 1;
  wrap_t<T> base = static_cast<wrap_t<T>>(a);
  auto n = static_cast<std::make_unsigned_t<E>>(e);
  while (n != 0) {
    if (n & 1u) result = static_cast<wrap_t<T>>(result * base);
    base = static_cast<wrap_t<T>>(base * base);
    n >>= 1;
  }
  return static_cast<T>(result);
}

// Opsets before 7 broadcast only B onto A, and only when broadcast=1; `axis`
// says where B's dims sit in A's. Returns B reshaped for numpy broadcasting.
Result<Tensor> legacy_rhs(const KernelContext& ctx, const Tensor& a, const Tensor& b) {
  const auto& node = ctx.node();
  if (node.attr_int("broadcast", 0) == 0) {
    if (a.shape() != b.shape()) {
      return ctx.error("inputs " + a.description() + " and " + b.description() +
                       " differ in shape and broadcast is not set");
    }
    return b;
  }
  if (b.rank() > a.rank()) return ctx.error("B " + b.description() + " has more dims than A " + a.description());
  if (!node.has_attr("axis")) return b;  // suffix matching: numpy broadcasting agrees
  int64_t axis = node.attr_int("axis", 0);
  if (axis < 0) axis += a.rank();
  if (axis < 0 || axis + b.rank() > a.rank()) {
    return ctx.error("axis " + std::to_string(node.attr_int("axis", 0)) + " does not fit B " + b.description() +
                     " into A " + a.description());
  }
  Shape shape = b.shape();
  shape.resize(static_cast<size_t>(a.rank() - axis), 1);
  return b.reshaped(shape);
}

Result<Shape> output_shape(const KernelContext& ctx, const Tensor& a, const Tensor& b) {
  auto shape = broadcast_shapes(a.shape(), b.shape());
  if (!shape.ok()) return ctx.error(shape.status().message());
  return shape;
}

// Both inputs of one dtype; the output is that dtype or bool.
template <TypeSet S, bool kBoolOut, typename Op>
Status binary_same(KernelContext& ctx, int64_t cost, const Op& op) {
  const Tensor* a = &ctx.required_input(0);
  const Tensor* b = &ctx.required_input(1);
  if (a->dtype() != b->dtype()) {
    return ctx.error("inputs have different types: " + a->description() + " and " + b->description());
  }
  Tensor legacy_b;
  if (ctx.opset() < 7) {
    DESKML_ASSIGN_OR_RETURN(legacy_b, legacy_rhs(ctx, *a, *b));
    b = &legacy_b;
  }
  DESKML_ASSIGN_OR_RETURN(Shape shape, output_shape(ctx, *a, *b));
  // In place over an input of the output's shape whose last reader this node
  // is: every element is read just before its own slot is written, and a
  // thread writes the bytes it has just read. (A taken input's reference
  // dangles, so `a` or `b` then points at the output.)
  Tensor out;
  if (!kBoolOut && ctx.opset() >= 7) {
    if (a->shape() == shape && (out = ctx.take_input(0)).defined()) {
      a = &out;
    } else if (b->shape() == shape && (out = ctx.take_input(1)).defined()) {
      b = &out;
    }
  }
  if (!out.defined()) out = ctx.allocate_output(0, kBoolOut ? DataType::kBool : a->dtype(), std::move(shape));
  dispatch_set<S>(a->dtype(), ctx.node().op_type, [&](auto tag) {
    using T = decltype(tag);
    using Out = std::conditional_t<kBoolOut, bool, T>;
    binary_apply<T, T, Out>(*a, *b, out, ctx.threads(), cost, op);
  });
  ctx.set_output(0, std::move(out));
  return Status::Ok();
}

template <TypeSet S, bool kBoolOut, typename Op>
KernelFn binary_fn(int64_t cost, Op op) {
  return [cost, op](KernelContext& ctx) { return binary_same<S, kBoolOut>(ctx, cost, op); };
}

// Pow: base and exponent may differ in type (opset 12+); the result has the base's type.
Status pow_kernel(KernelContext& ctx) {
  const Tensor& a = ctx.required_input(0);
  Tensor b = ctx.required_input(1);
  if (ctx.opset() < 12 && a.dtype() != b.dtype()) {
    return ctx.error("before opset 12 base and exponent must have one type: " + a.description() + " and " +
                     b.description());
  }
  if (ctx.opset() < 7) {
    DESKML_ASSIGN_OR_RETURN(b, legacy_rhs(ctx, a, b));
  }
  DESKML_ASSIGN_OR_RETURN(Shape shape, output_shape(ctx, a, b));
  Tensor& out = ctx.allocate_output(0, a.dtype(), std::move(shape));
  const int threads = ctx.threads();

  // x^2, x^1 and x^0.5 with a scalar float exponent are common (decomposed norms) and cheap.
  if (a.dtype() == DataType::kFloat32 && b.numel() == 1 && a.shape() == out.shape() && dtype_is_float(b.dtype())) {
    const double e = b.float_at(0);
    const float* x = a.data<float>();
    float* y = out.data<float>();
    if (e == 2.0) {
      map_unary(x, y, a.numel(), threads, 1, [](float v) { return v * v; });
      return Status::Ok();
    }
    if (e == 1.0) {
      map_unary(x, y, a.numel(), threads, 1, [](float v) { return v; });
      return Status::Ok();
    }
    if (e == 0.5) {  // pow(-0, 0.5) = +0 and pow(-inf, 0.5) = +inf, unlike sqrt
      map_unary(x, y, a.numel(), threads, 4, [](float v) {
        const float s = std::sqrt(v) + 0.0f;
        return select(v == -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity(), s);
      });
      return Status::Ok();
    }
  }

  dispatch_numbers(a.dtype(), "Pow", [&](auto base_tag) {
    using T = decltype(base_tag);
    dispatch_numbers(b.dtype(), "Pow", [&](auto exp_tag) {
      using E = decltype(exp_tag);
      using CT = compute_t<T>;
      using CE = compute_t<E>;
      if constexpr (std::is_integral_v<T> && std::is_integral_v<E>) {
        binary_apply<T, E, T>(a, b, out, threads, 8, [](T x, E e) { return int_pow(x, e); });
      } else if constexpr (std::is_integral_v<T>) {
        binary_apply<T, E, T>(a, b, out, threads, 16, [](T x, CE e) {
          return saturate_cast<T>(std::pow(static_cast<double>(x), static_cast<double>(e)));
        });
      } else {
        // Float base: compute in the base's precision (double when either side is double).
        using C = std::conditional_t<std::is_same_v<CT, double> || std::is_same_v<CE, double>, double, float>;
        binary_apply<T, E, T>(a, b, out, threads, 16, [](CT x, CE e) {
          return static_cast<CT>(std::pow(static_cast<C>(x), static_cast<C>(e)));
        });
      }
    });
  });
  return Status::Ok();
}

Status mod_kernel(KernelContext& ctx) {
  const bool fmod = ctx.node().attr_int("fmod", 0) != 0;
  return binary_same<TypeSet::kNumbers, false>(ctx, 4, [fmod](auto a, auto b) { return mod_value(a, b, fmod); });
}

Status bitshift_kernel(KernelContext& ctx) {
  const std::string direction = ctx.node().attr_string("direction");
  if (direction != "LEFT" && direction != "RIGHT") {
    return ctx.error("direction must be LEFT or RIGHT, got '" + direction + "'");
  }
  // Shifting by the type's width or more gives 0 (it is undefined in C++).
  if (direction == "LEFT") {
    return binary_same<TypeSet::kUnsigned, false>(ctx, 1, [](auto a, auto b) {
      using T = decltype(a);
      return b >= sizeof(T) * 8 ? T{0} : static_cast<T>(static_cast<wrap_t<T>>(a) << b);
    });
  }
  return binary_same<TypeSet::kUnsigned, false>(ctx, 1, [](auto a, auto b) {
    using T = decltype(a);
    return b >= sizeof(T) * 8 ? T{0} : static_cast<T>(a >> b);
  });
}

}  // namespace

void register_elementwise_binary_kernels(KernelRegistry& r) {
  using namespace types;
  using TS = TypeSet;
  r.add("Add", 1, INT_MAX, kNumeric, binary_fn<TS::kNumbers, false>(1, [](auto a, auto b) { return add_wrap(a, b); }));
  r.add("Sub", 1, INT_MAX, kNumeric, binary_fn<TS::kNumbers, false>(1, [](auto a, auto b) { return sub_wrap(a, b); }));
  r.add("Mul", 1, INT_MAX, kNumeric, binary_fn<TS::kNumbers, false>(1, [](auto a, auto b) { return mul_wrap(a, b); }));
  r.add("Div", 1, INT_MAX, kNumeric, binary_fn<TS::kNumbers, false>(2, [](auto a, auto b) { return div_safe(a, b); }));
  r.add("Pow", 1, INT_MAX, kNumeric, pow_kernel);
  r.add("Mod", 10, INT_MAX, kNumeric, mod_kernel);
  r.add("BitShift", 11, INT_MAX, {DataType::kUInt8, DataType::kUInt16, DataType::kUInt32, DataType::kUInt64},
        bitshift_kernel);
  r.add("BitwiseAnd", 18, INT_MAX, kInteger,
        binary_fn<TS::kIntegers, false>(1, [](auto a, auto b) { return static_cast<decltype(a)>(a & b); }));
  r.add("BitwiseOr", 18, INT_MAX, kInteger,
        binary_fn<TS::kIntegers, false>(1, [](auto a, auto b) { return static_cast<decltype(a)>(a | b); }));
  r.add("BitwiseXor", 18, INT_MAX, kInteger,
        binary_fn<TS::kIntegers, false>(1, [](auto a, auto b) { return static_cast<decltype(a)>(a ^ b); }));

  const std::vector<DataType> bools = {DataType::kBool};
  r.add("And", 1, INT_MAX, bools, binary_fn<TS::kBool, true>(1, [](bool a, bool b) { return a && b; }));
  r.add("Or", 1, INT_MAX, bools, binary_fn<TS::kBool, true>(1, [](bool a, bool b) { return a || b; }));
  r.add("Xor", 1, INT_MAX, bools, binary_fn<TS::kBool, true>(1, [](bool a, bool b) { return a != b; }));

  // Equal takes any type (bool, strings from opset 19); the ordering comparisons take numbers.
  r.add("Equal", 1, INT_MAX, kAll, binary_fn<TS::kAll, true>(1, [](const auto& a, const auto& b) { return a == b; }));
  r.add("Less", 1, INT_MAX, kNumeric, binary_fn<TS::kNumbers, true>(1, [](auto a, auto b) { return a < b; }));
  r.add("Greater", 1, INT_MAX, kNumeric, binary_fn<TS::kNumbers, true>(1, [](auto a, auto b) { return a > b; }));
  r.add("LessOrEqual", 12, INT_MAX, kNumeric, binary_fn<TS::kNumbers, true>(1, [](auto a, auto b) { return a <= b; }));
  r.add("GreaterOrEqual", 12, INT_MAX, kNumeric,
        binary_fn<TS::kNumbers, true>(1, [](auto a, auto b) { return a >= b; }));
}

}  // namespace deskml::kernels::cpu
