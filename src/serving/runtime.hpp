// The serving runtime: what an app embeds (and what the server and bindings
// wrap). Submit from any thread and get a future, a callback or a coroutine
// awaitable; the runtime loads models when first used, batches requests, runs
// them on the engine's thread budget, caches results where configured, and
// unloads models that stay idle past their keep-alive. docs/SERVING.md.
#pragma once

#include <atomic>
#include <chrono>
#include <coroutine>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.hpp"
#include "graph/graph.hpp"
#include "serving/metrics.hpp"
#include "serving/model_config.hpp"
#include "serving/request.hpp"

namespace deskml::serving {

enum class ModelState { kLoading, kReady, kUnloading, kUnavailable };
const char* model_state_name(ModelState s);  // "LOADING", "READY", "UNLOADING", "UNAVAILABLE"

struct ModelStatus {
  std::string name;
  int64_t version = 0;  // 0 when the model has no version loaded or known
  ModelState state = ModelState::kUnavailable;
  std::string reason;        // why UNAVAILABLE ("not loaded", a load error, ...)
  std::string reload_error;  // a newer file that failed to load while this one serves
  bool ensemble = false;
  bool pinned = false;
  size_t resident_bytes = 0;
  double load_ms = 0;
  size_t outstanding = 0;  // accepted and not yet answered (waiting for a load, queued, running)
  size_t queued = 0;       // waiting in the version's queue
};

struct ModelMetadata {
  std::string name;
  std::vector<int64_t> versions;  // available in the repository
  std::vector<graph::ValueInfo> inputs, outputs;
  int64_t max_batch_size = 0;
};

struct RuntimeOptions {
  std::filesystem::path repository;  // empty: only models added with add_model_file()
  int threads = 0;                   // the thread budget shared by all models; 0 = physical cores
  size_t memory_budget_bytes = 0;    // LRU eviction above this; 0 = half the machine's memory
  std::chrono::milliseconds default_keep_alive = std::chrono::minutes(5);
  std::chrono::milliseconds poll_interval = std::chrono::seconds(2);  // hot reload; 0 = off
  std::filesystem::path cache_dir;  // result caches; empty = $XDG_CACHE_HOME/deskml or ~/.cache/deskml
  bool load_pinned = true;          // load pinned models when the runtime starts
};

class Runtime {
 public:
  using Callback = std::function<void(Result<InferResponse>)>;

  static Result<std::unique_ptr<Runtime>> create(RuntimeOptions options);
  // Stops taking requests, answers those still waiting for a load with
  // Unavailable, lets queued ones finish, and unloads everything.
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Serves one file as version 1 of `name` (no repository folder needed).
  Status add_model_file(const std::string& name, const std::filesystem::path& model, ModelConfig config);

  // Submits a request. `done` is called exactly once, on a runtime thread, or on
  // the caller's thread when the request fails before it is queued. It must be
  // quick: it runs on a worker.
  void infer_async(const std::string& model, Tensors inputs, InferOptions options, Callback done);
  std::future<Result<InferResponse>> infer(const std::string& model, Tensors inputs, InferOptions options = {});
  // Blocks the calling thread; for tools and tests.
  Result<InferResponse> infer_sync(const std::string& model, Tensors inputs, InferOptions options = {});

  // `co_await runtime.infer_co(...)` gives a Result<InferResponse>; the coroutine
  // resumes on a runtime thread.
  class Awaitable;
  Awaitable infer_co(const std::string& model, Tensors inputs, InferOptions options = {});

  // Loads a model (newest version unless given) and waits until it is READY or failed.
  // Loading a model that is loaded already reports its state.
  Status load(const std::string& model, std::optional<int64_t> version = std::nullopt);
  // Unloads a model's versions (or one); queued requests finish first. Waits
  // until the memory is given back.
  Status unload(const std::string& model, std::optional<int64_t> version = std::nullopt);
  // Every model in the repository with its state (one row per loaded version,
  // one UNAVAILABLE "not loaded" row for a model with none).
  std::vector<ModelStatus> models();
  Result<ModelStatus> model_status(const std::string& model, std::optional<int64_t> version = std::nullopt);
  // Loads the model if needed.
  Result<ModelMetadata> metadata(const std::string& model, std::optional<int64_t> version = std::nullopt);

  Metrics& metrics();
  int threads() const;
  // Estimated memory held by loaded models.
  size_t resident_bytes();

  struct State;

 private:
  explicit Runtime(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

class Runtime::Awaitable {
 public:
  Awaitable(Runtime& rt, std::string model, Tensors inputs, InferOptions options)
      : rt_(rt), model_(std::move(model)), inputs_(std::move(inputs)), options_(std::move(options)) {}
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    rt_.infer_async(model_, std::move(inputs_), std::move(options_), [this, h](Result<InferResponse> r) {
      result_.emplace(std::move(r));
      // Whoever comes second resumes: the callback when it ran after suspension,
      // await_suspend (by returning false) when the callback ran inline.
      if (raced_.exchange(true, std::memory_order_acq_rel)) h.resume();
    });
    return !raced_.exchange(true, std::memory_order_acq_rel);
  }
  Result<InferResponse> await_resume() { return std::move(*result_); }

 private:
  Runtime& rt_;
  std::string model_;
  Tensors inputs_;
  InferOptions options_;
  std::optional<Result<InferResponse>> result_;
  std::atomic<bool> raced_{false};
};

inline Runtime::Awaitable Runtime::infer_co(const std::string& model, Tensors inputs, InferOptions options) {
  return Awaitable(*this, model, std::move(inputs), std::move(options));
}

}  // namespace deskml::serving
