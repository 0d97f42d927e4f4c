// Fusion pass: a blocked convolution whose only reader is a blocked max pool
// becomes one deskml.FusedConvMaxPool node, which convolves and pools band by
// band of rows on each thread (kernels/cpu/conv_pool.hpp): the convolution's
// output never goes through memory as a whole, and no thread pools rows
// another thread wrote. SqueezeNet 1.1's stem (3 -> 64 channels at 111x111,
// then a 3x3 stride-2 pool) is the case it was written for; measured in
// docs/OPTIMIZER.md.
//
// The node keeps the convolution's name, inputs and attributes; the pool's
// attributes come along prefixed "pool_" and its output becomes the node's.
// Runs after the blocked-layout pass (the only place these pools run on
// nChw16c) and the Winograd pass.
#include "optimizer/optimizer.hpp"

namespace deskml::optimizer {
int fuse_conv_max_pool(GraphEditor& editor) {
  auto& g = editor.graph();
  int fused = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    graph::Node& conv = g.nodes[i];
    if (editor.is_removed(i) || conv.domain != kDeskmlDomain || conv.op_type != "FusedConv") continue;
    if (conv.attr_int("blocked", 0) != 16 || conv.outputs.size() != 1 || !conv.input(3).empty()) continue;
    const Tensor* w = editor.constant(conv.input(1));
    if (w == nullptr || w->rank() != 4) continue;
    const int c = editor.single_consumer(conv.outputs[0]);
    if (c < 0) continue;
    const graph::Node& pool = g.nodes[static_cast<size_t>(c)];
    if (pool.domain != kDeskmlDomain || pool.op_type != "NhwcMaxPool" || pool.attr_int("blocked", 0) != 16) continue;
    if (pool.input(0) != conv.outputs[0] || pool.outputs.empty() || pool.outputs[0].empty()) continue;
    if (pool.outputs.size() > 1 && !pool.outputs[1].empty()) continue;  // Indices
    if (pool.attr_ints("kernel_shape").size() != 2 || !all_ones(pool.attr_ints("dilations"))) continue;
    if (editor.is_pinned(pool.outputs[0])) continue;
    for (const auto& [name, value] : pool.attributes) {
      if (name != "blocked" && name != "dilations") conv.attributes["pool_" + name] = value;
    }
    conv.op_type = "FusedConvMaxPool";
    conv.outputs[0] = pool.outputs[0];
    editor.mark_removed(static_cast<size_t>(c));
    ++fused;
  }
  if (fused > 0) editor.remove_marked();
  return fused;
}

}  // namespace deskml::optimizer
