// Private to the elementwise, activation and softmax kernel files: type
// dispatch over the dtypes those ops accept, half-precision handling (compute
// in float), a broadcasting row driver that collapses dimensions and runs in
// parallel, and branch-free float math the compiler can vectorize.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/tensor.hpp"
#include "kernels/cpu/common.hpp"
#include "kernels/cpu/elementwise_isa.hpp"

#if defined(__GNUC__) && defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace deskml::kernels::cpu::ew {

// ---------------------------------------------------------------------------
// Types

template <typename T>
inline constexpr bool kIsHalf = std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>;

// The type arithmetic runs in: half types widen to float, the rest stay as they are.
template <typename T>
using compute_t = std::conditional_t<kIsHalf<T>, float, T>;

template <typename C, typename T>
inline C load_as(const T& v) {
  if constexpr (kIsHalf<T>) {
    return static_cast<C>(static_cast<float>(v));
  } else {
    return static_cast<C>(v);
  }
}

template <typename Out, typename R>
inline Out store_as(const R& v) {
  if constexpr (kIsHalf<Out>) {
    return Out(static_cast<float>(v));
  } else {
    return static_cast<Out>(v);
  }
}

// Dispatchers over the dtype sets these ops accept (DESKML_DISPATCH_CASE comes from core/dtype.hpp).
template <typename Fn>
decltype(auto) dispatch_floats(DataType t, std::string_view what, Fn&& fn) {
  switch (t) {
    DESKML_DISPATCH_CASE(kFloat32, float)
    DESKML_DISPATCH_CASE(kFloat64, double)
    DESKML_DISPATCH_CASE(kFloat16, Float16)
    DESKML_DISPATCH_CASE(kBFloat16, BFloat16)
    default:
      break;
  }
  throw_status(unsupported(std::string(what) + ": unsupported data type " + std::string(dtype_name(t))));
}

template <typename Fn>
decltype(auto) dispatch_integers(DataType t, std::string_view what, Fn&& fn) {
  switch (t) {
    DESKML_DISPATCH_CASE(kInt8, int8_t)
    DESKML_DISPATCH_CASE(kUInt8, uint8_t)
    DESKML_DISPATCH_CASE(kInt16, int16_t)
    DESKML_DISPATCH_CASE(kUInt16, uint16_t)
    DESKML_DISPATCH_CASE(kInt32, int32_t)
    DESKML_DISPATCH_CASE(kUInt32, uint32_t)
    DESKML_DISPATCH_CASE(kInt64, int64_t)
    DESKML_DISPATCH_CASE(kUInt64, uint64_t)
    default:
      break;
  }
  throw_status(unsupported(std::string(what) + ": unsupported data type " + std::string(dtype_name(t))));
}

// Floats (half types included) and integers.
template <typename Fn>
decltype(auto) dispatch_numbers(DataType t, std::string_view what, Fn&& fn) {
  if (dtype_is_float(t)) return dispatch_floats(t, what, fn);
  return dispatch_integers(t, what, fn);
}

// ---------------------------------------------------------------------------
// Instruction sets. The build targets baseline x86-64 (SSE2); hot loops are
// compiled a second time for AVX2+FMA and picked at run time. run_best(body)
// runs `body` (a lambda holding the loop) through a copy of itself built for
// the best instruction set here; `flatten` inlines everything the loop calls,
// so the whole loop, math included, is vectorized for that instruction set
// (it also gets past GCC's inline-unit-growth limit, which in these large files
// otherwise leaves fast_exp and friends as calls and the loops scalar).

template <typename Body>
[[gnu::flatten, gnu::noinline]] void run_default(const Body& body) {
  body();
}
#if defined(__GNUC__) && defined(__x86_64__)
template <typename Body>
[[gnu::flatten, gnu::noinline, gnu::target("avx2,fma")]] void run_avx2(const Body& body) {
  body();
}
// 512-bit vectors preferred (GCC would otherwise keep to 256 bits under this target).
#if defined(__clang__)
#define DESKML_AVX512_TARGET gnu::target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma"), clang::min_vector_width(512)
#else
#define DESKML_AVX512_TARGET gnu::target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,prefer-vector-width=512")
#endif
template <typename Body>
[[gnu::flatten, gnu::noinline, DESKML_AVX512_TARGET]] void run_avx512(const Body& body) {
  body();
}
#undef DESKML_AVX512_TARGET
template <typename Body>
inline void run_best(const Body& body) {
  if (has_avx512()) {
    run_avx512(body);
  } else if (has_avx2_fma()) {
    run_avx2(body);
  } else {
    run_default(body);
  }
}
#else
template <typename Body>
inline void run_best(const Body& body) {
  run_default(body);
}
#endif

