// Numeric building blocks of the recurrent kernels (rnn.cpp): matrix products
// against ONNX-layout weights and the gate activations. Hot loops have an
// AVX2+FMA build chosen at run time, since the project builds for baseline x86-64.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/cpu/common.hpp"

namespace deskml::kernels::cpu::rnn_math {

// --- matrix products ----------------------------------------------------------------
//
// Written with GCC/Clang vector extensions: 32-byte vectors are one AVX register
// or two SSE ones, so the same code is register-tiled on either.

template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(32)));
};
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(32)));
};
template <typename T>
using Vec = typename VecOf<T>::type;
template <typename T>
inline constexpr int64_t kLanes = static_cast<int64_t>(32 / sizeof(T));

// Vectors travel by reference: passing 32-byte vectors by value changes the ABI without AVX.
#define DESKML_RNN_LOAD_VEC(v, p) std::memcpy(&(v), (p), sizeof(v))
template <typename T>
inline void store_vec(T* p, const Vec<T>& v) {
  std::memcpy(p, &v, sizeof(v));
}
template <typename T>
inline T hsum(const Vec<T>& v) {
  T s = 0;
  for (int64_t l = 0; l < kLanes<T>; ++l) s += v[l];
  return s;
}

// C[m, n] (+)= dot(A[m, :], B[n, :]) for a few rows m and n in [n0, n1): B in its
// stored [N, K] layout, for the matrix-vector products of small batches.
template <typename T>
inline void gemm_dot_impl(int64_t M, int64_t n0, int64_t n1, int64_t K, const T* A, int64_t lda, const T* B,
                          int64_t ldb, T* C, int64_t ldc, bool accumulate) {
  constexpr int64_t L = kLanes<T>;
  for (int64_t m = 0; m < M; ++m) {
    const T* a = A + m * lda;
    for (int64_t n = n0; n < n1; ++n) {
      const T* b = B + n * ldb;
      Vec<T> acc0 = {}, acc1 = {};
      int64_t k = 0;
      for (; k + 2 * L <= K; k += 2 * L) {
        Vec<T> a0, b0, a1, b1;
        DESKML_RNN_LOAD_VEC(a0, a + k);
        DESKML_RNN_LOAD_VEC(b0, b + k);
        DESKML_RNN_LOAD_VEC(a1, a + k + L);
        DESKML_RNN_LOAD_VEC(b1, b + k + L);
        acc0 += a0 * b0;
        acc1 += a1 * b1;
      }
      acc0 += acc1;
      T s = hsum<T>(acc0);
      for (; k < K; ++k) s += a[k] * b[k];
      T* c = C + m * ldc + n;
      *c = accumulate ? *c + s : s;
    }
  }
}

// C[m0:m1, n0:n1] (+)= A[m0:m1, :K] * Bt[:K, n0:n1] with Bt in [K, N] layout:
// a tile of R rows x NV vectors of columns stays in registers across the K loop.
template <typename T, int64_t R, int64_t NV>
inline void gemm_tile(int64_t m, int64_t n, int64_t K, const T* A, int64_t lda, const T* Bt, int64_t ldb, T* C,
                      int64_t ldc, bool accumulate) {
  constexpr int64_t L = kLanes<T>;
  Vec<T> c[R][NV] = {};
  const T* a = A + m * lda;
  const T* b = Bt + n;
  for (int64_t k = 0; k < K; ++k, b += ldb) {
    Vec<T> bv[NV];
    for (int64_t v = 0; v < NV; ++v) DESKML_RNN_LOAD_VEC(bv[v], b + v * L);
    for (int64_t r = 0; r < R; ++r) {
      const T ar = a[r * lda + k];
      for (int64_t v = 0; v < NV; ++v) c[r][v] += ar * bv[v];
    }
  }
  for (int64_t r = 0; r < R; ++r) {
    T* cr = C + (m + r) * ldc + n;
    for (int64_t v = 0; v < NV; ++v) {
      if (accumulate) {
        Vec<T> prev;
        DESKML_RNN_LOAD_VEC(prev, cr + v * L);
        c[r][v] += prev;
      }
      store_vec(cr + v * L, c[r][v]);
    }
  }
}

