#include "server/infer_json_fast.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <type_traits>

namespace deskml::server {
namespace {

// A JSON number as nlohmann's lexer classifies it: an integer with a minus sign is
// number_integer (int64), one without is number_unsigned (uint64), anything with a
// fraction or an exponent is number_float (double).
struct Number {
  enum Kind { kNegative, kUnsigned, kFloat } kind = kUnsigned;
  int64_t i = 0;
  uint64_t u = 0;
  double d = 0;

  bool integer() const { return kind != kFloat; }
  // nlohmann's get<int64_t>() on an integer; nullopt where the DOM path would wrap an
  // unsigned value past INT64_MAX (left to it).
  std::optional<int64_t> as_int64() const {
    if (kind == kNegative) return i;
    if (kind == kUnsigned && u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return static_cast<int64_t>(u);
    }
    return std::nullopt;
  }
  // nlohmann's get<F>() for a floating-point F: a static_cast of the stored value.
  template <typename F>
  F as() const {
    switch (kind) {
      case kNegative:
        return static_cast<F>(i);
      case kUnsigned:
        return static_cast<F>(u);
      case kFloat:
        break;
    }
    return static_cast<F>(d);
  }
};

// read_element (tensor_json.cpp) for a number; false where it would fail.
template <typename T>
bool convert(const Number& n, T& out) {
  if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
    out = T(n.as<float>());
  } else if constexpr (std::is_floating_point_v<T>) {
    out = n.as<T>();
  } else {
    static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
    if (n.kind == Number::kUnsigned) {
      if (n.u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return false;
      out = static_cast<T>(n.u);
    } else if (n.kind == Number::kNegative) {
      if constexpr (std::is_unsigned_v<T>) {
        if (n.i != 0) return false;  // "-0" is the integer 0
      } else {
        if (n.i < std::numeric_limits<T>::min() || n.i > std::numeric_limits<T>::max()) return false;
      }
      out = static_cast<T>(n.i);
    } else {
      return false;
    }
  }
  return true;
}

// Clinger's fast path: a decimal of at most 15 significant digits (exact in a double)
// scaled by at most 10^22 (also exact) is one correctly rounded multiplication or
// division, so it equals what strtod and std::from_chars give. False: not that case.
bool small_decimal(const char* s, const char* end, double& out) {
  static constexpr double kPow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                      1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  const bool negative = *s == '-';
  if (negative) ++s;
  uint64_t w = 0;
  int digits = 0, exp10 = 0;
  bool fraction = false;
  for (; s != end && *s != 'e' && *s != 'E'; ++s) {
    if (*s == '.') {
      fraction = true;
      continue;
    }
    if (fraction) --exp10;
    if (w == 0 && *s == '0') continue;  // leading zeros
    if (++digits > 15) return false;
    w = w * 10 + static_cast<uint64_t>(*s - '0');
  }
  if (s != end) {  // the exponent (the token is well formed: digits follow)
    ++s;
    const bool minus = *s == '-';
    if (*s == '+' || *s == '-') ++s;
    int x = 0;
    for (; s != end; ++s) {
      if (x > 100000) return false;
      x = x * 10 + (*s - '0');
    }
    exp10 += minus ? -x : x;
  }
  double d = 0;
  if (w != 0) {
    if (exp10 < -22 || exp10 > 22) return false;
    d = static_cast<double>(w);
    d = exp10 < 0 ? d / kPow10[-exp10] : d * kPow10[exp10];
  }
  out = negative ? -d : d;
  return true;
}

// A recursive-descent JSON reader over the text. Every method returns false where the
// text is not JSON or not something this fast path handles; the caller then gives up.
class Reader {
 public:
  Reader(std::string_view text, int max_depth)
      : p_(text.data()), end_(text.data() + text.size()), max_open_(max_depth - 1) {}

