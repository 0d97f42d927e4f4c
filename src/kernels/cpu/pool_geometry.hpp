// Shared by the pooling family: attributes and the ONNX output-shape rules.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "graph/graph.hpp"

namespace deskml::kernels::cpu {

struct PoolAttrs {
  std::string auto_pad = "NOTSET";
  std::vector<int64_t> kernel_shape, strides, dilations, pads;
  bool ceil_mode = false;
  bool count_include_pad = false;
  int64_t storage_order = 0;
  PoolAttrs() = default;
  // From the node's attributes; with a prefix, from "<prefix>kernel_shape" and
  // so on (a fused node carrying a pool's attributes next to its own).
  explicit PoolAttrs(const graph::Node& node, const std::string& prefix = "");
};

// Spatial vectors have one entry per spatial axis.
struct PoolGeometry {
  int64_t batch = 0, channels = 0;
  std::vector<int64_t> in, kernel, out, strides, dilations, pad_begin, pad_end;
  Shape output_shape() const;
  // The same problem with exactly 3 spatial axes (leading unit axes).
  PoolGeometry as_3d() const;
};

// Validates attributes against input shape x and computes the output size
// (auto_pad, ceil_mode with the last window starting inside the input or the
// left padding); throws Error.
PoolGeometry pool_geometry(const PoolAttrs& attrs, const Shape& x, const std::string& label);

}  // namespace deskml::kernels::cpu
