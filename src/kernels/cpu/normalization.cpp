// Normalization: BatchNormalization, InstanceNormalization, GroupNormalization,
// LayerNormalization. LRN, MeanVarianceNormalization and LpNormalization live in
// normalization_misc.cpp.
//
// All of them reduce to "per contiguous block: statistics, then y = x * a + b"
// (or x * a[i] + b[i] for LayerNormalization). Float16/bfloat16 compute in
// float, statistics accumulate in double; float32 LayerNorm on AVX-512 sums in
// float about each row's first value (layernorm_rows_avx512).
#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/avx512_math.hpp"
#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/elementwise_isa.hpp"
#include "kernels/cpu/normalization_common.hpp"

namespace deskml::kernels::cpu {

void register_normalization_misc_kernels(KernelRegistry& r);  // normalization_misc.cpp

namespace {

using norm::CompOf;

// Runs fn.template operator()<T>() for the float types.
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

// y = x * a[c] + b[c] over planes of `plane` elements, channel c = plane index % channels.
template <typename T>
void apply_channel_affine(const T* x, T* y, int64_t n, int64_t channels, int64_t plane, const std::vector<double>& a,
                          const std::vector<double>& b, int threads) {
  using C = CompOf<T>;
  std::vector<C> ac(a.begin(), a.end()), bc(b.begin(), b.end());
  if (plane == 1) {  // (N, C): vectorize across channels
    parallel_for(n, threads, channels, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const T* xi = x + i * channels;
        T* yi = y + i * channels;
        for (int64_t c = 0; c < channels; ++c) yi[c] = convert_scalar<T>(convert_scalar<C>(xi[c]) * ac[c] + bc[c]);
      }
    });
    return;
  }
  parallel_for(n * channels, threads, plane, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      const int64_t c = p % channels;
      norm::affine_run<T, C>(x + p * plane, y + p * plane, plane, ac[c], bc[c]);
    }
  });
}

// Per-channel mean and population variance over (N, plane) for X viewed as (N, channels, plane).
template <typename T>
void channel_moments(const T* x, int64_t n, int64_t channels, int64_t plane, std::vector<double>& mean,
                     std::vector<double>& var, int threads) {
  using C = CompOf<T>;
  mean.assign(static_cast<size_t>(channels), 0.0);
  var.assign(static_cast<size_t>(channels), 0.0);
  const double count = static_cast<double>(n * plane);
  if (count == 0) return;
  parallel_for(channels, threads, n * plane * 2, [&](int64_t lo, int64_t hi) {
    std::vector<C> buf;
    for (int64_t c = lo; c < hi; ++c) {
      double s = 0.0;
      for (int64_t i = 0; i < n; ++i)
        s += norm::sum_run(norm::as_comp<C>(x + (i * channels + c) * plane, plane, buf), plane);
      const double m = s / count;
      double q = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        q += norm::sum_sq_dev(norm::as_comp<C>(x + (i * channels + c) * plane, plane, buf), plane, static_cast<C>(m));
      }
      mean[static_cast<size_t>(c)] = m;
      var[static_cast<size_t>(c)] = q / count;
    }
  });
}

