// Activations fused into a producing op (deskml.FusedConv, deskml.FusedMatMul):
// read from the node's attributes, appended to oneDNN post-ops, or applied by
// plain loops where oneDNN is not used.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>
#include <string>

#include "graph/graph.hpp"
#include "kernels/kernel.hpp"

namespace deskml::kernels::cpu {

struct FusedActivation {
  std::string name;  // "" = none; Relu, LeakyRelu, Clip, Sigmoid, Tanh, HardSwish, Swish, Gelu, GeluTanh, Elu
  float alpha = 0.0f, beta = 0.0f;
  bool active() const { return !name.empty(); }
  // Reads `<prefix>`, `<prefix>_alpha`, `<prefix>_beta`; throws InvalidModel on an unknown name.
  static FusedActivation from_node(const graph::Node& node, const std::string& prefix);
  void append_to(dnnl::post_ops& ops) const;
  float apply(float x) const;
  // In place over n floats, parallel.
  void apply(float* data, int64_t n, int threads) const;
  // True when apply() over a producer's output costs less than the oneDNN
  // post-op: SiLU on AVX-512, where oneDNN's swish post-op made EfficientNet-B0
  // 0.8 ms slower (of 3.4) than the same convolutions with ReLU, and a pass of
  // our own after the primitive costs about a quarter of that.
  bool faster_unfused() const;
};

// The output of a fused op that adds a residual (input `index`, nullptr when
// absent) as oneDNN's sum post-op: the residual's own buffer when the node may
// take it (in-place sum; `sum` dangles afterwards), else output 0 of `shape`
// from ctx.allocate_output (where the executor planned it) holding a copy of
// the residual, or uninitialised without one.
Tensor residual_output(KernelContext& ctx, size_t index, const Tensor* sum, const Shape& shape);

}  // namespace deskml::kernels::cpu
