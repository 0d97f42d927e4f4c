// Reads ONNX files (ModelProto, TensorProto, SequenceProto, OptionalProto) into
// deskml's graph IR and tensors. This folder is the only place protobuf types exist.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

#include "graph/graph.hpp"

namespace deskml::onnx_import {

struct LoadOptions {
  // Upper bounds on untrusted bytes: protobuf cannot represent more than 2 GiB
  // in one message, and external data larger than this is refused.
  uint64_t max_model_bytes = (uint64_t{1} << 31) - 1;
  uint64_t max_external_bytes = uint64_t{16} << 30;
  int max_subgraph_depth = 32;
  // When set, receives the external data files the model's tensors were read from
  // (a plan cache keyed by the model file alone must not stand for those).
  std::vector<std::filesystem::path>* external_files = nullptr;
};

// Loads a model file; external data is resolved relative to its folder and may never leave it.
Result<graph::Model> load_model(const std::filesystem::path& path, const LoadOptions& options = {});
// Loads a model from memory. `base_dir` is where external data lives; empty forbids external data.
Result<graph::Model> load_model_from_bytes(std::string_view bytes, const std::filesystem::path& base_dir,
                                           const LoadOptions& options = {});

// Reads a serialized TensorProto, SequenceProto or OptionalProto (as ONNX's
// backend test cases store them); `expected` says which of the three it is.
Result<Value> load_value_file(const std::filesystem::path& path, const graph::ValueType& expected);

}  // namespace deskml::onnx_import
