// Pools on NHWC float32 tensors (the optimizer's channels-last regions):
// deskml.NhwcMaxPool, NhwcAveragePool (2-D windows, ONNX attributes and
// output-shape rules) and NhwcGlobalAveragePool, NhwcGlobalMaxPool. The
// channel axis is contiguous, so every tap is one vectorisable row of C floats.
// With `blocked` = 16 the windowed pools take and give nChw16c activations
// ([N, C/16, H, W, 16], the blocked-layout pass): the same memory as an NHWC
// batch of N x C/16 images of 16 channels, which is how they run.
#if defined(__GNUC__) && defined(__x86_64__)
#define DESKML_BLOCKED_MAX_POOL 1
#endif

#include <algorithm>
#include <limits>
#include <vector>

#include "kernels/cpu/avx512_math.hpp"
#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/dnnl_context.hpp"
#include "kernels/cpu/elementwise_common.hpp"
#include "kernels/cpu/elementwise_isa.hpp"
#include "kernels/cpu/pool_blocked.hpp"
#include "kernels/cpu/pool_geometry.hpp"

namespace deskml::kernels::cpu {
namespace {

using onednn::kChannelBlock;

#ifdef DESKML_BLOCKED_MAX_POOL
DESKML_AVX512_WARNINGS_OFF

// The maximum down column j of `rows` rows from `in` (rows of iw vectors),
// or `lowest` for a column outside [0, iw).
[[gnu::target("avx512f"), gnu::always_inline]] inline __m512 column_max(const float* in, int64_t rows, int64_t iw,
                                                                        int64_t j, __m512 lowest) {
  if (j < 0 || j >= iw) return lowest;
  const float* p = in + j * 16;
  __m512 m = _mm512_loadu_ps(p);
  for (int64_t i = 1; i < rows; ++i) m = _mm512_max_ps(m, _mm512_loadu_ps(p + i * iw * 16));
  return m;
}

[[gnu::target("avx512f")]] void blocked_max_rows_avx512(const PoolGeometry& g, int64_t n, int64_t ih, int64_t iw,
                                                        const float* xp, float* yp, int64_t lo, int64_t hi) {
  const int64_t oh = g.out[0], ow = g.out[1], kh = g.kernel[0], kw = g.kernel[1];
  const int64_t sh = g.strides[0], sw = g.strides[1], ph = g.pad_begin[0], pw = g.pad_begin[1];
  thread_local std::vector<float> cols;
  cols.resize(static_cast<size_t>(iw * 16));
  float* cp = cols.data();
  const __m512 lowest = _mm512_set1_ps(std::numeric_limits<float>::lowest());
  // Whole rows go image by image, so that the input row two windows share is
  // still in L1 for the second: [lo, hi) = rows [lo / n, hi / n) of every image.
  const bool whole_rows = lo % n == 0 && hi % n == 0;
  const int64_t row_count = (hi - lo) / n;
  for (int64_t k = lo; k < hi; ++k) {
    const int64_t item = whole_rows ? lo + ((k - lo) % row_count) * n + (k - lo) / row_count : k;
    const int64_t r = item / n, b = item % n;
    const int64_t y0 = std::max<int64_t>(0, r * sh - ph), y1 = std::min(ih, r * sh - ph + kh);
    const float* in = xp + (b * ih + y0) * iw * 16;
    const int64_t rows = y1 - y0;
    float* out = yp + (b * oh + r) * ow * 16;
    if (kw == 3 && sw == 2) {
      // The common 3x3 stride-2 window (ResNet's, SqueezeNet's): each column
      // once, the shared one carried to the next window, nothing stored between.
      __m512 carry = column_max(in, rows, iw, -pw, lowest);
      for (int64_t q = 0; q < ow; ++q) {
        const int64_t j = 2 * q - pw;
        const __m512 c1 = column_max(in, rows, iw, j + 1, lowest), c2 = column_max(in, rows, iw, j + 2, lowest);
        _mm512_storeu_ps(out + q * 16, _mm512_max_ps(carry, _mm512_max_ps(c1, c2)));
        carry = c2;
      }
      continue;
    }
    for (int64_t j = 0; j < iw; ++j) _mm512_storeu_ps(cp + j * 16, column_max(in, rows, iw, j, lowest));
    for (int64_t q = 0; q < ow; ++q) {
      const int64_t x0 = std::max<int64_t>(0, q * sw - pw), x1 = std::min(iw, q * sw - pw + kw);
      __m512 m = lowest;
      for (int64_t j = x0; j < x1; ++j) m = _mm512_max_ps(m, _mm512_loadu_ps(cp + j * 16));
      _mm512_storeu_ps(out + q * 16, m);
    }
  }
}

DESKML_AVX512_WARNINGS_ON
#endif  // DESKML_BLOCKED_MAX_POOL

// The same loop on arrays of 16 floats, for CPUs without AVX-512.
void blocked_max_rows_portable(const PoolGeometry& g, int64_t n, int64_t ih, int64_t iw, const float* xp, float* yp,
                               int64_t lo, int64_t hi) {
  const int64_t oh = g.out[0], ow = g.out[1], kh = g.kernel[0], kw = g.kernel[1];
  const int64_t sh = g.strides[0], sw = g.strides[1], ph = g.pad_begin[0], pw = g.pad_begin[1];
  thread_local std::vector<float> cols;
  cols.resize(static_cast<size_t>(iw * 16));
  float* cp = cols.data();
  for (int64_t item = lo; item < hi; ++item) {
    const int64_t r = item / n, b = item % n;
    const int64_t y0 = std::max<int64_t>(0, r * sh - ph), y1 = std::min(ih, r * sh - ph + kh);
    const float* in = xp + b * ih * iw * 16;
    for (int64_t j = 0; j < iw; ++j) {
      float* m = cp + j * 16;
      std::fill(m, m + 16, std::numeric_limits<float>::lowest());
      for (int64_t i = y0; i < y1; ++i) {
        const float* v = in + (i * iw + j) * 16;
        for (int k = 0; k < 16; ++k) m[k] = std::max(m[k], v[k]);
      }
    }
    float* out = yp + (b * oh + r) * ow * 16;
    for (int64_t q = 0; q < ow; ++q) {
      const int64_t x0 = std::max<int64_t>(0, q * sw - pw), x1 = std::min(iw, q * sw - pw + kw);
      float* m = out + q * 16;
      std::fill(m, m + 16, std::numeric_limits<float>::lowest());
      for (int64_t j = x0; j < x1; ++j) {
        for (int k = 0; k < 16; ++k) m[k] = std::max(m[k], cp[j * 16 + k]);
      }
    }
  }
}

class NhwcPoolKernel final : public Kernel {
 public:
  NhwcPoolKernel(const graph::Node& node, bool max) : attrs_(node), max_(max), blocked_(node.attr_int("blocked", 0)) {}

