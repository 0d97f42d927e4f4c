// deskml.Attention: Y = softmax(Q x K * scale [+ mask]) x V in one kernel, the
// optimizer's fusion of MatMul -> Div/Mul -> [Add mask] -> Softmax(last axis)
// -> MatMul. K is the first product's right operand as the model has it (often
// already transposed to [..., D, Skv]). Leading (batch, head) dims broadcast as
// in MatMul. Scores stay in one buffer that scaling, masking and the softmax
// update in place, so only the two products touch memory at full size.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/avx512_math.hpp"
#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/dnnl_context.hpp"
#include "kernels/cpu/elementwise_common.hpp"
#include "kernels/cpu/matmul_loops.hpp"
#include "kernels/cpu/row_reduce.hpp"

namespace deskml::kernels::cpu {
namespace {

using namespace ew;

// C = A x B under MatMul broadcasting; oneDNN when the batch dims agree, loops otherwise.
Tensor product(const Tensor& a, const Tensor& b, int threads, const std::string& label) {
  auto s = matmul_shape(a.shape(), b.shape());
  if (!s.ok()) throw_status(invalid_argument(label + ": " + s.status().message()));
  Tensor c(DataType::kFloat32, s->out);
  if (c.numel() == 0) return c;
  const int64_t batch = shape_numel(s->batch);
  bool plain = true;
  for (int64_t i = 0; i < batch; ++i) {
    plain = plain && s->a_offsets[static_cast<size_t>(i)] == i * s->m * s->k &&
            s->b_offsets[static_cast<size_t>(i)] == i * s->k * s->n;
  }
  if (plain && s->k > 0) {
    onednn::matmul_f32(batch, s->m, s->n, s->k, a.data<float>(), b.data<float>(), c.data<float>());
  } else {
    batched_gemm<float, float, float, float>(s->a_offsets, s->b_offsets, s->m, s->n, s->k, a.data<float>(),
                                             b.data<float>(), c.data<float>(), threads);
  }
  return c;
}

// scale, add the mask, softmax: over each row of `scores`, in place.
void scaled_masked_softmax(Tensor& scores, const Tensor* mask, float scale, int threads, const KernelContext& ctx) {
  const Shape& ss = scores.shape();
  const int64_t len = ss.empty() ? 1 : ss.back();
  const int64_t rows = len == 0 ? 0 : scores.numel() / len;
  Tensor mask_full;
  if (mask) {
    auto out = broadcast_shapes(ss, mask->shape());
    if (!out.ok() || *out != ss) {
      throw_status(
          ctx.error("the mask " + mask->description() + " does not broadcast to the scores " + shape_to_string(ss)));
    }
    mask_full = mask->shape() == ss ? *mask : strided_copy(*mask, ss, broadcast_strides(mask->shape(), ss), 1);
  }
  float* sp = scores.data<float>();
  const float* mp = mask ? mask_full.data<float>() : nullptr;
  parallel_for(rows, threads, len * 12, [&](int64_t lo, int64_t hi) {
#if defined(__GNUC__) && defined(__x86_64__)
    if (has_avx512()) {
      for (int64_t r = lo; r < hi; ++r) avx512::softmax_row(sp + r * len, mp ? mp + r * len : nullptr, len, scale);
      return;
    }
#endif
    run_best([&] {
      // Passes without a running reduction, so that each vectorizes.
      for (int64_t r = lo; r < hi; ++r) {
        float* x = sp + r * len;
        if (mp) {
          const float* m = mp + r * len;
          for (int64_t i = 0; i < len; ++i) x[i] = x[i] * scale + m[i];
        } else {
          for (int64_t i = 0; i < len; ++i) x[i] *= scale;
        }
        const float mx = row_max(x, len);
        for (int64_t i = 0; i < len; ++i) x[i] = fast_exp(x[i] - mx);
        const float inv = 1.0f / row_sum(x, len);
        for (int64_t i = 0; i < len; ++i) x[i] *= inv;
      }
    });
  });
}

// A tensor seen through a transpose: logical dims and the strides that read them from its storage.
struct View {
  Shape dims;
  std::vector<int64_t> strides;
};

View view_of(const Tensor& t, const std::vector<int64_t>& perm) {
  View v;
  const auto st = shape_strides(t.shape());
  for (int64_t p : perm) {
    v.dims.push_back(t.shape()[static_cast<size_t>(p)]);
    v.strides.push_back(st[static_cast<size_t>(p)]);
  }
  return v;
}

bool valid_perm(const std::vector<int64_t>& perm, int64_t rank) {
  if (static_cast<int64_t>(perm.size()) != rank) return false;
  std::vector<bool> seen(perm.size(), false);
  for (int64_t p : perm) {
    if (p < 0 || p >= rank || seen[static_cast<size_t>(p)]) return false;
    seen[static_cast<size_t>(p)] = true;
  }
  return true;
}

class AttentionKernel final : public Kernel {
 public:
  explicit AttentionKernel(const graph::Node& node)
      : scale_(node.attr_float("scale", 1.0f)),
        q_perm_(node.attr_ints("q_perm")),
        k_perm_(node.attr_ints("k_perm")),
        v_perm_(node.attr_ints("v_perm")),
        out_perm_(node.attr_ints("out_perm")) {}

