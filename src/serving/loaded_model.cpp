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
                                                       const Metrics::Model& metrics) {
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
    queue_.insert(request);
    queued_hint_.store(queue_.size(), std::memory_order_release);
  }
  wake_.notify_one();
  return Status::Ok();
}

bool LoadedModel::remove(const std::shared_ptr<PendingRequest>& request) {
  std::lock_guard lock(mutex_);
  if (queue_.erase(request) == 0) return false;
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
  // One pass in queue order picks the batch: the head, then every later request
  // with the head's signature that still fits. Iterators, so taking them out
  // needs no second search.
  std::vector<decltype(queue_)::iterator> picked;
  for (;;) {
    picked.clear();
    int64_t rows = 0;
    const PendingRequest* head = nullptr;
    for (auto it = queue_.begin(); it != queue_.end();) {
      const PendingRequest& r = **it;
      // Answered requests (cancelled, expired) may linger until their canceller
      // takes them out; drop them here so they never start.
      if (r.state.load(std::memory_order_acquire) != PendingRequest::kQueued) {
        it = queue_.erase(it);
        continue;
      }
      if (head == nullptr) {
        head = &r;
      } else if (r.signature != head->signature || rows + r.rows > max_batch_ || !stackable(r.inputs, head->inputs)) {
        ++it;
        continue;
      }
      picked.push_back(it);
      rows += r.rows;
      if (max_batch_ <= 0 || rows == max_batch_) break;
      ++it;
    }
    queued_hint_.store(queue_.size(), std::memory_order_release);
    if (picked.empty()) return {};
    if (max_batch_ <= 0) break;
    const auto& preferred = config_.preferred_batch_sizes;
    const bool full = rows >= max_batch_ || std::find(preferred.begin(), preferred.end(), rows) != preferred.end();
    // Wait for company only when it is likely to come: other requests are
    // running, or the last batch had more rows than this one. A lone caller
    // never waits.
    const bool expect_more = running_ > 0 || last_batch_rows_ > rows;
    const auto until = head->enqueued + config_.max_queue_delay;
    if (full || stopping_ || config_.max_queue_delay.count() == 0 || !expect_more || Clock::now() >= until) {
      last_batch_rows_ = rows;
      break;
    }
    const size_t before = queue_.size();
    wake_.wait_until(lock, until, [&] { return stopping_ || queue_.size() != before; });
    if (queue_.empty()) return {};
  }
  std::vector<std::shared_ptr<PendingRequest>> started;
  started.reserve(picked.size());
  for (const auto& it : picked) {
    std::shared_ptr<PendingRequest> r = *it;
    queue_.erase(it);
    if (r->start()) started.push_back(std::move(r));
  }
  queued_hint_.store(queue_.size(), std::memory_order_release);
  // Sampled once per batch: a gauge update per request costs more than the request.
  metrics_.queue_depth->Set(static_cast<double>(queue_.size()));
  return started;
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
  std::vector<int64_t> rows;
  runtime::RunOptions options;
  options.deadline = Clock::time_point::min();
  for (const auto& r : batch) {
    rows.push_back(r->rows);
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

  auto respond = [&](size_t i, Result<Tensors> outputs) {
    const auto& r = batch[i];
    metrics_.queue_seconds->Observe(ms_between(r->enqueued, start) / 1e3);
    if (!outputs.ok()) {
      r->finish(PendingRequest::kRunning, outputs.status());
      return;
    }
    InferResponse resp;
    resp.model = name_;
    resp.version = files_.version;
    resp.request_id = r->options.request_id;
    resp.outputs = std::move(outputs).value();
    resp.batch_size = static_cast<int>(batch.size());
    resp.queue_ms = ms_between(r->enqueued, start);
    resp.compute_ms = compute_ms;
    r->finish(PendingRequest::kRunning, std::move(resp));
  };

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
  if (batch.size() == 1 || !all.ok()) {
    for (size_t i = 0; i < batch.size(); ++i) respond(i, all);
  } else {
    auto parts = split_outputs(*all, rows);
    for (size_t i = 0; i < batch.size(); ++i) {
      respond(i, parts.ok() ? Result<Tensors>(std::move((*parts)[i])) : Result<Tensors>(parts.status()));
    }
  }
  {
    std::lock_guard lock(mutex_);
    running_ -= batch.size();
  }
}

}  // namespace deskml::serving
