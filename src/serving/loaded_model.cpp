#include "serving/loaded_model.hpp"

#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "serving/batching.hpp"
#include "serving/log.hpp"

namespace deskml::serving {

namespace {

constexpr auto kSpinAfterBatch = std::chrono::microseconds(50);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

Status check_specs(const std::vector<TensorSpec>& specs, const std::vector<graph::ValueInfo>& actual,
                   const char* what) {
  for (const auto& spec : specs) {
    auto it = std::find_if(actual.begin(), actual.end(), [&](const auto& vi) { return vi.name == spec.name; });
    if (it == actual.end()) {
      return invalid_model(std::string("config.toml declares ") + what + " '" + spec.name + "', which the model lacks");
    }
    if (spec.dtype != DataType::kUndefined && it->type.dtype != spec.dtype) {
      return invalid_model(std::string(what) + " '" + spec.name + "' is " + std::string(dtype_name(it->type.dtype)) +
                           " in the model but " + std::string(dtype_name(spec.dtype)) + " in config.toml");
    }
    if (spec.dims && it->type.shape) {
      const auto& dims = *it->type.shape;
      bool same = dims.size() == spec.dims->size();
      for (size_t d = 0; same && d < dims.size(); ++d) {
        const int64_t want = (*spec.dims)[d];
        if (want >= 0 && dims[d].known() && dims[d].value != want) same = false;
      }
      if (!same) {
        return invalid_model(std::string(what) + " '" + spec.name + "' has shape " + it->type.to_string() +
                             " in the model, which config.toml's dims do not match");
      }
    }
  }
  return Status::Ok();
}

// Batching stacks along axis 0, so every input and output needs a dynamic first axis.
Status check_batchable(const runtime::Session& s) {
  auto check = [](const graph::ValueInfo& vi, const char* what) -> Status {
    if (!vi.type.shape) return Status::Ok();
    if (vi.type.shape->empty() || vi.type.shape->front().known()) {
      return invalid_model(std::string("max_batch_size is set, but ") + what + " '" + vi.name + "' (" +
                           vi.type.to_string() + ") has no dynamic first axis to batch along");
    }
    return Status::Ok();
  };
  for (const auto& vi : s.inputs()) DESKML_RETURN_IF_ERROR(check(vi, "input"));
  for (const auto& vi : s.outputs()) DESKML_RETURN_IF_ERROR(check(vi, "output"));
  return Status::Ok();
}

}  // namespace

size_t memory_estimate(const ModelVersionFiles& files, const ModelConfig& config) {
  namespace fs = std::filesystem;
  std::error_code ec;
  size_t bytes = static_cast<size_t>(fs::file_size(files.model, ec));
  if (ec) bytes = 0;
  // A repository version folder may also hold the model's external data files.
  const fs::path dir = files.model.parent_path();
  const std::string leaf = dir.filename().string();
  if (!leaf.empty() && std::all_of(leaf.begin(), leaf.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (e.path() != files.model && e.is_regular_file(ec)) bytes += static_cast<size_t>(e.file_size(ec));
    }
  }
  // The weights as loaded plus their packed copy, per instance.
  return bytes * 2 * static_cast<size_t>(std::max(1, config.instances));
}

size_t current_rss_bytes() {
  std::ifstream in("/proc/self/statm");
  size_t total = 0, resident = 0;
  in >> total >> resident;
  return resident * static_cast<size_t>(::sysconf(_SC_PAGESIZE));
}

Result<std::shared_ptr<LoadedModel>> LoadedModel::load(const std::string& name, const ModelVersionFiles& files,
                                                       const ModelConfig& config, ComputeSlots& slots,
                                                       const Metrics::Model& metrics,
                                                       const std::filesystem::path& plan_cache_dir) {
  const auto t0 = Clock::now();
  auto m = std::shared_ptr<LoadedModel>(new LoadedModel(slots, metrics));
  m->name_ = name;
  m->files_ = files;
  m->config_ = config;
  m->max_batch_ = config.max_batch_size;
  runtime::SessionOptions so;
  so.threads = config.threads > 0 ? config.threads : std::max(1, slots.total() / std::max(1, config.instances));
  so.optimization_level = config.optimization_level;
  so.warmup = config.warmup;
  if (config.plan_cache && !plan_cache_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(plan_cache_dir, ec);  // when it fails, the plan is just not written
    so.plan_cache = true;
    so.plan_cache_dir = plan_cache_dir;
  }
  for (int i = 0; i < std::max(1, config.instances); ++i) {
    DESKML_ASSIGN_OR_RETURN(auto session, runtime::Session::load(files.model, so));
    m->sessions_.push_back(std::move(session));
  }
  const runtime::Session& s = *m->sessions_.front();
  DESKML_RETURN_IF_ERROR(check_specs(config.inputs, s.inputs(), "input"));
  DESKML_RETURN_IF_ERROR(check_specs(config.outputs, s.outputs(), "output"));
  if (m->max_batch_ > 0) DESKML_RETURN_IF_ERROR(check_batchable(s));
  m->resident_bytes_ = memory_estimate(files, config);
  m->load_ms_ = ms_between(t0, Clock::now());
  for (size_t i = 0; i < m->sessions_.size(); ++i) {
    m->workers_.emplace_back([raw = m.get(), i] { raw->work(i); });
  }
  return m;
}

LoadedModel::~LoadedModel() {
  stop();
  for (auto& t : workers_) t.join();
}

namespace {

Status check_input(const std::string& model, const graph::ValueInfo& vi, const Tensor& t) {
  if (!t.defined()) return invalid_argument("input '" + vi.name + "' holds no tensor");
  if (vi.type.dtype != DataType::kUndefined && t.dtype() != vi.type.dtype) {
    return invalid_argument("input '" + vi.name + "' of model '" + model + "' must be " +
                            std::string(dtype_name(vi.type.dtype)) + ", not " + std::string(dtype_name(t.dtype())));
  }
  if (vi.type.shape) {
    const auto& dims = *vi.type.shape;
    bool ok = static_cast<size_t>(t.rank()) == dims.size();
    for (size_t d = 0; ok && d < dims.size(); ++d) ok = !dims[d].known() || dims[d].value == t.shape()[d];
    if (!ok) {
      return invalid_argument("input '" + vi.name + "' of model '" + model + "' must have shape " +
                              vi.type.to_string() + ", not " + shape_to_string(t.shape()));
    }
  }
  return Status::Ok();
}

}  // namespace

Result<Tensors> LoadedModel::prepare(Tensors inputs, int64_t& rows) const {
  const auto& declared = sessions_.front()->inputs();
  const auto& g = sessions_.front()->model().graph;
  bool in_order = inputs.size() == declared.size();
  for (size_t i = 0; in_order && i < inputs.size(); ++i) in_order = inputs[i].first == declared[i].name;
  Tensors result;
  if (in_order) {
    // The common case: every input, in declared order. Checked in place.
    for (size_t i = 0; i < inputs.size(); ++i)
      DESKML_RETURN_IF_ERROR(check_input(name_, declared[i], inputs[i].second));
    result = std::move(inputs);
  } else {
    for (const auto& [input_name, t] : inputs) {
      const std::string& name = input_name;  // clang 14 cannot capture a structured binding
      auto it = std::find_if(declared.begin(), declared.end(), [&](const auto& vi) { return vi.name == name; });
      if (it == declared.end()) return invalid_argument("model '" + name_ + "' has no input named '" + name + "'");
      size_t seen = 0;
      for (const auto& other : inputs) seen += other.first == name;
      if (seen > 1) return invalid_argument("input '" + name + "' is given twice");
      DESKML_RETURN_IF_ERROR(check_input(name_, *it, t));
    }
    // Declared order, and every required input present.
    result.reserve(inputs.size());
    for (const auto& vi : declared) {
      if (const Tensor* t = find_tensor(inputs, vi.name)) {
        result.emplace_back(vi.name, *t);
      } else if (!g.initializers.count(vi.name) && !vi.type.optional) {
        return invalid_argument("input '" + vi.name + "' of model '" + name_ + "' was not provided");
      }
    }
  }
  rows = 0;
  if (max_batch_ > 0) {
    DESKML_ASSIGN_OR_RETURN(rows, batch_rows(result));
    if (rows > max_batch_) {
      return invalid_argument("the request has " + std::to_string(rows) + " rows; model '" + name_ +
                              "' takes at most " + std::to_string(max_batch_) + " per request (max_batch_size)");
    }
  }
  return result;
}

Status LoadedModel::enqueue(const std::shared_ptr<PendingRequest>& request) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return Status(StatusCode::kUnavailable, "model '" + name_ + "' is unloading");
    if (queue_.size() >= config_.max_queue) {
      return Status(StatusCode::kResourceExhausted,
                    "the queue of model '" + name_ + "' is full (" + std::to_string(config_.max_queue) + " requests)");
    }
    queue_.push(request);
    queued_hint_.store(queue_.size(), std::memory_order_release);
  }
  wake_.notify_one();
  return Status::Ok();
}

