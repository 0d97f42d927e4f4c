// The executor: a graph turned into slots and an ordered list of kernels, and
// the code that runs it. Subgraphs (If/Loop/Scan bodies) get plans of their own.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "graph/graph.hpp"
#include "kernels/registry.hpp"

namespace deskml::runtime {

class ExecutionPlan;
struct Profile;

struct PlannedNode {
  const graph::Node* node = nullptr;
  std::vector<int> inputs;         // slot per input, -1 when absent
  std::vector<int> outputs;        // slot per output, -1 when unnamed
  std::vector<int> release_after;  // slots whose last reader is this node
  std::vector<bool> donatable;     // per input: its last reader, read once, so a kernel may take it
  std::map<std::string, std::unique_ptr<ExecutionPlan>> subgraphs;  // by attribute name

  // Zero-copy Concat (runtime/concat_places.hpp). Per output: the Concat that
  // reads it, as an index into the plan's nodes, and its position among that
  // Concat's inputs; {-1, 0} for outputs without a place.
  struct Place {
    int concat = -1;
    int position = 0;
  };
  std::vector<Place> places;
  // On a Concat whose inputs have places: its buffer among a run's buffers,
  // and the input shapes of its latest run (guarded by `mutex`).
  int concat_buffer = -1;
  mutable std::vector<Shape> concat_seen;

  // Kernels are chosen on first run from the actual input types; a node sees
  // one type combination in practice, so this is a tiny cache.
  struct Choice {
    std::vector<DataType> input_types;
    std::unique_ptr<kernels::Kernel> kernel;
  };
  mutable std::mutex mutex;
  mutable std::vector<Choice> choices;
};

// What one run carries down into every subgraph it runs.
struct RunControl {
  int threads = 1;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  const std::atomic<bool>* cancel = nullptr;
  Profile* profile = nullptr;  // RunOptions::profile; nullptr = no timing at all
  int depth = 0;               // subgraph nesting, for profile entries
  int64_t* largest_tensor_bytes = nullptr;  // RunOptions::largest_tensor_bytes
  // Cancelled or DeadlineExceeded once the run should stop.
  Status check() const;
};

// Looks up a value from enclosing scopes (for subgraphs); nullptr when unknown.
using OuterLookup = std::function<const Value*(const std::string&)>;

class ExecutionPlan {
 public:
  // `outer_scope`: names an enclosing graph makes visible to this one.
  static Result<std::unique_ptr<ExecutionPlan>> build(const graph::Graph& graph,
                                                      const std::vector<const kernels::KernelRegistry*>& providers,
                                                      const std::vector<std::string>& outer_scope = {});

  // Runs with inputs in the graph's declared input order (undefined Values for
  // unfed optional/initializer-backed ones); returns outputs in declared order.
  Result<std::vector<Value>> run(std::vector<Value> inputs, const OuterLookup& outer, const RunControl& control) const;

  // Names read from enclosing scopes (for the parent plan's liveness analysis).
  const std::vector<std::string>& outer_names() const { return outer_names_; }
  const graph::Graph& graph() const { return *graph_; }

 private:
  Status run_node(const PlannedNode& pn, std::vector<Value>& slots, std::vector<Tensor>& concat_buffers,
                  const OuterLookup& outer, const RunControl& control) const;
  Result<kernels::Kernel*> kernel_for(const PlannedNode& pn, const std::vector<const Value*>& inputs) const;

  const graph::Graph* graph_ = nullptr;
  std::vector<const kernels::KernelRegistry*> providers_;
  std::vector<std::string> slot_names_;
  std::unordered_map<std::string, int> slot_of_;
  std::vector<int> input_slots_;
  std::vector<int> output_slots_;
  std::vector<std::pair<int, const Tensor*>> initializer_slots_;
  std::vector<std::pair<int, std::string>> outer_slots_;
  std::vector<std::string> outer_names_;
  std::vector<std::unique_ptr<PlannedNode>> nodes_;
  int concat_buffers_ = 0;  // Concats with places (a run holds a buffer for each)
};

}  // namespace deskml::runtime
