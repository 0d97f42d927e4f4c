// Named tensors: what a request carries in and a response carries out.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/tensor.hpp"

namespace deskml::serving {

// Inputs or outputs by name, in the model's declared order where there is one.
using Tensors = std::vector<std::pair<std::string, Tensor>>;

// The tensor called `name`, or nullptr.
inline const Tensor* find_tensor(const Tensors& tensors, std::string_view name) {
  for (const auto& [n, t] : tensors) {
    if (n == name) return &t;
  }
  return nullptr;
}

}  // namespace deskml::serving
