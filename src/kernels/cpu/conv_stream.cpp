#include "kernels/cpu/conv_stream.hpp"

#include <omp.h>

#include <algorithm>
#include <array>
#include <new>
#include <stdexcept>
#include <utility>
#include <vector>

#include "core/buffer_pool.hpp"
#include "kernels/cpu/avx512_math.hpp"
#include "kernels/cpu/common.hpp"
#include "kernels/cpu/elementwise_isa.hpp"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define DESKML_STREAM_CONV 1
#endif

namespace deskml::kernels::cpu {

namespace {

// Output pixels per call of the micro-kernel: with two vectors of output
// channels each, 24 accumulators.
constexpr int kMaxRows = 12;

// How far ahead of its loads the first row block of a panel prefetches the
// weights, in floats (16 KB). Measured on the 512-channel 3x3 layer at 7x7,
// weights cold: 548 us without, 492 at 4096 floats, no better further ahead.
constexpr int64_t kPrefetchFloats = 4096;

// Reduction steps (input channel x tap) per chunk: 64 KB of a panel's weights.
constexpr int64_t kChunkSteps = 512;

// What happens to a tile's sums (conv + bias) on their way to y: the
// activations that the reference models fuse (ReLU, Clip as ReLU6, SiLU) on
// the vectors; any other, or a pre-activation before a sum, element by element.
struct Epilogue {
  enum class Act { kNone, kRelu, kClip, kSilu, kScalar };
  bool sum = false;        // add y's residual (after pre)
  bool sum_first = false;  // ... with the bias, before the products (no pre-activation)
  Act act = Act::kNone;
  float lo = 0.0f, hi = 0.0f;  // Clip's bounds; for SiLU, lo = -alpha log2(e)
  const FusedActivation* pre = nullptr;
  const FusedActivation* scalar = nullptr;  // act, for kScalar

