// Conv: oneDNN for float32 (half types computed in float32), direct loops for float64.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/conv_geometry.hpp"
#include "kernels/cpu/conv_pool.hpp"
#include "kernels/cpu/conv_stream.hpp"
#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/dnnl_context.hpp"
#include "kernels/cpu/matmul_loops.hpp"
#include "kernels/cpu/pool_blocked.hpp"
#include "kernels/cpu/post_ops.hpp"

namespace deskml::kernels::cpu {

void register_conv_transpose_kernels(KernelRegistry& r);
void register_conv_integer_kernels(KernelRegistry& r);
void register_layout_reorder_kernels(KernelRegistry& r);

namespace {

// Bounds every size-like attribute so the shape arithmetic below cannot overflow.
constexpr int64_t kMaxAttrValue = INT32_MAX;
using onednn::kChannelBlock;

[[noreturn]] void fail(const std::string& label, const std::string& message) {
  throw_status(invalid_argument(label + ": " + message));
}

std::vector<int64_t> spatial_attr(const std::vector<int64_t>& v, size_t rank, int64_t def, int64_t min_value,
                                  const char* name, const std::string& label) {
  if (v.empty()) return std::vector<int64_t>(rank, def);
  if (v.size() != rank) {
    fail(label, std::string(name) + " has " + std::to_string(v.size()) + " values, expected " + std::to_string(rank));
  }
  for (int64_t x : v) {
    if (x < min_value) fail(label, std::string(name) + " values must be >= " + std::to_string(min_value));
    if (x > kMaxAttrValue) fail(label, std::string(name) + " values are implausibly large");
  }
  return v;
}

int64_t checked_mul(int64_t a, int64_t b, const std::string& label) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) fail(label, "output size overflows");
  return r;
}

int64_t floor_div2(int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

// Shared checks and fields for Conv and ConvTranspose; returns spatial rank.
size_t common_geometry(const ConvAttrs& attrs, const Shape& x, const Shape& w, const std::string& label,
                       ConvGeometry& g) {
  if (x.size() < 3) fail(label, "input X must have rank >= 3 (N, C, spatial...), got " + shape_to_string(x));
  if (w.size() != x.size()) {
    fail(label, "weights W " + shape_to_string(w) + " must have the same rank as X " + shape_to_string(x));
  }
  const size_t sr = x.size() - 2;
  if (attrs.group < 1) fail(label, "group must be >= 1");
  g.batch = x[0];
  g.group = attrs.group;
  g.in.assign(x.begin() + 2, x.end());
  g.kernel.assign(w.begin() + 2, w.end());
  for (int64_t k : g.kernel) {
    if (k > kMaxAttrValue) fail(label, "the kernel is implausibly large");
  }
  if (!attrs.kernel_shape.empty() && attrs.kernel_shape != g.kernel) {
    fail(label, "kernel_shape attribute does not match the weights' spatial shape " + shape_to_string(w));
  }
  g.strides = spatial_attr(attrs.strides, sr, 1, 1, "strides", label);
  g.dilations = spatial_attr(attrs.dilations, sr, 1, 1, "dilations", label);
  return sr;
}

}  // namespace

ConvAttrs::ConvAttrs(const graph::Node& node)
    : auto_pad(node.attr_string("auto_pad", "NOTSET")),
      kernel_shape(node.attr_ints("kernel_shape")),
      strides(node.attr_ints("strides")),
      dilations(node.attr_ints("dilations")),
      pads(node.attr_ints("pads")),
      output_padding(node.attr_ints("output_padding")),
      output_shape(node.attr_ints("output_shape")),
      group(node.attr_int("group", 1)) {
  if (auto_pad.empty()) auto_pad = "NOTSET";
}

Shape ConvGeometry::output_shape() const {
  Shape s = {batch, out_channels};
  s.insert(s.end(), out.begin(), out.end());
  return s;
}

int64_t ConvGeometry::in_size() const { return shape_numel(in); }
int64_t ConvGeometry::out_size() const { return shape_numel(out); }
int64_t ConvGeometry::kernel_size() const { return shape_numel(kernel); }

ConvGeometry ConvGeometry::as_3d() const {
  ConvGeometry g = *this;
  while (g.in.size() < 3) {
    g.in.insert(g.in.begin(), 1);
    g.out.insert(g.out.begin(), 1);
    g.kernel.insert(g.kernel.begin(), 1);
    g.strides.insert(g.strides.begin(), 1);
    g.dilations.insert(g.dilations.begin(), 1);
    g.pad_begin.insert(g.pad_begin.begin(), 0);
    g.pad_end.insert(g.pad_end.begin(), 0);
  }
  return g;
}

