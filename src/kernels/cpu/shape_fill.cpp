// Shape family, part 3: ops that generate values (Constant, ConstantOfShape,
// Range, EyeLike) or fill part of the output (Pad, Trilu).
#include <climits>
#include <cmath>

#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/shape_util.hpp"

namespace deskml::kernels::cpu {
namespace {

// --- Pad --------------------------------------------------------------------

enum class PadMode { kConstant, kReflect, kEdge, kWrap };

// Index in [0, n) that output position i (relative to the input's start) reads; -1 = constant.
int64_t pad_source(int64_t i, int64_t n, PadMode mode) {
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case PadMode::kConstant: return -1;
    case PadMode::kEdge: return i < 0 ? 0 : n - 1;
    case PadMode::kWrap: return ((i % n) + n) % n;
    case PadMode::kReflect: {
      if (n == 1) return 0;
      const int64_t period = 2 * (n - 1);
      int64_t m = ((i % period) + period) % period;
      return m < n ? m : period - m;
    }
  }
  return -1;
}

Status pad_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  const int64_t r = x.rank();
  const std::string mode_name = ctx.node().attr_string("mode", "constant");
  PadMode mode;
  if (mode_name == "constant") mode = PadMode::kConstant;
  else if (mode_name == "reflect") mode = PadMode::kReflect;
  else if (mode_name == "edge") mode = PadMode::kEdge;
  else if (mode_name == "wrap") mode = PadMode::kWrap;
  else return ctx.error("unknown mode '" + mode_name + "'");

