// Fusion passes: BatchNorm folded into Conv, activation patterns (SiLU, erf
// GELU) recognised, Conv + bias + activation + residual Add fused into
// deskml.FusedConv, MatMul/Gemm + bias + activation + residual Add into
// deskml.FusedMatMul.
#include <cmath>

#include "optimizer/activation_match.hpp"
#include "optimizer/optimizer.hpp"

namespace deskml::optimizer {
namespace {

bool is_op(const graph::Node& n, const char* op) { return n.op_type == op && n.domain.empty(); }

// Equal known shapes (numbers equal, or the same symbol): no broadcasting between them.
bool same_shape(const GraphEditor& editor, const std::string& a, const std::string& b) {
  auto sa = editor.shape_of(a), sb = editor.shape_of(b);
  if (!sa || !sb || sa->size() != sb->size()) return false;
  for (size_t i = 0; i < sa->size(); ++i) {
    const auto &x = (*sa)[i], &y = (*sb)[i];
    if (x.known() != y.known()) return false;
    if (x.known() ? x.value != y.value : (x.symbol.empty() || x.symbol != y.symbol)) return false;
  }
  return true;
}

// The other input of a binary node, given one.
const std::string& other_input(const graph::Node& n, const std::string& one) {
  return n.inputs[0] == one ? n.inputs[1] : n.inputs[0];
}

// A fused node's activation so far comes before the residual sum that is being
// fused next: it becomes the pre_activation.
void activation_before_sum(graph::Node& f) {
  if (!f.has_attr("activation")) return;
  f.attributes["pre_activation"] = f.attributes["activation"];
  f.attributes["pre_activation_alpha"] = f.attributes["activation_alpha"];
  f.attributes["pre_activation_beta"] = f.attributes["activation_beta"];
  f.attributes.erase("activation");
}

bool near(float v, float want) { return std::fabs(v - want) <= 1e-4f * std::fabs(want); }

// The nodes a fusion absorbs after its root: the fused node takes the last
// absorbed node's place and output, and the nodes before it are removed.
class Absorber {
 public:
  Absorber(GraphEditor& editor, size_t root)
      : editor_(editor), y_(editor.graph().nodes[root].outputs[0]), last_(root) {}

  const std::string& output() const { return y_; }
  // The node that alone reads the output so far, or nullptr.
  graph::Node* reader() const { return editor_.sole_reader(y_); }
  void take(const graph::Node& n) {
    absorbed_.push_back(last_);
    last_ = static_cast<size_t>(&n - editor_.graph().nodes.data());
    y_ = n.outputs[0];
  }

  // [activation] [Add residual] [activation] into `f`: a residual of the
  // output's shape becomes input 3 (oneDNN's sum post-op, written into the
  // residual's buffer), an activation before it f's pre_activation.
  void take_activations_and_residual(graph::Node& f) {
    take_activation(f);
    graph::Node* n = reader();
    if (!n || !is_op(*n, "Add") || n->inputs.size() != 2 || n->inputs[0] == n->inputs[1]) return;
    const std::string& r = other_input(*n, y_);
    if (!same_shape(editor_, r, y_) || editor_.dtype_of(r) != DataType::kFloat32) return;
    f.inputs.resize(3);  // an absent bias stays an empty input
    f.inputs.push_back(r);
    activation_before_sum(f);
    take(*n);
    take_activation(f);
  }

  // Puts `f` in the last absorbed node's place, with its output, and removes the others.
  void replace_with(graph::Node f) {
    f.outputs = {y_};
    editor_.graph().nodes[last_] = std::move(f);
    for (size_t n : absorbed_) editor_.mark_removed(n);
  }

 private:
  void take_activation(graph::Node& f) {
    if (graph::Node* n = reader()) {
      if (auto act = match_activation(editor_, *n); act && n->inputs[0] == y_) {
        set_activation_attrs(f, "activation", *act);
        take(*n);
      }
    }
  }

