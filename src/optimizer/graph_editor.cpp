#include "optimizer/graph_editor.hpp"

#include <algorithm>
#include <set>

namespace deskml::optimizer {
namespace {

const std::vector<size_t> kNoConsumers;

// Every name a subgraph reads or returns (its own inner names come along too:
// pinning a few extra names only makes passes more careful).
void collect_subgraph_names(const graph::Graph& g, std::unordered_set<std::string>& out) {
  for (const auto& vi : g.outputs) out.insert(vi.name);  // a body may return an outer value as is
  for (const auto& node : g.nodes) {
    for (const auto& in : node.inputs) out.insert(in);
    for (const auto& [key, attr] : node.attributes) {
      if (const auto* sub = std::get_if<graph::GraphPtr>(&attr)) {
        collect_subgraph_names(**sub, out);
      } else if (const auto* subs = std::get_if<std::vector<graph::GraphPtr>>(&attr)) {
        for (const auto& s : *subs) collect_subgraph_names(*s, out);
      }
    }
  }
}

}  // namespace

GraphEditor::GraphEditor(graph::Graph& graph) : graph_(graph) { refresh(); }

void GraphEditor::refresh() {
  producer_.clear();
  consumers_.clear();
  outputs_.clear();
  inputs_.clear();
  pinned_.clear();
  names_.clear();
  removed_.clear();
  for (const auto& vi : graph_.outputs) outputs_.insert(vi.name);
  for (const auto& vi : graph_.inputs) {
    inputs_.insert(vi.name);
    names_.insert(vi.name);
  }
  for (const auto& [name, t] : graph_.initializers) names_.insert(name);
  for (size_t i = 0; i < graph_.nodes.size(); ++i) {
    const auto& node = graph_.nodes[i];
    for (const auto& in : node.inputs) {
      if (!in.empty()) consumers_[in].push_back(i);
    }
    for (const auto& out : node.outputs) {
      if (out.empty()) continue;
      producer_[out] = static_cast<int>(i);
      names_.insert(out);
    }
    for (const auto& [key, attr] : node.attributes) {
      if (const auto* sub = std::get_if<graph::GraphPtr>(&attr)) {
        collect_subgraph_names(**sub, pinned_);
      } else if (const auto* subs = std::get_if<std::vector<graph::GraphPtr>>(&attr)) {
        for (const auto& s : *subs) collect_subgraph_names(*s, pinned_);
      }
    }
  }
  for (const auto& n : pinned_) names_.insert(n);
}

int GraphEditor::producer(const std::string& value) const {
  auto it = producer_.find(value);
  return it == producer_.end() ? -1 : it->second;
}

const std::vector<size_t>& GraphEditor::consumers(const std::string& value) const {
  auto it = consumers_.find(value);
  return it == consumers_.end() ? kNoConsumers : it->second;
}

size_t GraphEditor::use_count(const std::string& value) const {
  return consumers(value).size() + (is_graph_output(value) ? 1 : 0) + (is_pinned(value) ? 1 : 0);
}

const Tensor* GraphEditor::constant(const std::string& value) const {
  if (value.empty() || is_graph_input(value)) return nullptr;
  auto it = graph_.initializers.find(value);
  return it == graph_.initializers.end() ? nullptr : &it->second;
}

std::optional<std::vector<graph::Dim>> GraphEditor::shape_of(const std::string& value) const {
  if (const Tensor* t = constant(value)) {
    std::vector<graph::Dim> dims;
    for (int64_t d : t->shape()) dims.push_back(graph::Dim::of(d));
    return dims;
  }
  auto type = graph_.type_of(value);
  if (!type || type->kind != graph::ValueType::Kind::kTensor) return std::nullopt;
  return type->shape;
}

DataType GraphEditor::dtype_of(const std::string& value) const {
  if (const Tensor* t = constant(value)) return t->dtype();
  auto type = graph_.type_of(value);
  return type ? type->dtype : DataType::kUndefined;
}

std::string GraphEditor::fresh_name(const std::string& base) {
  std::string name = base;
  while (names_.count(name)) name = base + "_" + std::to_string(++counter_);
  names_.insert(name);
  return name;
}

std::string GraphEditor::add_constant(const std::string& base, Tensor value) {
  const std::string name = fresh_name(base);
  graph_.initializers.emplace(name, std::move(value));
  return name;
}

void GraphEditor::replace_uses(const std::string& from, const std::string& to) {
  auto it = consumers_.find(from);
  if (it == consumers_.end()) return;
  for (size_t i : it->second) {
    for (auto& in : graph_.nodes[i].inputs) {
      if (in == from) in = to;
    }
    consumers_[to].push_back(i);
  }
  consumers_.erase(from);
}

void GraphEditor::remove_marked() {
  if (removed_.empty()) return;
  std::vector<graph::Node> kept;
  kept.reserve(graph_.nodes.size() - removed_.size());
  for (size_t i = 0; i < graph_.nodes.size(); ++i) {
    if (!removed_.count(i)) kept.push_back(std::move(graph_.nodes[i]));
  }
  graph_.nodes = std::move(kept);
  refresh();
}

int GraphEditor::single_consumer(const std::string& value) const {
  const auto& c = consumers(value);
  if (c.size() != 1 || is_graph_output(value) || is_pinned(value) || is_removed(c[0])) return -1;
  return static_cast<int>(c[0]);
}

bool is_layout_free_unary(const GraphEditor& editor, const graph::Node& node) {
  static const std::set<std::string> kUnary = {
      "Relu",     "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu",     "Selu",
      "Softplus", "Softsign",  "Abs",     "Neg",  "Exp",         "Log",       "Sqrt",    "Reciprocal",
      "Erf",      "Clip",      "Floor",   "Ceil", "Round",       "Sign",      "Identity"};
  static const std::set<std::string> kDeskmlUnary = {"Swish", "Gelu"};
  const bool unary = (node.domain.empty() && kUnary.count(node.op_type)) ||
                     (node.domain == kDeskmlDomain && kDeskmlUnary.count(node.op_type));
  if (!unary || node.inputs.empty() || node.outputs.size() != 1) return false;
  for (size_t k = 1; k < node.inputs.size(); ++k) {
    if (!node.inputs[k].empty() && editor.constant(node.inputs[k]) == nullptr) return false;
  }
  return true;
}

std::optional<float> scalar_constant(const GraphEditor& editor, const std::string& value) {
  const Tensor* t = editor.constant(value);
  if (t == nullptr || t->numel() != 1 || !dtype_is_float(t->dtype())) return std::nullopt;
  return static_cast<float>(t->float_at(0));
}

}  // namespace deskml::optimizer