  void ws() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }
  bool eat(char c) {
    ws();
    if (p_ != end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  bool at_end() {
    ws();
    return p_ == end_;
  }
  // The next significant character, or 0 at the end.
  char peek() {
    ws();
    return p_ != end_ ? *p_ : '\0';
  }

  // A string of printable ASCII without escapes (anything else: false).
  bool string(std::string_view& out) {
    if (!eat('"')) return false;
    const char* start = p_;
    while (p_ != end_) {
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        out = std::string_view(start, static_cast<size_t>(p_ - start));
        ++p_;
        return true;
      }
      if (c < 0x20 || c >= 0x80 || c == '\\') return false;
      ++p_;
    }
    return false;
  }

  bool number(Number& n) {
    ws();
    const char* start = p_;
    if (p_ != end_ && *p_ == '-') ++p_;
    if (p_ == end_) return false;
    if (*p_ == '0') {
      ++p_;
    } else if (*p_ >= '1' && *p_ <= '9') {
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    } else {
      return false;
    }
    bool integer = true;
    if (p_ != end_ && *p_ == '.') {
      integer = false;
      if (!digits()) return false;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      integer = false;
      if (p_ + 1 != end_ && (p_[1] == '+' || p_[1] == '-')) ++p_;
      if (!digits()) return false;
    }
    std::from_chars_result r;
    if (integer && *start == '-') {
      n.kind = Number::kNegative;
      r = std::from_chars(start, p_, n.i);
    } else if (integer) {
      n.kind = Number::kUnsigned;
      r = std::from_chars(start, p_, n.u);
    } else {
      // Correctly rounded, like the strtod nlohmann calls; out of range (which strtod
      // turns into inf or 0) is left to the DOM path.
      n.kind = Number::kFloat;
      if (small_decimal(start, p_, n.d)) return true;
      r = std::from_chars(start, p_, n.d);
    }
    return r.ec == std::errc() && r.ptr == p_;
  }

  bool literal(std::string_view word) {
    ws();
    if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) return false;
    p_ += word.size();
    return true;
  }

  // {"key": value, ...}: member(key) reads each value.
  template <typename Fn>
  bool object(Fn&& member) {
    if (!eat('{') || ++depth_ > max_open_) return false;
    if (!eat('}')) {
      do {
        std::string_view key;
        if (!string(key) || !eat(':') || !member(key)) return false;
      } while (eat(','));
      if (!eat('}')) return false;
    }
    --depth_;
    return true;
  }

  // [value, ...]: element() reads each value.
  template <typename Fn>
  bool array(Fn&& element) {
    if (!eat('[') || ++depth_ > max_open_) return false;
    if (!eat(']')) {
      do {
        if (!element()) return false;
      } while (eat(','));
      if (!eat(']')) return false;
    }
    --depth_;
    return true;
  }

  // Any value, checked and dropped.
  bool skip() {
    switch (peek()) {
      case '{':
        return object([this](std::string_view) { return skip(); });
      case '[':
        return array([this] { return skip(); });
      case '"': {
        std::string_view s;
        return string(s);
      }
      case 't':
        return literal("true");
      case 'f':
        return literal("false");
      case 'n':
        return literal("null");
      default: {
        Number n;
        return number(n);
      }
    }
  }

  // `flag` in infer_codec.cpp: true/false, or an integer (non-zero: true); any other
  // value counts as false.
  bool flag(bool& out) {
    const char c = peek();
    if (c == 't' || c == 'f') {
      out = c == 't';
      return literal(out ? "true" : "false");
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      Number n;
      if (!number(n)) return false;
      out = (n.kind == Number::kUnsigned && n.u != 0) || (n.kind == Number::kNegative && n.i != 0);
      return true;
    }
    out = false;
    return skip();
  }

  // fill_from_json: a value or nested arrays of values, flattened in row-major order.
  template <typename T>
  bool fill(T* out, int64_t numel, int64_t& pos) {
    const char c = peek();
    if (c == '[') return array([&] { return fill(out, numel, pos); });
    if (pos >= numel) return false;
    if constexpr (std::is_same_v<T, bool>) {
      if (c != 't' && c != 'f') return false;
      out[pos] = c == 't';
      if (!literal(out[pos] ? "true" : "false")) return false;
    } else {
      Number n;
      if (!number(n) || !convert(n, out[pos])) return false;
    }
    ++pos;
    return true;
  }

  struct Mark {
    const char* p;
    int depth;
  };
  Mark mark() {
    ws();
    return {p_, depth_};
  }
  Mark seek(Mark m) {
    const Mark here{p_, depth_};
    p_ = m.p;
    depth_ = m.depth;
    return here;
  }

