#include "runtime/batch_tiling.hpp"

#include <algorithm>
#include <fstream>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace deskml::runtime {

namespace {

// Ops that keep each sample's values to themselves given their first input
// (the other inputs constants), with the output of the input's rank.
bool per_sample_unary(const std::string& op) {
  static const std::unordered_set<std::string> ops = {
      "Relu", "Sigmoid", "Tanh", "Clip", "HardSwish", "HardSigmoid", "LeakyRelu", "Elu", "Selu", "Gelu", "Swish", "Erf",
      "Exp", "Log", "Neg", "Abs", "Sqrt", "Identity", "Cast", "Softplus", "Mish", "Dropout", "Floor", "Ceil", "Round",
      "Sign", "Reciprocal",
      // per-sample spatial work (batch is axis 0 in NCHW, NHWC and nChw16c alike)
      "Conv", "FusedConv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
      "NhwcMaxPool", "NhwcAveragePool", "NhwcGlobalAveragePool", "BatchNormalization", "InstanceNormalization", "LRN"};
  return ops.count(op) != 0;
}

bool elementwise_binary(const std::string& op) {
  static const std::unordered_set<std::string> ops = {"Add", "Sub", "Mul",  "Div", "Max",
                                                      "Min", "Sum", "Mean", "Pow", "PRelu"};
  return ops.count(op) != 0;
}

int64_t normalized(int64_t axis, int64_t rank) { return axis < 0 ? axis + rank : axis; }

class Analysis {
 public:
  explicit Analysis(const graph::Graph& g) : g_(g) {}

  bool run() {
    for (const auto& vi : g_.inputs) {
      if (g_.initializers.count(vi.name)) continue;
      const auto& t = vi.type;
      if (t.kind != graph::ValueType::Kind::kTensor || !t.shape || t.shape->empty() || t.shape->front().known()) {
        return false;  // no symbolic batch axis to split
      }
      rank_[vi.name] = static_cast<int64_t>(t.shape->size());
    }
    auto order = graph::topological_order(g_);
    if (!order.ok()) return false;
    for (size_t i : *order) {
      if (!node(g_.nodes[i])) return false;
    }
    for (const auto& vi : g_.outputs) {
      if (!rank_.count(vi.name)) return false;
    }
    return !rank_.empty();
  }

 private:
  bool batched(const std::string& v) const { return !v.empty() && rank_.count(v) != 0; }
  const Tensor* constant(const std::string& v) const {
    auto it = g_.initializers.find(v);
    return it == g_.initializers.end() ? nullptr : &it->second;
  }
  // A constant operand broadcast against a batched value of rank `rank` must
  // not span axis 0: a lower rank, or a leading dim of 1.
  bool harmless_constant(const std::string& v, int64_t rank) const {
    if (v.empty()) return true;
    const Tensor* c = constant(v);
    if (c == nullptr) return false;
    return c->rank() < rank || c->numel() == 1 || c->shape().front() == 1;
  }