ConvGeometry conv_geometry(const ConvAttrs& attrs, const Shape& x, const Shape& w, const std::string& label) {
  ConvGeometry g;
  const size_t sr = common_geometry(attrs, x, w, label, g);
  g.in_channels = x[1];
  g.out_channels = w[0];
  if (w[1] * g.group != g.in_channels) {
    fail(label, "X has " + std::to_string(x[1]) + " channels but W " + shape_to_string(w) + " with group " +
                    std::to_string(g.group) + " expects " + std::to_string(w[1] * g.group));
  }
  if (g.out_channels % g.group != 0) fail(label, "W's output channels are not divisible by group");
  std::vector<int64_t> pads = spatial_attr(attrs.pads, 2 * sr, 0, 0, "pads", label);
  g.pad_begin.assign(pads.begin(), pads.begin() + static_cast<ptrdiff_t>(sr));
  g.pad_end.assign(pads.begin() + static_cast<ptrdiff_t>(sr), pads.end());
  g.out.resize(sr);
  for (size_t i = 0; i < sr; ++i) {
    const int64_t dk = (g.kernel[i] - 1) * g.dilations[i] + 1;
    if (attrs.auto_pad == "SAME_UPPER" || attrs.auto_pad == "SAME_LOWER") {
      const int64_t out = (g.in[i] + g.strides[i] - 1) / g.strides[i];
      const int64_t total = std::max<int64_t>(0, (out - 1) * g.strides[i] + dk - g.in[i]);
      g.pad_begin[i] = attrs.auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      g.pad_end[i] = total - g.pad_begin[i];
    } else if (attrs.auto_pad == "VALID") {
      g.pad_begin[i] = g.pad_end[i] = 0;
    } else if (attrs.auto_pad != "NOTSET") {
      fail(label, "unknown auto_pad '" + attrs.auto_pad + "'");
    }
    const int64_t span = g.in[i] + g.pad_begin[i] + g.pad_end[i] - dk;
    if (span < 0) {
      fail(label, "the (dilated) kernel is larger than the padded input along spatial axis " + std::to_string(i));
    }
    g.out[i] = span / g.strides[i] + 1;
  }
  return g;
}

ConvGeometry conv_transpose_geometry(const ConvAttrs& attrs, const Shape& x, const Shape& w, const std::string& label) {
  ConvGeometry g;
  const size_t sr = common_geometry(attrs, x, w, label, g);
  g.in_channels = x[1];
  if (w[0] != g.in_channels) {
    fail(label, "X has " + std::to_string(x[1]) + " channels but W " + shape_to_string(w) + " expects " +
                    std::to_string(w[0]));
  }
  if (g.in_channels % g.group != 0) fail(label, "X's channels are not divisible by group");
  g.out_channels = w[1] * g.group;
  const std::vector<int64_t> out_pad = spatial_attr(attrs.output_padding, sr, 0, 0, "output_padding", label);
  std::vector<int64_t> pads = spatial_attr(attrs.pads, 2 * sr, 0, 0, "pads", label);
  g.pad_begin.assign(pads.begin(), pads.begin() + static_cast<ptrdiff_t>(sr));
  g.pad_end.assign(pads.begin() + static_cast<ptrdiff_t>(sr), pads.end());
  std::vector<int64_t> target;
  if (!attrs.output_shape.empty()) {
    if (attrs.output_shape.size() != sr && attrs.output_shape.size() != sr + 2) {
      fail(label, "output_shape must have one value per spatial axis");
    }
    target.assign(attrs.output_shape.end() - static_cast<ptrdiff_t>(sr), attrs.output_shape.end());
  } else if (attrs.auto_pad == "SAME_UPPER" || attrs.auto_pad == "SAME_LOWER") {
    target.resize(sr);
    for (size_t i = 0; i < sr; ++i) target[i] = g.in[i] * g.strides[i];
  } else if (attrs.auto_pad == "VALID") {
    std::fill(g.pad_begin.begin(), g.pad_begin.end(), 0);
    std::fill(g.pad_end.begin(), g.pad_end.end(), 0);
  } else if (attrs.auto_pad != "NOTSET") {
    fail(label, "unknown auto_pad '" + attrs.auto_pad + "'");
  }
  g.out.resize(sr);
  for (size_t i = 0; i < sr; ++i) {
    const int64_t dk = (g.kernel[i] - 1) * g.dilations[i] + 1;
    const int64_t full = checked_mul(g.strides[i], std::max<int64_t>(g.in[i] - 1, 0), label) + out_pad[i] + dk;
    if (!target.empty()) {
      if (target[i] < 0) fail(label, "output_shape values must be >= 0");
      // Spec formulas, with floor division so a negative total (output larger
      // than the full result) adds zero rows at the end.
      const int64_t total = full - target[i];
      if (attrs.auto_pad == "SAME_UPPER") {
        g.pad_begin[i] = floor_div2(total);
        g.pad_end[i] = total - g.pad_begin[i];
      } else {
        g.pad_end[i] = floor_div2(total);
        g.pad_begin[i] = total - g.pad_end[i];
      }
    }
    g.out[i] = full - g.pad_begin[i] - g.pad_end[i];
    if (g.out[i] < 0) fail(label, "pads are larger than the output along spatial axis " + std::to_string(i));
    // Internally the output padding is folded into the end pad (negative when it adds rows).
    g.pad_end[i] -= out_pad[i];
  }
  return g;
}