// ---------------------------------------------------------------------------
// Half <-> float for blocks of elements: F16C where the CPU has it.

#if defined(__GNUC__) && defined(__x86_64__)
inline bool has_f16c() {
  // CPUID leaf 1, ECX bit 29 (clang's __builtin_cpu_supports does not know "f16c").
  static const bool yes = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid(1, &a, &b, &c, &d) != 0 && (c & (1u << 29)) != 0;
  }();
  return yes && has_avx2_fma();
}
[[gnu::target("avx2,fma,f16c")]] inline void half_to_float_f16c(const Float16* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i));
    _mm256_storeu_ps(y + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) y[i] = static_cast<float>(x[i]);
}
[[gnu::target("avx2,fma,f16c")]] inline void float_to_half_f16c(const float* x, Float16* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), h);
  }
  for (; i < n; ++i) y[i] = Float16(x[i]);
}
#endif

// y[i] = float(x[i]) / Out(x[i]) for blocks of half values (and a plain copy for other types).
template <typename In>
inline void widen_block(const In* x, compute_t<In>* y, int64_t n) {
#if defined(__GNUC__) && defined(__x86_64__)
  if constexpr (std::is_same_v<In, Float16>) {
    if (has_f16c()) return half_to_float_f16c(x, y, n);
  }
#endif
  for (int64_t i = 0; i < n; ++i) y[i] = load_as<compute_t<In>>(x[i]);
}
template <typename Out, typename R>
inline void narrow_block(const R* x, Out* y, int64_t n) {
#if defined(__GNUC__) && defined(__x86_64__)
  if constexpr (std::is_same_v<Out, Float16> && std::is_same_v<R, float>) {
    if (has_f16c()) return float_to_half_f16c(x, y, n);
  }
#endif
  for (int64_t i = 0; i < n; ++i) y[i] = store_as<Out>(x[i]);
}

// ---------------------------------------------------------------------------
// Loops

inline constexpr int64_t kBlock = 256;

// y[i] = f(x[i]) for i in [lo, hi), computed in compute_t<In>; half types go through float in blocks.
template <typename In, typename Out, typename F>
inline void map_chunk(const In* x, Out* y, int64_t lo, int64_t hi, const F& f) {
  if constexpr (kIsHalf<In> || kIsHalf<Out>) {
    using C = compute_t<In>;
    using R = std::decay_t<decltype(f(C{}))>;
    C cin[kBlock];
    R cout[kBlock];
    for (int64_t b = lo; b < hi; b += kBlock) {
      const int64_t m = std::min(kBlock, hi - b);
      if constexpr (kIsHalf<In>) {
        widen_block(x + b, cin, m);
      } else {
        for (int64_t j = 0; j < m; ++j) cin[j] = x[b + j];
      }
      for (int64_t j = 0; j < m; ++j) cout[j] = f(cin[j]);
      narrow_block(cout, y + b, m);
    }
  } else {
    for (int64_t i = lo; i < hi; ++i) y[i] = static_cast<Out>(f(x[i]));
  }
}

// y[i] = f(x[i]) over [0, n), in parallel.
template <typename In, typename Out, typename F>
void map_unary(const In* x, Out* y, int64_t n, int threads, int64_t cost, const F& f) {
  parallel_for(n, threads, cost, [&](int64_t lo, int64_t hi) { run_best([&] { map_chunk(x, y, lo, hi, f); }); });
}

// Broadcasting plan over N inputs: dims of size 1 are dropped and neighbours
// that every input walks the same way are merged, so that most broadcasts end
// up as a few long contiguous rows. Every input's innermost stride is 0 or 1.
template <size_t N>
struct BroadcastPlan {
  std::vector<int64_t> dims;                    // collapsed output dims, at least one
  std::array<std::vector<int64_t>, N> strides;  // per input, per collapsed dim
  int64_t inner = 1;                            // dims.back()
  std::array<int64_t, N> inner_stride{};        // 0 (broadcast) or 1
  int64_t total = 0;
};

