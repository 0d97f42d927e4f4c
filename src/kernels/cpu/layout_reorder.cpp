// deskml.Reorder: moves a float32 activation between the optimizer's two
// convolution layouts (see optimizer/blocked_layout.cpp):
//   to = "nChw16c": NHWC [N, H, W, C] (C a multiple of 16) -> [N, C/16, H, W, 16]
//   to = "nhwc":    [N, C/16, H, W, 16] -> NHWC [N, H, W, C]
// through oneDNN's reorder, parallel over the thread budget.
#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/dnnl_context.hpp"

namespace deskml::kernels::cpu {
namespace {

using onednn::kChannelBlock;

class ReorderKernel final : public Kernel {
 public:
  explicit ReorderKernel(const graph::Node& node) : to_(node.attr_string("to", "")), to_blocked_(to_ == "nChw16c") {}

  Status compute(KernelContext& ctx) override {
    if (to_ != "nChw16c" && to_ != "nhwc") {
      return ctx.error("attribute 'to' must be \"nChw16c\" or \"nhwc\", got \"" + to_ + "\"");
    }
    const Tensor& x = ctx.required_input(0);
    if (x.dtype() != DataType::kFloat32) return ctx.error("expects float32");
    Shape logical;  // N, C, H, W
    Shape out_shape;
    if (to_blocked_) {
      if (x.rank() != 4 || x.dim(3) % kChannelBlock != 0) {
        return ctx.error("expects an NHWC input with a multiple of 16 channels, got " + shape_to_string(x.shape()));
      }
      logical = {x.dim(0), x.dim(3), x.dim(1), x.dim(2)};
      out_shape = {x.dim(0), x.dim(3) / kChannelBlock, x.dim(1), x.dim(2), kChannelBlock};
    } else {
      if (x.rank() != 5 || x.dim(4) != kChannelBlock) {
        return ctx.error("expects an nChw16c input [N, C/16, H, W, 16], got " + shape_to_string(x.shape()));
      }
      logical = {x.dim(0), x.dim(1) * kChannelBlock, x.dim(2), x.dim(3)};
      out_shape = {x.dim(0), x.dim(2), x.dim(3), x.dim(1) * kChannelBlock};
    }
    Tensor& y = ctx.allocate_output(0, DataType::kFloat32, out_shape);
    if (y.numel() == 0) return Status::Ok();
    const auto e = cache_.get(logical, [&] {
      using dnnl::memory;
      const memory::dims dims = onednn::to_dims(logical);
      const memory::desc nhwc(dims, memory::data_type::f32, memory::format_tag::nhwc);
      const memory::desc blocked(dims, memory::data_type::f32, memory::format_tag::nChw16c);
      auto p = std::make_shared<Primitive>();
      p->from = to_blocked_ ? nhwc : blocked;
      p->to = to_blocked_ ? blocked : nhwc;
      const dnnl::reorder::primitive_desc pd(onednn::engine(), p->from, onednn::engine(), p->to, onednn::base_attr());
      p->scratch = pd.scratchpad_desc();
      p->prim = dnnl::reorder(pd);
      return p;
    });
    try {
      onednn::FastArgs args(e->slots);
      args.add(DNNL_ARG_FROM, e->from, x.raw_data());
      args.add(DNNL_ARG_TO, e->to, y.raw_data());
      args.execute(e->prim, e->scratch);
    } catch (const dnnl::error& err) {
      onednn::rethrow(err, ctx.node().label());
    }
    return Status::Ok();
  }

 private:
  struct Primitive {
    mutable onednn::ArgSlots slots;
    dnnl::reorder prim;
    dnnl::memory::desc from, to, scratch;
  };

  std::string to_;
  bool to_blocked_;
  onednn::PrimitiveCache<Primitive> cache_;
};

}  // namespace

void register_layout_reorder_kernels(KernelRegistry& r) {
  KernelDef def;
  def.op = "Reorder";
  def.domain = "deskml";
  def.types = {DataType::kFloat32};
  def.factory = [](const graph::Node& node) { return std::make_unique<ReorderKernel>(node); };
  r.add(def);
}

}  // namespace deskml::kernels::cpu