  Status compute(KernelContext& ctx) override {
    const Tensor& q = ctx.required_input(0);
    const Tensor& k = ctx.required_input(1);
    const Tensor& v = ctx.required_input(2);
    const Tensor* mask = ctx.input(3);
    for (const Tensor* t : {&q, &k, &v}) {
      if (t->dtype() != DataType::kFloat32) return ctx.error("Q, K and V must be float32");
    }
    if (mask && mask->dtype() != DataType::kFloat32) return ctx.error("the mask must be float32");
    const std::string label = ctx.node().label();
    // Operands as the model's MatMuls see them (after any absorbed transposes).
    auto perm_or_identity = [](const std::vector<int64_t>& p, int64_t rank) {
      if (!p.empty()) return p;
      std::vector<int64_t> id(static_cast<size_t>(rank));
      for (int64_t i = 0; i < rank; ++i) id[static_cast<size_t>(i)] = i;
      return id;
    };
    const auto qp = perm_or_identity(q_perm_, q.rank()), kp = perm_or_identity(k_perm_, k.rank()),
               vp = perm_or_identity(v_perm_, v.rank());
    if (!valid_perm(qp, q.rank()) || !valid_perm(kp, k.rank()) || !valid_perm(vp, v.rank())) {
      return ctx.error("a fused transpose's perm does not match its input's rank");
    }
    const View qv = view_of(q, qp), kv = view_of(k, kp), vv = view_of(v, vp);
    const size_t r = qv.dims.size();
    const bool strided_ok = r >= 3 && kv.dims.size() == r && vv.dims.size() == r &&
                            std::equal(qv.dims.begin(), qv.dims.end() - 2, kv.dims.begin()) &&
                            std::equal(qv.dims.begin(), qv.dims.end() - 2, vv.dims.begin()) &&
                            qv.dims[r - 1] == kv.dims[r - 2] && kv.dims[r - 1] == vv.dims[r - 2] &&
                            qv.dims[r - 1] > 0 && kv.dims[r - 1] > 0;
    if (!strided_ok) return generic(ctx, qp, kp, vp, mask);
    Shape score_dims(qv.dims.begin(), qv.dims.end() - 1);
    score_dims.push_back(kv.dims[r - 1]);
    Shape o_dims(qv.dims.begin(), qv.dims.end() - 1);
    o_dims.push_back(vv.dims[r - 1]);
    if (!out_perm_.empty() && !valid_perm(out_perm_, static_cast<int64_t>(r))) {
      return ctx.error("out_perm does not match the output's rank");
    }
    const auto op = perm_or_identity(out_perm_, static_cast<int64_t>(r));
    Shape y_shape(r);
    for (size_t i = 0; i < r; ++i) y_shape[i] = o_dims[static_cast<size_t>(op[i])];
    const auto ys = shape_strides(y_shape);
    std::vector<int64_t> o_strides(r);
    for (size_t i = 0; i < r; ++i) o_strides[static_cast<size_t>(op[i])] = ys[i];
    Tensor scores(DataType::kFloat32, score_dims);
    Tensor& y = ctx.allocate_output(0, DataType::kFloat32, y_shape);
    if (y.numel() == 0) return Status::Ok();
    std::vector<int64_t> key;
    for (const View* w : {&qv, &kv, &vv}) {
      key.insert(key.end(), w->dims.begin(), w->dims.end());
      key.insert(key.end(), w->strides.begin(), w->strides.end());
    }
    key.insert(key.end(), o_strides.begin(), o_strides.end());
    auto e = cache_.get(key, [&] {
      auto p = std::make_shared<Primitives>();
      using dnnl::memory;
      p->q = onednn::strided_desc(onednn::to_dims(qv.dims), qv.strides);
      p->k = onednn::strided_desc(onednn::to_dims(kv.dims), kv.strides);
      p->v = onednn::strided_desc(onednn::to_dims(vv.dims), vv.strides);
      p->s = onednn::plain_desc(onednn::to_dims(score_dims));
      p->o = onednn::strided_desc(onednn::to_dims(o_dims), o_strides);
      try {
        const dnnl::matmul::primitive_desc qk(dnnl::matmul::desc(p->q, p->k, p->s), onednn::base_attr(),
                                              onednn::engine());
        const dnnl::matmul::primitive_desc pv(dnnl::matmul::desc(p->s, p->v, p->o), onednn::base_attr(),
                                              onednn::engine());
        p->qk = dnnl::matmul(qk);
        p->pv = dnnl::matmul(pv);
        p->qk_scratch = qk.scratchpad_desc();
        p->pv_scratch = pv.scratchpad_desc();
      } catch (const dnnl::error& err) {
        onednn::rethrow(err, label);
      }
      return p;
    });
    try {
      onednn::execute(e->qk, e->qk_scratch,
                      {{DNNL_ARG_SRC, onednn::wrap(e->q, q)},
                       {DNNL_ARG_WEIGHTS, onednn::wrap(e->k, k)},
                       {DNNL_ARG_DST, onednn::wrap(e->s, scores)}});
      scaled_masked_softmax(scores, mask, scale_, ctx.threads(), ctx);
      onednn::execute(e->pv, e->pv_scratch,
                      {{DNNL_ARG_SRC, onednn::wrap(e->s, scores)},
                       {DNNL_ARG_WEIGHTS, onednn::wrap(e->v, v)},
                       {DNNL_ARG_DST, onednn::wrap(e->o, y)}});
    } catch (const dnnl::error& err) {
      onednn::rethrow(err, label);
    }
    return Status::Ok();
  }

