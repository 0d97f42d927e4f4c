#include "server/tensor_json.hpp"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

namespace deskml::server {
namespace {

using nlohmann::json;

static_assert(std::endian::native == std::endian::little, "the binary tensor format is little-endian");

struct TooDeep {};

// The product of `shape`, or an error when a dim is negative or it passes `max`.
Result<int64_t> checked_numel(const Shape& shape, int64_t max) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return invalid_argument("shape " + shape_to_string(shape) + " has a negative dimension");
    if (d != 0 && n > max / d) {
      return out_of_range("shape " + shape_to_string(shape) + " has more than " + std::to_string(max) + " elements");
    }
    n *= d;
  }
  return n;
}

template <typename T>
Status read_element(const json& v, T& out) {
  if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) return invalid_argument("expected a string");
    out = v.get_ref<const std::string&>();
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) return invalid_argument("expected true or false");
    out = v.get<bool>();
  } else if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
    if (!v.is_number()) return invalid_argument("expected a number");
    out = T(v.get<float>());
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) return invalid_argument("expected a number");
    out = v.get<T>();
  } else {
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return invalid_argument("value out of range");
      out = static_cast<T>(u);
    } else if (v.is_number_integer()) {
      const int64_t i = v.get<int64_t>();
      if constexpr (std::is_unsigned_v<T>) {
        if (i < 0) return invalid_argument("value out of range");
        if (static_cast<uint64_t>(i) > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
          return invalid_argument("value out of range");
        }
      } else {
        if (i < std::numeric_limits<T>::min() || i > std::numeric_limits<T>::max()) {
          return invalid_argument("value out of range");
        }
      }
      out = static_cast<T>(i);
    } else {
      return invalid_argument("expected an integer");
    }
  }
  return Status::Ok();
}

// Fills `out` from `data`, flattening nested arrays in row-major order.
template <typename T>
Status fill_from_json(const json& data, T* out, int64_t numel, int64_t& pos) {
  if (data.is_array()) {
    for (const auto& v : data) DESKML_RETURN_IF_ERROR(fill_from_json(v, out, numel, pos));
    return Status::Ok();
  }
  if (pos >= numel) return invalid_argument("more data elements than the shape holds");
  Status st = read_element(data, out[pos]);
  if (!st.ok()) return invalid_argument("data element " + std::to_string(pos) + ": " + st.message());
  ++pos;
  return Status::Ok();
}

Status fill_from_binary(Tensor& t, std::string_view bytes) {
  const int64_t n = t.numel();
  if (t.dtype() == DataType::kString) {
    std::string* out = t.data<std::string>();
    size_t off = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (bytes.size() - off < 4) return invalid_argument("binary BYTES data ends inside element " + std::to_string(i));
      uint32_t len;
      std::memcpy(&len, bytes.data() + off, 4);
      off += 4;
      if (bytes.size() - off < len)
        return invalid_argument("binary BYTES element " + std::to_string(i) + " is cut short");
      out[i].assign(bytes.data() + off, len);
      off += len;
    }
    if (off != bytes.size()) return invalid_argument("binary BYTES data is longer than its elements");
    return Status::Ok();
  }
  if (bytes.size() != t.nbytes()) {
    return invalid_argument("binary_data_size is " + std::to_string(bytes.size()) + " bytes, the shape needs " +
                            std::to_string(t.nbytes()));
  }
  if (t.dtype() == DataType::kBool) {
    for (unsigned char c : bytes) {
      if (c > 1) return invalid_argument("a BOOL byte is neither 0 nor 1");
    }
  }
  if (!bytes.empty()) std::memcpy(t.raw_data(), bytes.data(), bytes.size());
  return Status::Ok();
}

}  // namespace

Result<json> parse_json(std::string_view text, int max_depth) {
  const json::parser_callback_t limit = [max_depth](int depth, json::parse_event_t, json&) {
    if (depth > max_depth) throw TooDeep{};
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), limit);
  } catch (const TooDeep&) {
    return invalid_argument("JSON nested deeper than " + std::to_string(max_depth) + " levels");
  } catch (const json::exception& e) {
    return invalid_argument(std::string("malformed JSON: ") + e.what());
  }
}

