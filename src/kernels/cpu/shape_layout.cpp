// Shape family, part 2: ops that move elements around (Transpose, Concat,
// Split, Slice, Expand, Tile, DepthToSpace, SpaceToDepth). All of them are a
// strided copy or block copies on the element's storage type.
#include <climits>

#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/matmul_loops.hpp"
#include "kernels/cpu/shape_util.hpp"

namespace deskml::kernels::cpu {
namespace {

// --- Transpose --------------------------------------------------------------

Status transpose_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  const int64_t r = x.rank();
  std::vector<int64_t> perm = ctx.node().attr_ints("perm");
  if (!ctx.node().has_attr("perm")) {
    perm.resize(static_cast<size_t>(r));
    for (int64_t i = 0; i < r; ++i) perm[static_cast<size_t>(i)] = r - 1 - i;
  }
  if (static_cast<int64_t>(perm.size()) != r) {
    return ctx.error("perm " + shape_to_string(perm) + " does not match input rank " + std::to_string(r));
  }
  std::vector<bool> seen(static_cast<size_t>(r), false);
  for (int64_t p : perm) {
    if (p < 0 || p >= r || seen[static_cast<size_t>(p)]) {
      return ctx.error("perm " + shape_to_string(perm) + " is not a permutation of 0.." + std::to_string(r - 1));
    }
    seen[static_cast<size_t>(p)] = true;
  }
  const auto in_strides = shape_strides(x.shape());
  Shape out_shape(perm.size());
  std::vector<int64_t> strides(perm.size());
  bool identity = true;
  for (size_t i = 0; i < perm.size(); ++i) {
    out_shape[i] = x.shape()[static_cast<size_t>(perm[i])];
    strides[i] = in_strides[static_cast<size_t>(perm[i])];
    identity = identity && perm[i] == static_cast<int64_t>(i);
  }
  if (identity) {
    ctx.set_output(0, x);
    return Status::Ok();
  }
  if (x.dtype() == DataType::kFloat32) {  // has a tiled path for NCHW <-> NHWC-like transposes
    ctx.set_output(0, permute_tensor(x, perm, ctx.threads()));
    return Status::Ok();
  }
  Tensor& out = ctx.allocate_output(0, x.dtype(), out_shape);
  strided_copy(x.dtype(), out.raw_data(), x.raw_data(), out_shape, strides, ctx.threads());
  return Status::Ok();
}

// --- Concat -----------------------------------------------------------------

Status concat_kernel(KernelContext& ctx) {
  std::vector<const Tensor*> ins;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) ins.push_back(&ctx.required_input(i));
  if (ins.empty()) return ctx.error("needs at least one input");
  const Tensor& first = *ins[0];
  const int64_t r = first.rank();
  if (r == 0) return ctx.error("cannot concatenate scalars");
  if (ctx.opset() >= 4 && !ctx.node().has_attr("axis")) return ctx.error("attribute 'axis' is required");
  const size_t axis = static_cast<size_t>(checked_axis(ctx, ctx.node().attr_int("axis", 1), r));
  Shape out_shape = first.shape();
  out_shape[axis] = 0;
  for (const Tensor* t : ins) {
    if (t->dtype() != first.dtype() || t->rank() != r) {
      return ctx.error("input " + t->description() + " does not match " + first.description());
    }
    for (size_t d = 0; d < out_shape.size(); ++d) {
      if (d != axis && t->shape()[d] != first.shape()[d]) {
        return ctx.error("input shapes " + shape_to_string(first.shape()) + " and " + shape_to_string(t->shape()) +
                         " differ outside axis " + std::to_string(axis));
      }
    }
    out_shape[axis] += t->shape()[axis];
  }
  Tensor& out = ctx.allocate_output(0, first.dtype(), out_shape);
  if (out.numel() == 0) return Status::Ok();
  const int64_t outer = dims_product(out_shape, 0, axis);
  const int64_t out_inner = out.numel() / outer;
  std::vector<int64_t> inner(ins.size()), offset(ins.size());
  int64_t off = 0;
  for (size_t k = 0; k < ins.size(); ++k) {
    inner[k] = ins[k]->numel() / outer;
    offset[k] = off;
    off += inner[k];
  }
  const int64_t n = static_cast<int64_t>(ins.size());
  dispatch_storage(first.dtype(), [&](auto tag) {
    using S = decltype(tag);
    S* dst = storage_ptr<S>(out);
    // Inputs the executor had written into the output already (zero-copy
    // Concat, runtime/concat_places.hpp) stay as they are.
    std::vector<bool> in_place(ins.size(), false);
    size_t copies = ins.size();
    for (size_t k = 0; k < ins.size() && outer == 1; ++k) {
      in_place[k] = storage_ptr<S>(*ins[k]) == dst + offset[k];
      copies -= in_place[k] ? 1 : 0;
    }
    if (copies == 0) return;
    parallel_for(outer * n, ctx.threads(), out_inner / n + 1, [&](int64_t lo, int64_t hi) {
      for (int64_t u = lo; u < hi; ++u) {
        const int64_t o = u / n;
        const size_t k = static_cast<size_t>(u % n);
        if (in_place[k]) continue;
        const S* src = storage_ptr<S>(*ins[k]) + o * inner[k];
        std::copy_n(src, inner[k], dst + o * out_inner + offset[k]);
      }
    });
  });
  return Status::Ok();
}

