// TensorProto <-> Tensor. Internal to the onnx folder.
#pragma once

#include <filesystem>
#include <vector>

#include "core/tensor.hpp"
#include "onnx/onnx_pb.h"

namespace deskml::onnx_import {

struct TensorReadLimits {
  std::filesystem::path base_dir;  // for external data; empty forbids it
  uint64_t max_external_bytes = uint64_t{16} << 30;
  std::vector<std::filesystem::path>* files_read = nullptr;  // when set, receives each external file read
};

Result<Tensor> tensor_from_proto(const onnx::TensorProto& proto, const TensorReadLimits& limits);
// The same, except that a large tensor's raw data is taken over rather than
// copied: `proto` is left without it.
Result<Tensor> tensor_from_proto(onnx::TensorProto& proto, const TensorReadLimits& limits);

}  // namespace deskml::onnx_import
