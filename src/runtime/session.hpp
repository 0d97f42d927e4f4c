// Session: a loaded, planned model ready to run. Thread-safe: run() may be
// called from several threads at once (each call has its own frame).
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "graph/graph.hpp"
#include "kernels/registry.hpp"

namespace deskml::runtime {

class ExecutionPlan;
class RunArenas;

struct SessionOptions {
  // Threads for one run (our kernels and oneDNN); 0 = the machine's physical cores.
  int threads = 0;
  // Kernel providers in priority order; empty = the CPU backend.
  std::vector<const kernels::KernelRegistry*> providers;
  // Graph optimisation (src/optimizer): 0 none, 1 clean-up and constant folding,
  // 2 also fusions and the channels-last layout (default).
  int optimization_level = 2;
  bool channels_last = true;
  // 3x3 stride-1 convolutions by Winograd's algorithm where oneDNN has it for
  // this CPU (AVX-512): about twice as fast; results differ from the direct
  // algorithm by rounding (~1e-6 relative). False: direct convolution only.
  bool winograd = true;
  // Run the convolution regions that concatenate channels (SqueezeNet's fire
  // modules) in oneDNN's blocked layout nChw16c rather than NHWC (AVX-512 CPUs only).
  bool blocked_layout = true;
  // Batch tiling (batch_tiling.hpp): a large batch of a model whose ops keep
  // samples apart runs as several smaller ones. -1: chunks sized to the CPU's
  // last-level cache from the warm-up's tensors of one sample; 0: never split;
  // N > 0: N samples per run. Needs the warm-up.
  int64_t batch_chunk = -1;
  // Run the model once at load on zeros (symbolic dims = 1), so oneDNN's JIT and
  // weight packing happen before the first request. Failures are ignored.
  bool warmup = true;
  // Session::load keeps the optimized model and the weights its warm-up packed
  // in a plan cache file (src/plan_cache), by default `<model>.deskml-plan`
  // beside the model, or in `plan_cache_dir` when set; the next load of the
  // same file with the same options on the same CPU maps it instead of parsing,
  // optimizing and packing again. The file is written in the background after
  // the load; a cache that cannot be read or written only costs that speed-up.
  bool plan_cache = false;
  std::filesystem::path plan_cache_dir;
};

// What the plan cache did for a session.
struct PlanCacheReport {
  enum class Use { kOff, kHit, kWritten, kNotWritten };
  Use use = Use::kOff;
  std::filesystem::path file;
  std::string detail;            // why it was not used or not written
  const char* use_name() const;  // "off", "hit", "written", "not written"
};

// Limits for one run. A model may legitimately compute for as long as its data
// says (Loop's trip count is an input), so a caller running untrusted models, or
// one whose user can walk away, needs a way to stop it. Checked before every node,
// including each node of every Loop/Scan iteration.
// One executed node's wall time, as recorded into a Profile.
struct ProfileEntry {
  std::string op_type;    // "Conv"; "domain.Op" outside the default domain
  std::string node_name;  // as in the model (may be empty)
  double ms = 0.0;        // wall time of the node's kernel, subgraphs included
  int depth = 0;          // 0 = the main graph; 1 = inside an If/Loop/Scan body; ...
};

// A profiling sink for runs: every node a run executes appends one entry, in
// execution order (a subgraph's nodes come before the entry of the node that ran
// them, with depth + 1, so summing depth-0 entries counts each moment once).
// Entries accumulate across runs until cleared. One Profile must not be shared by
// runs in flight at the same time.
struct Profile {
  std::vector<ProfileEntry> entries;
  void clear() { entries.clear(); }
};

struct RunOptions {
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  const std::atomic<bool>* cancel = nullptr;  // another thread sets it to true to stop the run
  Profile* profile = nullptr;                 // when set, per-node timings are appended to it
  int threads = 0;                            // threads for this run, at most the session's; 0 = tuned
  int64_t* largest_tensor_bytes = nullptr;    // when set, raised to the largest tensor a node produced
};

using NamedValues = std::vector<std::pair<std::string, Value>>;

class Session {
 public:
  static Result<std::unique_ptr<Session>> load(const std::filesystem::path& model_path,
                                               const SessionOptions& options = {});
  static Result<std::unique_ptr<Session>> create(graph::Model model, const SessionOptions& options = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const graph::Model& model() const { return *model_; }
  // Inputs a caller must (or may, for initializer-backed ones) feed, in declared order.
  const std::vector<graph::ValueInfo>& inputs() const { return inputs_; }
  const std::vector<graph::ValueInfo>& outputs() const { return model_->graph.outputs; }
  int threads() const { return threads_; }
  // Samples per run when a larger batch is split (SessionOptions::batch_chunk); 0 = never split.
  int64_t batch_chunk() const { return batch_chunk_; }
  // What the plan cache did at load; waits for the cache file to be written.
  PlanCacheReport plan_cache_report() const;

  // Runs the model. Every required input must be fed; outputs come back in
  // declared order. Bad feeds (unknown name, wrong dtype or rank, fixed dim
  // mismatch) give InvalidArgument and run nothing.
  Result<NamedValues> run(const NamedValues& feeds) const { return run(feeds, RunOptions{}); }
  // Same, stopping with DeadlineExceeded or Cancelled between two nodes.
  Result<NamedValues> run(const NamedValues& feeds, const RunOptions& options) const;
  // Convenience for plain tensors.
  Result<std::vector<std::pair<std::string, Tensor>>> run(
      const std::vector<std::pair<std::string, Tensor>>& feeds) const;

 private:
  Session() = default;
  // create() after optimisation: `model` is as the optimizer left it.
  static Result<std::unique_ptr<Session>> create_planned(graph::Model model, const SessionOptions& options);
  // Runs the model once on zeros; decides batch tiling (`chunk` as SessionOptions::batch_chunk).
  void warm_up(int64_t chunk);
  // Picks the thread count for a run: the session's, or 1 where the measured
  // runs of this input shape say a parallel region costs more than it saves.
  struct ThreadTuning;
  int pick_threads(uint64_t feeds_key, bool& trial) const;
  Status validate_feed(const graph::ValueInfo& info, const Value& value) const;
  Result<NamedValues> run_whole(const NamedValues& feeds, const RunOptions& options) const;
  // The feeds' common batch (axis 0) when a run should be split; 0 otherwise.
  int64_t tiled_batch(const NamedValues& feeds) const;
  Result<NamedValues> run_tiled(const NamedValues& feeds, const RunOptions& options, int64_t batch) const;

  std::shared_ptr<const graph::Model> model_;
  std::vector<graph::ValueInfo> inputs_;
  std::unique_ptr<ExecutionPlan> plan_;
  std::unique_ptr<ThreadTuning> tuning_;
  std::unique_ptr<RunArenas> arenas_;  // tensor placement plans by input signature
  int threads_ = 1;
  int64_t batch_chunk_ = 0;
  PlanCacheReport plan_cache_;
  std::shared_future<Status> plan_write_;  // the cache file being written
};

// The plan cache key Session::load uses for `model_file` with `options`
// (docs/PLAN_CACHE.md); reads and hashes the file.
Result<std::string> plan_cache_key(const std::filesystem::path& model_file, const SessionOptions& options);

// Physical cores of this machine (hyper-threads not counted), at least 1.
int physical_cores();

}  // namespace deskml::runtime
