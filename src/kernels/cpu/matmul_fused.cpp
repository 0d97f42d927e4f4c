// deskml.FusedMatMul: Y = act(pre(A x B + bias) + Sum), the optimizer's fusion
// of MatMul/Gemm with a constant 2-D B, a bias Add, activations and a residual
// Add. A's leading dims are flattened into rows; B is packed once into oneDNN's
// preferred layout; bias, activations and the residual (a sum post-op, into the
// residual's own buffer when this node is its last reader) run inside the
// product.
#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/dnnl_context.hpp"
#include "kernels/cpu/post_ops.hpp"

namespace deskml::kernels::cpu {
namespace {

class FusedMatMulKernel final : public Kernel {
 public:
  explicit FusedMatMulKernel(const graph::Node& node)
      : trans_b_(node.attr_int("trans_b", 0) != 0),
        pre_(FusedActivation::from_node(node, "pre_activation")),
        act_(FusedActivation::from_node(node, "activation")) {}

  Status compute(KernelContext& ctx) override {
    const Tensor& a = ctx.required_input(0);
    const Tensor& b = ctx.required_input(1);
    const Tensor* bias = ctx.input(2);
    const Tensor* sum = ctx.input(3);
    if (a.dtype() != DataType::kFloat32 || b.dtype() != DataType::kFloat32 || (bias && bias->dtype() != a.dtype()) ||
        (sum && sum->dtype() != a.dtype())) {
      return ctx.error("A, B, bias and the fused sum input must be float32");
    }
    if (a.rank() < 1 || b.rank() != 2) return ctx.error("A must have rank >= 1 and B rank 2");
    const int64_t k = a.dim(-1);
    const int64_t kb = trans_b_ ? b.dim(1) : b.dim(0), n = trans_b_ ? b.dim(0) : b.dim(1);
    if (k != kb) {
      return ctx.error("A " + a.description() + " and B " + b.description() + " do not agree on the inner dimension");
    }
    if (bias && bias->numel() != n)
      return ctx.error("bias " + bias->description() + " must have " + std::to_string(n) + " values");
    const int64_t m = k == 0 ? a.numel() : a.numel() / k;
    Shape out_shape(a.shape().begin(), a.shape().end() - 1);
    out_shape.push_back(n);
    if (sum && sum->shape() != out_shape) {
      return ctx.error("the fused sum input " + sum->description() + " must have the output's shape " +
                       shape_to_string(out_shape));
    }
    const bool has_sum = sum != nullptr;
    Tensor y = residual_output(ctx, 3, sum, out_shape);  // `sum` dangles after a take
    if (y.numel() == 0) {
      ctx.set_output(0, std::move(y));
      return Status::Ok();
    }
    if (k == 0) {  // an empty product: bias (or zero), the activations and the sum
      float* yp = y.data<float>();
      for (int64_t i = 0; i < y.numel(); ++i) {
        const float v = bias ? bias->data<float>()[i % n] : 0.0f;
        yp[i] = has_sum ? pre_.apply(v) + yp[i] : v;
      }
      act_.apply(yp, y.numel(), ctx.threads());
      ctx.set_output(0, std::move(y));
      return Status::Ok();
    }
    auto e = cache_.get({m, k, n, bias != nullptr, has_sum}, [&] { return build(m, k, n, bias != nullptr, has_sum); });
    try {
      const onednn::PackedWeights packed = e->weights->get(b, e->user_w_md, e->w_md);  // held through the execution
      onednn::FastArgs args(e->slots);
      args.add(DNNL_ARG_SRC, e->src_md, a.raw_data());
      args.add(DNNL_ARG_WEIGHTS, packed.memory);
      args.add(DNNL_ARG_DST, e->dst_md, y.raw_data());
      if (bias) args.add(DNNL_ARG_BIAS, e->bias_md, bias->raw_data());
      args.execute(e->prim, e->scratch_md);
    } catch (const dnnl::error& err) {
      onednn::rethrow(err, ctx.node().label());
    }
    ctx.set_output(0, std::move(y));
    return Status::Ok();
  }

 private:
  struct Primitive {
    mutable onednn::ArgSlots slots;  // FastArgs' memory objects, per thread
    dnnl::matmul prim;
    dnnl::memory::desc src_md, dst_md, bias_md, user_w_md, w_md, scratch_md;
    std::shared_ptr<onednn::ReorderedWeights> weights;  // from shared_weights_
  };

  std::shared_ptr<Primitive> build(int64_t m, int64_t k, int64_t n, bool has_bias, bool has_sum) const {
    using dnnl::memory;
    auto e = std::make_shared<Primitive>();
    e->src_md = onednn::plain_desc({m, k});
    e->dst_md = onednn::plain_desc({m, n});
    e->user_w_md = trans_b_ ? onednn::strided_desc({k, n}, {1, k}) : onednn::plain_desc({k, n});
    e->bias_md = has_bias ? onednn::plain_desc({1, n}) : memory::desc();
    try {
      dnnl::primitive_attr attr = onednn::base_attr();
      dnnl::post_ops ops;
      if (has_sum) {
        pre_.append_to(ops);
        ops.append_sum(1.0f);
      }
      act_.append_to(ops);
      attr.set_post_ops(ops);
      const memory::desc w_any({k, n}, memory::data_type::f32, memory::format_tag::any);
      const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(e->src_md, w_any, e->bias_md, e->dst_md), attr,
                                            onednn::engine());
      e->prim = dnnl::matmul(pd);
      e->w_md = pd.weights_desc();
      e->weights = shared_weights_.for_layout(e->w_md);
      e->scratch_md = pd.scratchpad_desc();
    } catch (const dnnl::error& err) {
      onednn::rethrow(err, "FusedMatMul");
    }
    return e;
  }

  bool trans_b_;
  FusedActivation pre_, act_;  // pre_ applies before the sum (only with a sum input)
  onednn::PrimitiveCache<Primitive> cache_;
  mutable onednn::SharedWeights shared_weights_;  // build() is const; the weights are a cache
};

}  // namespace

void register_fused_matmul_kernels(KernelRegistry& r) {
  KernelDef def;
  def.op = "FusedMatMul";
  def.domain = "deskml";
  def.types = {DataType::kFloat32};
  def.factory = [](const graph::Node& node) { return std::make_unique<FusedMatMulKernel>(node); };
  r.add(def);
}

}  // namespace deskml::kernels::cpu