  std::vector<int64_t> pads, axes;
  Tensor fill;  // one element of x's type
  if (ctx.opset() < 11) {
    if (!ints_from_attr_or_input(ctx, ctx.opset() < 2 ? "paddings" : "pads", 0, false, pads)) {
      return ctx.error("attribute 'pads' is required");
    }
    fill = Tensor::scalar<float>(ctx.node().attr_float("value", 0.0f)).cast(x.dtype());
  } else {
    if (!ints_from_attr_or_input(ctx, "pads", 1, true, pads)) return ctx.error("input 1 (pads) is required");
    const Tensor* v = ctx.input(2);
    if (v != nullptr && v->numel() > 0) {
      if (v->numel() != 1) return ctx.error("constant_value must be a scalar");
      fill = v->dtype() == x.dtype() ? *v : v->cast(x.dtype());
    } else {
      fill = Tensor::zeros(x.dtype(), {});
    }
    if (ctx.opset() >= 18) ints_from_attr_or_input(ctx, "axes", 3, true, axes);
  }
  if (axes.empty()) {
    axes.resize(static_cast<size_t>(r));
    for (int64_t d = 0; d < r; ++d) axes[static_cast<size_t>(d)] = d;
  }
  if (pads.size() != 2 * axes.size()) {
    return ctx.error("pads " + shape_to_string(pads) + " must have 2 values per padded axis (" +
                     std::to_string(axes.size()) + " axes)");
  }
  for (int64_t p : pads) {
    if (p < -kMaxTensorElements || p > kMaxTensorElements) return ctx.error("pad " + std::to_string(p) + " is too large");
  }
  std::vector<int64_t> before(static_cast<size_t>(r), 0), after(static_cast<size_t>(r), 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    const size_t a = static_cast<size_t>(checked_axis(ctx, axes[i], r));
    before[a] = pads[i];
    after[a] = pads[i + axes.size()];
  }
  Shape out_shape(static_cast<size_t>(r));
  for (size_t d = 0; d < out_shape.size(); ++d) {
    const int64_t n = x.shape()[d];
    out_shape[d] = n + before[d] + after[d];
    if (out_shape[d] < 0) return ctx.error("pads " + shape_to_string(pads) + " remove more than the input has");
    if (n == 0 && out_shape[d] > 0 && mode != PadMode::kConstant) {
      return ctx.error(mode_name + " padding of an empty axis");
    }
  }
  Tensor& out = ctx.allocate_output(0, x.dtype(), out_shape);
  if (out.numel() == 0) return Status::Ok();
  if (r == 0) {
    copy_all(x, out, 1);
    return Status::Ok();
  }
  // Per-axis source index of every output position (-1 = constant).
  std::vector<std::vector<int64_t>> maps(static_cast<size_t>(r));
  for (size_t d = 0; d < maps.size(); ++d) {
    maps[d].resize(static_cast<size_t>(out_shape[d]));
    for (int64_t o = 0; o < out_shape[d]; ++o) {
      maps[d][static_cast<size_t>(o)] = pad_source(o - before[d], x.shape()[d], mode);
    }
  }
  const auto in_strides = shape_strides(x.shape());
  const size_t last = static_cast<size_t>(r - 1);
  const int64_t inner = out_shape[last];
  const int64_t rows = out.numel() / inner;
  // Output positions [lo, hi) of the last axis read the input contiguously.
  const int64_t lo_in = std::clamp<int64_t>(before[last], 0, inner);
  const int64_t hi_in = std::clamp<int64_t>(before[last] + x.shape()[last], 0, inner);
  const std::vector<int64_t>& lmap = maps[last];
  dispatch_storage(x.dtype(), [&](auto tag) {
    using S = decltype(tag);
    const S* src = storage_ptr<S>(x);
    S* dst = storage_ptr<S>(out);
    const S value = storage_ptr<S>(fill)[0];
    parallel_for(rows, ctx.threads(), inner, [&](int64_t b, int64_t e) {
      for (int64_t row = b; row < e; ++row) {
        S* o = dst + row * inner;
        int64_t off = 0;
        bool constant_row = false;
        int64_t rem = row;
        for (size_t d = last; d-- > 0;) {
          const int64_t i = rem % out_shape[d];
          rem /= out_shape[d];
          const int64_t s = maps[d][static_cast<size_t>(i)];
          if (s < 0) {
            constant_row = true;
            break;
          }
          off += s * in_strides[d];
        }
        if (constant_row) {
          std::fill_n(o, inner, value);
          continue;
        }
        const S* in = src + off;
        for (int64_t k = 0; k < lo_in; ++k) o[k] = lmap[static_cast<size_t>(k)] < 0 ? value : in[lmap[static_cast<size_t>(k)]];
        if (hi_in > lo_in) std::copy_n(in + (lo_in - before[last]), hi_in - lo_in, o + lo_in);
        for (int64_t k = std::max(hi_in, lo_in); k < inner; ++k) {
          o[k] = lmap[static_cast<size_t>(k)] < 0 ? value : in[lmap[static_cast<size_t>(k)]];
        }
      }
    });
  });
  return Status::Ok();
}

// --- Constant / ConstantOfShape ---------------------------------------------

class ConstantKernel final : public Kernel {
 public:
  explicit ConstantKernel(const graph::Node& node) {
    try {
      value_ = build(node);
    } catch (const Error& e) {
      error_ = e.status();
    }
  }
  Status compute(KernelContext& ctx) override {
    if (!error_.ok()) return error_;
    ctx.set_output(0, value_);
    return Status::Ok();
  }

 private:
  static Tensor build(const graph::Node& node) {
    if (const Tensor* t = node.attr_tensor("value")) return *t;
    if (node.has_attr("sparse_value")) throw_status(unsupported(node.label() + ": sparse_value is not supported"));
    if (node.has_attr("value_float")) return Tensor::scalar<float>(node.attr_float("value_float", 0.0f));
    if (node.has_attr("value_floats")) {
      auto v = node.attr_floats("value_floats");
      const int64_t n = static_cast<int64_t>(v.size());
      return Tensor::from_vector<float>(v, {n});
    }
    if (node.has_attr("value_int")) return Tensor::scalar<int64_t>(node.attr_int("value_int", 0));
    if (node.has_attr("value_ints")) {
      auto v = node.attr_ints("value_ints");
      const int64_t n = static_cast<int64_t>(v.size());
      return Tensor::from_vector<int64_t>(v, {n});
    }
    if (node.has_attr("value_string")) return Tensor::scalar<std::string>(node.attr_string("value_string"));
    if (node.has_attr("value_strings")) {
      auto v = node.attr_strings("value_strings");
      const int64_t n = static_cast<int64_t>(v.size());
      return Tensor::from_vector<std::string>(v, {n});
    }
    throw_status(invalid_model(node.label() + ": Constant has no value attribute"));
  }