Status batchnorm_kernel(KernelContext& ctx) {
  const auto& node = ctx.node();
  const Tensor& x = ctx.required_input(0);
  const Tensor& scale = ctx.required_input(1);
  const Tensor& bias = ctx.required_input(2);
  const Tensor& in_mean = ctx.required_input(3);
  const Tensor& in_var = ctx.required_input(4);
  if (x.rank() < 2) return ctx.error("X must have shape (N, C, ...), got " + shape_to_string(x.shape()));
  const int opset = ctx.opset();
  const int64_t n = x.shape()[0];
  int64_t channels = x.shape()[1];
  int64_t plane = 1;
  for (size_t i = 2; i < x.shape().size(); ++i) plane *= x.shape()[i];
  // Opsets < 9: spatial=0 means one statistic per (C, D1, ..., Dn) position.
  if (opset < 9 && node.attr_int("spatial", 1) == 0 && scale.numel() == channels * plane && plane != 1) {
    channels *= plane;
    plane = 1;
  }
  for (const Tensor* p : {&scale, &bias, &in_mean, &in_var}) {
    if (p->numel() != channels) {
      return ctx.error("scale, B, mean and var must each hold " + std::to_string(channels) + " values, got " +
                       shape_to_string(p->shape()));
    }
  }
  bool training = false;
  if (opset >= 14) {
    training = node.attr_int("training_mode", 0) != 0;
  } else {
    for (size_t i = 1; i < 5; ++i) training = training || ctx.output_wanted(i);
    if (opset < 7 && node.attr_int("is_test", 0) != 0) training = false;
  }
  const double eps = node.attr_float("epsilon", 1e-5f);
  const double momentum = node.attr_float("momentum", 0.9f);
  const auto s = norm::read_param(scale);
  const auto b = norm::read_param(bias);
  auto mean = norm::read_param(in_mean);
  auto var = norm::read_param(in_var);
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
  return dispatch_floats(ctx, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    if (training) {
      std::vector<double> cur_mean, cur_var;
      channel_moments<T>(xp, n, channels, plane, cur_mean, cur_var, ctx.threads());
      std::vector<double> run_mean(mean.size()), run_var(var.size());
      for (size_t c = 0; c < mean.size(); ++c) {
        run_mean[c] = mean[c] * momentum + cur_mean[c] * (1.0 - momentum);
        run_var[c] = var[c] * momentum + cur_var[c] * (1.0 - momentum);
      }
      if (opset >= 14) {
        if (ctx.output_wanted(1)) norm::write_doubles(ctx, 1, in_mean.dtype(), in_mean.shape(), run_mean);
        if (ctx.output_wanted(2)) norm::write_doubles(ctx, 2, in_var.dtype(), in_var.shape(), run_var);
      } else {
        if (ctx.output_wanted(1)) norm::write_doubles(ctx, 1, in_mean.dtype(), in_mean.shape(), run_mean);
        if (ctx.output_wanted(2)) norm::write_doubles(ctx, 2, in_var.dtype(), in_var.shape(), run_var);
        if (ctx.output_wanted(3)) norm::write_doubles(ctx, 3, in_mean.dtype(), in_mean.shape(), cur_mean);
        if (ctx.output_wanted(4)) norm::write_doubles(ctx, 4, in_var.dtype(), in_var.shape(), cur_var);
      }
      mean = std::move(cur_mean);
      var = std::move(cur_var);
    }
    std::vector<double> a(static_cast<size_t>(channels)), c0(static_cast<size_t>(channels));
    for (size_t c = 0; c < a.size(); ++c) {
      a[c] = s[c] / std::sqrt(var[c] + eps);
      c0[c] = b[c] - mean[c] * a[c];
    }
    apply_channel_affine<T>(xp, y.data<T>(), n, channels, plane, a, c0, ctx.threads());
  });
}

// Normalizes each of `blocks` contiguous blocks of `len` elements; block k's
// channel j (of `per_block` channels of `plane` elements) gets scale[ch] and bias[ch]
// where ch = channel_of(k, j).
template <typename T, typename ChannelOf>
void block_normalize(const T* x, T* y, int64_t blocks, int64_t per_block, int64_t plane, double eps,
                     const std::vector<double>& scale, const std::vector<double>& bias, ChannelOf channel_of,
                     int threads) {
  using C = CompOf<T>;
  const int64_t len = per_block * plane;
  parallel_for(blocks, threads, len * 3, [&](int64_t lo, int64_t hi) {
    std::vector<C> buf;
    for (int64_t k = lo; k < hi; ++k) {
      const C* xc = norm::as_comp<C>(x + k * len, len, buf);
      double mean = 0.0, var = 0.0;
      norm::moments(xc, len, mean, var);
      const double inv = 1.0 / std::sqrt(var + eps);
      for (int64_t j = 0; j < per_block; ++j) {
        const auto ch = static_cast<size_t>(channel_of(k, j));
        const double a = scale[ch] * inv;
        const C ac = static_cast<C>(a), bc = static_cast<C>(bias[ch] - mean * a);
        const C* xj = xc + j * plane;
        T* yj = y + k * len + j * plane;
        for (int64_t i = 0; i < plane; ++i) yj[i] = convert_scalar<T>(xj[i] * ac + bc);
      }
    }
  });
}

