// Shape family, part 1: ops that only change the shape (views sharing the
// input's storage) or describe it. Layout-moving ops are in shape_layout.cpp,
// generators (Constant, Range, Pad...) in shape_fill.cpp.
#include <climits>
#include <set>

#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/shape_util.hpp"

namespace deskml::kernels::cpu {
namespace {

// --- Reshape ----------------------------------------------------------------

template <bool kShapeInput>
Status reshape_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  std::vector<int64_t> spec;
  if (!ints_from_attr_or_input(ctx, "shape", 1, kShapeInput, spec)) {
    return ctx.error(kShapeInput ? "input 1 (shape) is required" : "attribute 'shape' is required");
  }
  const bool allowzero = ctx.node().attr_int("allowzero", 0) != 0;
  Shape out(spec.size());
  int64_t infer = -1;
  int64_t known = 1;
  bool has_zero = false;
  for (size_t i = 0; i < spec.size(); ++i) {
    int64_t v = spec[i];
    if (v == -1) {
      if (infer >= 0) return ctx.error("shape " + shape_to_string(spec) + " has more than one -1");
      infer = static_cast<int64_t>(i);
      continue;
    }
    if (v < -1) return ctx.error("invalid dimension " + std::to_string(v) + " in shape " + shape_to_string(spec));
    if (v == 0) {
      has_zero = true;
      if (!allowzero) {
        if (static_cast<int64_t>(i) >= x.rank()) {
          return ctx.error("shape " + shape_to_string(spec) + " copies dimension " + std::to_string(i) +
                           " (0) but the input " + shape_to_string(x.shape()) + " has rank " +
                           std::to_string(x.rank()));
        }
        v = x.shape()[i];
      }
    }
    if (v > 0 && known > kMaxTensorElements / v) return ctx.error("shape " + shape_to_string(spec) + " is too large");
    known *= v;
    out[i] = v;
  }
  if (allowzero && has_zero && infer >= 0) {
    return ctx.error("shape " + shape_to_string(spec) + " has both 0 and -1 while allowzero is set");
  }
  if (infer >= 0) {
    if (known == 0 || x.numel() % known != 0) {
      return ctx.error("cannot reshape " + shape_to_string(x.shape()) + " to " + shape_to_string(spec));
    }
    out[static_cast<size_t>(infer)] = x.numel() / known;
  } else if (known != x.numel()) {
    return ctx.error("cannot reshape " + shape_to_string(x.shape()) + " (" + std::to_string(x.numel()) +
                     " elements) to " + shape_to_string(spec));
  }
  ctx.set_output(0, x.reshaped(std::move(out)));
  return Status::Ok();
}

// --- Flatten ----------------------------------------------------------------

Status flatten_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  const int64_t r = x.rank();
  int64_t axis = ctx.node().attr_int("axis", 1);
  if (axis < -r || axis > r) {
    return ctx.error("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(r));
  }
  if (axis < 0) axis += r;
  const int64_t rows = dims_product(x.shape(), 0, static_cast<size_t>(axis));
  const int64_t cols = dims_product(x.shape(), static_cast<size_t>(axis), x.shape().size());
  ctx.set_output(0, x.reshaped({rows, cols}));
  return Status::Ok();
}

// --- Squeeze / Unsqueeze ----------------------------------------------------

template <bool kAxesInput>
Status squeeze_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  const int64_t r = x.rank();
  std::vector<int64_t> axes;
  // An empty axes list squeezes every unit dim, as when axes is absent (onnxruntime does the same).
  const bool given = ints_from_attr_or_input(ctx, "axes", 1, kAxesInput, axes) && !axes.empty();
  std::vector<bool> drop(static_cast<size_t>(r), false);
  if (!given) {
    for (int64_t d = 0; d < r; ++d) drop[static_cast<size_t>(d)] = x.shape()[static_cast<size_t>(d)] == 1;
  } else {
    for (int64_t a : axes) {
      if (a < -r || a >= r) {
        return ctx.error("axis " + std::to_string(a) + " is out of range for rank " + std::to_string(r));
      }
      const size_t d = static_cast<size_t>(a < 0 ? a + r : a);
      if (x.shape()[d] != 1) {
        return ctx.error("cannot squeeze axis " + std::to_string(a) + " of shape " + shape_to_string(x.shape()) +
                         ": its size is not 1");
      }
      drop[d] = true;
    }
  }
  Shape out;
  for (size_t d = 0; d < drop.size(); ++d) {
    if (!drop[d]) out.push_back(x.shape()[d]);
  }
  ctx.set_output(0, x.reshaped(std::move(out)));
  return Status::Ok();
}

