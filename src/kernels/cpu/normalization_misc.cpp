// LRN (opsets 1, 13), MeanVarianceNormalization (9, 13) and LpNormalization (1+).
#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/normalization_common.hpp"

namespace deskml::kernels::cpu {

void register_normalization_misc_kernels(KernelRegistry& r);

namespace {

using norm::CompOf;

template <typename Fn>
Status dispatch_floats(KernelContext& ctx, DataType dt, Fn&& fn) {
  switch (dt) {
    case DataType::kFloat32:
      fn(float{});
      return Status::Ok();
    case DataType::kFloat64:
      fn(double{});
      return Status::Ok();
    case DataType::kFloat16:
      fn(Float16{});
      return Status::Ok();
    case DataType::kBFloat16:
      fn(BFloat16{});
      return Status::Ok();
    default:
      return ctx.error("unsupported data type " + std::string(dtype_name(dt)));
  }
}

// y = x / (bias + alpha / size * sum of x^2 over the channel window) ^ beta,
// window [c - floor((size - 1) / 2), c + ceil((size - 1) / 2)].
Status lrn_kernel(KernelContext& ctx) {
  const auto& node = ctx.node();
  const Tensor& x = ctx.required_input(0);
  if (x.rank() < 2) return ctx.error("X must have shape (N, C, ...), got " + shape_to_string(x.shape()));
  if (!node.has_attr("size")) return ctx.error("attribute size is required");
  const int64_t size = node.attr_int("size", 1);
  if (size <= 0) return ctx.error("size must be positive, got " + std::to_string(size));
  const double alpha = node.attr_float("alpha", 1e-4f);
  const double beta = node.attr_float("beta", 0.75f);
  const double bias = node.attr_float("bias", 1.0f);
  const int64_t n = x.shape()[0], channels = x.shape()[1];
  const int64_t plane = n == 0 || channels == 0 ? 0 : x.numel() / (n * channels);
  const int64_t before = (size - 1) / 2, after = size - 1 - before;
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
  if (x.numel() == 0) return Status::Ok();
  return dispatch_floats(ctx, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = CompOf<T>;
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    const C scale = static_cast<C>(alpha / static_cast<double>(size));
    const C cb = static_cast<C>(bias), cbeta = static_cast<C>(beta);
    parallel_for(n * channels, ctx.threads(), plane * (size + 2), [&](int64_t lo, int64_t hi) {
      std::vector<C> acc(static_cast<size_t>(plane));
      for (int64_t t = lo; t < hi; ++t) {
        const int64_t b = t / channels, c = t % channels;
        const int64_t c0 = std::max<int64_t>(0, c - before), c1 = std::min(channels - 1, c + after);
        std::fill(acc.begin(), acc.end(), C(0));
        for (int64_t k = c0; k <= c1; ++k) {
          const T* xk = xp + (b * channels + k) * plane;
          for (int64_t i = 0; i < plane; ++i) {
            const C v = convert_scalar<C>(xk[i]);
            acc[static_cast<size_t>(i)] += v * v;
          }
        }
        const T* xc = xp + t * plane;
        T* yc = yp + t * plane;
        for (int64_t i = 0; i < plane; ++i) {
          const C d = cb + scale * acc[static_cast<size_t>(i)];
          yc[i] = convert_scalar<T>(convert_scalar<C>(xc[i]) / std::pow(d, cbeta));
        }
      }
    });
  });
}

// All offsets of the index grid of `dims` (with `strides`), row-major.
std::vector<int64_t> grid(const std::vector<int64_t>& dims, const std::vector<int64_t>& strides) {
  int64_t total = 1;
  for (int64_t d : dims) total *= d;
  std::vector<int64_t> out(static_cast<size_t>(total));
  std::vector<int64_t> idx(dims.size(), 0);
  int64_t off = 0;
  for (int64_t i = 0; i < total; ++i) {
    out[static_cast<size_t>(i)] = off;
    for (size_t d = dims.size(); d-- > 0;) {
      off += strides[d];
      if (++idx[d] < dims[d]) break;
      off -= strides[d] * dims[d];
      idx[d] = 0;
    }
  }
  return out;
}

// y = (x - mean) / (std + 1e-9), statistics over `axes` (default [0, 2, 3]).
Status mvn_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  const int64_t rank = x.rank();
  const auto axes = ctx.node().attr_ints("axes", {0, 2, 3});
  std::vector<char> mask(static_cast<size_t>(rank), 0);
  for (int64_t a : axes) {
    auto ax = normalize_axis(a, rank);
    if (!ax.ok() || rank == 0)
      return ctx.error("axis " + std::to_string(a) + " is out of range for rank " + std::to_string(rank));
    if (mask[static_cast<size_t>(*ax)]) return ctx.error("axis " + std::to_string(a) + " is listed twice");
    mask[static_cast<size_t>(*ax)] = 1;
  }
  const auto strides = shape_strides(x.shape());
  std::vector<int64_t> kd, ks, rd, rs;
  for (size_t i = 0; i < mask.size(); ++i) {
    (mask[i] ? rd : kd).push_back(x.shape()[i]);
    (mask[i] ? rs : ks).push_back(strides[i]);
  }
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
  if (x.numel() == 0) return Status::Ok();
  const auto base = grid(kd, ks);
  const auto roff = grid(rd, rs);
  const auto count = static_cast<double>(roff.size());
  return dispatch_floats(ctx, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    parallel_for(static_cast<int64_t>(base.size()), ctx.threads(), static_cast<int64_t>(roff.size()) * 3,
                 [&](int64_t lo, int64_t hi) {
                   for (int64_t g = lo; g < hi; ++g) {
                     const T* p = xp + base[static_cast<size_t>(g)];
                     T* q = yp + base[static_cast<size_t>(g)];
                     double s = 0.0;
                     for (int64_t r : roff) s += convert_scalar<double>(p[r]);
                     const double mean = s / count;
                     double v = 0.0;
                     for (int64_t r : roff) {
                       const double d = convert_scalar<double>(p[r]) - mean;
                       v += d * d;
                     }
                     const double inv = 1.0 / (std::sqrt(v / count) + 1e-9);
                     for (int64_t r : roff) q[r] = convert_scalar<T>((convert_scalar<double>(p[r]) - mean) * inv);
                   }
                 });
  });
}

