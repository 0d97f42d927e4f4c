// Index family, part 2: scatters (ScatterElements, Scatter, ScatterND),
// ReverseSequence and CumSum.
#include <climits>

#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/index_util.hpp"

namespace deskml::kernels::cpu {
namespace {

// --- Scatter family ---------------------------------------------------------

enum class Reduction { kNone, kAdd, kMul, kMax, kMin };

Reduction read_reduction(const KernelContext& ctx) {
  const std::string r = ctx.node().attr_string("reduction", "none");
  if (r == "none") return Reduction::kNone;
  if (r == "add") return Reduction::kAdd;
  if (r == "mul") return Reduction::kMul;
  if (r == "max") return Reduction::kMax;
  if (r == "min") return Reduction::kMin;
  throw_status(ctx.error("unknown reduction '" + r + "'"));
}

template <typename C>
C reduce_values(C a, C b, Reduction red) {
  switch (red) {
    case Reduction::kAdd: return a + b;
    case Reduction::kMul: return a * b;
    case Reduction::kMax: return std::max(a, b);
    case Reduction::kMin: return std::min(a, b);
    case Reduction::kNone: break;
  }
  return b;
}

// dst[offsets[i] + j] (op)= upd[i * slice + j] for every i in order, j < slice.
void scatter_apply(const KernelContext& ctx, Tensor& out, const Tensor& updates, const std::vector<int64_t>& offsets,
                   int64_t slice, Reduction red) {
  if (red == Reduction::kNone) {
    dispatch_storage(out.dtype(), [&](auto tag) {
      using S = decltype(tag);
      S* dst = storage_ptr<S>(out);
      const S* upd = storage_ptr<S>(updates);
      for (size_t i = 0; i < offsets.size(); ++i) {
        std::copy_n(upd + static_cast<int64_t>(i) * slice, slice, dst + offsets[i]);
      }
    });
    return;
  }
  dispatch_all(out.dtype(), "scatter reduction", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, std::string>) {
      throw_status(ctx.error("reductions are not supported for strings"));
    } else {
      // bool: add/max = or, mul/min = and; half types compute in float.
      using C = std::conditional_t<std::is_same_v<T, bool>, int,
                                   std::conditional_t<std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>,
                                                      float, T>>;
      T* dst = out.data<T>();
      const T* upd = updates.data<T>();
      for (size_t i = 0; i < offsets.size(); ++i) {
        T* d = dst + offsets[i];
        const T* u = upd + static_cast<int64_t>(i) * slice;
        for (int64_t j = 0; j < slice; ++j) {
          C v = reduce_values(convert_scalar<C>(d[j]), convert_scalar<C>(u[j]), red);
          if constexpr (std::is_same_v<T, bool>) d[j] = v != 0;
          else d[j] = convert_scalar<T>(v);
        }
      }
    }
  });
}

Status scatter_elements_kernel(KernelContext& ctx) {
  const Tensor& data = ctx.required_input(0);
  const Tensor& ind = ctx.required_input(1);
  const Tensor& updates = ctx.required_input(2);
  if (data.rank() == 0) return ctx.error("data must have rank >= 1");
  if (updates.dtype() != data.dtype()) return ctx.error("updates must have the type of data");
  if (updates.shape() != ind.shape()) {
    return ctx.error("updates " + shape_to_string(updates.shape()) + " must have the shape of indices " +
                     shape_to_string(ind.shape()));
  }
  const size_t axis = static_cast<size_t>(checked_axis(ctx, ctx.node().attr_int("axis", 0), data.rank()));
  const Reduction red = read_reduction(ctx);
  auto idx = index_values(ctx, ind, "indices");
  normalize_indices(ctx, idx, data.shape()[axis], "index");
  const auto offsets = element_offsets(ctx, data.shape(), ind.shape(), idx, axis);
  Tensor& out = ctx.allocate_output(0, data.dtype(), data.shape());
  copy_all(data, out, ctx.threads());
  scatter_apply(ctx, out, updates, offsets, 1, red);
  return Status::Ok();
}

Status scatter_nd_kernel(KernelContext& ctx) {
  const Tensor& data = ctx.required_input(0);
  const Tensor& ind = ctx.required_input(1);
  const Tensor& updates = ctx.required_input(2);
  if (updates.dtype() != data.dtype()) return ctx.error("updates must have the type of data");
  const Reduction red = read_reduction(ctx);
  const NdOffsets nd = nd_offsets(ctx, data.shape(), ind, 0);
  const int64_t m = ind.shape().back();
  Shape expected(ind.shape().begin(), ind.shape().end() - 1);
  expected.insert(expected.end(), data.shape().begin() + m, data.shape().end());
  if (updates.shape() != expected) {
    return ctx.error("updates " + shape_to_string(updates.shape()) + " must have shape " + shape_to_string(expected));
  }
  Tensor& out = ctx.allocate_output(0, data.dtype(), data.shape());
  copy_all(data, out, ctx.threads());
  scatter_apply(ctx, out, updates, nd.offsets, nd.slice, red);
  return Status::Ok();
}

// --- ReverseSequence --------------------------------------------------------

