// Activations fused into a producing op (deskml.FusedConv, deskml.FusedMatMul):
// read from the node's attributes, appended to oneDNN post-ops, or applied by
// plain loops where oneDNN is not used.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>
#include <string>

#include "graph/graph.hpp"

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
};

}  // namespace deskml::kernels::cpu
