// TensorProto <-> Tensor. Internal to the onnx folder.
#pragma once

#include <filesystem>

#include "core/tensor.hpp"
#include "onnx/onnx_pb.h"

namespace deskml::onnx_import {

struct TensorReadLimits {
  std::filesystem::path base_dir;  // for external data; empty forbids it
  uint64_t max_external_bytes = uint64_t{16} << 30;
};

Result<Tensor> tensor_from_proto(const onnx::TensorProto& proto, const TensorReadLimits& limits);

}  // namespace deskml::onnx_import
