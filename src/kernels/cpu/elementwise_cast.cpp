// Elementwise math, part 4: Cast and CastLike. Numbers convert in a parallel
// loop here; strings format like numpy's str() (shortest round-trip digits)
// and parse case-insensitively with the spec's INF/NaN literals.
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <variant>

#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/elementwise_common.hpp"

namespace deskml::kernels::cpu {

namespace {

using namespace ew;

// ONNX Cast for numbers: float -> integer truncates toward zero and saturates
// (NaN -> 0), as Tensor::cast; integer -> integer wraps; x -> bool is x != 0.
template <typename To, typename From>
inline To cast_one(From v) {
  using CF = compute_t<From>;
  const CF c = load_as<CF>(v);
  if constexpr (std::is_same_v<To, bool>) {
    return c != CF{};
  } else if constexpr (kIsHalf<To>) {
    return To(static_cast<float>(c));
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<CF>) {
    return saturate_cast<To>(c);
  } else {
    return static_cast<To>(c);
  }
}

template <typename To, typename From>
inline void cast_chunk(const From* src, To* dst, int64_t lo, int64_t hi) {
  if constexpr (std::is_same_v<To, int64_t> && std::is_floating_point_v<From>) {
    // Blocks whose values all fit in int32 convert through it, which vectorizes.
    for (int64_t b = lo; b < hi; b += kBlock) {
      const int64_t m = std::min(kBlock, hi - b);
      const From* s = src + b;
      int fits = 1;
      for (int64_t j = 0; j < m; ++j) fits &= (s[j] > From(-2147483648.0)) & (s[j] < From(2147483648.0));
      if (fits) {
        for (int64_t j = 0; j < m; ++j) dst[b + j] = static_cast<int64_t>(static_cast<int32_t>(s[j]));
      } else {
        for (int64_t j = 0; j < m; ++j) dst[b + j] = cast_one<To>(s[j]);
      }
    }
  } else {
    for (int64_t i = lo; i < hi; ++i) dst[i] = cast_one<To>(src[i]);
  }
}

template <typename F>
std::string format_float(F v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "INF" : "-INF";
  char buf[64];
  const F a = std::abs(v);
  const bool fixed = a == 0 || (a >= F(1e-4) && a < F(1e16));
  auto res = std::to_chars(buf, buf + sizeof buf, v, fixed ? std::chars_format::fixed : std::chars_format::scientific);
  std::string s(buf, res.ptr);
  if (fixed && s.find('.') == std::string::npos) s += ".0";
  return s;
}

// Half types print their own shortest digits (numpy prints float16(0.1) as "0.1").
template <typename H>
std::string format_half(H h) {
  const float f = static_cast<float>(h);
  if (!std::isfinite(f) || f == 0.0f) return format_float(f);
  char buf[64];
  for (int precision = 0; precision < 9; ++precision) {
    auto res = std::to_chars(buf, buf + sizeof buf, f, std::chars_format::scientific, precision);
    float back = 0;
    std::from_chars(buf, res.ptr, back);
    if (H(back).bits == h.bits) return format_float(back);
  }
  return format_float(f);
}

template <typename T>
std::string to_text(const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v ? "1" : "0";
  } else if constexpr (kIsHalf<T>) {
    return format_half(v);
  } else if constexpr (std::is_floating_point_v<T>) {
    return format_float(v);
  } else {
    return std::to_string(v);
  }
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

template <typename F>
bool parse_float(std::string_view s, F& out) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  if (iequals(s, "nan") || iequals(s, "+nan") || iequals(s, "-nan")) {
    out = std::numeric_limits<F>::quiet_NaN();
    return true;
  }
  if (iequals(s, "inf") || iequals(s, "+inf") || iequals(s, "infinity") || iequals(s, "+infinity")) {
    out = std::numeric_limits<F>::infinity();
    return true;
  }
  if (iequals(s, "-inf") || iequals(s, "-infinity")) {
    out = -std::numeric_limits<F>::infinity();
    return true;
  }
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  auto res = std::from_chars(s.data(), s.data() + s.size(), out);
  // Out-of-range literals saturate to infinity, as strtod does.
  if (res.ec == std::errc::result_out_of_range) {
    out = s.front() == '-' ? -std::numeric_limits<F>::infinity() : std::numeric_limits<F>::infinity();
    return true;
  }
  return res.ec == std::errc() && res.ptr == s.data() + s.size();
}

template <typename To>
bool from_text(const std::string& s, To& out) {
  if constexpr (std::is_same_v<To, float> || std::is_same_v<To, double>) {
    return parse_float(s, out);
  } else if constexpr (kIsHalf<To>) {
    float f;
    if (!parse_float(s, f)) return false;
    out = To(f);
    return true;
  } else {
    if constexpr (std::is_integral_v<To> && !std::is_same_v<To, bool>) {
      // Exact integers first ("9007199254740993" must not go through double).
      std::string_view v = s;
      if (!v.empty() && v.front() == '+') v.remove_prefix(1);
      auto res = std::from_chars(v.data(), v.data() + v.size(), out);
      if (res.ec == std::errc() && res.ptr == v.data() + v.size()) return true;
    }
    double d;
    if (!parse_float(s, d)) return false;
    out = cast_one<To>(d);
    return true;
  }
}

Status cast_to(KernelContext& ctx, const Tensor& x, DataType to) {
  if (to == x.dtype()) {
    ctx.set_output(0, x);
    return Status::Ok();
  }
  Tensor& y = ctx.allocate_output(0, to, x.shape());
  const int64_t n = x.numel();
  if (x.dtype() == DataType::kString) {
    const std::string* src = x.data<std::string>();
    Status status;
    dispatch_all(to, "Cast", [&](auto to_tag) {
      using To = decltype(to_tag);
      if constexpr (!std::is_same_v<To, std::string>) {
        To* dst = y.data<To>();
        for (int64_t i = 0; i < n; ++i) {
          if (!from_text(src[i], dst[i])) {
            status = ctx.error("cannot convert '" + src[i] + "' to " + std::string(dtype_name(to)));
            return;
          }
        }
      }
    });
    return status;
  }
  dispatch_all(x.dtype(), "Cast", [&](auto from_tag) {
    using From = decltype(from_tag);
    if constexpr (!std::is_same_v<From, std::string>) {
      const From* src = x.data<From>();
      dispatch_all(to, "Cast", [&](auto to_tag) {
        using To = decltype(to_tag);
        To* dst = y.data<To>();
        if constexpr (std::is_same_v<To, std::string>) {
          for (int64_t i = 0; i < n; ++i) dst[i] = to_text(src[i]);
        } else {
          parallel_for(n, ctx.threads(), 1, [&](int64_t lo, int64_t hi) {
            if constexpr (std::is_same_v<From, Float16> && std::is_same_v<To, float>) {
              widen_block(src + lo, dst + lo, hi - lo);
            } else if constexpr (std::is_same_v<From, float> && std::is_same_v<To, Float16>) {
              narrow_block(src + lo, dst + lo, hi - lo);
            } else {
              run_best([&] { cast_chunk<To>(src, dst, lo, hi); });
            }
          });
        }
      });
    }
  });
  return Status::Ok();
}

// Cast-1 named the target type with a string ("FLOAT"); later opsets use the TensorProto number.
Result<DataType> cast_target(const KernelContext& ctx) {
  const auto& node = ctx.node();
  auto it = node.attributes.find("to");
  if (it == node.attributes.end()) return ctx.error("missing attribute 'to'");
  if (const auto* name = std::get_if<std::string>(&it->second)) {
    static const std::pair<const char*, DataType> kNames[] = {
        {"FLOAT", DataType::kFloat32},     {"DOUBLE", DataType::kFloat64}, {"FLOAT16", DataType::kFloat16},
        {"BFLOAT16", DataType::kBFloat16}, {"INT8", DataType::kInt8},      {"UINT8", DataType::kUInt8},
        {"INT16", DataType::kInt16},       {"UINT16", DataType::kUInt16},  {"INT32", DataType::kInt32},
        {"UINT32", DataType::kUInt32},     {"INT64", DataType::kInt64},    {"UINT64", DataType::kUInt64},
        {"BOOL", DataType::kBool},         {"STRING", DataType::kString}};
    for (const auto& [n, t] : kNames) {
      if (iequals(*name, n)) return t;
    }
    return ctx.error("unknown target type '" + *name + "'");
  }
  auto to = dtype_from_onnx(static_cast<int32_t>(node.attr_int("to", 0)));
  if (!to.ok()) return to.status().with_context(node.label());
  return *to;
}

Status cast_kernel(KernelContext& ctx) {
  DESKML_ASSIGN_OR_RETURN(DataType to, cast_target(ctx));
  return cast_to(ctx, ctx.required_input(0), to);
}

Status cast_like_kernel(KernelContext& ctx) {
  return cast_to(ctx, ctx.required_input(0), ctx.required_input(1).dtype());
}

}  // namespace

void register_elementwise_cast_kernels(KernelRegistry& r) {
  r.add("Cast", 1, INT_MAX, types::kAll, cast_kernel);
  r.add("CastLike", 15, INT_MAX, types::kAll, cast_like_kernel);
}

}  // namespace deskml::kernels::cpu
