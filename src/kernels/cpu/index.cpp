// Index family, part 1: gathers and selections (Gather, GatherElements,
// GatherND, Compress, OneHot, NonZero). Scatters, ReverseSequence and CumSum
// are in index_scatter.cpp; Unique and TopK in index_sort.cpp.
#include <climits>

#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/index_util.hpp"

namespace deskml::kernels::cpu {

std::vector<int64_t> index_values(const KernelContext& ctx, const Tensor& t, const char* what) {
  std::vector<int64_t> out(static_cast<size_t>(t.numel()));
  if (t.dtype() == DataType::kInt64) {
    std::copy_n(t.data<int64_t>(), t.numel(), out.begin());
  } else if (t.dtype() == DataType::kInt32) {
    std::copy_n(t.data<int32_t>(), t.numel(), out.begin());
  } else {
    throw_status(ctx.error(std::string(what) + " must be int32 or int64, got " + std::string(dtype_name(t.dtype()))));
  }
  return out;
}

void normalize_indices(const KernelContext& ctx, std::vector<int64_t>& idx, int64_t dim, const char* what) {
  for (int64_t& v : idx) {
    const int64_t original = v;
    if (v < 0) v += dim;
    if (v < 0 || v >= dim) {
      throw_status(ctx.error(std::string(what) + " " + std::to_string(original) + " is out of range for an axis of size " +
                             std::to_string(dim) + " (allowed: " + std::to_string(-dim) + ".." +
                             std::to_string(dim - 1) + ")"));
    }
  }
}

std::vector<int64_t> element_offsets(const KernelContext& ctx, const Shape& data_shape, const Shape& ind_shape,
                                     const std::vector<int64_t>& idx, size_t axis) {
  if (data_shape.size() != ind_shape.size()) {
    throw_status(ctx.error("indices " + shape_to_string(ind_shape) + " must have the same rank as data " +
                           shape_to_string(data_shape)));
  }
  for (size_t d = 0; d < data_shape.size(); ++d) {
    if (d != axis && ind_shape[d] > data_shape[d]) {
      throw_status(ctx.error("indices " + shape_to_string(ind_shape) + " exceed data " + shape_to_string(data_shape) +
                             " outside the axis"));
    }
  }
  const auto dstr = shape_strides(data_shape);
  std::vector<int64_t> offsets(idx.size());
  const size_t r = ind_shape.size();
  std::vector<int64_t> pos(r, 0);
  int64_t base = 0;  // offset of pos, without the axis term
  for (size_t i = 0; i < idx.size(); ++i) {
    offsets[i] = base + idx[i] * dstr[axis];
    for (size_t d = r; d-- > 0;) {
      const int64_t step = d == axis ? 0 : dstr[d];
      base += step;
      if (++pos[d] < ind_shape[d]) break;
      base -= step * ind_shape[d];
      pos[d] = 0;
    }
  }
  return offsets;
}

NdOffsets nd_offsets(const KernelContext& ctx, const Shape& data_shape, const Tensor& indices, int64_t batch_dims) {
  const int64_t r = static_cast<int64_t>(data_shape.size());
  const int64_t q = indices.rank();
  if (r < 1 || q < 1) throw_status(ctx.error("data and indices must have rank >= 1"));
  if (batch_dims < 0 || batch_dims >= std::min(r, q)) {
    throw_status(ctx.error("batch_dims " + std::to_string(batch_dims) + " must be less than the ranks of data and indices"));
  }
  const int64_t m = indices.shape().back();
  if (m < 1 || m > r - batch_dims) {
    throw_status(ctx.error("the last dimension of indices (" + std::to_string(m) + ") must be in 1.." +
                           std::to_string(r - batch_dims)));
  }
  const size_t b = static_cast<size_t>(batch_dims);
  for (size_t d = 0; d < b; ++d) {
    if (indices.shape()[d] != data_shape[d]) {
      throw_status(ctx.error("batch dimensions of indices " + shape_to_string(indices.shape()) + " and data " +
                             shape_to_string(data_shape) + " differ"));
    }
  }
  const auto idx = index_values(ctx, indices, "indices");
  const auto dstr = shape_strides(data_shape);
  NdOffsets res;
  res.slice = dims_product(data_shape, b + static_cast<size_t>(m), data_shape.size());
  const int64_t batch_stride = dims_product(data_shape, b, data_shape.size());
  const int64_t tuples = static_cast<int64_t>(idx.size()) / m;
  const int64_t batches = dims_product(data_shape, 0, b);
  const int64_t per_batch = batches > 0 ? tuples / batches : 0;
  res.offsets.resize(static_cast<size_t>(tuples));
  for (int64_t t = 0; t < tuples; ++t) {
    int64_t off = per_batch > 0 ? (t / per_batch) * batch_stride : 0;
    for (int64_t j = 0; j < m; ++j) {
      const size_t d = b + static_cast<size_t>(j);
      int64_t v = idx[static_cast<size_t>(t * m + j)];
      const int64_t dim = data_shape[d];
      if (v < 0) v += dim;
      if (v < 0 || v >= dim) {
        throw_status(ctx.error("index " + std::to_string(idx[static_cast<size_t>(t * m + j)]) +
                               " is out of range for data dimension " + std::to_string(d) + " of size " +
                               std::to_string(dim)));
      }
      off += v * dstr[d];
    }
    res.offsets[static_cast<size_t>(t)] = off;
  }
  return res;
}

namespace {

// --- Gather family ----------------------------------------------------------

Status gather_kernel(KernelContext& ctx) {
  const Tensor& data = ctx.required_input(0);
  const Tensor& ind = ctx.required_input(1);
  if (data.rank() == 0) return ctx.error("data must have rank >= 1");
  const size_t axis = static_cast<size_t>(checked_axis(ctx, ctx.node().attr_int("axis", 0), data.rank()));
  const int64_t dim = data.shape()[axis];
  auto idx = index_values(ctx, ind, "indices");
  normalize_indices(ctx, idx, dim, "index");
  Shape out_shape(data.shape().begin(), data.shape().begin() + static_cast<int64_t>(axis));
  out_shape.insert(out_shape.end(), ind.shape().begin(), ind.shape().end());
  out_shape.insert(out_shape.end(), data.shape().begin() + static_cast<int64_t>(axis) + 1, data.shape().end());
  Tensor& out = ctx.allocate_output(0, data.dtype(), out_shape);
  if (out.numel() == 0) return Status::Ok();
  const int64_t outer = dims_product(data.shape(), 0, axis);
  const int64_t inner = dims_product(data.shape(), axis + 1, data.shape().size());
  const int64_t n = static_cast<int64_t>(idx.size());
  dispatch_storage(data.dtype(), [&](auto tag) {
    using S = decltype(tag);
    const S* src = storage_ptr<S>(data);
    S* dst = storage_ptr<S>(out);
    parallel_for(outer * n, ctx.threads(), inner, [&](int64_t lo, int64_t hi) {
      if (inner == 1) {
        for (int64_t u = lo; u < hi; ++u) dst[u] = src[(u / n) * dim + idx[static_cast<size_t>(u % n)]];
        return;
      }
      for (int64_t u = lo; u < hi; ++u) {
        const int64_t o = u / n;
        std::copy_n(src + (o * dim + idx[static_cast<size_t>(u % n)]) * inner, inner, dst + u * inner);
      }
    });
  });
  return Status::Ok();
}

Status gather_elements_kernel(KernelContext& ctx) {
  const Tensor& data = ctx.required_input(0);
  const Tensor& ind = ctx.required_input(1);
  if (data.rank() == 0) return ctx.error("data must have rank >= 1");
  const size_t axis = static_cast<size_t>(checked_axis(ctx, ctx.node().attr_int("axis", 0), data.rank()));
  auto idx = index_values(ctx, ind, "indices");
  normalize_indices(ctx, idx, data.shape()[axis], "index");
  const auto offsets = element_offsets(ctx, data.shape(), ind.shape(), idx, axis);
  Tensor& out = ctx.allocate_output(0, data.dtype(), ind.shape());
  dispatch_storage(data.dtype(), [&](auto tag) {
    using S = decltype(tag);
    const S* src = storage_ptr<S>(data);
    S* dst = storage_ptr<S>(out);
    parallel_for(out.numel(), ctx.threads(), 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) dst[i] = src[offsets[static_cast<size_t>(i)]];
    });
  });
  return Status::Ok();
}

