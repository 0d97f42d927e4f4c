// deskml's own graph IR. Built by the onnx/ loader, rewritten by passes,
// planned and run by runtime/. Values are named; "" marks an absent optional.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "core/tensor.hpp"

namespace deskml::graph {

struct Graph;
using GraphPtr = std::shared_ptr<const Graph>;

// One dimension of a declared shape: a number, a symbol ("batch"), or unknown.
struct Dim {
  int64_t value = -1;  // >= 0 when known
  std::string symbol;  // non-empty for named dynamic dims
  bool known() const { return value >= 0; }
  static Dim of(int64_t v) { return Dim{v, {}}; }
  static Dim named(std::string s) { return Dim{-1, std::move(s)}; }
};

struct ValueType {
  enum class Kind { kTensor, kSequence, kOptional, kUnknown };
  Kind kind = Kind::kTensor;
  DataType dtype = DataType::kUndefined;   // element type (of the tensor, or the sequence's tensors)
  std::optional<std::vector<Dim>> shape;   // nullopt: rank unknown
  bool optional = false;                   // an optional(...) value that may be absent (kOptional implies it)
  std::string to_string() const;           // "float[batch,3,224,224]"
};

struct ValueInfo {
  std::string name;
  ValueType type;
  std::string doc;
};

using AttributeValue = std::variant<float, int64_t, std::string, Tensor, GraphPtr, std::vector<float>,
                                    std::vector<int64_t>, std::vector<std::string>, std::vector<Tensor>,
                                    std::vector<GraphPtr>>;

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;  // "" for the default ONNX domain ("ai.onnx" is normalised to "")
  int opset = 0;       // the model's opset for this node's domain
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
  std::map<std::string, AttributeValue> attributes;

  bool has_attr(const std::string& key) const { return attributes.count(key) != 0; }
  // Typed getters: the default when absent; Error(InvalidModel) when present with another type.
  int64_t attr_int(const std::string& key, int64_t def) const;
  float attr_float(const std::string& key, float def) const;
  std::string attr_string(const std::string& key, const std::string& def = {}) const;
  std::vector<int64_t> attr_ints(const std::string& key, const std::vector<int64_t>& def = {}) const;
  std::vector<float> attr_floats(const std::string& key, const std::vector<float>& def = {}) const;
  std::vector<std::string> attr_strings(const std::string& key) const;
  const Tensor* attr_tensor(const std::string& key) const;     // nullptr when absent
  GraphPtr attr_graph(const std::string& key) const;           // nullptr when absent
  // "Conv 'conv1'" for error messages
  std::string label() const;
  // The n-th input name, or "" when absent
  const std::string& input(size_t i) const;
};

struct Graph {
  std::string name;
  std::vector<Node> nodes;
  std::vector<ValueInfo> inputs;
  std::vector<ValueInfo> outputs;
  std::unordered_map<std::string, Tensor> initializers;
  std::unordered_map<std::string, ValueType> value_types;  // declared or inferred types of intermediate values

  // Type of a value as far as known (inputs, outputs, initializers, value_types).
  std::optional<ValueType> type_of(const std::string& value) const;
};

struct Model {
  int64_t ir_version = 0;
  std::map<std::string, int64_t> opsets;  // domain ("" = ai.onnx) -> version
  std::string producer_name;
  std::string producer_version;
  std::map<std::string, std::string> metadata;
  Graph graph;

  int64_t opset(const std::string& domain = "") const;
};

// Node indices in an order where every producer precedes its consumers.
// InvalidModel on a cycle or on a value read before anything produces it;
// `outer_scope` lists names visible from an enclosing graph.
Result<std::vector<size_t>> topological_order(const Graph& graph,
                                               const std::vector<std::string>& outer_scope = {});

}  // namespace deskml::graph
