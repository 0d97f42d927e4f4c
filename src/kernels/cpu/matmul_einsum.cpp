// Einsum: the equation is parsed into labels; each operand has its repeated
// labels reduced to diagonals and its private labels summed out, operands are
// contracted left to right as batched matrix products, and the result is
// permuted into the output's label order.
#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/dnnl_context.hpp"
#include "kernels/cpu/matmul_loops.hpp"

namespace deskml::kernels::cpu {
namespace {

constexpr int kEllipsisBase = 52;  // labels 0..51 are letters, then one per ellipsis axis

struct Term {
  std::vector<int> labels;  // letter labels, with kEllipsis marking where "..." sits
  bool has_ellipsis = false;
};
constexpr int kEllipsis = -1;

struct Operand {
  Tensor t;
  std::vector<int> labels;  // one per axis, unique
};

int letter_label(char c) {
  if (c >= 'a' && c <= 'z') return c - 'a';
  if (c >= 'A' && c <= 'Z') return 26 + (c - 'A');
  return -2;
}

Term parse_term(const std::string& s, const KernelContext& ctx) {
  Term t;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '.') {
      if (t.has_ellipsis || s.compare(i, 3, "...") != 0) throw_status(ctx.error("malformed ellipsis in equation"));
      t.has_ellipsis = true;
      t.labels.push_back(kEllipsis);
      i += 2;
      continue;
    }
    const int l = letter_label(s[i]);
    if (l < 0) throw_status(ctx.error(std::string("invalid character '") + s[i] + "' in equation"));
    t.labels.push_back(l);
  }
  return t;
}

// Sums out the axes of `op` whose labels are not in `keep`.
template <typename T>
Operand sum_out(Operand op, const std::set<int>& keep, int threads) {
  std::vector<int64_t> kept_axes, summed_axes;
  for (size_t i = 0; i < op.labels.size(); ++i) {
    (keep.count(op.labels[i]) ? kept_axes : summed_axes).push_back(static_cast<int64_t>(i));
  }
  if (summed_axes.empty()) return op;
  std::vector<int64_t> perm = kept_axes;
  perm.insert(perm.end(), summed_axes.begin(), summed_axes.end());
  const Tensor p = permute_tensor(op.t, perm, threads);
  Shape out_shape;
  std::vector<int> out_labels;
  int64_t inner = 1;
  for (int64_t a : kept_axes) {
    out_shape.push_back(op.t.shape()[static_cast<size_t>(a)]);
    out_labels.push_back(op.labels[static_cast<size_t>(a)]);
  }
  for (int64_t a : summed_axes) inner *= op.t.shape()[static_cast<size_t>(a)];
  Tensor out(op.t.dtype(), out_shape);
  const T* src = p.data<T>();
  T* dst = out.data<T>();
  parallel_for(out.numel(), threads, inner, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      AccumulatorOf<T> acc{};
      for (int64_t j = 0; j < inner; ++j) acc += static_cast<AccumulatorOf<T>>(src[i * inner + j]);
      dst[i] = static_cast<T>(acc);
    }
  });
  return {out, out_labels};
}