  GraphEditor& editor_;
  std::string y_;  // the fused node's output so far
  size_t last_;    // the node the fused one will replace
  std::vector<size_t> absorbed_;
};

}  // namespace

int fold_batch_norm(GraphEditor& editor) {
  int folded = 0;
  auto& g = editor.graph();
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const graph::Node& conv = g.nodes[i];
    if (!is_op(conv, "Conv") || conv.outputs.size() != 1) continue;
    const int c = editor.single_consumer(conv.outputs[0]);
    if (c < 0) continue;
    graph::Node& bn = g.nodes[static_cast<size_t>(c)];
    if (!is_op(bn, "BatchNormalization") || bn.inputs.size() < 5 || bn.inputs[0] != conv.outputs[0]) continue;
    bool extra_outputs = false;
    for (size_t o = 1; o < bn.outputs.size(); ++o) extra_outputs = extra_outputs || !bn.outputs[o].empty();
    if (extra_outputs || bn.attr_int("training_mode", 0) != 0) continue;
    const Tensor* w = editor.constant(conv.input(1));
    const Tensor* b = conv.input(2).empty() ? nullptr : editor.constant(conv.input(2));
    const Tensor *scale = editor.constant(bn.inputs[1]), *shift = editor.constant(bn.inputs[2]);
    const Tensor *mean = editor.constant(bn.inputs[3]), *var = editor.constant(bn.inputs[4]);
    if (!w || !scale || !shift || !mean || !var || (!conv.input(2).empty() && !b)) continue;
    if (w->dtype() != DataType::kFloat32 || w->rank() < 3) continue;
    const int64_t oc = w->dim(0);
    bool ok = true;
    for (const Tensor* t : {scale, shift, mean, var}) ok = ok && t->dtype() == DataType::kFloat32 && t->numel() == oc;
    if (!ok || (b && (b->dtype() != DataType::kFloat32 || b->numel() != oc))) continue;
    const float eps = bn.attr_float("epsilon", 1e-5f);
    Tensor nw = w->clone();
    Tensor nb(DataType::kFloat32, {oc});
    const int64_t per = w->numel() / oc;
    for (int64_t o = 0; o < oc; ++o) {
      const float s = scale->data<float>()[o] / std::sqrt(var->data<float>()[o] + eps);
      float* wp = nw.data<float>() + o * per;
      for (int64_t k = 0; k < per; ++k) wp[k] *= s;
      const float b0 = b ? b->data<float>()[o] : 0.0f;
      nb.data<float>()[o] = (b0 - mean->data<float>()[o]) * s + shift->data<float>()[o];
    }
    graph::Node fused = conv;
    fused.inputs.resize(3);
    fused.inputs[1] = editor.add_constant(conv.input(1) + "_bn", std::move(nw));
    fused.inputs[2] = editor.add_constant(conv.name + "_bn_bias", std::move(nb));
    fused.outputs[0] = bn.outputs[0];
    bn = std::move(fused);  // at the BatchNorm's position, where its output is produced
    editor.mark_removed(i);
    ++folded;
  }
  editor.remove_marked();
  return folded;
}

