// Helpers the optimisation passes share: who produces and who reads each
// value, constants, fresh names, and the rewrites every pass needs (rename a
// value's readers, drop nodes). Passes work on one graph level; names read by
// subgraphs (If/Loop/Scan bodies) are "pinned": never renamed or removed.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "graph/graph.hpp"

namespace deskml::optimizer {

// The domain of deskml's internal (fused or layout-specific) ops.
inline constexpr const char* kDeskmlDomain = "deskml";

class GraphEditor {
 public:
  explicit GraphEditor(graph::Graph& graph);

  graph::Graph& graph() { return graph_; }

  // Recomputes producers/consumers after nodes changed.
  void refresh();

  // Index of the node producing `value`, or -1 (graph input, initializer, absent).
  int producer(const std::string& value) const;
  // Indices of nodes reading `value` (a node reading it twice appears twice).
  const std::vector<size_t>& consumers(const std::string& value) const;
  // Number of reads, graph outputs and subgraph references included.
  size_t use_count(const std::string& value) const;
  bool is_graph_output(const std::string& value) const { return outputs_.count(value) != 0; }
  bool is_graph_input(const std::string& value) const { return inputs_.count(value) != 0; }
  bool is_pinned(const std::string& value) const { return pinned_.count(value) != 0; }

  // A constant: an initializer that is not also a graph input (which a caller could override).
  const Tensor* constant(const std::string& value) const;
  // Rank and dims as known to shape inference; nullopt when unknown.
  std::optional<std::vector<graph::Dim>> shape_of(const std::string& value) const;
  DataType dtype_of(const std::string& value) const;

  // A name not used anywhere in the graph, derived from `base`.
  std::string fresh_name(const std::string& base);
  // Adds an initializer under a fresh name derived from `base`; returns the name.
  std::string add_constant(const std::string& base, Tensor value);

  // Makes every reader of `from` read `to` instead (graph outputs are not touched).
  void replace_uses(const std::string& from, const std::string& to);

  // Marks nodes for removal; remove_marked() drops them and refreshes.
  void mark_removed(size_t node) { removed_.insert(node); }
  bool is_removed(size_t node) const { return removed_.count(node) != 0; }
  void remove_marked();

  // The only consumer of `value` when exactly one node reads it once and it is
  // not a graph output or pinned, and that node is not marked removed; -1 otherwise.
  int single_consumer(const std::string& value) const;
  // The same node itself, or nullptr.
  graph::Node* sole_reader(const std::string& value) {
    const int c = single_consumer(value);
    return c < 0 ? nullptr : &graph_.nodes[static_cast<size_t>(c)];
  }

 private:
  graph::Graph& graph_;
  std::unordered_map<std::string, int> producer_;
  std::unordered_map<std::string, std::vector<size_t>> consumers_;
  std::unordered_set<std::string> outputs_, inputs_, pinned_, names_;
  std::unordered_set<size_t> removed_;
  size_t counter_ = 0;
};

// Whether every value is 1: strides or dilations that change nothing (an
// absent attribute reads as empty, and so passes).
inline bool all_ones(const std::vector<int64_t>& v) {
  for (int64_t x : v) {
    if (x != 1) return false;
  }
  return true;
}

// Float attribute or constant-input helpers.
std::optional<float> scalar_constant(const GraphEditor& editor, const std::string& value);

// A unary elementwise op whose other inputs (Clip's bounds) are absent or
// constants: it works element by element, so it runs on data in any layout
// (the NHWC and nChw16c passes move it into their regions).
bool is_layout_free_unary(const GraphEditor& editor, const graph::Node& node);

}  // namespace deskml::optimizer