  Status compute(KernelContext& ctx) override {
    const Tensor& input = ctx.required_input(0);
    if (blocked_ != 0 && blocked_ != kChannelBlock) return ctx.error("blocked must be 16");
    if (input.dtype() != DataType::kFloat32 || input.rank() != (blocked_ ? 5 : 4) ||
        (blocked_ && input.dim(4) != kChannelBlock)) {
      return ctx.error(blocked_ ? "expects a float32 nChw16c input [N, C/16, H, W, 16]"
                                : "expects a 4-D float32 NHWC input");
    }
    const Tensor x =
        blocked_ ? input.reshaped({input.dim(0) * input.dim(1), input.dim(2), input.dim(3), kChannelBlock}) : input;
    const int64_t n = x.dim(0), ih = x.dim(1), iw = x.dim(2), c = x.dim(3);
    if (attrs_.kernel_shape.size() != 2) return ctx.error("expects a 2-D kernel_shape");
    const PoolGeometry g = pool_geometry(attrs_, {n, c, ih, iw}, ctx.node().label());
    const int64_t oh = g.out[0], ow = g.out[1];
    const Shape out_shape = blocked_ ? Shape{input.dim(0), input.dim(1), oh, ow, kChannelBlock} : Shape{n, oh, ow, c};
    Tensor& out = ctx.allocate_output(0, DataType::kFloat32, out_shape);
    if (out.numel() == 0) return Status::Ok();
    Tensor y = out.reshaped({n, oh, ow, c});  // a view
    // Blocked max pools run our own loop: the threads split the output rows across
    // all channel blocks, where oneDNN's pooling of this memory (a batch of N x
    // C/16 images) splits the images: the rows a thread writes are then the rows
    // the next convolution reads on that thread. On SqueezeNet 1.1 (2 threads,
    // medians of 14-20 alternated runs): where the two CPUs share no cache, 1.708
    // ms against 1.749, its fire modules gaining more than the pool loses on
    // reading the stem's output; where they share one, 1.258 against 1.242, the
    // pool's loss about all there is. See docs/OPTIMIZER.md, "Thread hand-offs".
    if (max_ && blocked_ && g.dilations == std::vector<int64_t>{1, 1}) {
      blocked_max_pool(g, n, ih, iw, x.data<float>(), y.data<float>(), ctx.threads());
      return Status::Ok();
    }
    if (max_ && run_onednn_max(ctx, g, x, y)) return Status::Ok();
    const float* xp = x.data<float>();
    float* yp = y.data<float>();
    const int64_t kh = g.kernel[0], kw = g.kernel[1], sh = g.strides[0], sw = g.strides[1];
    const int64_t dh = g.dilations[0], dw = g.dilations[1], ph = g.pad_begin[0], pw = g.pad_begin[1];
    const int64_t eh = ih + g.pad_end[0], ew = iw + g.pad_end[1];  // padded extents (for count_include_pad)
    parallel_for(n * oh, ctx.threads(), ow * kh * kw * c, [&](int64_t lo, int64_t hi) {
      ew::run_best([&] {
        for (int64_t row = lo; row < hi; ++row) {
          const int64_t b = row / oh, r = row % oh;
          for (int64_t q = 0; q < ow; ++q) {
            float* out = yp + ((b * oh + r) * ow + q) * c;
            std::fill(out, out + c, max_ ? std::numeric_limits<float>::lowest() : 0.0f);
            int64_t valid = 0, padded = 0;
            for (int64_t i = 0; i < kh; ++i) {
              const int64_t y0 = r * sh - ph + i * dh;
              if (y0 >= eh) continue;
              for (int64_t j = 0; j < kw; ++j) {
                const int64_t x0 = q * sw - pw + j * dw;
                if (x0 >= ew) continue;
                ++padded;
                if (y0 < 0 || y0 >= ih || x0 < 0 || x0 >= iw) continue;
                ++valid;
                const float* in = xp + ((b * ih + y0) * iw + x0) * c;
                if (max_) {
                  for (int64_t k = 0; k < c; ++k) out[k] = std::max(out[k], in[k]);
                } else {
                  for (int64_t k = 0; k < c; ++k) out[k] += in[k];
                }
              }
            }
            if (!max_) {
              const int64_t div = attrs_.count_include_pad ? padded : valid;
              const float inv = div > 0 ? 1.0f / static_cast<float>(div) : 0.0f;
              for (int64_t k = 0; k < c; ++k) out[k] *= inv;
            }
          }
        }
      });
    });
    return Status::Ok();
  }

