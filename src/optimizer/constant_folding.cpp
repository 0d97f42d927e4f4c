// Constant folding: Constant nodes become initializers; a node whose inputs are
// all constants is run once here, with the same kernels the executor uses, and
// its outputs become initializers; Shape/Size of a statically shaped value
// become constants (shape-op folding).
#include <set>

#include "optimizer/optimizer.hpp"

namespace deskml::optimizer {
namespace {

// Folding must not change what a run computes or grow the model without bound.
constexpr int64_t kMaxFoldedElements = int64_t{1} << 24;

const std::set<std::string> kNonDeterministic = {"RandomNormal",      "RandomUniform", "RandomNormalLike",
                                                 "RandomUniformLike", "Multinomial",   "Bernoulli"};

bool has_subgraph(const graph::Node& node) {
  for (const auto& [key, attr] : node.attributes) {
    if (std::holds_alternative<graph::GraphPtr>(attr) || std::holds_alternative<std::vector<graph::GraphPtr>>(attr)) {
      return true;
    }
  }
  return false;
}

// The static shape of `value`, when every dim is a number.
std::optional<Shape> static_shape(const GraphEditor& editor, const std::string& value) {
  auto dims = editor.shape_of(value);
  if (!dims) return std::nullopt;
  Shape s;
  for (const auto& d : *dims) {
    if (!d.known()) return std::nullopt;
    s.push_back(d.value);
  }
  return s;
}

// Shape (with opset-15 start/end) and Size of a statically shaped input.
std::optional<Tensor> fold_shape_op(const GraphEditor& editor, const graph::Node& node) {
  if (!node.domain.empty() || node.inputs.empty() || node.inputs[0].empty()) return std::nullopt;
  if (node.op_type != "Shape" && node.op_type != "Size") return std::nullopt;
  auto shape = static_shape(editor, node.inputs[0]);
  if (!shape) return std::nullopt;
  if (node.op_type == "Size") {
    Tensor t(DataType::kInt64, {});
    t.data<int64_t>()[0] = shape_numel(*shape);
    return t;
  }
  const int64_t rank = static_cast<int64_t>(shape->size());
  auto clampi = [rank](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + rank : v, 0, rank); };
  const int64_t start = clampi(node.attr_int("start", 0)), end = clampi(node.attr_int("end", rank));
  Tensor t(DataType::kInt64, {std::max<int64_t>(0, end - start)});
  for (int64_t i = start; i < end; ++i) t.data<int64_t>()[i - start] = (*shape)[static_cast<size_t>(i)];
  return t;
}

// Runs a node whose inputs are all constants; nullopt when it cannot or should not be folded.
std::optional<std::vector<Tensor>> run_constant_node(const GraphEditor& editor, const graph::Node& node,
                                                     const kernels::KernelRegistry& registry) {
  std::vector<Value> values;
  for (const auto& in : node.inputs) {
    if (in.empty()) {
      values.emplace_back();
      continue;
    }
    const Tensor* t = editor.constant(in);
    if (t == nullptr) return std::nullopt;
    values.push_back(Value::from_tensor(*t));
  }
  std::vector<const Value*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.is_none() ? nullptr : &v);
  const auto* def = registry.find(node.op_type, node.domain, node.opset, [&](int i) {
    const auto idx = static_cast<size_t>(i);
    return idx < ptrs.size() && ptrs[idx] ? ptrs[idx]->tensor.dtype() : DataType::kUndefined;
  });
  if (def == nullptr) return std::nullopt;
  try {
    auto kernel = def->factory(node);
    if (!kernel) return std::nullopt;
    std::vector<Value> outputs(node.outputs.size());
    kernels::KernelContext ctx(node, ptrs, outputs, nullptr, 1);
    if (!kernel->compute(ctx).ok()) return std::nullopt;  // the run reports the error
    std::vector<Tensor> result;
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (node.outputs[i].empty()) {
        result.emplace_back();
        continue;
      }
      if (!outputs[i].is_tensor() || outputs[i].tensor.numel() > kMaxFoldedElements) return std::nullopt;
      result.push_back(outputs[i].tensor);
    }
    return result;
  } catch (...) {
    return std::nullopt;  // left for the run, which reports the problem properly
  }
}

}  // namespace

int fold_constants(GraphEditor& editor, const kernels::KernelRegistry& registry) {
  int folded = 0;
  auto& g = editor.graph();
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const graph::Node& node = g.nodes[i];
    bool blocked = has_subgraph(node) || kNonDeterministic.count(node.op_type) != 0;
    for (const auto& out : node.outputs) {
      blocked = blocked || (!out.empty() && (editor.is_graph_output(out) || editor.is_pinned(out)));
    }
    if (blocked) continue;
    std::optional<std::vector<Tensor>> outs;
    if (auto shape = fold_shape_op(editor, node)) {
      outs = std::vector<Tensor>{*shape};
    } else {
      bool all_constant = node.op_type == "Constant" && node.domain.empty();
      if (!all_constant && !node.inputs.empty()) {
        all_constant = true;
        for (const auto& in : node.inputs) all_constant = all_constant && (in.empty() || editor.constant(in));
      }
      if (!all_constant) continue;
      outs = run_constant_node(editor, node, registry);
    }
    if (!outs) continue;
    for (size_t o = 0; o < node.outputs.size() && o < outs->size(); ++o) {
      if (!node.outputs[o].empty()) g.initializers[node.outputs[o]] = (*outs)[o];
    }
    editor.mark_removed(i);
    ++folded;
  }
  editor.remove_marked();
  return folded;
}

}  // namespace deskml::optimizer