// --- Split ------------------------------------------------------------------

Status split_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  const int64_t r = x.rank();
  if (r == 0) return ctx.error("cannot split a scalar");
  const size_t axis = static_cast<size_t>(checked_axis(ctx, ctx.node().attr_int("axis", 0), r));
  const int64_t dim = x.shape()[axis];
  const int64_t n_out = static_cast<int64_t>(ctx.num_outputs());
  std::vector<int64_t> sizes;
  bool given = false;
  if (ctx.opset() >= 13) {
    given = ints_from_attr_or_input(ctx, "split", 1, true, sizes);
  } else {
    given = ints_from_attr_or_input(ctx, "split", 1, false, sizes);
    if (!given && ctx.opset() < 2) given = ints_from_attr_or_input(ctx, "split", 1, true, sizes);
  }
  if (given && sizes.empty()) given = false;  // an empty split input means "not given"
  if (given && ctx.node().has_attr("num_outputs")) {
    return ctx.error("'split' and 'num_outputs' cannot both be given");
  }
  if (!given) {
    const int64_t parts = ctx.node().attr_int("num_outputs", n_out);
    if (parts != n_out || parts <= 0) {
      return ctx.error("num_outputs " + std::to_string(parts) + " does not match the node's " +
                       std::to_string(n_out) + " outputs");
    }
    if (dim % parts != 0 && ctx.opset() < 18) {
      return ctx.error("axis of size " + std::to_string(dim) + " cannot be split into " + std::to_string(parts) +
                       " equal parts");
    }
    // Opset 18: ceil-sized chunks, the last one smaller.
    const int64_t chunk = (dim + parts - 1) / parts;
    int64_t left = dim;
    for (int64_t i = 0; i < parts; ++i) {
      sizes.push_back(std::min(chunk, left));
      left -= sizes.back();
    }
  }
  if (static_cast<int64_t>(sizes.size()) != n_out) {
    return ctx.error("split has " + std::to_string(sizes.size()) + " sizes for " + std::to_string(n_out) +
                     " outputs");
  }
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0 || s > dim) return ctx.error("split size " + std::to_string(s) + " is outside 0.." + std::to_string(dim));
    total += s;
  }
  if (total != dim) {
    return ctx.error("split sizes " + shape_to_string(sizes) + " do not add up to the axis size " +
                     std::to_string(dim));
  }
  const int64_t outer = dims_product(x.shape(), 0, axis);
  const int64_t inner = dims_product(x.shape(), axis + 1, x.shape().size());
  const int64_t in_row = dim * inner;
  int64_t offset = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const int64_t block = sizes[i] * inner;
    const int64_t begin = offset;
    offset += block;
    if (!ctx.output_wanted(i)) continue;
    Shape shape = x.shape();
    shape[axis] = sizes[i];
    Tensor& out = ctx.allocate_output(i, x.dtype(), shape);
    if (out.numel() == 0) continue;
    dispatch_storage(x.dtype(), [&](auto tag) {
      using S = decltype(tag);
      const S* src = storage_ptr<S>(x) + begin;
      S* dst = storage_ptr<S>(out);
      parallel_for(outer, ctx.threads(), block, [&](int64_t lo, int64_t hi) {
        for (int64_t o = lo; o < hi; ++o) std::copy_n(src + o * in_row, block, dst + o * block);
      });
    });
  }
  return Status::Ok();
}

// --- Slice ------------------------------------------------------------------

