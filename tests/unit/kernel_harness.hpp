// Runs a single node through the CPU registry, for kernel unit tests.
#pragma once

#include <string>
#include <vector>

#include "graph/graph.hpp"
#include "kernels/cpu/cpu_registry.hpp"

namespace deskml::testing {

// Builds a node with inputs "in0".."inN" and outputs "out0".."outM".
inline graph::Node make_node(const std::string& op, size_t num_inputs, size_t num_outputs, int opset = 17,
                             std::map<std::string, graph::AttributeValue> attrs = {}) {
  graph::Node n;
  n.op_type = op;
  n.opset = opset;
  for (size_t i = 0; i < num_inputs; ++i) n.inputs.push_back("in" + std::to_string(i));
  for (size_t i = 0; i < num_outputs; ++i) n.outputs.push_back("out" + std::to_string(i));
  n.attributes = std::move(attrs);
  return n;
}

// Runs `node` on `inputs` (an undefined Tensor marks an absent optional input).
inline Result<std::vector<Tensor>> run_node(const graph::Node& node, const std::vector<Tensor>& inputs,
                                            int threads = 1) {
  const auto& registry = kernels::cpu::cpu_registry();
  const auto* def = registry.find(node.op_type, node.domain, node.opset, [&](int i) {
    return i >= 0 && static_cast<size_t>(i) < inputs.size() ? inputs[i].dtype() : DataType::kUndefined;
  });
  if (def == nullptr) return unsupported("no CPU kernel for " + node.op_type + " with these input types");
  std::vector<Value> values;
  for (const auto& t : inputs) values.push_back(Value::from_tensor(t));
  std::vector<const Value*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.is_none() ? nullptr : &v);
  std::vector<Value> outputs(node.outputs.size());
  kernels::KernelContext ctx(node, ptrs, outputs, nullptr, threads);
  try {
    auto kernel = def->factory(node);  // factories may reject malformed attributes by throwing
    DESKML_RETURN_IF_ERROR(kernel->compute(ctx));
  } catch (const Error& e) {
    return e.status();
  }
  std::vector<Tensor> result;
  for (auto& v : outputs) result.push_back(v.tensor);
  return result;
}

}  // namespace deskml::testing
