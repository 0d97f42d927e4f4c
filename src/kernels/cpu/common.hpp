// Shared building blocks for CPU kernels: parallel loops and broadcasting.
// Look here before writing a loop helper of your own.
#pragma once

#include <array>
#include <cstdint>
#include <tuple>
#include <vector>

#include "core/tensor.hpp"
#include "kernels/kernel.hpp"

namespace deskml::kernels::cpu {

// Below this many units of work a loop runs on the calling thread.
inline constexpr int64_t kParallelGrain = 1 << 14;

// Runs fn(begin, end) over [0, n) split into contiguous chunks across up to
// `threads` OpenMP threads. `cost` is the rough work per index (elements touched).
template <typename Fn>
void parallel_for(int64_t n, int threads, int64_t cost, Fn&& fn) {
  if (n <= 0) return;
  const int64_t work = n * (cost > 0 ? cost : 1);
  int chunks = threads;
  if (work < kParallelGrain || threads <= 1 || n == 1) chunks = 1;
  if (chunks > n) chunks = static_cast<int>(n);
  if (chunks == 1) {
    fn(int64_t{0}, n);
    return;
  }
#pragma omp parallel for num_threads(chunks) schedule(static)
  for (int c = 0; c < chunks; ++c) {
    const int64_t begin = n * c / chunks;
    const int64_t end = n * (c + 1) / chunks;
    fn(begin, end);
  }
}

// Strides (in elements) to read `in_shape` as if broadcast to `out_shape`:
// 0 along broadcast dims. in_shape is right-aligned against out_shape.
std::vector<int64_t> broadcast_strides(const Shape& in_shape, const Shape& out_shape);

// Calls fn(out_index, offset_0, offset_1, ...) for every output element, in
// order, with each input's element offset under numpy broadcasting. Inputs
// are given by shape; out_shape must be their broadcast.
template <size_t N, typename Fn>
void for_each_broadcast(const Shape& out_shape, const std::array<Shape, N>& in_shapes, Fn&& fn);

// Multi-directional broadcast of two tensors with a binary op on computation type C:
// out[i] = op(C(a[ia]), C(b[ib])) stored as Out.
template <typename A, typename B, typename Out, typename Op>
void broadcast_binary(const Tensor& a, const Tensor& b, Tensor& out, int threads, Op&& op);

// Reads any integer tensor (1-D or scalar) as int64 values: shape-like inputs.
inline std::vector<int64_t> read_int64s(const Tensor& t) { return t.to_int64_vector(); }

// --- implementation ---------------------------------------------------------

template <size_t N, typename Fn>
void for_each_broadcast(const Shape& out_shape, const std::array<Shape, N>& in_shapes, Fn&& fn) {
  const int64_t total = shape_numel(out_shape);
  if (total == 0) return;
  const size_t rank = out_shape.size();
  std::array<std::vector<int64_t>, N> strides;
  for (size_t k = 0; k < N; ++k) strides[k] = broadcast_strides(in_shapes[k], out_shape);
  std::vector<int64_t> idx(rank, 0);
  std::array<int64_t, N> off{};
  const int64_t inner = rank ? out_shape[rank - 1] : 1;
  std::array<int64_t, N> inner_stride{};
  for (size_t k = 0; k < N; ++k) inner_stride[k] = rank ? strides[k][rank - 1] : 0;
  for (int64_t o = 0; o < total; o += inner) {
    std::array<int64_t, N> cur = off;
    for (int64_t j = 0; j < inner; ++j) {
      std::apply([&](auto... c) { fn(o + j, c...); }, cur);
      for (size_t k = 0; k < N; ++k) cur[k] += inner_stride[k];
    }
    // advance the multi-index over dims [0, rank-1)
    for (size_t d = rank - 1; d-- > 0;) {
      ++idx[d];
      for (size_t k = 0; k < N; ++k) off[k] += strides[k][d];
      if (idx[d] < out_shape[d]) break;
      for (size_t k = 0; k < N; ++k) off[k] -= strides[k][d] * out_shape[d];
      idx[d] = 0;
    }
  }
}

template <typename A, typename B, typename Out, typename Op>
void broadcast_binary(const Tensor& a, const Tensor& b, Tensor& out, int threads, Op&& op) {
  const A* pa = a.data<A>();
  const B* pb = b.data<B>();
  Out* po = out.data<Out>();
  const int64_t n = out.numel();
  if (a.shape() == out.shape() && b.shape() == out.shape()) {
    parallel_for(n, threads, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) po[i] = op(pa[i], pb[i]);
    });
    return;
  }
  if (b.numel() == 1 && a.shape() == out.shape()) {
    const B bv = pb[0];
    parallel_for(n, threads, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) po[i] = op(pa[i], bv);
    });
    return;
  }
  if (a.numel() == 1 && b.shape() == out.shape()) {
    const A av = pa[0];
    parallel_for(n, threads, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) po[i] = op(av, pb[i]);
    });
    return;
  }
  for_each_broadcast<2>(out.shape(), {a.shape(), b.shape()},
                        [&](int64_t o, int64_t ia, int64_t ib) { po[o] = op(pa[ia], pb[ib]); });
}

}  // namespace deskml::kernels::cpu
