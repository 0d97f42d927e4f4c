#include "optimizer/optimizer.hpp"

#include "graph/shape_inference.hpp"
#include "kernels/cpu/elementwise_isa.hpp"

namespace deskml::optimizer {

Status optimize(graph::Model& model, const kernels::KernelRegistry& registry, const OptimizeOptions& options,
                std::vector<PassResult>* report) {
  if (options.level <= 0) return Status::Ok();
  // A node with no kernel is an error the planner reports; dead-code removal
  // must not hide it, so such a graph is left as it is.
  // The same for malformed nodes (no outputs, or a first input or output left
  // unnamed), which the passes' patterns would otherwise have to guard one by one.
  for (const auto& node : model.graph.nodes) {
    if (!registry.supports(node.op_type, node.domain, node.opset)) return Status::Ok();
    if (node.outputs.empty() || node.outputs[0].empty()) return Status::Ok();
    if (!node.inputs.empty() && node.inputs[0].empty() && node.op_type != "Loop") return Status::Ok();
  }
  // The passes sweep nodes in order, so put them in a topological one (a cycle
  // or a dangling read is left for the planner to report).
  auto order = graph::topological_order(model.graph);
  if (!order.ok()) return Status::Ok();
  std::vector<graph::Node> sorted;
  sorted.reserve(model.graph.nodes.size());
  for (size_t i : *order) sorted.push_back(std::move(model.graph.nodes[i]));
  model.graph.nodes = std::move(sorted);
  GraphEditor editor(model.graph);
  auto run = [&](const char* name, auto&& pass) {
    const int n = pass();
    if (report) report->push_back({name, n});
    return n;
  };
  run("remove-identities", [&] { return remove_identities(editor); });
  run("fold-constants", [&] { return fold_constants(editor, registry); });
  run("dead-code", [&] { return eliminate_dead_code(editor); });
  if (options.level >= 2) {
    run("fold-batch-norm", [&] { return fold_batch_norm(editor); });
    run("activation-patterns", [&] { return fuse_activation_patterns(editor); });
    run("fuse-conv", [&] { return fuse_conv(editor); });
    run("fuse-attention", [&] { return fuse_attention(editor); });
    run("fuse-matmul", [&] { return fuse_matmul(editor); });
    if (options.channels_last) run("channels-last", [&] { return convert_to_channels_last(editor); });
    // nChw16c is oneDNN's native layout on AVX-512 only; elsewhere (AVX2: nChw8c)
    // its convolutions would fall back to reference loops.
    if (options.channels_last && options.blocked && kernels::cpu::ew::has_avx512()) {
      run("blocked-layout", [&] { return convert_to_blocked(editor); });
    }
    if (options.winograd) run("winograd", [&] { return allow_winograd(editor); });
    if (options.conv_pool) run("fuse-conv-pool", [&] { return fuse_conv_max_pool(editor); });
    run("dead-code", [&] { return eliminate_dead_code(editor); });
  }
  for (const auto& node : model.graph.nodes) {
    if (node.domain == kDeskmlDomain) model.opsets[kDeskmlDomain] = 1;  // the model now uses our domain
  }
  // New values (fused outputs, layout transposes) get types where the rules know the ops.
  (void)graph::infer_shapes(model.graph);  // advisory, as at load
  return Status::Ok();
}

}  // namespace deskml::optimizer
