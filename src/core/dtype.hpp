// Element types. The numeric values equal ONNX's TensorProto.DataType so the
// loader converts with a range check and nothing else.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/float16.hpp"
#include "core/status.hpp"

namespace deskml {

enum class DataType : int32_t {
  kUndefined = 0,
  kFloat32 = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kFloat64 = 11,
  kUInt32 = 12,
  kUInt64 = 13,
  kBFloat16 = 16,
};

// Bytes per element; std::string's size for kString, 0 for kUndefined.
size_t dtype_size(DataType t);
// ONNX-style lower-case name: "float", "int64", "float16", "bool", "string".
std::string_view dtype_name(DataType t);
// numpy dtype descriptor ("<f4", "|b1"); empty when numpy has none (bfloat16).
std::string_view dtype_numpy_descr(DataType t);
Result<DataType> dtype_from_numpy_descr(std::string_view descr);
// KServe v2 / Triton datatype name: "FP32", "INT64", "BOOL", "BYTES" (strings), "BF16".
std::string_view dtype_kserve_name(DataType t);
// Any of: the ONNX-style name ("float"), numpy-style ("float32", "float64"), or the
// KServe name ("FP32", "BYTES"). Case matters for neither family's spelling.
Result<DataType> dtype_from_name(std::string_view name);
// Accepts ONNX TensorProto values; rejects what deskml cannot hold (complex, float8).
Result<DataType> dtype_from_onnx(int32_t value);
bool dtype_is_float(DataType t);    // float16, bfloat16, float32, float64
bool dtype_is_integer(DataType t);  // signed and unsigned integers (not bool)
bool dtype_is_signed(DataType t);

template <typename T>
struct TypeToDtype;
#define DESKML_TYPE_MAP(T, D)                      \
  template <>                                      \
  struct TypeToDtype<T> {                          \
    static constexpr DataType value = DataType::D; \
  };
DESKML_TYPE_MAP(float, kFloat32)
DESKML_TYPE_MAP(double, kFloat64)
DESKML_TYPE_MAP(Float16, kFloat16)
DESKML_TYPE_MAP(BFloat16, kBFloat16)
DESKML_TYPE_MAP(int8_t, kInt8)
DESKML_TYPE_MAP(uint8_t, kUInt8)
DESKML_TYPE_MAP(int16_t, kInt16)
DESKML_TYPE_MAP(uint16_t, kUInt16)
DESKML_TYPE_MAP(int32_t, kInt32)
DESKML_TYPE_MAP(uint32_t, kUInt32)
DESKML_TYPE_MAP(int64_t, kInt64)
DESKML_TYPE_MAP(uint64_t, kUInt64)
DESKML_TYPE_MAP(bool, kBool)
DESKML_TYPE_MAP(std::string, kString)
#undef DESKML_TYPE_MAP

template <typename T>
inline constexpr DataType dtype_of = TypeToDtype<T>::value;

// Calls fn(T{}) with the C++ type for t, among the given kinds of types.
// Unlisted types throw Error(Unsupported) naming `what`.
#define DESKML_DISPATCH_CASE(D, T) \
  case ::deskml::DataType::D:      \
    return fn(T{});

template <typename Fn>
decltype(auto) dispatch_all(DataType t, std::string_view what, Fn&& fn) {
  switch (t) {
    DESKML_DISPATCH_CASE(kFloat32, float)
    DESKML_DISPATCH_CASE(kFloat64, double)
    DESKML_DISPATCH_CASE(kFloat16, Float16)
    DESKML_DISPATCH_CASE(kBFloat16, BFloat16)
    DESKML_DISPATCH_CASE(kInt8, int8_t)
    DESKML_DISPATCH_CASE(kUInt8, uint8_t)
    DESKML_DISPATCH_CASE(kInt16, int16_t)
    DESKML_DISPATCH_CASE(kUInt16, uint16_t)
    DESKML_DISPATCH_CASE(kInt32, int32_t)
    DESKML_DISPATCH_CASE(kUInt32, uint32_t)
    DESKML_DISPATCH_CASE(kInt64, int64_t)
    DESKML_DISPATCH_CASE(kUInt64, uint64_t)
    DESKML_DISPATCH_CASE(kBool, bool)
    DESKML_DISPATCH_CASE(kString, std::string)
    default:
      break;
  }
  throw_status(unsupported(std::string(what) + ": unsupported data type " + std::string(dtype_name(t))));
}

// Numeric types with native arithmetic (no half types, no bool, no string).
template <typename Fn>
decltype(auto) dispatch_numeric(DataType t, std::string_view what, Fn&& fn) {
  switch (t) {
    DESKML_DISPATCH_CASE(kFloat32, float)
    DESKML_DISPATCH_CASE(kFloat64, double)
    DESKML_DISPATCH_CASE(kInt8, int8_t)
    DESKML_DISPATCH_CASE(kUInt8, uint8_t)
    DESKML_DISPATCH_CASE(kInt16, int16_t)
    DESKML_DISPATCH_CASE(kUInt16, uint16_t)
    DESKML_DISPATCH_CASE(kInt32, int32_t)
    DESKML_DISPATCH_CASE(kUInt32, uint32_t)
    DESKML_DISPATCH_CASE(kInt64, int64_t)
    DESKML_DISPATCH_CASE(kUInt64, uint64_t)
    default:
      break;
  }
  throw_status(unsupported(std::string(what) + ": unsupported data type " + std::string(dtype_name(t))));
}

template <typename Fn>
decltype(auto) dispatch_float(DataType t, std::string_view what, Fn&& fn) {
  switch (t) {
    DESKML_DISPATCH_CASE(kFloat32, float)
    DESKML_DISPATCH_CASE(kFloat64, double)
    default:
      break;
  }
  throw_status(unsupported(std::string(what) + ": unsupported data type " + std::string(dtype_name(t))));
}

// Converts any storage type to a computation type (half types go through float).
template <typename To, typename From>
inline To convert_scalar(From v) {
  if constexpr (std::is_same_v<From, Float16> || std::is_same_v<From, BFloat16>) {
    return convert_scalar<To>(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, Float16> || std::is_same_v<To, BFloat16>) {
    return To(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, bool>) {
    return v != From{};
  } else {
    return static_cast<To>(v);
  }
}

}  // namespace deskml