// y = x / ||x||_p along `axis` (p = 1 or 2); a zero vector stays zero.
Status lpnorm_kernel(KernelContext& ctx) {
  const auto& node = ctx.node();
  const Tensor& x = ctx.required_input(0);
  const int64_t p = node.attr_int("p", 2);
  if (p != 1 && p != 2) return ctx.error("p must be 1 or 2, got " + std::to_string(p));
  const int64_t rank = x.rank();
  if (rank == 0) return ctx.error("input must have rank >= 1");
  auto axis_r = normalize_axis(node.attr_int("axis", -1), rank);
  if (!axis_r.ok()) return ctx.error(axis_r.status().message());
  const auto axis = static_cast<size_t>(*axis_r);
  int64_t outer = 1, inner = 1;
  for (size_t i = 0; i < axis; ++i) outer *= x.shape()[i];
  for (size_t i = axis + 1; i < x.shape().size(); ++i) inner *= x.shape()[i];
  const int64_t len = x.shape()[axis];
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
  if (x.numel() == 0) return Status::Ok();
  return dispatch_floats(ctx, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = CompOf<T>;
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    parallel_for(outer * inner, ctx.threads(), len * 2, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) {
        const int64_t o = t / inner, k = t % inner;
        const T* xi = xp + o * len * inner + k;
        T* yi = yp + o * len * inner + k;
        double s = 0.0;
        for (int64_t i = 0; i < len; ++i) {
          const double v = convert_scalar<double>(xi[i * inner]);
          s += p == 1 ? std::abs(v) : v * v;
        }
        const double nrm = p == 1 ? s : std::sqrt(s);
        const C inv = nrm == 0.0 ? C(0) : static_cast<C>(1.0 / nrm);
        for (int64_t i = 0; i < len; ++i) yi[i * inner] = convert_scalar<T>(convert_scalar<C>(xi[i * inner]) * inv);
      }
    });
  });
}

}  // namespace

void register_normalization_misc_kernels(KernelRegistry& r) {
  r.add("LRN", 1, INT_MAX, types::kFloat, lrn_kernel);
  r.add("MeanVarianceNormalization", 9, INT_MAX, types::kFloat, mvn_kernel);
  r.add("LpNormalization", 1, INT_MAX, types::kFloat, lpnorm_kernel);
}

}  // namespace deskml::kernels::cpu
