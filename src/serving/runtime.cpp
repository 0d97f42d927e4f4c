// The request path: accept, route to a loaded version (or wait for its load),
// consult the result cache, queue; and the answers' way back.
#include "serving/runtime.hpp"

#include <unistd.h>

#include <cstdlib>

#include "serving/batching.hpp"
#include "serving/log.hpp"
#include "serving/runtime_state.hpp"

namespace deskml::serving {

const char* model_state_name(ModelState s) {
  switch (s) {
    case ModelState::kLoading:
      return "LOADING";
    case ModelState::kReady:
      return "READY";
    case ModelState::kUnloading:
      return "UNLOADING";
    case ModelState::kUnavailable:
      return "UNAVAILABLE";
  }
  return "UNAVAILABLE";
}

namespace {

std::filesystem::path default_cache_dir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return std::filesystem::path(xdg) / "deskml";
  if (const char* home = std::getenv("HOME"); home && *home) return std::filesystem::path(home) / ".cache" / "deskml";
  return std::filesystem::temp_directory_path() / "deskml-cache";
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

// ---------------------------------------------------------------------------
// State helpers

void Runtime::State::post(std::function<void()> job) {
  {
    std::lock_guard lock(jobs_mutex);
    jobs.push_back(std::move(job));
  }
  jobs_cv.notify_one();
}

void Runtime::State::loader_loop() {
  std::unique_lock lock(jobs_mutex);
  for (;;) {
    jobs_cv.wait(lock, [&] { return jobs_stop || !jobs.empty(); });
    if (jobs_stop) return;
    auto job = std::move(jobs.front());
    jobs.pop_front();
    lock.unlock();
    job();
    lock.lock();
  }
}

Result<ModelSlot*> Runtime::State::slot(const std::string& name) {
  auto it = models.find(name);
  if (it != models.end()) return &it->second;
  DESKML_ASSIGN_OR_RETURN(RepositoryModel info, repository->find(name));
  if (!info.config.ok()) {
    return Status(StatusCode::kUnavailable,
                  "model '" + name + "' has a bad config.toml: " + info.config.status().message());
  }
  if (!info.is_ensemble() && info.versions.empty()) {
    return not_found("model '" + name + "' has no version folder with a model.onnx");
  }
  ModelSlot s;
  s.info = std::move(info);
  s.metrics = &metrics.model(name);
  const ModelConfig config = s.config();
  if (s.info.is_ensemble()) {
    DESKML_ASSIGN_OR_RETURN(auto pipeline, Pipeline::parse(*config.ensemble, s.info.dir));
    s.pipeline = std::move(pipeline);
  }
  if (config.cache) {
    ResultCacheOptions co;
    std::error_code ec;
    std::filesystem::create_directories(options.cache_dir, ec);
    co.file = options.cache_dir / (name + ".sqlite");
    co.memory_bytes = config.cache_memory_bytes;
    co.disk_bytes = config.cache_disk_bytes;
    auto cache = ResultCache::open(co);
    if (cache.ok()) {
      s.cache = std::move(cache).value();
    } else {
      log::event(spdlog::level::warn, "cache_unavailable", {{"model", name}, {"error", cache.status().message()}});
    }
  }
  return &models.emplace(name, std::move(s)).first->second;
}

int64_t Runtime::State::default_version(const ModelSlot& slot) const {
  if (slot.serving > 0) return slot.serving;
  const auto* newest = slot.info.newest();
  return newest ? newest->version : 0;
}

// ---------------------------------------------------------------------------
// Runtime

Runtime::Runtime(std::unique_ptr<State> state) : s_(std::move(state)) {}

Result<std::unique_ptr<Runtime>> Runtime::create(RuntimeOptions options) {
  auto s = std::make_unique<State>();
  DESKML_ASSIGN_OR_RETURN(s->repository, ModelRepository::open(options.repository));
  if (options.threads <= 0) options.threads = runtime::physical_cores();
  if (options.memory_budget_bytes == 0) {
    options.memory_budget_bytes =
        static_cast<size_t>(::sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(::sysconf(_SC_PAGESIZE)) / 2;
  }
  if (options.cache_dir.empty()) options.cache_dir = default_cache_dir();
  s->options = options;
  s->slots = std::make_unique<ComputeSlots>(options.threads);
  s->timer = std::make_unique<Timer>();
  State* raw = s.get();
  s->loader = std::thread([raw] { raw->loader_loop(); });
  auto rt = std::unique_ptr<Runtime>(new Runtime(std::move(s)));
  raw->runtime = rt.get();
  if (options.poll_interval.count() > 0) raw->schedule_poll();
  if (options.load_pinned) {
    std::lock_guard lock(raw->mutex);
    for (const auto& name : raw->repository->names()) {
      auto repo = raw->repository->find(name);
      if (!repo.ok() || !repo->config.ok() || !repo->config->pinned || repo->is_ensemble()) continue;
      auto slot = raw->slot(name);
      if (!slot.ok()) continue;
      const int64_t v = raw->default_version(**slot);
      if (v > 0) raw->start_load(name, v);
    }
  }
  log::event(spdlog::level::info, "runtime_started",
             {{"repository", options.repository.string()},
              {"threads", options.threads},
              {"memory_budget_mb", options.memory_budget_bytes >> 20}});
  return rt;
}

Runtime::~Runtime() {
  State& s = *s_;
  {
    std::lock_guard lock(s.mutex);
    s.shutting_down = true;
  }
  {
    std::lock_guard lock(s.jobs_mutex);
    s.jobs_stop = true;
  }
  s.jobs_cv.notify_all();
  s.loader.join();
  s.timer->shutdown();
  {
    // Jobs that never ran may own models being retired: drop them while the state lives.
    std::deque<std::function<void()>> dropped;
    {
      std::lock_guard lock(s.jobs_mutex);
      dropped.swap(s.jobs);
    }
  }
  std::vector<std::shared_ptr<LoadedModel>> loaded;
  std::vector<std::shared_ptr<PendingRequest>> waiting;
  std::vector<std::function<void(Status)>> load_waiters;
  {
    std::lock_guard lock(s.mutex);
    for (auto& [name, slot] : s.models) {
      for (auto& [v, vs] : slot.versions) {
        if (vs.model) loaded.push_back(std::move(vs.model));
        for (auto& r : vs.waiting) waiting.push_back(std::move(r));
        for (auto& w : vs.load_waiters) load_waiters.push_back(std::move(w));
      }
    }
  }
  const Status down(StatusCode::kUnavailable, "the runtime is shutting down");
  for (auto& r : waiting) r->finish(PendingRequest::kQueued, down);
  for (auto& w : load_waiters) w(down);
  loaded.clear();  // each drains its queue and joins its workers
}

Status Runtime::add_model_file(const std::string& name, const std::filesystem::path& model, ModelConfig config) {
  return s_->repository->add_file(name, model, std::move(config));
}

Metrics& Runtime::metrics() { return s_->metrics; }
int Runtime::threads() const { return s_->options.threads; }

void Runtime::infer_async(const std::string& name, Tensors inputs, InferOptions options, Callback done) {
  State& s = *s_;
  if (options.request_id.empty()) options.request_id = log::new_request_id();
  auto r = std::make_shared<PendingRequest>();
  r->model = name;
  r->inputs = std::move(inputs);
  r->options = std::move(options);
  r->enqueued = Clock::now();
  r->done = std::move(done);
  r->on_finish = &State::finished;
  r->on_finish_batch = &State::finished_batch;
  r->on_finish_arg = &s;

  // Cancellation and the deadline answer the request wherever it is: waiting
  // for a load, queued, or running (its result is then dropped).
  // (Made only when needed: most requests have neither.)
  auto make_abort = [&r] {
    return [weak = std::weak_ptr<PendingRequest>(r)](Status why) {
      auto req = weak.lock();
      if (!req) return;
      if (req->finish(PendingRequest::kQueued, why) || req->finish(PendingRequest::kRunning, why)) {
        if (auto model = req->queue()) model->remove(req);
      }
    };
  };
  if (r->options.cancel) {
    r->cancel_registration.store(r->options.cancel->on_cancel(
        [abort = make_abort()] { abort(Status(StatusCode::kCancelled, "the request was cancelled")); }));
    // Answered meanwhile (by the cancellation itself, on any thread): undo it here.
    if (r->done_state()) {
      if (auto id = r->cancel_registration.exchange(0)) r->options.cancel->remove(id);
    }
  }
  if (r->options.deadline != Clock::time_point::max() && !r->done_state()) {
    r->deadline_timer.store(s.timer->schedule(r->options.deadline, [abort = make_abort()] {
      abort(Status(StatusCode::kDeadlineExceeded, "the request's deadline passed"));
    }));
    if (r->done_state()) {
      if (auto id = r->deadline_timer.exchange(0)) s.timer->cancel(id);
    }
  }
  if (r->state.load() != PendingRequest::kQueued) return;  // cancelled before it started
  s.route(r);
}

void Runtime::State::route(const std::shared_ptr<PendingRequest>& r) {
  std::shared_ptr<LoadedModel> model;
  std::shared_ptr<const Pipeline> pipeline;
  ResultCache* cache = nullptr;
  Status failure;
  {
    std::lock_guard lock(mutex);
    if (r->done_state()) return;  // cancelled or expired before it was routed
    auto found = shutting_down ? Result<ModelSlot*>(Status(StatusCode::kUnavailable, "the runtime is shutting down"))
                               : slot(r->model);
    if (!found.ok()) {
      failure = found.status();
    } else {
      ModelSlot& sl = **found;
      r->metrics = sl.metrics;
      if (!r->counted) sl.metrics->requests->Increment();
      r->counted = true;
      if (sl.pipeline) {
        pipeline = sl.pipeline;
        r->version = 1;
      } else {
        r->version = r->options.version.value_or(default_version(sl));
        const auto* files = sl.info.version(r->version);
        auto vit = sl.versions.find(r->version);
        if (!files && vit == sl.versions.end()) {
          failure = not_found("model '" + r->model + "' has no version " + std::to_string(r->version));
        } else {
          VersionSlot& v = vit != sl.versions.end() ? vit->second : sl.versions[r->version];
          if (!r->holds_slot) ++v.outstanding;
          r->holds_slot = true;
          v.last_used = std::max(v.last_used, r->enqueued);
          if (r->options.keep_alive) v.keep_alive = r->options.keep_alive;
          if (v.expiry) {
            timer->cancel(v.expiry);
            v.expiry = 0;
          }
          switch (v.state) {
            case ModelState::kReady:
              model = v.model;
              cache = sl.cache.get();
              break;
            case ModelState::kLoading:
              v.waiting.push_back(r);
              break;
            case ModelState::kUnloading:
            case ModelState::kUnavailable:
              if (files && v.failed_fingerprint != 0 && v.failed_fingerprint == files->fingerprint) {
                failure =
                    Status(StatusCode::kUnavailable, "model '" + r->model + "' version " + std::to_string(r->version) +
                                                         " is unavailable: " + v.reason);
              } else {
                start_load(r->model, r->version);
                v.waiting.push_back(r);
              }
              break;
          }
        }
      }
    }
  }
  if (!failure.ok()) {
    r->finish(PendingRequest::kQueued, failure);
    return;
  }
  if (pipeline) {
    run_ensemble(r, pipeline);
  } else if (model) {
    dispatch(r, model, cache);
  }
}

void Runtime::State::dispatch(const std::shared_ptr<PendingRequest>& r, const std::shared_ptr<LoadedModel>& model,
                              ResultCache* cache) {
  if (r->state.load(std::memory_order_acquire) != PendingRequest::kQueued) return;
  int64_t rows = 0;
  auto prepared = model->prepare(std::move(r->inputs), rows);
  if (!prepared.ok()) {
    r->finish(PendingRequest::kQueued, prepared.status());
    return;
  }
  r->inputs = std::move(prepared).value();
  r->rows = rows;
  if (model->batching()) r->signature = batch_signature(r->inputs);
  if (cache && r->options.use_cache) {
    const auto& m = *r->metrics;
    CacheKey key = make_cache_key(r->model + "#" + hex64(model->files().fingerprint), model->version(), r->inputs);
    if (auto hit = cache->get(key)) {
      m.cache_hits->Increment();
      InferResponse resp;
      resp.model = r->model;
      resp.version = model->version();
      resp.request_id = r->options.request_id;
      resp.outputs = std::move(*hit);
      resp.cached = true;
      resp.batch_size = 0;
      r->finish(PendingRequest::kQueued, std::move(resp));
      return;
    }
    m.cache_misses->Increment();
    r->cache = cache;
    r->cache_key = std::move(key);
  }
  // Only a cancellation or a deadline takes a request out of its queue early;
  // without either, nobody asks where it is queued.
  const bool removable = r->options.cancel || r->options.deadline != Clock::time_point::max();
  if (removable) r->set_queue(model);
  Status queued = model->enqueue(r);
  if (queued.code() == StatusCode::kUnavailable) {
    // The version began unloading between routing and queueing: route again,
    // which waits for a fresh load.
    if (removable) r->set_queue({});
    route(r);
    return;
  }
  if (!queued.ok()) r->finish(PendingRequest::kQueued, queued);
}

void Runtime::State::run_ensemble(const std::shared_ptr<PendingRequest>& r,
                                  const std::shared_ptr<const Pipeline>& pipeline) {
  Runtime* rt = runtime;
  ModelCall call = [rt](const std::string& model, std::optional<int64_t> version, Tensors inputs,
                        const InferOptions& options, std::function<void(Result<Tensors>)> done) {
    InferOptions o = options;
    o.version = version;
    o.request_id.clear();
    rt->infer_async(model, std::move(inputs), std::move(o), [done = std::move(done)](Result<InferResponse> res) {
      if (res.ok()) {
        done(std::move(res->outputs));
      } else {
        done(res.status());
      }
    });
  };
  const auto start = Clock::now();
  pipeline->run(std::move(r->inputs), r->options, call, [r, start](Result<Tensors> out) {
    if (!out.ok()) {
      r->finish(PendingRequest::kQueued, out.status());
      return;
    }
    InferResponse resp;
    resp.model = r->model;
    resp.version = 1;
    resp.request_id = r->options.request_id;
    resp.outputs = std::move(out).value();
    resp.compute_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    r->finish(PendingRequest::kQueued, std::move(resp));
  });
}

namespace {

// Undoes what infer_async registered for the request (its cancel callback and
// deadline timer), whoever answered it.
void release_registrations(PendingRequest& r, Timer& timer) {
  // The options do not change after submission: most requests have neither.
  if (r.options.cancel) {
    if (auto id = r.cancel_registration.exchange(0)) r.options.cancel->remove(id);
  }
  if (r.options.deadline != Clock::time_point::max()) {
    if (auto id = r.deadline_timer.exchange(0)) timer.cancel(id);
  }
}

void log_answer(const PendingRequest& r, const Result<InferResponse>& result) {
  if (!log::enabled(spdlog::level::debug)) return;
  if (result.ok()) {
    log::event(spdlog::level::debug, "request_done",
               {{"request_id", result->request_id},
                {"model", r.model},
                {"version", result->version},
                {"cached", result->cached},
                {"batch_size", result->batch_size},
                {"queue_ms", result->queue_ms},
                {"compute_ms", result->compute_ms}});
  } else {
    log::event(spdlog::level::debug, "request_failed",
               {{"request_id", r.options.request_id},
                {"model", r.model},
                {"code", status_code_name(result.status().code())},
                {"error", result.status().message()}});
  }
}

}  // namespace

void Runtime::State::finished(PendingRequest& r, const Result<InferResponse>& result, void* state) {
  State& s = *static_cast<State*>(state);
  release_registrations(r, *s.timer);
  // route() sets the counting flags under `mutex` only while the request is
  // unanswered, so reading them under `mutex` here (after the answer's state
  // change) sees either all of route's bookkeeping or none of it.
  bool counted = false;
  {
    std::lock_guard lock(s.mutex);
    counted = r.counted;
    if (r.holds_slot) s.answered_locked(r.model, r.version, r.options.keep_alive, 1, Clock::now());
  }
  if (counted) {
    if (result.ok()) {
      r.metrics->successes->Increment();
    } else {
      s.metrics.failure(r.model, status_code_name(result.status().code()));
    }
    if (result.ok() && r.cache && r.cache_key && !result->cached) (void)r.cache->put(*r.cache_key, result->outputs);
  }
  log_answer(r, result);
}

void Runtime::State::finished_batch(PendingRequest* const* requests, const InferResponse* responses, size_t n,
                                    void* state) {
  State& s = *static_cast<State*>(state);
  for (size_t i = 0; i < n; ++i) release_registrations(*requests[i], *s.timer);
  // A batch's requests share one loaded version, so one pass under `mutex`
  // settles them all; keep-alive overrides apply in order (the last one wins).
  size_t counted = 0, held = 0;
  std::optional<std::chrono::milliseconds> keep_alive;
  const auto now = Clock::now();
  {
    std::lock_guard lock(s.mutex);
    for (size_t i = 0; i < n; ++i) {
      const PendingRequest& r = *requests[i];
      counted += r.counted ? 1 : 0;
      if (!r.holds_slot) continue;
      ++held;
      if (r.options.keep_alive) keep_alive = r.options.keep_alive;
    }
    if (held > 0) s.answered_locked(requests[0]->model, requests[0]->version, keep_alive, held, now);
  }
  if (counted > 0) requests[0]->metrics->successes->Increment(static_cast<double>(counted));
  for (size_t i = 0; i < n; ++i) {
    const PendingRequest& r = *requests[i];
    if (r.counted && r.cache && r.cache_key) (void)r.cache->put(*r.cache_key, responses[i].outputs);
    if (log::enabled(spdlog::level::debug)) log_answer(r, responses[i]);
  }
}

void Runtime::State::answered_locked(const std::string& name, int64_t version,
                                     std::optional<std::chrono::milliseconds> keep_alive, size_t answered,
                                     Clock::time_point now) {
  if (shutting_down) return;
  auto it = models.find(name);
  if (it == models.end()) return;
  auto vit = it->second.versions.find(version);
  if (vit == it->second.versions.end()) return;
  VersionSlot& v = vit->second;
  v.outstanding -= std::min(v.outstanding, answered);
  if (keep_alive) v.keep_alive = keep_alive;
  v.last_used = std::max(v.last_used, now);
  if (v.outstanding == 0 && v.state == ModelState::kReady) schedule_expiry(name, version, v);
}

std::future<Result<InferResponse>> Runtime::infer(const std::string& model, Tensors inputs, InferOptions options) {
  auto promise = std::make_shared<std::promise<Result<InferResponse>>>();
  auto future = promise->get_future();
  infer_async(model, std::move(inputs), std::move(options),
              [promise](Result<InferResponse> r) { promise->set_value(std::move(r)); });
  return future;
}

Result<InferResponse> Runtime::infer_sync(const std::string& model, Tensors inputs, InferOptions options) {
  struct Waiter {
    std::atomic<int> ready{0};
    std::optional<Result<InferResponse>> result;
  };
  auto w = std::make_shared<Waiter>();
  infer_async(model, std::move(inputs), std::move(options), [w](Result<InferResponse> r) {
    w->result.emplace(std::move(r));
    w->ready.store(1, std::memory_order_release);
    w->ready.notify_one();
  });
  // A short model answers in microseconds; one caller at a time may wait for it
  // without sleeping (more would take the cores from the workers).
  static std::atomic<int> spinners{0};
  if (spinners.fetch_add(1, std::memory_order_acq_rel) < std::max(1, s_->options.threads - 1)) {
    const auto until = Clock::now() + std::chrono::microseconds(100);
    while (w->ready.load(std::memory_order_acquire) == 0 && Clock::now() < until) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
  }
  spinners.fetch_sub(1, std::memory_order_acq_rel);
  while (w->ready.load(std::memory_order_acquire) == 0) w->ready.wait(0, std::memory_order_acquire);
  return std::move(*w->result);
}

}  // namespace deskml::serving
