// MaxPool, AveragePool, LpPool and their Global forms: own loops for every
// dtype, written once over 3 spatial axes (1-D and 2-D get leading unit axes).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/pool_geometry.hpp"

namespace deskml::kernels::cpu {

void register_pool_extra_kernels(KernelRegistry& r);
void register_nhwc_pool_kernels(KernelRegistry& r);

PoolAttrs::PoolAttrs(const graph::Node& node, const std::string& prefix)
    : auto_pad(node.attr_string(prefix + "auto_pad", "NOTSET")),
      kernel_shape(node.attr_ints(prefix + "kernel_shape")),
      strides(node.attr_ints(prefix + "strides")),
      dilations(node.attr_ints(prefix + "dilations")),
      pads(node.attr_ints(prefix + "pads")),
      ceil_mode(node.attr_int(prefix + "ceil_mode", 0) != 0),
      count_include_pad(node.attr_int(prefix + "count_include_pad", 0) != 0),
      storage_order(node.attr_int(prefix + "storage_order", 0)) {
  if (auto_pad.empty()) auto_pad = "NOTSET";
}

namespace {

[[noreturn]] void fail(const std::string& label, const std::string& message) {
  throw_status(invalid_argument(label + ": " + message));
}

std::vector<int64_t> spatial_attr(const std::vector<int64_t>& v, size_t rank, int64_t def, int64_t min_value,
                                  const char* name, const std::string& label) {
  if (v.empty()) return std::vector<int64_t>(rank, def);
  if (v.size() != rank) {
    fail(label, std::string(name) + " has " + std::to_string(v.size()) + " values, expected " + std::to_string(rank));
  }
  for (int64_t x : v) {
    if (x < min_value) fail(label, std::string(name) + " values must be >= " + std::to_string(min_value));
    // Bounds size-like attributes so the shape arithmetic cannot overflow.
    if (x > INT32_MAX) fail(label, std::string(name) + " values are implausibly large");
  }
  return v;
}

}  // namespace

PoolGeometry pool_geometry(const PoolAttrs& attrs, const Shape& x, const std::string& label) {
  if (x.size() < 3) fail(label, "input must have rank >= 3 (N, C, spatial...), got " + shape_to_string(x));
  const size_t sr = x.size() - 2;
  PoolGeometry g;
  g.batch = x[0];
  g.channels = x[1];
  g.in.assign(x.begin() + 2, x.end());
  if (attrs.kernel_shape.size() != sr) fail(label, "kernel_shape must have one value per spatial axis");
  g.kernel = spatial_attr(attrs.kernel_shape, sr, 1, 1, "kernel_shape", label);
  g.strides = spatial_attr(attrs.strides, sr, 1, 1, "strides", label);
  g.dilations = spatial_attr(attrs.dilations, sr, 1, 1, "dilations", label);
  const std::vector<int64_t> pads = spatial_attr(attrs.pads, 2 * sr, 0, 0, "pads", label);
  g.pad_begin.assign(pads.begin(), pads.begin() + static_cast<ptrdiff_t>(sr));
  g.pad_end.assign(pads.begin() + static_cast<ptrdiff_t>(sr), pads.end());
  g.out.resize(sr);
  for (size_t i = 0; i < sr; ++i) {
    const int64_t dk = (g.kernel[i] - 1) * g.dilations[i] + 1, s = g.strides[i];
    if (attrs.auto_pad == "SAME_UPPER" || attrs.auto_pad == "SAME_LOWER") {
      g.out[i] = (g.in[i] + s - 1) / s;
      const int64_t total = std::max<int64_t>(0, (g.out[i] - 1) * s + dk - g.in[i]);
      g.pad_begin[i] = attrs.auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      g.pad_end[i] = total - g.pad_begin[i];
      continue;
    }
    if (attrs.auto_pad == "VALID") {
      g.pad_begin[i] = g.pad_end[i] = 0;
    } else if (attrs.auto_pad != "NOTSET") {
      fail(label, "unknown auto_pad '" + attrs.auto_pad + "'");
    }
    const int64_t span = g.in[i] + g.pad_begin[i] + g.pad_end[i] - dk;
    if (span < 0) fail(label, "the (dilated) kernel is larger than the padded input along axis " + std::to_string(i));
    g.out[i] = (attrs.ceil_mode ? (span + s - 1) / s : span / s) + 1;
    // The last window must start inside the input or the left padding.
    if (attrs.ceil_mode && (g.out[i] - 1) * s >= g.in[i] + g.pad_begin[i]) --g.out[i];
  }
  return g;
}

Shape PoolGeometry::output_shape() const {
  Shape s = {batch, channels};
  s.insert(s.end(), out.begin(), out.end());
  return s;
}

PoolGeometry PoolGeometry::as_3d() const {
  PoolGeometry g = *this;
  while (g.in.size() < 3) {
    for (auto* v : {&g.in, &g.out, &g.kernel, &g.strides, &g.dilations}) v->insert(v->begin(), 1);
    for (auto* v : {&g.pad_begin, &g.pad_end}) v->insert(v->begin(), 0);
  }
  return g;
}

namespace {

enum class PoolKind { kMax, kAverage, kLp };

// For one axis and each output position: the valid kernel taps [lo, hi) and
// the input coordinate of tap 0 (window start), plus the count of taps inside
// the padded extent (for count_include_pad).
struct AxisWindows {
  std::vector<int64_t> start, lo, hi, padded_count;
};

AxisWindows axis_windows(int64_t in, int64_t out, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe) {
  AxisWindows w;
  // Taps t in [0, k) with lower <= start + t*d < upper.
  auto taps = [&](int64_t start, int64_t lower, int64_t upper) {
    const int64_t lo = start >= lower ? 0 : (lower - start + d - 1) / d;
    const int64_t hi = start >= upper ? 0 : (upper - 1 - start) / d + 1;
    return std::pair<int64_t, int64_t>{std::min(lo, k), std::max(std::min(hi, k), std::min(lo, k))};
  };
  for (int64_t o = 0; o < out; ++o) {
    const int64_t start = o * s - pb;
    const auto [lo, hi] = taps(start, 0, in);
    const auto [plo, phi] = taps(start, -pb, in + pe);
    w.start.push_back(start);
    w.lo.push_back(lo);
    w.hi.push_back(hi);
    w.padded_count.push_back(phi - plo);
  }
  return w;
}

template <typename T>
using ComputeOf =
    std::conditional_t<std::is_same_v<T, double>, double, std::conditional_t<std::is_integral_v<T>, T, float>>;

struct Windows3 {
  AxisWindows d, h, w;
  explicit Windows3(const PoolGeometry& g)
      : d(axis_windows(g.in[0], g.out[0], g.kernel[0], g.strides[0], g.dilations[0], g.pad_begin[0], g.pad_end[0])),
        h(axis_windows(g.in[1], g.out[1], g.kernel[1], g.strides[1], g.dilations[1], g.pad_begin[1], g.pad_end[1])),
        w(axis_windows(g.in[2], g.out[2], g.kernel[2], g.strides[2], g.dilations[2], g.pad_begin[2], g.pad_end[2])) {}
};

// MaxPool with the Indices output: one window at a time, tracking the argmax.
template <typename T>
void max_pool_with_indices(const PoolGeometry& g3, bool column_major, const T* x, T* y, int64_t* indices, int threads) {
  using C = ComputeOf<T>;
  const Windows3 win(g3);
  const int64_t ih = g3.in[1], iw = g3.in[2], id = g3.in[0];
  const int64_t in_plane = id * ih * iw, out_plane = g3.out[0] * g3.out[1] * g3.out[2];
  const int64_t dd = g3.dilations[0], dh = g3.dilations[1], dw = g3.dilations[2];
  const int64_t window = g3.kernel[0] * g3.kernel[1] * g3.kernel[2];
  parallel_for(g3.batch * g3.channels, threads, out_plane * window, [&](int64_t lo, int64_t hi) {
    for (int64_t plane = lo; plane < hi; ++plane) {
      const T* xp = x + plane * in_plane;
      int64_t o = plane * out_plane;
      for (int64_t a = 0; a < g3.out[0]; ++a) {
        for (int64_t b = 0; b < g3.out[1]; ++b) {
          for (int64_t c = 0; c < g3.out[2]; ++c, ++o) {
            C best = std::numeric_limits<C>::lowest();
            int64_t best_at = -1;
            for (int64_t kd = win.d.lo[a]; kd < win.d.hi[a]; ++kd) {
              const int64_t zd = win.d.start[a] + kd * dd;
              for (int64_t kh = win.h.lo[b]; kh < win.h.hi[b]; ++kh) {
                const int64_t zh = win.h.start[b] + kh * dh;
                const T* row = xp + (zd * ih + zh) * iw;
                for (int64_t kw = win.w.lo[c]; kw < win.w.hi[c]; ++kw) {
                  const int64_t zw = win.w.start[c] + kw * dw;
                  const C v = static_cast<C>(row[zw]);
                  if (v > best || best_at < 0) {
                    best = v;
                    best_at = column_major ? (zw * ih + zh) * id + zd : (zd * ih + zh) * iw + zw;
                  }
                }
              }
            }
            y[o] = static_cast<T>(best);
            indices[o] = best_at < 0 ? -1 : plane * in_plane + best_at;
          }
        }
      }
    }
  });
}

// Max/average/Lp pooling one output row at a time, tap-major: for each valid
// (kd, kh) input row and each kernel column, a strided sweep over the output
// columns that tap reaches. No per-element bounds checks in the inner loop.
template <PoolKind kKind, typename T>
void pool_rows(const PoolGeometry& g3, bool count_include_pad, double p, const T* x, T* y, int threads) {
  using C = ComputeOf<T>;
  const Windows3 win(g3);
  const int64_t ih = g3.in[1], iw = g3.in[2], id = g3.in[0], ow = g3.out[2];
  const int64_t in_plane = id * ih * iw, out_plane = g3.out[0] * g3.out[1] * ow;
  const int64_t dd = g3.dilations[0], dh = g3.dilations[1], sw = g3.strides[2];
  std::vector<int64_t> col_off, col_lo, col_hi;  // per kernel column
  for (int64_t kw = 0; kw < g3.kernel[2]; ++kw) {
    const int64_t off = kw * g3.dilations[2] - g3.pad_begin[2];
    // output columns o with 0 <= o * sw + off < iw
    const int64_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
    const int64_t hi = off >= iw ? 0 : (iw - 1 - off) / sw + 1;
    col_off.push_back(off);
    col_lo.push_back(std::min(lo, ow));
    col_hi.push_back(std::max(std::min(hi, ow), std::min(lo, ow)));
  }
  const C init = kKind == PoolKind::kMax ? std::numeric_limits<C>::lowest() : C(0);
  // p only matters to LpPool (float types); Max/Average pass p = 0, whose 1/p must not reach an integer C.
  const bool lp = kKind == PoolKind::kLp && p != 0.0;
  const C pc = lp ? static_cast<C>(p) : C(0), inv_p = lp ? static_cast<C>(1.0 / p) : C(0);
  const int64_t window = g3.kernel[0] * g3.kernel[1] * g3.kernel[2];
  parallel_for(g3.batch * g3.channels, threads, out_plane * window, [&](int64_t lo, int64_t hi) {
    std::vector<C> acc(static_cast<size_t>(ow));
    C* ap = acc.data();
    for (int64_t plane = lo; plane < hi; ++plane) {
      const T* xp = x + plane * in_plane;
      T* yrow = y + plane * out_plane;
      for (int64_t a = 0; a < g3.out[0]; ++a) {
        for (int64_t b = 0; b < g3.out[1]; ++b, yrow += ow) {
          std::fill(ap, ap + ow, init);
          for (int64_t kd = win.d.lo[a]; kd < win.d.hi[a]; ++kd) {
            const int64_t zd = win.d.start[a] + kd * dd;
            for (int64_t kh = win.h.lo[b]; kh < win.h.hi[b]; ++kh) {
              const T* row = xp + (zd * ih + win.h.start[b] + kh * dh) * iw;
              for (size_t k = 0; k < col_off.size(); ++k) {
                const T* r = row + col_off[k];
                for (int64_t o = col_lo[k]; o < col_hi[k]; ++o) {
                  const C v = static_cast<C>(r[o * sw]);
                  if constexpr (kKind == PoolKind::kMax) {
                    ap[o] = std::max(ap[o], v);
                  } else if constexpr (kKind == PoolKind::kAverage) {
                    ap[o] += v;
                  } else {
                    ap[o] += pc == C(2) ? v * v : pc == C(1) ? std::abs(v) : std::pow(std::abs(v), pc);
                  }
                }
              }
            }
          }
          const int64_t rows = (win.d.hi[a] - win.d.lo[a]) * (win.h.hi[b] - win.h.lo[b]);
          const int64_t padded_rows = win.d.padded_count[a] * win.h.padded_count[b];
          for (int64_t c = 0; c < ow; ++c) {
            if constexpr (kKind == PoolKind::kMax) {
              yrow[c] = static_cast<T>(ap[c]);
            } else if constexpr (kKind == PoolKind::kAverage) {
              const int64_t divisor =
                  count_include_pad ? padded_rows * win.w.padded_count[c] : rows * (win.w.hi[c] - win.w.lo[c]);
              yrow[c] = static_cast<T>(divisor > 0 ? ap[c] / static_cast<C>(divisor) : C(0));
            } else {
              yrow[c] = static_cast<T>(pc == C(2) ? std::sqrt(ap[c]) : std::pow(ap[c], inv_p));
            }
          }
        }
      }
    }
  });
}

template <typename T>
void pool_loops(const PoolGeometry& g3, const PoolAttrs& attrs, PoolKind kind, double p, const T* x, T* y,
                int64_t* indices, int threads) {
  if (indices) {
    max_pool_with_indices<T>(g3, attrs.storage_order != 0, x, y, indices, threads);
  } else if (kind == PoolKind::kMax) {
    pool_rows<PoolKind::kMax, T>(g3, false, p, x, y, threads);
  } else if constexpr (!std::is_integral_v<T>) {
    if (kind == PoolKind::kAverage) {
      pool_rows<PoolKind::kAverage, T>(g3, attrs.count_include_pad, p, x, y, threads);
    } else {
      pool_rows<PoolKind::kLp, T>(g3, false, p, x, y, threads);
    }
  }
}

// Global pools reduce each contiguous (n, c) plane.
template <typename T>
void global_pool(PoolKind kind, double p, const T* x, T* y, int64_t planes, int64_t plane, int threads) {
  using C = ComputeOf<T>;
  const C pc = static_cast<C>(p);
  parallel_for(planes, threads, plane, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const T* xp = x + i * plane;
      if (kind == PoolKind::kMax) {
        C best = std::numeric_limits<C>::lowest();
        for (int64_t j = 0; j < plane; ++j) best = std::max(best, static_cast<C>(xp[j]));
        y[i] = static_cast<T>(best);
      } else if (kind == PoolKind::kAverage) {
        C sum = 0;
        for (int64_t j = 0; j < plane; ++j) sum += static_cast<C>(xp[j]);
        y[i] = static_cast<T>(plane > 0 ? sum / static_cast<C>(plane) : C(0));
      } else {
        C sum = 0;
        for (int64_t j = 0; j < plane; ++j) {
          C v = static_cast<C>(xp[j]);
          if constexpr (std::is_signed_v<C>) v = std::abs(v);  // clang: abs of an unsigned type is an error
          sum += pc == C(2) ? v * v : std::pow(v, pc);
        }
        y[i] = static_cast<T>(std::pow(sum, static_cast<C>(1.0 / p)));
      }
    }
  });
}