namespace {

// Conv, and deskml.FusedConv: the same with activations and a residual sum
// applied by oneDNN post-ops (Y = act(conv(X, W) + B [+ act0 then] + Sum)), and
// with `channels_last` X, Sum and Y in NHWC (the optimizer's layout pass), and
// with `blocked` (= 16) X, Sum and Y in nChw16c held as [N, C/16, H, W, 16] (the
// optimizer's blocked-layout pass; with `nchw_input` X stays plain NCHW: a
// network's first convolution reading its input), and
// with `winograd` 3x3 stride-1 problems by Winograd's algorithm where oneDNN has it.
// deskml.FusedConvMaxPool is a blocked FusedConv (no residual) whose output
// goes through the max pool its `pool_*` attributes describe (MaxPool's,
// prefixed), run band by band of rows (conv_pool.hpp).
class ConvKernel final : public Kernel {
 public:
  explicit ConvKernel(const graph::Node& node)
      : attrs_(node),
        fused_(node.op_type == "FusedConv" || node.op_type == "FusedConvMaxPool"),
        pool_(node.op_type == "FusedConvMaxPool" ? std::optional<PoolAttrs>(PoolAttrs(node, "pool_")) : std::nullopt),
        channels_last_(node.attr_int("channels_last", 0) != 0),
        blocked_(node.attr_int("blocked", 0)),
        nchw_input_(node.attr_int("nchw_input", 0) != 0),
        winograd_(node.attr_int("winograd", 0) != 0),
        pre_(FusedActivation::from_node(node, "pre_activation")),
        act_(FusedActivation::from_node(node, "activation")),
        label_(node.label()) {}

  Status compute(KernelContext& ctx) override {
    const Tensor& x_in = ctx.required_input(0);
    const Tensor& w = ctx.required_input(1);
    const Tensor* b = ctx.input(2);
    const Tensor* sum = fused_ ? ctx.input(3) : nullptr;
    if (w.dtype() != x_in.dtype() || (b && b->dtype() != x_in.dtype())) {
      return ctx.error("X, W and B must have one type");
    }
    if (blocked_ && nchw_input_) {
      if (x_in.rank() != 4 || w.rank() != 4 || w.dim(0) % kChannelBlock != 0 || blocked_ != kChannelBlock || sum) {
        return ctx.error(
            "blocked (nChw16c) with nchw_input needs 4-D NCHW X and W, a multiple of 16 outputs, blocked = 16 "
            "and no residual");
      }
    } else if (blocked_) {
      if (x_in.rank() != 5 || x_in.dim(4) != kChannelBlock || w.rank() != 4 || w.dim(0) % kChannelBlock != 0 ||
          blocked_ != kChannelBlock) {
        return ctx.error(
            "blocked (nChw16c) needs X [N, C/16, H, W, 16], 4-D W with a multiple of 16 outputs and "
            "blocked = 16");
      }
    } else if (channels_last_ && (x_in.rank() != 4 || w.rank() != 4)) {
      return ctx.error("channels_last needs 4-D X and W");
    }
    if (fused_ && x_in.dtype() != DataType::kFloat32) return ctx.error("FusedConv is float32 only");
    if (pool_ && (!blocked_ || sum)) return ctx.error("FusedConvMaxPool needs blocked (nChw16c) data and no residual");
    switch (x_in.dtype()) {
      case DataType::kFloat32: {
        if (pool_) return compute_pooled(ctx, x_in, w, b);
        // Geometry and primitive come together from the per-shape cache.
        const auto e = entry(x_in, w, b != nullptr, sum != nullptr);
        DESKML_RETURN_IF_ERROR(check_operands(ctx, e->g, e->out_shape, b, sum));
        Tensor y = residual_output(ctx, 3, sum, e->out_shape);  // `sum` dangles after a take
        run_f32(ctx, *e, x_in, w, b, sum != nullptr, y);
        ctx.set_output(0, std::move(y));
        return Status::Ok();
      }
      case DataType::kFloat64:
      case DataType::kFloat16:
      case DataType::kBFloat16:
        break;
      default:
        return unsupported(label_ + ": Conv does not support " + std::string(dtype_name(x_in.dtype())));
    }
    const ConvGeometry g = geometry(x_in, w);
    DESKML_RETURN_IF_ERROR(check_operands(ctx, g, g.output_shape(), b, sum));
    if (x_in.dtype() == DataType::kFloat64) {
      run_reference<double>(ctx, g, x_in, w, b, ctx.allocate_output(0, DataType::kFloat64, g.output_shape()));
      return Status::Ok();
    }
    const Tensor xf = x_in.cast(DataType::kFloat32), wf = w.cast(DataType::kFloat32);
    const Tensor bf = b ? b->cast(DataType::kFloat32) : Tensor();
    const auto e = entry(xf, wf, b != nullptr, false);
    Tensor y(DataType::kFloat32, g.output_shape());
    run_f32(ctx, *e, xf, wf, b ? &bf : nullptr, false, y);
    ctx.set_output(0, y.cast(x_in.dtype()));
    return Status::Ok();
  }

 private:
  struct Primitive {
    mutable onednn::ArgSlots slots;  // FastArgs' memory objects, per thread
    ConvGeometry g;                  // of this input shape
    Shape out_shape;                 // Y's (NHWC when channels_last)
    bool use_reference = false;      // oneDNN had no implementation for this problem
    dnnl::convolution_forward prim;
    dnnl::memory::desc src_md, dst_md, bias_md, user_w_md, w_md, scratch_md;
    bool reorder_weights = false;
    std::shared_ptr<onednn::ReorderedWeights> weights;  // from shared_weights_
    bool staged = false;        // runs on blocked activations (Winograd): `staging` reorders them
    bool deferred_act = false;  // act_ is applied after the primitive, not as its post-op
    bool stream = false;        // runs on StreamConv (stream_), not oneDNN
    onednn::Staging staging;
  };

