#include "onnx/external_data.hpp"

#include <system_error>

namespace deskml::onnx_import {

namespace fs = std::filesystem;

Result<fs::path> resolve_external_location(const fs::path& base_dir, const std::string& location) {
  if (base_dir.empty()) return invalid_model("external data '" + location + "' is not allowed for in-memory models");
  if (location.empty()) return invalid_model("external data with an empty location");
  if (location.find('\0') != std::string::npos) return invalid_model("external data location contains a NUL byte");
  const fs::path rel(location);
  if (rel.is_absolute() || rel.has_root_name() || rel.has_root_directory()) {
    return invalid_model("external data location '" + location + "' is absolute; it must be inside the model folder");
  }
  for (const auto& part : rel) {
    if (part == "..") {
      return invalid_model("external data location '" + location + "' climbs out of the model folder");
    }
  }
  std::error_code ec;
  const fs::path base = fs::canonical(base_dir, ec);
  if (ec) return io_error("model folder " + base_dir.string() + ": " + ec.message());
  const fs::path target = fs::canonical(base / rel, ec);
  if (ec) return not_found("external data file '" + location + "': " + ec.message());
  // Compare path components: a textual prefix check would accept /models/a-evil for /models/a.
  auto b = base.begin();
  auto t = target.begin();
  for (; b != base.end(); ++b, ++t) {
    if (t == target.end() || *b != *t) {
      return invalid_model("external data location '" + location + "' resolves outside the model folder");
    }
  }
  if (!fs::is_regular_file(target, ec)) {
    return invalid_model("external data location '" + location + "' is not a regular file");
  }
  return target;
}

}  // namespace deskml::onnx_import
