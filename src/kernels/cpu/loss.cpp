// Losses: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (opsets 12, 13+).
//
// Both take scores of shape (N, C, d1, ..., dk) and integer targets of shape
// (N, d1, ..., dk), optional per-class weights (C), an optional ignore_index and
// reduction none/sum/mean. Mean divides by the sum of the applied weights
// (the count of non-ignored targets without weights), as the ONNX reference does.
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"

namespace deskml::kernels::cpu {
namespace {

enum class Reduction { kNone, kSum, kMean };

template <typename T>
using CompOf = std::conditional_t<std::is_same_v<T, double>, double, float>;

struct LossArgs {
  int64_t n = 0, c = 0, d = 1;  // scores viewed as (N, C, D)
  Reduction reduction = Reduction::kMean;
  bool has_ignore = false;
  int64_t ignore_index = 0;
  std::vector<int64_t> target;  // N*D
  std::vector<double> weight;   // C, empty when absent
  Shape target_shape;
};

// Validates shapes and attributes shared by both losses.
Status read_loss_args(KernelContext& ctx, const Tensor& scores, LossArgs& a) {
  const auto& node = ctx.node();
  const std::string red = node.attr_string("reduction", "mean");
  if (red == "none") {
    a.reduction = Reduction::kNone;
  } else if (red == "sum") {
    a.reduction = Reduction::kSum;
  } else if (red == "mean") {
    a.reduction = Reduction::kMean;
  } else {
    return ctx.error("unknown reduction '" + red + "' (expected none, sum or mean)");
  }
  a.has_ignore = node.has_attr("ignore_index");
  a.ignore_index = node.attr_int("ignore_index", 0);
  if (scores.rank() < 2) return ctx.error("scores must have shape (N, C, ...), got " + shape_to_string(scores.shape()));
  const Tensor& target = ctx.required_input(1);
  if (target.dtype() != DataType::kInt64 && target.dtype() != DataType::kInt32) {
    return ctx.error("target must be int32 or int64, got " + std::string(dtype_name(target.dtype())));
  }
  Shape expect = scores.shape();
  expect.erase(expect.begin() + 1);
  if (target.shape() != expect) {
    return ctx.error("target shape " + shape_to_string(target.shape()) + " does not match scores shape " +
                     shape_to_string(scores.shape()) + " (expected " + shape_to_string(expect) + ")");
  }
  a.n = scores.shape()[0];
  a.c = scores.shape()[1];
  a.d = 1;
  for (size_t i = 2; i < scores.shape().size(); ++i) a.d *= scores.shape()[i];
  a.target_shape = target.shape();
  a.target = target.to_int64_vector();
  for (int64_t t : a.target) {
    if (a.has_ignore && t == a.ignore_index) continue;
    if (t < 0 || t >= a.c) {
      return ctx.error("target value " + std::to_string(t) + " is out of range [0, " + std::to_string(a.c) + ")");
    }
  }
  if (const Tensor* w = ctx.input(2)) {
    if (w->rank() != 1 || w->numel() != a.c) {
      return ctx.error("weight must have shape (" + std::to_string(a.c) + "), got " + shape_to_string(w->shape()));
    }
    a.weight.resize(static_cast<size_t>(a.c));
    for (int64_t i = 0; i < a.c; ++i) a.weight[static_cast<size_t>(i)] = w->float_at(i);
  }
  return Status::Ok();
}

// The loss from log-probabilities `lp` laid out as (N, C, D).
template <typename T, typename C>
void nll_from_log_prob(KernelContext& ctx, const C* lp, const LossArgs& a) {
  const int64_t nd = a.n * a.d;
  std::vector<double> loss(static_cast<size_t>(nd));
  double total = 0.0, wsum = 0.0;
  for (int64_t i = 0; i < nd; ++i) {
    const int64_t t = a.target[static_cast<size_t>(i)];
    if (a.has_ignore && t == a.ignore_index) {
      loss[static_cast<size_t>(i)] = 0.0;
      continue;
    }
    const int64_t n = i / a.d, d = i % a.d;
    const double w = a.weight.empty() ? 1.0 : a.weight[static_cast<size_t>(t)];
    const double v = -static_cast<double>(lp[(n * a.c + t) * a.d + d]) * w;
    loss[static_cast<size_t>(i)] = v;
    total += v;
    wsum += w;
  }
  const DataType dt = dtype_of<T>;
  if (a.reduction == Reduction::kNone) {
    Tensor& out = ctx.allocate_output(0, dt, a.target_shape);
    T* o = out.data<T>();
    for (int64_t i = 0; i < nd; ++i) o[i] = convert_scalar<T>(static_cast<C>(loss[static_cast<size_t>(i)]));
    return;
  }
  const double r = a.reduction == Reduction::kSum ? total : total / wsum;
  Tensor& out = ctx.allocate_output(0, dt, {});
  out.data<T>()[0] = convert_scalar<T>(static_cast<C>(r));
}

Status nll_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  LossArgs a;
  DESKML_RETURN_IF_ERROR(read_loss_args(ctx, x, a));
  auto run = [&](auto tag) {
    using T = decltype(tag);
    using C = CompOf<T>;
    if constexpr (std::is_same_v<T, C>) {
      nll_from_log_prob<T, C>(ctx, x.data<T>(), a);
    } else {
      const T* in = x.data<T>();
      std::vector<C> lp(static_cast<size_t>(x.numel()));
      for (size_t i = 0; i < lp.size(); ++i) lp[i] = convert_scalar<C>(in[i]);
      nll_from_log_prob<T, C>(ctx, lp.data(), a);
    }
  };
  switch (x.dtype()) {
    case DataType::kFloat32:
      run(float{});
      break;
    case DataType::kFloat64:
      run(double{});
      break;
    case DataType::kFloat16:
      run(Float16{});
      break;
    case DataType::kBFloat16:
      run(BFloat16{});
      break;
    default:
      return ctx.error("unsupported data type " + std::string(dtype_name(x.dtype())));
  }
  return Status::Ok();
}

// log_softmax over axis 1 of (N, C, D) into `lp`.
template <typename T, typename C>
void log_softmax_axis1(const T* x, C* lp, int64_t n, int64_t c, int64_t d, int threads) {
  parallel_for(n, threads, c * d * 4, [&](int64_t lo, int64_t hi) {
    std::vector<C> mx_buf(static_cast<size_t>(d)), sum_buf(static_cast<size_t>(d));
    C* mx = mx_buf.data();
    C* sum = sum_buf.data();
    for (int64_t i = lo; i < hi; ++i) {
      const T* xi = x + i * c * d;
      C* li = lp + i * c * d;
      for (int64_t k = 0; k < d; ++k) {
        mx[k] = -std::numeric_limits<C>::infinity();
        sum[k] = C(0);
      }
      for (int64_t j = 0; j < c; ++j) {
        for (int64_t k = 0; k < d; ++k) {
          const C v = convert_scalar<C>(xi[j * d + k]);
          li[j * d + k] = v;
          if (v > mx[k]) mx[k] = v;
        }
      }
      for (int64_t j = 0; j < c; ++j) {
        for (int64_t k = 0; k < d; ++k) sum[k] += std::exp(li[j * d + k] - mx[k]);
      }
      for (int64_t k = 0; k < d; ++k) sum[k] = mx[k] + std::log(sum[k]);
      for (int64_t j = 0; j < c; ++j) {
        for (int64_t k = 0; k < d; ++k) li[j * d + k] -= sum[k];
      }
    }
  });
}

Status sce_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  LossArgs a;
  DESKML_RETURN_IF_ERROR(read_loss_args(ctx, x, a));
  auto run = [&](auto tag) {
    using T = decltype(tag);
    using C = CompOf<T>;
    std::vector<C> lp(static_cast<size_t>(x.numel()));
    log_softmax_axis1<T, C>(x.data<T>(), lp.data(), a.n, a.c, a.d, ctx.threads());
    nll_from_log_prob<T, C>(ctx, lp.data(), a);
    if (ctx.output_wanted(1)) {
      Tensor& out = ctx.allocate_output(1, x.dtype(), x.shape());
      T* o = out.data<T>();
      for (size_t i = 0; i < lp.size(); ++i) o[i] = convert_scalar<T>(lp[i]);
    }
  };
  switch (x.dtype()) {
    case DataType::kFloat32:
      run(float{});
      break;
    case DataType::kFloat64:
      run(double{});
      break;
    case DataType::kFloat16:
      run(Float16{});
      break;
    case DataType::kBFloat16:
      run(BFloat16{});
      break;
    default:
      return ctx.error("unsupported data type " + std::string(dtype_name(x.dtype())));
  }
  return Status::Ok();
}

}  // namespace

void register_loss_kernels(KernelRegistry& r) {
  r.add("NegativeLogLikelihoodLoss", 12, INT_MAX, types::kFloat, nll_kernel);
  r.add("SoftmaxCrossEntropyLoss", 12, INT_MAX, types::kFloat, sce_kernel);
}

}  // namespace deskml::kernels::cpu
