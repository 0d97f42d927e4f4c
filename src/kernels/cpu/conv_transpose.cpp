// ConvTranspose: oneDNN deconvolution for float32 (half types computed in
// float32), direct loops for float64.
#include <algorithm>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/conv_geometry.hpp"
#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/dnnl_context.hpp"

namespace deskml::kernels::cpu {
namespace {

// y[n, m, i*s + k*d - pb] += x[n, c, i] * w[c, m mod (M/group), k] over a 3-D geometry.
template <typename T>
void reference_conv_transpose(const ConvGeometry& g, const T* x, const T* w, T* y, int threads) {
  const int64_t cg = g.in_channels / g.group, mg = g.out_channels / g.group;
  const int64_t in_plane = g.in_size(), out_plane = g.out_size(), ksize = g.kernel_size();
  parallel_for(g.batch * g.out_channels, threads, in_plane * cg * ksize, [&](int64_t lo, int64_t hi) {
    for (int64_t nm = lo; nm < hi; ++nm) {
      const int64_t n = nm / g.out_channels, m = nm % g.out_channels, grp = m / mg, ml = m % mg;
      T* yp = y + nm * out_plane;
      std::fill(yp, yp + out_plane, T{});
      for (int64_t c = 0; c < cg; ++c) {
        const T* xp = x + (n * g.in_channels + grp * cg + c) * in_plane;
        const T* wp = w + ((grp * cg + c) * mg + ml) * ksize;
        for (int64_t kd = 0; kd < g.kernel[0]; ++kd) {
          const int64_t off_d = kd * g.dilations[0] - g.pad_begin[0];
          const auto [d_lo, d_hi] = valid_output_range(g.in[0], g.out[0], g.strides[0], off_d);
          for (int64_t kh = 0; kh < g.kernel[1]; ++kh) {
            const int64_t off_h = kh * g.dilations[1] - g.pad_begin[1];
            const auto [h_lo, h_hi] = valid_output_range(g.in[1], g.out[1], g.strides[1], off_h);
            for (int64_t kw = 0; kw < g.kernel[2]; ++kw) {
              const int64_t off_w = kw * g.dilations[2] - g.pad_begin[2];
              const auto [w_lo, w_hi] = valid_output_range(g.in[2], g.out[2], g.strides[2], off_w);
              const T wv = wp[(kd * g.kernel[1] + kh) * g.kernel[2] + kw];
              const int64_t sw = g.strides[2];
              for (int64_t a = d_lo; a < d_hi; ++a) {
                const int64_t yd = a * g.strides[0] + off_d;
                for (int64_t b = h_lo; b < h_hi; ++b) {
                  const T* xrow = xp + (a * g.in[1] + b) * g.in[2];
                  T* yrow = yp + (yd * g.out[1] + b * g.strides[1] + off_h) * g.out[2];
                  for (int64_t i = w_lo; i < w_hi; ++i) yrow[i * sw + off_w] += xrow[i] * wv;
                }
              }
            }
          }
        }
      }
    }
  });
}

template <typename T>
void fill_bias(const T* bias, T* y, int64_t batch, int64_t channels, int64_t plane) {
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t m = 0; m < channels; ++m) {
      T* p = y + (n * channels + m) * plane;
      std::fill(p, p + plane, bias ? bias[m] : T{});
    }
  }
}

class ConvTransposeKernel final : public Kernel {
 public:
  explicit ConvTransposeKernel(const graph::Node& node) : attrs_(node) {}

  Status compute(KernelContext& ctx) override {
    const Tensor& x = ctx.required_input(0);
    const Tensor& w = ctx.required_input(1);
    const Tensor* b = ctx.input(2);
    const std::string label = ctx.node().label();
    if (w.dtype() != x.dtype() || (b && b->dtype() != x.dtype())) return ctx.error("X, W and B must have one type");
    const ConvGeometry g = conv_transpose_geometry(attrs_, x.shape(), w.shape(), label);
    if (b && (b->rank() != 1 || b->dim(0) != g.out_channels)) {
      return ctx.error("bias B must have shape [" + std::to_string(g.out_channels) + "], got " +
                       shape_to_string(b->shape()));
    }
    switch (x.dtype()) {
      case DataType::kFloat32:
        run_f32(ctx, g, x, w, b, ctx.allocate_output(0, DataType::kFloat32, g.output_shape()));
        return Status::Ok();
      case DataType::kFloat64:
        run_reference<double>(ctx, g, x, w, b, ctx.allocate_output(0, DataType::kFloat64, g.output_shape()));
        return Status::Ok();
      case DataType::kFloat16:
      case DataType::kBFloat16: {
        Tensor y(DataType::kFloat32, g.output_shape());
        const Tensor bf = b ? b->cast(DataType::kFloat32) : Tensor();
        run_f32(ctx, g, x.cast(DataType::kFloat32), w.cast(DataType::kFloat32), b ? &bf : nullptr, y);
        ctx.set_output(0, y.cast(x.dtype()));
        return Status::Ok();
      }
      default:
        return unsupported(label + ": ConvTranspose does not support " + std::string(dtype_name(x.dtype())));
    }
  }

