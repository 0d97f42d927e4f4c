// Resolving ONNX external-data locations without ever leaving the model folder.
#pragma once

#include <filesystem>
#include <string>

#include "core/status.hpp"

namespace deskml::onnx_import {

// Returns the canonical path of `location` inside `base_dir`. Rejects empty,
// absolute and parent-relative locations, and anything whose real path
// (symlinks resolved) is outside base_dir's real path.
Result<std::filesystem::path> resolve_external_location(const std::filesystem::path& base_dir,
                                                        const std::string& location);

}  // namespace deskml::onnx_import