  static Epilogue make(bool has_sum, const FusedActivation& pre, const FusedActivation& act) {
    Epilogue ep;
    ep.sum = has_sum;
    ep.pre = &pre;
    ep.scalar = &act;
    if (has_sum && pre.active()) {
      ep.act = Act::kScalar;
    } else if (!act.active()) {
      ep.act = Act::kNone;
    } else if (act.name == "Relu") {
      ep.act = Act::kRelu;
    } else if (act.name == "Clip") {
      ep.act = Act::kClip;
      ep.lo = act.alpha;
      ep.hi = act.beta;
    } else if (act.name == "Swish") {
      ep.act = Act::kSilu;
      ep.lo = -1.44269504088896341f * act.alpha;
    } else {
      ep.act = Act::kScalar;
    }
    ep.sum_first = has_sum && !pre.active();
    return ep;
  }
};

#ifdef DESKML_STREAM_CONV

DESKML_AVX512_WARNINGS_OFF

[[gnu::target("avx512f,avx512dq"), gnu::always_inline]] inline __m512 activate(Epilogue::Act act, __m512 v, __m512 lo,
                                                                               __m512 hi) {
  switch (act) {
    case Epilogue::Act::kRelu:
      return _mm512_max_ps(v, lo);
    case Epilogue::Act::kClip:
      return _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    case Epilogue::Act::kSilu:
      return avx512::silu(v, lo);
    default:
      return v;
  }
}

// A run of the reduction that one call of the micro-kernel covers: kernel
// taps [t0, t1) and input channels [c0, c1) of each (all of them when the run
// spans several taps), whose packed weights lie one after another from k0.
struct Chunk {
  int64_t t0, t1, c0, c1, k0;
};

// y[r][0..31] for R output pixels: the sum over the chunk's taps t and input
// channels c of rows[r * taps + t][c] * w[t][c][0..31], added to what earlier
// chunks left in y (`first`: to the bias, and with ep.sum_first to y's
// residual), through the epilogue on the `last` chunk. Meanwhile it prefetches
// `pf_lines` cache lines from `pf`, two per step.
template <int R>
[[gnu::target("avx512f,avx512dq")]] void micro(const float* const* rows, int64_t taps, const Chunk& ch, const float* w,
                                               const float* bias, float* y, int64_t ldy, int64_t cols, bool first,
                                               bool last, const float* pf, int64_t pf_lines, const Epilogue& ep) {
  // The panel's output channels in y and the bias: all 32 but in the last panel of a layer whose
  // output channels are no multiple of 32.
  const __mmask16 k0 = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1);
  const __mmask16 k1 = cols >= 32 ? __mmask16(0xFFFF) : cols > 16 ? __mmask16((1u << (cols - 16)) - 1) : __mmask16(0);
  __m512 acc0[R], acc1[R];
  if (first) {
    const __m512 b0 = bias ? _mm512_maskz_loadu_ps(k0, bias) : _mm512_setzero_ps();
    const __m512 b1 = bias ? _mm512_maskz_loadu_ps(k1, bias + 16) : _mm512_setzero_ps();
    for (int r = 0; r < R; ++r) {
      acc0[r] = ep.sum_first ? _mm512_add_ps(b0, _mm512_maskz_loadu_ps(k0, y + r * ldy)) : b0;
      acc1[r] = ep.sum_first ? _mm512_add_ps(b1, _mm512_maskz_loadu_ps(k1, y + r * ldy + 16)) : b1;
    }
  } else {
    for (int r = 0; r < R; ++r) {
      acc0[r] = _mm512_maskz_loadu_ps(k0, y + r * ldy);
      acc1[r] = _mm512_maskz_loadu_ps(k1, y + r * ldy + 16);
    }
  }
  for (int64_t t = ch.t0; t < ch.t1; ++t) {
    const float* a[R];
    for (int r = 0; r < R; ++r) a[r] = rows[r * taps + t];
    for (int64_t c = ch.c0; c < ch.c1; ++c, w += StreamConv::kPanel) {
      const __m512 w0 = _mm512_load_ps(w), w1 = _mm512_load_ps(w + 16);
      if (pf_lines > 0) {
        _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(pf + 16), _MM_HINT_T0);
        pf += 32;
        pf_lines -= 2;
      }
#pragma GCC unroll 12
      for (int r = 0; r < R; ++r) {
        const __m512 av = _mm512_set1_ps(a[r][c]);
        acc0[r] = _mm512_fmadd_ps(av, w0, acc0[r]);
        acc1[r] = _mm512_fmadd_ps(av, w1, acc1[r]);
      }
    }
  }
  if (!last) {
    for (int r = 0; r < R; ++r) {
      _mm512_mask_storeu_ps(y + r * ldy, k0, acc0[r]);
      _mm512_mask_storeu_ps(y + r * ldy + 16, k1, acc1[r]);
    }
    return;
  }
  if (ep.act == Epilogue::Act::kScalar) {
    alignas(64) float tile[StreamConv::kPanel];
    for (int r = 0; r < R; ++r) {
      float* yr = y + r * ldy;
      _mm512_store_ps(tile, acc0[r]);
      _mm512_store_ps(tile + 16, acc1[r]);
      for (int64_t j = 0; j < cols; ++j) {
        float v = tile[j];
        if (ep.sum && !ep.sum_first) v = ep.pre->apply(v) + yr[j];
        yr[j] = ep.scalar->apply(v);
      }
    }
    return;
  }
  const __m512 lo = _mm512_set1_ps(ep.act == Epilogue::Act::kRelu ? 0.0f : ep.lo), hi = _mm512_set1_ps(ep.hi);
  for (int r = 0; r < R; ++r) {
    float* yr = y + r * ldy;
    _mm512_mask_storeu_ps(yr, k0, activate(ep.act, acc0[r], lo, hi));
    _mm512_mask_storeu_ps(yr + 16, k1, activate(ep.act, acc1[r], lo, hi));
  }
}

DESKML_AVX512_WARNINGS_ON

using MicroFn = void (*)(const float* const*, int64_t, const Chunk&, const float*, const float*, float*, int64_t,
                         int64_t, bool, bool, const float*, int64_t, const Epilogue&);

template <int... R>
constexpr std::array<MicroFn, sizeof...(R)> micro_table(std::integer_sequence<int, R...>) {
  return {&micro<R + 1>...};
}

constexpr auto kMicro = micro_table(std::make_integer_sequence<int, kMaxRows>{});

