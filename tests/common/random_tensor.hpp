// Seeded random float32 tensors for tests: values uniform in [-1, 1).
#pragma once

#include <cstdint>
#include <random>
#include <utility>

#include "core/tensor.hpp"

namespace deskml::testing {

inline Tensor random_tensor(Shape shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  Tensor t(DataType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

}  // namespace deskml::testing
