// Clean-up passes: Identity/Dropout removal and dead-code elimination.
#include "optimizer/optimizer.hpp"

namespace deskml::optimizer {
namespace {

// Dropout in inference: output 0 is the input, when the mask is unused and
// training_mode is absent or a constant false.
bool is_inference_dropout(const GraphEditor& editor, const graph::Node& node) {
  if (node.op_type != "Dropout" || !node.domain.empty()) return false;
  if (node.outputs.size() > 1 && !node.outputs[1].empty() && editor.use_count(node.outputs[1]) > 0) return false;
  if (node.inputs.size() > 2 && !node.inputs[2].empty()) {
    const Tensor* training = editor.constant(node.inputs[2]);
    if (training == nullptr || training->numel() != 1 || training->int_at(0) != 0) return false;
  }
  return node.opset >= 7 || node.attr_int("is_test", 0) != 0;
}

}  // namespace

int remove_identities(GraphEditor& editor) {
  int removed = 0;
  auto& g = editor.graph();
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const graph::Node& node = g.nodes[i];
    const bool identity = node.op_type == "Identity" && node.domain.empty();
    if (!identity && !is_inference_dropout(editor, node)) continue;
    if (node.inputs.empty() || node.inputs[0].empty() || node.outputs.empty() || node.outputs[0].empty()) continue;
    const std::string in = node.inputs[0], out = node.outputs[0];
    if (editor.is_pinned(out)) continue;
    if (editor.is_graph_output(out)) {
      // The graph output keeps its name: the producer of `in` takes it over.
      const int p = editor.producer(in);
      if (p < 0 || editor.is_graph_output(in) || editor.is_pinned(in)) continue;
      for (auto& o : g.nodes[static_cast<size_t>(p)].outputs) {
        if (o == in) o = out;
      }
      editor.replace_uses(in, out);
    } else {
      editor.replace_uses(out, in);
    }
    editor.mark_removed(i);
    editor.remove_marked();  // refreshes the maps; indices shift, so step back
    --i;
    ++removed;
  }
  return removed;
}

int eliminate_dead_code(GraphEditor& editor) {
  int removed = 0;
  auto& g = editor.graph();
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t i = g.nodes.size(); i-- > 0;) {
      bool used = false;
      for (const auto& out : g.nodes[i].outputs) used = used || (!out.empty() && editor.use_count(out) > 0);
      if (used) continue;
      editor.mark_removed(i);
      ++removed;
      changed = true;
    }
    editor.remove_marked();
  }
  // Initializers nobody reads any more (folded weights, replaced constants).
  for (auto it = g.initializers.begin(); it != g.initializers.end();) {
    if (editor.use_count(it->first) == 0 && !editor.is_graph_input(it->first)) {
      it = g.initializers.erase(it);
    } else {
      ++it;
    }
  }
  return removed;
}

}  // namespace deskml::optimizer
