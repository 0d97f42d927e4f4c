// Layout pass: runs 2-D float convolutions, and the ops between them that do
// not care about layout, in NHWC, where oneDNN's direct (brgemm) convolutions
// are fastest, and transposes only at the region's edges.
//
// One forward sweep in topological order decides, node by node, whether it
// runs in NHWC: a FusedConv always can; an elementwise op can when a 4-D input
// already is NHWC (other operands are transposed, constants at load time);
// pools and channel Concat likewise. Converted nodes read and write values
// named "<value>__nhwc"; an NCHW value is recreated (Transpose 0,3,1,2) only
// when something outside the region reads it.
#include <cstring>
#include <set>

#include "optimizer/optimizer.hpp"

namespace deskml::optimizer {
namespace {

const std::vector<int64_t> kToNhwc = {0, 2, 3, 1};
const std::vector<int64_t> kToNchw = {0, 3, 1, 2};

const std::set<std::string> kBinary = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Pow"};

std::optional<size_t> rank_of(const GraphEditor& editor, const std::string& v) {
  auto s = editor.shape_of(v);
  if (!s) return std::nullopt;
  return s->size();
}

Tensor to_nhwc_constant(const Tensor& t) {
  Shape s4(4 - static_cast<size_t>(t.rank()), 1);
  s4.insert(s4.end(), t.shape().begin(), t.shape().end());
  const Tensor t4 = t.reshaped(s4);
  Tensor out(t.dtype(), {s4[0], s4[2], s4[3], s4[1]});
  const size_t es = dtype_size(t.dtype());
  const auto* in = static_cast<const uint8_t*>(t4.raw_data());
  auto* o = static_cast<uint8_t*>(out.raw_data());
  for (int64_t n = 0; n < s4[0]; ++n)
    for (int64_t c = 0; c < s4[1]; ++c)
      for (int64_t h = 0; h < s4[2]; ++h)
        for (int64_t w = 0; w < s4[3]; ++w) {
          const int64_t src = ((n * s4[1] + c) * s4[2] + h) * s4[3] + w;
          const int64_t dst = ((n * s4[2] + h) * s4[3] + w) * s4[1] + c;
          std::memcpy(o + static_cast<size_t>(dst) * es, in + static_cast<size_t>(src) * es, es);
        }
  return out;
}

}  // namespace

int convert_to_channels_last(GraphEditor& editor) {
  auto& g = editor.graph();
  std::unordered_map<std::string, std::string> nhwc;     // NCHW name -> NHWC name, for converted values
  std::unordered_map<std::string, std::string> to_nhwc;  // transposes inserted so far (input side)
  std::unordered_set<size_t> converted;
  std::vector<graph::Node> out_nodes;
  int model_opset = 13;
  for (const auto& n : g.nodes) {
    if (n.domain.empty() && n.opset > 0) model_opset = n.opset;
  }
  auto transpose_node = [&](const std::string& in, const std::string& out, const std::vector<int64_t>& perm) {
    graph::Node t;
    t.name = out + "_transpose";
    t.op_type = "Transpose";
    t.opset = model_opset;
    t.inputs = {in};
    t.outputs = {out};
    t.attributes["perm"] = perm;
    return t;
  };
  // The NHWC name of input `v` for a converted node, adding a transpose (or a
  // transposed constant) when it has none yet. Requires rank <= 4 for constants, 4 otherwise.
  auto nhwc_input = [&](const std::string& v) -> std::string {
    if (auto it = nhwc.find(v); it != nhwc.end()) return it->second;
    if (auto it = to_nhwc.find(v); it != to_nhwc.end()) return it->second;
    std::string name;
    if (const Tensor* c = editor.constant(v)) {
      name = editor.add_constant(v + "__nhwc", to_nhwc_constant(*c));
    } else {
      name = editor.fresh_name(v + "__nhwc");
      out_nodes.push_back(transpose_node(v, name, kToNhwc));
    }
    to_nhwc[v] = name;
    return name;
  };
  // Can input `v` take part in an NHWC elementwise op?
  auto convertible_operand = [&](const std::string& v) {
    if (nhwc.count(v)) return true;
    if (const Tensor* c = editor.constant(v)) return c->rank() <= 4;
    auto r = rank_of(editor, v);
    return r && *r == 4;
  };

  // Pass 1: decide, in order (the graph's node order is topological).
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const graph::Node& n = g.nodes[i];
    bool any_nhwc = false;
    for (const auto& in : n.inputs) any_nhwc = any_nhwc || nhwc.count(in);
    bool convert = false;
    if (n.domain == kDeskmlDomain && n.op_type == "FusedConv") {
      const Tensor* w = editor.constant(n.input(1));
      auto r = rank_of(editor, n.inputs[0]);
      convert = w && w->rank() == 4 && r && *r == 4 && n.attr_int("channels_last", 0) == 0;
    } else if (any_nhwc && n.outputs.size() == 1) {
      if (is_layout_free_unary(editor, n)) {
        convert = nhwc.count(n.inputs[0]) != 0;  // Clip's bounds stay as they are
      } else if (n.domain.empty() && kBinary.count(n.op_type) && n.inputs.size() == 2) {
        convert = convertible_operand(n.inputs[0]) && convertible_operand(n.inputs[1]);
      } else if (n.domain.empty() && (n.op_type == "MaxPool" || n.op_type == "AveragePool")) {
        convert = nhwc.count(n.inputs[0]) && n.attr_ints("kernel_shape").size() == 2 &&
                  n.attr_int("storage_order", 0) == 0 && editor.dtype_of(n.inputs[0]) == DataType::kFloat32;
      } else if (n.domain.empty() && (n.op_type == "GlobalAveragePool" || n.op_type == "GlobalMaxPool")) {
        convert = nhwc.count(n.inputs[0]) && editor.dtype_of(n.inputs[0]) == DataType::kFloat32;
      } else if (n.domain.empty() && n.op_type == "Concat") {
        const int64_t axis = n.attr_int("axis", 0);
        convert = axis == 1 || axis == -3;
        for (const auto& in : n.inputs) {
          auto r = rank_of(editor, in);
          convert = convert && (nhwc.count(in) || (r && *r == 4));
        }
      }
    }
    if (!convert) continue;
    converted.insert(i);
    for (const auto& out : n.outputs) {
      if (!out.empty()) nhwc[out] = editor.fresh_name(out + "__nhwc");
    }
  }
  if (converted.empty()) return 0;

