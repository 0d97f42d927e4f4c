#include "runtime/concat_places.hpp"

#include <mutex>

namespace deskml::runtime {
namespace {

// The Concat's axis for inputs of `shape` when each input is one contiguous
// run of the output (only 1s before the axis); -1 otherwise.
int64_t contiguous_axis(const graph::Node& concat, const Shape& shape) {
  const auto rank = static_cast<int64_t>(shape.size());
  int64_t axis = concat.attr_int("axis", 1);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) return -1;
  for (int64_t d = 0; d < axis; ++d) {
    if (shape[static_cast<size_t>(d)] != 1) return -1;
  }
  return axis;
}

}  // namespace

int plan_concat_places(std::vector<std::unique_ptr<PlannedNode>>& nodes, const std::vector<int>& reads,
                       const std::unordered_set<int>& kept) {
  // Which node, and which of its outputs, writes each slot.
  std::vector<std::pair<int, int>> producer;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const PlannedNode& pn = *nodes[i];
    for (size_t k = 0; k < pn.outputs.size(); ++k) {
      const int s = pn.outputs[k];
      if (s < 0) continue;
      if (static_cast<size_t>(s) >= producer.size()) producer.resize(static_cast<size_t>(s) + 1, {-1, 0});
      producer[static_cast<size_t>(s)] = {static_cast<int>(i), static_cast<int>(k)};
    }
  }
  int buffers = 0;
  for (size_t c = 0; c < nodes.size(); ++c) {
    PlannedNode& cat = *nodes[c];
    if (!cat.node->domain.empty() || cat.node->op_type != "Concat" || !cat.subgraphs.empty()) continue;
    bool placed = false;
    for (size_t k = 0; k < cat.inputs.size(); ++k) {
      const int s = cat.inputs[k];
      if (s < 0 || static_cast<size_t>(s) >= producer.size() || producer[static_cast<size_t>(s)].first < 0) continue;
      if (kept.count(s) || static_cast<size_t>(s) >= reads.size() || reads[static_cast<size_t>(s)] != 1) continue;
      PlannedNode& p = *nodes[static_cast<size_t>(producer[static_cast<size_t>(s)].first)];
      if (!p.subgraphs.empty()) continue;
      p.places.resize(p.outputs.size());
      p.places[static_cast<size_t>(producer[static_cast<size_t>(s)].second)] = {static_cast<int>(c),
                                                                                static_cast<int>(k)};
      placed = true;
    }
    if (placed) cat.concat_buffer = buffers++;
  }
  return buffers;
}

Tensor ConcatPlacer::place(size_t output, DataType dtype, const Shape& shape) {
  if (node_.concat_buffer >= 0 && output == 0) {
    // The Concat itself: its buffer, when its producers made one of this shape.
    const Tensor& b = buffers_[static_cast<size_t>(node_.concat_buffer)];
    if (b.defined() && b.dtype() == dtype && b.shape() == shape) return b;
  }
  return place_in_concat(node_, output, dtype, shape);
}

Tensor ConcatPlacer::place_in_concat(const PlannedNode& node, size_t output, DataType dtype, const Shape& shape) {
  if (output >= node.places.size() || node.places[output].concat < 0) return Tensor();
  const PlannedNode& cat = *nodes_[static_cast<size_t>(node.places[output].concat)];
  const auto position = static_cast<size_t>(node.places[output].position);
  Shape full;
  int64_t before = 0;  // along the axis, of the inputs ahead of this one
  int64_t inner = 1;   // elements per step along the axis
  {
    std::lock_guard lock(cat.mutex);
    const std::vector<Shape>& seen = cat.concat_seen;
    if (seen.size() != cat.inputs.size() || seen[position] != shape) return Tensor();
    const int64_t axis = contiguous_axis(*cat.node, shape);
    if (axis < 0) return Tensor();
    for (size_t d = static_cast<size_t>(axis) + 1; d < shape.size(); ++d) inner *= shape[d];
    full = shape;
    full[static_cast<size_t>(axis)] = 0;
    for (size_t k = 0; k < seen.size(); ++k) {
      if (k < position) before += seen[k][static_cast<size_t>(axis)];
      full[static_cast<size_t>(axis)] += seen[k][static_cast<size_t>(axis)];
    }
  }
  Tensor& b = buffers_[static_cast<size_t>(cat.concat_buffer)];
  if (!b.defined()) {
    // The whole output, itself placed when that Concat feeds another.
    b = place_in_concat(cat, 0, dtype, full);
    if (!b.defined()) b = Tensor(dtype, full);
  } else if (b.dtype() != dtype || b.shape() != full) {
    return Tensor();
  }
  return b.view(before * inner, shape);
}

void remember_concat_inputs(const PlannedNode& concat, const std::vector<Value>& slots) {
  for (int s : concat.inputs) {
    if (s < 0 || !slots[static_cast<size_t>(s)].is_tensor()) return;
  }
  const auto shape_of = [&](size_t k) -> const Shape& {
    return slots[static_cast<size_t>(concat.inputs[k])].tensor.shape();
  };
  // Shapes that cannot be placed (a batch above 1) leave the latest placeable
  // ones in place: a server alternating batch sizes keeps its batch-1 places.
  if (concat.inputs.empty() || contiguous_axis(*concat.node, shape_of(0)) < 0) return;
  std::lock_guard lock(concat.mutex);
  std::vector<Shape>& seen = concat.concat_seen;
  bool same = seen.size() == concat.inputs.size();
  for (size_t k = 0; same && k < seen.size(); ++k) same = seen[k] == shape_of(k);
  if (same) return;  // the usual case: nothing allocated per run
  seen.clear();
  for (size_t k = 0; k < concat.inputs.size(); ++k) seen.push_back(shape_of(k));
}

}  // namespace deskml::runtime