// `p` of LpPool/GlobalLpPool: a float attribute in opset 1, an int afterwards.
double lp_order(const graph::Node& node) {
  auto it = node.attributes.find("p");
  if (it == node.attributes.end()) return 2.0;
  if (const auto* i = std::get_if<int64_t>(&it->second)) return static_cast<double>(*i);
  if (const auto* f = std::get_if<float>(&it->second)) return static_cast<double>(*f);
  throw_status(invalid_model(node.label() + ": attribute p must be a number"));
}

class PoolKernel final : public Kernel {
 public:
  PoolKernel(const graph::Node& node, PoolKind kind, bool global)
      : attrs_(node), kind_(kind), global_(global), p_(kind == PoolKind::kLp ? lp_order(node) : 0.0) {}

  Status compute(KernelContext& ctx) override {
    const Tensor& x = ctx.required_input(0);
    const std::string label = ctx.node().label();
    if (kind_ == PoolKind::kLp && !(p_ > 0.0)) return ctx.error("p must be > 0");
    PoolAttrs attrs = attrs_;
    if (global_) {
      if (x.rank() < 3) return ctx.error("input must have rank >= 3 (N, C, spatial...)");
      attrs = PoolAttrs();
      attrs.kernel_shape.assign(x.shape().begin() + 2, x.shape().end());
    } else if (attrs.storage_order != 0 && attrs.storage_order != 1) {
      return ctx.error("storage_order must be 0 or 1");
    }
    const PoolGeometry g = pool_geometry(attrs, x.shape(), label);
    const PoolGeometry g3 = g.as_3d();
    Tensor& y = ctx.allocate_output(0, x.dtype(), g.output_shape());
    int64_t* indices = nullptr;
    if (kind_ == PoolKind::kMax && ctx.num_outputs() > 1 && ctx.output_wanted(1)) {
      indices = ctx.allocate_output(1, DataType::kInt64, g.output_shape()).data<int64_t>();
    }
    if (y.numel() == 0) return Status::Ok();
    auto run = [&](auto tag) {
      using T = decltype(tag);
      if (global_) {
        global_pool<T>(kind_, p_, x.data<T>(), y.data<T>(), g.batch * g.channels, shape_numel(g.in), ctx.threads());
      } else {
        pool_loops<T>(g3, attrs, kind_, p_, x.data<T>(), y.data<T>(), indices, ctx.threads());
      }
    };
    switch (x.dtype()) {
      case DataType::kFloat32:
        run(float{});
        break;
      case DataType::kFloat64:
        run(double{});
        break;
      case DataType::kFloat16:
        run(Float16{});
        break;
      case DataType::kBFloat16:
        run(BFloat16{});
        break;
      case DataType::kInt8:
        if (kind_ != PoolKind::kMax) return unsupported(label + ": int8 input is only supported by MaxPool");
        run(int8_t{});
        break;
      case DataType::kUInt8:
        if (kind_ != PoolKind::kMax) return unsupported(label + ": uint8 input is only supported by MaxPool");
        run(uint8_t{});
        break;
      default:
        return unsupported(label + ": unsupported input type " + std::string(dtype_name(x.dtype())));
    }
    return Status::Ok();
  }