Result<Tensor> decode_input(const json& input, std::string_view& binary, const TensorLimits& limits) {
  if (!input.is_object()) return invalid_argument("an input must be a JSON object");
  const auto name_it = input.find("name");
  if (name_it == input.end() || !name_it->is_string()) return invalid_argument("an input has no \"name\"");
  const std::string& name = name_it->get_ref<const std::string&>();
  auto fail = [&](const std::string& why) -> Status { return invalid_argument("input '" + name + "': " + why); };

  const auto dt_it = input.find("datatype");
  if (dt_it == input.end() || !dt_it->is_string()) return fail("no \"datatype\"");
  auto dtype = dtype_from_name(dt_it->get_ref<const std::string&>());
  if (!dtype.ok() || *dtype == DataType::kUndefined) return fail("unknown datatype " + dt_it->dump());

  const auto shape_it = input.find("shape");
  if (shape_it == input.end() || !shape_it->is_array()) return fail("no \"shape\" array");
  Shape shape;
  for (const auto& d : *shape_it) {
    if (!d.is_number_integer()) return fail("shape entries must be integers");
    shape.push_back(d.get<int64_t>());
  }
  auto numel = checked_numel(shape, limits.max_elements);
  if (!numel.ok()) return fail(numel.status().message());

  Tensor t(*dtype, shape);
  std::optional<int64_t> binary_size;
  if (const auto p = input.find("parameters"); p != input.end()) {
    if (!p->is_object()) return fail("\"parameters\" must be an object");
    if (const auto b = p->find("binary_data_size"); b != p->end()) {
      if (!b->is_number_integer() || b->get<int64_t>() < 0)
        return fail("binary_data_size must be a non-negative integer");
      binary_size = b->get<int64_t>();
    }
  }
  const auto data_it = input.find("data");
  if (binary_size) {
    if (data_it != input.end()) return fail("has both \"data\" and binary_data_size");
    if (static_cast<uint64_t>(*binary_size) > binary.size()) {
      return fail("binary_data_size " + std::to_string(*binary_size) + " runs past the end of the body");
    }
    Status st = fill_from_binary(t, binary.substr(0, static_cast<size_t>(*binary_size)));
    if (!st.ok()) return fail(st.message());
    binary.remove_prefix(static_cast<size_t>(*binary_size));
    return t;
  }
  if (data_it == input.end()) return fail("no \"data\" (and no binary_data_size)");
  int64_t pos = 0;
  Status st;
  try {
    st = dispatch_all(*dtype, "input", [&](auto tag) -> Status {
      using T = decltype(tag);
      return fill_from_json<T>(*data_it, t.data<T>(), *numel, pos);
    });
  } catch (const Error& e) {
    st = e.status();
  }
  if (!st.ok()) return fail(st.message());
  if (pos != *numel) {
    return fail(std::to_string(pos) + " data elements for shape " + shape_to_string(shape) + " (" +
                std::to_string(*numel) + ")");
  }
  return t;
}

json tensor_to_json_data(const Tensor& t) {
  json data = json::array();
  if (t.numel() == 0) return data;
  dispatch_all(t.dtype(), "output", [&](auto tag) {
    using T = decltype(tag);
    const T* p = t.data<T>();
    auto& arr = data.get_ref<json::array_t&>();
    arr.reserve(static_cast<size_t>(t.numel()));
    for (int64_t i = 0; i < t.numel(); ++i) {
      if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
        arr.emplace_back(static_cast<float>(p[i]));
      } else {
        arr.emplace_back(p[i]);
      }
    }
  });
  return data;
}

size_t append_tensor_binary(const Tensor& t, std::string& out) {
  const size_t start = out.size();
  if (t.dtype() == DataType::kString) {
    for (const std::string& s : t.values<std::string>()) {
      const auto len = static_cast<uint32_t>(s.size());
      out.append(reinterpret_cast<const char*>(&len), 4);
      out.append(s);
    }
  } else if (t.nbytes() > 0) {
    out.append(static_cast<const char*>(t.raw_data()), t.nbytes());
  }
  return out.size() - start;
}

}  // namespace deskml::server
