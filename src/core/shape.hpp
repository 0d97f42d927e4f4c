// Concrete tensor shapes and the arithmetic every kernel needs on them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.hpp"

namespace deskml {

using Shape = std::vector<int64_t>;

// The largest element count deskml accepts for one tensor (2^40): a bound that
// catches corrupt or hostile shapes long before an allocation is attempted.
inline constexpr int64_t kMaxTensorElements = int64_t{1} << 40;

// Product of dims; throws Error(OutOfRange) on negative dims or overflow past kMaxTensorElements.
int64_t shape_numel(const Shape& shape);
// Row-major strides in elements.
std::vector<int64_t> shape_strides(const Shape& shape);
// "[1,3,224,224]"
std::string shape_to_string(const Shape& shape);
// numpy broadcasting of two shapes; InvalidArgument when incompatible.
Result<Shape> broadcast_shapes(const Shape& a, const Shape& b);
// Maps a possibly negative axis into [0, rank); InvalidArgument when out of range.
Result<int64_t> normalize_axis(int64_t axis, int64_t rank);
// Like normalize_axis, but throws Error (for kernels).
int64_t normalize_axis_or_throw(int64_t axis, int64_t rank);

}  // namespace deskml
