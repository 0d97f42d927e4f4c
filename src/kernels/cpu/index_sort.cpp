// Index family, part 3: ops that order elements (TopK, Unique).
#include <climits>
#include <cmath>
#include <numeric>

#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/index_util.hpp"

namespace deskml::kernels::cpu {
namespace {

// The comparison key of an element: half types compare as float.
template <typename T>
using KeyOf = std::conditional_t<std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>, float, T>;

template <typename T>
KeyOf<T> key_of(const T& v) {
  if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) return static_cast<float>(v);
  else return v;
}

// A strict total order: NaN sorts after every number and equals itself.
template <typename K>
bool key_less(const K& a, const K& b) {
  if constexpr (std::is_floating_point_v<K>) {
    if (std::isnan(a)) return false;
    if (std::isnan(b)) return true;
  }
  return a < b;
}

template <typename K>
int key_cmp(const K& a, const K& b) {
  if (key_less(a, b)) return -1;
  if (key_less(b, a)) return 1;
  return 0;
}

// --- TopK -------------------------------------------------------------------

Status top_k_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  if (x.rank() == 0) return ctx.error("input must have rank >= 1");
  const size_t axis = static_cast<size_t>(checked_axis(ctx, ctx.node().attr_int("axis", -1), x.rank()));
  int64_t k = 0;
  if (ctx.opset() < 10) {
    if (!ctx.node().has_attr("k")) return ctx.error("attribute 'k' is required");
    k = ctx.node().attr_int("k", 0);
  } else {
    const Tensor& kt = ctx.required_input(1);
    if (kt.dtype() != DataType::kInt64 || kt.numel() != 1) return ctx.error("K must be an int64 tensor of one value");
    k = kt.data<int64_t>()[0];
  }
  const bool largest = ctx.node().attr_int("largest", 1) != 0;
  const int64_t n = x.shape()[axis];
  if (k < 0 || k > n) {
    return ctx.error("k = " + std::to_string(k) + " is outside 0.." + std::to_string(n) + " (the axis size)");
  }
  Shape out_shape = x.shape();
  out_shape[axis] = k;
  Tensor& values = ctx.allocate_output(0, x.dtype(), out_shape);
  Tensor& indices = ctx.allocate_output(1, DataType::kInt64, out_shape);
  if (values.numel() == 0) return Status::Ok();
  const int64_t outer = dims_product(x.shape(), 0, axis);
  const int64_t inner = dims_product(x.shape(), axis + 1, x.shape().size());
  return dispatch_all(x.dtype(), "TopK", [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, bool>) {
      return ctx.error("TopK needs a numeric input");
    } else {
      using K = KeyOf<T>;
      const T* src = x.data<T>();
      T* vout = values.data<T>();
      int64_t* iout = indices.data<int64_t>();
      parallel_for(outer * inner, ctx.threads(), n * 4, [&](int64_t lo, int64_t hi) {
        std::vector<std::pair<K, int64_t>> buf(static_cast<size_t>(n));
        auto before = [&](const std::pair<K, int64_t>& a, const std::pair<K, int64_t>& b) {
          const int c = largest ? key_cmp(b.first, a.first) : key_cmp(a.first, b.first);
          return c < 0 || (c == 0 && a.second < b.second);
        };
        for (int64_t u = lo; u < hi; ++u) {
          const int64_t o = u / inner, i = u % inner;
          const T* in = src + o * n * inner + i;
          for (int64_t j = 0; j < n; ++j) buf[static_cast<size_t>(j)] = {key_of(in[j * inner]), j};
          if (k < n) {
            std::partial_sort(buf.begin(), buf.begin() + k, buf.end(), before);
          } else {
            std::sort(buf.begin(), buf.end(), before);
          }
          T* vo = vout + o * k * inner + i;
          int64_t* io = iout + o * k * inner + i;
          for (int64_t j = 0; j < k; ++j) {
            const int64_t src_j = buf[static_cast<size_t>(j)].second;
            vo[j * inner] = in[src_j * inner];
            io[j * inner] = src_j;
          }
        }
      });
      return Status::Ok();
    }
  });
}

// --- Unique -----------------------------------------------------------------