 private:
  struct Primitive {
    bool usable = false;  // oneDNN has an implementation for this problem
    dnnl::pooling_forward prim;
    dnnl::memory::desc src_md, dst_md, scratch_md;
  };

  // Max pooling through oneDNN's pooling kernel, about 4x faster than the loops
  // below on SqueezeNet's pools. Padded cells never win a max in either. The
  // end pads are widened so that oneDNN's floor rule gives the (ceil_mode)
  // output size. False: not implemented there; the loops run instead.
  bool run_onednn_max(const KernelContext& ctx, const PoolGeometry& g, const Tensor& x, Tensor& y) {
    if (g.dilations != std::vector<int64_t>{1, 1}) return false;
    std::vector<int64_t> key(x.shape().begin(), x.shape().end());
    auto e = cache_.get(key, [&] {
      using dnnl::memory;
      auto p = std::make_shared<Primitive>();
      const memory::dims src = {g.batch, g.channels, g.in[0], g.in[1]};
      const memory::dims dst = {g.batch, g.channels, g.out[0], g.out[1]};
      memory::dims pad_r(2);
      for (size_t i = 0; i < 2; ++i) pad_r[i] = (g.out[i] - 1) * g.strides[i] + g.kernel[i] - g.in[i] - g.pad_begin[i];
      p->src_md = memory::desc(src, memory::data_type::f32, memory::format_tag::nhwc);
      p->dst_md = memory::desc(dst, memory::data_type::f32, memory::format_tag::nhwc);
      try {
        const dnnl::pooling_forward::primitive_desc pd(
            dnnl::pooling_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max, p->src_md,
                                        p->dst_md, {g.strides[0], g.strides[1]}, {g.kernel[0], g.kernel[1]},
                                        {g.pad_begin[0], g.pad_begin[1]}, pad_r),
            onednn::base_attr(), onednn::engine());
        p->prim = dnnl::pooling_forward(pd);
        p->scratch_md = pd.scratchpad_desc();
        p->usable = true;
      } catch (const dnnl::error&) {
        // not usable (e.g. an end pad as large as the window): the loops run
      }
      return p;
    });
    if (!e->usable) return false;
    try {
      onednn::execute(e->prim, e->scratch_md,
                      {{DNNL_ARG_SRC, onednn::wrap(e->src_md, x)}, {DNNL_ARG_DST, onednn::wrap(e->dst_md, y)}});
    } catch (const dnnl::error& err) {
      onednn::rethrow(err, ctx.node().label());
    }
    return true;
  }

