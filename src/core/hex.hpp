// Bytes as lower-case hexadecimal, two digits a byte (digests, tokens, keys).
#pragma once

#include <cstddef>
#include <string>

namespace deskml {

inline std::string to_hex(const void* bytes, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    const auto b = static_cast<const unsigned char*>(bytes)[i];
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

}  // namespace deskml
