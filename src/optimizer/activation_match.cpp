#include "optimizer/activation_match.hpp"

#include <limits>

namespace deskml::optimizer {

std::optional<Activation> match_activation(const GraphEditor& editor, const graph::Node& node) {
  if (node.inputs.empty() || node.outputs.size() != 1) return std::nullopt;
  const std::string& op = node.op_type;
  if (node.domain == kDeskmlDomain) {
    if (op == "Swish") return Activation{"Swish", node.attr_float("alpha", 1.0f), 0.0f};
    if (op == "Gelu") {
      return Activation{node.attr_string("approximate", "none") == "tanh" ? "GeluTanh" : "Gelu", 0.0f, 0.0f};
    }
    return std::nullopt;
  }
  if (!node.domain.empty()) return std::nullopt;
  if (op == "Relu") return Activation{"Relu", 0.0f, 0.0f};
  if (op == "LeakyRelu") return Activation{"LeakyRelu", node.attr_float("alpha", 0.01f), 0.0f};
  if (op == "Sigmoid") return Activation{"Sigmoid", 0.0f, 0.0f};
  if (op == "Tanh") return Activation{"Tanh", 0.0f, 0.0f};
  if (op == "HardSwish") return Activation{"HardSwish", 0.0f, 0.0f};
  if (op == "Elu") return Activation{"Elu", node.attr_float("alpha", 1.0f), 0.0f};
  if (op == "Gelu") {
    return Activation{node.attr_string("approximate", "none") == "tanh" ? "GeluTanh" : "Gelu", 0.0f, 0.0f};
  }
  if (op == "Clip") {
    float lo = std::numeric_limits<float>::lowest(), hi = std::numeric_limits<float>::max();
    if (node.opset < 11) {
      lo = node.attr_float("min", lo);
      hi = node.attr_float("max", hi);
    } else {
      for (size_t i = 1; i < node.inputs.size() && i < 3; ++i) {
        if (node.inputs[i].empty()) continue;
        auto v = scalar_constant(editor, node.inputs[i]);
        if (!v) return std::nullopt;
        (i == 1 ? lo : hi) = *v;
      }
    }
    return Activation{"Clip", lo, hi};
  }
  return std::nullopt;
}

void set_activation_attrs(graph::Node& node, const std::string& prefix, const Activation& act) {
  node.attributes[prefix] = act.name;
  node.attributes[prefix + "_alpha"] = act.alpha;
  node.attributes[prefix + "_beta"] = act.beta;
}

}  // namespace deskml::optimizer
