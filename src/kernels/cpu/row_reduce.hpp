// Max and sum of a contiguous row, written so that GCC vectorizes them:
// kLanes independent partial results instead of one running value (a float
// reduction is not reassociated, so a plain loop stays scalar). Included inside
// run_best() bodies, which compile them for the best instruction set.
#pragma once

#include <cstdint>
#include <limits>

namespace deskml::kernels::cpu::ew {

inline constexpr int kRowLanes = 16;

// A NaN may be skipped here; it still turns a softmax row's sum, and so every output, to NaN.
template <typename T>
T row_max(const T* x, int64_t n) {
  T lanes[kRowLanes];
  for (int j = 0; j < kRowLanes; ++j) lanes[j] = -std::numeric_limits<T>::infinity();
  int64_t i = 0;
  for (; i + kRowLanes <= n; i += kRowLanes) {
    for (int j = 0; j < kRowLanes; ++j) lanes[j] = x[i + j] > lanes[j] ? x[i + j] : lanes[j];
  }
  T m = -std::numeric_limits<T>::infinity();
  for (int j = 0; j < kRowLanes; ++j) m = lanes[j] > m ? lanes[j] : m;
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

template <typename T>
T row_sum(const T* x, int64_t n) {
  T lanes[kRowLanes] = {};
  int64_t i = 0;
  for (; i + kRowLanes <= n; i += kRowLanes) {
    for (int j = 0; j < kRowLanes; ++j) lanes[j] += x[i + j];
  }
  T s = 0;
  for (; i < n; ++i) s += x[i];
  for (int j = 0; j < kRowLanes; ++j) s += lanes[j];
  return s;
}

}  // namespace deskml::kernels::cpu::ew