bool LoadedModel::remove(const std::shared_ptr<PendingRequest>& request) {
  std::lock_guard lock(mutex_);
  if (!queue_.remove(request.get())) return false;
  queued_hint_.store(queue_.size(), std::memory_order_release);
  return true;
}

void LoadedModel::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
}

size_t LoadedModel::outstanding() const {
  std::lock_guard lock(mutex_);
  return queue_.size() + running_;
}

std::vector<std::shared_ptr<PendingRequest>> LoadedModel::take_batch(std::unique_lock<std::mutex>& lock) {
  // The batch is the head of the queue and every later request with the head's
  // signature that still fits. Requests answered meanwhile (cancelled, expired)
  // are dropped on the way. When the batcher may wait for company, a first sweep
  // sizes the batch and decides; the last sweep takes it out.
  const PendingRequest* head = nullptr;
  int64_t rows = 0;
  auto pick = [&](const PendingRequest& r) {
    if (r.state.load(std::memory_order_acquire) != PendingRequest::kQueued) return RequestQueue::Pick::kDrop;
    if (head == nullptr) {
      head = &r;
    } else if (r.signature != head->signature || rows + r.rows > max_batch_ || !stackable(r.inputs, head->inputs)) {
      return RequestQueue::Pick::kLeave;
    }
    rows += r.rows;
    const bool last = max_batch_ <= 0 || rows == max_batch_;
    return last ? RequestQueue::Pick::kStop : RequestQueue::Pick::kTake;
  };
  // With no queue delay configured there is nothing to wait for: one sweep
  // takes the batch.
  const bool may_wait = max_batch_ > 0 && config_.max_queue_delay.count() > 0;
  while (may_wait) {
    head = nullptr;
    rows = 0;
    queue_.sweep(pick, nullptr);
    queued_hint_.store(queue_.size(), std::memory_order_release);
    if (head == nullptr) return {};
    const auto& preferred = config_.preferred_batch_sizes;
    const bool full = rows >= max_batch_ || std::find(preferred.begin(), preferred.end(), rows) != preferred.end();
    // Wait for company only when it is likely to come: other requests are
    // running, or the last batch had more rows than this one. A lone caller
    // never waits.
    const bool expect_more = running_ > 0 || last_batch_rows_ > rows;
    const auto until = head->enqueued + config_.max_queue_delay;
    if (full || stopping_ || !expect_more || Clock::now() >= until) break;
    const size_t before = queue_.size();
    wake_.wait_until(lock, until, [&] { return stopping_ || queue_.size() != before; });
    if (queue_.empty()) return {};
  }
  // The choice made again (or for the first time), now taking the requests out
  // (kStop marks the one that filled the batch: it is taken too).
  std::vector<std::shared_ptr<PendingRequest>> picked;
  head = nullptr;
  rows = 0;
  bool filled = false;
  queue_.sweep(
      [&](const PendingRequest& r) {
        if (filled) return RequestQueue::Pick::kStop;
        auto p = pick(r);
        if (p == RequestQueue::Pick::kStop) {
          filled = true;
          p = RequestQueue::Pick::kTake;
        }
        return p;
      },
      &picked);
  last_batch_rows_ = rows;
  std::erase_if(picked, [](const auto& r) { return !r->start(); });
  queued_hint_.store(queue_.size(), std::memory_order_release);
  // Sampled once per batch: a gauge update per request costs more than the request.
  metrics_.queue_depth->Set(static_cast<double>(queue_.size()));
  return picked;
}

