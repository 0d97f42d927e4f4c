// Residency: which model versions are loaded. Loads and unloads run one at a
// time on the loader thread; keep-alive expiry and repository polling are timer
// callbacks that post work there. Memory is bounded by an LRU over idle,
// unpinned versions; a changed file is loaded beside the old version, which
// keeps serving until the new one is READY.
#include <malloc.h>

#include <thread>

#include "core/buffer_pool.hpp"
#include "serving/log.hpp"
#include "serving/runtime_state.hpp"

namespace deskml::serving {

namespace {

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// Stops a retired version, lets its queue drain, and gives its memory back.
void destroy_model(std::shared_ptr<LoadedModel> model) {
  if (!model) return;
  model->stop();
  // Requests being routed may hold a reference for a moment.
  for (int i = 0; i < 10000 && model.use_count() > 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  model.reset();  // joins the workers once their queue is empty
  BufferPool::instance().trim();
  ::malloc_trim(0);
}

// A version slot's part of a ModelStatus row.
void describe_version(const VersionSlot& vs, ModelStatus& row) {
  row.state = vs.state;
  row.reason = vs.reason;
  row.resident_bytes = vs.model ? vs.model->resident_bytes() : 0;
  row.load_ms = vs.model ? vs.model->load_ms() : 0;
  row.outstanding = vs.outstanding;
  row.queued = vs.model ? vs.model->queued() : 0;
}

}  // namespace

void Runtime::State::start_load(const std::string& name, int64_t version) {
  VersionSlot& v = models[name].versions[version];
  v.state = ModelState::kLoading;
  v.reason.clear();
  post([this, name, version] { run_load(name, version); });
}

void Runtime::State::run_load(const std::string& name, int64_t version) {
  const auto start = Clock::now();
  ModelVersionFiles files;
  ModelConfig config;
  Status ready;
  std::vector<std::shared_ptr<LoadedModel>> victims;
  {
    std::lock_guard lock(mutex);
    if (shutting_down) return;
    auto it = models.find(name);
    if (it == models.end()) return;
    ModelSlot& sl = it->second;
    auto fresh = repository->find(name);
    if (fresh.ok() && fresh->config.ok()) sl.info = std::move(fresh).value();
    if (const auto* f = sl.info.version(version)) {
      files = *f;
    } else {
      ready = not_found("model '" + name + "' has no version " + std::to_string(version));
    }
    config = sl.config();
    if (ready.ok()) {
      // Least recently used idle versions make room; pinned and busy ones stay.
      const size_t need = memory_estimate(files, config);
      size_t total = 0;
      std::vector<std::pair<Clock::time_point, std::pair<std::string, int64_t>>> idle;
      for (auto& [n, s] : models) {
        for (auto& [ver, vs] : s.versions) {
          if (vs.state != ModelState::kReady || !vs.model) continue;
          total += vs.model->resident_bytes();
          if (n != name && vs.outstanding == 0 && !s.config().pinned) idle.push_back({vs.last_used, {n, ver}});
        }
      }
      std::sort(idle.begin(), idle.end());
      size_t freed = 0, i = 0;
      for (; total - freed + need > options.memory_budget_bytes && i < idle.size(); ++i) {
        freed += models[idle[i].second.first].versions[idle[i].second.second].model->resident_bytes();
      }
      if (total - freed + need > options.memory_budget_bytes) {
        ready = Status(StatusCode::kResourceExhausted,
                       "loading model '" + name + "' needs about " + std::to_string(need >> 20) +
                           " MiB, and the memory budget of " + std::to_string(options.memory_budget_bytes >> 20) +
                           " MiB is held by busy or pinned models");
      } else {
        for (size_t k = 0; k < i; ++k) {
          const auto& [n, ver] = idle[k].second;
          VersionSlot& vs = models[n].versions[ver];
          victims.push_back(std::move(vs.model));
          vs.state = ModelState::kUnavailable;
          vs.reason = "evicted to make room for '" + name + "'";
          if (vs.expiry) timer->cancel(vs.expiry);
          vs.expiry = 0;
          log::event(spdlog::level::info, "model_evicted", {{"model", n}, {"version", ver}, {"for", name}});
        }
      }
    }
  }
  for (auto& victim : victims) {
    metrics.model(victim->name()).unloads->Increment();
    destroy_model(std::move(victim));
  }
  if (!victims.empty()) {
    std::lock_guard lock(mutex);
    update_resident_gauges();
  }

  Result<std::shared_ptr<LoadedModel>> loaded =
      ready.ok() ? LoadedModel::load(name, files, config, *slots, metrics.model(name), options.cache_dir / "plans")
                 : Result<std::shared_ptr<LoadedModel>>(ready);

  std::vector<std::shared_ptr<PendingRequest>> waiting;
  std::vector<std::function<void(Status)>> load_waiters;
  std::shared_ptr<LoadedModel> model;
  ResultCache* cache = nullptr;
  Status outcome = loaded.status();
  {
    std::lock_guard lock(mutex);
    ModelSlot& sl = models[name];
    VersionSlot& v = sl.versions[version];
    waiting.swap(v.waiting);
    load_waiters.swap(v.load_waiters);
    if (loaded.ok()) {
      model = std::move(loaded).value();
      v.state = ModelState::kReady;
      v.reason.clear();
      v.failed_fingerprint = 0;
      v.model = model;
      cache = sl.cache.get();
      const auto& m = metrics.model(name);
      m.loads->Increment();
      m.load_seconds->Observe(model->load_ms() / 1e3);
      update_resident_gauges();
      // Requests waiting now are counted in outstanding; with none, start the clock.
      if (v.outstanding == 0) schedule_expiry(name, version, v);
    } else {
      v.state = ModelState::kUnavailable;
      v.reason = "load failed: " + loaded.status().message();
      v.failed_fingerprint = files.fingerprint ? files.fingerprint : 1;
    }
  }
  if (outcome.ok()) {
    log::event(spdlog::level::info, "model_loaded",
               {{"model", name},
                {"version", version},
                {"ms", ms_since(start)},
                {"resident_mb", static_cast<double>(model->resident_bytes()) / (1 << 20)},
                {"evicted", victims.size()}});
    for (auto& r : waiting) dispatch(r, model, cache);
  } else {
    log::event(spdlog::level::warn, "model_load_failed",
               {{"model", name}, {"version", version}, {"error", outcome.message()}});
    const Status why(
        outcome.code() == StatusCode::kResourceExhausted ? StatusCode::kResourceExhausted : StatusCode::kUnavailable,
        "model '" + name + "' version " + std::to_string(version) + " failed to load: " + outcome.message());
    for (auto& r : waiting) r->finish(PendingRequest::kQueued, why);
  }
  for (auto& w : load_waiters) w(outcome);
}

void Runtime::State::update_resident_gauges() {
  for (auto& [n, s] : models) {
    size_t bytes = 0;
    for (auto& [ver, vs] : s.versions) {
      if (vs.model) bytes += vs.model->resident_bytes();
    }
    metrics.model(n).resident_bytes->Set(static_cast<double>(bytes));
  }
}

void Runtime::State::schedule_expiry(const std::string& name, int64_t version, VersionSlot& v) {
  const ModelConfig& config = models[name].config();
  if (config.pinned) return;
  const auto keep = v.keep_alive ? *v.keep_alive : config.keep_alive ? *config.keep_alive : options.default_keep_alive;
  if (keep.count() < 0) return;  // forever
  if (v.expiry) timer->cancel(v.expiry);
  v.expiry = timer->schedule(Clock::now() + keep, [this, name, version] {
    std::lock_guard lock(mutex);
    if (shutting_down) return;
    VersionSlot& vs = models[name].versions[version];
    vs.expiry = 0;
    if (vs.outstanding == 0 && vs.state == ModelState::kReady) retire(name, version, "idle past its keep-alive");
  });
}

void Runtime::State::retire(const std::string& name, int64_t version, const std::string& why) {
  VersionSlot& v = models[name].versions[version];
  if (v.state != ModelState::kReady) return;
  v.state = ModelState::kUnloading;
  v.reason = why;
  if (v.expiry) timer->cancel(v.expiry);
  v.expiry = 0;
  post([this, name, version, why, model = std::move(v.model)]() mutable {
    const size_t bytes = model ? model->resident_bytes() : 0;
    metrics.model(name).unloads->Increment();
    destroy_model(std::move(model));
    std::lock_guard lock(mutex);
    VersionSlot& vs = models[name].versions[version];
    if (vs.state == ModelState::kUnloading) {
      vs.state = ModelState::kUnavailable;
      vs.reason = "unloaded: " + why;
    }
    update_resident_gauges();
    log::event(
        spdlog::level::info, "model_unloaded",
        {{"model", name}, {"version", version}, {"reason", why}, {"freed_mb", static_cast<double>(bytes) / (1 << 20)}});
  });
}

void Runtime::State::schedule_poll() {
  poll_timer = timer->schedule(Clock::now() + options.poll_interval, [this] {
    post([this] {
      poll_repository();
      schedule_poll();
    });
  });
}

void Runtime::State::poll_repository() {
  struct Candidate {
    std::string name;
    int64_t version;
    uint64_t fingerprint, config_fingerprint;
  };
  std::vector<Candidate> candidates;
  std::vector<std::pair<std::string, uint64_t>> ensembles;
  {
    std::lock_guard lock(mutex);
    if (shutting_down) return;
    for (auto& [name, sl] : models) {
      if (sl.pipeline) {
        ensembles.emplace_back(name, sl.info.config_fingerprint);
        continue;
      }
      const int64_t v = default_version(sl);
      auto it = sl.versions.find(v);
      if (it == sl.versions.end() || it->second.state != ModelState::kReady) continue;
      candidates.push_back({name, v, it->second.model->files().fingerprint, sl.info.config_fingerprint});
    }
  }
  // An ensemble whose config.toml changed is parsed again; a broken edit leaves
  // the old pipeline serving, with the reason in reload_error.
  for (const auto& [name, fingerprint] : ensembles) {
    auto fresh = repository->find(name);
    if (!fresh.ok() || fresh->config_fingerprint == fingerprint) continue;
    Result<std::shared_ptr<Pipeline>> parsed =
        !fresh->config.ok() ? Result<std::shared_ptr<Pipeline>>(fresh->config.status())
        : !fresh->is_ensemble()
            ? Result<std::shared_ptr<Pipeline>>(unsupported("config.toml no longer declares an [ensemble]"))
            : Pipeline::parse(*fresh->config->ensemble, fresh->dir);
    std::lock_guard lock(mutex);
    ModelSlot& sl = models[name];
    if (!parsed.ok()) {
      sl.reload_error = parsed.status().message();
      sl.info.config_fingerprint = fresh->config_fingerprint;  // not retried until it changes again
      log::event(spdlog::level::warn, "model_reload_failed", {{"model", name}, {"error", sl.reload_error}});
      continue;
    }
    sl.pipeline = std::move(parsed).value();
    sl.info = std::move(fresh).value();
    sl.reload_error.clear();
    log::event(spdlog::level::info, "model_reloaded", {{"model", name}, {"ensemble", true}});
  }
  for (const auto& c : candidates) {
    auto fresh = repository->find(c.name);
    if (!fresh.ok() || fresh->newest() == nullptr) continue;
    const ModelVersionFiles newest = *fresh->newest();
    if (newest.version == c.version && newest.fingerprint == c.fingerprint &&
        fresh->config_fingerprint == c.config_fingerprint) {
      continue;
    }
    const uint64_t attempt =
        newest.fingerprint ^ (fresh->config_fingerprint * 31) ^ static_cast<uint64_t>(newest.version);
    {
      std::lock_guard lock(mutex);
      ModelSlot& sl = models[c.name];
      if (sl.reload_failed == attempt) continue;
    }
    const auto start = Clock::now();
    Result<std::shared_ptr<LoadedModel>> loaded =
        fresh->config.ok() ? LoadedModel::load(c.name, newest, *fresh->config, *slots, metrics.model(c.name),
                                               options.cache_dir / "plans")
                           : Result<std::shared_ptr<LoadedModel>>(fresh->config.status());
    std::shared_ptr<LoadedModel> old;
    {
      std::lock_guard lock(mutex);
      if (shutting_down) return;
      ModelSlot& sl = models[c.name];
      if (!loaded.ok()) {
        sl.reload_error = "version " + std::to_string(newest.version) + ": " + loaded.status().message();
        sl.reload_failed = attempt;
        log::event(
            spdlog::level::warn, "model_reload_failed",
            {{"model", c.name}, {"version", newest.version}, {"serving", c.version}, {"error", sl.reload_error}});
        continue;
      }
      sl.info = std::move(fresh).value();
      sl.reload_error.clear();
      sl.reload_failed = 0;
      VersionSlot& nv = sl.versions[newest.version];
      if (newest.version == c.version) {
        old = std::move(nv.model);
      } else {
        retire(c.name, c.version, "replaced by version " + std::to_string(newest.version));
      }
      nv.model = std::move(loaded).value();
      nv.state = ModelState::kReady;
      nv.reason.clear();
      nv.failed_fingerprint = 0;
      sl.serving = newest.version;
      const auto& m = metrics.model(c.name);
      m.loads->Increment();
      m.load_seconds->Observe(nv.model->load_ms() / 1e3);
      update_resident_gauges();
      if (nv.outstanding == 0) schedule_expiry(c.name, newest.version, nv);
    }
    log::event(spdlog::level::info, "model_reloaded",
               {{"model", c.name}, {"version", newest.version}, {"previous", c.version}, {"ms", ms_since(start)}});
    if (old) {
      metrics.model(c.name).unloads->Increment();
      destroy_model(std::move(old));
      std::lock_guard lock(mutex);
      update_resident_gauges();
    }
  }
}

// ---------------------------------------------------------------------------
// Runtime: explicit residency control and status

Status Runtime::load(const std::string& name, std::optional<int64_t> version) {
  State& s = *s_;
  auto promise = std::make_shared<std::promise<Status>>();
  auto future = promise->get_future();
  std::vector<std::string> dependencies;
  bool ensemble = false;
  {
    std::lock_guard lock(s.mutex);
    if (s.shutting_down) return Status(StatusCode::kUnavailable, "the runtime is shutting down");
    DESKML_ASSIGN_OR_RETURN(ModelSlot * sl, s.slot(name));
    if (sl->pipeline) {
      ensemble = true;
      dependencies = sl->pipeline->model_dependencies();
    } else {
      auto fresh = s.repository->find(name);
      if (fresh.ok() && fresh->config.ok()) sl->info = std::move(fresh).value();
      const int64_t v = version.value_or(s.default_version(*sl));
      if (!sl->info.version(v)) return not_found("model '" + name + "' has no version " + std::to_string(v));
      VersionSlot& vs = sl->versions[v];
      if (vs.state == ModelState::kReady) return Status::Ok();
      vs.load_waiters.push_back([promise](Status st) { promise->set_value(std::move(st)); });
      if (vs.state != ModelState::kLoading) s.start_load(name, v);
    }
  }
  if (ensemble) {
    for (const auto& dep : dependencies) {
      if (dep == name) continue;
      Status st = load(dep);
      if (!st.ok()) return Status(st.code(), "ensemble '" + name + "': " + st.message());
    }
    return Status::Ok();
  }
  return future.get();
}

Status Runtime::unload(const std::string& name, std::optional<int64_t> version) {
  State& s = *s_;
  {
    std::lock_guard lock(s.mutex);
    auto it = s.models.find(name);
    if (it == s.models.end()) {
      auto known = s.repository->find(name);
      return known.ok() ? Status::Ok() : known.status();
    }
    for (auto& [v, vs] : it->second.versions) {
      if (!version || *version == v) s.retire(name, v, "unloaded on request");
    }
  }
  // Jobs run in order: when this one runs, the unloads before it are done.
  auto done = std::make_shared<std::promise<void>>();
  auto future = done->get_future();
  s.post([done] { done->set_value(); });
  future.wait();
  return Status::Ok();
}

std::vector<ModelStatus> Runtime::models() {
  std::vector<ModelStatus> out;
  for (const auto& name : s_->repository->names()) {
    std::vector<ModelStatus> rows;
    auto st = model_status(name);
    if (!st.ok()) {
      ModelStatus row;
      row.name = name;
      row.reason = st.status().message();
      out.push_back(std::move(row));
      continue;
    }
    std::lock_guard lock(s_->mutex);
    auto it = s_->models.find(name);
    bool any = false;
    if (it != s_->models.end()) {
      for (auto& [v, vs] : it->second.versions) {
        if (vs.state == ModelState::kUnavailable && vs.reason == "not loaded") continue;
        ModelStatus row = *st;
        row.version = v;
        describe_version(vs, row);
        out.push_back(std::move(row));
        any = true;
      }
    }
    if (!any) out.push_back(*st);
  }
  return out;
}

Result<ModelStatus> Runtime::model_status(const std::string& name, std::optional<int64_t> version) {
  State& s = *s_;
  std::lock_guard lock(s.mutex);
  DESKML_ASSIGN_OR_RETURN(ModelSlot * sl, s.slot(name));
  ModelStatus row;
  row.name = name;
  row.pinned = sl->config().pinned;
  row.reload_error = sl->reload_error;
  if (sl->pipeline) {
    row.ensemble = true;
    row.version = 1;
    row.state = ModelState::kReady;
    row.reason.clear();
    return row;
  }
  row.version = version.value_or(s.default_version(*sl));
  auto it = sl->versions.find(row.version);
  if (it == sl->versions.end()) {
    if (!sl->info.version(row.version))
      return not_found("model '" + name + "' has no version " + std::to_string(row.version));
    row.state = ModelState::kUnavailable;
    row.reason = "not loaded";
    return row;
  }
  describe_version(it->second, row);
  return row;
}

Result<ModelMetadata> Runtime::metadata(const std::string& name, std::optional<int64_t> version) {
  DESKML_RETURN_IF_ERROR(load(name, version));
  State& s = *s_;
  std::lock_guard lock(s.mutex);
  DESKML_ASSIGN_OR_RETURN(ModelSlot * sl, s.slot(name));
  ModelMetadata md;
  md.name = name;
  for (const auto& f : sl->info.versions) md.versions.push_back(f.version);
  md.max_batch_size = sl->config().max_batch_size;
  if (sl->pipeline) {
    md.versions = {1};
    for (const auto& n : sl->pipeline->input_names()) md.inputs.push_back({n, {}, {}});
    for (const auto& n : sl->pipeline->output_names()) md.outputs.push_back({n, {}, {}});
    return md;
  }
  const int64_t v = version.value_or(s.default_version(*sl));
  auto it = sl->versions.find(v);
  if (it == sl->versions.end() || !it->second.model) {
    return Status(StatusCode::kUnavailable, "model '" + name + "' version " + std::to_string(v) + " is not loaded");
  }
  md.inputs = it->second.model->session().inputs();
  md.outputs = it->second.model->session().outputs();
  return md;
}

size_t Runtime::resident_bytes() {
  std::lock_guard lock(s_->mutex);
  size_t total = 0;
  for (auto& [n, sl] : s_->models) {
    for (auto& [v, vs] : sl.versions) {
      if (vs.model) total += vs.model->resident_bytes();
    }
  }
  return total;
}

}  // namespace deskml::serving