Status unique_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  const bool sorted = ctx.node().attr_int("sorted", 1) != 0;
  const bool has_axis = ctx.node().has_attr("axis");
  size_t axis = 0;
  Shape shape{x.numel()};
  if (has_axis) {
    if (x.rank() == 0) return ctx.error("axis given for a scalar input");
    axis = static_cast<size_t>(checked_axis(ctx, ctx.node().attr_int("axis", 0), x.rank()));
    shape = x.shape();
  }
  const int64_t n = shape[axis];
  const int64_t outer = dims_product(shape, 0, axis);
  const int64_t inner = dims_product(shape, axis + 1, shape.size());

  // Group equal slices: stable sort keeps the first occurrence first in each group.
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::vector<int64_t> group_start;  // positions in `order` where a new group begins
  dispatch_all(x.dtype(), "Unique", [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.data<T>();
    auto cmp = [&](int64_t a, int64_t b) {
      for (int64_t o = 0; o < outer; ++o) {
        const T* sa = p + (o * n + a) * inner;
        const T* sb = p + (o * n + b) * inner;
        for (int64_t i = 0; i < inner; ++i) {
          const int c = key_cmp(key_of(sa[i]), key_of(sb[i]));
          if (c != 0) return c;
        }
      }
      return 0;
    };
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return cmp(a, b) < 0; });
    for (size_t j = 0; j < order.size(); ++j) {
      if (j == 0 || cmp(order[j - 1], order[j]) != 0) group_start.push_back(static_cast<int64_t>(j));
    }
  });
  const int64_t u = static_cast<int64_t>(group_start.size());
  struct Group {
    int64_t first, start, count;
  };
  std::vector<Group> groups(static_cast<size_t>(u));
  for (int64_t g = 0; g < u; ++g) {
    const int64_t start = group_start[static_cast<size_t>(g)];
    const int64_t end = g + 1 < u ? group_start[static_cast<size_t>(g + 1)] : n;
    groups[static_cast<size_t>(g)] = {order[static_cast<size_t>(start)], start, end - start};
  }
  if (!sorted) {
    std::sort(groups.begin(), groups.end(), [](const Group& a, const Group& b) { return a.first < b.first; });
  }

  Shape y_shape = shape;
  y_shape[axis] = u;
  Tensor& y = ctx.allocate_output(0, x.dtype(), y_shape);
  dispatch_storage(x.dtype(), [&](auto tag) {
    using S = decltype(tag);
    const S* src = storage_ptr<S>(x);
    S* dst = storage_ptr<S>(y);
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t g = 0; g < u; ++g) {
        std::copy_n(src + (o * n + groups[static_cast<size_t>(g)].first) * inner, inner, dst + (o * u + g) * inner);
      }
    }
  });
  if (ctx.output_wanted(1)) {
    int64_t* p = ctx.allocate_output(1, DataType::kInt64, {u}).data<int64_t>();
    for (int64_t g = 0; g < u; ++g) p[g] = groups[static_cast<size_t>(g)].first;
  }
  if (ctx.output_wanted(2)) {
    int64_t* p = ctx.allocate_output(2, DataType::kInt64, {n}).data<int64_t>();
    for (int64_t g = 0; g < u; ++g) {
      const Group& gr = groups[static_cast<size_t>(g)];
      for (int64_t j = gr.start; j < gr.start + gr.count; ++j) p[order[static_cast<size_t>(j)]] = g;
    }
  }
  if (ctx.output_wanted(3)) {
    int64_t* p = ctx.allocate_output(3, DataType::kInt64, {u}).data<int64_t>();
    for (int64_t g = 0; g < u; ++g) p[g] = groups[static_cast<size_t>(g)].count;
  }
  return Status::Ok();
}

}  // namespace

void register_index_sort_kernels(KernelRegistry& r) {
  r.add("TopK", 1, 9, types::kNumeric, top_k_kernel);
  r.add("TopK", 10, INT_MAX, types::kNumeric, top_k_kernel);
  r.add("Unique", 11, INT_MAX, types::kAll, unique_kernel);
}

}  // namespace deskml::kernels::cpu
