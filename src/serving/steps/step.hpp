// Built-in pipeline steps: small, stateless transforms between the models of an
// ensemble (decode an image, resize it, normalise it, pick the top-k classes...).
// docs/ENSEMBLES.md lists every kind with its parameters and port names.
#pragma once

#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include "core/status.hpp"
#include "serving/tensors.hpp"

namespace deskml::serving {

// What a step reads and writes. A step either has named input ports (most kinds) or
// takes an ordered list of inputs (the aggregations: mean, weighted_mean, vote, concat).
struct StepPorts {
  std::vector<std::string> inputs;  // named input ports; empty when `list` is true
  bool list = false;                // inputs are positional, in the order the config lists them
  size_t min_list = 1;              // for list steps: how many inputs are accepted
  size_t max_list = std::numeric_limits<size_t>::max();
  std::vector<std::string> outputs;  // output ports, always produced
};

class Step {
 public:
  virtual ~Step() = default;
  // Inputs and outputs are the step's own port names, e.g. "input" -> "output". List steps
  // read their inputs in order and ignore the names. Never throws: bad inputs (dtype, shape,
  // a missing port) come back as InvalidArgument.
  virtual Result<Tensors> run(const Tensors& inputs) const = 0;
  virtual StepPorts ports() const = 0;
};

}  // namespace deskml::serving
