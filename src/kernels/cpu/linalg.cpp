// Linear algebra beyond matrix products: Det.
#include <cmath>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"

namespace deskml::kernels::cpu {
namespace {

// Determinant by LU decomposition with partial pivoting, in double precision.
template <typename T>
double determinant(const T* m, int64_t n, std::vector<double>& a) {
  a.assign(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n * n; ++i) a[static_cast<size_t>(i)] = convert_scalar<double>(m[i]);
  double det = 1.0;
  for (int64_t col = 0; col < n; ++col) {
    int64_t pivot = col;
    for (int64_t r = col + 1; r < n; ++r) {
      if (std::fabs(a[static_cast<size_t>(r * n + col)]) > std::fabs(a[static_cast<size_t>(pivot * n + col)])) pivot = r;
    }
    const double p = a[static_cast<size_t>(pivot * n + col)];
    if (p == 0.0) return 0.0;
    if (pivot != col) {
      for (int64_t k = 0; k < n; ++k) std::swap(a[static_cast<size_t>(col * n + k)], a[static_cast<size_t>(pivot * n + k)]);
      det = -det;
    }
    det *= p;
    for (int64_t r = col + 1; r < n; ++r) {
      const double f = a[static_cast<size_t>(r * n + col)] / p;
      for (int64_t k = col + 1; k < n; ++k) a[static_cast<size_t>(r * n + k)] -= f * a[static_cast<size_t>(col * n + k)];
    }
  }
  return det;
}

Status det_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.required_input(0);
  if (x.rank() < 2 || x.dim(-1) != x.dim(-2)) return ctx.error("expects [*, M, M] square matrices, got " + x.description());
  const int64_t n = x.dim(-1);
  Shape out_shape(x.shape().begin(), x.shape().end() - 2);
  Tensor& y = ctx.allocate_output(0, x.dtype(), out_shape);
  const int64_t count = y.numel();
  dispatch_all(x.dtype(), "Det", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, Float16> ||
                  std::is_same_v<T, BFloat16>) {
      const T* in = x.data<T>();
      T* out = y.data<T>();
      std::vector<double> scratch;
      for (int64_t b = 0; b < count; ++b) out[b] = convert_scalar<T>(determinant(in + b * n * n, n, scratch));
    } else {
      throw_status(ctx.error("expects a floating-point tensor"));
    }
  });
  return Status::Ok();
}

}  // namespace

void register_linalg_kernels(KernelRegistry& r) { r.add("Det", 11, INT_MAX, types::kFloat, det_kernel); }

}  // namespace deskml::kernels::cpu
