// Fuzz builds only, and only when the compiler rejects a feature name that a
// kernel passes to __builtin_cpu_supports (clang 14 does not know "f16c", which
// GCC accepts). Answers from CPUID instead; an unknown feature answers "no", which
// sends the kernel down its portable path.
#pragma once

#include <cpuid.h>
#include <string.h>

static inline int deskml_fuzz_cpu_supports(const char* feature) {
  unsigned a = 0, b = 0, c = 0, d = 0;
  unsigned leaf1_c = 0, leaf7_b = 0;
  if (__get_cpuid(1, &a, &b, &c, &d)) leaf1_c = c;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) leaf7_b = b;
  if (strcmp(feature, "fma") == 0) return (leaf1_c >> 12) & 1;
  if (strcmp(feature, "f16c") == 0) return (leaf1_c >> 29) & 1;
  if (strcmp(feature, "avx") == 0) return (leaf1_c >> 28) & 1;
  if (strcmp(feature, "avx2") == 0) return (leaf7_b >> 5) & 1;
  if (strcmp(feature, "avx512f") == 0) return (leaf7_b >> 16) & 1;
  if (strcmp(feature, "avx512bw") == 0) return (leaf7_b >> 30) & 1;
  return 0;
}

#define __builtin_cpu_supports(feature) deskml_fuzz_cpu_supports(feature)