  // Geometry works on the logical NCHW shape.
  ConvGeometry geometry(const Tensor& x, const Tensor& w) const {
    const Shape& xs = x.shape();
    const Shape logical = blocked_ && nchw_input_ ? xs
                          : blocked_              ? Shape{xs[0], xs[1] * kChannelBlock, xs[2], xs[3]}
                          : channels_last_        ? Shape{xs[0], xs[3], xs[1], xs[2]}
                                                  : xs;
    return conv_geometry(attrs_, logical, w.shape(), label_);
  }

  // The cached geometry and primitive for these shapes; built (and the
  // geometry checked, throwing on bad attributes) on a miss.
  std::shared_ptr<Primitive> entry(const Tensor& x, const Tensor& w, bool has_bias, bool has_sum) {
    thread_local std::vector<int64_t> key;  // no allocation per run
    key.clear();
    onednn::append_key(key, x.shape());
    onednn::append_key(key, w.shape());
    key.push_back(has_bias);
    key.push_back(has_sum);
    return cache_.get(key, [&] {
      const ConvGeometry g = geometry(x, w);
      auto e = build(g, has_bias, has_sum);
      e->g = g;
      e->out_shape = g.output_shape();
      const Shape& o = e->out_shape;
      if (blocked_) {
        e->out_shape = {o[0], o[1] / kChannelBlock, o[2], o[3], kChannelBlock};
      } else if (channels_last_) {
        e->out_shape = {o[0], o[2], o[3], o[1]};
      }
      return e;
    });
  }

  static Status check_operands(const KernelContext& ctx, const ConvGeometry& g, const Shape& out_shape, const Tensor* b,
                               const Tensor* sum) {
    if (b && (b->rank() != 1 || b->dim(0) != g.out_channels)) {
      return ctx.error("bias B must have shape [" + std::to_string(g.out_channels) + "], got " +
                       shape_to_string(b->shape()));
    }
    if (sum && sum->shape() != out_shape) {
      return ctx.error("the fused sum input " + sum->description() + " must have the output's shape " +
                       shape_to_string(out_shape));
    }
    return Status::Ok();
  }

  template <typename T>
  static void run_reference(const KernelContext& ctx, const ConvGeometry& g, const Tensor& x, const Tensor& w,
                            const Tensor* b, Tensor& y) {
    if (y.numel() == 0) return;
    T* yp = y.data<T>();
    reference_conv<T, T, T>(g.as_3d(), x.data<T>(), w.data<T>(), T{}, nullptr, yp, ctx.threads());
    if (b) add_bias(b->data<T>(), yp, g.batch, g.out_channels, g.out_size());
  }

  template <typename T>
  static void add_bias(const T* bias, T* y, int64_t batch, int64_t channels, int64_t plane) {
    for (int64_t n = 0; n < batch; ++n) {
      for (int64_t m = 0; m < channels; ++m) {
        T* p = y + (n * channels + m) * plane;
        for (int64_t i = 0; i < plane; ++i) p[i] += bias[m];
      }
    }
  }

