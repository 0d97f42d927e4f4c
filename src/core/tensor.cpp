#include "core/tensor.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <type_traits>

#include "core/allocation_scope.hpp"
#include "core/buffer_pool.hpp"

namespace deskml {
namespace {

constexpr size_t kAlignment = 64;

std::shared_ptr<void> allocate_storage(DataType dtype, int64_t numel) {
  if (dtype == DataType::kString) {
    // Raw nothrow storage and placement-new, so a data-driven huge string tensor
    // becomes ResourceExhausted instead of an uncatchable allocator abort.
    const size_t count = static_cast<size_t>(std::max<int64_t>(numel, 1));
    if (count > std::numeric_limits<size_t>::max() / sizeof(std::string)) {
      throw_status(Status(StatusCode::kResourceExhausted, "string tensor of " + std::to_string(numel) + " elements"));
    }
    void* raw = ::operator new(count * sizeof(std::string), std::nothrow);
    if (raw == nullptr) {
      throw_status(Status(StatusCode::kResourceExhausted, "out of memory allocating a string tensor of " +
                                                              std::to_string(numel) + " elements"));
    }
    auto* strings = static_cast<std::string*>(raw);
    for (size_t i = 0; i < count; ++i) new (strings + i) std::string();
    return std::shared_ptr<void>(raw, [count](void* p) {
      auto* s = static_cast<std::string*>(p);
      for (size_t i = 0; i < count; ++i) s[i].~basic_string();
      ::operator delete(p);
    });
  }
  size_t bytes = static_cast<size_t>(numel) * dtype_size(dtype);
  bytes = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (bytes == 0) bytes = kAlignment;
  if (AllocationScope* scope = AllocationScope::current()) {
    if (auto storage = scope->allocate(bytes)) return storage;
  }
  auto storage = BufferPool::instance().acquire_shared(bytes);
  if (!storage) {
    throw_status(Status(StatusCode::kResourceExhausted,
                        "out of memory allocating " + std::to_string(bytes) + " bytes for a tensor"));
  }
  return storage;
}

// ONNX Cast semantics: float -> int truncates toward zero; out-of-range is
// implementation-defined in the spec, so we saturate instead of invoking UB.
template <typename To, typename From>
To cast_value(From v) {
  if constexpr (std::is_same_v<To, std::string> || std::is_same_v<From, std::string>) {
    return To{};  // handled separately
  } else if constexpr (std::is_same_v<To, bool>) {
    return convert_scalar<double>(v) != 0.0;
  } else if constexpr (std::is_integral_v<To> &&
                       (std::is_floating_point_v<From> || std::is_same_v<From, Float16> ||
                        std::is_same_v<From, BFloat16>)) {
    const double d = convert_scalar<double>(v);
    if (std::isnan(d)) return To{};
    if (d <= static_cast<double>(std::numeric_limits<To>::lowest())) return std::numeric_limits<To>::lowest();
    if (d >= static_cast<double>(std::numeric_limits<To>::max())) return std::numeric_limits<To>::max();
    return static_cast<To>(d);
  } else {
    return convert_scalar<To>(v);
  }
}

std::string number_to_string(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "INF" : "-INF";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

}  // namespace

Tensor::Tensor(DataType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)) {
  if (dtype == DataType::kUndefined) throw_status(invalid_argument("cannot allocate a tensor of undefined type"));
  numel_ = shape_numel(shape_);
  storage_ = allocate_storage(dtype_, numel_);
  data_ = storage_.get();
}

Tensor Tensor::zeros(DataType dtype, Shape shape) {
  Tensor t(dtype, std::move(shape));
  if (dtype != DataType::kString) std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::wrap(DataType dtype, Shape shape, void* data, std::shared_ptr<void> owner) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.numel_ = shape_numel(t.shape_);
  t.storage_ = std::move(owner);
  t.data_ = data;
  return t;
}

int64_t Tensor::dim(int64_t axis) const {
  // normalize_axis lets axis 0 through for a scalar (ops such as Concat allow it); a scalar still has no dims.
  if (rank() == 0) throw_status(invalid_argument("a scalar tensor has no axis " + std::to_string(axis)));
  return shape_[static_cast<size_t>(normalize_axis_or_throw(axis, rank()))];
}

void Tensor::check_type(DataType requested) const {
  if (requested != dtype_) {
    throw_status(internal_error("tensor of type " + std::string(dtype_name(dtype_)) + " accessed as " +
                                std::string(dtype_name(requested))));
  }
}

Tensor Tensor::reshaped(Shape shape) const {
  if (shape_numel(shape) != numel_) {
    throw_status(invalid_argument("cannot reshape " + shape_to_string(shape_) + " to " + shape_to_string(shape)));
  }
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::view(int64_t offset, Shape shape) const {
  Tensor t;
  t.dtype_ = dtype_;
  t.numel_ = shape_numel(shape);
  if (offset < 0 || t.numel_ < 0 || offset > numel_ - t.numel_) {
    throw_status(invalid_argument("a view of " + shape_to_string(shape) + " at element " + std::to_string(offset) +
                                  " is outside " + description()));
  }
  t.shape_ = std::move(shape);
  t.storage_ = storage_;
  t.data_ = static_cast<char*>(data_) + static_cast<size_t>(offset) * dtype_size(dtype_);
  return t;
}

Tensor Tensor::rows(int64_t begin, int64_t count) const {
  if (shape_.empty() || begin < 0 || count < 0 || begin + count > shape_[0]) {
    throw_status(invalid_argument("rows [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
                                  ") are outside " + description()));
  }
  const int64_t row_elems = shape_[0] == 0 ? 0 : numel_ / shape_[0];
  Tensor t;
  t.dtype_ = dtype_;
  t.shape_ = shape_;
  t.shape_[0] = count;
  t.numel_ = row_elems * count;
  t.storage_ = storage_;
  t.data_ = static_cast<char*>(data_) + static_cast<size_t>(begin * row_elems) * dtype_size(dtype_);
  return t;
}

Tensor Tensor::concat_rows(const std::vector<const Tensor*>& parts) {
  const Tensor& first = *parts.front();
  Shape shape = first.shape();
  shape[0] = 0;
  for (const Tensor* p : parts) shape[0] += p->shape()[0];
  Tensor out(first.dtype(), std::move(shape));
  if (out.dtype() == DataType::kString) {
    std::string* to = out.data<std::string>();
    for (const Tensor* p : parts) to = std::copy(p->data<std::string>(), p->data<std::string>() + p->numel(), to);
    return out;
  }
  auto* to = static_cast<char*>(out.raw_data());
  for (const Tensor* p : parts) {
    if (p->nbytes() > 0) std::memcpy(to, p->raw_data(), p->nbytes());
    to += p->nbytes();
  }
  return out;
}

Tensor Tensor::clone() const {
  if (!defined()) return {};
  Tensor t(dtype_, shape_);
  if (dtype_ == DataType::kString) {
    const auto* src = static_cast<const std::string*>(data_);
    auto* dst = static_cast<std::string*>(t.data_);
    for (int64_t i = 0; i < numel_; ++i) dst[i] = src[i];
  } else if (numel_ > 0) {
    std::memcpy(t.data_, data_, nbytes());
  }
  return t;
}

int64_t Tensor::int_at(int64_t i) const {
  return dispatch_all(dtype_, "int_at", [&](auto tag) -> int64_t {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, std::string>) {
      throw_status(invalid_argument("expected a numeric tensor, got strings"));
    } else {
      return cast_value<int64_t>(static_cast<const T*>(data_)[i]);
    }
  });
}

double Tensor::float_at(int64_t i) const {
  return dispatch_all(dtype_, "float_at", [&](auto tag) -> double {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, std::string>) {
      throw_status(invalid_argument("expected a numeric tensor, got strings"));
    } else {
      return convert_scalar<double>(static_cast<const T*>(data_)[i]);
    }
  });
}