  Tensor value_;
  Status error_;
};

Status constant_of_shape_kernel(KernelContext& ctx) {
  std::vector<int64_t> shape;
  if (!ints_from_attr_or_input(ctx, "shape", 0, true, shape)) return ctx.error("input 0 (shape) is required");
  for (int64_t d : shape) {
    if (d < 0) return ctx.error("negative dimension in shape " + shape_to_string(shape));
  }
  Tensor value = Tensor::zeros(DataType::kFloat32, {});
  if (const Tensor* v = ctx.node().attr_tensor("value")) {
    if (v->numel() != 1) return ctx.error("attribute 'value' must hold exactly one element");
    value = *v;
  }
  Tensor& out = ctx.allocate_output(0, value.dtype(), shape);
  dispatch_storage(value.dtype(), [&](auto tag) {
    using S = decltype(tag);
    const S v = storage_ptr<S>(value)[0];
    S* dst = storage_ptr<S>(out);
    parallel_for(out.numel(), ctx.threads(), 1, [&](int64_t lo, int64_t hi) { std::fill(dst + lo, dst + hi, v); });
  });
  return Status::Ok();
}

// --- Range ------------------------------------------------------------------

Status range_kernel(KernelContext& ctx) {
  const Tensor& start_t = ctx.required_input(0);
  const Tensor& limit_t = ctx.required_input(1);
  const Tensor& delta_t = ctx.required_input(2);
  for (const Tensor* t : {&start_t, &limit_t, &delta_t}) {
    if (t->numel() != 1) return ctx.error("start, limit and delta must be scalars, got " + t->description());
    if (t->dtype() != start_t.dtype()) return ctx.error("start, limit and delta must have the same type");
  }
  return dispatch_numeric(start_t.dtype(), "Range", [&](auto tag) -> Status {
    using T = decltype(tag);
    const T start = start_t.data<T>()[0], limit = limit_t.data<T>()[0], delta = delta_t.data<T>()[0];
    if (delta == T{0}) return ctx.error("delta cannot be 0");
    int64_t n = 0;
    if constexpr (std::is_floating_point_v<T>) {
      const double count = std::ceil((static_cast<double>(limit) - static_cast<double>(start)) / delta);
      if (!std::isfinite(count)) return ctx.error("start, limit and delta must be finite");
      if (count > static_cast<double>(kMaxTensorElements)) return ctx.error("the range is too large");
      n = count > 0 ? static_cast<int64_t>(count) : 0;
    } else {
      // Exact integer ceil((limit - start) / delta), without overflow.
      __extension__ using i128 = __int128;
      const i128 diff = static_cast<i128>(limit) - static_cast<i128>(start);
      const i128 d = delta;
      i128 q = diff / d;
      if (diff % d != 0 && ((diff > 0) == (d > 0))) ++q;
      if (q > kMaxTensorElements) return ctx.error("the range is too large");
      n = q > 0 ? static_cast<int64_t>(q) : 0;
    }
    T* out = ctx.allocate_output(0, start_t.dtype(), {n}).data<T>();
    for (int64_t i = 0; i < n; ++i) {
      if constexpr (std::is_floating_point_v<T>) {
        out[i] = static_cast<T>(start + static_cast<T>(i) * delta);
      } else {
        out[i] = static_cast<T>(static_cast<int64_t>(start) + i * static_cast<int64_t>(delta));
      }
    }
    return Status::Ok();
  });
}