#endif  // DESKML_STREAM_CONV

}  // namespace

bool StreamConv::suits(const ConvGeometry& g) {
#ifdef DESKML_STREAM_CONV
  if (!ew::has_avx512()) return false;
  if (g.spatial_rank() != 2 || g.group != 1 || g.dilations != std::vector<int64_t>{1, 1}) return false;
  if (g.out_channels < 1 || g.in_channels < 1) return false;
  const int64_t pixels = g.batch * g.out_size();
  const int64_t weight_bytes = g.out_channels * g.in_channels * g.kernel_size() * int64_t{sizeof(float)};
  return pixels >= 1 && pixels <= kMaxPixels && weight_bytes >= kMinWeightBytes &&
         weight_bytes >= kMinWeightBytesPerPixel * pixels;
#else
  (void)g;
  return false;
#endif
}

std::shared_ptr<const float> StreamConv::packed(const ConvGeometry& g, const Tensor& w, int threads) {
  std::lock_guard lock(mutex_);
  if (packed_ && source_.raw_data() == w.raw_data() && source_.shape() == w.shape()) return packed_;
  const int64_t taps = g.kernel_size(), in = g.in_channels, out = g.out_channels;
  const int64_t panels = (out + kPanel - 1) / kPanel;  // the last one zero-filled past `out`
  const size_t count = static_cast<size_t>(panels * kPanel * taps * in);
  std::shared_ptr<void> storage = allocate_large(count * sizeof(float));
  if (!storage) throw std::bad_alloc();
  float* to = static_cast<float*>(storage.get());
  const float* from = w.data<float>();  // [out][in][taps]
  parallel_for(panels, threads, taps * in * kPanel, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      float* panel = to + p * taps * in * kPanel;
      for (int64_t j = 0; j < kPanel; ++j) {
        const bool real = p * kPanel + j < out;
        const float* src = from + (p * kPanel + j) * in * taps;
        for (int64_t c = 0; c < in; ++c) {
          for (int64_t t = 0; t < taps; ++t) panel[(t * in + c) * kPanel + j] = real ? src[c * taps + t] : 0.0f;
        }
      }
    }
  });
  packed_ = std::shared_ptr<const float>(storage, to);
  source_ = w;
  return packed_;
}

