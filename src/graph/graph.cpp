#include "graph/graph.hpp"

#include <functional>
#include <queue>
#include <unordered_set>

namespace deskml::graph {
namespace {

template <typename T>
const T* get_attr(const Node& node, const std::string& key, const char* type_name) {
  auto it = node.attributes.find(key);
  if (it == node.attributes.end()) return nullptr;
  const T* v = std::get_if<T>(&it->second);
  if (v == nullptr) {
    throw_status(invalid_model(node.label() + ": attribute '" + key + "' is not of type " + type_name));
  }
  return v;
}

}  // namespace

std::string ValueType::to_string() const {
  std::string s;
  if (kind == Kind::kSequence) s = "seq(";
  if (kind == Kind::kOptional) s = "optional(";
  s += std::string(dtype_name(dtype));
  if (shape) {
    s += "[";
    for (size_t i = 0; i < shape->size(); ++i) {
      if (i) s += ",";
      const Dim& d = (*shape)[i];
      s += d.known() ? std::to_string(d.value) : (d.symbol.empty() ? "?" : d.symbol);
    }
    s += "]";
  } else {
    s += "[...]";
  }
  if (kind == Kind::kSequence || kind == Kind::kOptional) s += ")";
  return s;
}

int64_t Node::attr_int(const std::string& key, int64_t def) const {
  const auto* v = get_attr<int64_t>(*this, key, "int");
  return v ? *v : def;
}

float Node::attr_float(const std::string& key, float def) const {
  auto it = attributes.find(key);
  if (it != attributes.end()) {
    if (const auto* i = std::get_if<int64_t>(&it->second)) return static_cast<float>(*i);
  }
  const auto* v = get_attr<float>(*this, key, "float");
  return v ? *v : def;
}

std::string Node::attr_string(const std::string& key, const std::string& def) const {
  const auto* v = get_attr<std::string>(*this, key, "string");
  return v ? *v : def;
}

std::vector<int64_t> Node::attr_ints(const std::string& key, const std::vector<int64_t>& def) const {
  const auto* v = get_attr<std::vector<int64_t>>(*this, key, "ints");
  return v ? *v : def;
}

std::vector<float> Node::attr_floats(const std::string& key, const std::vector<float>& def) const {
  const auto* v = get_attr<std::vector<float>>(*this, key, "floats");
  return v ? *v : def;
}

std::vector<std::string> Node::attr_strings(const std::string& key) const {
  const auto* v = get_attr<std::vector<std::string>>(*this, key, "strings");
  return v ? *v : std::vector<std::string>{};
}

const Tensor* Node::attr_tensor(const std::string& key) const { return get_attr<Tensor>(*this, key, "tensor"); }

GraphPtr Node::attr_graph(const std::string& key) const {
  const auto* v = get_attr<GraphPtr>(*this, key, "graph");
  return v ? *v : nullptr;
}

std::string Node::label() const {
  std::string s = domain.empty() ? op_type : domain + "." + op_type;
  if (!name.empty()) s += " '" + name + "'";
  return s;
}

const std::string& Node::input(size_t i) const {
  static const std::string kEmpty;
  return i < inputs.size() ? inputs[i] : kEmpty;
}

std::optional<ValueType> Graph::type_of(const std::string& value) const {
  for (const auto& vi : inputs) {
    if (vi.name == value) return vi.type;
  }
  for (const auto& vi : outputs) {
    if (vi.name != value) continue;
    // A declared output without a shape: what inference found is better.
    if (!vi.type.shape) {
      if (auto it = value_types.find(value); it != value_types.end() && it->second.shape) return it->second;
    }
    return vi.type;
  }
  if (auto it = initializers.find(value); it != initializers.end()) {
    ValueType t;
    t.dtype = it->second.dtype();
    std::vector<Dim> dims;
    for (int64_t d : it->second.shape()) dims.push_back(Dim::of(d));
    t.shape = std::move(dims);
    return t;
  }
  if (auto it = value_types.find(value); it != value_types.end()) return it->second;
  return std::nullopt;
}

int64_t Model::opset(const std::string& domain) const {
  auto it = opsets.find(domain);
  return it == opsets.end() ? 0 : it->second;
}

Result<std::vector<size_t>> topological_order(const Graph& graph, const std::vector<std::string>& outer_scope) {
  std::unordered_set<std::string> available(outer_scope.begin(), outer_scope.end());
  for (const auto& vi : graph.inputs) available.insert(vi.name);
  for (const auto& [name, _] : graph.initializers) available.insert(name);

  std::unordered_map<std::string, size_t> producer;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    for (const auto& out : graph.nodes[i].outputs) {
      if (out.empty()) continue;
      if (!producer.emplace(out, i).second || available.count(out)) {
        return invalid_model("value '" + out + "' is produced more than once (" + graph.nodes[i].label() + ")");
      }
    }
  }