Status instancenorm_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  const Tensor& scale = ctx.required_input(1);
  const Tensor& bias = ctx.required_input(2);
  if (x.rank() < 2) return ctx.error("input must have shape (N, C, ...), got " + shape_to_string(x.shape()));
  const int64_t n = x.shape()[0], channels = x.shape()[1];
  const int64_t plane = channels == 0 || n == 0 ? 0 : x.numel() / (n * channels);
  if (scale.numel() != channels || bias.numel() != channels) {
    return ctx.error("scale and B must hold " + std::to_string(channels) + " values, got " +
                     shape_to_string(scale.shape()) + " and " + shape_to_string(bias.shape()));
  }
  const double eps = ctx.node().attr_float("epsilon", 1e-5f);
  const auto s = norm::read_param(scale), b = norm::read_param(bias);
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
  if (x.numel() == 0) return Status::Ok();
  return dispatch_floats(ctx, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    block_normalize<T>(
        x.data<T>(), y.data<T>(), n * channels, 1, plane, eps, s, b,
        [channels](int64_t k, int64_t) { return k % channels; }, ctx.threads());
  });
}

// GroupNormalization: opsets 18-20 take scale/bias per group (per channel is
// accepted too), opset 21 per channel.
Status groupnorm_kernel(KernelContext& ctx) {
  const auto& node = ctx.node();
  const Tensor& x = ctx.required_input(0);
  const Tensor& scale = ctx.required_input(1);
  const Tensor& bias = ctx.required_input(2);
  if (x.rank() < 2) return ctx.error("X must have shape (N, C, ...), got " + shape_to_string(x.shape()));
  if (!node.has_attr("num_groups")) return ctx.error("attribute num_groups is required");
  const int64_t groups = node.attr_int("num_groups", 1);
  const int64_t n = x.shape()[0], channels = x.shape()[1];
  if (groups <= 0 || channels % groups != 0) {
    return ctx.error("num_groups " + std::to_string(groups) + " must be positive and divide the " +
                     std::to_string(channels) + " channels");
  }
  const bool per_group_ok = ctx.opset() < 21;
  const bool per_group = per_group_ok && scale.numel() == groups && bias.numel() == groups;
  if (!per_group && (scale.numel() != channels || bias.numel() != channels)) {
    return ctx.error("scale and bias must hold " + std::to_string(channels) + (per_group_ok ? " (or num_groups)" : "") +
                     " values, got " + shape_to_string(scale.shape()) + " and " + shape_to_string(bias.shape()));
  }
  const int64_t plane = channels == 0 || n == 0 ? 0 : x.numel() / (n * channels);
  const double eps = node.attr_float("epsilon", 1e-5f);
  const auto s = norm::read_param(scale), b = norm::read_param(bias);
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
  if (x.numel() == 0) return Status::Ok();
  const int64_t cpg = channels / groups;
  return dispatch_floats(ctx, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (per_group) {
      block_normalize<T>(
          x.data<T>(), y.data<T>(), n * groups, cpg, plane, eps, s, b,
          [groups](int64_t k, int64_t) { return k % groups; }, ctx.threads());
    } else {
      block_normalize<T>(
          x.data<T>(), y.data<T>(), n * groups, cpg, plane, eps, s, b,
          [groups, cpg](int64_t k, int64_t j) { return (k % groups) * cpg + j; }, ctx.threads());
    }
  });
}

// A LayerNormalization scale or bias as `len` values for the normalized shape
// `ns`: unidirectional broadcasting (or any tensor of exactly `len` values).
Status expand_affine(KernelContext& ctx, const Tensor& t, const Shape& ns, int64_t len, std::vector<double>& out) {
  const auto v = norm::read_param(t);
  if (t.numel() == len) {
    out = v;
    return Status::Ok();
  }
  Shape ts = t.shape();
  while (ts.size() > ns.size() && ts.front() == 1) ts.erase(ts.begin());
  bool ok = ts.size() <= ns.size();
  for (size_t i = 0; ok && i < ts.size(); ++i) ok = ts[i] == 1 || ts[i] == ns[ns.size() - ts.size() + i];
  if (!ok) {
    return ctx.error("scale/bias shape " + shape_to_string(t.shape()) + " does not broadcast to the normalized shape " +
                     shape_to_string(ns));
  }
  const auto strides = broadcast_strides(ts, ns);
  out.assign(static_cast<size_t>(len), 0.0);
  std::vector<int64_t> idx(ns.size(), 0);
  for (int64_t i = 0; i < len; ++i) {
    int64_t off = 0;
    for (size_t d = 0; d < ns.size(); ++d) off += idx[d] * strides[d];
    out[static_cast<size_t>(i)] = v[static_cast<size_t>(off)];
    for (size_t d = ns.size(); d-- > 0;) {
      if (++idx[d] < ns[d]) break;
      idx[d] = 0;
    }
  }
  return Status::Ok();
}

