#include "kernels/cpu/post_ops.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/avx512_math.hpp"
#include "kernels/cpu/common.hpp"
#include "kernels/cpu/elementwise_isa.hpp"

namespace deskml::kernels::cpu {
namespace {

dnnl::algorithm algorithm_of(const std::string& name) {
  using A = dnnl::algorithm;
  if (name == "Relu" || name == "LeakyRelu") return A::eltwise_relu;
  if (name == "Clip") return A::eltwise_clip;
  if (name == "Sigmoid") return A::eltwise_logistic;
  if (name == "Tanh") return A::eltwise_tanh;
  if (name == "HardSwish") return A::eltwise_hardswish;
  if (name == "Swish") return A::eltwise_swish;
  if (name == "Gelu") return A::eltwise_gelu_erf;
  if (name == "GeluTanh") return A::eltwise_gelu_tanh;
  if (name == "Elu") return A::eltwise_elu;
  return A::undef;
}

}  // namespace

FusedActivation FusedActivation::from_node(const graph::Node& node, const std::string& prefix) {
  FusedActivation a;
  a.name = node.attr_string(prefix, "");
  if (a.name.empty()) return a;
  if (algorithm_of(a.name) == dnnl::algorithm::undef) {
    throw_status(Status(StatusCode::kInvalidModel, node.label() + ": unknown fused activation '" + a.name + "'"));
  }
  a.alpha = node.attr_float(prefix + "_alpha", 0.0f);
  a.beta = node.attr_float(prefix + "_beta", 0.0f);
  if (a.name == "Relu") a.alpha = 0.0f;
  return a;
}

void FusedActivation::append_to(dnnl::post_ops& ops) const {
  if (!active()) return;
  ops.append_eltwise(1.0f, algorithm_of(name), alpha, beta);
}

float FusedActivation::apply(float x) const {
  if (name == "Relu") return x > 0.0f ? x : 0.0f;
  if (name == "LeakyRelu") return x > 0.0f ? x : alpha * x;
  if (name == "Clip") return std::min(std::max(x, alpha), beta);
  if (name == "Sigmoid") return 1.0f / (1.0f + std::exp(-x));
  if (name == "Tanh") return std::tanh(x);
  if (name == "HardSwish") return x * std::min(std::max(x + 3.0f, 0.0f), 6.0f) / 6.0f;
  if (name == "Swish") return x / (1.0f + std::exp(-alpha * x));
  if (name == "Gelu") return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
  if (name == "GeluTanh") {
    return 0.5f * x * (1.0f + std::tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
  }
  if (name == "Elu") return x > 0.0f ? x : alpha * (std::exp(x) - 1.0f);
  return x;
}

bool FusedActivation::faster_unfused() const { return name == "Swish" && ew::has_avx512(); }

void FusedActivation::apply(float* data, int64_t n, int threads) const {
  if (!active()) return;
#if defined(__GNUC__) && defined(__x86_64__)
  if (faster_unfused()) {  // SiLU on AVX-512
    constexpr int64_t kChunk = 4096;
    parallel_for((n + kChunk - 1) / kChunk, threads, kChunk * 4, [&](int64_t lo, int64_t hi) {
      const int64_t end = std::min(n, hi * kChunk);
      avx512::silu_inplace(data + lo * kChunk, end - lo * kChunk, alpha);
    });
    return;
  }
#endif
  parallel_for(n, threads, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) data[i] = apply(data[i]);
  });
}

Tensor residual_output(KernelContext& ctx, size_t index, const Tensor* sum, const Shape& shape) {
  if (sum != nullptr) {
    Tensor taken = ctx.take_input(index);
    if (taken.defined()) return taken;
  }
  Tensor y = ctx.allocate_output(0, DataType::kFloat32, shape);
  if (sum != nullptr && y.nbytes() > 0) std::memcpy(y.raw_data(), sum->raw_data(), sum->nbytes());
  return y;
}

}  // namespace deskml::kernels::cpu