template <typename T, int64_t NV>
inline void gemm_tiles_impl(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, const T* A, int64_t lda,
                            const T* Bt, int64_t ldb, T* C, int64_t ldc, bool accumulate) {
  constexpr int64_t L = kLanes<T>;
  int64_t n = n0;
  for (; n + NV * L <= n1; n += NV * L) {
    int64_t m = m0;
    for (; m + 4 <= m1; m += 4) gemm_tile<T, 4, NV>(m, n, K, A, lda, Bt, ldb, C, ldc, accumulate);
    for (; m < m1; ++m) gemm_tile<T, 1, NV>(m, n, K, A, lda, Bt, ldb, C, ldc, accumulate);
  }
  for (; n + L <= n1; n += L) {
    int64_t m = m0;
    for (; m + 4 <= m1; m += 4) gemm_tile<T, 4, 1>(m, n, K, A, lda, Bt, ldb, C, ldc, accumulate);
    for (; m < m1; ++m) gemm_tile<T, 1, 1>(m, n, K, A, lda, Bt, ldb, C, ldc, accumulate);
  }
  for (; n < n1; ++n) {  // fewer columns than a vector
    for (int64_t m = m0; m < m1; ++m) {
      T s = 0;
      for (int64_t k = 0; k < K; ++k) s += A[m * lda + k] * Bt[k * ldb + n];
      T* c = C + m * ldc + n;
      *c = accumulate ? *c + s : s;
    }
  }
}

// AVX2+FMA builds of both kernels, picked at run time (the build targets baseline x86-64).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DESKML_RNN_AVX2 1
template <typename T>
[[gnu::flatten, gnu::noinline, gnu::target("avx2,fma")]] void gemm_tiles_avx2(int64_t m0, int64_t m1, int64_t n0,
                                                                              int64_t n1, int64_t K, const T* A,
                                                                              int64_t lda, const T* Bt, int64_t ldb,
                                                                              T* C, int64_t ldc, bool accumulate) {
  gemm_tiles_impl<T, 2>(m0, m1, n0, n1, K, A, lda, Bt, ldb, C, ldc, accumulate);
}
template <typename T>
[[gnu::flatten, gnu::noinline, gnu::target("avx2,fma")]] void gemm_dot_avx2(int64_t M, int64_t n0, int64_t n1,
                                                                            int64_t K, const T* A, int64_t lda,
                                                                            const T* B, int64_t ldb, T* C, int64_t ldc,
                                                                            bool accumulate) {
  gemm_dot_impl<T>(M, n0, n1, K, A, lda, B, ldb, C, ldc, accumulate);
}
inline bool cpu_has_avx2_fma() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
#endif

template <typename T>
void gemm_tiles(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, const T* A, int64_t lda, const T* Bt,
                int64_t ldb, T* C, int64_t ldc, bool accumulate) {
#ifdef DESKML_RNN_AVX2
  if (cpu_has_avx2_fma()) return gemm_tiles_avx2<T>(m0, m1, n0, n1, K, A, lda, Bt, ldb, C, ldc, accumulate);
#endif
  gemm_tiles_impl<T, 1>(m0, m1, n0, n1, K, A, lda, Bt, ldb, C, ldc, accumulate);
}

template <typename T>
void gemm_dot(int64_t M, int64_t n0, int64_t n1, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C,
              int64_t ldc, bool accumulate) {
#ifdef DESKML_RNN_AVX2
  if (cpu_has_avx2_fma()) return gemm_dot_avx2<T>(M, n0, n1, K, A, lda, B, ldb, C, ldc, accumulate);
#endif
  gemm_dot_impl<T>(M, n0, n1, K, A, lda, B, ldb, C, ldc, accumulate);
}

// A weight matrix W [N, K] (ONNX stores W and R as [gates*hidden, in]) that
// multiplies row blocks: C[:, n0:n1] (+)= A * W[n0:n1, :]^T, where C points at
// column n0's place. Up to three rows use dot products on W as stored (the
// streaming, batch-1 case pays no transpose); more rows use register tiles on
// a [K, N] copy made on first use.
template <typename T>
class WeightMatrix {
 public:
  WeightMatrix(const T* w, int64_t N, int64_t K) : w_(w), N_(N), K_(K) {}

