// ArgMax / ArgMin (opsets 1-13+: axis, keepdims, select_last_index). NaN counts
// as the extreme value, as in numpy: the first NaN wins (the last one with
// select_last_index).
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"

namespace deskml::kernels::cpu {

void register_arg_reduce_kernels(KernelRegistry& r);

namespace {

template <typename C>
inline bool is_nan(C v) {
  if constexpr (std::is_floating_point_v<C>) return v != v;
  return false;
}

// Should candidate v replace the current best b?
template <bool kMax, bool kLast, typename C>
inline bool better(C v, C b) {
  if constexpr (std::is_floating_point_v<C>) {
    if (is_nan(v)) return kLast || !is_nan(b);
  }
  if constexpr (kMax) {
    return kLast ? v >= b : v > b;
  } else {
    return kLast ? v <= b : v < b;
  }
}

// The extreme value of n >= 1 contiguous values (NaN if any is NaN), 32 lanes so GCC vectorizes it.
template <bool kMax, typename C, typename T>
C extreme_run(const T* p, int64_t n) {
  auto pick = [](C a, C v) {
    const C m = kMax ? (v > a ? v : a) : (v < a ? v : a);
    if constexpr (std::is_floating_point_v<C>) return v != v ? v : m;
    return m;
  };
  constexpr int kLanes = 32;
  C acc = convert_scalar<C>(p[0]);
  int64_t i = 0;
  if (n >= kLanes) {
    C lane[kLanes];
    for (int j = 0; j < kLanes; ++j) lane[j] = acc;
    for (; i + kLanes <= n; i += kLanes) {
      for (int j = 0; j < kLanes; ++j) lane[j] = pick(lane[j], convert_scalar<C>(p[i + j]));
    }
    for (int j = 0; j < kLanes; ++j) acc = pick(acc, lane[j]);
  }
  for (; i < n; ++i) acc = pick(acc, convert_scalar<C>(p[i]));
  return acc;
}

template <bool kMax, bool kLast, typename T>
void arg_typed(const T* in, int64_t* out, int64_t outer, int64_t len, int64_t inner, int threads) {
  using C = std::conditional_t<std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>, float, T>;
  if (inner == 1) {  // contiguous: find the extreme value (vectorized), then its first / last position
    parallel_for(outer, threads, len * 2, [&](int64_t lo, int64_t hi) {
      for (int64_t o = lo; o < hi; ++o) {
        const T* p = in + o * len;
        const C m = extreme_run<kMax, C>(p, len);
        const bool nan = is_nan(m);
        auto hit = [&](int64_t a) {
          const C v = convert_scalar<C>(p[a]);
          return nan ? is_nan(v) : v == m;
        };
        int64_t bi = 0;
        if constexpr (kLast) {
          for (bi = len - 1; bi > 0 && !hit(bi); --bi) {
          }
        } else {
          while (bi + 1 < len && !hit(bi)) ++bi;
        }
        out[o] = bi;
      }
    });
    return;
  }
  constexpr int64_t kBlock = 256;
  const int64_t blocks = (inner + kBlock - 1) / kBlock;
  parallel_for(outer * blocks, threads, len * std::min(inner, kBlock), [&](int64_t lo, int64_t hi) {
    C best[kBlock];
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t o = t / blocks;
      const int64_t k0 = (t % blocks) * kBlock;
      const int64_t kn = std::min(kBlock, inner - k0);
      const T* p = in + o * len * inner + k0;
      int64_t* q = out + o * inner + k0;
      for (int64_t k = 0; k < kn; ++k) {
        best[k] = convert_scalar<C>(p[k]);
        q[k] = 0;
      }
      for (int64_t a = 1; a < len; ++a) {
        const T* row = p + a * inner;
        for (int64_t k = 0; k < kn; ++k) {
          const C v = convert_scalar<C>(row[k]);
          if (better<kMax, kLast>(v, best[k])) {
            best[k] = v;
            q[k] = a;
          }
        }
      }
    }
  });
}

Status arg_kernel(KernelContext& ctx, bool is_max) {
  const Tensor& x = ctx.required_input(0);
  const auto& node = ctx.node();
  const bool keepdims = node.attr_int("keepdims", 1) != 0;
  const bool last = node.attr_int("select_last_index", 0) != 0;
  const int64_t rank = x.rank();
  if (rank == 0) return ctx.error("input must have rank >= 1");
  auto axis_r = normalize_axis(node.attr_int("axis", 0), rank);
  if (!axis_r.ok()) return ctx.error(axis_r.status().message());
  const auto axis = static_cast<size_t>(*axis_r);
  const Shape& s = x.shape();
  int64_t outer = 1, inner = 1;
  for (size_t i = 0; i < axis; ++i) outer *= s[i];
  for (size_t i = axis + 1; i < s.size(); ++i) inner *= s[i];
  const int64_t len = s[axis];
  Shape out_shape = s;
  if (keepdims) {
    out_shape[axis] = 1;
  } else {
    out_shape.erase(out_shape.begin() + static_cast<std::ptrdiff_t>(axis));
  }
  if (len == 0 && outer * inner > 0) return ctx.error("cannot take the arg-extreme of an empty axis");
  Tensor& y = ctx.allocate_output(0, DataType::kInt64, out_shape);
  if (y.numel() == 0) return Status::Ok();
  int64_t* out = y.data<int64_t>();
  auto run = [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, std::string>) {
      throw_status(unsupported(node.label() + ": unsupported data type " + std::string(dtype_name(x.dtype()))));
    } else {
      const T* in = x.data<T>();
      const int th = ctx.threads();
      if (is_max) {
        last ? arg_typed<true, true>(in, out, outer, len, inner, th)
             : arg_typed<true, false>(in, out, outer, len, inner, th);
      } else {
        last ? arg_typed<false, true>(in, out, outer, len, inner, th)
             : arg_typed<false, false>(in, out, outer, len, inner, th);
      }
    }
  };
  dispatch_all(x.dtype(), node.op_type, run);
  return Status::Ok();
}

}  // namespace

void register_arg_reduce_kernels(KernelRegistry& r) {
  r.add("ArgMax", 1, INT_MAX, types::kNumeric, [](KernelContext& ctx) { return arg_kernel(ctx, true); });
  r.add("ArgMin", 1, INT_MAX, types::kNumeric, [](KernelContext& ctx) { return arg_kernel(ctx, false); });
}

}  // namespace deskml::kernels::cpu
