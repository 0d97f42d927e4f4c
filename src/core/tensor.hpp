// Tensor: a typed, shaped view of reference-counted storage on the CPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.hpp"
#include "core/shape.hpp"

namespace deskml {

class Tensor {
 public:
  // An undefined tensor (defined() is false): a missing optional value.
  Tensor() = default;
  // Allocates uninitialised storage (strings are default-constructed). 64-byte aligned.
  Tensor(DataType dtype, Shape shape);
  static Tensor zeros(DataType dtype, Shape shape);
  // Wraps memory owned elsewhere; `owner` keeps it alive for as long as any view exists.
  static Tensor wrap(DataType dtype, Shape shape, void* data, std::shared_ptr<void> owner);
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, Shape shape);
  template <typename T>
  static Tensor scalar(T value) {
    return from_vector<T>({value}, {});
  }

  bool defined() const { return dtype_ != DataType::kUndefined; }
  DataType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t rank() const { return static_cast<int64_t>(shape_.size()); }
  int64_t dim(int64_t axis) const;  // negative axes count from the end
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }
  // True when no other Tensor (view or copy) shares this one's storage, so it may be overwritten.
  bool sole_owner() const { return storage_ != nullptr && storage_.use_count() == 1; }

  void* raw_data() { return data_; }
  const void* raw_data() const { return data_; }
  template <typename T>
  T* data() {
    check_type(dtype_of<T>);
    return static_cast<T*>(data_);
  }
  template <typename T>
  const T* data() const {
    check_type(dtype_of<T>);
    return static_cast<const T*>(data_);
  }
  template <typename T>
  std::span<const T> values() const {
    return {data<T>(), static_cast<size_t>(numel_)};
  }

  // Same storage, new shape with the same element count. Throws on mismatch.
  Tensor reshaped(Shape shape) const;
  // Rows [begin, begin + count) along axis 0, sharing this tensor's storage (no
  // copy). Throws on a scalar or a range outside dim 0.
  Tensor rows(int64_t begin, int64_t count) const;
  // Elements [offset, offset + numel(shape)) as a tensor of `shape`, sharing
  // this tensor's storage (no copy). Throws when the range is outside.
  Tensor view(int64_t offset, Shape shape) const;
  // The rows of `parts` one after another along axis 0, in a new tensor. Every
  // part must have the first one's dtype, rank (>= 1) and dims after the first;
  // callers check that.
  static Tensor concat_rows(const std::vector<const Tensor*>& parts);
  // A deep copy with its own storage.
  Tensor clone() const;
  // Reads element i of an integer or floating tensor as int64 / double, whatever the dtype.
  int64_t int_at(int64_t i) const;
  double float_at(int64_t i) const;
  // All elements as int64 (for shape-like inputs: axes, pads, starts).
  std::vector<int64_t> to_int64_vector() const;
  // Converts to another dtype (a new tensor; ONNX Cast semantics for numbers).
  Tensor cast(DataType to) const;
  // "float[1,3,224,224]"
  std::string description() const;

 private:
  void check_type(DataType requested) const;

  DataType dtype_ = DataType::kUndefined;
  Shape shape_;
  int64_t numel_ = 0;
  std::shared_ptr<void> storage_;
  void* data_ = nullptr;
};

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, Shape shape) {
  Tensor t(dtype_of<T>, std::move(shape));
  if (static_cast<size_t>(t.numel()) != values.size()) {
    throw_status(invalid_argument("from_vector: " + std::to_string(values.size()) + " values for shape " +
                                  shape_to_string(t.shape())));
  }
  T* out = t.data<T>();
  for (size_t i = 0; i < values.size(); ++i) out[i] = values[i];
  return t;
}

// What flows along a graph edge: a tensor, a sequence of tensors, or an empty optional.
struct Value {
  enum class Kind { kNone, kTensor, kSequence };
  Kind kind = Kind::kNone;
  Tensor tensor;
  std::vector<Tensor> sequence;
  DataType sequence_dtype = DataType::kUndefined;  // element type, meaningful when the sequence is empty

  static Value from_tensor(Tensor t) {
    Value v;
    v.kind = t.defined() ? Kind::kTensor : Kind::kNone;
    v.tensor = std::move(t);
    return v;
  }
  static Value from_sequence(std::vector<Tensor> seq, DataType dtype) {
    Value v;
    v.kind = Kind::kSequence;
    v.sequence = std::move(seq);
    v.sequence_dtype = dtype;
    return v;
  }
  bool is_tensor() const { return kind == Kind::kTensor; }
  bool is_sequence() const { return kind == Kind::kSequence; }
  bool is_none() const { return kind == Kind::kNone; }
};

}  // namespace deskml