template <bool kInputs>
Status slice_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  const int64_t r = x.rank();
  std::vector<int64_t> starts, ends, axes, steps;
  if (!ints_from_attr_or_input(ctx, "starts", 1, kInputs, starts) ||
      !ints_from_attr_or_input(ctx, "ends", 2, kInputs, ends)) {
    return ctx.error("starts and ends are required");
  }
  if (starts.size() != ends.size()) return ctx.error("starts and ends have different lengths");
  if (!ints_from_attr_or_input(ctx, "axes", 3, kInputs, axes)) {
    axes.resize(starts.size());
    for (size_t i = 0; i < axes.size(); ++i) axes[i] = static_cast<int64_t>(i);
  }
  if (!kInputs || !ints_from_attr_or_input(ctx, "steps", 4, true, steps)) steps.assign(starts.size(), 1);
  if (axes.size() != starts.size() || steps.size() != starts.size()) {
    return ctx.error("starts, ends, axes and steps must have the same length");
  }
  Shape out_shape = x.shape();
  std::vector<int64_t> start(static_cast<size_t>(r), 0), step(static_cast<size_t>(r), 1);
  std::vector<bool> seen(static_cast<size_t>(r), false);
  for (size_t i = 0; i < axes.size(); ++i) {
    if (axes[i] < -r || axes[i] >= r) {
      return ctx.error("axis " + std::to_string(axes[i]) + " is out of range for rank " + std::to_string(r));
    }
    const size_t a = static_cast<size_t>(axes[i] < 0 ? axes[i] + r : axes[i]);
    if (seen[a]) return ctx.error("axis " + std::to_string(axes[i]) + " is repeated");
    seen[a] = true;
    const int64_t dim = x.shape()[a];
    const int64_t st = steps[i];
    if (st == 0) return ctx.error("step cannot be 0");
    int64_t b = starts[i], e = ends[i];
    if (b < 0) b += dim;
    if (e < 0) e += dim;
    int64_t count = 0;
    if (dim == 0) {
      count = 0;
    } else if (st > 0) {
      b = std::clamp<int64_t>(b, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
      count = e > b ? (e - b - 1) / st + 1 : 0;
    } else {
      b = std::clamp<int64_t>(b, 0, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
      count = b > e ? (st == INT64_MIN ? 1 : (b - e - 1) / (-st) + 1) : 0;
    }
    out_shape[a] = count;
    start[a] = count > 0 ? b : 0;
    step[a] = st;
  }
  Tensor& out = ctx.allocate_output(0, x.dtype(), out_shape);
  if (out.numel() == 0) return Status::Ok();
  const auto in_strides = shape_strides(x.shape());
  int64_t base = 0;
  std::vector<int64_t> strides(static_cast<size_t>(r));
  for (size_t d = 0; d < strides.size(); ++d) {
    base += start[d] * in_strides[d];
    strides[d] = out_shape[d] > 1 ? step[d] * in_strides[d] : 0;
  }
  const auto* src = static_cast<const char*>(x.raw_data()) + base * static_cast<int64_t>(dtype_size(x.dtype()));
  strided_copy(x.dtype(), out.raw_data(), src, out_shape, strides, ctx.threads());
  return Status::Ok();
}

// --- Expand / Tile ----------------------------------------------------------

Status expand_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  std::vector<int64_t> shape;
  if (!ints_from_attr_or_input(ctx, "shape", 1, true, shape)) return ctx.error("input 1 (shape) is required");
  for (int64_t d : shape) {
    if (d < 0) return ctx.error("negative dimension in shape " + shape_to_string(shape));
  }
  auto out_shape = broadcast_shapes(x.shape(), shape);
  if (!out_shape.ok()) return ctx.error(out_shape.status().message());
  Tensor& out = ctx.allocate_output(0, x.dtype(), *out_shape);
  if (out.numel() == 0) return Status::Ok();
  strided_copy(x.dtype(), out.raw_data(), x.raw_data(), *out_shape, broadcast_strides(x.shape(), *out_shape),
               ctx.threads());
  return Status::Ok();
}

Status tile_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  const int64_t r = x.rank();
  std::vector<int64_t> repeats;
  if (ctx.opset() < 6) {  // Tile-1: scalar `tiles` along scalar `axis`
    const int64_t tiles = scalar_int(ctx, ctx.required_input(1), "tiles");
    const int64_t axis = checked_axis(ctx, scalar_int(ctx, ctx.required_input(2), "axis"), r);
    repeats.assign(static_cast<size_t>(r), 1);
    if (r > 0) repeats[static_cast<size_t>(axis)] = tiles;
  } else if (!ints_from_attr_or_input(ctx, "repeats", 1, true, repeats)) {
    return ctx.error("input 1 (repeats) is required");
  }
  if (static_cast<int64_t>(repeats.size()) != r) {
    return ctx.error("repeats " + shape_to_string(repeats) + " does not match input rank " + std::to_string(r));
  }
  // out viewed as [r0, d0, r1, d1, ...] reads x with strides [0, s0, 0, s1, ...].
  const auto in_strides = shape_strides(x.shape());
  Shape out_shape(static_cast<size_t>(r)), view;
  std::vector<int64_t> strides;
  for (size_t d = 0; d < repeats.size(); ++d) {
    if (repeats[d] < 0) return ctx.error("negative repeat " + std::to_string(repeats[d]));
    out_shape[d] = checked_mul(ctx, repeats[d], x.shape()[d]);
    view.insert(view.end(), {repeats[d], x.shape()[d]});
    strides.insert(strides.end(), {0, in_strides[d]});
  }
  Tensor& out = ctx.allocate_output(0, x.dtype(), out_shape);
  if (out.numel() == 0) return Status::Ok();
  strided_copy(x.dtype(), out.raw_data(), x.raw_data(), view, strides, ctx.threads());
  return Status::Ok();
}

