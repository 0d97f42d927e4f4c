// One loaded version of a model: its sessions (instances), its request queue,
// and the workers that batch and run what is queued. The runtime above decides
// when it exists; this class only serves.
#pragma once

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/session.hpp"
#include "serving/compute_slots.hpp"
#include "serving/metrics.hpp"
#include "serving/model_config.hpp"
#include "serving/model_repository.hpp"
#include "serving/pending_request.hpp"
#include "serving/request_queue.hpp"

namespace deskml::serving {

class LoadedModel {
 public:
  // Loads `config.instances` sessions of the version's file, runs warm-up, and
  // starts one worker per instance. The checks a config declares (inputs,
  // outputs, batching) are made here, so a model that loads is servable.
  // With `config.plan_cache`, plans are cached in `plan_cache_dir` (docs/PLAN_CACHE.md).
  static Result<std::shared_ptr<LoadedModel>> load(const std::string& name, const ModelVersionFiles& files,
                                                   const ModelConfig& config, ComputeSlots& slots,
                                                   const Metrics::Model& metrics,
                                                   const std::filesystem::path& plan_cache_dir = {});
  ~LoadedModel();  // stops and joins the workers; queued requests are answered Unavailable
  LoadedModel(const LoadedModel&) = delete;
  LoadedModel& operator=(const LoadedModel&) = delete;

  const std::string& name() const { return name_; }
  int64_t version() const { return files_.version; }
  const ModelVersionFiles& files() const { return files_; }
  const ModelConfig& config() const { return config_; }
  const runtime::Session& session() const { return *sessions_.front(); }
  bool batching() const { return max_batch_ > 0; }

  // Checks a request's inputs against the model and puts them in declared order.
  // Sets `rows` to the batch rows (0 when the model does not batch).
  Result<Tensors> prepare(Tensors inputs, int64_t& rows) const;
  // Queues a prepared request. ResourceExhausted when the queue is full,
  // Unavailable once stop() was called; `done` is not called then.
  Status enqueue(const std::shared_ptr<PendingRequest>& request);
  // Takes a queued request out (cancel, deadline). False when it is not queued.
  bool remove(const std::shared_ptr<PendingRequest>& request);
  // Stops taking requests; workers finish what is queued, then exit.
  void stop();
  // Queued plus running requests.
  size_t outstanding() const;
  size_t queued() const { return queued_hint_.load(std::memory_order_acquire); }

  size_t resident_bytes() const { return resident_bytes_; }
  double load_ms() const { return load_ms_; }

 private:
  LoadedModel(ComputeSlots& slots, const Metrics::Model& metrics) : slots_(slots), metrics_(metrics) {}
  void work(size_t instance);
  std::vector<std::shared_ptr<PendingRequest>> take_batch(std::unique_lock<std::mutex>& lock);
  void run_batch(size_t instance, std::vector<std::shared_ptr<PendingRequest>>& batch);
  void answer_batch(std::vector<std::shared_ptr<PendingRequest>>& batch, Tensors outputs,
                    const std::vector<double>& queue_seconds, double compute_ms);

  std::string name_;
  ModelVersionFiles files_;
  ModelConfig config_;
  int64_t max_batch_ = 0;
  std::vector<std::unique_ptr<runtime::Session>> sessions_;
  ComputeSlots& slots_;
  const Metrics::Model& metrics_;
  size_t resident_bytes_ = 0;
  double load_ms_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  RequestQueue queue_;
  size_t running_ = 0;  // requests in batches being run
  int64_t last_batch_rows_ = 0;
  bool stopping_ = false;
  std::atomic<size_t> queued_hint_{0};  // queue_.size(), readable without the lock
  std::vector<std::thread> workers_;
};

// Memory a loaded version is expected to hold: its weight files, twice (as read
// and as packed for the kernels), per instance. Deterministic, so eviction
// decisions do not depend on what else the process allocated meanwhile.
size_t memory_estimate(const ModelVersionFiles& files, const ModelConfig& config);
// The process's resident set size, from /proc/self/statm.
size_t current_rss_bytes();

}  // namespace deskml::serving