template <size_t N>
BroadcastPlan<N> make_broadcast_plan(const Shape& out, const std::array<const Shape*, N>& ins) {
  BroadcastPlan<N> plan;
  plan.total = shape_numel(out);
  std::array<std::vector<int64_t>, N> full;
  for (size_t k = 0; k < N; ++k) full[k] = broadcast_strides(*ins[k], out);
  for (size_t d = 0; d < out.size(); ++d) {
    if (out[d] == 1) continue;
    bool merge = !plan.dims.empty();
    for (size_t k = 0; k < N && merge; ++k) merge = plan.strides[k].back() == full[k][d] * out[d];
    if (merge) {
      plan.dims.back() *= out[d];
      for (size_t k = 0; k < N; ++k) plan.strides[k].back() = full[k][d];
    } else {
      plan.dims.push_back(out[d]);
      for (size_t k = 0; k < N; ++k) plan.strides[k].push_back(full[k][d]);
    }
  }
  if (plan.dims.empty()) {
    plan.dims.push_back(1);
    for (size_t k = 0; k < N; ++k) plan.strides[k].push_back(0);
  }
  plan.inner = plan.dims.back();
  for (size_t k = 0; k < N; ++k) plan.inner_stride[k] = plan.strides[k].back();
  return plan;
}

// Calls row(offsets, out_offset, len) over the runs of output elements [lo, hi)
// that lie within one innermost row; offsets[k] is input k's element offset at
// the run's start, and input k advances by plan.inner_stride[k] per element.
template <size_t N, typename RowFn>
inline void broadcast_chunk(const BroadcastPlan<N>& plan, int64_t lo, int64_t hi, const RowFn& row) {
  const size_t outer_rank = plan.dims.size() - 1;
  const int64_t inner = plan.inner;
  std::array<int64_t, 8> small_idx{};
  std::vector<int64_t> big_idx;
  int64_t* idx = small_idx.data();
  if (outer_rank > small_idx.size()) {
    big_idx.resize(outer_rank);
    idx = big_idx.data();
  }
  std::array<int64_t, N> base{};
  int64_t r = lo / inner;
  int64_t col = lo % inner;
  for (size_t d = outer_rank; d-- > 0;) {
    idx[d] = r % plan.dims[d];
    r /= plan.dims[d];
    for (size_t k = 0; k < N; ++k) base[k] += idx[d] * plan.strides[k][d];
  }
  int64_t pos = lo;
  while (pos < hi) {
    const int64_t len = std::min(inner - col, hi - pos);
    std::array<int64_t, N> off;
    for (size_t k = 0; k < N; ++k) off[k] = base[k] + col * plan.inner_stride[k];
    row(off, pos, len);
    pos += len;
    col = 0;
    for (size_t d = outer_rank; d-- > 0;) {
      ++idx[d];
      for (size_t k = 0; k < N; ++k) base[k] += plan.strides[k][d];
      if (idx[d] < plan.dims[d]) break;
      for (size_t k = 0; k < N; ++k) base[k] -= plan.strides[k][d] * plan.dims[d];
      idx[d] = 0;
    }
  }
}

// broadcast_chunk over all output elements, in parallel.
template <size_t N, typename RowFn>
void broadcast_rows(const BroadcastPlan<N>& plan, int threads, int64_t cost, const RowFn& row) {
  parallel_for(plan.total, threads, cost,
               [&](int64_t lo, int64_t hi) { run_best([&] { broadcast_chunk(plan, lo, hi, row); }); });
}

