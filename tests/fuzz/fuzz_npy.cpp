// libFuzzer target for the .npy reader: parse must fail cleanly or succeed, and
// whatever parses must survive a serialize -> parse round trip unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parsed = deskml::parse_npy(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!parsed.ok()) {
    if (parsed.status().message().empty()) std::abort();
    return 0;
  }
  const deskml::Tensor& t = *parsed;
  auto again = deskml::parse_npy(deskml::serialize_npy(t));
  if (!again.ok() || again->dtype() != t.dtype() || again->shape() != t.shape() ||
      std::memcmp(again->raw_data(), t.raw_data(), t.nbytes()) != 0) {
    std::fprintf(stderr, "npy round trip changed %s: %s\n", t.description().c_str(),
                 again.ok() ? again->description().c_str() : again.status().to_string().c_str());
    std::abort();
  }
  return 0;
}