 private:
  PoolAttrs attrs_;
  PoolKind kind_;
  bool global_;
  double p_;
};

void add_pool(KernelRegistry& r, const std::string& op, int since, PoolKind kind, bool global,
              std::vector<DataType> types) {
  KernelDef def;
  def.op = op;
  def.since = since;
  def.types = std::move(types);
  def.factory = [kind, global](const graph::Node& node) { return std::make_unique<PoolKernel>(node, kind, global); };
  r.add(def);
}

}  // namespace

void register_pool_kernels(KernelRegistry& r) {
  const std::vector<DataType> floats = {DataType::kFloat32, DataType::kFloat64, DataType::kFloat16,
                                        DataType::kBFloat16};
  std::vector<DataType> max_types = floats;
  add_pool(r, "MaxPool", 1, PoolKind::kMax, false, floats);
  max_types.push_back(DataType::kInt8);
  max_types.push_back(DataType::kUInt8);
  add_pool(r, "MaxPool", 12, PoolKind::kMax, false, max_types);
  add_pool(r, "AveragePool", 1, PoolKind::kAverage, false, floats);
  add_pool(r, "LpPool", 1, PoolKind::kLp, false, floats);
  add_pool(r, "GlobalMaxPool", 1, PoolKind::kMax, true, floats);
  add_pool(r, "GlobalAveragePool", 1, PoolKind::kAverage, true, floats);
  add_pool(r, "GlobalLpPool", 1, PoolKind::kLp, true, floats);
  register_pool_extra_kernels(r);
  register_nhwc_pool_kernels(r);
}

}  // namespace deskml::kernels::cpu