// One run of a binary op: a and b advance by sa / sb (0 or 1) per element.
template <typename A, typename B, typename Out, typename Op>
inline void binary_run(const A* a, int64_t sa, const B* b, int64_t sb, Out* o, int64_t n, const Op& op) {
  if constexpr (kIsHalf<A> || kIsHalf<B> || kIsHalf<Out>) {
    // Half types: widen blocks to float, run the float op, narrow the results.
    using CA = compute_t<A>;
    using CB = compute_t<B>;
    using R = std::decay_t<decltype(op(CA{}, CB{}))>;
    CA ca[kBlock];
    CB cb[kBlock];
    R cr[kBlock];
    const CA a0 = load_as<CA>(a[0]);
    const CB b0 = load_as<CB>(b[0]);
    for (int64_t s = 0; s < n; s += kBlock) {
      const int64_t m = std::min(kBlock, n - s);
      if (sa != 0) widen_block(a + s, ca, m);
      if (sb != 0) widen_block(b + s, cb, m);
      if (sa != 0 && sb != 0) {
        for (int64_t i = 0; i < m; ++i) cr[i] = op(ca[i], cb[i]);
      } else if (sa != 0) {
        for (int64_t i = 0; i < m; ++i) cr[i] = op(ca[i], b0);
      } else if (sb != 0) {
        for (int64_t i = 0; i < m; ++i) cr[i] = op(a0, cb[i]);
      } else {
        for (int64_t i = 0; i < m; ++i) cr[i] = op(a0, b0);
      }
      narrow_block(cr, o + s, m);
    }
  } else if (sa != 0 && sb != 0) {
    for (int64_t i = 0; i < n; ++i) o[i] = static_cast<Out>(op(a[i], b[i]));
  } else if (sa != 0) {
    const B bv = b[0];
    for (int64_t i = 0; i < n; ++i) o[i] = static_cast<Out>(op(a[i], bv));
  } else if (sb != 0) {
    const A av = a[0];
    for (int64_t i = 0; i < n; ++i) o[i] = static_cast<Out>(op(av, b[i]));
  } else {
    const Out v = static_cast<Out>(op(a[0], b[0]));
    for (int64_t i = 0; i < n; ++i) o[i] = v;
  }
}

// out = op(a, b) under numpy broadcasting; out is already allocated with the broadcast shape.
// op takes compute_t<A>, compute_t<B>.
template <typename A, typename B, typename Out, typename Op>
void binary_apply(const Tensor& a, const Tensor& b, Tensor& out, int threads, int64_t cost, const Op& op) {
  const A* pa = a.data<A>();
  const B* pb = b.data<B>();
  Out* po = out.data<Out>();
  const auto plan = make_broadcast_plan<2>(out.shape(), {&a.shape(), &b.shape()});
  const int64_t sa = plan.inner_stride[0];
  const int64_t sb = plan.inner_stride[1];
  broadcast_rows(plan, threads, cost, [&](const std::array<int64_t, 2>& off, int64_t o, int64_t len) {
    binary_run(pa + off[0], sa, pb + off[1], sb, po + o, len, op);
  });
}

// ---------------------------------------------------------------------------
// Vectorizable float math. GCC (with its default -ftrapping-math) will not
// if-convert a `c ? f(x) : g(x)` whose arms compute, so a loop containing one
// stays scalar. select() blends with bit masks instead: both sides are computed,
// nothing branches, and the loop vectorizes. Functions here are accurate to a
// few ulp and handle inf/NaN like libm.

template <size_t N>
struct UintOfSize;
template <>
struct UintOfSize<1> {
  using type = uint8_t;
};
template <>
struct UintOfSize<2> {
  using type = uint16_t;
};
template <>
struct UintOfSize<4> {
  using type = uint32_t;
};
template <>
struct UintOfSize<8> {
  using type = uint64_t;
};

template <typename T>
inline T select(bool c, T a, T b) {
  if constexpr (std::is_trivially_copyable_v<T> && !std::is_same_v<T, bool> &&
                (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8)) {
    using U = typename UintOfSize<sizeof(T)>::type;
    const U m = static_cast<U>(U{0} - static_cast<U>(c));
    return std::bit_cast<T>(static_cast<U>((std::bit_cast<U>(a) & m) | (std::bit_cast<U>(b) & static_cast<U>(~m))));
  } else {
    return c ? a : b;
  }
}

// As std::max / std::min (a NaN in `a` comes through), without the branch.
template <typename T>
inline T vmax(T a, T b) {
  return select(a < b, b, a);
}
template <typename T>
inline T vmin(T a, T b) {
  return select(b < a, b, a);
}

