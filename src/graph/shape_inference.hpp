// Static type and shape inference over the IR. Dimensions stay symbolic
// ("batch") where the model leaves them open; they are resolved at run time.
// Inference is best effort: an op without a rule, or with inputs of unknown
// shape, leaves its outputs' shapes unknown (types are still inferred where
// the rule allows). It never rejects a model the executor could run.
#pragma once

#include "graph/graph.hpp"

namespace deskml::graph {

struct InferenceStats {
  size_t values = 0;        // intermediate values seen
  size_t typed = 0;         // with a known element type
  size_t fully_shaped = 0;  // with a known rank and every dim a number or a symbol
};

// Fills graph.value_types for every node output. Subgraph outputs keep their
// declared types (subgraphs are shared and immutable once loaded).
// Declared value_info is kept when inference knows less; inference wins where
// it knows more. Errors only for provable inconsistencies (e.g. Add of [2] and [3]).
Result<InferenceStats> infer_shapes(Graph& graph);

}  // namespace deskml::graph