  void multiply(int64_t M, const T* A, int64_t lda, T* C, int64_t ldc, bool accumulate, int64_t n0, int64_t n1,
                int threads) {
    const int64_t N = n1 - n0;
    if (M <= 0 || N <= 0) return;
    // A recurrent step is often a few tens of thousands of multiply-adds, done
    // once per time step: waking a thread team for it costs more than it saves.
    if (M * N * K_ < (int64_t{1} << 18)) threads = 1;
    if (M < 4) {
      constexpr int64_t kChunk = 16;
      parallel_for((N + kChunk - 1) / kChunk, threads, kChunk * M * K_, [&](int64_t lo, int64_t hi) {
        gemm_dot(M, n0 + lo * kChunk, std::min(n1, n0 + hi * kChunk), K_, A, lda, w_, K_, C - n0, ldc, accumulate);
      });
      return;
    }
    if (wt_.empty()) {
      // Rows a multiple of 1 KiB apart would all land in the same few L1 sets.
      ldt_ = (N_ * static_cast<int64_t>(sizeof(T))) % 1024 == 0 ? N_ + kLanes<T> : N_;
      wt_.assign(static_cast<size_t>(ldt_ * K_), T(0));
      for (int64_t n = 0; n < N_; ++n) {
        for (int64_t k = 0; k < K_; ++k) wt_[k * ldt_ + n] = w_[n * K_ + k];
      }
    }
    const T* bt = wt_.data();
    if (M >= 16 * static_cast<int64_t>(threads)) {
      // Column panels of about 64 Ki weights stay in cache while a row block passes over them.
      const int64_t cols = (int64_t{64} << 10) / std::max<int64_t>(K_, 1) / kLanes<T> * kLanes<T>;
      const int64_t panel = std::max<int64_t>(kLanes<T>, cols);
      parallel_for((M + 3) / 4, threads, 4 * N * K_, [&](int64_t lo, int64_t hi) {
        for (int64_t p = n0; p < n1; p += panel) {
          gemm_tiles(lo * 4, std::min(M, hi * 4), p, std::min(n1, p + panel), K_, A, lda, bt, ldt_, C - n0, ldc,
                     accumulate);
        }
      });
    } else {
      const int64_t chunk = 4 * kLanes<T>;
      parallel_for((N + chunk - 1) / chunk, threads, chunk * M * K_, [&](int64_t lo, int64_t hi) {
        gemm_tiles(0, M, n0 + lo * chunk, std::min(n1, n0 + hi * chunk), K_, A, lda, bt, ldt_, C - n0, ldc, accumulate);
      });
    }
  }

 private:
  const T* w_;
  int64_t N_, K_;
  int64_t ldt_ = 0;
  std::vector<T> wt_;  // [K, ldt_] copy, made on first use
};

// --- activations ---------------------------------------------------------------

enum class ActKind {
  kSigmoid,
  kTanh,
  kRelu,
  kAffine,
  kLeakyRelu,
  kThresholdedRelu,
  kScaledTanh,
  kHardSigmoid,
  kElu,
  kSoftsign,
  kSoftplus
};

struct Activation {
  ActKind kind = ActKind::kSigmoid;
  float alpha = 0.f;
  float beta = 0.f;
};

struct ActSpec {
  const char* name;
  ActKind kind;
  bool uses_alpha, uses_beta;
  float alpha, beta;  // defaults
};

inline constexpr ActSpec kActSpecs[] = {
    {"sigmoid", ActKind::kSigmoid, false, false, 0.f, 0.f},
    {"tanh", ActKind::kTanh, false, false, 0.f, 0.f},
    {"relu", ActKind::kRelu, false, false, 0.f, 0.f},
    {"affine", ActKind::kAffine, true, true, 1.f, 0.f},
    {"leakyrelu", ActKind::kLeakyRelu, true, false, 0.01f, 0.f},
    {"thresholdedrelu", ActKind::kThresholdedRelu, true, false, 1.f, 0.f},
    {"scaledtanh", ActKind::kScaledTanh, true, true, 1.f, 1.f},
    {"hardsigmoid", ActKind::kHardSigmoid, true, true, 0.2f, 0.5f},
    {"elu", ActKind::kElu, true, false, 1.f, 0.f},
    {"softsign", ActKind::kSoftsign, false, false, 0.f, 0.f},
    {"softplus", ActKind::kSoftplus, false, false, 0.f, 0.f},
};

// Float sigmoid and tanh on whole vectors: Cephes' expf (range reduction by
// ln 2, degree-6 polynomial, about 2 ulp) written with vector types so it is
// vectorised whatever the compiler flags; libm's scalar expf/tanhf were a
// quarter of an LSTM's time. Vectors travel by reference (see DESKML_RNN_LOAD_VEC).
typedef int32_t VecI32 __attribute__((vector_size(32)));

inline void exp_vec(const Vec<float>& in, Vec<float>& out) {
  Vec<float> x = in;
  x = x > 88.0f ? 88.0f : x;  // keeps 2^n a normal float
  x = x < -87.3365f ? -87.3365f : x;
  const Vec<float> t = x * 1.44269504088896341f + 0.5f;
  const VecI32 n0 = __builtin_convertvector(t, VecI32);
  const VecI32 n = n0 + (__builtin_convertvector(n0, Vec<float>) > t);  // floor: true is -1
  const Vec<float> fx = __builtin_convertvector(n, Vec<float>);
  Vec<float> r = x - fx * 0.693359375f;
  r -= fx * -2.12194440e-4f;
  Vec<float> y = r * 1.9875691500e-4f + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const VecI32 bits = (n + 127) << 23;
  Vec<float> scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  out = y * scale;
}