  // Kahn's algorithm; ties broken by original position so the order is stable.
  // Subgraphs read outer values implicitly, so those count as dependencies too.
  std::vector<size_t> pending(graph.nodes.size(), 0);
  std::vector<std::vector<size_t>> consumers(graph.nodes.size());
  auto add_dependency = [&](size_t node, const std::string& value) -> Status {
    if (value.empty() || available.count(value)) return Status::Ok();
    auto it = producer.find(value);
    if (it == producer.end()) return Status::Ok();  // checked below when reached
    ++pending[node];
    consumers[it->second].push_back(node);
    return Status::Ok();
  };
  std::function<void(const Graph&, size_t, std::unordered_set<std::string>&)> add_implicit =
      [&](const Graph& sub, size_t node, std::unordered_set<std::string>& seen) {
        // A body may return an outer value directly, with no node of its own reading it.
        for (const auto& out : sub.outputs) {
          if (!out.name.empty() && seen.insert(out.name).second) (void)add_dependency(node, out.name);
        }
        for (const auto& n : sub.nodes) {
          for (const auto& in : n.inputs) {
            if (!in.empty() && seen.insert(in).second) (void)add_dependency(node, in);
          }
          for (const auto& [_, attr] : n.attributes) {
            if (const auto* g = std::get_if<GraphPtr>(&attr)) add_implicit(**g, node, seen);
            if (const auto* gs = std::get_if<std::vector<GraphPtr>>(&attr)) {
              for (const auto& g2 : *gs) add_implicit(*g2, node, seen);
            }
          }
        }
      };
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& n = graph.nodes[i];
    std::unordered_set<std::string> seen;
    for (const auto& in : n.inputs) {
      if (!in.empty() && seen.insert(in).second) (void)add_dependency(i, in);
    }
    for (const auto& [_, attr] : n.attributes) {
      if (const auto* g = std::get_if<GraphPtr>(&attr)) add_implicit(**g, i, seen);
      if (const auto* gs = std::get_if<std::vector<GraphPtr>>(&attr)) {
        for (const auto& g2 : *gs) add_implicit(*g2, i, seen);
      }
    }
  }

  std::priority_queue<size_t, std::vector<size_t>, std::greater<>> ready;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    if (pending[i] == 0) ready.push(i);
  }
  std::vector<size_t> order;
  order.reserve(graph.nodes.size());
  while (!ready.empty()) {
    const size_t i = ready.top();
    ready.pop();
    order.push_back(i);
    for (const auto& in : graph.nodes[i].inputs) {
      if (!in.empty() && !available.count(in) && !producer.count(in)) {
        return invalid_model(graph.nodes[i].label() + " reads '" + in + "', which nothing produces");
      }
    }
    for (size_t c : consumers[i]) {
      if (--pending[c] == 0) ready.push(c);
    }
  }
  if (order.size() != graph.nodes.size()) {
    for (size_t i = 0; i < graph.nodes.size(); ++i) {
      if (pending[i] != 0) return invalid_model("the graph has a cycle through " + graph.nodes[i].label());
    }
  }
  return order;
}

}  // namespace deskml::graph