template <bool kAxesInput>
Status unsqueeze_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  std::vector<int64_t> axes;
  if (!ints_from_attr_or_input(ctx, "axes", 1, kAxesInput, axes)) {
    return ctx.error(kAxesInput ? "input 1 (axes) is required" : "attribute 'axes' is required");
  }
  const int64_t out_rank = x.rank() + static_cast<int64_t>(axes.size());
  std::vector<bool> inserted(static_cast<size_t>(out_rank), false);
  for (int64_t a : axes) {
    if (a < -out_rank || a >= out_rank) {
      return ctx.error("axis " + std::to_string(a) + " is out of range for output rank " + std::to_string(out_rank));
    }
    const size_t d = static_cast<size_t>(a < 0 ? a + out_rank : a);
    if (inserted[d]) return ctx.error("axis " + std::to_string(a) + " is repeated");
    inserted[d] = true;
  }
  Shape out(static_cast<size_t>(out_rank));
  size_t src = 0;
  for (size_t d = 0; d < out.size(); ++d) out[d] = inserted[d] ? 1 : x.shape()[src++];
  ctx.set_output(0, x.reshaped(std::move(out)));
  return Status::Ok();
}

// --- Shape / Size / Identity / Dropout --------------------------------------

Status shape_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  const int64_t r = x.rank();
  int64_t start = ctx.node().attr_int("start", 0);
  int64_t end = ctx.node().attr_int("end", r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, 0, r);
  const int64_t n = std::max<int64_t>(end - start, 0);
  Tensor& out = ctx.allocate_output(0, DataType::kInt64, {n});
  int64_t* p = out.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) p[i] = x.shape()[static_cast<size_t>(start + i)];
  return Status::Ok();
}

Status size_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  ctx.allocate_output(0, DataType::kInt64, {}).data<int64_t>()[0] = x.numel();
  return Status::Ok();
}

Status identity_kernel(KernelContext& ctx) {
  const Value* v = ctx.input_value(0);
  ctx.set_output_value(0, v != nullptr ? *v : Value{});
  return Status::Ok();
}

Status dropout_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  double ratio = ctx.node().attr_float("ratio", 0.5f);
  bool training = false;
  if (ctx.opset() >= 12) {
    ratio = 0.5;
    if (const Tensor* r = ctx.input(1)) {
      if (r->numel() != 1 || !dtype_is_float(r->dtype())) return ctx.error("ratio must be a floating-point scalar");
      ratio = r->float_at(0);
    }
    if (const Tensor* t = ctx.input(2)) {
      if (t->numel() != 1 || t->dtype() != DataType::kBool) return ctx.error("training_mode must be a bool scalar");
      training = t->data<bool>()[0];
    }
  }
  // Before opset 7 Dropout had an is_test attribute defaulting to training; like
  // every inference engine we treat those models as inference.
  if (training && ratio != 0.0) {
    return unsupported(ctx.node().label() + ": Dropout in training mode (random masks) is not supported");
  }
  if (ratio < 0.0 || ratio >= 1.0) return ctx.error("ratio must be in [0, 1), got " + std::to_string(ratio));
  ctx.set_output(0, x);
  if (ctx.output_wanted(1)) {
    if (ctx.opset() >= 10) {
      Tensor& mask = ctx.allocate_output(1, DataType::kBool, x.shape());
      std::fill_n(mask.data<bool>(), mask.numel(), true);
    } else {  // opset 7..9: the mask has the input's type
      Tensor& mask = ctx.allocate_output(1, x.dtype(), x.shape());
      dispatch_all(x.dtype(), "Dropout", [&](auto tag) {
        using T = decltype(tag);
        if constexpr (std::is_same_v<T, std::string>) {
          throw_status(ctx.error("string input is not supported"));
        } else {
          std::fill_n(mask.data<T>(), mask.numel(), convert_scalar<T>(1));
        }
      });
    }
  }
  return Status::Ok();
}

}  // namespace

void register_shape_kernels(KernelRegistry& r) {
  using types::kAll;
  r.add("Reshape", 1, 4, kAll, reshape_kernel<false>);
  r.add("Reshape", 5, INT_MAX, kAll, reshape_kernel<true>);
  r.add("Flatten", 1, INT_MAX, kAll, flatten_kernel);
  r.add("Squeeze", 1, 12, kAll, squeeze_kernel<false>);
  r.add("Squeeze", 13, INT_MAX, kAll, squeeze_kernel<true>);
  r.add("Unsqueeze", 1, 12, kAll, unsqueeze_kernel<false>);
  r.add("Unsqueeze", 13, INT_MAX, kAll, unsqueeze_kernel<true>);
  r.add("Shape", 1, INT_MAX, kAll, shape_kernel);
  r.add("Size", 1, INT_MAX, kAll, size_kernel);
  r.add("Identity", 1, INT_MAX, kAll, identity_kernel);
  r.add("Dropout", 1, INT_MAX, types::kFloat, dropout_kernel);
  register_shape_layout_kernels(r);
  register_shape_fill_kernels(r);
}

}  // namespace deskml::kernels::cpu