 private:
  struct Primitive {
    bool use_reference = false;
    // oneDNN computes the part of the output inside the full result (pads
    // clamped at 0); when a pad is negative that part is copied into a
    // bias-filled output at `offset`.
    bool embed = false;
    std::vector<int64_t> inner, offset;
    dnnl::deconvolution_forward prim;
    dnnl::memory::desc src_md, dst_md, bias_md, user_w_md, w_md, scratch_md;
    bool reorder_weights = false;
    std::shared_ptr<onednn::ReorderedWeights> weights;  // from shared_weights_
  };

  template <typename T>
  static void run_reference(const KernelContext& ctx, const ConvGeometry& g, const Tensor& x, const Tensor& w,
                            const Tensor* b, Tensor& y) {
    if (y.numel() == 0) return;
    T* yp = y.data<T>();
    reference_conv_transpose<T>(g.as_3d(), x.data<T>(), w.data<T>(), yp, ctx.threads());
    if (!b) return;
    const T* bias = b->data<T>();
    const int64_t plane = g.out_size();
    for (int64_t nm = 0; nm < g.batch * g.out_channels; ++nm) {
      T* p = yp + nm * plane;
      for (int64_t i = 0; i < plane; ++i) p[i] += bias[nm % g.out_channels];
    }
  }

  std::shared_ptr<Primitive> build(const ConvGeometry& g, bool has_bias) const {
    using dnnl::memory;
    auto e = std::make_shared<Primitive>();
    const int64_t cg = g.in_channels / g.group, mg = g.out_channels / g.group, ksize = g.kernel_size();
    memory::dims src = {g.batch, g.in_channels}, dst = {g.batch, g.out_channels};
    memory::dims wd, ws;  // W is [C, M/group, k...]: "i" before "o" in memory
    if (g.group > 1) {
      wd = {g.group, mg, cg};
      ws = {cg * mg * ksize, ksize, mg * ksize};
    } else {
      wd = {g.out_channels, g.in_channels};
      ws = {ksize, g.out_channels * ksize};
    }
    memory::dims strides, dilates, pl, pr;
    int64_t kstride = ksize;
    for (size_t i = 0; i < g.spatial_rank(); ++i) {
      const int64_t lo = std::max<int64_t>(g.pad_begin[i], 0), hi = std::max<int64_t>(g.pad_end[i], 0);
      const int64_t inner = g.out[i] - (lo - g.pad_begin[i]) - (hi - g.pad_end[i]);
      e->inner.push_back(inner);
      e->offset.push_back(lo - g.pad_begin[i]);
      if (lo != g.pad_begin[i] || hi != g.pad_end[i]) e->embed = true;
      src.push_back(g.in[i]);
      dst.push_back(inner);
      wd.push_back(g.kernel[i]);
      kstride /= g.kernel[i];
      ws.push_back(kstride);
      strides.push_back(g.strides[i]);
      dilates.push_back(g.dilations[i] - 1);
      pl.push_back(lo);
      pr.push_back(hi);
    }
    for (int64_t v : e->inner) {
      if (v <= 0) e->use_reference = true;  // the output holds nothing but bias/zeros
    }
    if (e->use_reference) return e;
    e->src_md = onednn::plain_desc(src);
    e->dst_md = onednn::plain_desc(dst);
    e->user_w_md = onednn::strided_desc(wd, ws);
    e->bias_md = has_bias ? onednn::plain_desc({g.out_channels}) : memory::desc();
    try {
      const memory::desc w_any(wd, memory::data_type::f32, memory::format_tag::any);
      const dnnl::deconvolution_forward::desc desc(dnnl::prop_kind::forward_inference,
                                                   dnnl::algorithm::deconvolution_direct, e->src_md, w_any, e->bias_md,
                                                   e->dst_md, strides, dilates, pl, pr);
      const dnnl::deconvolution_forward::primitive_desc pd(desc, onednn::base_attr(), onednn::engine());
      e->prim = dnnl::deconvolution_forward(pd);
      e->w_md = pd.weights_desc();
      e->weights = shared_weights_.for_layout(e->w_md);
      e->scratch_md = pd.scratchpad_desc();
      e->reorder_weights = e->w_md != e->user_w_md;
    } catch (const dnnl::error& err) {
      if (err.status != dnnl_unimplemented) onednn::rethrow(err, "ConvTranspose");
      e->use_reference = true;
    }
    return e;
  }

