// A model's config.toml: how the runtime serves it. Every field is optional; an
// absent file means the defaults below. docs/MODEL_REPOSITORY.md documents the format.
#pragma once

#include <toml++/toml.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.hpp"
#include "core/status.hpp"

namespace deskml::serving {

// A declared input or output. When present, load checks the model against it.
struct TensorSpec {
  std::string name;
  DataType dtype = DataType::kUndefined;     // kUndefined: not checked
  std::optional<std::vector<int64_t>> dims;  // -1 for a dynamic dim; nullopt: not checked
};

struct ModelConfig {
  // Batching: requests are stacked along axis 0 up to this many rows; 0 runs each
  // request alone (and the model's inputs may then have any first dim).
  int64_t max_batch_size = 0;
  std::vector<int64_t> preferred_batch_sizes;    // a batch of one of these sizes runs without waiting
  std::chrono::microseconds max_queue_delay{0};  // longest a batch waits to fill up
  int instances = 1;                             // sessions serving this model in parallel
  int threads = 0;                               // threads per instance; 0 = the runtime's budget / instances
  int priority = 0;                              // default priority of this model's requests
  size_t max_queue = 1024;                       // queued requests beyond this are refused with ResourceExhausted
  // How long the model stays loaded after its last request; nullopt = the runtime's default.
  // KeepAlive::kForever (-1) never unloads; 0 unloads as soon as it is idle.
  std::optional<std::chrono::milliseconds> keep_alive;
  bool pinned = false;  // loaded when the runtime starts and never evicted
  bool warmup = true;   // run once on zeros at load so the first request pays no JIT cost
  // Keep the optimized plan and packed weights in the runtime's cache folder
  // (<cache_dir>/plans), so the next load of this model maps them (docs/PLAN_CACHE.md).
  bool plan_cache = false;
  int optimization_level = 2;
  std::vector<TensorSpec> inputs, outputs;

  // Result cache (opt-in).
  bool cache = false;
  size_t cache_memory_bytes = size_t{64} << 20;
  size_t cache_disk_bytes = size_t{1} << 30;

  // An ensemble instead of an ONNX model: the [ensemble] table, kept for the pipeline parser.
  std::shared_ptr<const toml::table> ensemble;

  // How database columns feed the inputs (deskml score, feature lookups): the
  // [features] table, kept for features/mapping.hpp; `origin` names the file.
  std::shared_ptr<const toml::table> features;
  std::string origin;
};

// Parses config.toml text; `origin` names it in error messages. Unknown keys are
// errors (a misspelt knob silently ignored is worse than a refusal).
Result<ModelConfig> parse_model_config(std::string_view text, const std::string& origin);
// Reads and parses a file; a missing file gives the defaults.
Result<ModelConfig> load_model_config(const std::filesystem::path& file);

// "forever", "0", "250ms", "30s", "5m", "2h", or a number of seconds.
Result<std::chrono::milliseconds> parse_duration(std::string_view text);

}  // namespace deskml::serving