// Contracts two operands over their shared labels not in `keep`; shared labels
// in `keep` are batch axes. Result labels: batch, then A's own, then B's own.
template <typename T>
Operand contract(const Operand& a, const Operand& b, const std::set<int>& keep, int threads) {
  std::vector<int> batch, a_only, b_only, summed;
  for (int l : a.labels) {
    const bool in_b = std::find(b.labels.begin(), b.labels.end(), l) != b.labels.end();
    if (!in_b) {
      a_only.push_back(l);
    } else {
      (keep.count(l) ? batch : summed).push_back(l);
    }
  }
  for (int l : b.labels) {
    if (std::find(a.labels.begin(), a.labels.end(), l) == a.labels.end()) b_only.push_back(l);
  }
  auto axis_of = [](const Operand& op, int l) {
    return static_cast<int64_t>(std::find(op.labels.begin(), op.labels.end(), l) - op.labels.begin());
  };
  auto size_of = [&](const Operand& op, const std::vector<int>& labels) {
    int64_t n = 1;
    for (int l : labels) n *= op.t.shape()[static_cast<size_t>(axis_of(op, l))];
    return n;
  };
  std::vector<int64_t> pa, pb;
  for (const auto* group : {&batch, &a_only, &summed}) {
    for (int l : *group) pa.push_back(axis_of(a, l));
  }
  for (const auto* group : {&batch, &summed, &b_only}) {
    for (int l : *group) pb.push_back(axis_of(b, l));
  }
  const Tensor at = permute_tensor(a.t, pa, threads);
  const Tensor bt = permute_tensor(b.t, pb, threads);
  const int64_t nb = size_of(a, batch), m = size_of(a, a_only), k = size_of(a, summed), n = size_of(b, b_only);
  Shape out_shape;
  std::vector<int> out_labels;
  for (int l : batch) {
    out_shape.push_back(a.t.shape()[static_cast<size_t>(axis_of(a, l))]);
    out_labels.push_back(l);
  }
  for (int l : a_only) {
    out_shape.push_back(a.t.shape()[static_cast<size_t>(axis_of(a, l))]);
    out_labels.push_back(l);
  }
  for (int l : b_only) {
    out_shape.push_back(b.t.shape()[static_cast<size_t>(axis_of(b, l))]);
    out_labels.push_back(l);
  }
  Tensor out(a.t.dtype(), out_shape);
  if (out.numel() == 0) return {out, out_labels};
  if (k == 0) {
    std::memset(out.raw_data(), 0, out.nbytes());
    return {out, out_labels};
  }
  if constexpr (std::is_same_v<T, float>) {
    onednn::matmul_f32(nb, m, n, k, at.data<float>(), bt.data<float>(), out.data<float>());
  } else {
    std::vector<int64_t> a_off(static_cast<size_t>(nb)), b_off(static_cast<size_t>(nb));
    for (int64_t i = 0; i < nb; ++i) {
      a_off[static_cast<size_t>(i)] = i * m * k;
      b_off[static_cast<size_t>(i)] = i * k * n;
    }
    batched_gemm<T, T, T, AccumulatorOf<T>>(a_off, b_off, m, n, k, at.data<T>(), bt.data<T>(), out.data<T>(), threads);
  }
  return {out, out_labels};
}

template <typename T>
Tensor run_einsum(const std::vector<Operand>& ops, const std::vector<int>& output, int threads) {
  // A label is kept while it is in the output or in an operand not yet consumed.
  auto keep_after = [&](size_t i) {
    std::set<int> keep(output.begin(), output.end());
    for (size_t j = i + 1; j < ops.size(); ++j) keep.insert(ops[j].labels.begin(), ops[j].labels.end());
    return keep;
  };
  // Labels private to the first operand are summed before anything else.
  Operand cur = sum_out<T>(ops[0], keep_after(0), threads);
  for (size_t i = 1; i < ops.size(); ++i) {
    const std::set<int> keep = keep_after(i);
    std::set<int> keep_b = keep;
    keep_b.insert(cur.labels.begin(), cur.labels.end());
    std::set<int> keep_a = keep;
    keep_a.insert(ops[i].labels.begin(), ops[i].labels.end());
    cur = contract<T>(sum_out<T>(cur, keep_a, threads), sum_out<T>(ops[i], keep_b, threads), keep, threads);
  }
  cur = sum_out<T>(cur, std::set<int>(output.begin(), output.end()), threads);
  std::vector<int64_t> perm;
  for (int l : output) {
    perm.push_back(static_cast<int64_t>(std::find(cur.labels.begin(), cur.labels.end(), l) - cur.labels.begin()));
  }
  return permute_tensor(cur.t, perm, threads);
}

class EinsumKernel final : public Kernel {
 public:
  explicit EinsumKernel(const graph::Node& node) : equation_(node.attr_string("equation")) {}

