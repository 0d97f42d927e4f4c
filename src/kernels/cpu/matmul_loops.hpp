// Plain matrix-product loops for the types oneDNN does not take (float64,
// integers), shared by MatMul, Gemm, MatMulInteger, QLinearMatMul and Einsum.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/tensor.hpp"
#include "kernels/cpu/common.hpp"
#include "kernels/cpu/int_arith.hpp"

namespace deskml::kernels::cpu {

// The type products are accumulated in: double for floats, 64-bit for integers.
template <typename T>
using AccumulatorOf =
    std::conditional_t<std::is_floating_point_v<T>, double, std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>;

// c[i, j] = sum_k a[i, k] * b[k, j] for rows [row_begin, row_end), row-major
// with leading dimensions; rows of c are overwritten. Acc is the accumulation type.
template <typename TA, typename TB, typename TC, typename Acc>
void gemm_rows(int64_t row_begin, int64_t row_end, int64_t n, int64_t k, const TA* a, int64_t lda, const TB* b,
               int64_t ldb, TC* c, int64_t ldc, std::vector<Acc>& scratch) {
  scratch.resize(static_cast<size_t>(n));
  Acc* acc = scratch.data();
  for (int64_t i = row_begin; i < row_end; ++i) {
    std::fill(acc, acc + n, Acc{});
    const TA* arow = a + i * lda;
    for (int64_t p = 0; p < k; ++p) {
      const Acc av = static_cast<Acc>(arow[p]);
      const TB* brow = b + p * ldb;
      for (int64_t j = 0; j < n; ++j) acc[j] = add_wrap(acc[j], mul_wrap(av, static_cast<Acc>(brow[j])));
    }
    TC* crow = c + i * ldc;
    for (int64_t j = 0; j < n; ++j) crow[j] = static_cast<TC>(acc[j]);
  }
}

// Batched product: for each batch b, c[b] (m x n) = a[a_offsets[b]] (m x k) * b[b_offsets[b]] (k x n),
// all row-major and contiguous; c is contiguous over batches. Parallel over batch rows.
template <typename TA, typename TB, typename TC, typename Acc>
void batched_gemm(const std::vector<int64_t>& a_offsets, const std::vector<int64_t>& b_offsets, int64_t m, int64_t n,
                  int64_t k, const TA* a, const TB* b, TC* c, int threads) {
  const int64_t batch = static_cast<int64_t>(a_offsets.size());
  parallel_for(batch * m, threads, n * k, [&](int64_t lo, int64_t hi) {
    std::vector<Acc> scratch;
    for (int64_t r = lo; r < hi;) {
      const int64_t bi = r / m, row = r % m;
      const int64_t rows = std::min(hi - r, m - row);
      const size_t s = static_cast<size_t>(bi);
      gemm_rows<TA, TB, TC, Acc>(row, row + rows, n, k, a + a_offsets[s], k, b + b_offsets[s], n, c + bi * m * n, n,
                                 scratch);
      r += rows;
    }
  });
}

// Numpy matmul shapes: 1-D operands promoted (and their unit dim removed from
// the result), batch dims broadcast. Offsets are element offsets of each
// batch's matrix in A and B.
struct MatMulShape {
  int64_t m = 0, n = 0, k = 0;
  Shape out;            // the result's shape
  Shape a3, b3, batch;  // promoted operand shapes and the broadcast batch dims
  std::vector<int64_t> a_offsets, b_offsets;
};

// InvalidArgument when shapes do not agree.
Result<MatMulShape> matmul_shape(const Shape& a, const Shape& b);

// A copy of `t` with its axes permuted (out axis i is input axis perm[i]).
Tensor permute_tensor(const Tensor& t, const std::vector<int64_t>& perm, int threads);
// A new contiguous tensor of `out_shape` whose element at index i reads t at
// sum(i[d] * in_strides[d]): permutes, diagonals (summed strides) and
// broadcasts (stride 0). Any fixed-size dtype; the caller keeps reads in bounds.
Tensor strided_copy(const Tensor& t, const Shape& out_shape, const std::vector<int64_t>& in_strides, int threads);

}  // namespace deskml::kernels::cpu