 private:
  bool digits() {
    ++p_;  // past '.', 'e', '+' or '-'
    const char* start = p_;
    while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    return p_ != start;
  }

  const char* p_;
  const char* end_;
  int depth_ = 0;
  // Containers open at once. One below the DOM path's limit, so that whatever this
  // reader accepts is well inside it.
  int max_open_;
};

// checked_numel (tensor_json.cpp) where it succeeds.
std::optional<int64_t> element_count(const Shape& shape, int64_t max) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || (d != 0 && n > max / d)) return std::nullopt;
    n *= d;
  }
  return n;
}

bool read_input(Reader& in, InferRequest& req, const TensorLimits& limits) {
  std::string_view name, datatype;
  Shape shape;
  std::optional<Reader::Mark> data;  // where "data" starts when it came before the shape or datatype
  Tensor tensor;
  int64_t numel = 0, pos = 0;
  enum : unsigned { kName = 1, kDatatype = 2, kShape = 4, kData = 8, kParameters = 16 };
  unsigned seen = 0;
  auto once = [&seen](unsigned bit) {
    if (seen & bit) return false;  // a duplicate key: the DOM keeps the last one
    seen |= bit;
    return true;
  };
  // The tensor, once the datatype and shape are known.
  auto make_tensor = [&]() -> bool {
    auto dtype = dtype_from_name(datatype);
    if (!dtype.ok() || *dtype == DataType::kUndefined || *dtype == DataType::kString) return false;
    const auto n = element_count(shape, limits.max_elements);
    if (!n) return false;
    numel = *n;
    tensor = Tensor(*dtype, shape);
    return true;
  };
  auto fill = [&]() -> bool {
    return dispatch_all(tensor.dtype(), "input", [&](auto tag) -> bool {
      using T = decltype(tag);
      if constexpr (std::is_same_v<T, std::string>) {
        return false;
      } else {
        return in.fill(tensor.data<T>(), numel, pos);
      }
    });
  };
  const bool ok = in.object([&](std::string_view key) {
    if (key == "name") return once(kName) && in.string(name);
    if (key == "datatype") return once(kDatatype) && in.string(datatype);
    if (key == "shape") {
      return once(kShape) && in.array([&] {
        Number n;
        if (!in.number(n) || !n.integer()) return false;
        const auto d = n.as_int64();
        if (!d) return false;
        shape.push_back(*d);
        return true;
      });
    }
    if (key == "data") {
      if (!once(kData)) return false;
      if ((seen & kDatatype) && (seen & kShape)) return make_tensor() && fill();
      data = in.mark();
      return in.skip();
    }
    if (key == "parameters") {
      // Only parameters without binary_data_size (a binary input goes the DOM way).
      return once(kParameters) && in.object([&](std::string_view k) { return k != "binary_data_size" && in.skip(); });
    }
    return in.skip();
  });
  if (!ok || seen != (seen | kName | kDatatype | kShape | kData)) return false;
  if (data) {
    if (!make_tensor()) return false;
    const Reader::Mark after = in.seek(*data);
    if (!fill()) return false;
    in.seek(after);
  }
  if (pos != numel) return false;
  if (serving::find_tensor(req.inputs, name)) return false;
  req.inputs.emplace_back(std::string(name), std::move(tensor));
  return true;
}

