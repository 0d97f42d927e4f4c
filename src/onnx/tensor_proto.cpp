#include "onnx/tensor_proto.hpp"

#include <cstring>
#include <fstream>

#include "onnx/external_data.hpp"

namespace deskml::onnx_import {
namespace {

namespace fs = std::filesystem;

Result<std::string> read_external(const onnx::TensorProto& proto, const TensorReadLimits& limits,
                                  uint64_t expected_bytes) {
  std::string location;
  uint64_t offset = 0;
  int64_t length = -1;
  for (const auto& kv : proto.external_data()) {
    try {
      if (kv.key() == "location") location = kv.value();
      else if (kv.key() == "offset") offset = std::stoull(kv.value());
      else if (kv.key() == "length") length = static_cast<int64_t>(std::stoull(kv.value()));
    } catch (const std::exception&) {
      return invalid_model("tensor '" + proto.name() + "': bad external data field '" + kv.key() + "'");
    }
  }
  DESKML_ASSIGN_OR_RETURN(fs::path file, resolve_external_location(limits.base_dir, location));
  std::error_code ec;
  const uint64_t size = fs::file_size(file, ec);
  if (ec) return io_error("external data '" + location + "': " + ec.message());
  const uint64_t want = length >= 0 ? static_cast<uint64_t>(length) : expected_bytes;
  if (want != expected_bytes) {
    return invalid_model("tensor '" + proto.name() + "': external data length " + std::to_string(want) +
                         " does not match its shape (" + std::to_string(expected_bytes) + " bytes)");
  }
  if (want > limits.max_external_bytes) return out_of_range("tensor '" + proto.name() + "' is too large");
  if (offset > size || want > size - offset) {
    return invalid_model("tensor '" + proto.name() + "': external data range runs past the end of '" + location +
                         "'");
  }
  std::ifstream in(file, std::ios::binary);
  std::string bytes(want, '\0');
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(bytes.data(), static_cast<std::streamsize>(want));
  if (!in) return io_error("could not read external data '" + location + "'");
  return bytes;
}

template <typename Field, typename T, typename Convert>
Status copy_field(const Field& field, Tensor& t, const std::string& name, Convert convert) {
  if (static_cast<int64_t>(field.size()) != t.numel()) {
    return invalid_model("tensor '" + name + "' has " + std::to_string(field.size()) + " values for shape " +
                         shape_to_string(t.shape()));
  }
  T* out = t.data<T>();
  for (int i = 0; i < field.size(); ++i) out[i] = convert(field.Get(i));
  return Status::Ok();
}

}  // namespace

Result<Tensor> tensor_from_proto(const onnx::TensorProto& proto, const TensorReadLimits& limits) {
  DESKML_ASSIGN_OR_RETURN(DataType dtype, dtype_from_onnx(proto.data_type()));
  Shape shape;
  for (int64_t d : proto.dims()) {
    if (d < 0) return invalid_model("tensor '" + proto.name() + "' has a negative dimension");
    shape.push_back(d);
  }
  if (proto.has_segment()) return unsupported("segmented tensors are not supported");
  try {
    (void)shape_numel(shape);  // bounds the element count before anything is allocated
  } catch (const Error& e) {
    return invalid_model("tensor '" + proto.name() + "': " + e.status().message());
  }
  const std::string& name = proto.name();
  const uint64_t numel = static_cast<uint64_t>(shape_numel(shape));

  if (dtype == DataType::kString) {
    Tensor t(dtype, shape);
    DESKML_RETURN_IF_ERROR((copy_field<decltype(proto.string_data()), std::string>(
        proto.string_data(), t, name, [](const std::string& s) { return s; })));
    return t;
  }

  const uint64_t nbytes = numel * dtype_size(dtype);
  const bool external = proto.data_location() == onnx::TensorProto::EXTERNAL;
  if (external || proto.has_raw_data()) {
    std::string external_bytes;
    const std::string* raw = &proto.raw_data();
    if (external) {
      DESKML_ASSIGN_OR_RETURN(external_bytes, read_external(proto, limits, nbytes));
      raw = &external_bytes;
    }
    if (raw->size() != nbytes) {
      return invalid_model("tensor '" + name + "' has " + std::to_string(raw->size()) + " bytes of data, its shape " +
                           shape_to_string(shape) + " needs " + std::to_string(nbytes));
    }
    Tensor t(dtype, shape);
    if (nbytes) std::memcpy(t.raw_data(), raw->data(), nbytes);  // ONNX raw data is little-endian, as is x86
    return t;
  }

  Tensor t(dtype, shape);
  auto same = [](auto v) { return v; };
  switch (dtype) {
    case DataType::kFloat32:
      DESKML_RETURN_IF_ERROR((copy_field<decltype(proto.float_data()), float>(proto.float_data(), t, name, same)));
      break;
    case DataType::kFloat64:
      DESKML_RETURN_IF_ERROR((copy_field<decltype(proto.double_data()), double>(proto.double_data(), t, name, same)));
      break;
    case DataType::kInt64:
      DESKML_RETURN_IF_ERROR((copy_field<decltype(proto.int64_data()), int64_t>(proto.int64_data(), t, name, same)));
      break;
    case DataType::kUInt32:
      DESKML_RETURN_IF_ERROR((copy_field<decltype(proto.uint64_data()), uint32_t>(
          proto.uint64_data(), t, name, [](uint64_t v) { return static_cast<uint32_t>(v); })));
      break;
    case DataType::kUInt64:
      DESKML_RETURN_IF_ERROR(
          (copy_field<decltype(proto.uint64_data()), uint64_t>(proto.uint64_data(), t, name, same)));
      break;
    case DataType::kInt32:
      DESKML_RETURN_IF_ERROR((copy_field<decltype(proto.int32_data()), int32_t>(proto.int32_data(), t, name, same)));
      break;
#define DESKML_INT32_FIELD(D, T, EXPR)                                                          \
  case DataType::D:                                                                             \
    DESKML_RETURN_IF_ERROR((copy_field<decltype(proto.int32_data()), T>(proto.int32_data(), t, name, \
                                                                        [](int32_t v) { return EXPR; }))); \
    break;
      DESKML_INT32_FIELD(kInt16, int16_t, static_cast<int16_t>(v))
      DESKML_INT32_FIELD(kUInt16, uint16_t, static_cast<uint16_t>(v))
      DESKML_INT32_FIELD(kInt8, int8_t, static_cast<int8_t>(v))
      DESKML_INT32_FIELD(kUInt8, uint8_t, static_cast<uint8_t>(v))
      DESKML_INT32_FIELD(kBool, bool, v != 0)
      DESKML_INT32_FIELD(kFloat16, Float16, Float16::from_bits(static_cast<uint16_t>(v)))
      DESKML_INT32_FIELD(kBFloat16, BFloat16, BFloat16::from_bits(static_cast<uint16_t>(v)))
#undef DESKML_INT32_FIELD
    default:
      return unsupported("tensor '" + name + "' has an unsupported data type");
  }
  return t;
}

}  // namespace deskml::onnx_import