inline float fast_exp(float x) {
  const float xc = vmin(vmax(x, -104.0f), 88.72283935546875f);
  // n = round(x / ln2) via the 1.5 * 2^23 trick (round-to-nearest in the FPU).
  const float t = xc * 1.44269504088896341f + 12582912.0f;
  const float fn = t - 12582912.0f;
  const int32_t n = std::bit_cast<int32_t>(t) - 0x4B400000;
  float r = xc - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * r * r + r + 1.0f;
  // 2^n in two factors so that n in [-151, 128] stays within normal exponents.
  const int32_t n1 = n >> 1;
  const int32_t n2 = n - n1;
  // (Unsigned shifts: a NaN input gives a garbage n here, and its result is replaced below.)
  y = y * std::bit_cast<float>(static_cast<uint32_t>(n1 + 127) << 23) *
      std::bit_cast<float>(static_cast<uint32_t>(n2 + 127) << 23);
  y = select(x > 88.72283935546875f, std::numeric_limits<float>::infinity(), y);
  return select(x != x, x, y);
}

inline double fast_exp(double x) { return std::exp(x); }

// Float to integer the way Cast does it: truncate, saturate, NaN -> 0. Branch-free.
template <typename To, typename From>
inline To saturate_cast(From v) {
  if constexpr (std::is_integral_v<To> && sizeof(To) == 8 && std::is_floating_point_v<From>) {
    // No packed conversion to 64-bit integers below AVX-512: plain (well-predicted) branches are faster.
    if (v != v) return To{};
    if (v <= static_cast<From>(std::numeric_limits<To>::lowest())) return std::numeric_limits<To>::lowest();
    if (v >= static_cast<From>(std::numeric_limits<To>::max())) return std::numeric_limits<To>::max();
    return static_cast<To>(v);
  } else if constexpr (std::is_integral_v<To> && !std::is_same_v<To, bool> && std::is_floating_point_v<From>) {
    constexpr From lo = static_cast<From>(std::numeric_limits<To>::lowest());
    // To's max may round up to 2^b in From; clamp to the From value just below then.
    constexpr bool exact_max = std::numeric_limits<To>::digits <= std::numeric_limits<From>::digits;
    constexpr From max = static_cast<From>(std::numeric_limits<To>::max());
    constexpr From hi = exact_max ? max : max * (From(1) - std::numeric_limits<From>::epsilon() / 2);
    const From c = vmin(vmax(v, lo), hi);  // NaN stays NaN
    To r = static_cast<To>(select(c != c, From(0), c));
    if constexpr (!exact_max) r = select(v > hi, std::numeric_limits<To>::max(), r);
    return r;
  } else {
    return static_cast<To>(v);
  }
}

// exp(x) - 1 keeping relative accuracy near 0 (a Taylor polynomial there).
inline float fast_expm1(float x) {
  const float big = fast_exp(x) - 1.0f;
  float p = 1.0f / 720.0f;
  p = p * x + 1.0f / 120.0f;
  p = p * x + 1.0f / 24.0f;
  p = p * x + 1.0f / 6.0f;
  p = p * x + 0.5f;
  const float small = (p * x) * x + x;
  return select(std::abs(x) < 0.125f, small, big);
}

inline double fast_expm1(double x) { return std::expm1(x); }

// Natural log (Cephes logf): x = m * 2^e with m in [sqrt(1/2), sqrt(2)), a polynomial in m - 1.
inline float fast_log(float x) {
  const bool denormal = x < std::numeric_limits<float>::min();
  const float xs = select(denormal, x * 8388608.0f, x);  // scale subnormals up by 2^23
  const uint32_t bits = std::bit_cast<uint32_t>(xs);
  int32_t e = static_cast<int32_t>((bits >> 23) & 0xffu) - 126;
  float m = std::bit_cast<float>((bits & 0x007fffffu) | 0x3f000000u);  // [0.5, 1)
  const bool low = m < 0.707106781186547524f;
  e -= static_cast<int32_t>(low);
  m = select(low, m + m, m) - 1.0f;
  const float fe = static_cast<float>(e) - select(denormal, 23.0f, 0.0f);
  const float z = m * m;
  float p = 7.0376836292e-2f;
  p = p * m - 1.1514610310e-1f;
  p = p * m + 1.1676998740e-1f;
  p = p * m - 1.2420140846e-1f;
  p = p * m + 1.4249322787e-1f;
  p = p * m - 1.6668057665e-1f;
  p = p * m + 2.0000714765e-1f;
  p = p * m - 2.4999993993e-1f;
  p = p * m + 3.3333331174e-1f;
  float y = p * m * z;
  y = y + fe * -2.12194440e-4f;
  y = y - 0.5f * z;
  y = m + y;
  y = y + fe * 0.693359375f;
  y = select(x == std::numeric_limits<float>::infinity(), x, y);
  y = select(x == 0.0f, -std::numeric_limits<float>::infinity(), y);
  return select((x < 0.0f) | (x != x), std::numeric_limits<float>::quiet_NaN(), y);
}