Status gather_nd_kernel(KernelContext& ctx) {
  const Tensor& data = ctx.required_input(0);
  const Tensor& ind = ctx.required_input(1);
  const int64_t batch_dims = ctx.node().attr_int("batch_dims", 0);
  const NdOffsets nd = nd_offsets(ctx, data.shape(), ind, batch_dims);
  const int64_t m = ind.shape().back();
  Shape out_shape(ind.shape().begin(), ind.shape().end() - 1);
  out_shape.insert(out_shape.end(), data.shape().begin() + batch_dims + m, data.shape().end());
  Tensor& out = ctx.allocate_output(0, data.dtype(), out_shape);
  if (out.numel() == 0) return Status::Ok();
  const int64_t slice = nd.slice;
  dispatch_storage(data.dtype(), [&](auto tag) {
    using S = decltype(tag);
    const S* src = storage_ptr<S>(data);
    S* dst = storage_ptr<S>(out);
    parallel_for(static_cast<int64_t>(nd.offsets.size()), ctx.threads(), slice, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) std::copy_n(src + nd.offsets[static_cast<size_t>(t)], slice, dst + t * slice);
    });
  });
  return Status::Ok();
}

// --- Compress / OneHot / NonZero --------------------------------------------

Status compress_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  const Tensor& cond = ctx.required_input(1);
  if (cond.dtype() != DataType::kBool || cond.rank() != 1) return ctx.error("condition must be a 1-D bool tensor");
  const bool has_axis = ctx.node().has_attr("axis");
  const size_t axis =
      has_axis ? static_cast<size_t>(checked_axis(ctx, ctx.node().attr_int("axis", 0), x.rank())) : 0;
  const Shape shape = has_axis ? x.shape() : Shape{x.numel()};
  if (shape.empty()) return ctx.error("input must have rank >= 1 when axis is given");
  const int64_t dim = shape[axis];
  const bool* c = cond.data<bool>();
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < cond.numel(); ++i) {
    if (!c[i]) continue;
    if (i >= dim) {
      return ctx.error("condition has a true entry at " + std::to_string(i) + " beyond the axis size " +
                       std::to_string(dim));
    }
    keep.push_back(i);
  }
  Shape out_shape = shape;
  out_shape[axis] = static_cast<int64_t>(keep.size());
  Tensor& out = ctx.allocate_output(0, x.dtype(), out_shape);
  if (out.numel() == 0) return Status::Ok();
  const int64_t outer = dims_product(shape, 0, axis);
  const int64_t inner = dims_product(shape, axis + 1, shape.size());
  const int64_t n = static_cast<int64_t>(keep.size());
  dispatch_storage(x.dtype(), [&](auto tag) {
    using S = decltype(tag);
    const S* src = storage_ptr<S>(x);
    S* dst = storage_ptr<S>(out);
    parallel_for(outer * n, ctx.threads(), inner, [&](int64_t lo, int64_t hi) {
      for (int64_t u = lo; u < hi; ++u) {
        std::copy_n(src + ((u / n) * dim + keep[static_cast<size_t>(u % n)]) * inner, inner, dst + u * inner);
      }
    });
  });
  return Status::Ok();
}

