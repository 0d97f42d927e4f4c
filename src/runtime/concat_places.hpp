// Zero-copy Concat: the producers of a Concat's inputs write straight into
// the Concat's output, and the Concat has nothing left to copy.
//
// Where it applies: along an axis with only dimensions of 1 before it, each
// input of a Concat is one contiguous run of its output (a batch-1 channel
// concatenation, NCHW or nChw16c). SqueezeNet's fire modules concatenate
// their two expansions that way; the copies cost about 4% of a batch-1 run,
// and twice that when the two CPUs share no cache.
//
// How: at build, an input gets a place when its producer is in the same plan
// and the Concat is its only reader (not a graph output, not read by a
// subgraph). At run time the Concat's output shape must be known when its
// first input is allocated, before any other input exists; the plan takes it
// from the input shapes of the Concat's latest run. The first placed output
// allocates the whole buffer and every placed output is a view into it
// (KernelContext::allocate_output asks an OutputPlacer). A shape that
// differs from the latest run, a batch above 1, or a kernel that makes its
// output some other way (in place over an input, a view) just gets a buffer
// of its own: the Concat copies whatever is not already in place, so a
// mismatch costs the copy, never correctness.
#pragma once

#include <memory>
#include <unordered_set>
#include <vector>

#include "runtime/execution_plan.hpp"

namespace deskml::runtime {

// Marks the places (PlannedNode::places, concat_buffer) in a built plan's
// nodes; `reads[s]` counts the reads of slot s (by nodes and by subgraphs),
// `kept` holds the graph outputs' slots. Returns the number of buffers a run
// holds.
int plan_concat_places(std::vector<std::unique_ptr<PlannedNode>>& nodes, const std::vector<int>& reads,
                       const std::unordered_set<int>& kept);

// Serves one node's outputs from a run's Concat buffers.
class ConcatPlacer final : public kernels::OutputPlacer {
 public:
  ConcatPlacer(const PlannedNode& node, const std::vector<std::unique_ptr<PlannedNode>>& nodes,
               std::vector<Tensor>& buffers)
      : node_(node), nodes_(nodes), buffers_(buffers) {}
  Tensor place(size_t output, DataType dtype, const Shape& shape) override;

 private:
  // Output `output` of `node` as a view into the buffer of the Concat that reads it.
  Tensor place_in_concat(const PlannedNode& node, size_t output, DataType dtype, const Shape& shape);

  const PlannedNode& node_;
  const std::vector<std::unique_ptr<PlannedNode>>& nodes_;
  std::vector<Tensor>& buffers_;
};

// After a Concat with places ran: keeps its input shapes for the next run's
// places (slots still hold its inputs).
void remember_concat_inputs(const PlannedNode& concat, const std::vector<Value>& slots);

}  // namespace deskml::runtime
