// Recognises a node as an activation that oneDNN can apply as a post-op, and
// writes/reads it as attributes of a fused node.
#pragma once

#include <optional>
#include <string>

#include "optimizer/graph_editor.hpp"

namespace deskml::optimizer {

struct Activation {
  std::string name;  // Relu, LeakyRelu, Clip, Sigmoid, Tanh, HardSwish, Swish, Gelu, GeluTanh, Elu
  float alpha = 0.0f, beta = 0.0f;
};

// The activation `node` computes from its first input, if it is one (Clip needs constant bounds).
std::optional<Activation> match_activation(const GraphEditor& editor, const graph::Node& node);

// Stores `act` on a fused node as `<prefix>` (name), `<prefix>_alpha`, `<prefix>_beta`.
void set_activation_attrs(graph::Node& node, const std::string& prefix, const Activation& act);

}  // namespace deskml::optimizer