#if defined(__GNUC__) && defined(__x86_64__)
DESKML_AVX512_WARNINGS_OFF
// x - mean as (x - pivot) - (mean - pivot).
[[gnu::target("avx512f"), gnu::always_inline]] inline __m512 deviation(__m512 x, __m512 pivot, __m512 shift) {
  return _mm512_sub_ps(_mm512_sub_ps(x, pivot), shift);
}

// Float rows [lo, hi) of `len` values on AVX-512: the mean, then the variance
// about it, then the output, each a pass over the row (in L1 by then). The
// encoder's 12 LayerNorms of 1024 x 384 at batch 8, CPUs sharing a cache:
// 0.72-0.75 ms on the portable loops (built for SSE2) -> about 0.45-0.5; the
// whole run 47.23 -> 46.93 ms (medians of 8 alternated runs).
[[gnu::target("avx512f,avx512dq")]] void layernorm_rows_avx512(const float* x, float* y, int64_t lo, int64_t hi,
                                                               int64_t len, double eps, const float* w, const float* b,
                                                               std::vector<double>* mean_out,
                                                               std::vector<double>* inv_out) {
  const int64_t full = len - len % 16;
  const auto tail = static_cast<__mmask16>((1u << (len % 16)) - 1);
  for (int64_t r = lo; r < hi; ++r) {
    const float* xr = x + r * len;
    // In the row's coordinates less its first value (exact for values within
    // a factor of 2 of it), so that a row far from zero (values about 10000,
    // 1 apart) keeps its mean's and deviations' low digits in float.
    const __m512 pivot = _mm512_set1_ps(xr[0]);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < full; i += 16) acc = _mm512_add_ps(acc, _mm512_sub_ps(_mm512_loadu_ps(xr + i), pivot));
    if (tail) acc = _mm512_add_ps(acc, _mm512_maskz_sub_ps(tail, _mm512_maskz_loadu_ps(tail, xr + full), pivot));
    const double shift = static_cast<double>(_mm512_reduce_add_ps(acc)) / static_cast<double>(len);  // mean - x[0]
    const double mean = static_cast<double>(xr[0]) + shift;
    const __m512 m = _mm512_set1_ps(static_cast<float>(shift));
    acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < full; i += 16) {
      const __m512 d = deviation(_mm512_loadu_ps(xr + i), pivot, m);
      acc = _mm512_fmadd_ps(d, d, acc);
    }
    if (tail) {
      const __m512 d = _mm512_maskz_mov_ps(tail, deviation(_mm512_maskz_loadu_ps(tail, xr + full), pivot, m));
      acc = _mm512_fmadd_ps(d, d, acc);
    }
    const double var = static_cast<double>(_mm512_reduce_add_ps(acc)) / static_cast<double>(len);
    const double inv = 1.0 / std::sqrt(var + eps);
    if (mean_out) (*mean_out)[static_cast<size_t>(r)] = mean;
    if (inv_out) (*inv_out)[static_cast<size_t>(r)] = inv;
    const __m512 s = _mm512_set1_ps(static_cast<float>(inv));
    float* yr = y + r * len;
    for (int64_t i = 0; i < full; i += 16) {
      const __m512 v = _mm512_mul_ps(deviation(_mm512_loadu_ps(xr + i), pivot, m), s);
      _mm512_storeu_ps(yr + i, _mm512_fmadd_ps(v, _mm512_loadu_ps(w + i), _mm512_loadu_ps(b + i)));
    }
    if (tail) {
      const __m512 v = _mm512_mul_ps(deviation(_mm512_maskz_loadu_ps(tail, xr + full), pivot, m), s);
      _mm512_mask_storeu_ps(
          yr + full, tail,
          _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(tail, w + full), _mm512_maskz_loadu_ps(tail, b + full)));
    }
  }
}
DESKML_AVX512_WARNINGS_ON
#endif