std::vector<int64_t> Tensor::to_int64_vector() const {
  std::vector<int64_t> out(static_cast<size_t>(numel_));
  for (int64_t i = 0; i < numel_; ++i) out[static_cast<size_t>(i)] = int_at(i);
  return out;
}

Tensor Tensor::cast(DataType to) const {
  Tensor out(to, shape_);
  if (to == dtype_) return clone();
  if (dtype_ == DataType::kString) {
    const auto* src = static_cast<const std::string*>(data_);
    dispatch_all(to, "Cast", [&](auto tag) {
      using To = decltype(tag);
      To* dst = out.data<To>();
      for (int64_t i = 0; i < numel_; ++i) {
        if constexpr (std::is_same_v<To, std::string>) {
          dst[i] = src[i];
        } else {
          const std::string& s = src[i];
          double v;
          if (s == "NaN" || s == "nan") v = std::numeric_limits<double>::quiet_NaN();
          else if (s == "INF" || s == "inf" || s == "+INF" || s == "Infinity") v = std::numeric_limits<double>::infinity();
          else if (s == "-INF" || s == "-inf" || s == "-Infinity") v = -std::numeric_limits<double>::infinity();
          else {
            char* end = nullptr;
            v = std::strtod(s.c_str(), &end);
            if (end == s.c_str()) throw_status(invalid_argument("Cast: '" + s + "' is not a number"));
          }
          dst[i] = cast_value<To>(v);
        }
      }
    });
    return out;
  }
  dispatch_all(dtype_, "Cast", [&](auto from_tag) {
    using From = decltype(from_tag);
    if constexpr (!std::is_same_v<From, std::string>) {
      const From* src = static_cast<const From*>(data_);
      dispatch_all(to, "Cast", [&](auto to_tag) {
        using To = decltype(to_tag);
        To* dst = out.data<To>();
        for (int64_t i = 0; i < numel_; ++i) {
          if constexpr (std::is_same_v<To, std::string>) {
            if constexpr (std::is_same_v<From, bool>) dst[i] = src[i] ? "1" : "0";
            else if constexpr (std::is_integral_v<From>) dst[i] = std::to_string(src[i]);
            else dst[i] = number_to_string(convert_scalar<double>(src[i]));
          } else if constexpr (std::is_same_v<To, float> || std::is_same_v<To, double>) {
            dst[i] = convert_scalar<To>(src[i]);
          } else {
            dst[i] = cast_value<To>(src[i]);
          }
        }
      });
    }
  });
  return out;
}

std::string Tensor::description() const {
  if (!defined()) return "undefined";
  return std::string(dtype_name(dtype_)) + shape_to_string(shape_);
}

}  // namespace deskml
