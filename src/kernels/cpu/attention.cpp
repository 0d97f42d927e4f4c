// deskml.Attention: Y = softmax(Q x K * scale [+ mask]) x V in one kernel, the
// optimizer's fusion of MatMul -> Div/Mul -> [Add mask] -> Softmax(last axis)
// -> MatMul. K is the first product's right operand as the model has it (often
// already transposed to [..., D, Skv]). Leading (batch, head) dims broadcast as
// in MatMul. Scores stay in one buffer that scaling, masking and the softmax
// update in place, so only the two products touch memory at full size.
#include <cmath>
#include <limits>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/dnnl_context.hpp"
#include "kernels/cpu/elementwise_common.hpp"
#include "kernels/cpu/matmul_loops.hpp"

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

Status attention_kernel(KernelContext& ctx) {
  const Tensor& q = ctx.required_input(0);
  const Tensor& k = ctx.required_input(1);
  const Tensor& v = ctx.required_input(2);
  const Tensor* mask = ctx.input(3);
  for (const Tensor* t : {&q, &k, &v}) {
    if (t->dtype() != DataType::kFloat32) return ctx.error("Q, K and V must be float32");
  }
  if (mask && mask->dtype() != DataType::kFloat32) return ctx.error("the mask must be float32");
  const float scale = ctx.node().attr_float("scale", 1.0f);
  const std::string label = ctx.node().label();
  Tensor scores = product(q, k, ctx.threads(), label);
  const Shape& ss = scores.shape();
  const int64_t len = ss.empty() ? 1 : ss.back();
  const int64_t rows = len == 0 ? 0 : scores.numel() / len;
  Tensor mask_full;
  if (mask) {
    auto out = broadcast_shapes(ss, mask->shape());
    if (!out.ok() || *out != ss) {
      return ctx.error("the mask " + mask->description() + " does not broadcast to the scores " +
                       shape_to_string(ss));
    }
    mask_full = mask->shape() == ss ? *mask : strided_copy(*mask, ss, broadcast_strides(mask->shape(), ss), 1);
  }
  float* sp = scores.data<float>();
  const float* mp = mask ? mask_full.data<float>() : nullptr;
  parallel_for(rows, ctx.threads(), len * 12, [&](int64_t lo, int64_t hi) {
    run_best([&] {
      for (int64_t r = lo; r < hi; ++r) {
        float* x = sp + r * len;
        const float* m = mp ? mp + r * len : nullptr;
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t i = 0; i < len; ++i) {
          x[i] = m ? x[i] * scale + m[i] : x[i] * scale;
          mx = x[i] > mx ? x[i] : mx;
        }
        float sum = 0.0f;
        for (int64_t i = 0; i < len; ++i) {
          x[i] = fast_exp(x[i] - mx);
          sum += x[i];
        }
        const float inv = 1.0f / sum;
        for (int64_t i = 0; i < len; ++i) x[i] *= inv;
      }
    });
  });
  ctx.set_output(0, product(scores, v, ctx.threads(), label));
  return Status::Ok();
}

}  // namespace

void register_attention_kernels(KernelRegistry& r) {
  r.add("Attention", 1, INT_MAX, {DataType::kFloat32}, attention_kernel, "deskml");
}

}  // namespace deskml::kernels::cpu