// --- EyeLike / Trilu --------------------------------------------------------

Status eye_like_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  if (x.rank() != 2) return ctx.error("input must be 2-D, got " + shape_to_string(x.shape()));
  DataType dtype = x.dtype();
  if (ctx.node().has_attr("dtype")) {
    auto d = dtype_from_onnx(static_cast<int32_t>(ctx.node().attr_int("dtype", 0)));
    if (!d.ok()) return ctx.error(d.status().message());
    dtype = *d;
  }
  const int64_t rows = x.shape()[0], cols = x.shape()[1];
  const int64_t k = std::clamp<int64_t>(ctx.node().attr_int("k", 0), -rows - 1, cols + 1);
  Tensor& out = ctx.allocate_output(0, dtype, x.shape());
  return dispatch_all(dtype, "EyeLike", [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, std::string>) {
      return ctx.error("EyeLike does not support strings");
    } else {
      T* p = out.data<T>();
      std::fill_n(p, out.numel(), convert_scalar<T>(0));
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t j = i + k;
        if (j >= 0 && j < cols) p[i * cols + j] = convert_scalar<T>(1);
      }
      return Status::Ok();
    }
  });
}

Status trilu_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  if (x.rank() < 2) return ctx.error("input must have rank >= 2, got " + shape_to_string(x.shape()));
  int64_t k = 0;
  if (const Tensor* kt = ctx.input(1)) k = scalar_int(ctx, *kt, "k");
  const bool upper = ctx.node().attr_int("upper", 1) != 0;
  const int64_t rows = x.dim(-2), cols = x.dim(-1);
  k = std::clamp<int64_t>(k, -rows - 1, cols + 1);
  Tensor& out = ctx.allocate_output(0, x.dtype(), x.shape());
  if (out.numel() == 0) return Status::Ok();
  const int64_t mats = x.numel() / (rows * cols);
  dispatch_storage(x.dtype(), [&](auto tag) {
    using S = decltype(tag);
    const S* src = storage_ptr<S>(x);
    S* dst = storage_ptr<S>(out);
    parallel_for(mats * rows, ctx.threads(), cols, [&](int64_t lo, int64_t hi) {
      for (int64_t u = lo; u < hi; ++u) {
        const int64_t i = u % rows;
        const S* in = src + u * cols;
        S* o = dst + u * cols;
        // Keep columns j with j - i >= k (upper) or j - i <= k (lower).
        const int64_t split = std::clamp<int64_t>(upper ? i + k : i + k + 1, 0, cols);
        if (upper) {
          std::fill_n(o, split, S{});
          std::copy(in + split, in + cols, o + split);
        } else {
          std::copy_n(in, split, o);
          std::fill(o + split, o + cols, S{});
        }
      }
    });
  });
  return Status::Ok();
}

}  // namespace

void register_shape_fill_kernels(KernelRegistry& r) {
  using types::kAll;
  r.add("Pad", 1, 10, kAll, pad_kernel);
  r.add("Pad", 11, INT_MAX, kAll, pad_kernel);
  KernelDef constant;
  constant.op = "Constant";
  constant.since = 1;
  constant.type_input = -1;
  constant.factory = [](const graph::Node& node) { return std::make_unique<ConstantKernel>(node); };
  r.add(std::move(constant));
  r.add("ConstantOfShape", 9, INT_MAX, {DataType::kInt64}, constant_of_shape_kernel);
  r.add("Range", 11, INT_MAX,
        {DataType::kFloat32, DataType::kFloat64, DataType::kInt16, DataType::kInt32, DataType::kInt64},
        range_kernel);
  r.add("EyeLike", 9, INT_MAX, kAll, eye_like_kernel);
  r.add("Trilu", 14, INT_MAX, kAll, trilu_kernel);
}

}  // namespace deskml::kernels::cpu