  // Which NCHW values are still read outside the region.
  std::unordered_set<std::string> need_nchw;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (converted.count(i)) continue;
    for (const auto& in : g.nodes[i].inputs) need_nchw.insert(in);
  }
  for (const auto& vi : g.outputs) need_nchw.insert(vi.name);
  for (const auto& [v, name] : nhwc) {
    if (editor.is_pinned(v)) need_nchw.insert(v);
  }

  // Pass 2: emit.
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    graph::Node n = std::move(g.nodes[i]);
    if (!converted.count(i)) {
      out_nodes.push_back(std::move(n));
      continue;
    }
    const bool is_conv = n.domain == kDeskmlDomain && n.op_type == "FusedConv";
    const bool is_unary =
        n.inputs.size() >= 1 && !is_conv && n.op_type != "Concat" && !(n.domain.empty() && kBinary.count(n.op_type));
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      const std::string& in = n.inputs[k];
      if (in.empty()) continue;
      const bool data = is_conv ? (k == 0 || k == 3) : is_unary ? k == 0 : true;
      if (data) n.inputs[k] = nhwc_input(in);
    }
    if (is_conv) {
      n.attributes["channels_last"] = int64_t{1};
    } else if (n.op_type == "Concat") {
      n.attributes["axis"] = int64_t{3};
    } else if (n.domain.empty() && (n.op_type == "MaxPool" || n.op_type == "AveragePool" ||
                                    n.op_type == "GlobalAveragePool" || n.op_type == "GlobalMaxPool")) {
      n.domain = kDeskmlDomain;
      n.op_type = "Nhwc" + n.op_type;
      if (n.outputs.size() > 1) n.outputs.resize(1);  // MaxPool's Indices are never converted (checked above)
    }
    std::vector<std::pair<std::string, std::string>> back;
    for (auto& out : n.outputs) {
      if (out.empty()) continue;
      const std::string orig = out;
      out = nhwc.at(orig);
      if (need_nchw.count(orig)) back.emplace_back(out, orig);
    }
    out_nodes.push_back(std::move(n));
    for (const auto& [from, to] : back) out_nodes.push_back(transpose_node(from, to, kToNchw));
  }
  g.nodes = std::move(out_nodes);
  editor.refresh();
  return static_cast<int>(converted.size());
}

}  // namespace deskml::optimizer