inline double fast_log(double x) { return std::log(x); }

// log(1 + u) for u >= 0, exact for tiny u: log(w) * u / (w - 1) with w = 1 + u.
inline float fast_log1p(float u) {
  const float w = 1.0f + u;
  const float d = w - 1.0f;
  const float y = fast_log(w) * (u / d);
  return select(d == 0.0f, u, select(w == std::numeric_limits<float>::infinity(), w, y));
}

inline double fast_log1p(double u) { return std::log1p(u); }

inline float fast_sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }
inline double fast_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// tanh as an odd rational function on [-9, 9] (the fit Eigen and MLAS use): one
// division, and no cancellation near 0. Past 9.02 tanh rounds to +-1 in float.
inline float fast_tanh(float x) {
  const float xc = vmin(vmax(x, -9.0f), 9.0f);
  const float x2 = xc * xc;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 - 8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * xc;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  const float y = vmin(vmax(p / q, -1.0f), 1.0f);
  const float y2 = select(std::abs(x) >= 9.02f, std::copysign(1.0f, x), y);
  return select(x != x, x, y2);
}

inline double fast_tanh(double x) { return std::tanh(x); }

// erf as a rational function on [-4, 4] (Eigen's fit); a few ulp from libm.
inline float fast_erf(float x) {
  const float xc = vmin(vmax(x, -4.0f), 4.0f);
  const float x2 = xc * xc;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 - 2.10102402082508e-06f;
  p = p * x2 - 5.69250639462346e-05f;
  p = p * x2 - 7.34990630326855e-04f;
  p = p * x2 - 2.95459980854025e-03f;
  p = p * x2 - 1.60960333262415e-02f;
  p = p * xc;
  float q = -1.45660718464996e-05f;
  q = q * x2 - 2.13374055278905e-04f;
  q = q * x2 - 1.68282697438203e-03f;
  q = q * x2 - 7.37332916720468e-03f;
  q = q * x2 - 1.42647390514189e-02f;
  // Beyond 3.92 erf rounds to +-1 in float; return that exactly rather than the fit's residue.
  const float y = vmin(vmax(p / q, -1.0f), 1.0f);
  const float y2 = select(std::abs(x) >= 3.92f, std::copysign(1.0f, x), y);
  return select(x != x, x, y2);
}

inline double fast_erf(double x) { return std::erf(x); }

// log(1 + exp(x)) without overflow.
template <typename T>
inline T softplus(T x) {
  const T y = vmax(x, T(0)) + fast_log1p(fast_exp(-std::abs(x)));
  return select(x != x, x, y);
}

// Round half to even, floor and ceil for float by the 2^23 trick: (|x| + 2^23) - 2^23
// rounds |x| to an integer in the FPU's default mode. |x| >= 2^23 is already integral.
inline float round_even(float x) {
  const float a = std::abs(x);
  const float r = (a + 8388608.0f) - 8388608.0f;
  return select(a < 8388608.0f, std::copysign(r, x), x);
}
inline double round_even(double x) { return std::nearbyint(x); }
// floor and ceil keep the sign of x (so -0.5 floors to -1 and ceils to -0).
inline float floor_value(float x) {
  const float r = round_even(x);
  return std::copysign(r - select(r > x, 1.0f, 0.0f), x);
}
inline double floor_value(double x) { return std::floor(x); }
inline float ceil_value(float x) {
  const float r = round_even(x);
  return std::copysign(r + select(r < x, 1.0f, 0.0f), x);
}
inline double ceil_value(double x) { return std::ceil(x); }

}  // namespace deskml::kernels::cpu::ew