 private:
  struct Primitives {
    dnnl::memory::desc q, k, v, s, o, qk_scratch, pv_scratch;
    dnnl::matmul qk, pv;
  };

  // Any broadcasting or unusual rank: materialise the transposes and use MatMul's rules.
  Status generic(KernelContext& ctx, const std::vector<int64_t>& qp, const std::vector<int64_t>& kp,
                 const std::vector<int64_t>& vp, const Tensor* mask) const {
    const std::string label = ctx.node().label();
    auto maybe_permute = [&](const Tensor& t, const std::vector<int64_t>& p, bool given) {
      return given ? permute_tensor(t, p, ctx.threads()) : t;
    };
    const Tensor q = maybe_permute(ctx.required_input(0), qp, !q_perm_.empty());
    const Tensor k = maybe_permute(ctx.required_input(1), kp, !k_perm_.empty());
    const Tensor v = maybe_permute(ctx.required_input(2), vp, !v_perm_.empty());
    Tensor scores = product(q, k, ctx.threads(), label);
    scaled_masked_softmax(scores, mask, scale_, ctx.threads(), ctx);
    Tensor o = product(scores, v, ctx.threads(), label);
    if (!out_perm_.empty()) {
      if (!valid_perm(out_perm_, o.rank())) return ctx.error("out_perm does not match the output's rank");
      o = permute_tensor(o, out_perm_, ctx.threads());
    }
    ctx.set_output(0, std::move(o));
    return Status::Ok();
  }

  float scale_;
  std::vector<int64_t> q_perm_, k_perm_, v_perm_, out_perm_;
  onednn::PrimitiveCache<Primitives> cache_;
};

}  // namespace

void register_attention_kernels(KernelRegistry& r) {
  KernelDef def;
  def.op = "Attention";
  def.domain = "deskml";
  def.types = {DataType::kFloat32};
  def.factory = [](const graph::Node& node) { return std::make_unique<AttentionKernel>(node); };
  r.add(def);
}

}  // namespace deskml::kernels::cpu
