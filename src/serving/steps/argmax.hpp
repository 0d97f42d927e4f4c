// argmax shared by the argmax and vote steps.
#pragma once

#include <string>

#include "core/tensor.hpp"

namespace deskml::serving::steps {

// int64 indices of the largest values along `axis` (the axis removed); ties to the
// lowest index, the first NaN wins. float, double, uint8, int32, int64 inputs.
Result<Tensor> argmax_along(const std::string& kind, const Tensor& x, int64_t axis);

}  // namespace deskml::serving::steps
