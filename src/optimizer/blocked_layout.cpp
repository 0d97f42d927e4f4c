// Layout pass: runs the NHWC regions that concatenate channels in oneDNN's
// blocked layout nChw16c instead (a [N, C, H, W] tensor held as
// [N, C/16, H, W, 16]: 16 channels innermost, channel blocks outermost).
//
// Why only those regions: a channel Concat in NHWC interleaves its inputs
// pixel by pixel (a strided copy), while in nChw16c each input is one
// contiguous run per image. And Winograd's convolution works on nChw16c, so
// inside such a region it needs no staging reorders (the fire modules of
// SqueezeNet run their 3x3 expansions by Winograd there, 30% faster than the
// direct NHWC convolution). Elsewhere NHWC stays: oneDNN's NHWC (brgemm)
// convolutions are as fast or faster, and every region edge costs a reorder.
//
// Runs after the channels-last pass, on its NHWC nodes. A node can run
// blocked when every channel count it sees is a multiple of 16: FusedConv
// with one group, and the pools, unary elementwise ops and channel Concats
// fed by blocked values; and a stem convolution (fewer than 16 input
// channels, read through the channels-last pass's transpose of an NCHW
// value) may start a region reading the NCHW value itself. Candidates
// connected through the values between them form regions; a region is
// converted when it holds a Concat. Its values are
// renamed "<value>__b16" and have the 5-D shape above; deskml.Reorder nodes
// convert at the edges (`to` = "nChw16c" or "nhwc"), and an NHWC value is
// recreated only when something outside the region reads it.
#include <numeric>

#include "optimizer/optimizer.hpp"

namespace deskml::optimizer {
namespace {

constexpr int64_t kBlock = 16;

bool is_nhwc_conv(const graph::Node& n) {
  return n.domain == kDeskmlDomain && n.op_type == "FusedConv" && n.attr_int("channels_last", 0) != 0;
}

bool is_nhwc_pool(const graph::Node& n) {
  return n.domain == kDeskmlDomain && (n.op_type == "NhwcMaxPool" || n.op_type == "NhwcAveragePool");
}

// Union-find over node indices.
struct Regions {
  std::vector<size_t> parent;
  explicit Regions(size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), size_t{0}); }
  size_t find(size_t i) {
    while (parent[i] != i) i = parent[i] = parent[parent[i]];
    return i;
  }
  void join(size_t a, size_t b) { parent[find(a)] = find(b); }
};

}  // namespace

