// Which instruction set the elementwise, activation and softmax kernels use:
// their hot loops exist for baseline x86-64 and for AVX2+FMA (see
// elementwise_common.hpp). Kept apart so that tests can pin the baseline
// without including kernel internals.
#pragma once

#include <atomic>

namespace deskml::kernels::cpu::ew {

// Tests pin the baseline code path with this, to check it as well as the AVX2 one.
inline std::atomic<bool>& force_baseline_isa() {
  static std::atomic<bool> force{false};
  return force;
}

#if defined(__GNUC__) && defined(__x86_64__)
inline bool has_avx2_fma() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes && !force_baseline_isa().load(std::memory_order_relaxed);
}
#else
inline bool has_avx2_fma() { return false; }
#endif

}  // namespace deskml::kernels::cpu::ew
