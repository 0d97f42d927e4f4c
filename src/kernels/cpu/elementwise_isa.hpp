// Which instruction set the elementwise, activation and softmax kernels use:
// their hot loops exist for baseline x86-64, AVX2+FMA and AVX-512 (see
// elementwise_common.hpp). Kept apart so that tests can cap the instruction set
// without including kernel internals.
#pragma once

#include <atomic>

namespace deskml::kernels::cpu::ew {

// Tests pin the baseline code path with this, to check it as well as the AVX2 one.
inline std::atomic<bool>& force_baseline_isa() {
  static std::atomic<bool> force{false};
  return force;
}

// Tests cap the instruction set at AVX2 with this, to check that path on AVX-512 CPUs too.
inline std::atomic<bool>& force_avx2_isa() {
  static std::atomic<bool> force{false};
  return force;
}

#if defined(__GNUC__) && defined(__x86_64__)
inline bool has_avx2_fma() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes && !force_baseline_isa().load(std::memory_order_relaxed);
}
// AVX-512 (F, DQ, BW, VL): the same loops on 16 floats at a time.
inline bool has_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                          __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  return yes && has_avx2_fma() && !force_avx2_isa().load(std::memory_order_relaxed);
}
#else
inline bool has_avx2_fma() { return false; }
inline bool has_avx512() { return false; }
#endif

enum class IsaCap { kBest, kAvx2, kBaseline };
inline void cap_isa(IsaCap cap) {
  force_baseline_isa() = cap == IsaCap::kBaseline;
  force_avx2_isa() = cap == IsaCap::kAvx2;
}
inline const char* isa_cap_name(IsaCap cap) {
  return cap == IsaCap::kBest ? "best" : cap == IsaCap::kAvx2 ? "avx2" : "baseline";
}

}  // namespace deskml::kernels::cpu::ew
