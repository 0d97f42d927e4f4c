#include "core/shape.hpp"

#include <algorithm>

namespace deskml {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw_status(out_of_range("negative dimension in shape " + shape_to_string(shape)));
    if (d == 0) return 0;
  }
  for (int64_t d : shape) {
    if (n > kMaxTensorElements / d) {
      throw_status(out_of_range("tensor of shape " + shape_to_string(shape) + " exceeds the element limit"));
    }
    n *= d;
  }
  return n;
}

std::vector<int64_t> shape_strides(const Shape& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;) strides[i - 1] = strides[i] * std::max<int64_t>(shape[i], 1);
  return strides;
}

std::string shape_to_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Result<Shape> broadcast_shapes(const Shape& a, const Shape& b) {
  const size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da == db || db == 1) {
      out[i] = da;
    } else if (da == 1) {
      out[i] = db;
    } else {
      return invalid_argument("shapes " + shape_to_string(a) + " and " + shape_to_string(b) +
                              " cannot be broadcast together");
    }
  }
  return out;
}

Result<int64_t> normalize_axis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= std::max<int64_t>(rank, 1)) {
    return invalid_argument("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  }
  return axis < 0 ? axis + rank : axis;
}

int64_t normalize_axis_or_throw(int64_t axis, int64_t rank) {
  auto r = normalize_axis(axis, rank);
  if (!r.ok()) throw_status(r.status());
  return *r;
}

}  // namespace deskml
