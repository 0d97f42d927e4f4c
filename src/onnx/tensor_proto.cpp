#include "onnx/tensor_proto.hpp"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <new>
#include <optional>

#include "onnx/external_data.hpp"

namespace deskml::onnx_import {
namespace {

namespace fs = std::filesystem;

// A plain non-negative decimal that fits in 64 bits, as ONNX writes offsets and
// lengths. std::stoull would accept "-1" (wrapping to 2^64-1), leading spaces
// and trailing junk.
std::optional<uint64_t> parse_decimal(const std::string& text) {
  if (text.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  return v;
}

// shape_numel stops at a zero dim, so [0, 2^62, 2^62] is a legal empty tensor;
// but kernels multiply partial runs of dims (outer/inner sizes), which would
// overflow. An empty tensor's other dims get the same bound as a full one's.
bool nonzero_dims_within_limit(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d == 0) continue;
    if (n > kMaxTensorElements / d) return false;
    n *= d;
  }
  return true;
}

// C++ bool has two valid object representations; any other byte read as bool is
// undefined behaviour, so raw bytes from a file are normalised to 0/1.
void normalize_bools(Tensor& t) {
  if (t.dtype() != DataType::kBool) return;
  auto* b = static_cast<uint8_t*>(t.raw_data());
  for (int64_t i = 0; i < t.numel(); ++i) b[i] = b[i] != 0;
}

// Reads `nbytes` of external data straight into `out`'s storage. Every bound is
// checked before the tensor is allocated or the file is opened.
Result<Tensor> read_external(const onnx::TensorProto& proto, const TensorReadLimits& limits, DataType dtype,
                             const Shape& shape, uint64_t nbytes) {
  const std::string& name = proto.name();
  std::string location;
  uint64_t offset = 0;
  std::optional<uint64_t> length;
  for (const auto& kv : proto.external_data()) {
    if (kv.key() != "location" && kv.key() != "offset" && kv.key() != "length") continue;  // e.g. "checksum"
    if (kv.key() == "location") {
      location = kv.value();
      continue;
    }
    const auto v = parse_decimal(kv.value());
    if (!v) {
      return invalid_model("tensor '" + name + "': external data " + kv.key() + " '" + kv.value() +
                           "' is not a non-negative integer (64 bits at most)");
    }
    if (kv.key() == "offset") {
      offset = *v;
    } else {
      length = *v;
    }
  }
  DESKML_ASSIGN_OR_RETURN(fs::path file, resolve_external_location(limits.base_dir, location));
  const uint64_t want = length.value_or(nbytes);
  if (want != nbytes) {
    return invalid_model("tensor '" + name + "': external data length " + std::to_string(want) +
                         " does not match its shape " + shape_to_string(shape) + " (" + std::to_string(nbytes) +
                         " bytes)");
  }
  if (want > limits.max_external_bytes) {
    return out_of_range("tensor '" + name + "' has " + std::to_string(want) + " bytes of external data; the limit is " +
                        std::to_string(limits.max_external_bytes));
  }
  std::error_code ec;
  const uint64_t size = fs::file_size(file, ec);
  if (ec) return io_error("external data '" + location + "': " + ec.message());
  if (offset > size || want > size - offset) {
    return invalid_model("tensor '" + name + "': external data range [" + std::to_string(offset) + ", " +
                         std::to_string(offset) + "+" + std::to_string(want) + ") runs past the end of '" + location +
                         "' (" + std::to_string(size) + " bytes)");
  }
  if (limits.files_read) limits.files_read->push_back(file);
  Tensor t(dtype, shape);
  if (want == 0) return t;
  std::ifstream in(file, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(static_cast<char*>(t.raw_data()), static_cast<std::streamsize>(want));
  if (!in) return io_error("could not read " + std::to_string(want) + " bytes of external data '" + location + "'");
  normalize_bools(t);
  return t;  // ONNX external data is little-endian, as is x86
}

// How many values the typed field that holds `dtype` carries.
std::optional<int64_t> typed_value_count(const onnx::TensorProto& proto, DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32: return proto.float_data_size();
    case DataType::kFloat64: return proto.double_data_size();
    case DataType::kInt64: return proto.int64_data_size();
    case DataType::kUInt32:
    case DataType::kUInt64: return proto.uint64_data_size();
    case DataType::kInt32:
    case DataType::kInt16:
    case DataType::kUInt16:
    case DataType::kInt8:
    case DataType::kUInt8:
    case DataType::kBool:
    case DataType::kFloat16:
    case DataType::kBFloat16: return proto.int32_data_size();
    case DataType::kString: return proto.string_data_size();
    case DataType::kUndefined: break;
  }
  return std::nullopt;
}

template <typename T, typename Field, typename Convert>
void copy_field(const Field& field, Tensor& t, Convert convert) {
  T* out = t.data<T>();
  for (int i = 0; i < field.size(); ++i) out[i] = convert(field.Get(i));
}

Tensor tensor_from_typed_field(const onnx::TensorProto& proto, DataType dtype, const Shape& shape) {
  Tensor t(dtype, shape);
  auto same = [](const auto& v) { return v; };
  switch (dtype) {
    case DataType::kFloat32: copy_field<float>(proto.float_data(), t, same); break;
    case DataType::kFloat64: copy_field<double>(proto.double_data(), t, same); break;
    case DataType::kInt64: copy_field<int64_t>(proto.int64_data(), t, same); break;
    case DataType::kUInt64: copy_field<uint64_t>(proto.uint64_data(), t, same); break;
    case DataType::kUInt32:
      copy_field<uint32_t>(proto.uint64_data(), t, [](uint64_t v) { return static_cast<uint32_t>(v); });
      break;
    case DataType::kInt32: copy_field<int32_t>(proto.int32_data(), t, same); break;
    case DataType::kInt16:
      copy_field<int16_t>(proto.int32_data(), t, [](int32_t v) { return static_cast<int16_t>(v); });
      break;
    case DataType::kUInt16:
      copy_field<uint16_t>(proto.int32_data(), t, [](int32_t v) { return static_cast<uint16_t>(v); });
      break;
    case DataType::kInt8:
      copy_field<int8_t>(proto.int32_data(), t, [](int32_t v) { return static_cast<int8_t>(v); });
      break;
    case DataType::kUInt8:
      copy_field<uint8_t>(proto.int32_data(), t, [](int32_t v) { return static_cast<uint8_t>(v); });
      break;
    case DataType::kBool: copy_field<bool>(proto.int32_data(), t, [](int32_t v) { return v != 0; }); break;
    case DataType::kFloat16:
      copy_field<Float16>(proto.int32_data(), t,
                          [](int32_t v) { return Float16::from_bits(static_cast<uint16_t>(v)); });
      break;
    case DataType::kBFloat16:
      copy_field<BFloat16>(proto.int32_data(), t,
                           [](int32_t v) { return BFloat16::from_bits(static_cast<uint16_t>(v)); });
      break;
    case DataType::kString: copy_field<std::string>(proto.string_data(), t, same); break;
    case DataType::kUndefined: break;
  }
  return t;
}

// Raw data at least this large is adopted by the tensor instead of copied
// (when the caller lets go of the proto's data).
constexpr size_t kAdoptBytes = 64 * 1024;

Result<Tensor> convert(const onnx::TensorProto& proto, const TensorReadLimits& limits, std::string* adoptable) {
  const std::string& name = proto.name();
  DESKML_ASSIGN_OR_RETURN(DataType dtype, dtype_from_onnx(proto.data_type()));
  if (proto.has_segment()) return unsupported("tensor '" + name + "': segmented tensors are not supported");
  Shape shape;
  shape.reserve(static_cast<size_t>(proto.dims_size()));
  for (int64_t d : proto.dims()) {
    if (d < 0) return invalid_model("tensor '" + name + "' has a negative dimension (" + std::to_string(d) + ")");
    shape.push_back(d);
  }
  uint64_t numel = 0;
  try {
    numel = static_cast<uint64_t>(shape_numel(shape));
  } catch (const Error& e) {
    return invalid_model("tensor '" + name + "': " + e.status().message());
  }
  if (!nonzero_dims_within_limit(shape)) {
    return invalid_model("tensor '" + name + "' has shape " + shape_to_string(shape) +
                         ": its non-zero dimensions exceed the element limit");
  }

  // Nothing is allocated until the data the file actually carries is known to
  // fill the declared shape: a tiny file must not be able to ask for terabytes.
  const bool external = proto.data_location() == onnx::TensorProto::EXTERNAL;
  if (dtype != DataType::kString && (external || proto.has_raw_data())) {
    const uint64_t nbytes = numel * dtype_size(dtype);
    if (external) return read_external(proto, limits, dtype, shape, nbytes);
    const std::string& raw = proto.raw_data();
    if (raw.size() != nbytes) {
      return invalid_model("tensor '" + name + "' has " + std::to_string(raw.size()) + " bytes of data; its shape " +
                           shape_to_string(shape) + " needs " + std::to_string(nbytes));
    }
    Tensor t;
    if (adoptable != nullptr && nbytes >= kAdoptBytes) {
      // ONNX raw data is little-endian, as is x86: the bytes are the tensor.
      auto owner = std::make_shared<std::string>(std::move(*adoptable));
      t = Tensor::wrap(dtype, shape, owner->data(), owner);
    } else {
      t = Tensor(dtype, shape);
      if (nbytes) std::memcpy(t.raw_data(), raw.data(), nbytes);
    }
    normalize_bools(t);
    return t;
  }
  if (external) return invalid_model("tensor '" + name + "': string tensors cannot use external data");
  const auto count = typed_value_count(proto, dtype);
  if (!count) return unsupported("tensor '" + name + "' has an unsupported data type");
  if (static_cast<uint64_t>(*count) != numel) {
    return invalid_model("tensor '" + name + "' has " + std::to_string(*count) + " values for shape " +
                         shape_to_string(shape) + " (" + std::to_string(numel) + " elements)");
  }
  return tensor_from_typed_field(proto, dtype, shape);
}

}  // namespace

namespace {

Result<Tensor> convert_guarded(const onnx::TensorProto& proto, const TensorReadLimits& limits, std::string* adoptable) {
  // Allocation can still fail for a legitimately large tensor; that is a Status, not a crash.
  try {
    return convert(proto, limits, adoptable);
  } catch (const Error& e) {
    return e.status().with_context("tensor '" + proto.name() + "'");
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kResourceExhausted, "tensor '" + proto.name() + "': out of memory");
  }
}

}  // namespace

Result<Tensor> tensor_from_proto(const onnx::TensorProto& proto, const TensorReadLimits& limits) {
  return convert_guarded(proto, limits, nullptr);
}

Result<Tensor> tensor_from_proto(onnx::TensorProto& proto, const TensorReadLimits& limits) {
  return convert_guarded(proto, limits, proto.has_raw_data() ? proto.mutable_raw_data() : nullptr);
}

}  // namespace deskml::onnx_import
