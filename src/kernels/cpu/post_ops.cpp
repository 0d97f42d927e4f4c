#include "kernels/cpu/post_ops.hpp"

#include <algorithm>
#include <cmath>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/elementwise_isa.hpp"

namespace deskml::kernels::cpu {
namespace {

#if defined(__GNUC__) && defined(__x86_64__)
#pragma GCC diagnostic push
// GCC 12 takes the masked-intrinsic idiom inside _mm512_min_ps for an uninitialised read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// x * sigmoid(alpha x) in place, 16 floats at a time: 2^z by a degree-5
// polynomial on the fraction and vscalefps (which saturates to 0 and inf by
// itself), the reciprocal by vrcp14ps and one Newton step. 16 instructions a
// vector; relative error about 3e-6 (the polynomial's).
[[gnu::target("avx512f,avx512dq")]] inline __m512 silu16(__m512 x, __m512 k) {
  const __m512 z = _mm512_max_ps(_mm512_min_ps(_mm512_mul_ps(x, k), _mm512_set1_ps(120.0f)), _mm512_set1_ps(-120.0f));
  const __m512 whole = _mm512_roundscale_ps(z, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(z, whole);  // [-0.5, 0.5]
  __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(0.00133335581f), f, _mm512_set1_ps(0.00961812911f));
  q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(0.0555041087f));
  q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(0.240226507f));
  q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(0.693147182f));
  q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(1.0f));
  const __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_scalef_ps(q, whole));  // 1 + exp(-alpha x)
  __m512 r = _mm512_rcp14_ps(d);
  r = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
  return _mm512_mul_ps(x, r);
}

[[gnu::target("avx512f,avx512dq")]] void silu_avx512(float* p, int64_t n, float alpha) {
  const __m512 k = _mm512_set1_ps(-1.44269504088896341f * alpha);  // z = -alpha x log2(e)
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(p + i, silu16(_mm512_loadu_ps(p + i), k));
  if (i < n) {
    const auto m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(p + i, m, silu16(_mm512_maskz_loadu_ps(m, p + i), k));
  }
}
#pragma GCC diagnostic pop
#endif

dnnl::algorithm algorithm_of(const std::string& name) {
  using A = dnnl::algorithm;
  if (name == "Relu" || name == "LeakyRelu") return A::eltwise_relu;
  if (name == "Clip") return A::eltwise_clip;
  if (name == "Sigmoid") return A::eltwise_logistic;
  if (name == "Tanh") return A::eltwise_tanh;
  if (name == "HardSwish") return A::eltwise_hardswish;
  if (name == "Swish") return A::eltwise_swish;
  if (name == "Gelu") return A::eltwise_gelu_erf;
  if (name == "GeluTanh") return A::eltwise_gelu_tanh;
  if (name == "Elu") return A::eltwise_elu;
  return A::undef;
}

}  // namespace

FusedActivation FusedActivation::from_node(const graph::Node& node, const std::string& prefix) {
  FusedActivation a;
  a.name = node.attr_string(prefix, "");
  if (a.name.empty()) return a;
  if (algorithm_of(a.name) == dnnl::algorithm::undef) {
    throw_status(Status(StatusCode::kInvalidModel, node.label() + ": unknown fused activation '" + a.name + "'"));
  }
  a.alpha = node.attr_float(prefix + "_alpha", 0.0f);
  a.beta = node.attr_float(prefix + "_beta", 0.0f);
  if (a.name == "Relu") a.alpha = 0.0f;
  return a;
}

void FusedActivation::append_to(dnnl::post_ops& ops) const {
  if (!active()) return;
  ops.append_eltwise(1.0f, algorithm_of(name), alpha, beta);
}

float FusedActivation::apply(float x) const {
  if (name == "Relu") return x > 0.0f ? x : 0.0f;
  if (name == "LeakyRelu") return x > 0.0f ? x : alpha * x;
  if (name == "Clip") return std::min(std::max(x, alpha), beta);
  if (name == "Sigmoid") return 1.0f / (1.0f + std::exp(-x));
  if (name == "Tanh") return std::tanh(x);
  if (name == "HardSwish") return x * std::min(std::max(x + 3.0f, 0.0f), 6.0f) / 6.0f;
  if (name == "Swish") return x / (1.0f + std::exp(-alpha * x));
  if (name == "Gelu") return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
  if (name == "GeluTanh") {
    return 0.5f * x * (1.0f + std::tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
  }
  if (name == "Elu") return x > 0.0f ? x : alpha * (std::exp(x) - 1.0f);
  return x;
}

bool FusedActivation::faster_unfused() const { return name == "Swish" && ew::has_avx512(); }

void FusedActivation::apply(float* data, int64_t n, int threads) const {
  if (!active()) return;
#if defined(__GNUC__) && defined(__x86_64__)
  if (name == "Swish" && ew::has_avx512()) {
    constexpr int64_t kChunk = 4096;
    parallel_for((n + kChunk - 1) / kChunk, threads, kChunk * 4, [&](int64_t lo, int64_t hi) {
      const int64_t end = std::min(n, hi * kChunk);
      silu_avx512(data + lo * kChunk, end - lo * kChunk, alpha);
    });
    return;
  }
#endif
  parallel_for(n, threads, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) data[i] = apply(data[i]);
  });
}

}  // namespace deskml::kernels::cpu
