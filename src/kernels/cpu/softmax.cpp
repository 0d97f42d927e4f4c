// Softmax, LogSoftmax and Hardmax. Before opset 13 the input is coerced to 2-D
// at `axis` (default 1) and the op runs over each row of that matrix; from 13
// it runs along the one axis (default -1). Softmax subtracts the max first.
#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/elementwise_common.hpp"
#include "kernels/cpu/row_reduce.hpp"

namespace deskml::kernels::cpu {

namespace {

using namespace ew;

// The input seen as [outer, len, inner] with the op running along len.
struct AxisLayout {
  int64_t outer = 1;
  int64_t len = 1;
  int64_t inner = 1;
};

Result<AxisLayout> axis_layout(const KernelContext& ctx, const Shape& shape) {
  const bool coerce_2d = ctx.opset() < 13;
  const int64_t axis_attr = ctx.node().attr_int("axis", coerce_2d ? 1 : -1);
  const auto rank = static_cast<int64_t>(shape.size());
  // Coercion to 2-D also accepts axis == rank (every dim in the batch part).
  const int64_t axis = axis_attr < 0 ? axis_attr + rank : axis_attr;
  if (axis < 0 || axis > rank || (axis == rank && !coerce_2d)) {
    return ctx.error("axis " + std::to_string(axis_attr) + " is out of range for rank " + std::to_string(rank));
  }
  AxisLayout l;
  for (int64_t d = 0; d < axis; ++d) l.outer *= shape[static_cast<size_t>(d)];
  if (coerce_2d) {
    for (int64_t d = axis; d < rank; ++d) l.len *= shape[static_cast<size_t>(d)];
  } else {
    l.len = shape[static_cast<size_t>(axis)];
    for (int64_t d = axis + 1; d < rank; ++d) l.inner *= shape[static_cast<size_t>(d)];
  }
  return l;
}

enum class Mode { kSoftmax, kLogSoftmax };

template <Mode M, typename T>
void softmax_rows(const T* x, T* y, const AxisLayout& l, int threads) {
  parallel_for(l.outer, threads, l.len * 8, [&](int64_t lo, int64_t hi) {
    run_best([&] {
      for (int64_t r = lo; r < hi; ++r) {
        const T* xr = x + r * l.len;
        T* yr = y + r * l.len;
        const T m = row_max(xr, l.len);
        // The exponentials go to the output row first (LogSoftmax overwrites them after).
        for (int64_t i = 0; i < l.len; ++i) yr[i] = fast_exp(xr[i] - m);
        const T s = row_sum(yr, l.len);
        if constexpr (M == Mode::kSoftmax) {
          const T inv = T(1) / s;
          for (int64_t i = 0; i < l.len; ++i) yr[i] *= inv;
        } else {
          // (x - m) - log(s), not x - (m + log(s)): m may be large and log(s) small.
          const T log_s = fast_log(s);
          for (int64_t i = 0; i < l.len; ++i) yr[i] = (xr[i] - m) - log_s;
        }
      }
    });
  });
}

// Along a non-innermost axis: vectorize across `inner`, in column blocks.
template <Mode M, typename T>
void softmax_strided(const T* x, T* y, const AxisLayout& l, int threads) {
  const int64_t blocks = (l.inner + kBlock - 1) / kBlock;
  parallel_for(l.outer * blocks, threads, l.len * kBlock * 8, [&](int64_t lo, int64_t hi) {
    run_best([&] {
      T m[kBlock];
      T s[kBlock];
      for (int64_t u = lo; u < hi; ++u) {
        const int64_t o = u / blocks;
        const int64_t j0 = (u % blocks) * kBlock;
        const int64_t w = std::min(kBlock, l.inner - j0);
        const T* xo = x + o * l.len * l.inner + j0;
        T* yo = y + o * l.len * l.inner + j0;
        for (int64_t j = 0; j < w; ++j) m[j] = -std::numeric_limits<T>::infinity();
        for (int64_t k = 0; k < l.len; ++k) {
          const T* xk = xo + k * l.inner;
          for (int64_t j = 0; j < w; ++j) m[j] = xk[j] > m[j] ? xk[j] : m[j];
        }
        for (int64_t j = 0; j < w; ++j) s[j] = 0;
        for (int64_t k = 0; k < l.len; ++k) {
          const T* xk = xo + k * l.inner;
          T* yk = yo + k * l.inner;
          for (int64_t j = 0; j < w; ++j) {
            const T e = fast_exp(xk[j] - m[j]);
            if constexpr (M == Mode::kSoftmax) yk[j] = e;
            s[j] += e;
          }
        }
        if constexpr (M == Mode::kSoftmax) {
          for (int64_t j = 0; j < w; ++j) s[j] = T(1) / s[j];
          for (int64_t k = 0; k < l.len; ++k) {
            T* yk = yo + k * l.inner;
            for (int64_t j = 0; j < w; ++j) yk[j] *= s[j];
          }
        } else {
          for (int64_t j = 0; j < w; ++j) s[j] = fast_log(s[j]);
          for (int64_t k = 0; k < l.len; ++k) {
            const T* xk = xo + k * l.inner;
            T* yk = yo + k * l.inner;
            for (int64_t j = 0; j < w; ++j) yk[j] = (xk[j] - m[j]) - s[j];
          }
        }
      }
    });
  });
}

template <Mode M>
Status softmax_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  DESKML_ASSIGN_OR_RETURN(AxisLayout l, axis_layout(ctx, x.shape()));
  const DataType dtype = x.dtype();
  // Half types compute in float and round once at the end.
  const bool widen = dtype == DataType::kFloat16 || dtype == DataType::kBFloat16;
  const Tensor xin = widen ? x.cast(DataType::kFloat32) : x;
  Tensor y(xin.dtype(), x.shape());
  if (x.numel() > 0) {
    dispatch_float(xin.dtype(), ctx.node().op_type, [&](auto tag) {
      using T = decltype(tag);
      if (l.inner == 1) {
        softmax_rows<M>(xin.data<T>(), y.data<T>(), l, ctx.threads());
      } else {
        softmax_strided<M>(xin.data<T>(), y.data<T>(), l, ctx.threads());
      }
    });
  }
  ctx.set_output(0, widen ? y.cast(dtype) : y);
  return Status::Ok();
}

Status hardmax_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  DESKML_ASSIGN_OR_RETURN(AxisLayout l, axis_layout(ctx, x.shape()));
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
  if (x.numel() == 0) return Status::Ok();
  dispatch_floats(x.dtype(), "Hardmax", [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    const T* px = x.data<T>();
    T* py = y.data<T>();
    const T zero = store_as<T>(C(0));
    const T one = store_as<T>(C(1));
    parallel_for(l.outer * l.inner, ctx.threads(), l.len, [&](int64_t lo, int64_t hi) {
      for (int64_t u = lo; u < hi; ++u) {
        const int64_t base = (u / l.inner) * l.len * l.inner + u % l.inner;
        int64_t best = 0;
        C best_v = load_as<C>(px[base]);
        for (int64_t k = 0; k < l.len; ++k) {
          const C v = load_as<C>(px[base + k * l.inner]);
          if (v > best_v || (v != v && best_v == best_v)) {  // first max; NaN wins, as numpy.argmax
            best_v = v;
            best = k;
          }
          py[base + k * l.inner] = zero;
        }
        if (l.len > 0) py[base + best * l.inner] = one;
      }
    });
  });
  return Status::Ok();
}

}  // namespace

void register_softmax_kernels(KernelRegistry& r) {
  using namespace types;
  r.add("Softmax", 1, 12, kFloat, softmax_kernel<Mode::kSoftmax>);
  r.add("Softmax", 13, INT_MAX, kFloat, softmax_kernel<Mode::kSoftmax>);
  r.add("LogSoftmax", 1, 12, kFloat, softmax_kernel<Mode::kLogSoftmax>);
  r.add("LogSoftmax", 13, INT_MAX, kFloat, softmax_kernel<Mode::kLogSoftmax>);
  r.add("Hardmax", 1, 12, kFloat, hardmax_kernel);
  r.add("Hardmax", 13, INT_MAX, kFloat, hardmax_kernel);
}

}  // namespace deskml::kernels::cpu
