#include "serving/tensor_codec.hpp"

#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>

namespace deskml::serving {

// Numeric contents are copied as they lie in memory, which matches the format's
// little-endian byte order only on little-endian hosts.
static_assert(std::endian::native == std::endian::little, "tensor_codec assumes a little-endian host");

namespace {

constexpr char kMagic[4] = {'D', 'K', 'T', '1'};
constexpr uint32_t kMaxRank = 64;

template <typename T>
void put_int(const ByteSink& sink, T value) {
  sink(&value, sizeof value);
}

class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}

  size_t remaining() const { return bytes_.size() - pos_; }

  template <typename T>
  bool read_int(T& out) {
    if (remaining() < sizeof(T)) return false;
    std::memcpy(&out, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }

  bool read_bytes(size_t n, std::string_view& out) {
    if (remaining() < n) return false;
    out = bytes_.substr(pos_, n);
    pos_ += n;
    return true;
  }

 private:
  std::string_view bytes_;
  size_t pos_ = 0;
};

Status malformed(const std::string& what) { return invalid_argument("malformed tensor encoding: " + what); }

Result<Tensor> read_tensor(Reader& in) {
  int32_t dtype_value = 0;
  uint32_t rank = 0;
  if (!in.read_int(dtype_value) || !in.read_int(rank)) return malformed("truncated tensor header");
  if (dtype_value == 0) {
    if (rank != 0) return malformed("an undefined tensor with dims");
    return Tensor();
  }
  auto dtype = dtype_from_onnx(dtype_value);
  if (!dtype.ok()) return malformed("unknown dtype " + std::to_string(dtype_value));
  if (rank > kMaxRank) return malformed("rank " + std::to_string(rank));
  if (in.remaining() / sizeof(int64_t) < rank) return malformed("truncated dims");

  Shape shape(rank);
  bool has_zero = false;
  for (auto& d : shape) {
    (void)in.read_int(d);
    if (d < 0 || d > kMaxTensorElements) return malformed("dimension " + std::to_string(d));
    has_zero = has_zero || d == 0;
  }
  int64_t numel = has_zero ? 0 : 1;
  if (!has_zero) {
    for (int64_t d : shape) {
      if (numel > kMaxTensorElements / d) return malformed("too many elements");
      numel *= d;
    }
  }
  const auto count = static_cast<size_t>(numel);

  if (*dtype == DataType::kString) {
    // Each string costs at least its 8-byte length, so this bounds the allocation.
    if (in.remaining() / sizeof(uint64_t) < count) return malformed("truncated string contents");
    Tensor t(*dtype, std::move(shape));
    auto* strings = t.data<std::string>();
    for (size_t i = 0; i < count; ++i) {
      uint64_t length = 0;
      std::string_view bytes;
      if (!in.read_int(length) || length > in.remaining() || !in.read_bytes(static_cast<size_t>(length), bytes)) {
        return malformed("truncated string");
      }
      strings[i].assign(bytes);
    }
    return t;
  }

  const size_t element = dtype_size(*dtype);
  if (in.remaining() / element < count) return malformed("truncated contents");
  std::string_view bytes;
  (void)in.read_bytes(count * element, bytes);
  if (*dtype == DataType::kBool) {
    for (char c : bytes) {
      if (c != 0 && c != 1) return malformed("a bool that is neither 0 nor 1");
    }
  }
  Tensor t(*dtype, std::move(shape));
  if (!bytes.empty()) std::memcpy(t.raw_data(), bytes.data(), bytes.size());
  return t;
}

}  // namespace

void write_named_tensor(std::string_view name, const Tensor& tensor, const ByteSink& sink) {
  put_int(sink, static_cast<uint32_t>(name.size()));
  sink(name.data(), name.size());
  put_int(sink, static_cast<int32_t>(tensor.dtype()));
  if (!tensor.defined()) {
    put_int(sink, uint32_t{0});
    return;
  }
  put_int(sink, static_cast<uint32_t>(tensor.rank()));
  for (int64_t d : tensor.shape()) put_int(sink, d);
  if (tensor.dtype() == DataType::kString) {
    for (const std::string& s : tensor.values<std::string>()) {
      put_int(sink, static_cast<uint64_t>(s.size()));
      sink(s.data(), s.size());
    }
  } else if (tensor.nbytes() > 0) {
    sink(tensor.raw_data(), tensor.nbytes());
  }
}

std::string encode_tensors(const Tensors& tensors) {
  std::string out;
  const ByteSink sink = [&out](const void* data, size_t size) { out.append(static_cast<const char*>(data), size); };
  sink(kMagic, sizeof kMagic);
  put_int(sink, static_cast<uint32_t>(tensors.size()));
  for (const auto& [name, tensor] : tensors) write_named_tensor(name, tensor, sink);
  return out;
}

Result<Tensors> decode_tensors(std::string_view bytes) {
  Reader in(bytes);
  std::string_view magic;
  uint32_t count = 0;
  if (!in.read_bytes(sizeof kMagic, magic) || magic != std::string_view(kMagic, sizeof kMagic)) {
    return malformed("bad header");
  }
  if (!in.read_int(count)) return malformed("truncated header");
  // The smallest record is a 4-byte name length, a dtype and a rank: 12 bytes.
  if (in.remaining() / 12 < count) return malformed("tensor count " + std::to_string(count));

  Tensors out;
  out.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t name_length = 0;
    std::string_view name;
    if (!in.read_int(name_length) || !in.read_bytes(name_length, name)) return malformed("truncated name");
    DESKML_ASSIGN_OR_RETURN(Tensor tensor, read_tensor(in));
    out.emplace_back(std::string(name), std::move(tensor));
  }
  if (in.remaining() != 0) return malformed(std::to_string(in.remaining()) + " trailing bytes");
  return out;
}

}  // namespace deskml::serving