int fuse_activation_patterns(GraphEditor& editor) {
  int fused = 0;
  auto& g = editor.graph();
  auto replace_at = [&](size_t at, const std::string& op, const std::string& x, const std::string& out,
                        const std::string& name) {
    graph::Node n;
    n.name = name;
    n.op_type = op;
    n.domain = kDeskmlDomain;
    n.opset = 1;
    n.inputs = {x};
    n.outputs = {out};
    g.nodes[at] = std::move(n);
  };
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (editor.is_removed(i)) continue;
    const graph::Node& node = g.nodes[i];
    // Swish / SiLU: Mul(x, Sigmoid(x)).
    if (node.inputs.empty()) continue;
    if (is_op(node, "Sigmoid") && node.outputs.size() == 1) {
      const int m = editor.single_consumer(node.outputs[0]);
      if (m < 0) continue;
      const graph::Node& mul = g.nodes[static_cast<size_t>(m)];
      if (!is_op(mul, "Mul") || mul.inputs.size() != 2 || other_input(mul, node.outputs[0]) != node.inputs[0]) continue;
      const std::string x = node.inputs[0];
      replace_at(static_cast<size_t>(m), "Swish", x, mul.outputs[0], mul.name);
      editor.mark_removed(i);
      ++fused;
      continue;
    }
    // GELU (erf form): x * 0.5 * (1 + erf(x / sqrt 2)), in PyTorch's and paddle's orders.
    if (is_op(node, "Erf") && node.outputs.size() == 1) {
      const int d = editor.producer(node.inputs[0]);
      if (d < 0 || editor.single_consumer(node.inputs[0]) < 0) continue;
      const graph::Node& div = g.nodes[static_cast<size_t>(d)];
      std::string x;
      if (is_op(div, "Div") && div.inputs.size() == 2) {
        auto c = scalar_constant(editor, div.inputs[1]);
        if (c && near(*c, std::sqrt(2.0f))) x = div.inputs[0];
      } else if (is_op(div, "Mul") && div.inputs.size() == 2) {
        for (int k = 0; k < 2 && x.empty(); ++k) {
          auto c = scalar_constant(editor, div.inputs[static_cast<size_t>(k)]);
          if (c && near(*c, 1.0f / std::sqrt(2.0f))) x = div.inputs[static_cast<size_t>(1 - k)];
        }
      }
      if (x.empty()) continue;
      const int a = editor.single_consumer(node.outputs[0]);
      if (a < 0 || !is_op(g.nodes[static_cast<size_t>(a)], "Add")) continue;
      const graph::Node& add = g.nodes[static_cast<size_t>(a)];
      auto one = scalar_constant(editor, other_input(add, node.outputs[0]));
      if (!one || !near(*one, 1.0f)) continue;
      const int m1 = editor.single_consumer(add.outputs[0]);
      if (m1 < 0 || !is_op(g.nodes[static_cast<size_t>(m1)], "Mul")) continue;
      const graph::Node& mul1 = g.nodes[static_cast<size_t>(m1)];
      const std::string& f = other_input(mul1, add.outputs[0]);
      std::vector<size_t> chain = {static_cast<size_t>(d), i, static_cast<size_t>(a)};
      size_t last = static_cast<size_t>(m1);
      if (f == x) {  // (x * (1 + erf)) * 0.5
        const int m2 = editor.single_consumer(mul1.outputs[0]);
        if (m2 < 0 || !is_op(g.nodes[static_cast<size_t>(m2)], "Mul")) continue;
        auto half = scalar_constant(editor, other_input(g.nodes[static_cast<size_t>(m2)], mul1.outputs[0]));
        if (!half || !near(*half, 0.5f)) continue;
        chain.push_back(static_cast<size_t>(m1));
        last = static_cast<size_t>(m2);
      } else {  // (x * 0.5) * (1 + erf)
        const int h = editor.producer(f);
        if (h < 0 || editor.single_consumer(f) < 0 || !is_op(g.nodes[static_cast<size_t>(h)], "Mul")) continue;
        const graph::Node& hm = g.nodes[static_cast<size_t>(h)];
        if (hm.inputs.size() != 2 || (hm.inputs[0] != x && hm.inputs[1] != x)) continue;
        auto half = scalar_constant(editor, other_input(hm, x));
        if (!half || !near(*half, 0.5f)) continue;
        chain.push_back(static_cast<size_t>(h));
      }
      const std::string out = g.nodes[last].outputs[0];
      replace_at(last, "Gelu", x, out, g.nodes[last].name);
      for (size_t n : chain) editor.mark_removed(n);
      ++fused;
    }
  }
  editor.remove_marked();
  return fused;
}

