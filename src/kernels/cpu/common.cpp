#include "kernels/cpu/common.hpp"

namespace deskml::kernels::cpu {

std::vector<int64_t> broadcast_strides(const Shape& in_shape, const Shape& out_shape) {
  const size_t rank = out_shape.size();
  std::vector<int64_t> strides(rank, 0);
  const size_t offset = rank - in_shape.size();
  int64_t s = 1;
  for (size_t i = in_shape.size(); i-- > 0;) {
    strides[i + offset] = in_shape[i] == 1 ? 0 : s;
    s *= in_shape[i];
  }
  return strides;
}

}  // namespace deskml::kernels::cpu