void LoadedModel::work(size_t instance) {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (queue_.empty() && !stopping_) {
      // Right after a batch, the next request often arrives within microseconds
      // (a caller answering its result with another request). Waiting briefly
      // without sleeping saves the wake-up latency; the bound keeps an idle
      // model at zero CPU.
      lock.unlock();
      const auto spin_until = Clock::now() + kSpinAfterBatch;
      for (unsigned i = 1; queued_hint_.load(std::memory_order_acquire) == 0; ++i) {
        cpu_relax();
        if (i % 64 == 0 && Clock::now() >= spin_until) break;
      }
      lock.lock();
    }
    wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) {
      if (stopping_) return;
      continue;
    }
    auto batch = take_batch(lock);
    if (batch.empty()) continue;
    running_ += batch.size();
    lock.unlock();
    run_batch(instance, batch);  // takes them off running_ when answered
    batch.clear();
    lock.lock();
  }
}

void LoadedModel::run_batch(size_t instance, std::vector<std::shared_ptr<PendingRequest>>& batch) {
  const runtime::Session& session = *sessions_[instance];
  runtime::NamedValues feeds;
  runtime::RunOptions options;
  options.deadline = Clock::time_point::min();
  for (const auto& r : batch) {
    options.deadline = std::max(options.deadline, r->options.deadline);
  }
  if (batch.size() == 1) {
    for (const auto& [name, t] : batch[0]->inputs) feeds.emplace_back(name, Value::from_tensor(t));
    if (batch[0]->options.cancel) options.cancel = batch[0]->options.cancel->flag();
  } else {
    std::vector<const Tensors*> parts;
    for (const auto& r : batch) parts.push_back(&r->inputs);
    for (auto& [name, t] : stack_requests(parts)) feeds.emplace_back(name, Value::from_tensor(std::move(t)));
  }

  Result<runtime::NamedValues> out = internal_error("not run");
  const auto start = Clock::now();
  {
    SlotLease lease(slots_, session.threads());
    out = session.run(feeds, options);
  }
  const auto end = Clock::now();
  const double compute_ms = ms_between(start, end);
  metrics_.compute_seconds->Observe(compute_ms / 1e3);
  metrics_.batch_size->Observe(static_cast<double>(batch.size()));
  std::vector<double> queue_seconds;
  queue_seconds.reserve(batch.size());
  for (const auto& r : batch) queue_seconds.push_back(ms_between(r->enqueued, start) / 1e3);
  Metrics::observe_latencies(*metrics_.queue_seconds, queue_seconds);

  Result<Tensors> all = out.ok() ? Result<Tensors>(Tensors{}) : Result<Tensors>(out.status());
  if (out.ok()) {
    for (auto& [name, v] : *out) {
      if (!v.is_tensor()) {
        all = unsupported("output '" + name + "' is not a tensor; the runtime serves tensor outputs only");
        break;
      }
      all->emplace_back(name, std::move(v.tensor));
    }
  }
  if (all.ok()) {
    answer_batch(batch, std::move(all).value(), queue_seconds, compute_ms);
  } else {
    for (auto& r : batch) r->finish(PendingRequest::kRunning, all.status());
  }
  std::lock_guard lock(mutex_);
  running_ -= batch.size();
}

