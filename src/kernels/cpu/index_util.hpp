// Helpers shared by the index kernel family (index*.cpp): reading and checking
// index tensors and turning them into element offsets.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/shape_util.hpp"

namespace deskml::kernels::cpu {

// All values of an int32/int64 tensor as int64; error for other types.
std::vector<int64_t> index_values(const KernelContext& ctx, const Tensor& t, const char* what);

// Maps negative indices into [0, dim); a clear error for any index outside [-dim, dim).
void normalize_indices(const KernelContext& ctx, std::vector<int64_t>& idx, int64_t dim, const char* what);

// For GatherElements/ScatterElements: the data offset of every element of an
// indices tensor (normalized values `idx`, shape `ind_shape`) along `axis`.
// Checks that ranks match and indices do not exceed data outside the axis.
std::vector<int64_t> element_offsets(const KernelContext& ctx, const Shape& data_shape, const Shape& ind_shape,
                                     const std::vector<int64_t>& idx, size_t axis);

// For GatherND/ScatterND: the data offset of every index tuple (the last
// dimension of `indices`) and the number of contiguous elements each one addresses.
struct NdOffsets {
  std::vector<int64_t> offsets;
  int64_t slice = 1;
};
NdOffsets nd_offsets(const KernelContext& ctx, const Shape& data_shape, const Tensor& indices, int64_t batch_dims);

}  // namespace deskml::kernels::cpu