  Status compute(KernelContext& ctx) override {
    std::string eq;
    for (char c : equation_) {
      if (c != ' ') eq += c;
    }
    const size_t arrow = eq.find("->");
    const std::string lhs = eq.substr(0, arrow);
    std::vector<Term> terms;
    for (size_t start = 0;;) {
      const size_t comma = lhs.find(',', start);
      terms.push_back(parse_term(lhs.substr(start, comma - start), ctx));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    if (terms.size() != ctx.num_inputs()) {
      return ctx.error("equation has " + std::to_string(terms.size()) + " operands but the node has " +
                       std::to_string(ctx.num_inputs()) + " inputs");
    }
    const DataType dtype = ctx.required_input(0).dtype();
    // Ellipsis rank, then each label's size (ellipsis axes may broadcast from 1).
    int64_t ell_rank = 0;
    for (size_t i = 0; i < terms.size(); ++i) {
      const Tensor& t = ctx.required_input(i);
      if (t.dtype() != dtype) return ctx.error("all inputs must have one type");
      const int64_t letters = static_cast<int64_t>(terms[i].labels.size()) - (terms[i].has_ellipsis ? 1 : 0);
      if (terms[i].has_ellipsis ? t.rank() < letters : t.rank() != letters) {
        return ctx.error("operand " + std::to_string(i) + " " + shape_to_string(t.shape()) +
                         " does not match its equation term");
      }
      if (terms[i].has_ellipsis) ell_rank = std::max(ell_rank, t.rank() - letters);
    }
    std::map<int, int64_t> sizes;
    std::vector<Operand> ops;
    for (size_t i = 0; i < terms.size(); ++i) {
      const Tensor& t = ctx.required_input(i);
      std::vector<int> axis_labels;
      for (int l : terms[i].labels) {
        if (l != kEllipsis) {
          axis_labels.push_back(l);
          continue;
        }
        const int64_t r = t.rank() - (static_cast<int64_t>(terms[i].labels.size()) - 1);
        for (int64_t e = ell_rank - r; e < ell_rank; ++e) axis_labels.push_back(kEllipsisBase + static_cast<int>(e));
      }
      for (size_t a = 0; a < axis_labels.size(); ++a) {
        const int l = axis_labels[a];
        const int64_t d = t.shape()[a];
        auto [it, fresh] = sizes.emplace(l, d);
        if (fresh || it->second == d) continue;
        if (l >= kEllipsisBase && (it->second == 1 || d == 1)) {
          it->second = std::max(it->second, d);
          continue;
        }
        return ctx.error("label sizes disagree across operands");
      }
      ops.push_back({t, axis_labels});
    }
    // Diagonals for repeated labels, broadcasts for size-1 ellipsis axes.
    for (auto& op : ops) {
      const auto strides = shape_strides(op.t.shape());
      std::vector<int> labels;
      Shape shape;
      std::vector<int64_t> in_strides;
      bool copy = false;
      for (size_t a = 0; a < op.labels.size(); ++a) {
        const int l = op.labels[a];
        const int64_t s = op.t.shape()[a] == 1 && sizes[l] != 1 ? 0 : strides[a];
        copy |= s != strides[a];
        auto it = std::find(labels.begin(), labels.end(), l);
        if (it != labels.end()) {
          in_strides[static_cast<size_t>(it - labels.begin())] += s;
          copy = true;
          continue;
        }
        labels.push_back(l);
        shape.push_back(sizes[l]);
        in_strides.push_back(s);
      }
      if (copy) op.t = strided_copy(op.t, shape, in_strides, ctx.threads());
      op.labels = labels;
    }
    std::vector<int> output;
    if (arrow != std::string::npos) {
      const Term out = parse_term(eq.substr(arrow + 2), ctx);
      for (int l : out.labels) {
        if (l == kEllipsis) {
          for (int64_t e = 0; e < ell_rank; ++e) output.push_back(kEllipsisBase + static_cast<int>(e));
        } else {
          if (!sizes.count(l)) return ctx.error("output label not present in any input");
          if (std::find(output.begin(), output.end(), l) != output.end()) return ctx.error("repeated output label");
          output.push_back(l);
        }
      }
    } else {
      for (int64_t e = 0; e < ell_rank; ++e) output.push_back(kEllipsisBase + static_cast<int>(e));
      std::map<int, int> counts;
      for (const auto& term : terms) {
        for (int l : term.labels) {
          if (l != kEllipsis) ++counts[l];
        }
      }
      for (const auto& [l, c] : counts) {
        if (c == 1) output.push_back(l);
      }
    }
    for (int l : output) {
      if (!sizes.count(l)) sizes[l] = 1;  // an ellipsis no operand fills
    }
    if (dtype == DataType::kFloat16 || dtype == DataType::kBFloat16) {
      for (auto& op : ops) op.t = op.t.cast(DataType::kFloat32);
      ctx.set_output(0, run_einsum<float>(ops, output, ctx.threads()).cast(dtype));
      return Status::Ok();
    }
    dispatch_numeric(dtype, "Einsum", [&](auto tag) {
      using T = decltype(tag);
      ctx.set_output(0, run_einsum<T>(ops, output, ctx.threads()));
    });
    return Status::Ok();
  }

 private:
  std::string equation_;
};

}  // namespace

void register_einsum_kernels(KernelRegistry& r) {
  KernelDef def;
  def.op = "Einsum";
  def.since = 12;
  def.types = types::kNumeric;
  def.factory = [](const graph::Node& node) { return std::make_unique<EinsumKernel>(node); };
  r.add(def);
}

}  // namespace deskml::kernels::cpu