// In place: sigmoid (tanh = false) or alpha * tanh(beta * x).
inline void sigmoid_tanh_f32(float* x, int64_t n, bool tanh, float alpha, float beta) {
  constexpr int64_t L = kLanes<float>;
  for (int64_t i = 0; i < n; i += L) {
    const int64_t len = std::min(L, n - i);
    Vec<float> v = {};
    if (len == L) {
      DESKML_RNN_LOAD_VEC(v, x + i);
    } else {
      std::memcpy(&v, x + i, sizeof(float) * len);
    }
    Vec<float> e;
    if (!tanh) {
      v = -v;
      exp_vec(v, e);
      v = 1.0f / (1.0f + e);
    } else {
      v *= beta;
      Vec<float> twice = v + v;
      exp_vec(twice, e);
      const Vec<float> big = 1.0f - 2.0f / (e + 1.0f);
      const Vec<float> x2 = v * v;
      // Near 0, 1 - 2/(e^2x + 1) cancels: use tanh's Taylor series there.
      const Vec<float> small = v * (1.0f + x2 * (-0.333333333f + x2 * (0.133333333f + x2 * -0.0539682540f)));
      const Vec<float> av = v < 0.0f ? -v : v;
      v = alpha * (av < 0.125f ? small : big);
    }
    if (len == L) {
      store_vec(x + i, v);
    } else {
      std::memcpy(x + i, &v, sizeof(float) * len);
    }
  }
}

// Applies `a` in place to n values; the switch sits outside the element loop.
template <typename T>
inline void activate_impl(const Activation& a, T* x, int64_t n) {
  const T alpha = static_cast<T>(a.alpha), beta = static_cast<T>(a.beta);
  switch (a.kind) {
    case ActKind::kSigmoid:
      if constexpr (std::is_same_v<T, float>) {
        sigmoid_tanh_f32(x, n, false, 1.f, 1.f);
      } else {
        for (int64_t i = 0; i < n; ++i) x[i] = T(1) / (T(1) + std::exp(-x[i]));
      }
      break;
    case ActKind::kTanh:
      if constexpr (std::is_same_v<T, float>) {
        sigmoid_tanh_f32(x, n, true, 1.f, 1.f);
      } else {
        for (int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i]);
      }
      break;
    case ActKind::kRelu:
      for (int64_t i = 0; i < n; ++i) x[i] = std::max(x[i], T(0));
      break;
    case ActKind::kAffine:
      for (int64_t i = 0; i < n; ++i) x[i] = alpha * x[i] + beta;
      break;
    case ActKind::kLeakyRelu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= T(0) ? x[i] : alpha * x[i];
      break;
    case ActKind::kThresholdedRelu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] > alpha ? x[i] : T(0);
      break;
    case ActKind::kScaledTanh:
      if constexpr (std::is_same_v<T, float>) {
        sigmoid_tanh_f32(x, n, true, alpha, beta);
      } else {
        for (int64_t i = 0; i < n; ++i) x[i] = alpha * std::tanh(beta * x[i]);
      }
      break;
    case ActKind::kHardSigmoid:
      for (int64_t i = 0; i < n; ++i) x[i] = std::clamp(alpha * x[i] + beta, T(0), T(1));
      break;
    case ActKind::kElu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= T(0) ? x[i] : alpha * (std::exp(x[i]) - T(1));
      break;
    case ActKind::kSoftsign:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (T(1) + std::abs(x[i]));
      break;
    case ActKind::kSoftplus:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] > T(20) ? x[i] : std::log1p(std::exp(x[i]));
      break;
  }
}

#ifdef DESKML_RNN_AVX2
[[gnu::flatten, gnu::noinline, gnu::target("avx2,fma")]] inline void activate_avx2(const Activation& a, float* x,
                                                                                   int64_t n) {
  activate_impl<float>(a, x, n);
}
#endif

template <typename T>
inline void activate(const Activation& a, T* x, int64_t n) {
#ifdef DESKML_RNN_AVX2
  if constexpr (std::is_same_v<T, float>) {
    if (cpu_has_avx2_fma()) return activate_avx2(a, x, n);
  }
#endif
  activate_impl<T>(a, x, n);
}

template <typename T>
inline void clip_values(T* x, int64_t n, T clip) {
  for (int64_t i = 0; i < n; ++i) x[i] = std::clamp(x[i], -clip, clip);
}

}  // namespace deskml::kernels::cpu::rnn_math
