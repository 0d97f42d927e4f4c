// Helpers shared by the normalization kernels (normalization*.cpp): computation
// types, parameter reading, and contiguous mean/variance.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "core/tensor.hpp"
#include "kernels/kernel.hpp"

namespace deskml::kernels::cpu::norm {

// double stays double; float, float16 and bfloat16 compute in float.
template <typename T>
using CompOf = std::conditional_t<std::is_same_v<T, double>, double, float>;

// A small parameter tensor (scale, bias, mean, var) of any numeric type as doubles.
inline std::vector<double> read_param(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[static_cast<size_t>(i)] = t.float_at(i);
  return v;
}

// Sum of n contiguous values: 8 float lanes within blocks, blocks added in double.
template <typename C>
inline double sum_run(const C* p, int64_t n) {
  constexpr int64_t kBlock = 4096;
  double total = 0.0;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = std::min(n, b + kBlock);
    C lane[8] = {};
    int64_t i = b;
    for (; i + 8 <= e; i += 8) {
      for (int j = 0; j < 8; ++j) lane[j] += p[i + j];
    }
    for (; i < e; ++i) lane[0] += p[i];
    C s = 0;
    for (int j = 0; j < 8; ++j) s += lane[j];
    total += static_cast<double>(s);
  }
  return total;
}

// Sum of (p[i] - mean)^2 over n contiguous values.
template <typename C>
inline double sum_sq_dev(const C* p, int64_t n, C mean) {
  constexpr int64_t kBlock = 4096;
  double total = 0.0;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = std::min(n, b + kBlock);
    C lane[8] = {};
    int64_t i = b;
    for (; i + 8 <= e; i += 8) {
      for (int j = 0; j < 8; ++j) {
        const C d = p[i + j] - mean;
        lane[j] += d * d;
      }
    }
    for (; i < e; ++i) {
      const C d = p[i] - mean;
      lane[0] += d * d;
    }
    C s = 0;
    for (int j = 0; j < 8; ++j) s += lane[j];
    total += static_cast<double>(s);
  }
  return total;
}

// Mean and population variance of n contiguous values (two passes).
template <typename C>
inline void moments(const C* p, int64_t n, double& mean, double& var) {
  if (n == 0) {
    mean = 0.0;
    var = 0.0;
    return;
  }
  mean = sum_run(p, n) / static_cast<double>(n);
  var = sum_sq_dev(p, n, static_cast<C>(mean)) / static_cast<double>(n);
}

// Reads n values of T at p as C: the pointer itself when T is C, else converted into buf.
template <typename C, typename T>
inline const C* as_comp(const T* p, int64_t n, std::vector<C>& buf) {
  if constexpr (std::is_same_v<T, C>) {
    return p;
  } else {
    buf.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) buf[static_cast<size_t>(i)] = convert_scalar<C>(p[i]);
    return buf.data();
  }
}

// y[i] = x[i] * a + b over n contiguous values.
template <typename T, typename C>
inline void affine_run(const T* x, T* y, int64_t n, C a, C b) {
  for (int64_t i = 0; i < n; ++i) y[i] = convert_scalar<T>(convert_scalar<C>(x[i]) * a + b);
}

// Writes doubles into a new output of a float dtype.
inline void write_doubles(KernelContext& ctx, size_t index, DataType dtype, const Shape& shape,
                          const std::vector<double>& v) {
  Tensor& t = ctx.allocate_output(index, dtype, shape);
  switch (dtype) {
    case DataType::kFloat32: {
      float* p = t.data<float>();
      for (size_t i = 0; i < v.size(); ++i) p[i] = static_cast<float>(v[i]);
      break;
    }
    case DataType::kFloat64: {
      double* p = t.data<double>();
      for (size_t i = 0; i < v.size(); ++i) p[i] = v[i];
      break;
    }
    case DataType::kFloat16: {
      Float16* p = t.data<Float16>();
      for (size_t i = 0; i < v.size(); ++i) p[i] = Float16(static_cast<float>(v[i]));
      break;
    }
    case DataType::kBFloat16: {
      BFloat16* p = t.data<BFloat16>();
      for (size_t i = 0; i < v.size(); ++i) p[i] = BFloat16(static_cast<float>(v[i]));
      break;
    }
    default:
      throw_status(unsupported(ctx.node().label() + ": unsupported output type " + std::string(dtype_name(dtype))));
  }
}

}  // namespace deskml::kernels::cpu::norm
