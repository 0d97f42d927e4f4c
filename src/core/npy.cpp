#include "core/npy.hpp"

#include <cstring>
#include <fstream>

namespace deskml {
namespace {

constexpr std::string_view kMagic = "\x93NUMPY";
constexpr uint64_t kMaxHeader = 1 << 20;  // bounds the scan of a hostile header

// Finds `'key':` in the header dict and returns the text after it.
Result<std::string_view> header_field(std::string_view header, std::string_view key) {
  const std::string quoted = "'" + std::string(key) + "'";
  const size_t pos = header.find(quoted);
  if (pos == std::string_view::npos) return invalid_argument("npy header has no '" + std::string(key) + "'");
  size_t colon = header.find(':', pos + quoted.size());
  if (colon == std::string_view::npos) return invalid_argument("malformed npy header");
  std::string_view rest = header.substr(colon + 1);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  return rest;
}

Result<Shape> parse_shape(std::string_view text) {
  if (text.empty() || text.front() != '(') return invalid_argument("malformed npy shape");
  const size_t close = text.find(')');
  if (close == std::string_view::npos) return invalid_argument("malformed npy shape");
  Shape shape;
  std::string_view body = text.substr(1, close - 1);
  while (!body.empty()) {
    while (!body.empty() && (body.front() == ' ' || body.front() == ',')) body.remove_prefix(1);
    if (body.empty()) break;
    int64_t v = 0;
    size_t digits = 0;
    while (digits < body.size() && body[digits] >= '0' && body[digits] <= '9') {
      if (v > (int64_t{1} << 50)) return out_of_range("npy dimension too large");
      v = v * 10 + (body[digits] - '0');
      ++digits;
    }
    if (digits == 0) {
      // numpy writes "3L" on Python 2; anything else is garbage
      return invalid_argument("malformed npy shape");
    }
    body.remove_prefix(digits);
    if (!body.empty() && body.front() == 'L') body.remove_prefix(1);
    shape.push_back(v);
  }
  return shape;
}

}  // namespace

Result<Tensor> parse_npy(std::string_view bytes) {
  if (bytes.size() < 10 || bytes.substr(0, 6) != kMagic) return invalid_argument("not a .npy file (bad magic)");
  const uint8_t major = static_cast<uint8_t>(bytes[6]);
  uint64_t header_len = 0;
  size_t offset = 0;
  if (major == 1) {
    header_len = static_cast<uint8_t>(bytes[8]) | (static_cast<uint64_t>(static_cast<uint8_t>(bytes[9])) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return invalid_argument("truncated .npy header");
    for (int i = 0; i < 4; ++i) header_len |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[8 + i])) << (8 * i);
    offset = 12;
  } else {
    return unsupported(".npy format version " + std::to_string(major) + " is not supported");
  }
  if (header_len > kMaxHeader) {
    return out_of_range(".npy header of " + std::to_string(header_len) + " bytes is larger than the limit");
  }
  if (offset + header_len > bytes.size()) return invalid_argument("truncated .npy header");
  const std::string_view header = bytes.substr(offset, header_len);
  DESKML_ASSIGN_OR_RETURN(std::string_view descr_text, header_field(header, "descr"));
  if (descr_text.empty() || descr_text.front() != '\'') return invalid_argument("malformed npy descr");
  const size_t end_quote = descr_text.find('\'', 1);
  if (end_quote == std::string_view::npos) return invalid_argument("malformed npy descr");
  DESKML_ASSIGN_OR_RETURN(DataType dtype, dtype_from_numpy_descr(descr_text.substr(1, end_quote - 1)));
  DESKML_ASSIGN_OR_RETURN(std::string_view fortran, header_field(header, "fortran_order"));
  if (fortran.rfind("True", 0) == 0) return unsupported("Fortran-ordered .npy arrays are not supported");
  DESKML_ASSIGN_OR_RETURN(std::string_view shape_text, header_field(header, "shape"));
  DESKML_ASSIGN_OR_RETURN(Shape shape, parse_shape(shape_text));
  int64_t numel;
  try {
    numel = shape_numel(shape);
  } catch (const Error& e) {
    return e.status();
  }
  const uint64_t data_bytes = static_cast<uint64_t>(numel) * dtype_size(dtype);
  const uint64_t available = bytes.size() - offset - header_len;
  if (available != data_bytes) {
    return invalid_argument(".npy data is " + std::to_string(available) + " bytes; shape " + shape_to_string(shape) +
                            " needs " + std::to_string(data_bytes));
  }
  Tensor t;
  try {
    t = Tensor(dtype, shape);
  } catch (const Error& e) {
    return e.status();
  }
  if (data_bytes) std::memcpy(t.raw_data(), bytes.data() + offset + header_len, data_bytes);
  if (dtype == DataType::kBool) {
    auto* b = static_cast<uint8_t*>(t.raw_data());
    for (int64_t i = 0; i < numel; ++i) b[i] = b[i] != 0;  // only 0/1 are valid bool bytes
  }
  return t;
}

Result<Tensor> read_npy(const std::filesystem::path& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return not_found("cannot read '" + path.string() + "': " + ec.message());
  try {
    std::ifstream in(path, std::ios::binary);
    std::string bytes(size, '\0');
    in.read(bytes.data(), static_cast<std::streamsize>(size));
    if (!in) return io_error("cannot read '" + path.string() + "'");
    auto t = parse_npy(bytes);
    if (!t.ok()) return t.status().with_context(path.string());
    return t;
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kResourceExhausted, "out of memory reading '" + path.string() + "'");
  } catch (const std::length_error&) {
    return Status(StatusCode::kResourceExhausted, "'" + path.string() + "' is too large to read");
  }
}

std::string serialize_npy(const Tensor& tensor) {
  const std::string_view descr = dtype_numpy_descr(tensor.dtype());
  if (descr.empty()) throw_status(unsupported("numpy has no dtype for " + std::string(dtype_name(tensor.dtype()))));
  std::string shape = "(";
  for (size_t i = 0; i < tensor.shape().size(); ++i) shape += std::to_string(tensor.shape()[i]) + ", ";
  if (tensor.shape().size() > 1) shape.resize(shape.size() - 2);
  else if (tensor.shape().size() == 1) shape.resize(shape.size() - 1);
  shape += ")";
  std::string header = "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Format 1.0 stores the header length in 2 bytes; a rank in the thousands needs 2.0's 4.
  const bool v2 = header.size() + 1 + 64 > 0xffff;
  const size_t prefix = v2 ? 12 : 10;
  const size_t unpadded = prefix + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string out(kMagic);
  out += v2 ? '\x02' : '\x01';
  out += '\x00';
  for (size_t i = 0; i < (v2 ? 4u : 2u); ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  out += header;
  out.append(static_cast<const char*>(tensor.raw_data()), tensor.nbytes());
  return out;
}

Status write_npy(const std::filesystem::path& path, const Tensor& tensor) {
  std::string bytes;
  try {
    bytes = serialize_npy(tensor);
  } catch (const Error& e) {
    return e.status();
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return io_error("cannot write '" + path.string() + "'");
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) return io_error("failed writing '" + path.string() + "'");
  return Status::Ok();
}

}  // namespace deskml
