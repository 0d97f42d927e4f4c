// Tensors: made from caller data by copy or by borrowing it, read by accessors.
#include <cstdint>
#include <cstring>
#include <string>

#include "capi/handles.hpp"
#include "core/dtype.hpp"
#include "core/shape.hpp"

namespace deskml::capi {
namespace {

// The largest rank accepted from a caller (ONNX has no limit; real models stay far below).
constexpr size_t kMaxRank = 64;

Result<DataType> checked_dtype(deskml_dtype dtype) {
  auto d = dtype_from_onnx(static_cast<int32_t>(dtype));
  if (!d.ok() || *d == DataType::kUndefined) {
    return invalid_argument("unknown dtype " + std::to_string(static_cast<int>(dtype)));
  }
  return d;
}

Result<Shape> checked_shape(const int64_t* dims, size_t rank) {
  DESKML_CHECK_ARG(rank <= kMaxRank, "rank " + std::to_string(rank) + " exceeds " + std::to_string(kMaxRank));
  DESKML_CHECK_ARG(rank == 0 || dims != nullptr, "shape is NULL with rank " + std::to_string(rank));
  Shape shape(dims, dims + rank);
  for (int64_t d : shape) DESKML_CHECK_ARG(d >= 0, "negative dim in shape " + shape_to_string(shape));
  shape_numel(shape);  // throws OutOfRange past the element limit
  return shape;
}

Status check_bytes(DataType dtype, const Shape& shape, size_t data_bytes) {
  const size_t expected = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  DESKML_CHECK_ARG(data_bytes == expected, "data_bytes is " + std::to_string(data_bytes) + " but a " +
                                               std::string(dtype_name(dtype)) + shape_to_string(shape) +
                                               " tensor has " + std::to_string(expected));
  return Status::Ok();
}

deskml_tensor* new_handle(Tensor t) { return new deskml_tensor{std::move(t)}; }

// Calls the caller's release function when the last view of borrowed memory goes.
// Armed only once the tensor exists, so a failed borrow never calls it.
struct Release {
  deskml_release_fn fn = nullptr;
  void* user_data = nullptr;
  bool armed = false;
};

}  // namespace
}  // namespace deskml::capi

using namespace deskml;
using namespace deskml::capi;

extern "C" {

size_t deskml_dtype_size(deskml_dtype dtype) {
  auto d = dtype_from_onnx(static_cast<int32_t>(dtype));
  if (!d.ok() || *d == DataType::kString) return 0;
  return dtype_size(*d);
}

const char* deskml_dtype_name(deskml_dtype dtype) {
  switch (dtype) {
    case DESKML_DTYPE_FLOAT32:
      return "float32";
    case DESKML_DTYPE_UINT8:
      return "uint8";
    case DESKML_DTYPE_INT8:
      return "int8";
    case DESKML_DTYPE_UINT16:
      return "uint16";
    case DESKML_DTYPE_INT16:
      return "int16";
    case DESKML_DTYPE_INT32:
      return "int32";
    case DESKML_DTYPE_INT64:
      return "int64";
    case DESKML_DTYPE_STRING:
      return "string";
    case DESKML_DTYPE_BOOL:
      return "bool";
    case DESKML_DTYPE_FLOAT16:
      return "float16";
    case DESKML_DTYPE_FLOAT64:
      return "float64";
    case DESKML_DTYPE_UINT32:
      return "uint32";
    case DESKML_DTYPE_UINT64:
      return "uint64";
    case DESKML_DTYPE_BFLOAT16:
      return "bfloat16";
    case DESKML_DTYPE_UNDEFINED:
      break;
  }
  return "undefined";
}

deskml_status deskml_tensor_create(deskml_dtype dtype, const int64_t* shape, size_t rank, const void* data,
                                   size_t data_bytes, deskml_tensor** out) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(out);
    DESKML_ASSIGN_OR_RETURN(const DataType d, checked_dtype(dtype));
    DESKML_CHECK_ARG(d != DataType::kString, "STRING tensors are made with deskml_tensor_create_strings");
    DESKML_ASSIGN_OR_RETURN(Shape s, checked_shape(shape, rank));
    Tensor t;
    if (data == nullptr && data_bytes == 0) {
      t = Tensor::zeros(d, std::move(s));
    } else {
      DESKML_RETURN_IF_ERROR(check_bytes(d, s, data_bytes));
      DESKML_CHECK_ARG(data != nullptr, "data is NULL but data_bytes is " + std::to_string(data_bytes));
      t = Tensor(d, std::move(s));
      if (data_bytes > 0) std::memcpy(t.raw_data(), data, data_bytes);
    }
    *out = new_handle(std::move(t));
    return Status::Ok();
  });
}

