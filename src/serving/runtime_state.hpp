// Inside the Runtime: the model slots and the threads that change them. Only
// runtime.cpp (requests) and residency.cpp (load, unload, evict, reload) see it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "serving/compute_slots.hpp"
#include "serving/loaded_model.hpp"
#include "serving/model_repository.hpp"
#include "serving/pipeline.hpp"
#include "serving/result_cache.hpp"
#include "serving/runtime.hpp"
#include "serving/timer.hpp"

namespace deskml::serving {

struct VersionSlot {
  ModelState state = ModelState::kUnavailable;
  std::string reason = "not loaded";
  std::shared_ptr<LoadedModel> model;                     // set while READY
  uint64_t failed_fingerprint = 0;                        // the file that failed to load (not retried until it changes)
  std::vector<std::shared_ptr<PendingRequest>> waiting;   // requests that arrived while LOADING
  std::vector<std::function<void(Status)>> load_waiters;  // load() callers
  size_t outstanding = 0;                                 // accepted and not yet answered
  Clock::time_point last_used{};
  std::optional<std::chrono::milliseconds> keep_alive;  // the last request's override
  Timer::Id expiry = 0;
};

struct ModelSlot {
  RepositoryModel info;  // as last read from the repository
  std::map<int64_t, VersionSlot> versions;
  int64_t serving = 0;  // the version unversioned requests go to (0 = newest on disk)
  std::string reload_error;
  uint64_t reload_failed = 0;                // the files a failed reload tried (not retried until they change)
  std::shared_ptr<const Pipeline> pipeline;  // ensembles
  std::unique_ptr<ResultCache> cache;        // when config.cache
  const Metrics::Model* metrics = nullptr;
  const ModelConfig& config() const {
    static const ModelConfig kDefaults;
    return info.config.ok() ? info.config.value() : kDefaults;
  }
};

struct Runtime::State {
  RuntimeOptions options;
  std::unique_ptr<ModelRepository> repository;
  Metrics metrics;
  std::unique_ptr<ComputeSlots> slots;

  std::mutex mutex;  // guards everything below
  std::map<std::string, ModelSlot> models;
  Runtime* runtime = nullptr;  // ensembles call models through the public API
  bool shutting_down = false;

  // The loader thread runs loads, unloads and repository polls one at a time.
  std::mutex jobs_mutex;
  std::condition_variable jobs_cv;
  std::deque<std::function<void()>> jobs;
  bool jobs_stop = false;
  std::thread loader;

  std::unique_ptr<Timer> timer;  // declared last: destroyed first
  Timer::Id poll_timer = 0;

  void post(std::function<void()> job);
  void loader_loop();

  // Under `mutex`: the slot of `name`, read from the repository on first use.
  Result<ModelSlot*> slot(const std::string& name);
  // Under `mutex`: the version a request without one goes to.
  int64_t default_version(const ModelSlot& slot) const;

  // Residency (residency.cpp).
  void start_load(const std::string& name, int64_t version);                       // under `mutex`; state -> LOADING
  void run_load(const std::string& name, int64_t version);                         // on the loader thread
  void schedule_expiry(const std::string& name, int64_t version, VersionSlot& v);  // under `mutex`
  void retire(const std::string& name, int64_t version, const std::string& why);   // under `mutex`
  void update_resident_gauges();                                                   // under `mutex`
  void poll_repository();
  void schedule_poll();

  // Requests (runtime.cpp).
  void route(const std::shared_ptr<PendingRequest>& r);  // not under `mutex`
  void dispatch(const std::shared_ptr<PendingRequest>& r, const std::shared_ptr<LoadedModel>& model,
                ResultCache* cache);
  void run_ensemble(const std::shared_ptr<PendingRequest>& r, const std::shared_ptr<const Pipeline>& pipeline);
  static void finished(PendingRequest& r, const Result<InferResponse>& result, void* state);
  static void finished_batch(PendingRequest* const* requests, const InferResponse* responses, size_t n, void* state);
  // Under `mutex`: `answered` of the version's outstanding requests were answered at `now`.
  void answered_locked(const std::string& name, int64_t version, std::optional<std::chrono::milliseconds> keep_alive,
                       size_t answered, Clock::time_point now);
};

}  // namespace deskml::serving