bool read_request(Reader& in, InferRequest& req, const TensorLimits& limits) {
  enum : unsigned { kId = 1, kParameters = 2, kInputs = 4, kOutputs = 8 };
  unsigned seen = 0;
  auto once = [&seen](unsigned bit) {
    if (seen & bit) return false;
    seen |= bit;
    return true;
  };
  // Per requested output: its own binary flag when its parameters name one.
  std::vector<std::optional<bool>> output_binary;
  const bool ok = in.object([&](std::string_view key) {
    if (key == "id") {
      std::string_view id;
      if (!once(kId) || !in.string(id)) return false;
      req.id = std::string(id);
      return true;
    }
    if (key == "inputs") {
      return once(kInputs) && in.array([&] { return read_input(in, req, limits); });
    }
    if (key == "parameters") {
      unsigned params = 0;
      return once(kParameters) && in.object([&](std::string_view k) {
        auto first = [&params](unsigned bit) {
          if (params & bit) return false;
          params |= bit;
          return true;
        };
        if (k == "binary_data_output") return first(1) && in.flag(req.binary_outputs);
        if (k == "priority") {
          Number n;
          if (!first(2) || !in.number(n) || !n.integer()) return false;
          const auto v = n.as_int64();
          if (!v || *v < -1000000 || *v > 1000000) return false;
          req.priority = static_cast<int>(*v);
          return true;
        }
        if (k == "timeout") {
          Number n;
          if (!first(4) || !in.number(n) || !n.integer()) return false;
          const auto v = n.as_int64();
          if (!v || *v < 0) return false;
          req.timeout_us = *v;
          return true;
        }
        return in.skip();
      });
    }
    if (key == "outputs") {
      return once(kOutputs) && in.array([&] {
        std::string_view name;
        std::optional<bool> binary;
        unsigned fields = 0;
        auto first = [&fields](unsigned bit) {
          if (fields & bit) return false;
          fields |= bit;
          return true;
        };
        const bool read = in.object([&](std::string_view k) {
          if (k == "name") return first(1) && in.string(name);
          if (k == "parameters") {
            unsigned flags = 0;
            return first(2) && in.object([&](std::string_view p) {
              const unsigned bit = p == "binary_data" ? 1 : p == "binary_data_output" ? 2 : 0;
              if (bit == 0) return in.skip();
              if (flags & bit) return false;
              flags |= bit;
              bool v = false;
              if (!in.flag(v)) return false;
              binary = binary.value_or(false) || v;
              return true;
            });
          }
          return in.skip();
        });
        if (!read || !(fields & 1)) return false;
        req.outputs.push_back({std::string(name), false});
        output_binary.push_back(binary);
        return true;
      });
    }
    if (key == "features") return false;  // a feature lookup goes the DOM way
    return in.skip();
  });
  if (!ok || !in.at_end() || !(seen & kInputs)) return false;
  for (size_t i = 0; i < req.outputs.size(); ++i) {
    req.outputs[i].binary = output_binary[i].value_or(req.binary_outputs);
  }
  return true;
}

// Printable ASCII that JSON leaves as it is.
bool plain(std::string_view s) {
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') return false;
  }
  return true;
}

template <typename T>
void append_integer(std::string& out, T v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<size_t>(r.ptr - buf));
}

void append_double(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[64];  // nlohmann's serializer's number buffer
  const char* end = nlohmann::detail::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<size_t>(end - buf));
}

}  // namespace

std::optional<InferRequest> parse_infer_request_fast(std::string_view json, int max_json_depth,
                                                     const TensorLimits& limits) {
  Reader in(json, max_json_depth);
  InferRequest req;
  try {
    if (!read_request(in, req, limits)) return std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;  // e.g. no memory for a tensor: the DOM path reports it
  }
  return req;
}

void append_json_string(std::string& out, std::string_view s) {
  if (plain(s)) {
    out += '"';
    out += s;
    out += '"';
    return;
  }
  out += nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void append_tensor_json_data(std::string& out, const Tensor& t) {
  out += '[';
  const int64_t n = t.numel();
  if (n > 0) {
    dispatch_all(t.dtype(), "output", [&](auto tag) {
      using T = decltype(tag);
      const T* p = t.data<T>();
      if constexpr (std::is_same_v<T, std::string>) {
        out.reserve(out.size() + static_cast<size_t>(n) * 4);
      } else {
        out.reserve(out.size() + static_cast<size_t>(n) * (std::is_floating_point_v<T> ? 24 : 8));
      }
      for (int64_t i = 0; i < n; ++i) {
        if (i > 0) out += ',';
        if constexpr (std::is_same_v<T, std::string>) {
          append_json_string(out, p[i]);
        } else if constexpr (std::is_same_v<T, bool>) {
          out += p[i] ? "true" : "false";
        } else if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
          append_double(out, static_cast<double>(static_cast<float>(p[i])));
        } else if constexpr (std::is_floating_point_v<T>) {
          append_double(out, static_cast<double>(p[i]));
        } else {
          append_integer(out, p[i]);
        }
      }
    });
  }
  out += ']';
}

}  // namespace deskml::server