  std::shared_ptr<Primitive> build(const ConvGeometry& g, bool has_bias, bool has_sum) const {
    using dnnl::memory;
    auto e = std::make_shared<Primitive>();
    memory::dims src = {g.batch, g.in_channels}, dst = {g.batch, g.out_channels};
    memory::dims wd = g.group > 1 ? memory::dims{g.group, g.out_channels / g.group, g.in_channels / g.group}
                                  : memory::dims{g.out_channels, g.in_channels};
    memory::dims strides, dilates, pl, pr;
    for (size_t i = 0; i < g.spatial_rank(); ++i) {
      src.push_back(g.in[i]);
      dst.push_back(g.out[i]);
      wd.push_back(g.kernel[i]);
      strides.push_back(g.strides[i]);
      dilates.push_back(g.dilations[i] - 1);
      pl.push_back(g.pad_begin[i]);
      pr.push_back(g.pad_end[i]);
    }
    if (blocked_) {
      // A network's first convolution (3 input channels) reads the NCHW input
      // itself: oneDNN has a kernel for plain sources and blocked destinations.
      e->src_md = nchw_input_ ? onednn::plain_desc(src)
                              : memory::desc(src, memory::data_type::f32, memory::format_tag::nChw16c);
      e->dst_md = memory::desc(dst, memory::data_type::f32, memory::format_tag::nChw16c);
    } else if (channels_last_) {
      e->src_md = memory::desc(src, memory::data_type::f32, memory::format_tag::nhwc);
      e->dst_md = memory::desc(dst, memory::data_type::f32, memory::format_tag::nhwc);
    } else {
      e->src_md = onednn::plain_desc(src);
      e->dst_md = onednn::plain_desc(dst);
    }
    e->user_w_md = onednn::plain_desc(wd);
    e->bias_md = has_bias ? onednn::plain_desc({g.out_channels}) : memory::desc();
    try {
      dnnl::primitive_attr attr = onednn::base_attr();
      dnnl::post_ops ops;
      if (has_sum) {
        pre_.append_to(ops);
        ops.append_sum(1.0f);
      }
      // The last activation may run as a pass of our own after the primitive.
      e->deferred_act = act_.faster_unfused();
      if (!e->deferred_act) act_.append_to(ops);
      attr.set_post_ops(ops);
      const memory::desc w_any(wd, memory::data_type::f32, memory::format_tag::any);
      dnnl::convolution_forward::primitive_desc pd;
      bool chosen = false;  // pd holds a Winograd primitive
      if (winograd_ && !has_sum && !nchw_input_ && winograd_shape(g, !blocked_)) {
        // Winograd runs on oneDNN's blocked activations: reorders stage them
        // unless this node's already are.
        const memory::desc src_any =
            blocked_ ? e->src_md : memory::desc(src, memory::data_type::f32, memory::format_tag::any);
        const memory::desc dst_any =
            blocked_ ? e->dst_md : memory::desc(dst, memory::data_type::f32, memory::format_tag::any);
        try {
          pd = dnnl::convolution_forward::primitive_desc(
              dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_winograd,
                                              src_any, w_any, e->bias_md, dst_any, strides, dilates, pl, pr),
              attr, onednn::engine());
          if (winograd_pays(pd)) {
            if (!blocked_) {
              e->staging = onednn::Staging(e->src_md, pd.src_desc(), pd.dst_desc(), e->dst_md);
              e->staged = true;
            }
            chosen = true;
          } else if (g.batch > 1 && !blocked_) {
            chosen = per_image_winograd(*e, g, src, dst, w_any, attr, strides, dilates, pl, pr, pd);
          }
        } catch (const dnnl::error& err) {
          if (err.status != dnnl_unimplemented) throw;
          // not for this CPU or problem: the direct algorithm below
        }
      }
      // Few output pixels per weight, where Winograd's algorithm does not
      // pay: the weights are the cost, and StreamConv streams them faster.
      if (!chosen && channels_last_ && !blocked_ && StreamConv::suits(g)) {
        e->stream = true;
        return e;
      }
      if (!chosen) {
        pd = dnnl::convolution_forward::primitive_desc(
            dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                            e->src_md, w_any, e->bias_md, e->dst_md, strides, dilates, pl, pr),
            attr, onednn::engine());
      }
      e->prim = dnnl::convolution_forward(pd);
      e->w_md = pd.weights_desc();
      e->weights = shared_weights_.for_layout(e->w_md);
      e->scratch_md = pd.scratchpad_desc();
      e->reorder_weights = e->w_md != e->user_w_md;
    } catch (const dnnl::error& err) {
      if (err.status != dnnl_unimplemented) onednn::rethrow(err, "Conv");
      e->use_reference = true;
    }
    return e;
  }

  // A problem Winograd's F(m, 3x3) applies to (2-D, one group, a 3x3 kernel at
  // stride 1 without dilation) and may pay on. Its transformed weights are 1.8x
  // (m = 2) to 4x (m = 4) the size and every run reads them in full, so a layer
  // with few output pixels per weight (ResNet's 7x7 layers at batch 1) is bound
  // by memory and runs no faster. oneDNN then decides whether it implements the
  // problem, and winograd_pays() looks at the weights it would use.
  // The saving is in the channel products (in x out per tile); the transforms
  // and staging cost in + out per tile, so few channels do not pay (SqueezeNet's
  // 16 -> 64 expansion ran slower than direct), nor do small problems (the
  // digits model's 8x8 images: 2.4x slower) or 13x13 maps, whose tiles overhang.
  // Without the staging (`staged` false: the activations already are blocked)
  // the bar is lower: SqueezeNet's 16 -> 64 expansion at 55x55 runs in 77 us
  // against 109 direct, its 48 -> 192 at 13x13 in 36 against 50.
  static bool winograd_shape(const ConvGeometry& g, bool staged) {
    const int64_t kMinPixels = staged ? 196 : 144;         // batch x output height x width (ResNet's 14x14)
    const int64_t kMinChannels = staged ? 24 : 12;         // in x out / (in + out)
    constexpr int64_t kMinMultiplies = int64_t{10} << 20;  // of the direct algorithm
    if (g.spatial_rank() != 2 || g.group != 1 || g.kernel != std::vector<int64_t>{3, 3} ||
        g.strides != std::vector<int64_t>{1, 1} || g.dilations != std::vector<int64_t>{1, 1}) {
      return false;
    }
    const int64_t pixels = g.batch * g.out_size();
    const int64_t channels = g.in_channels * g.out_channels / std::max<int64_t>(1, g.in_channels + g.out_channels);
    return pixels >= kMinPixels && channels >= kMinChannels &&
           pixels * g.in_channels * g.out_channels * 9 >= kMinMultiplies;
  }

  // A batch whose Winograd primitive's weights are too large (oneDNN takes
  // F(4x4) from batch 2 up: 9.4 MB for 256x256x3x3) may still run image by
  // image through the batch-1 primitive (F(2x2), 4.2 MB, the very weights the
  // warm-up transformed): ResNet-50's 256-channel layers at batch 8 took
  // 1.8 ms so against 3.4 ms direct. The batch is staged in nChw16c at once,
  // where each image is a batch-1 tensor of its own.
  bool per_image_winograd(Primitive& e, const ConvGeometry& g, const dnnl::memory::dims& src,
                          const dnnl::memory::dims& dst, const dnnl::memory::desc& w_any,
                          const dnnl::primitive_attr& attr, const dnnl::memory::dims& strides,
                          const dnnl::memory::dims& dilates, const dnnl::memory::dims& pl, const dnnl::memory::dims& pr,
                          dnnl::convolution_forward::primitive_desc& pd) const {
    using dnnl::memory;
    memory::dims src1 = src, dst1 = dst;
    src1[0] = dst1[0] = 1;
    const auto blocked = [](const memory::dims& d) {
      return memory::desc(d, memory::data_type::f32, memory::format_tag::nChw16c);
    };
    try {
      dnnl::convolution_forward::primitive_desc one(
          dnnl::convolution_forward::desc(
              dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_winograd,
              memory::desc(src1, memory::data_type::f32, memory::format_tag::any), w_any, e.bias_md,
              memory::desc(dst1, memory::data_type::f32, memory::format_tag::any), strides, dilates, pl, pr),
          attr, onednn::engine());
      if (!winograd_pays(one) || one.src_desc() != blocked(src1) || one.dst_desc() != blocked(dst1)) return false;
      e.staging = onednn::Staging(e.src_md, blocked(src), blocked(dst), e.dst_md);
      e.staging.images = g.batch;
      e.staging.image_src = one.src_desc();
      e.staging.image_dst = one.dst_desc();
      e.staged = true;
      pd = one;
      return true;
    } catch (const dnnl::error& err) {
      if (err.status != dnnl_unimplemented) throw;
      return false;
    }
  }

  // Large transformed weights lose twice: streamed from memory on every run
  // (ResNet-50's 512-channel layers run slower than direct even at batch 8),
  // and transformed single-threaded at load (about 40 ms for 512x512x3x3).
  static bool winograd_pays(const dnnl::convolution_forward::primitive_desc& pd) {
    constexpr size_t kMaxWeightBytes = size_t{6} << 20;
    return pd.weights_desc().get_size() <= kMaxWeightBytes;
  }

  // The reference path for problems oneDNN does not implement: NCHW loops, then
  // the post-ops by hand. `y` holds the residual on entry when has_sum.
  void run_reference_f32(const KernelContext& ctx, const ConvGeometry& g, const Tensor& x, const Tensor& w,
                         const Tensor* b, bool has_sum, Tensor& y) const {
    const Shape in_nchw = {g.batch, g.in_channels, g.in[0], g.in[1]};
    const Tensor xn = blocked_ && nchw_input_ ? x
                      : blocked_              ? permute_tensor(x, {0, 1, 4, 2, 3}, ctx.threads()).reshaped(in_nchw)
                      : channels_last_        ? permute_tensor(x, {0, 3, 1, 2}, ctx.threads())
                                              : x;
    Tensor yn(DataType::kFloat32, g.output_shape());
    run_reference<float>(ctx, g, xn, w, b, yn);
    if (blocked_) {
      const Shape split = {g.batch, g.out_channels / kChannelBlock, kChannelBlock, g.out[0], g.out[1]};
      yn = permute_tensor(yn.reshaped(split), {0, 1, 3, 4, 2}, ctx.threads());
    } else if (channels_last_) {
      yn = permute_tensor(yn, {0, 2, 3, 1}, ctx.threads());
    }
    float* out = y.data<float>();
    const float* r = yn.data<float>();
    for (int64_t i = 0; i < y.numel(); ++i) {
      float v = r[i];
      if (has_sum) v = pre_.apply(v) + out[i];
      out[i] = act_.apply(v);
    }
  }

  void run_f32(const KernelContext& ctx, const Primitive& entry, const Tensor& x, const Tensor& w, const Tensor* b,
               bool has_sum, Tensor& y) {
    const ConvGeometry& g = entry.g;
    if (y.numel() == 0) return;
    if (x.numel() == 0 || w.numel() == 0) {  // nothing to sum: the output is the bias
      if (!has_sum) std::fill(y.data<float>(), y.data<float>() + y.numel(), 0.0f);
      if (b && blocked_) {  // [N, C/16, H, W, 16]
        float* yp = y.data<float>();
        const int64_t run = g.out_size() * kChannelBlock, blocks = g.out_channels / kChannelBlock;
        for (int64_t i = 0; i < y.numel(); ++i)
          yp[i] += b->data<float>()[(i / run) % blocks * kChannelBlock + i % kChannelBlock];
      } else if (b && channels_last_) {
        float* yp = y.data<float>();
        for (int64_t i = 0; i < y.numel(); ++i) yp[i] += b->data<float>()[i % g.out_channels];
      } else if (b) {
        add_bias(b->data<float>(), y.data<float>(), g.batch, g.out_channels, g.out_size());
      }
      act_.apply(y.data<float>(), y.numel(), ctx.threads());
      return;
    }
    const Primitive& e = entry;
    if (e.stream) {
      stream_.run(g, x, w, b, has_sum, pre_, act_, y, ctx.threads());
      return;
    }
    if (e.use_reference) {
      run_reference_f32(ctx, g, x, w, b, has_sum, y);
      return;
    }
    try {
      // Packed weights are held through the execution.
      const onednn::PackedWeights packed = packed_weights(e, w);
      const dnnl::memory& wmem = packed.memory;
      if (e.staged) {
        std::unordered_map<int, dnnl::memory> args = {{DNNL_ARG_SRC, onednn::wrap(e.src_md, x)},
                                                      {DNNL_ARG_WEIGHTS, wmem},
                                                      {DNNL_ARG_DST, onednn::wrap(e.dst_md, y)}};
        if (b) args.insert({DNNL_ARG_BIAS, onednn::wrap(e.bias_md, *b)});
        onednn::execute_staged(e.prim, e.scratch_md, std::move(args), e.staging);
      } else {
        execute_direct(e, x.raw_data(), wmem, y.raw_data(), b);
      }
    } catch (const dnnl::error& err) {
      onednn::rethrow(err, label_);
    }
    if (e.deferred_act) act_.apply(y.data<float>(), y.numel(), ctx.threads());
  }

  // The weights `e` runs on: reordered into its layout (cached), or `w` itself.
  static onednn::PackedWeights packed_weights(const Primitive& e, const Tensor& w) {
    return e.reorder_weights ? e.weights->get(w, e.user_w_md, e.w_md)
                             : onednn::PackedWeights{onednn::wrap(e.user_w_md, w), {}};
  }

  // Runs an unstaged primitive on this thread: src and dst in the layouts it was built for.
  static void execute_direct(const Primitive& e, const void* src, const dnnl::memory& weights, void* dst,
                             const Tensor* b) {
    onednn::FastArgs args(e.slots);
    args.add(DNNL_ARG_SRC, e.src_md, src);
    args.add(DNNL_ARG_WEIGHTS, weights);
    args.add(DNNL_ARG_DST, e.dst_md, dst);
    if (b) args.add(DNNL_ARG_BIAS, e.bias_md, b->raw_data());
    args.execute(e.prim, e.scratch_md);
  }

  // deskml.FusedConvMaxPool: y = maxpool(conv(x)), blocked.
  Status compute_pooled(KernelContext& ctx, const Tensor& x, const Tensor& w, const Tensor* b) {
    const ConvGeometry g = geometry(x, w);
    if (g.spatial_rank() != 2) return ctx.error("FusedConvMaxPool is 2-D only");
    DESKML_RETURN_IF_ERROR(check_operands(ctx, g, g.output_shape(), b, nullptr));
    // The pool sees the convolution's output as N x C/16 images of 16 channels.
    const int64_t n = g.batch * (g.out_channels / kChannelBlock);
    const PoolGeometry pg = pool_geometry(*pool_, {n, kChannelBlock, g.out[0], g.out[1]}, label_);
    if (pg.kernel.size() != 2 || pg.dilations != std::vector<int64_t>{1, 1}) {
      return ctx.error("FusedConvMaxPool's pool must be 2-D and undilated");
    }
    Tensor& y = ctx.allocate_output(0, DataType::kFloat32,
                                    {g.batch, g.out_channels / kChannelBlock, pg.out[0], pg.out[1], kChannelBlock});
    if (y.numel() == 0) return Status::Ok();
    if (x.numel() > 0 && w.numel() > 0 && run_bands(ctx, g, pg, x, w, b, y)) return Status::Ok();
    // Unfused: the whole convolution, then the pool.
    const auto e = entry(x, w, b != nullptr, false);
    Tensor full(DataType::kFloat32, e->out_shape);
    run_f32(ctx, *e, x, w, b, false, full);
    blocked_max_pool(pg, n, g.out[0], g.out[1], full.data<float>(), y.data<float>(), ctx.threads());
    return Status::Ok();
  }

  // The convolution's output rows a band holds at most: 256 KB of them, so
  // that the band and the input rows it reads stay in a core's L2 cache.
  static constexpr int64_t kBandBytes = int64_t{256} << 10;

  // The banded run (conv_pool.hpp): each thread convolves its bands into a
  // buffer of its own through primitives built for the bands' shapes, and
  // pools them from there. False, having done nothing, where a band's
  // convolution would not run on a oneDNN primitive of blocked layouts.
  bool run_bands(const KernelContext& ctx, const ConvGeometry& g, const PoolGeometry& pg, const Tensor& x,
                 const Tensor& w, const Tensor* b, Tensor& y) {
    const int64_t row_bytes = g.batch * g.out_channels * g.out[1] * static_cast<int64_t>(sizeof(float));
    const auto plan = conv_pool_bands(g, pg, ctx.threads(), std::max<int64_t>(1, kBandBytes / row_bytes));
    struct Job {
      const ConvPoolBand* band;
      std::shared_ptr<Primitive> prim;
      onednn::PackedWeights weights;  // held through the run
    };
    // Primitives and weights first, on this thread: the bands then only run them.
    std::vector<std::vector<Job>> jobs(plan.size());
    for (size_t t = 0; t < plan.size(); ++t) {
      for (const ConvPoolBand& band : plan[t]) {
        auto e = band_entry(x, w, b != nullptr, g, band);
        if (e->use_reference || e->stream || e->staged) return false;
        onednn::PackedWeights packed = packed_weights(*e, w);
        jobs[t].push_back({&band, std::move(e), std::move(packed)});
      }
    }
    const int64_t in_planes = g.batch * (nchw_input_ ? g.in_channels : g.in_channels / kChannelBlock);
    const int64_t in_row = g.in[1] * (nchw_input_ ? 1 : kChannelBlock);  // floats per row of a plane
    const int64_t out_planes = g.batch * (g.out_channels / kChannelBlock), out_row = g.out[1] * kChannelBlock;
    const float* xp = x.data<float>();
    float* yp = y.data<float>();
    std::atomic<bool> failed{false};
    std::string error;
    // One thread per run of bands: a oneDNN primitive run inside the team runs on its caller alone.
    parallel_for(static_cast<int64_t>(jobs.size()), static_cast<int>(jobs.size()), kParallelGrain,
                 [&](int64_t lo, int64_t hi) {
                   thread_local onednn::ScratchBuffer in_buffer, out_buffer;
                   for (int64_t t = lo; t < hi; ++t) {
                     for (const Job& job : jobs[static_cast<size_t>(t)]) {
                       const ConvPoolBand& band = *job.band;
                       const Primitive& e = *job.prim;
                       // The band's input rows, plane by plane, into a dense tensor of their own.
                       const int64_t rows = band.in_end - band.in_begin;
                       auto* in = static_cast<float*>(in_buffer.reserve(e.src_md.get_size()));
                       for (int64_t p = 0; p < in_planes; ++p) {
                         std::memcpy(in + p * rows * in_row, xp + (p * g.in[0] + band.in_begin) * in_row,
                                     static_cast<size_t>(rows * in_row) * sizeof(float));
                       }
                       auto* out = static_cast<float*>(out_buffer.reserve(e.dst_md.get_size()));
                       try {
                         execute_direct(e, in, job.weights.memory, out, b);
                       } catch (const dnnl::error& err) {
                         if (!failed.exchange(true)) error = err.what();
                         return;
                       }
                       const int64_t conv_rows = band.conv_end - band.conv_begin;
                       if (e.deferred_act) act_.apply(out, out_planes * conv_rows * out_row, 1);
                       PoolGeometry pb = pg;  // the band's rows start at conv_begin
                       pb.pad_begin[0] += band.conv_begin;
                       blocked_max_rows(pb, out_planes, conv_rows, g.out[1], out, yp, band.pool_begin * out_planes,
                                        band.pool_end * out_planes);
                     }
                   }
                 });
    if (failed) throw_status(invalid_argument(label_ + ": oneDNN: " + error));
    return true;
  }

  // The primitive for one band's rows (cached by the band's shape and padding).
  std::shared_ptr<Primitive> band_entry(const Tensor& x, const Tensor& w, bool has_bias, const ConvGeometry& g,
                                        const ConvPoolBand& band) {
    std::vector<int64_t> key;
    onednn::append_key(key, x.shape());
    onednn::append_key(key, w.shape());
    key.insert(key.end(), {int64_t{has_bias}, band.in_end - band.in_begin, band.conv_end - band.conv_begin,
                           band.pad_top, band.pad_bottom});
    return band_cache_.get(key, [&] {
      ConvGeometry gb = g;
      gb.in[0] = band.in_end - band.in_begin;
      gb.out[0] = band.conv_end - band.conv_begin;
      gb.pad_begin[0] = band.pad_top;
      gb.pad_end[0] = band.pad_bottom;
      auto e = build(gb, has_bias, false);
      e->g = gb;
      e->out_shape = {gb.batch, gb.out_channels / kChannelBlock, gb.out[0], gb.out[1], kChannelBlock};
      return e;
    });
  }

  ConvAttrs attrs_;
  bool fused_ = false;
  std::optional<PoolAttrs> pool_;  // deskml.FusedConvMaxPool's pool
  bool channels_last_ = false;
  int64_t blocked_ = 0;    // the `blocked` attribute: 0, or 16 (nChw16c)
  bool nchw_input_ = false;  // with `blocked`: X is plain NCHW (the `nchw_input` attribute)
  bool winograd_ = false;  // the optimizer allows Winograd's algorithm for this node
  FusedActivation pre_, act_;
  std::string label_;  // for messages
  onednn::PrimitiveCache<Primitive> cache_;
  onednn::PrimitiveCache<Primitive> band_cache_{16};  // FusedConvMaxPool's, per band shape
  mutable onednn::SharedWeights shared_weights_;  // build() is const; the weights are a cache
  StreamConv stream_;                             // for the problems it suits; packs its weights on first use
};

}  // namespace

void register_conv_kernels(KernelRegistry& r) {
  KernelDef def;
  def.op = "Conv";
  def.since = 1;
  def.types = {DataType::kFloat32, DataType::kFloat64, DataType::kFloat16, DataType::kBFloat16};
  def.factory = [](const graph::Node& node) { return std::make_unique<ConvKernel>(node); };
  r.add(def);
  KernelDef fused = def;
  fused.op = "FusedConv";
  fused.domain = "deskml";
  fused.types = {DataType::kFloat32};
  r.add(fused);
  fused.op = "FusedConvMaxPool";
  r.add(fused);
  register_conv_transpose_kernels(r);
  register_conv_integer_kernels(r);
  register_layout_reorder_kernels(r);
}

}  // namespace deskml::kernels::cpu