  PoolAttrs attrs_;
  bool max_;
  int64_t blocked_;
  onednn::PrimitiveCache<Primitive> cache_;
};

Status nhwc_global_pool(KernelContext& ctx, bool max) {
  const Tensor& x = ctx.required_input(0);
  if (x.dtype() != DataType::kFloat32 || x.rank() != 4) return ctx.error("expects a 4-D float32 NHWC input");
  const int64_t n = x.dim(0), plane = x.dim(1) * x.dim(2), c = x.dim(3);
  Tensor& y = ctx.allocate_output(0, DataType::kFloat32, {n, 1, 1, c});
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  const float init = max ? std::numeric_limits<float>::lowest() : 0.0f;
  // acc[k] (op)= the pixels [p0, p1) of image b, channel by channel.
  auto accumulate = [&](float* acc, int64_t b, int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const float* in = xp + (b * plane + p) * c;
      if (max) {
        for (int64_t k = 0; k < c; ++k) acc[k] = std::max(acc[k], in[k]);
      } else {
        for (int64_t k = 0; k < c; ++k) acc[k] += in[k];
      }
    }
  };
  const float inv = !max && plane > 0 ? 1.0f / static_cast<float>(plane) : 1.0f;
  const int threads = ctx.threads();
  if (n >= threads || threads <= 1) {
    // Whole images per thread.
    parallel_for(n, threads, plane * c, [&](int64_t lo, int64_t hi) {
      for (int64_t b = lo; b < hi; ++b) {
        float* out = yp + b * c;
        std::fill(out, out + c, init);
        accumulate(out, b, 0, plane);
        if (!max) {
          for (int64_t k = 0; k < c; ++k) out[k] *= inv;
        }
      }
    });
    return Status::Ok();
  }
  // Fewer images than threads: each thread takes a band of every image's rows
  // (the band its producer most likely wrote, as elementwise loops and
  // row-split convolutions do), then the threads' partial results are joined.
  thread_local std::vector<float> scratch;  // the calling thread's; workers use `partial`
  scratch.assign(static_cast<size_t>(threads * n * c), init);
  float* partial = scratch.data();
  parallel_for(threads, threads, n * plane * c / threads, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      for (int64_t b = 0; b < n; ++b) {
        accumulate(partial + (t * n + b) * c, b, plane * t / threads, plane * (t + 1) / threads);
      }
    }
  });
  for (int64_t i = 0; i < n * c; ++i) {
    float v = partial[i];
    for (int t = 1; t < threads; ++t) {
      const float w = partial[t * n * c + i];
      v = max ? std::max(v, w) : v + w;
    }
    yp[i] = max ? v : v * inv;
  }
  return Status::Ok();
}

}  // namespace

void blocked_max_rows(const PoolGeometry& g, int64_t n, int64_t ih, int64_t iw, const float* x, float* y, int64_t lo,
                      int64_t hi) {
#ifdef DESKML_BLOCKED_MAX_POOL
  if (ew::has_avx512()) {
    blocked_max_rows_avx512(g, n, ih, iw, x, y, lo, hi);
    return;
  }
#endif
  blocked_max_rows_portable(g, n, ih, iw, x, y, lo, hi);
}

void blocked_max_pool(const PoolGeometry& g, int64_t n, int64_t ih, int64_t iw, const float* x, float* y, int threads) {
  parallel_for(g.out[0] * n, threads, g.out[1] * g.kernel[0] * g.kernel[1] * 16,
               [&](int64_t lo, int64_t hi) { blocked_max_rows(g, n, ih, iw, x, y, lo, hi); });
}

void register_nhwc_pool_kernels(KernelRegistry& r) {
  for (bool max : {true, false}) {
    KernelDef def;
    def.op = max ? "NhwcMaxPool" : "NhwcAveragePool";
    def.domain = "deskml";
    def.types = {DataType::kFloat32};
    def.factory = [max](const graph::Node& node) { return std::make_unique<NhwcPoolKernel>(node, max); };
    r.add(def);
  }
  r.add(
      "NhwcGlobalMaxPool", 1, INT_MAX, {DataType::kFloat32},
      [](KernelContext& ctx) { return nhwc_global_pool(ctx, true); }, "deskml");
  r.add(
      "NhwcGlobalAveragePool", 1, INT_MAX, {DataType::kFloat32},
      [](KernelContext& ctx) { return nhwc_global_pool(ctx, false); }, "deskml");
}

}  // namespace deskml::kernels::cpu
