#include "core/dtype.hpp"

namespace deskml {

size_t dtype_size(DataType t) {
  switch (t) {
    case DataType::kFloat32:
      return 4;
    case DataType::kFloat64:
      return 8;
    case DataType::kFloat16:
    case DataType::kBFloat16:
    case DataType::kInt16:
    case DataType::kUInt16:
      return 2;
    case DataType::kInt8:
    case DataType::kUInt8:
    case DataType::kBool:
      return 1;
    case DataType::kInt32:
    case DataType::kUInt32:
      return 4;
    case DataType::kInt64:
    case DataType::kUInt64:
      return 8;
    case DataType::kString:
      return sizeof(std::string);
    case DataType::kUndefined:
      return 0;
  }
  return 0;
}

std::string_view dtype_name(DataType t) {
  switch (t) {
    case DataType::kFloat32:
      return "float";
    case DataType::kFloat64:
      return "double";
    case DataType::kFloat16:
      return "float16";
    case DataType::kBFloat16:
      return "bfloat16";
    case DataType::kInt8:
      return "int8";
    case DataType::kUInt8:
      return "uint8";
    case DataType::kInt16:
      return "int16";
    case DataType::kUInt16:
      return "uint16";
    case DataType::kInt32:
      return "int32";
    case DataType::kUInt32:
      return "uint32";
    case DataType::kInt64:
      return "int64";
    case DataType::kUInt64:
      return "uint64";
    case DataType::kBool:
      return "bool";
    case DataType::kString:
      return "string";
    case DataType::kUndefined:
      return "undefined";
  }
  return "undefined";
}

std::string_view dtype_numpy_descr(DataType t) {
  switch (t) {
    case DataType::kFloat32:
      return "<f4";
    case DataType::kFloat64:
      return "<f8";
    case DataType::kFloat16:
      return "<f2";
    case DataType::kInt8:
      return "|i1";
    case DataType::kUInt8:
      return "|u1";
    case DataType::kInt16:
      return "<i2";
    case DataType::kUInt16:
      return "<u2";
    case DataType::kInt32:
      return "<i4";
    case DataType::kUInt32:
      return "<u4";
    case DataType::kInt64:
      return "<i8";
    case DataType::kUInt64:
      return "<u8";
    case DataType::kBool:
      return "|b1";
    default:
      return "";
  }
}

Result<DataType> dtype_from_numpy_descr(std::string_view d) {
  static constexpr DataType kNumpyTypes[] = {
      DataType::kFloat32, DataType::kFloat64, DataType::kFloat16, DataType::kInt8,  DataType::kUInt8,  DataType::kInt16,
      DataType::kUInt16,  DataType::kInt32,   DataType::kUInt32,  DataType::kInt64, DataType::kUInt64, DataType::kBool};
  // numpy writes '|' for single bytes and '<' (or '=' on little-endian) otherwise;
  // compare with the byte-order character canonicalised, report what the file said.
  std::string canonical(d);
  if (canonical.size() >= 2 && (canonical[0] == '=' || canonical[0] == '|')) {
    const std::string_view kind = d.substr(1);
    canonical[0] = (kind == "i1" || kind == "u1" || kind == "b1") ? '|' : '<';
  }
  for (DataType t : kNumpyTypes) {
    if (dtype_numpy_descr(t) == canonical) return t;
  }
  return unsupported("numpy dtype '" + std::string(d) + "' is not supported (big-endian, complex or object)");
}

Result<DataType> dtype_from_onnx(int32_t v) {
  switch (v) {
    case 1:
    case 2:
    case 3:
    case 4:
    case 5:
    case 6:
    case 7:
    case 8:
    case 9:
    case 10:
    case 11:
    case 12:
    case 13:
    case 16:
      return static_cast<DataType>(v);
    case 14:
    case 15:
      return unsupported("complex tensors are not supported");
    default:
      return unsupported("tensor data type " + std::to_string(v) + " is not supported");
  }
}

bool dtype_is_float(DataType t) {
  return t == DataType::kFloat32 || t == DataType::kFloat64 || t == DataType::kFloat16 || t == DataType::kBFloat16;
}

bool dtype_is_integer(DataType t) {
  switch (t) {
    case DataType::kInt8:
    case DataType::kUInt8:
    case DataType::kInt16:
    case DataType::kUInt16:
    case DataType::kInt32:
    case DataType::kUInt32:
    case DataType::kInt64:
    case DataType::kUInt64:
      return true;
    default:
      return false;
  }
}

bool dtype_is_signed(DataType t) {
  return dtype_is_float(t) || t == DataType::kInt8 || t == DataType::kInt16 || t == DataType::kInt32 ||
         t == DataType::kInt64;
}

std::string_view dtype_kserve_name(DataType t) {
  switch (t) {
    case DataType::kFloat32:
      return "FP32";
    case DataType::kFloat64:
      return "FP64";
    case DataType::kFloat16:
      return "FP16";
    case DataType::kBFloat16:
      return "BF16";
    case DataType::kInt8:
      return "INT8";
    case DataType::kUInt8:
      return "UINT8";
    case DataType::kInt16:
      return "INT16";
    case DataType::kUInt16:
      return "UINT16";
    case DataType::kInt32:
      return "INT32";
    case DataType::kUInt32:
      return "UINT32";
    case DataType::kInt64:
      return "INT64";
    case DataType::kUInt64:
      return "UINT64";
    case DataType::kBool:
      return "BOOL";
    case DataType::kString:
      return "BYTES";
    case DataType::kUndefined:
      break;
  }
  return "";
}

Result<DataType> dtype_from_name(std::string_view name) {
  static constexpr DataType kAll[] = {DataType::kFloat32, DataType::kFloat64, DataType::kFloat16, DataType::kBFloat16,
                                      DataType::kInt8,    DataType::kUInt8,   DataType::kInt16,   DataType::kUInt16,
                                      DataType::kInt32,   DataType::kUInt32,  DataType::kInt64,   DataType::kUInt64,
                                      DataType::kBool,    DataType::kString};
  for (DataType t : kAll) {
    if (name == dtype_name(t) || name == dtype_kserve_name(t)) return t;
  }
  if (name == "float32") return DataType::kFloat32;
  if (name == "float64") return DataType::kFloat64;
  if (name == "bytes") return DataType::kString;
  return invalid_argument("unknown data type '" + std::string(name) + "'");
}

}  // namespace deskml