// --- DepthToSpace / SpaceToDepth --------------------------------------------

struct Nchw {
  int64_t n, c, h, w, b;
};

Nchw read_nchw(const KernelContext& ctx, const Tensor& x) {
  if (x.rank() != 4) throw_status(ctx.error("input must be 4-D (N,C,H,W), got " + shape_to_string(x.shape())));
  if (!ctx.node().has_attr("blocksize")) throw_status(ctx.error("attribute 'blocksize' is required"));
  const int64_t b = ctx.node().attr_int("blocksize", 0);
  if (b <= 0) throw_status(ctx.error("blocksize must be positive, got " + std::to_string(b)));
  return {x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3], b};
}

Status depth_to_space_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  const auto [n, c, h, w, b] = read_nchw(ctx, x);
  if (c % b != 0 || (c / b) % b != 0) {
    return ctx.error("channels (" + std::to_string(c) + ") must be a multiple of blocksize^2");
  }
  const std::string mode = ctx.opset() >= 11 ? ctx.node().attr_string("mode", "DCR") : "DCR";
  const int64_t co = c / (b * b), hw = h * w;
  // Output viewed as [N, C', H, b1, W, b2].
  const Shape view = {n, co, h, b, w, b};
  std::vector<int64_t> strides;
  if (mode == "DCR") {  // input [N, b1, b2, C', H, W]
    strides = {c * hw, hw, w, b * co * hw, 1, co * hw};
  } else if (mode == "CRD") {  // input [N, C', b1, b2, H, W]
    strides = {c * hw, b * b * hw, w, b * hw, 1, hw};
  } else {
    return ctx.error("unknown mode '" + mode + "' (expected DCR or CRD)");
  }
  Tensor& out = ctx.allocate_output(0, x.dtype(), {n, co, checked_mul(ctx, h, b), checked_mul(ctx, w, b)});
  strided_copy(x.dtype(), out.raw_data(), x.raw_data(), view, strides, ctx.threads());
  return Status::Ok();
}

Status space_to_depth_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  const auto [n, c, h, w, b] = read_nchw(ctx, x);
  if (h % b != 0 || w % b != 0) {
    return ctx.error("height and width " + shape_to_string({h, w}) + " must be multiples of blocksize " +
                     std::to_string(b));
  }
  const int64_t ho = h / b, wo = w / b;
  // Output viewed as [N, b1, b2, C, H', W'] reading input [N, C, H', b1, W', b2].
  const Shape view = {n, b, b, c, ho, wo};
  const std::vector<int64_t> strides = {c * h * w, w, 1, h * w, b * w, b};
  Tensor& out = ctx.allocate_output(0, x.dtype(), {n, checked_mul(ctx, checked_mul(ctx, c, b), b), ho, wo});
  strided_copy(x.dtype(), out.raw_data(), x.raw_data(), view, strides, ctx.threads());
  return Status::Ok();
}

}  // namespace

void register_shape_layout_kernels(KernelRegistry& r) {
  using types::kAll;
  r.add("Transpose", 1, INT_MAX, kAll, transpose_kernel);
  r.add("Concat", 1, INT_MAX, kAll, concat_kernel);
  r.add("Split", 1, 12, kAll, split_kernel);
  r.add("Split", 13, INT_MAX, kAll, split_kernel);
  r.add("Slice", 1, 9, kAll, slice_kernel<false>);
  r.add("Slice", 10, INT_MAX, kAll, slice_kernel<true>);
  r.add("Expand", 8, INT_MAX, kAll, expand_kernel);
  r.add("Tile", 1, 5, kAll, tile_kernel);
  r.add("Tile", 6, INT_MAX, kAll, tile_kernel);
  r.add("DepthToSpace", 1, INT_MAX, kAll, depth_to_space_kernel);
  r.add("SpaceToDepth", 1, INT_MAX, kAll, space_to_depth_kernel);
}

}  // namespace deskml::kernels::cpu