int convert_to_blocked(GraphEditor& editor) {
  auto& g = editor.graph();
  const size_t count = g.nodes.size();
  // Pass 1: candidates, in order (topological). `blocked_by` maps a value a
  // candidate produces to that candidate.
  std::unordered_map<std::string, size_t> blocked_by;
  std::vector<bool> candidate(count, false);
  // Stems: a convolution with fewer than 16 input channels (an image's 3)
  // whose NHWC input is a transpose of an NCHW value. It joins the region
  // reading that value itself (`nchw_input`): oneDNN's first-layer kernel
  // takes a plain source and a blocked destination, so neither the transpose
  // nor a reorder into the region is needed. stem_source[i] names the value.
  std::vector<std::string> stem_source(count);
  Regions regions(count);
  for (size_t i = 0; i < count; ++i) {
    const graph::Node& n = g.nodes[i];
    if (n.outputs.size() != 1 || n.outputs[0].empty()) continue;
    const auto produced = [&](const std::string& v) { return !v.empty() && blocked_by.count(v) != 0; };
    bool ok = false;
    if (is_nhwc_conv(n)) {
      const Tensor* w = editor.constant(n.input(1));
      const bool blocked_out = w && w->rank() == 4 && n.attr_int("group", 1) == 1 && w->dim(0) > 0 && w->dim(1) > 0 &&
                               w->dim(0) % kBlock == 0;
      ok = blocked_out && w->dim(1) % kBlock == 0;
      // The residual has the output's channels; it may come from anywhere.
      if (blocked_out && w->dim(1) < kBlock && n.input(3).empty()) {
        const int p = editor.producer(n.input(0));
        if (p >= 0) {
          const graph::Node& t = g.nodes[static_cast<size_t>(p)];
          if (t.domain.empty() && t.op_type == "Transpose" && t.attr_ints("perm") == std::vector<int64_t>{0, 2, 3, 1} &&
              !t.inputs.empty()) {
            stem_source[i] = t.inputs[0];
            ok = true;
          }
        }
      }
    } else if (is_nhwc_pool(n)) {
      ok = produced(n.input(0)) && n.attr_ints("kernel_shape").size() == 2;
    } else if (is_layout_free_unary(editor, n)) {
      ok = produced(n.input(0));
    } else if (n.domain.empty() && n.op_type == "Concat" && n.attr_int("axis", 0) == 3 && !n.inputs.empty()) {
      ok = true;
      for (const auto& in : n.inputs) ok = ok && produced(in);
    }
    if (!ok) continue;
    candidate[i] = true;
    blocked_by[n.outputs[0]] = i;
    for (const auto& in : n.inputs) {
      if (auto it = blocked_by.find(in); it != blocked_by.end() && it->second != i) regions.join(i, it->second);
    }
  }
  std::unordered_set<size_t> with_concat;
  for (size_t i = 0; i < count; ++i) {
    if (candidate[i] && g.nodes[i].op_type == "Concat") with_concat.insert(regions.find(i));
  }
  std::vector<bool> convert(count, false);
  bool any = false;
  for (size_t i = 0; i < count; ++i) {
    convert[i] = candidate[i] && with_concat.count(regions.find(i)) != 0;
    any = any || convert[i];
  }
  if (!any) return 0;

  // Which NHWC values are still read outside the converted nodes.
  std::unordered_set<std::string> need_nhwc;
  for (size_t i = 0; i < count; ++i) {
    if (convert[i]) continue;
    for (const auto& in : g.nodes[i].inputs) need_nhwc.insert(in);
  }
  for (const auto& vi : g.outputs) need_nhwc.insert(vi.name);

  auto reorder_node = [&](const std::string& in, const std::string& out, const char* to) {
    graph::Node r;
    r.name = out + "_reorder";
    r.domain = kDeskmlDomain;
    r.op_type = "Reorder";
    r.opset = 1;
    r.inputs = {in};
    r.outputs = {out};
    r.attributes["to"] = std::string(to);
    return r;
  };
  std::unordered_map<std::string, std::string> blocked;  // NHWC name -> blocked name
  std::vector<graph::Node> out_nodes;
  auto blocked_input = [&](const std::string& v) {
    if (auto it = blocked.find(v); it != blocked.end()) return it->second;
    const std::string name = editor.fresh_name(v + "__b16");
    out_nodes.push_back(reorder_node(v, name, "nChw16c"));
    blocked[v] = name;
    return name;
  };

  // Pass 2: emit.
  int converted = 0;
  for (size_t i = 0; i < count; ++i) {
    graph::Node n = std::move(g.nodes[i]);
    if (!convert[i]) {
      out_nodes.push_back(std::move(n));
      continue;
    }
    ++converted;
    const bool conv = is_nhwc_conv(n);
    if (!stem_source[i].empty()) {
      n.inputs[0] = stem_source[i];
      n.attributes["nchw_input"] = int64_t{1};
    }
    for (size_t k = stem_source[i].empty() ? 0 : 1; k < n.inputs.size(); ++k) {
      const bool data = conv ? (k == 0 || k == 3) : (n.op_type == "Concat" || k == 0);
      if (data && !n.inputs[k].empty()) n.inputs[k] = blocked_input(n.inputs[k]);
    }
    if (n.op_type == "Concat") {
      n.attributes["axis"] = int64_t{1};
    } else if (conv || is_nhwc_pool(n)) {
      n.attributes["blocked"] = kBlock;
    }
    const std::string orig = n.outputs[0];
    const std::string name = editor.fresh_name(orig + "__b16");
    blocked[orig] = name;
    n.outputs[0] = name;
    out_nodes.push_back(std::move(n));
    if (need_nhwc.count(orig) || editor.is_pinned(orig)) out_nodes.push_back(reorder_node(name, orig, "nhwc"));
  }
  g.nodes = std::move(out_nodes);
  editor.refresh();
  return converted;
}

}  // namespace deskml::optimizer