  bool node(const graph::Node& n) {
    bool any = false;
    for (const auto& in : n.inputs) any = any || batched(in);
    if (!any) return true;  // computed from constants only
    for (const auto& [key, attr] : n.attributes) {
      if (std::holds_alternative<graph::GraphPtr>(attr) || std::holds_alternative<std::vector<graph::GraphPtr>>(attr)) {
        return false;
      }
    }
    for (size_t i = 1; i < n.outputs.size(); ++i) {
      if (!n.outputs[i].empty()) return false;  // second outputs (indices, masks) are not followed
    }
    if (n.outputs.empty() || n.outputs[0].empty()) return true;
    const std::string& op = n.op_type;
    // The batch comes in through the first input (any input of an elementwise op).
    std::string x = n.input(0);
    if (elementwise_binary(op)) {
      for (const auto& in : n.inputs) {
        if (batched(in)) {
          x = in;
          break;
        }
      }
    }
    if (!batched(x)) return false;
    const int64_t rank = rank_.at(x);
    int64_t out_rank = rank;
    if (op == "FusedConv") {
      // (x, W, B, residual): the residual is the same sample's earlier activation.
      for (size_t i = 1; i < n.inputs.size(); ++i) {
        if (batched(n.inputs[i]) != (i == 3)) return false;
      }
    } else if (op == "Reorder") {
      // deskml.Reorder: NHWC [N,H,W,C] <-> nChw16c [N,C/16,H,W,16]; axis 0 stays the batch.
      if (n.inputs.size() != 1) return false;
      out_rank = n.attr_string("to") == "nChw16c" ? rank + 1 : rank - 1;
    } else if (per_sample_unary(op)) {
      for (size_t i = 1; i < n.inputs.size(); ++i) {
        if (batched(n.inputs[i])) return false;
      }
    } else if (elementwise_binary(op)) {
      for (const auto& in : n.inputs) {
        if (batched(in)) {
          if (rank_.at(in) != rank) return false;
        } else if (!harmless_constant(in, rank)) {
          return false;
        }
      }
    } else if (op == "MatMul" || op == "Gemm" || op == "FusedMatMul") {
      if (rank < 2 || n.attr_int("transA", 0) != 0) return false;
      if (!constant(n.input(1))) return false;
      if (n.inputs.size() > 2 && !harmless_constant(n.input(2), rank)) return false;
      if (constant(n.input(1))->rank() != 2) return false;
      // FusedMatMul's residual: the same sample's earlier value, of the output's rank.
      if (n.inputs.size() > 3 &&
          (op != "FusedMatMul" || n.inputs.size() > 4 || !batched(n.inputs[3]) || rank_.at(n.inputs[3]) != rank)) {
        return false;
      }
    } else if (op == "Flatten") {
      if (normalized(n.attr_int("axis", 1), rank) < 1) return false;
      out_rank = 2;
    } else if (op == "Transpose") {
      const auto perm = n.attr_ints("perm");
      if (perm.empty() || perm.front() != 0) return false;
    } else if (op == "Softmax" || op == "LogSoftmax" || op == "LayerNormalization") {
      const int64_t axis = n.attr_int("axis", op == "Softmax" || op == "LogSoftmax" ? (n.opset >= 13 ? -1 : 1) : -1);
      if (normalized(axis, rank) < 1) return false;
      for (size_t i = 1; i < n.inputs.size(); ++i) {
        if (batched(n.inputs[i])) return false;
      }
    } else if (op == "Concat") {
      if (normalized(n.attr_int("axis", 0), rank) < 1) return false;
      for (const auto& in : n.inputs) {
        if (!batched(in) || rank_.at(in) != rank) return false;
      }
    } else if (op == "Reshape") {
      // Only a shape that copies axis 0 (0 with allowzero unset) keeps samples apart for sure.
      const Tensor* shape = constant(n.input(1));
      if (!shape || shape->numel() < 1 || shape->int_at(0) != 0 || n.attr_int("allowzero", 0) != 0) return false;
      out_rank = shape->numel();
    } else {
      return false;
    }
    rank_[n.outputs[0]] = out_rank;
    return true;
  }

  const graph::Graph& g_;
  std::unordered_map<std::string, int64_t> rank_;  // batched values and their ranks
};

}  // namespace

bool batch_separable(const graph::Graph& g) {
  try {
    return Analysis(g).run();
  } catch (const Error&) {
    return false;  // an attribute of the wrong type: not a model to be clever with
  }
}

int64_t batch_chunk(int64_t peak_bytes, int64_t cache_bytes, size_t nodes) {
  if (peak_bytes <= 0 || cache_bytes <= 0) return 0;
  const int64_t floor = nodes <= static_cast<size_t>(kFewNodes) ? kMinBatchChunkFewNodes : kMinBatchChunk;
  return std::max(floor, cache_bytes / (4 * peak_bytes));
}

int64_t last_level_cache_bytes() {
  int64_t best = 0;
  for (int index = 0; index < 8; ++index) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
    std::ifstream level_in(dir + "level"), size_in(dir + "size");
    int level = 0;
    std::string size;
    if (!(level_in >> level) || !(size_in >> size) || level < 2) continue;
    int64_t bytes = 0;
    try {
      bytes = std::stoll(size);
    } catch (const std::exception&) {
      continue;
    }
    if (size.back() == 'K') bytes <<= 10;
    if (size.back() == 'M') bytes <<= 20;
    best = std::max(best, bytes);
  }
  return best;
}

}  // namespace deskml::runtime