  void run_f32(const KernelContext& ctx, const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor* b,
               Tensor& y) {
    if (y.numel() == 0) return;
    if (x.numel() == 0 || w.numel() == 0) {
      fill_bias(b ? b->data<float>() : nullptr, y.data<float>(), g.batch, g.out_channels, g.out_size());
      return;
    }
    std::vector<int64_t> key;
    onednn::append_key(key, x.shape());
    onednn::append_key(key, w.shape());
    key.push_back(b != nullptr);
    auto e = cache_.get(key, [&] { return build(g, b != nullptr); });
    if (e->use_reference) {
      run_reference<float>(ctx, g, x, w, b, y);
      return;
    }
    Tensor inner = e->embed ? Tensor(DataType::kFloat32, e->dst_md.dims()) : y;
    try {
      // Packed weights are held through the execution.
      const onednn::PackedWeights packed = e->reorder_weights
                                               ? e->weights->get(w, e->user_w_md, e->w_md)
                                               : onednn::PackedWeights{onednn::wrap(e->user_w_md, w), {}};
      const dnnl::memory& wmem = packed.memory;
      std::unordered_map<int, dnnl::memory> args = {{DNNL_ARG_SRC, onednn::wrap(e->src_md, x)},
                                                    {DNNL_ARG_WEIGHTS, wmem},
                                                    {DNNL_ARG_DST, onednn::wrap(e->dst_md, inner)}};
      if (b) args.insert({DNNL_ARG_BIAS, onednn::wrap(e->bias_md, *b)});
      onednn::execute(e->prim, e->scratch_md, std::move(args));
    } catch (const dnnl::error& err) {
      onednn::rethrow(err, ctx.node().label());
    }
    if (e->embed) embed(g, *e, inner, b, y);
  }

  // Copies the computed block into a bias-filled output at the primitive's offset.
  static void embed(const ConvGeometry& g, const Primitive& e, const Tensor& inner, const Tensor* b, Tensor& y) {
    float* yp = y.data<float>();
    fill_bias(b ? b->data<float>() : nullptr, yp, g.batch, g.out_channels, g.out_size());
    ConvGeometry g3 = g;
    g3.out = e.inner;
    g3.pad_begin = e.offset;  // reuse as_3d to pad the vectors to 3 axes
    const ConvGeometry in3 = g3.as_3d();
    const ConvGeometry out3 = g.as_3d();
    const float* src = inner.data<float>();
    for (int64_t nm = 0; nm < g.batch * g.out_channels; ++nm) {
      for (int64_t d = 0; d < in3.out[0]; ++d) {
        for (int64_t h = 0; h < in3.out[1]; ++h) {
          const float* s = src + ((nm * in3.out[0] + d) * in3.out[1] + h) * in3.out[2];
          float* t = yp +
                     ((nm * out3.out[0] + d + in3.pad_begin[0]) * out3.out[1] + h + in3.pad_begin[1]) * out3.out[2] +
                     in3.pad_begin[2];
          std::copy(s, s + in3.out[2], t);
        }
      }
    }
  }

  ConvAttrs attrs_;
  onednn::PrimitiveCache<Primitive> cache_;
  mutable onednn::SharedWeights shared_weights_;  // build() is const; the weights are a cache
};

}  // namespace

void register_conv_transpose_kernels(KernelRegistry& r) {
  KernelDef def;
  def.op = "ConvTranspose";
  def.since = 1;
  def.types = {DataType::kFloat32, DataType::kFloat64, DataType::kFloat16, DataType::kBFloat16};
  def.factory = [](const graph::Node& node) { return std::make_unique<ConvTransposeKernel>(node); };
  r.add(def);
}

}  // namespace deskml::kernels::cpu