Status one_hot_kernel(KernelContext& ctx) {
  const Tensor& ind = ctx.required_input(0);
  const Tensor& depth_t = ctx.required_input(1);
  const Tensor& values = ctx.required_input(2);
  if (values.numel() != 2) return ctx.error("values must hold [off_value, on_value]");
  if (depth_t.numel() != 1 || depth_t.dtype() == DataType::kString || depth_t.dtype() == DataType::kBool) {
    return ctx.error("depth must be a numeric scalar");
  }
  const double depth_f = depth_t.float_at(0);
  if (!(depth_f >= 1) || depth_f > static_cast<double>(kMaxTensorElements)) {
    return ctx.error("depth must be positive, got " + std::to_string(depth_f));
  }
  const int64_t depth = static_cast<int64_t>(depth_f);
  const int64_t r = ind.rank();
  int64_t axis = ctx.node().attr_int("axis", -1);
  if (axis < -(r + 1) || axis > r) return ctx.error("axis " + std::to_string(axis) + " is out of range");
  if (axis < 0) axis += r + 1;
  Shape out_shape = ind.shape();
  out_shape.insert(out_shape.begin() + axis, depth);
  Tensor& out = ctx.allocate_output(0, values.dtype(), out_shape);
  if (out.numel() == 0) return Status::Ok();
  if (ind.dtype() == DataType::kString || ind.dtype() == DataType::kBool) return ctx.error("indices must be numeric");
  std::vector<int64_t> idx(static_cast<size_t>(ind.numel()));
  dispatch_all(ind.dtype(), "OneHot", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, std::string>) {
      const T* p = ind.data<T>();
      for (size_t i = 0; i < idx.size(); ++i) {
        const double v = convert_scalar<double>(p[i]);
        idx[i] = v >= -depth_f && v < depth_f ? static_cast<int64_t>(v) : INT64_MIN;  // truncates like a cast
        if (idx[i] < 0 && idx[i] != INT64_MIN) idx[i] += depth;
      }
    }
  });
  const int64_t outer = dims_product(ind.shape(), 0, static_cast<size_t>(axis));
  const int64_t inner = dims_product(ind.shape(), static_cast<size_t>(axis), ind.shape().size());
  dispatch_storage(values.dtype(), [&](auto tag) {
    using S = decltype(tag);
    const S off = storage_ptr<S>(values)[0], on = storage_ptr<S>(values)[1];
    S* dst = storage_ptr<S>(out);
    parallel_for(outer, ctx.threads(), depth * inner, [&](int64_t lo, int64_t hi) {
      for (int64_t o = lo; o < hi; ++o) {
        S* block = dst + o * depth * inner;
        std::fill_n(block, depth * inner, off);
        for (int64_t i = 0; i < inner; ++i) {
          const int64_t v = idx[static_cast<size_t>(o * inner + i)];
          if (v >= 0 && v < depth) block[v * inner + i] = on;
        }
      }
    });
  });
  return Status::Ok();
}