int fuse_conv(GraphEditor& editor) {
  int fused = 0;
  auto& g = editor.graph();
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (editor.is_removed(i)) continue;
    const graph::Node& conv = g.nodes[i];
    if (!is_op(conv, "Conv") || conv.outputs.size() != 1 || conv.inputs.size() < 2) continue;
    // ONNX Conv has one type for X and W, so float32 weights mean a float32 X.
    const Tensor* cw = editor.constant(conv.inputs[1]);
    if (editor.dtype_of(conv.inputs[0]) != DataType::kFloat32 && !(cw && cw->dtype() == DataType::kFloat32)) continue;
    graph::Node f = conv;
    f.op_type = "FusedConv";
    f.domain = kDeskmlDomain;
    f.opset = 1;
    f.inputs.resize(3);
    Absorber chain(editor, i);
    chain.take_activations_and_residual(f);
    chain.replace_with(std::move(f));
    ++fused;
  }
  editor.remove_marked();
  return fused;
}

int fuse_matmul(GraphEditor& editor) {
  int fused = 0;
  auto& g = editor.graph();
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (editor.is_removed(i)) continue;
    const graph::Node& mm = g.nodes[i];
    const bool gemm = is_op(mm, "Gemm");
    if (!(is_op(mm, "MatMul") || gemm) || mm.outputs.size() != 1 || mm.inputs.size() < 2) continue;
    // A has B's type (float32) in a valid model; its rank may be unknown (after a dynamic Reshape).
    const Tensor* w = editor.constant(mm.inputs[1]);
    if (w == nullptr || w->rank() != 2 || w->dtype() != DataType::kFloat32) continue;
    auto a_shape = editor.shape_of(mm.inputs[0]);
    if (gemm && (!a_shape || a_shape->size() != 2)) continue;
    const size_t a_rank = a_shape ? a_shape->size() : 0;  // 0: unknown
    graph::Node f;
    f.name = mm.name;
    f.op_type = "FusedMatMul";
    f.domain = kDeskmlDomain;
    f.opset = 1;
    f.inputs = {mm.inputs[0], mm.inputs[1]};
    const int64_t n_out = gemm && mm.attr_int("transB", 0) ? w->dim(0) : w->dim(1);
    if (gemm) {
      if (mm.attr_int("transA", 0) != 0 || mm.attr_float("alpha", 1.0f) != 1.0f) continue;
      f.attributes["trans_b"] = mm.attr_int("transB", 0);
      if (mm.inputs.size() > 2 && !mm.inputs[2].empty()) {
        const Tensor* c = editor.constant(mm.inputs[2]);
        if (!c || c->dtype() != DataType::kFloat32 || c->numel() != n_out || mm.attr_float("beta", 1.0f) != 1.0f) {
          continue;
        }
        if (c->rank() > 2 || (c->rank() == 2 && c->dim(0) != 1)) continue;
        f.inputs.push_back(mm.inputs[2]);
      }
    } else {
      f.attributes["trans_b"] = int64_t{0};
    }
    Absorber chain(editor, i);
    if (f.inputs.size() == 2) {  // MatMul + Add(bias [N])
      if (graph::Node* n = chain.reader(); n && is_op(*n, "Add") && n->inputs.size() == 2) {
        const std::string& other = other_input(*n, chain.output());
        const Tensor* bias = editor.constant(other);
        if (bias && bias->dtype() == DataType::kFloat32 && bias->numel() == n_out && bias->rank() >= 1 &&
            bias->dim(-1) == n_out && (bias->rank() == 1 || bias->rank() <= static_cast<int64_t>(a_rank))) {
          f.inputs.push_back(other);
          chain.take(*n);
        }
      }
    }
    chain.take_activations_and_residual(f);  // a transformer's skip connection
    chain.replace_with(std::move(f));
    ++fused;
  }
  editor.remove_marked();
  return fused;
}

}  // namespace deskml::optimizer

