// Hand-written AVX-512 loops for the few places where they beat the
// auto-vectorized ew:: code by enough to matter: exp through 2^z with
// vscalefps (about 9 instructions for 16 floats, against about 25 for
// ew::fast_exp compiled for AVX-512), used by FusedConv's SiLU pass and the
// attention kernel's softmax. Callers check ew::has_avx512() first.
#pragma once

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>

#include <cstdint>

// Hand-written AVX-512 code goes between these two: GCC 12 takes the
// masked-intrinsic idiom inside the min, max and reduce intrinsics for an
// uninitialised read.
#if defined(__clang__)
#define DESKML_AVX512_WARNINGS_OFF _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wuninitialized\"")
#else
#define DESKML_AVX512_WARNINGS_OFF                                                     \
  _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wuninitialized\"") \
      _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")
#endif
#define DESKML_AVX512_WARNINGS_ON _Pragma("GCC diagnostic pop")

namespace deskml::kernels::cpu::avx512 {

DESKML_AVX512_WARNINGS_OFF

// 2^z: the fraction by a degree-5 polynomial on [-0.5, 0.5] (relative error
// about 3e-6), the integer part by vscalefps, which saturates to 0 and inf by
// itself. A NaN z gives NaN.
[[gnu::target("avx512f,avx512dq"), gnu::always_inline]] inline __m512 exp2(__m512 z) {
  const __m512 whole = _mm512_roundscale_ps(z, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(z, whole);
  __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(0.00133335581f), f, _mm512_set1_ps(0.00961812911f));
  q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(0.0555041087f));
  q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(0.240226507f));
  q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(0.693147182f));
  q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(q, whole);
}

// x * sigmoid(alpha x), given k = -alpha log2(e): relative error about 3e-6.
[[gnu::target("avx512f,avx512dq"), gnu::always_inline]] inline __m512 silu(__m512 x, __m512 k) {
  const __m512 z = _mm512_max_ps(_mm512_min_ps(_mm512_mul_ps(x, k), _mm512_set1_ps(120.0f)), _mm512_set1_ps(-120.0f));
  const __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), exp2(z));  // 1 + exp(-alpha x)
  __m512 r = _mm512_rcp14_ps(d);
  r = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));  // one Newton step
  return _mm512_mul_ps(x, r);
}

// x[i] = x[i] * sigmoid(alpha x[i]) for n floats.
[[gnu::target("avx512f,avx512dq")]] inline void silu_inplace(float* x, int64_t n, float alpha) {
  const __m512 k = _mm512_set1_ps(-1.44269504088896341f * alpha);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, silu(_mm512_loadu_ps(x + i), k));
  if (i < n) {
    const auto m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(x + i, m, silu(_mm512_maskz_loadu_ps(m, x + i), k));
  }
}

// x * scale [+ mask] for the lanes in m, stored back and returned.
[[gnu::target("avx512f,avx512dq"), gnu::always_inline]] inline __m512 scale_mask(float* x, const float* mask, int64_t i,
                                                                                 __mmask16 m, __m512 s) {
  __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), s);
  if (mask) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, mask + i));
  _mm512_mask_storeu_ps(x + i, m, v);
  return v;
}

// exp(x - top) for the lanes in m (0 in the others), stored back and returned.
[[gnu::target("avx512f,avx512dq"), gnu::always_inline]] inline __m512 exp_shifted(float* x, int64_t i, __mmask16 m,
                                                                                  __m512 top) {
  // max(lo, z) returns z when z is NaN, so a NaN comes through.
  const __m512 z = _mm512_max_ps(
      _mm512_set1_ps(-127.0f),
      _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), top), _mm512_set1_ps(1.44269504088896341f)));
  const __m512 v = _mm512_maskz_mov_ps(m, exp2(z));
  _mm512_mask_storeu_ps(x + i, m, v);
  return v;
}

// One softmax row in place: x = softmax(x * scale [+ mask]). A NaN anywhere
// makes the row NaN; -inf scores weigh (about) nothing.
[[gnu::target("avx512f,avx512dq")]] inline void softmax_row(float* x, const float* mask, int64_t n, float scale) {
  const __m512 s = _mm512_set1_ps(scale);
  const auto tail = static_cast<__mmask16>((1u << (n % 16)) - 1);
  const int64_t full = n - n % 16;
  __m512 mx = _mm512_set1_ps(-__builtin_inff());
  for (int64_t i = 0; i < full; i += 16) mx = _mm512_max_ps(scale_mask(x, mask, i, 0xFFFF, s), mx);
  if (tail) mx = _mm512_mask_max_ps(mx, tail, scale_mask(x, mask, full, tail, s), mx);
  const __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < full; i += 16) sum = _mm512_add_ps(sum, exp_shifted(x, i, 0xFFFF, top));
  if (tail) sum = _mm512_add_ps(sum, exp_shifted(x, full, tail, top));
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
  for (int64_t i = 0; i < full; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
  if (tail) _mm512_mask_storeu_ps(x + full, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, x + full), inv));
}

DESKML_AVX512_WARNINGS_ON

}  // namespace deskml::kernels::cpu::avx512

#endif