deskml_status deskml_tensor_borrow(deskml_dtype dtype, const int64_t* shape, size_t rank, const void* data,
                                   size_t data_bytes, deskml_release_fn release, void* release_user_data,
                                   deskml_tensor** out) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(out);
    DESKML_ASSIGN_OR_RETURN(const DataType d, checked_dtype(dtype));
    DESKML_CHECK_ARG(d != DataType::kString, "STRING tensors cannot be borrowed; use deskml_tensor_create_strings");
    DESKML_ASSIGN_OR_RETURN(Shape s, checked_shape(shape, rank));
    DESKML_RETURN_IF_ERROR(check_bytes(d, s, data_bytes));
    DESKML_CHECK_ARG(data != nullptr || data_bytes == 0, "data is NULL");
    DESKML_CHECK_ARG(reinterpret_cast<uintptr_t>(data) % dtype_size(d) == 0,
                     "borrowed data is not aligned to its " + std::to_string(dtype_size(d)) + "-byte elements");
    std::shared_ptr<Release> releaser(new Release{release, release_user_data, false}, [](Release* r) {
      if (r->armed && r->fn != nullptr) r->fn(r->user_data);
      delete r;
    });
    // deskml never writes to a tensor a caller fed (sessions copy feeds, never donate them).
    void* mem = const_cast<void*>(data);
    Tensor t = Tensor::wrap(d, std::move(s), mem, std::shared_ptr<void>(releaser, mem));
    auto* handle = new_handle(std::move(t));
    releaser->armed = true;
    *out = handle;
    return Status::Ok();
  });
}

deskml_status deskml_tensor_create_strings(const char* const* values, const size_t* lengths, size_t count,
                                           const int64_t* shape, size_t rank, deskml_tensor** out) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(out);
    DESKML_ASSIGN_OR_RETURN(Shape s, checked_shape(shape, rank));
    const auto numel = static_cast<size_t>(shape_numel(s));
    DESKML_CHECK_ARG(count == numel, "count is " + std::to_string(count) + " but shape " + shape_to_string(s) +
                                         " holds " + std::to_string(numel) + " strings");
    DESKML_CHECK_ARG(count == 0 || values != nullptr, "values is NULL");
    Tensor t(DataType::kString, std::move(s));
    auto* strings = t.data<std::string>();
    for (size_t i = 0; i < count; ++i) {
      DESKML_CHECK_ARG(values[i] != nullptr || (lengths != nullptr && lengths[i] == 0),
                       "values[" + std::to_string(i) + "] is NULL");
      if (values[i] == nullptr) continue;
      strings[i] = lengths != nullptr ? std::string(values[i], lengths[i]) : std::string(values[i]);
    }
    *out = new_handle(std::move(t));
    return Status::Ok();
  });
}

deskml_status deskml_tensor_share(const deskml_tensor* tensor, deskml_tensor** out) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(tensor);
    DESKML_CAPI_REQUIRE(out);
    *out = new_handle(tensor->tensor);
    return Status::Ok();
  });
}

void deskml_tensor_destroy(deskml_tensor* tensor) { delete tensor; }

deskml_dtype deskml_tensor_dtype(const deskml_tensor* tensor) {
  return tensor ? static_cast<deskml_dtype>(tensor->tensor.dtype()) : DESKML_DTYPE_UNDEFINED;
}

size_t deskml_tensor_rank(const deskml_tensor* tensor) {
  return tensor ? static_cast<size_t>(tensor->tensor.rank()) : 0;
}

const int64_t* deskml_tensor_shape(const deskml_tensor* tensor) {
  return tensor ? tensor->tensor.shape().data() : nullptr;
}

int64_t deskml_tensor_element_count(const deskml_tensor* tensor) { return tensor ? tensor->tensor.numel() : 0; }

size_t deskml_tensor_byte_size(const deskml_tensor* tensor) {
  if (tensor == nullptr || tensor->tensor.dtype() == DataType::kString) return 0;
  return tensor->tensor.nbytes();
}

const void* deskml_tensor_data(const deskml_tensor* tensor) {
  if (tensor == nullptr || tensor->tensor.dtype() == DataType::kString) return nullptr;
  return tensor->tensor.raw_data();
}

const char* deskml_tensor_string(const deskml_tensor* tensor, size_t index, size_t* length) {
  if (tensor == nullptr || tensor->tensor.dtype() != DataType::kString ||
      index >= static_cast<size_t>(tensor->tensor.numel())) {
    return nullptr;
  }
  const std::string& s = tensor->tensor.data<std::string>()[index];
  if (length != nullptr) *length = s.size();
  return s.c_str();
}

}  // extern "C"