// Answers a batch's requests with their rows of `outputs`: first every request
// is claimed (those cancelled or expired meanwhile were answered already), then
// the bookkeeping is done once for the batch, then each caller's callback runs.
// A request whose batch has finished running gets its result even if it is
// cancelled while earlier callbacks of the batch run.
void LoadedModel::answer_batch(std::vector<std::shared_ptr<PendingRequest>>& batch, Tensors outputs,
                               const std::vector<double>& queue_seconds, double compute_ms) {
  std::vector<int64_t> rows;
  rows.reserve(batch.size());
  for (const auto& r : batch) rows.push_back(r->rows);
  std::vector<Tensors> parts;
  if (batch.size() == 1) {
    parts.push_back(std::move(outputs));
  } else {
    auto split = split_outputs(outputs, rows);
    if (!split.ok()) {
      for (auto& r : batch) r->finish(PendingRequest::kRunning, split.status());
      return;
    }
    parts = std::move(split).value();
  }
  std::vector<PendingRequest*> claimed;
  std::vector<InferResponse> responses;
  claimed.reserve(batch.size());
  responses.reserve(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    PendingRequest& r = *batch[i];
    if (!r.claim(PendingRequest::kRunning)) continue;
    InferResponse& resp = responses.emplace_back();
    resp.model = name_;
    resp.version = files_.version;
    resp.request_id = std::move(r.options.request_id);  // claimed: nobody else reads it now
    resp.outputs = std::move(parts[i]);
    resp.batch_size = static_cast<int>(batch.size());
    resp.queue_ms = queue_seconds[i] * 1e3;
    resp.compute_ms = compute_ms;
    claimed.push_back(&r);
  }
  if (claimed.empty()) return;
  if (auto* hook = claimed.front()->on_finish_batch) {
    hook(claimed.data(), responses.data(), claimed.size(), claimed.front()->on_finish_arg);
  }
  for (size_t i = 0; i < claimed.size(); ++i) claimed[i]->deliver(std::move(responses[i]));
}

}  // namespace deskml::serving