Status non_zero_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  std::vector<bool> nz(static_cast<size_t>(x.numel()));
  int64_t count = 0;
  dispatch_all(x.dtype(), "NonZero", [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      bool v;
      if constexpr (std::is_same_v<T, std::string>) v = !p[i].empty();
      else if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) v = static_cast<float>(p[i]) != 0.0f;
      else v = p[i] != T{};
      nz[static_cast<size_t>(i)] = v;
      count += v;
    }
  });
  // Spec: a scalar input gives shape (0, N).
  const int64_t r = x.rank();
  Tensor& out = ctx.allocate_output(0, DataType::kInt64, {r, count});
  int64_t* o = out.data<int64_t>();
  if (r == 0 || count == 0) return Status::Ok();
  std::vector<int64_t> pos(static_cast<size_t>(r), 0);
  int64_t k = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    if (nz[static_cast<size_t>(i)]) {
      for (int64_t d = 0; d < r; ++d) o[d * count + k] = pos[static_cast<size_t>(d)];
      ++k;
    }
    for (size_t d = static_cast<size_t>(r); d-- > 0;) {
      if (++pos[d] < x.shape()[d]) break;
      pos[d] = 0;
    }
  }
  return Status::Ok();
}

}  // namespace

void register_index_kernels(KernelRegistry& r) {
  using types::kAll;
  r.add("Gather", 1, INT_MAX, kAll, gather_kernel);
  r.add("GatherElements", 11, INT_MAX, kAll, gather_elements_kernel);
  r.add("GatherND", 11, INT_MAX, kAll, gather_nd_kernel);
  r.add("Compress", 9, INT_MAX, kAll, compress_kernel);
  r.add("OneHot", 9, INT_MAX, types::kNumeric, one_hot_kernel);
  r.add("NonZero", 9, INT_MAX, kAll, non_zero_kernel);
  register_index_scatter_kernels(r);
  register_index_sort_kernels(r);
}

}  // namespace deskml::kernels::cpu