void StreamConv::run(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor* b, bool has_sum,
                     const FusedActivation& pre, const FusedActivation& act, Tensor& y, int threads) {
#ifdef DESKML_STREAM_CONV
  const std::shared_ptr<const float> weights = packed(g, w, threads);
  const int64_t in_h = g.in[0], in_w = g.in[1], out_h = g.out[0], out_w = g.out[1];
  const int64_t kh = g.kernel[0], kw = g.kernel[1], taps = kh * kw, in = g.in_channels, out = g.out_channels;
  const int64_t pixels = g.batch * out_h * out_w;

  // rows[m * taps + t]: the input pixel that output pixel m's tap t reads, or zeros in the padding.
  thread_local std::vector<const float*> rows;
  thread_local std::vector<float> zeros;
  if (static_cast<int64_t>(zeros.size()) < in) zeros.assign(static_cast<size_t>(in), 0.0f);
  rows.resize(static_cast<size_t>(pixels * taps));
  const float* xp = x.data<float>();
  for (int64_t n = 0, m = 0; n < g.batch; ++n) {
    for (int64_t oy = 0; oy < out_h; ++oy) {
      for (int64_t ox = 0; ox < out_w; ++ox, ++m) {
        for (int64_t ky = 0; ky < kh; ++ky) {
          for (int64_t kx = 0; kx < kw; ++kx) {
            const int64_t iy = oy * g.strides[0] - g.pad_begin[0] + ky, ix = ox * g.strides[1] - g.pad_begin[1] + kx;
            const bool inside = iy >= 0 && iy < in_h && ix >= 0 && ix < in_w;
            rows[static_cast<size_t>(m * taps + ky * kw + kx)] =
                inside ? xp + ((n * in_h + iy) * in_w + ix) * in : zeros.data();
          }
        }
      }
    }
  }

  const Epilogue ep = Epilogue::make(has_sum, pre, act);
  // The reduction in chunks of about kChunkSteps steps (64 KB of a panel's
  // weights), so that the next chunk's weights stream in, prefetched, while
  // the row blocks compute on this one from L2. A residual behind a
  // pre-activation needs the whole sum before it: one chunk.
  thread_local std::vector<Chunk> chunks;
  chunks.clear();
  if (has_sum && !ep.sum_first) {
    chunks.push_back({0, taps, 0, in, 0});
  } else if (in >= kChunkSteps) {
    const int64_t parts = (in + kChunkSteps - 1) / kChunkSteps;
    for (int64_t t = 0; t < taps; ++t) {
      for (int64_t q = 0; q < parts; ++q) {
        const int64_t c0 = in * q / parts, c1 = in * (q + 1) / parts;
        chunks.push_back({t, t + 1, c0, c1, t * in + c0});
      }
    }
  } else {
    const int64_t per = std::max<int64_t>(1, kChunkSteps / in);
    for (int64_t t = 0; t < taps; t += per) chunks.push_back({t, std::min(taps, t + per), 0, in, t * in});
  }

  const int64_t panels = (out + kPanel - 1) / kPanel, panel_floats = taps * in * kPanel;
  const int64_t blocks = (pixels + kMaxRows - 1) / kMaxRows;
  const int team = static_cast<int>(std::clamp<int64_t>(threads, 1, panels));
  const float* packed_w = weights.get();
  const float* bias = b ? b->data<float>() : nullptr;
  float* yp = y.data<float>();
  const float* const* table = rows.data();
  // (thread_local: the team's threads reach the caller's through these)
  const Chunk* chunk = chunks.data();
  const size_t count = chunks.size();
  const auto steps = [chunk](size_t i) { return (chunk[i].t1 - chunk[i].t0) * (chunk[i].c1 - chunk[i].c0); };
#pragma omp parallel num_threads(team)
  {
    const int me = team > 1 ? omp_get_thread_num() : 0;
    const int64_t first = panels * me / team, last = panels * (me + 1) / team;
    for (int64_t p = first; p < last; ++p) {
      const float* wp = packed_w + p * panel_floats;
      for (size_t q = 0; q < count; ++q) {
        const float* wq = wp + chunk[q].k0 * kPanel;
        // What to prefetch meanwhile: the next chunk of this panel or of the
        // next one, shared out between the row blocks; the thread's very
        // first chunk, which nothing fetched before, 16 KB ahead of itself.
        const float* next = nullptr;
        int64_t next_lines = 0;
        if (q + 1 < count) {
          next = wp + chunk[q + 1].k0 * kPanel;
          next_lines = steps(q + 1) * 2;
        } else if (p + 1 < last) {
          next = wp + panel_floats + chunk[0].k0 * kPanel;
          next_lines = steps(0) * 2;
        }
        for (int64_t bi = 0; bi < blocks; ++bi) {
          // Blocks of near-equal size: 49 pixels go as 10, 10, 10, 10, 9.
          const int64_t m0 = pixels * bi / blocks, m1 = pixels * (bi + 1) / blocks;
          const float* pf = nullptr;
          int64_t pf_lines = 0;
          if (p == first && q == 0 && bi == 0) {
            pf = wq + kPrefetchFloats;
            pf_lines = steps(0) * 2;
          } else if (next != nullptr) {
            const int64_t l0 = next_lines * bi / blocks & ~int64_t{1},
                          l1 = next_lines * (bi + 1) / blocks & ~int64_t{1};
            pf = next + l0 * 16;
            pf_lines = (bi + 1 == blocks ? next_lines : l1) - l0;
          }
          kMicro[static_cast<size_t>(m1 - m0 - 1)](
              table + m0 * taps, taps, chunk[q], wq, bias ? bias + p * kPanel : nullptr, yp + m0 * out + p * kPanel,
              out, std::min(kPanel, out - p * kPanel), q == 0, q + 1 == count, pf, pf_lines, ep);
        }
      }
    }
  }
#else
  (void)g, (void)x, (void)w, (void)b, (void)has_sum, (void)pre, (void)act, (void)y, (void)threads;
  throw std::logic_error("StreamConv without x86-64");
#endif
}

}  // namespace deskml::kernels::cpu
