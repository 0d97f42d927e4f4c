// Reading and writing numpy .npy files (format versions 1.0-3.0, little-endian, C order).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "core/tensor.hpp"

namespace deskml {

Result<Tensor> read_npy(const std::filesystem::path& path);
Result<Tensor> parse_npy(std::string_view bytes);
Status write_npy(const std::filesystem::path& path, const Tensor& tensor);
// Throws Error(Unsupported) for dtypes numpy cannot hold (bfloat16, string); write_npy returns that as a Status.
std::string serialize_npy(const Tensor& tensor);

}  // namespace deskml