Status reverse_sequence_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  const Tensor& lens_t = ctx.required_input(1);
  if (x.rank() < 2) return ctx.error("input must have rank >= 2");
  const int64_t batch_axis = ctx.node().attr_int("batch_axis", 1);
  const int64_t time_axis = ctx.node().attr_int("time_axis", 0);
  if ((batch_axis != 0 && batch_axis != 1) || (time_axis != 0 && time_axis != 1) || batch_axis == time_axis) {
    return ctx.error("batch_axis and time_axis must be 0 and 1 in some order");
  }
  const int64_t batch = x.shape()[static_cast<size_t>(batch_axis)];
  const int64_t time = x.shape()[static_cast<size_t>(time_axis)];
  auto lens = index_values(ctx, lens_t, "sequence_lens");
  if (lens_t.rank() != 1 || static_cast<int64_t>(lens.size()) != batch) {
    return ctx.error("sequence_lens must be 1-D with one length per batch entry (" + std::to_string(batch) + ")");
  }
  for (int64_t l : lens) {
    if (l < 0 || l > time) {
      return ctx.error("sequence length " + std::to_string(l) + " is outside 0.." + std::to_string(time));
    }
  }
  const int64_t inner = dims_product(x.shape(), 2, x.shape().size());
  const int64_t bstride = batch_axis == 0 ? time * inner : inner;
  const int64_t tstride = time_axis == 0 ? batch * inner : inner;
  Tensor& out = ctx.allocate_output(0, x.dtype(), x.shape());
  if (out.numel() == 0) return Status::Ok();
  dispatch_storage(x.dtype(), [&](auto tag) {
    using S = decltype(tag);
    const S* src = storage_ptr<S>(x);
    S* dst = storage_ptr<S>(out);
    parallel_for(batch * time, ctx.threads(), inner, [&](int64_t lo, int64_t hi) {
      for (int64_t u = lo; u < hi; ++u) {
        const int64_t b = u / time, t = u % time;
        const int64_t len = lens[static_cast<size_t>(b)];
        const int64_t ts = t < len ? len - 1 - t : t;
        std::copy_n(src + b * bstride + ts * tstride, inner, dst + b * bstride + t * tstride);
      }
    });
  });
  return Status::Ok();
}

// --- CumSum -----------------------------------------------------------------

template <typename T>
T add_wrapping(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
  } else {
    return a + b;
  }
}

Status cumsum_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  const Tensor& axis_t = ctx.required_input(1);
  if (axis_t.dtype() != DataType::kInt32 && axis_t.dtype() != DataType::kInt64) {
    return ctx.error("axis must be int32 or int64");
  }
  if (x.rank() == 0) return ctx.error("input must have rank >= 1");
  const size_t axis = static_cast<size_t>(checked_axis(ctx, scalar_int(ctx, axis_t, "axis"), x.rank()));
  const bool exclusive = ctx.node().attr_int("exclusive", 0) != 0;
  const bool reverse = ctx.node().attr_int("reverse", 0) != 0;
  Tensor& out = ctx.allocate_output(0, x.dtype(), x.shape());
  if (out.numel() == 0) return Status::Ok();
  const int64_t n = x.shape()[axis];
  const int64_t outer = dims_product(x.shape(), 0, axis);
  const int64_t inner = dims_product(x.shape(), axis + 1, x.shape().size());
  constexpr int64_t kChunk = 1024;
  const int64_t chunks = (inner + kChunk - 1) / kChunk;
  return dispatch_all(x.dtype(), "CumSum", [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, bool>) {
      return ctx.error("CumSum needs a numeric input");
    } else {
      using A = std::conditional_t<std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>, float, T>;
      const T* src = x.data<T>();
      T* dst = out.data<T>();
      parallel_for(outer * chunks, ctx.threads(), n * kChunk, [&](int64_t lo, int64_t hi) {
        std::vector<A> acc(static_cast<size_t>(std::min(kChunk, inner)));
        for (int64_t u = lo; u < hi; ++u) {
          const int64_t o = u / chunks;
          const int64_t cb = (u % chunks) * kChunk;
          const int64_t cn = std::min(kChunk, inner - cb);
          std::fill_n(acc.begin(), cn, A{});
          for (int64_t s = 0; s < n; ++s) {
            const int64_t k = reverse ? n - 1 - s : s;
            const T* in = src + (o * n + k) * inner + cb;
            T* res = dst + (o * n + k) * inner + cb;
            for (int64_t j = 0; j < cn; ++j) {
              const A prev = acc[static_cast<size_t>(j)];
              const A next = add_wrapping<A>(prev, convert_scalar<A>(in[j]));
              acc[static_cast<size_t>(j)] = next;
              res[j] = convert_scalar<T>(exclusive ? prev : next);
            }
          }
        }
      });
      return Status::Ok();
    }
  });
}

}  // namespace

void register_index_scatter_kernels(KernelRegistry& r) {
  using types::kAll;
  r.add("ScatterElements", 11, INT_MAX, kAll, scatter_elements_kernel);
  r.add("Scatter", 9, INT_MAX, kAll, scatter_elements_kernel);
  r.add("ScatterND", 11, INT_MAX, kAll, scatter_nd_kernel);
  r.add("ReverseSequence", 10, INT_MAX, kAll, reverse_sequence_kernel);
  r.add("CumSum", 11, INT_MAX, types::kNumeric, cumsum_kernel);
}

}  // namespace deskml::kernels::cpu
