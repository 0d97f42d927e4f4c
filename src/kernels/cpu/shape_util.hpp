// Helpers shared by the shape and index kernel families (shape*.cpp, index*.cpp).
// These ops move elements without looking at them, so they work on a storage
// type of the element's size (uint8/16/32/64) or std::string, never on the
// element type itself: every dtype, bool, float16 and strings included, with one
// instantiation per element size.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "core/tensor.hpp"
#include "kernels/cpu/common.hpp"
#include "kernels/kernel.hpp"
#include "kernels/registry.hpp"

namespace deskml::kernels::cpu {

// Calls fn(S{}) where S is an unsigned integer of dtype's element size, or
// std::string for kString.
template <typename Fn>
decltype(auto) dispatch_storage(DataType t, Fn&& fn) {
  if (t == DataType::kString) return fn(std::string{});
  switch (t == DataType::kUndefined ? 0 : dtype_size(t)) {
    case 1: return fn(uint8_t{});
    case 2: return fn(uint16_t{});
    case 4: return fn(uint32_t{});
    case 8: return fn(uint64_t{});
    default: break;
  }
  throw_status(unsupported("unsupported data type " + std::string(dtype_name(t))));
}

// Typed views of a tensor's storage (S from dispatch_storage).
template <typename S>
const S* storage_ptr(const Tensor& t) {
  return static_cast<const S*>(t.raw_data());
}
template <typename S>
S* storage_ptr(Tensor& t) {
  return static_cast<S*>(t.raw_data());
}

// dst (contiguous, shape `out_shape`)[i0..in] = src[sum_d i_d * src_strides[d]].
// `src` points at the element for index 0. Strides may be 0 (broadcast) and
// must describe reads inside the source. Dims are merged where possible; rows
// with a unit inner stride become block copies, transposes are tiled.
void strided_copy(DataType dtype, void* dst, const void* src, const Shape& out_shape,
                  const std::vector<int64_t>& src_strides, int threads);

// Copies all elements of src into dst (same dtype, dst has at least src.numel() elements).
void copy_all(const Tensor& src, Tensor& dst, int threads);

// Reads an attribute as ints (opset < N) or an int64 input (opset >= N).
// Returns false when neither is present.
bool ints_from_attr_or_input(const KernelContext& ctx, const std::string& attr, size_t input, bool from_input,
                             std::vector<int64_t>& out);

// Normalizes `axis` for `rank`, with a node-labelled error.
int64_t checked_axis(const KernelContext& ctx, int64_t axis, int64_t rank);

// Product of dims [begin, end).
inline int64_t dims_product(const Shape& s, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end && i < s.size(); ++i) p *= s[i];
  return p;
}

// a * b for non-negative dims; a node-labelled error when the product exceeds kMaxTensorElements.
inline int64_t checked_mul(const KernelContext& ctx, int64_t a, int64_t b) {
  if (a < 0 || b < 0 || (a != 0 && b > kMaxTensorElements / a)) {
    throw_status(ctx.error("dimension " + std::to_string(a) + " x " + std::to_string(b) + " is too large"));
  }
  return a * b;
}

// Reads the single value of a scalar (or one-element) numeric tensor as int64.
int64_t scalar_int(const KernelContext& ctx, const Tensor& t, const char* what);

// Parts of the shape family registered from shape.cpp.
void register_shape_layout_kernels(KernelRegistry& r);
void register_shape_fill_kernels(KernelRegistry& r);
// Parts of the index family registered from index.cpp.
void register_index_scatter_kernels(KernelRegistry& r);
void register_index_sort_kernels(KernelRegistry& r);

}  // namespace deskml::kernels::cpu
