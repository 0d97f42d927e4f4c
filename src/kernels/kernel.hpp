// The contract between the executor and every kernel, on any backend.
// A kernel sees its node (attributes), its inputs and its outputs; never the
// session, the server or the graph around it.
#pragma once

#include <climits>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "graph/graph.hpp"

namespace deskml::kernels {

// Runs a node's subgraph attribute (If branches, Loop/Scan bodies). Provided by
// the executor, so control-flow kernels stay ignorant of how graphs are run.
class SubgraphRunner {
 public:
  virtual ~SubgraphRunner() = default;
  // Runs graph attribute `attr` of the current node with the given graph inputs
  // (in the subgraph's declared input order); returns its outputs in order.
  virtual Result<std::vector<Value>> run(const std::string& attr, std::vector<Value> inputs) = 0;
};

// Where the executor wants a node's output to live: a view into a buffer it
// planned (a later Concat's output, so that the Concat has nothing to copy).
class OutputPlacer {
 public:
  virtual ~OutputPlacer() = default;
  // A tensor of exactly this type and shape, or an undefined one when the
  // executor has no place for output `output` of that type and shape.
  virtual Tensor place(size_t output, DataType dtype, const Shape& shape) = 0;
};

class KernelContext {
 public:
  KernelContext(const graph::Node& node, std::span<const Value* const> inputs, std::vector<Value>& outputs,
                SubgraphRunner* subgraphs, int threads)
      : node_(node), inputs_(inputs), outputs_(outputs), subgraphs_(subgraphs), threads_(threads) {}

  const graph::Node& node() const { return node_; }
  int opset() const { return node_.opset; }
  int threads() const { return threads_; }
  SubgraphRunner* subgraphs() const { return subgraphs_; }

  size_t num_inputs() const { return inputs_.size(); }
  // nullptr when the optional input is absent (or holds no tensor).
  const Tensor* input(size_t i) const;
  // Throws Error(InvalidArgument) naming the node when input i is absent.
  const Tensor& required_input(size_t i) const;
  // Takes input i's tensor for reuse as an output buffer (in-place work), when
  // this node is its last reader and nothing else shares its storage; an
  // undefined Tensor otherwise. After a successful take, input(i) is absent.
  Tensor take_input(size_t i);
  // Set by the executor: slot i is non-null when input i may be taken.
  void allow_taking(std::span<Value* const> donatable) { donatable_ = donatable; }
  // Set by the executor when it has planned places for some outputs.
  void set_placer(OutputPlacer* placer) { placer_ = placer; }
  // Any value (sequence-aware kernels); nullptr when absent.
  const Value* input_value(size_t i) const { return i < inputs_.size() ? inputs_[i] : nullptr; }

  size_t num_outputs() const { return outputs_.size(); }
  // False for outputs the model leaves unnamed (not needed).
  bool output_wanted(size_t i) const { return i < node_.outputs.size() && !node_.outputs[i].empty(); }
  // Allocates output i with the given type and shape and returns it for
  // writing (uninitialised; in the place the executor planned for it, if any).
  Tensor& allocate_output(size_t i, DataType dtype, Shape shape);
  // Sets output i to an existing tensor (a view sharing storage is fine: inputs are never written).
  void set_output(size_t i, Tensor t);
  void set_output_value(size_t i, Value v);

  // InvalidArgument with the node's label in front.
  Status error(const std::string& message) const { return invalid_argument(node_.label() + ": " + message); }

 private:
  const graph::Node& node_;
  std::span<const Value* const> inputs_;
  std::vector<Value>& outputs_;
  SubgraphRunner* subgraphs_;
  int threads_;
  std::span<Value* const> donatable_;
  OutputPlacer* placer_ = nullptr;
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual Status compute(KernelContext& ctx) = 0;
};

using KernelFn = std::function<Status(KernelContext&)>;
using KernelFactory = std::function<std::unique_ptr<Kernel>(const graph::Node&)>;

// A stateless kernel from a function.
class FunctionKernel final : public Kernel {
 public:
  explicit FunctionKernel(KernelFn fn) : fn_(std::move(fn)) {}
  Status compute(KernelContext& ctx) override { return fn_(ctx); }

 private:
  KernelFn fn_;
};

}  // namespace deskml::kernels