template <typename T>
void layernorm_rows(const T* x, T* y, int64_t rows, int64_t len, double eps, const std::vector<double>& w,
                    const std::vector<double>* b, std::vector<double>* mean_out, std::vector<double>* inv_out,
                    int threads) {
  using C = CompOf<T>;
  const std::vector<C> wc(w.begin(), w.end());
  std::vector<C> bc(static_cast<size_t>(len), C(0));
  if (b != nullptr) bc.assign(b->begin(), b->end());
  const C* wp = wc.data();
  const C* bp = bc.data();
  parallel_for(rows, threads, len * 3, [&](int64_t lo, int64_t hi) {
#if defined(__GNUC__) && defined(__x86_64__)
    if constexpr (std::is_same_v<T, float>) {
      if (ew::has_avx512()) {
        layernorm_rows_avx512(x, y, lo, hi, len, eps, wp, bp, mean_out, inv_out);
        return;
      }
    }
#endif
    std::vector<C> buf;
    for (int64_t r = lo; r < hi; ++r) {
      const C* xr = norm::as_comp<C>(x + r * len, len, buf);
      double mean = 0.0, var = 0.0;
      norm::moments(xr, len, mean, var);
      const double inv = 1.0 / std::sqrt(var + eps);
      if (mean_out) (*mean_out)[static_cast<size_t>(r)] = mean;
      if (inv_out) (*inv_out)[static_cast<size_t>(r)] = inv;
      const C m = static_cast<C>(mean), s = static_cast<C>(inv);
      T* yr = y + r * len;
      for (int64_t i = 0; i < len; ++i) yr[i] = convert_scalar<T>((xr[i] - m) * s * wp[i] + bp[i]);
    }
  });
}

Status layernorm_kernel(KernelContext& ctx) {
  const auto& node = ctx.node();
  const Tensor& x = ctx.required_input(0);
  const Tensor& scale = ctx.required_input(1);
  const Tensor* bias = ctx.input(2);
  const int64_t rank = x.rank();
  if (rank == 0) return ctx.error("X must have rank >= 1");
  auto axis_r = normalize_axis(node.attr_int("axis", -1), rank);
  if (!axis_r.ok()) return ctx.error(axis_r.status().message());
  const auto axis = static_cast<size_t>(*axis_r);
  const Shape ns(x.shape().begin() + static_cast<std::ptrdiff_t>(axis), x.shape().end());
  int64_t rows = 1;
  for (size_t i = 0; i < axis; ++i) rows *= x.shape()[i];
  const int64_t len = shape_numel(ns);
  const double eps = node.attr_float("epsilon", 1e-5f);
  DataType stash = DataType::kFloat32;
  switch (node.attr_int("stash_type", 1)) {
    case 1:
      stash = DataType::kFloat32;
      break;
    case 10:
      stash = DataType::kFloat16;
      break;
    case 11:
      stash = DataType::kFloat64;
      break;
    case 16:
      stash = DataType::kBFloat16;
      break;
    default:
      return ctx.error("unsupported stash_type " + std::to_string(node.attr_int("stash_type", 1)));
  }
  std::vector<double> w, b;
  DESKML_RETURN_IF_ERROR(expand_affine(ctx, scale, ns, len, w));
  if (bias) DESKML_RETURN_IF_ERROR(expand_affine(ctx, *bias, ns, len, b));
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
  Shape stat_shape(x.shape().begin(), x.shape().begin() + static_cast<std::ptrdiff_t>(axis));
  stat_shape.resize(static_cast<size_t>(rank), 1);
  const bool want_mean = ctx.output_wanted(1), want_inv = ctx.output_wanted(2);
  std::vector<double> mean_v, inv_v;
  if (want_mean) mean_v.assign(static_cast<size_t>(rows), 0.0);
  if (want_inv) inv_v.assign(static_cast<size_t>(rows), 0.0);
  DESKML_RETURN_IF_ERROR(dispatch_floats(ctx, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (len > 0) {
      layernorm_rows<T>(x.data<T>(), y.data<T>(), rows, len, eps, w, bias ? &b : nullptr, want_mean ? &mean_v : nullptr,
                        want_inv ? &inv_v : nullptr, ctx.threads());
    }
  }));
  if (want_mean) norm::write_doubles(ctx, 1, stash, stat_shape, mean_v);
  if (want_inv) norm::write_doubles(ctx, 2, stash, stat_shape, inv_v);
  return Status::Ok();
}

}  // namespace

void register_normalization_kernels(KernelRegistry& r) {
  r.add("BatchNormalization", 1, INT_MAX, types::kFloat, batchnorm_kernel);
  r.add("InstanceNormalization", 1, INT_MAX, types::kFloat, instancenorm_kernel);
  r.add("LayerNormalization", 17, INT_MAX, types::kFloat, layernorm_kernel);
  r.add("GroupNormalization", 18, INT_MAX, types::kFloat, groupnorm_kernel);
  register_normalization_misc_kernels(r);
}

}  // namespace deskml::kernels::cpu