namespace deskml::optimizer {

int fuse_attention(GraphEditor& editor) {
  int fused = 0;
  auto& g = editor.graph();
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (editor.is_removed(i)) continue;
    const graph::Node& qk = g.nodes[i];
    if (!is_op(qk, "MatMul") || qk.inputs.size() != 2 || qk.outputs.size() != 1) continue;
    std::vector<size_t> chain = {i};
    std::string y = qk.outputs[0];
    float scale = 1.0f;
    std::string mask;
    graph::Node* n = editor.sole_reader(y);
    if (n && (is_op(*n, "Div") || is_op(*n, "Mul")) && n->inputs.size() == 2 && n->inputs[0] == y) {
      auto c = scalar_constant(editor, n->inputs[1]);
      if (!c || *c == 0.0f) continue;
      scale = is_op(*n, "Div") ? 1.0f / *c : *c;
      chain.push_back(static_cast<size_t>(n - g.nodes.data()));
      y = n->outputs[0];
      n = editor.sole_reader(y);
    }
    if (n && is_op(*n, "Add") && n->inputs.size() == 2 && n->inputs[0] != n->inputs[1]) {
      const std::string& m = other_input(*n, y);
      if (editor.dtype_of(m) != DataType::kFloat32) continue;
      mask = m;
      chain.push_back(static_cast<size_t>(n - g.nodes.data()));
      y = n->outputs[0];
      n = editor.sole_reader(y);
    }
    if (!n || !is_op(*n, "Softmax") || n->outputs.size() != 1) continue;
    // Softmax over the last axis: opset 13's default, or an explicit last axis of a known rank.
    const int64_t axis = n->attr_int("axis", n->opset >= 13 ? -1 : 1);
    auto rank = editor.shape_of(qk.outputs[0]);
    const bool last_axis = axis == -1 || (rank && axis == static_cast<int64_t>(rank->size()) - 1);
    if (!last_axis) continue;
    chain.push_back(static_cast<size_t>(n - g.nodes.data()));
    y = n->outputs[0];
    n = editor.sole_reader(y);
    if (!n || !is_op(*n, "MatMul") || n->inputs.size() != 2 || n->inputs[0] != y || n->inputs[1] == y) continue;
    // All float32: the first MatMul's operands decide (MatMul has one type).
    if (editor.dtype_of(qk.inputs[0]) != DataType::kFloat32 && editor.dtype_of(qk.inputs[1]) != DataType::kFloat32) {
      continue;
    }
    graph::Node f;
    f.name = n->name;
    f.op_type = "Attention";
    f.domain = kDeskmlDomain;
    f.opset = 1;
    f.inputs = {qk.inputs[0], qk.inputs[1], n->inputs[1]};
    if (!mask.empty()) f.inputs.push_back(mask);
    f.outputs = {n->outputs[0]};
    f.attributes["scale"] = scale;
    // Head split/merge transposes around attention become strided reads and writes.
    auto absorb_input = [&](size_t idx, const char* attr) {
      const std::string in = f.inputs[idx];
      const int p = editor.producer(in);
      if (p < 0 || editor.is_removed(static_cast<size_t>(p)) || editor.single_consumer(in) < 0) return;
      const graph::Node& t = g.nodes[static_cast<size_t>(p)];
      if (!is_op(t, "Transpose") || t.inputs.empty() || t.attr_ints("perm").empty()) return;
      f.attributes[attr] = t.attr_ints("perm");
      f.inputs[idx] = t.inputs[0];
      chain.push_back(static_cast<size_t>(p));
    };
    if (f.inputs[0] != f.inputs[1] && f.inputs[1] != f.inputs[2] && f.inputs[0] != f.inputs[2]) {
      absorb_input(0, "q_perm");
      absorb_input(1, "k_perm");
      absorb_input(2, "v_perm");
    }
    if (const int c = editor.single_consumer(n->outputs[0]); c >= 0) {
      const graph::Node& t = g.nodes[static_cast<size_t>(c)];
      if (is_op(t, "Transpose") && !t.attr_ints("perm").empty() && t.outputs.size() == 1) {
        f.attributes["out_perm"] = t.attr_ints("perm");
        f.outputs = {t.outputs[0]};
        chain.push_back(static_cast<size_t>(c));
      }
    }
    *n = std::move(f);
    for (size_t c : chain) editor.mark_removed(c);
    ++fused;
  }
  editor.remove_marked();
  return fused;
}

}  // namespace deskml::optimizer
