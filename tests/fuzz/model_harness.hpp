// The work one fuzz input does, shared by the libFuzzer target and the unit test
// that replays tests/fuzz/regressions: bytes -> model -> session -> one run on
// zero-filled inputs. Every failure must come back as a Status; a crash, a hang
// or a sanitizer report is the bug.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

#include "onnx/model_loader.hpp"
#include "runtime/session.hpp"

namespace deskml::fuzz {

struct HarnessLimits {
  uint64_t max_model_bytes = uint64_t{1} << 20;
  int max_subgraph_depth = 16;
  // Runs only models whose inputs are fully static and this small in total, so
  // one input stays well under the fuzzer's time and memory limits.
  int64_t max_input_elements = 100000;
  size_t max_nodes_to_run = 256;
  // A Loop's trip count is data: without a deadline one input could spin for ever.
  std::chrono::milliseconds run_time_limit{2000};
};

enum class HarnessStage { kLoadFailed, kCreateFailed, kNotRun, kRunFailed, kRan };

struct HarnessResult {
  HarnessStage stage = HarnessStage::kLoadFailed;
  Status status;  // the failure, when stage is k*Failed
};

inline size_t count_nodes(const graph::Graph& g) {
  size_t n = g.nodes.size();
  for (const auto& node : g.nodes) {
    for (const auto& [_, attr] : node.attributes) {
      if (const auto* sub = std::get_if<graph::GraphPtr>(&attr)) n += count_nodes(**sub);
      if (const auto* subs = std::get_if<std::vector<graph::GraphPtr>>(&attr)) {
        for (const auto& s : *subs) n += count_nodes(*s);
      }
    }
  }
  return n;
}

inline HarnessResult exercise_model_bytes(std::string_view bytes, const HarnessLimits& limits = {}) {
  HarnessResult result;
  onnx_import::LoadOptions load_options;
  load_options.max_model_bytes = limits.max_model_bytes;
  load_options.max_subgraph_depth = limits.max_subgraph_depth;
  // An empty base folder: external data must be refused, never read.
  auto model = onnx_import::load_model_from_bytes(bytes, {}, load_options);
  if (!model.ok()) {
    result.status = model.status();
    return result;
  }
  const size_t nodes = count_nodes(model->graph);
  runtime::SessionOptions session_options;
  session_options.threads = 1;
  auto session = runtime::Session::create(std::move(model).value(), session_options);
  if (!session.ok()) {
    result.stage = HarnessStage::kCreateFailed;
    result.status = session.status();
    return result;
  }
  result.stage = HarnessStage::kNotRun;
  if (nodes > limits.max_nodes_to_run) return result;

  const auto& g = (*session)->model().graph;
  runtime::NamedValues feeds;
  int64_t total = 0;
  for (const auto& in : (*session)->inputs()) {
    if (g.initializers.count(in.name)) continue;  // has a default
    if (in.type.kind == graph::ValueType::Kind::kOptional) continue;
    if (in.type.kind != graph::ValueType::Kind::kTensor || !in.type.shape) return result;
    if (in.type.dtype == DataType::kUndefined) return result;
    Shape shape;
    for (const auto& d : *in.type.shape) {
      if (!d.known()) return result;
      shape.push_back(d.value);
    }
    int64_t numel = 0;
    try {
      numel = shape_numel(shape);
    } catch (const Error&) {
      return result;
    }
    total += numel;
    if (total > limits.max_input_elements) return result;
    feeds.emplace_back(in.name, Value::from_tensor(Tensor::zeros(in.type.dtype, shape)));
  }
  runtime::RunOptions run_options;
  run_options.deadline = std::chrono::steady_clock::now() + limits.run_time_limit;
  auto outputs = (*session)->run(feeds, run_options);
  if (!outputs.ok()) {
    result.stage = HarnessStage::kRunFailed;
    result.status = outputs.status();
    return result;
  }
  result.stage = HarnessStage::kRan;
  return result;
}

}  // namespace deskml::fuzz
