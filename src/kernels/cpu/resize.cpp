// Resize (opsets 10..19+) and Upsample (7..9, deprecated at 10).
//
// Every mode is separable: the output is a product of per-axis 1-D filters.
// Each axis gets a tap table (source index and weight per output index), then
// nearest resizes are one N-D gather (any element type). Linear/cubic resizes
// handle the last two axes (H, W of NCHW) in one sweep per output row: blend
// the few source rows the vertical filter picks (contiguous, vectorised) into a
// scratch row, then filter it horizontally straight into the output. Any other
// changed axis (5-D depth, batch, channels) gets a row pass before that.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"

namespace deskml::kernels::cpu {
namespace {

enum class Mode { kNearest, kLinear, kCubic };
enum class Coord {
  kHalfPixel,
  kHalfPixelSymmetric,
  kPytorchHalfPixel,
  kAlignCorners,
  kAsymmetric,
  kTfHalfPixelForNn,
  kTfCropAndResize
};
// kSimple: Resize-10 and Upsample, which floor when enlarging and ceil when shrinking.
enum class NearestMode { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil, kSimple };

struct ResizeAttrs {
  Mode mode = Mode::kNearest;
  Coord coord = Coord::kHalfPixel;
  NearestMode nearest = NearestMode::kRoundPreferFloor;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  float extrapolation = 0.f;
  bool antialias = false;
};

// How one axis maps: output length, the scale used by the coordinate transform,
// and the crop window (tf_crop_and_resize).
struct AxisPlan {
  int64_t in = 0, out = 0;
  double scale = 1.0;
  double length_resized = 0;  // the resized length the coordinate formulas use
  double roi_start = 0, roi_end = 1;
};

struct AxisTaps {
  int64_t taps = 1;
  std::vector<int64_t> idx;      // [out * taps], clamped into [0, in)
  std::vector<double> w;         // [out * taps]
  std::vector<uint8_t> outside;  // [out]: 1 where the output takes the extrapolation value
  bool identity = false;         // output o is exactly input o
};

double source_coord(const ResizeAttrs& a, const AxisPlan& p, int64_t xi) {
  const double x = static_cast<double>(xi);
  const double in = static_cast<double>(p.in);
  switch (a.coord) {
    case Coord::kHalfPixel:
      return (x + 0.5) / p.scale - 0.5;
    case Coord::kHalfPixelSymmetric: {
      const double adjustment = static_cast<double>(p.out) / p.length_resized;
      const double offset = in / 2 * (1 - adjustment);
      return offset + (x + 0.5) / p.scale - 0.5;
    }
    // The spec and ONNX Runtime say 0 for a length-1 output (the 1.12 numpy reference used -0.5;
    // for linear both read input 0).
    case Coord::kPytorchHalfPixel:
      return p.length_resized > 1 ? (x + 0.5) / p.scale - 0.5 : 0.0;
    case Coord::kAlignCorners:
      return p.length_resized == 1 ? 0.0 : x * (in - 1) / (p.length_resized - 1);
    case Coord::kAsymmetric:
      return x / p.scale;
    case Coord::kTfHalfPixelForNn:
      return (x + 0.5) / p.scale;
    case Coord::kTfCropAndResize: {
      const double span = p.roi_end - p.roi_start;
      const double base = p.roi_start * (in - 1);
      return p.length_resized > 1 ? base + x * span * (in - 1) / (p.length_resized - 1) : base + span * (in - 1) / 2;
    }
  }
  return x;
}

int64_t nearest_index(NearestMode m, double x, bool shrinking) {
  const double fl = std::floor(x);
  switch (m) {
    case NearestMode::kRoundPreferFloor:
      return static_cast<int64_t>(x - fl == 0.5 ? fl : std::round(x));
    case NearestMode::kRoundPreferCeil:
      return static_cast<int64_t>(x - fl == 0.5 ? fl + 1 : std::round(x));
    case NearestMode::kFloor:
      return static_cast<int64_t>(fl);
    case NearestMode::kCeil:
      return static_cast<int64_t>(std::ceil(x));
    case NearestMode::kSimple:
      return static_cast<int64_t>(shrinking ? std::ceil(x) : fl);
  }
  return static_cast<int64_t>(fl);
}

double cubic_weight(double d, double A) {
  d = std::abs(d);
  if (d <= 1) return ((A + 2) * d - (A + 3)) * d * d + 1;
  if (d < 2) return ((A * d - 5 * A) * d + 8 * A) * d - 4 * A;
  return 0;
}

AxisTaps build_taps(const ResizeAttrs& a, const AxisPlan& p) {
  AxisTaps t;
  const bool crop = a.coord == Coord::kTfCropAndResize;
  t.outside.assign(static_cast<size_t>(p.out), 0);
  // Filter support: offsets [first, first + taps) around floor(x); antialias
  // stretches the filter by 1/scale when shrinking.
  double stretch = 1.0;
  int64_t first = 0;
  if (a.mode == Mode::kNearest) {
    t.taps = 1;
  } else {
    const double radius = a.mode == Mode::kLinear ? 1.0 : 2.0;
    if (a.antialias && p.scale < 1) stretch = p.scale;
    first = static_cast<int64_t>(std::floor(-radius / stretch)) + 1;
    t.taps = 2 - 2 * first;
  }
  t.idx.assign(static_cast<size_t>(p.out * t.taps), 0);
  t.w.assign(static_cast<size_t>(p.out * t.taps), 0.0);
  const double last = static_cast<double>(p.in - 1);
  for (int64_t o = 0; o < p.out; ++o) {
    const double x = source_coord(a, p, o);
    if (crop && (x < 0 || x > last)) {
      t.outside[o] = 1;
      continue;
    }
    int64_t* idx = &t.idx[o * t.taps];
    double* w = &t.w[o * t.taps];
    if (a.mode == Mode::kNearest) {
      idx[0] = std::clamp<int64_t>(nearest_index(a.nearest, x, p.scale < 1), 0, p.in - 1);
      w[0] = 1;
      continue;
    }
    const double base = std::floor(x);
    const double r = x - base;
    double sum = 0;
    for (int64_t k = 0; k < t.taps; ++k) {
      const int64_t off = first + k;
      const double d = (static_cast<double>(off) - r) * stretch;
      double wk = a.mode == Mode::kLinear ? std::max(0.0, 1.0 - std::abs(d)) : cubic_weight(d, a.cubic_a);
      const int64_t src = static_cast<int64_t>(base) + off;
      if (a.exclude_outside && (src < 0 || src >= p.in)) wk = 0;
      idx[k] = std::clamp<int64_t>(src, 0, p.in - 1);
      w[k] = wk;
      sum += wk;
    }
    if ((a.exclude_outside || stretch != 1.0) && sum != 0) {
      for (int64_t k = 0; k < t.taps; ++k) w[k] /= sum;
    }
  }
  t.identity = p.in == p.out;
  for (int64_t o = 0; o < p.out && t.identity; ++o) {
    if (t.outside[o]) t.identity = false;
    for (int64_t k = 0; k < t.taps && t.identity; ++k) {
      const double wk = t.w[o * t.taps + k];
      if (wk != 0 && !(wk == 1 && t.idx[o * t.taps + k] == o)) t.identity = false;
    }
  }
  return t;
}

// --- nearest: an N-D gather for any element type ----------------------------------

template <typename T>
T extrapolation_as(float v) {
  if constexpr (std::is_same_v<T, std::string>) {
    return std::string();
  } else {
    return convert_scalar<T>(v);
  }
}

template <typename T>
void gather_nearest(const Tensor& X, Tensor& Y, const std::vector<AxisTaps>& taps, float extrap, int threads) {
  const Shape& in_shape = X.shape();
  const Shape& out_shape = Y.shape();
  const size_t rank = in_shape.size();
  const std::vector<int64_t> strides = shape_strides(in_shape);
  const T* src = X.data<T>();
  T* dst = Y.data<T>();
  const int64_t inner = rank ? out_shape[rank - 1] : 1;
  const int64_t rows = inner ? Y.numel() / inner : 0;
  const T fill = extrapolation_as<T>(extrap);
  // Source offsets along the last axis, once.
  std::vector<int64_t> last_off(static_cast<size_t>(inner), 0);
  const int64_t last_stride = rank ? strides[rank - 1] : 1;
  for (int64_t j = 0; j < inner && rank; ++j) last_off[j] = taps[rank - 1].idx[j] * last_stride;
  const bool last_any_outside = rank && std::find(taps[rank - 1].outside.begin(), taps[rank - 1].outside.end(),
                                                  uint8_t{1}) != taps[rank - 1].outside.end();
  parallel_for(rows, threads, inner, [&](int64_t lo, int64_t hi) {
    for (int64_t row = lo; row < hi; ++row) {
      int64_t rem = row, base = 0;
      bool outside = false;
      for (size_t d = rank ? rank - 1 : 0; d-- > 0;) {
        const int64_t o = rem % out_shape[d];
        rem /= out_shape[d];
        base += taps[d].idx[o] * strides[d];
        outside = outside || taps[d].outside[o];
      }
      T* out = dst + row * inner;
      const T* in = src + base;
      if (outside) {
        for (int64_t j = 0; j < inner; ++j) out[j] = fill;
      } else if (rank && last_any_outside) {
        const uint8_t* out_last = taps[rank - 1].outside.data();
        for (int64_t j = 0; j < inner; ++j) out[j] = out_last[j] ? fill : in[last_off[j]];
      } else if (rank) {
        for (int64_t j = 0; j < inner; ++j) out[j] = in[last_off[j]];
      } else {
        out[0] = in[0];
      }
    }
  });
}

// --- linear / cubic: separable 1-D filters -------------------------------------------

template <typename C, typename S>
inline C load_as(S v) {
  return convert_scalar<C>(v);
}

// Stores a computed value: integers round to nearest and saturate.
template <typename T, typename C>
inline T store_as(C v) {
  if constexpr (std::is_integral_v<T>) {
    constexpr double lo = static_cast<double>(std::numeric_limits<T>::lowest());
    constexpr double hi = static_cast<double>(std::numeric_limits<T>::max());
    return static_cast<T>(std::clamp(std::round(static_cast<double>(v)), lo, hi));
  } else {
    return convert_scalar<T>(v);
  }
}

// Tap tables in the computation type, with a flag for "no extrapolated outputs".
template <typename C>
struct Filter {
  int64_t taps = 1;
  const int64_t* idx = nullptr;
  std::vector<C> w;
  const uint8_t* outside = nullptr;
  bool any_outside = false;
  explicit Filter(const AxisTaps& t)
      : taps(t.taps), idx(t.idx.data()), w(t.w.begin(), t.w.end()), outside(t.outside.data()) {
    any_outside = std::find(t.outside.begin(), t.outside.end(), uint8_t{1}) != t.outside.end();
  }
};

// One pass along a leading axis: src [outer, in, inner] -> dst [outer, out, inner].
// Output rows are weighted sums of whole input rows (contiguous, vectorised).
template <typename S, typename C>
void resize_rows_pass(const S* src, C* dst, int64_t outer, int64_t in, int64_t out, int64_t inner, const AxisTaps& t,
                      C extrap, int threads) {
  const Filter<C> f(t);
  parallel_for(outer * out, threads, inner * f.taps, [&](int64_t lo, int64_t hi) {
    for (int64_t row = lo; row < hi; ++row) {
      const int64_t b = row / out, o = row % out;
      C* __restrict d = dst + row * inner;
      if (f.outside[o]) {
        std::fill(d, d + inner, extrap);
        continue;
      }
      std::fill(d, d + inner, C(0));
      const S* s = src + b * in * inner;
      for (int64_t k = 0; k < f.taps; ++k) {
        const C wk = f.w[o * f.taps + k];
        if (wk == 0) continue;
        const S* __restrict r = s + f.idx[o * f.taps + k] * inner;
        for (int64_t j = 0; j < inner; ++j) d[j] += wk * load_as<C>(r[j]);
      }
    }
  });
}

// Horizontal filter of one row: out[x] = sum_k w[x, k] * row[idx[x, k]].
template <typename T, typename C>
void filter_row(const C* row, T* out, int64_t n_out, const Filter<C>& f, C extrap) {
  const int64_t K = f.taps;
  const C* w = f.w.data();
  if (K == 2 && !f.any_outside) {  // linear: the common case
    for (int64_t x = 0; x < n_out; ++x) {
      out[x] = store_as<T>(w[2 * x] * row[f.idx[2 * x]] + w[2 * x + 1] * row[f.idx[2 * x + 1]]);
    }
    return;
  }
  for (int64_t x = 0; x < n_out; ++x) {
    if (f.outside[x]) {
      out[x] = store_as<T>(extrap);
      continue;
    }
    C acc = 0;
    for (int64_t k = 0; k < K; ++k) acc += w[x * K + k] * row[f.idx[x * K + k]];
    out[x] = store_as<T>(acc);
  }
}

// The last two axes in one sweep per output row: blend the source rows the
// vertical filter picks into a scratch row, then filter it horizontally into
// the output. No intermediate tensor, one scratch row per thread.
template <typename T, typename S, typename C>
void resize_last_two(const S* src, T* dst, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w,
                     const AxisTaps* th, const AxisTaps& tw, C extrap, int threads) {
  const Filter<C> fw(tw);
  const bool w_identity = tw.identity;
  std::unique_ptr<Filter<C>> fh;
  if (th != nullptr) fh = std::make_unique<Filter<C>>(*th);
  const int64_t kh = fh ? fh->taps : 1;
  parallel_for(planes * out_h, threads, in_w * kh + out_w * fw.taps, [&](int64_t lo, int64_t hi) {
    std::vector<C> tmp(static_cast<size_t>(in_w));
    for (int64_t row = lo; row < hi; ++row) {
      const int64_t p = row / out_h, oy = row % out_h;
      const S* plane = src + p * in_h * in_w;
      T* out = dst + row * out_w;
      if (fh && fh->outside[oy]) {
        std::fill(out, out + out_w, store_as<T>(extrap));
        continue;
      }
      const C* rowp = tmp.data();
      if (fh) {
        std::fill(tmp.begin(), tmp.end(), C(0));
        C* __restrict t = tmp.data();
        for (int64_t k = 0; k < kh; ++k) {
          const C wk = fh->w[oy * kh + k];
          if (wk == 0) continue;
          const S* __restrict r = plane + fh->idx[oy * kh + k] * in_w;
          for (int64_t j = 0; j < in_w; ++j) t[j] += wk * load_as<C>(r[j]);
        }
      } else if constexpr (std::is_same_v<S, C>) {
        rowp = plane + oy * in_w;
      } else {
        const S* r = plane + oy * in_w;
        for (int64_t j = 0; j < in_w; ++j) tmp[j] = load_as<C>(r[j]);
      }
      if (w_identity) {
        for (int64_t x = 0; x < out_w; ++x) out[x] = store_as<T>(rowp[x]);
      } else {
        filter_row<T, C>(rowp, out, out_w, fw, extrap);
      }
    }
  });
}

template <typename T>
void interpolate(const Tensor& X, Tensor& Y, const std::vector<AxisTaps>& taps, float extrap_f, int threads) {
  using C = std::conditional_t<std::is_same_v<T, double>, double, float>;
  const C extrap = static_cast<C>(extrap_f);
  const Shape& in_shape = X.shape();
  const Shape& out_shape = Y.shape();
  const size_t rank = in_shape.size();
  // The last two axes go through resize_last_two; any other changed axis gets
  // a row pass first, shrinking axes first so the intermediates stay small.
  const size_t fused = std::min<size_t>(rank, 2);
  std::vector<size_t> lead;
  for (size_t d = 0; d + fused < rank; ++d) {
    if (!taps[d].identity) lead.push_back(d);
  }
  std::stable_sort(lead.begin(), lead.end(), [&](size_t a, size_t b) {
    return static_cast<double>(out_shape[a]) / static_cast<double>(std::max<int64_t>(in_shape[a], 1)) <
           static_cast<double>(out_shape[b]) / static_cast<double>(std::max<int64_t>(in_shape[b], 1));
  });
  Shape shape = in_shape;
  std::vector<C> buf[2];
  const C* cur = nullptr;
  for (size_t i = 0; i < lead.size(); ++i) {
    const size_t d = lead[i];
    int64_t outer = 1, inner = 1;
    for (size_t k = 0; k < d; ++k) outer *= shape[k];
    for (size_t k = d + 1; k < rank; ++k) inner *= shape[k];
    buf[i % 2].resize(static_cast<size_t>(outer * out_shape[d] * inner));
    C* dst = buf[i % 2].data();
    if (i == 0) {
      resize_rows_pass<T, C>(X.data<T>(), dst, outer, shape[d], out_shape[d], inner, taps[d], extrap, threads);
    } else {
      resize_rows_pass<C, C>(cur, dst, outer, shape[d], out_shape[d], inner, taps[d], extrap, threads);
    }
    shape[d] = out_shape[d];
    cur = dst;
  }
  // Rank 1 is a single row (height 1, no vertical filter).
  const int64_t in_w = rank ? in_shape[rank - 1] : 1, out_w = rank ? out_shape[rank - 1] : 1;
  const int64_t in_h = rank >= 2 ? in_shape[rank - 2] : 1, out_h = rank >= 2 ? out_shape[rank - 2] : 1;
  const AxisTaps* th = rank >= 2 && !taps[rank - 2].identity ? &taps[rank - 2] : nullptr;
  AxisTaps unit;  // rank 0: a single value
  unit.identity = true;
  const AxisTaps& tw = rank ? taps[rank - 1] : unit;
  int64_t planes = 1;
  for (size_t k = 0; k + fused < rank; ++k) planes *= shape[k];
  T* dst = Y.data<T>();
  if (cur != nullptr) {
    resize_last_two<T, C, C>(cur, dst, planes, in_h, in_w, out_h, out_w, th, tw, extrap, threads);
  } else {
    resize_last_two<T, T, C>(X.data<T>(), dst, planes, in_h, in_w, out_h, out_w, th, tw, extrap, threads);
  }
}

Status run_resize(KernelContext& ctx, const ResizeAttrs& attrs, const std::vector<AxisPlan>& plans) {
  const Tensor& X = ctx.required_input(0);
  Shape out_shape;
  for (const AxisPlan& p : plans) out_shape.push_back(p.out);
  shape_numel(out_shape);  // bounds the output size before anything is allocated
  for (const AxisPlan& p : plans) {
    if (p.in == 0 && p.out > 0) return ctx.error("cannot resize an empty axis to a non-empty one");
  }
  Tensor& Y = ctx.allocate_output(0, X.dtype(), out_shape);
  if (Y.numel() == 0) return Status::Ok();
  std::vector<AxisTaps> taps;
  for (const AxisPlan& p : plans) taps.push_back(build_taps(attrs, p));
  if (attrs.mode == Mode::kNearest) {
    dispatch_all(X.dtype(), "Resize",
                 [&](auto tag) { gather_nearest<decltype(tag)>(X, Y, taps, attrs.extrapolation, ctx.threads()); });
    return Status::Ok();
  }
  const DataType dt = X.dtype();
  if (dt == DataType::kBool || dt == DataType::kString) return ctx.error("linear and cubic modes need numbers");
  if (dt == DataType::kFloat16) {
    interpolate<Float16>(X, Y, taps, attrs.extrapolation, ctx.threads());
  } else if (dt == DataType::kBFloat16) {
    interpolate<BFloat16>(X, Y, taps, attrs.extrapolation, ctx.threads());
  } else {
    dispatch_numeric(dt, "Resize",
                     [&](auto tag) { interpolate<decltype(tag)>(X, Y, taps, attrs.extrapolation, ctx.threads()); });
  }
  return Status::Ok();
}

// --- attributes -------------------------------------------------------------------

Status parse_mode(const KernelContext& ctx, ResizeAttrs& a) {
  const std::string mode = ctx.node().attr_string("mode", "nearest");
  if (mode == "nearest") {
    a.mode = Mode::kNearest;
  } else if (mode == "linear" || mode == "bilinear") {
    a.mode = Mode::kLinear;
  } else if (mode == "cubic" && ctx.node().op_type == "Resize" && ctx.opset() >= 11) {
    a.mode = Mode::kCubic;
  } else {
    return ctx.error("unsupported mode '" + mode + "'");
  }
  return Status::Ok();
}

Status parse_resize11_attrs(const KernelContext& ctx, ResizeAttrs& a) {
  const graph::Node& n = ctx.node();
  DESKML_RETURN_IF_ERROR(parse_mode(ctx, a));
  const std::string coord = n.attr_string("coordinate_transformation_mode", "half_pixel");
  if (coord == "half_pixel") {
    a.coord = Coord::kHalfPixel;
  } else if (coord == "half_pixel_symmetric") {
    a.coord = Coord::kHalfPixelSymmetric;
  } else if (coord == "pytorch_half_pixel") {
    a.coord = Coord::kPytorchHalfPixel;
  } else if (coord == "align_corners") {
    a.coord = Coord::kAlignCorners;
  } else if (coord == "asymmetric") {
    a.coord = Coord::kAsymmetric;
  } else if (coord == "tf_half_pixel_for_nn") {
    a.coord = Coord::kTfHalfPixelForNn;
  } else if (coord == "tf_crop_and_resize") {
    a.coord = Coord::kTfCropAndResize;
  } else {
    return ctx.error("unknown coordinate_transformation_mode '" + coord + "'");
  }
  const std::string nearest = n.attr_string("nearest_mode", "round_prefer_floor");
  if (nearest == "round_prefer_floor") {
    a.nearest = NearestMode::kRoundPreferFloor;
  } else if (nearest == "round_prefer_ceil") {
    a.nearest = NearestMode::kRoundPreferCeil;
  } else if (nearest == "floor") {
    a.nearest = NearestMode::kFloor;
  } else if (nearest == "ceil") {
    a.nearest = NearestMode::kCeil;
  } else {
    return ctx.error("unknown nearest_mode '" + nearest + "'");
  }
  a.cubic_a = n.attr_float("cubic_coeff_a", -0.75f);
  a.exclude_outside = n.attr_int("exclude_outside", 0) != 0;
  a.extrapolation = n.attr_float("extrapolation_value", 0.f);
  a.antialias = ctx.opset() >= 18 && n.attr_int("antialias", 0) != 0;
  return Status::Ok();
}

// Output lengths and coordinate scales from `scales` or `sizes` (opset 11+).
Status plan_axes(const KernelContext& ctx, const ResizeAttrs& a, const Tensor* roi, const Tensor* scales,
                 const Tensor* sizes, std::vector<AxisPlan>& plans) {
  const graph::Node& n = ctx.node();
  const Shape& in_shape = ctx.required_input(0).shape();
  const int64_t rank = static_cast<int64_t>(in_shape.size());
  std::vector<int64_t> axes;
  if (ctx.opset() >= 18 && n.has_attr("axes")) {
    for (int64_t ax : n.attr_ints("axes")) {
      if (ax < -rank || ax >= rank) return ctx.error("axis " + std::to_string(ax) + " out of range");
      const int64_t norm = ax < 0 ? ax + rank : ax;
      if (std::find(axes.begin(), axes.end(), norm) != axes.end()) return ctx.error("repeated axis in axes");
      axes.push_back(norm);
    }
  } else {
    axes.resize(static_cast<size_t>(rank));
    std::iota(axes.begin(), axes.end(), 0);
  }
  const size_t na = axes.size();
  plans.assign(static_cast<size_t>(rank), AxisPlan{});
  for (int64_t d = 0; d < rank; ++d) {
    plans[d].in = plans[d].out = in_shape[d];
    plans[d].length_resized = static_cast<double>(in_shape[d]);
  }
  if (scales != nullptr && scales->numel() == 0) scales = nullptr;
  if (sizes != nullptr && sizes->numel() == 0) sizes = nullptr;
  if ((scales == nullptr) == (sizes == nullptr)) return ctx.error("exactly one of scales and sizes must be given");
  if (scales != nullptr) {
    if (!dtype_is_float(scales->dtype())) return ctx.error("scales must be a float tensor");
    if (static_cast<size_t>(scales->numel()) != na) {
      return ctx.error("scales has " + std::to_string(scales->numel()) + " values for " + std::to_string(na) + " axes");
    }
    for (size_t i = 0; i < na; ++i) {
      const double s = static_cast<double>(static_cast<float>(scales->float_at(static_cast<int64_t>(i))));
      if (!(s > 0) || !std::isfinite(s)) return ctx.error("scales must be positive and finite");
      AxisPlan& p = plans[axes[i]];
      p.scale = s;
      p.length_resized = s * static_cast<double>(p.in);
      const double out = std::floor(p.length_resized);
      if (out > static_cast<double>(kMaxTensorElements)) return ctx.error("output too large");
      p.out = static_cast<int64_t>(out);
    }
  } else {
    if (!dtype_is_integer(sizes->dtype())) return ctx.error("sizes must be an integer tensor");
    const std::vector<int64_t> sz = sizes->to_int64_vector();
    if (sz.size() != na) {
      return ctx.error("sizes has " + std::to_string(sz.size()) + " values for " + std::to_string(na) + " axes");
    }
    for (int64_t v : sz) {
      if (v < 0) return ctx.error("sizes must not be negative");
    }
    const std::string policy = ctx.opset() >= 18 ? n.attr_string("keep_aspect_ratio_policy", "stretch") : "stretch";
    if (policy == "stretch") {
      for (size_t i = 0; i < na; ++i) {
        AxisPlan& p = plans[axes[i]];
        p.out = sz[i];
        p.scale = p.in ? static_cast<double>(p.out) / static_cast<double>(p.in) : 1.0;
        p.length_resized = static_cast<double>(p.out);
      }
    } else if (policy == "not_larger" || policy == "not_smaller") {
      double scale = policy == "not_larger" ? std::numeric_limits<double>::infinity() : 0.0;
      for (size_t i = 0; i < na; ++i) {
        const int64_t in = plans[axes[i]].in;
        if (in == 0) return ctx.error("keep_aspect_ratio_policy needs non-empty axes");
        const double s = static_cast<double>(sz[i]) / static_cast<double>(in);
        scale = policy == "not_larger" ? std::min(scale, s) : std::max(scale, s);
      }
      for (size_t i = 0; i < na; ++i) {
        AxisPlan& p = plans[axes[i]];
        p.scale = scale;
        p.length_resized = scale * static_cast<double>(p.in);
        p.out = static_cast<int64_t>(std::round(p.length_resized));
      }
    } else {
      return ctx.error("unknown keep_aspect_ratio_policy '" + policy + "'");
    }
  }
  for (const AxisPlan& p : plans) {
    if (p.out > 0 && !(p.scale > 0)) return ctx.error("cannot resize an empty axis");
  }
  if (a.coord == Coord::kTfCropAndResize) {
    if (roi == nullptr || roi->numel() == 0) return ctx.error("tf_crop_and_resize needs roi");
    if (!dtype_is_float(roi->dtype())) return ctx.error("roi must be a float tensor");
    if (static_cast<size_t>(roi->numel()) != 2 * na) return ctx.error("roi must hold 2 values per axis");
    for (size_t i = 0; i < na; ++i) {
      plans[axes[i]].roi_start = roi->float_at(static_cast<int64_t>(i));
      plans[axes[i]].roi_end = roi->float_at(static_cast<int64_t>(na + i));
    }
  }
  return Status::Ok();
}

Status compute_resize(KernelContext& ctx) {
  const Tensor& X = ctx.required_input(0);
  ResizeAttrs attrs;
  std::vector<AxisPlan> plans;
  if (ctx.opset() < 11) {
    DESKML_RETURN_IF_ERROR(parse_mode(ctx, attrs));
    attrs.coord = Coord::kAsymmetric;
    attrs.nearest = NearestMode::kSimple;
    DESKML_RETURN_IF_ERROR(plan_axes(ctx, attrs, nullptr, &ctx.required_input(1), nullptr, plans));
  } else {
    DESKML_RETURN_IF_ERROR(parse_resize11_attrs(ctx, attrs));
    DESKML_RETURN_IF_ERROR(plan_axes(ctx, attrs, ctx.input(1), ctx.input(2), ctx.input(3), plans));
  }
  (void)X;
  return run_resize(ctx, attrs, plans);
}

Status compute_upsample(KernelContext& ctx) {
  const Tensor& X = ctx.required_input(0);
  ResizeAttrs attrs;
  DESKML_RETURN_IF_ERROR(parse_mode(ctx, attrs));
  attrs.coord = Coord::kAsymmetric;
  attrs.nearest = NearestMode::kSimple;
  std::vector<float> scales;
  if (ctx.opset() >= 9) {
    const Tensor& s = ctx.required_input(1);
    if (!dtype_is_float(s.dtype())) return ctx.error("scales must be a float tensor");
    for (int64_t i = 0; i < s.numel(); ++i) scales.push_back(static_cast<float>(s.float_at(i)));
  } else {
    scales = ctx.node().attr_floats("scales");
  }
  if (static_cast<int64_t>(scales.size()) != X.rank()) {
    return ctx.error("scales has " + std::to_string(scales.size()) + " values for a rank-" + std::to_string(X.rank()) +
                     " input");
  }
  std::vector<AxisPlan> plans(scales.size());
  for (size_t d = 0; d < scales.size(); ++d) {
    const double s = scales[d];
    if (!(s > 0) || !std::isfinite(s)) return ctx.error("scales must be positive and finite");
    AxisPlan& p = plans[d];
    p.in = X.shape()[d];
    p.scale = s;
    p.length_resized = s * static_cast<double>(p.in);
    if (p.length_resized > static_cast<double>(kMaxTensorElements)) return ctx.error("output too large");
    p.out = static_cast<int64_t>(std::floor(p.length_resized));
  }
  return run_resize(ctx, attrs, plans);
}

}  // namespace

void register_resize_kernels(KernelRegistry& r) {
  r.add("Resize", 10, INT_MAX, types::kAll, compute_resize);
  r.add("Upsample", 7, INT_MAX, types::kAll, compute_upsample);
}

}  // namespace deskml::kernels::cpu
