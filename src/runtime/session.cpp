#include "runtime/session.hpp"

#include <omp.h>

#include <algorithm>
#include <fstream>
#include <mutex>
#include <new>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/allocation_scope.hpp"
#include "graph/shape_inference.hpp"
#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/prepacked_weights.hpp"
#include "onnx/model_loader.hpp"
#include "optimizer/optimizer.hpp"
#include "plan_cache/plan_cache.hpp"
#include "runtime/batch_tiling.hpp"
#include "runtime/execution_plan.hpp"
#include "runtime/run_arena.hpp"

namespace deskml::runtime {

int physical_cores() {
  // Count distinct (physical id, core id) pairs; fall back to logical CPUs.
  std::ifstream in("/proc/cpuinfo");
  std::set<std::pair<std::string, std::string>> cores;
  std::string line, phys = "0";
  while (std::getline(in, line)) {
    auto value = [&] { return line.substr(line.find(':') + 1); };
    if (line.rfind("physical id", 0) == 0) phys = value();
    if (line.rfind("core id", 0) == 0) cores.emplace(phys, value());
  }
  if (!cores.empty()) return static_cast<int>(cores.size());
  return std::max(1u, std::thread::hardware_concurrency());
}

// Small models (an MLP that runs in microseconds) lose time to the fork and join
// of a parallel region: waking the other threads costs more than they save. For
// each input shape the first runs alternate between the session's threads and
// one thread; the faster choice (by best time) sticks. Warm runs that take over
// a millisecond with all threads settle it at once: parallel wins by far there.
struct Session::ThreadTuning {
  struct Entry {
    int seen = 0;          // trial runs recorded, the discarded first one included
    int runs[2] = {0, 0};  // [0]: all threads, [1]: one thread
    double best_us[2] = {1e300, 1e300};
    int chosen = 0;  // 0 = still measuring
  };
  static constexpr int kTrials = 5;
  static constexpr size_t kMaxShapes = 256;
  static constexpr double kBigRunUs = 1000;
  std::mutex mutex;
  std::unordered_map<uint64_t, Entry> entries;

  // The threads for the next trial run: all threads for the first three (the
  // first of a shape pays oneDNN's JIT and is discarded; the next two settle
  // big models without ever running them on one thread), then alternating.
  static int next_trial(const Entry& e, int all) {
    if (e.seen < 3) return all;
    return (e.runs[0] + e.runs[1]) % 2 == 0 ? 1 : all;
  }

  // Best times, not means: a trial that waits for a descheduled thread must not
  // decide for every later run.
  void record(uint64_t key, int threads, int all, double us) {
    std::lock_guard lock(mutex);
    auto it = entries.find(key);
    if (it == entries.end() || it->second.chosen) return;
    Entry& e = it->second;
    if (e.seen++ == 0) return;
    const int k = threads == all ? 0 : 1;
    e.runs[k] += 1;
    e.best_us[k] = std::min(e.best_us[k], us);
    if (e.runs[0] >= 2 && e.best_us[0] > kBigRunUs) e.chosen = all;
    if (!e.chosen && e.runs[0] >= kTrials && e.runs[1] >= kTrials) {
      e.chosen = e.best_us[1] < 0.9 * e.best_us[0] ? 1 : all;
    }
  }
};

Session::~Session() {
  if (plan_write_.valid()) plan_write_.wait();  // the task reads this session's model
}

namespace {

constexpr uint64_t kFnvPrime = 1099511628211ull;

// A hash of the input names, types and shapes of a run.
uint64_t feed_signature(const NamedValues& feeds) {
  uint64_t key = 1469598103934665603ull;
  auto mix = [&](uint64_t v) { key = (key ^ v) * kFnvPrime; };
  for (const auto& [name, v] : feeds) {
    mix(std::hash<std::string>{}(name));
    mix(v.is_tensor() ? static_cast<uint64_t>(v.tensor.dtype()) : 0xffu);
    if (v.is_tensor()) {
      for (int64_t d : v.tensor.shape()) mix(static_cast<uint64_t>(d));
    }
    mix(0x9e3779b97f4a7c15ull);
  }
  return key;
}

}  // namespace

int Session::pick_threads(uint64_t key, bool& trial) const {
  trial = false;
  if (threads_ <= 1 || !tuning_) return threads_;
  std::lock_guard lock(tuning_->mutex);
  auto it = tuning_->entries.find(key);
  if (it == tuning_->entries.end()) {
    if (tuning_->entries.size() >= ThreadTuning::kMaxShapes) return threads_;
    it = tuning_->entries.emplace(key, ThreadTuning::Entry{}).first;
  }
  const auto& e = it->second;
  if (e.chosen) return e.chosen;
  trial = true;
  return ThreadTuning::next_trial(e, threads_);
}

namespace {

// The settings that change the optimized graph, for the plan cache's key.
std::string plan_options(const SessionOptions& o) {
  return "level=" + std::to_string(o.optimization_level) + " channels_last=" + std::to_string(o.channels_last) +
         " winograd=" + std::to_string(o.winograd) + " blocked=" + std::to_string(o.blocked_layout);
}

}  // namespace

Result<std::string> plan_cache_key(const std::filesystem::path& model_file, const SessionOptions& options) {
  return plan_cache::plan_key(model_file, plan_options(options));
}

const char* PlanCacheReport::use_name() const {
  switch (use) {
    case Use::kOff:
      return "off";
    case Use::kHit:
      return "hit";
    case Use::kWritten:
      return "written";
    case Use::kNotWritten:
      return "not written";
  }
  return "off";
}

Result<std::unique_ptr<Session>> Session::load(const std::filesystem::path& model_path, const SessionOptions& options) {
  // The plan cache stands for the CPU backend's plan only.
  if (!options.plan_cache || !options.providers.empty()) {
    DESKML_ASSIGN_OR_RETURN(graph::Model model, onnx_import::load_model(model_path));
    return create(std::move(model), options);
  }
  PlanCacheReport report;
  report.file = plan_cache::plan_path(model_path, options.plan_cache_dir);
  auto key = plan_cache_key(model_path, options);
  if (key.ok()) {
    auto cached = plan_cache::read_plan(report.file, *key);
    if (cached.ok()) {
      kernels::cpu::offer_prepacked(cached->packed, cached->mapping);
      auto session = create_planned(std::move(cached->model), options);
      if (session.ok()) {
        report.use = PlanCacheReport::Use::kHit;
        (*session)->plan_cache_ = report;
        return session;
      }
      report.detail = "the cached plan did not build: " + session.status().to_string();
    } else if (cached.status().code() != StatusCode::kNotFound) {
      report.detail = cached.status().to_string();
    }
  }
  onnx_import::LoadOptions lo;
  std::vector<std::filesystem::path> external_files;
  lo.external_files = &external_files;
  DESKML_ASSIGN_OR_RETURN(graph::Model model, onnx_import::load_model(model_path, lo));
  SessionOptions no_warmup = options;
  no_warmup.warmup = false;
  DESKML_ASSIGN_OR_RETURN(auto session, create(std::move(model), no_warmup));
  // The warm-up's weight packing is recorded for the cache file. Only the
  // warm-up's: every initializer is alive all through it, so a recorded source
  // address that matches one is that initializer (the writer matches by address).
  kernels::cpu::PackRecorder recorder;
  if (options.warmup) session->warm_up(options.batch_chunk);
  report.use = PlanCacheReport::Use::kNotWritten;
  if (!key.ok()) {
    report.detail = key.status().to_string();
  } else if (!external_files.empty()) {
    report.detail = "the model keeps its weights in external data files, which its key would not cover";
  } else {
    // Written in the background: the caller has its session now. The task holds
    // what it writes (the model and the packed copies), so nothing changes under it.
    session->plan_write_ = std::async(std::launch::async, [model = session->model_, packed = recorder.take(),
                                                           file = report.file, key = *key]() {
                             return plan_cache::write_plan(file, key, *model, packed);
                           }).share();
    report.use = PlanCacheReport::Use::kWritten;
  }
  session->plan_cache_ = report;
  return session;
}

PlanCacheReport Session::plan_cache_report() const {
  PlanCacheReport report = plan_cache_;
  if (plan_write_.valid()) {
    const Status written = plan_write_.get();
    if (!written.ok()) {
      report.use = PlanCacheReport::Use::kNotWritten;
      report.detail = written.to_string();
    }
  }
  return report;
}

Result<std::unique_ptr<Session>> Session::create(graph::Model model, const SessionOptions& options) {
  // Inference is advisory here: the executor works from the actual tensors, so a
  // model our rules cannot follow still runs.
  try {
    (void)graph::infer_shapes(model.graph);
  } catch (const Error& e) {
    return e.status();  // a hostile attribute (wrong type) is a Status, not an escaping exception
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kResourceExhausted, "out of memory while inferring shapes");
  }
  const kernels::KernelRegistry& first =
      options.providers.empty() ? kernels::cpu::cpu_registry() : *options.providers.front();
  try {
    optimizer::OptimizeOptions oo;
    oo.level = options.optimization_level;
    oo.channels_last = options.channels_last;
    oo.winograd = options.winograd;
    oo.blocked = options.blocked_layout;
    DESKML_RETURN_IF_ERROR(optimizer::optimize(model, first, oo));
  } catch (const Error& e) {
    return e.status();
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kResourceExhausted, "out of memory while optimising the model");
  }
  return create_planned(std::move(model), options);
}

Result<std::unique_ptr<Session>> Session::create_planned(graph::Model model, const SessionOptions& options) {
  std::vector<const kernels::KernelRegistry*> providers = options.providers;
  if (providers.empty()) providers.push_back(&kernels::cpu::cpu_registry());
  auto session = std::unique_ptr<Session>(new Session());
  session->model_ = std::make_shared<const graph::Model>(std::move(model));
  session->threads_ = options.threads > 0 ? options.threads : physical_cores();
  session->tuning_ = std::make_unique<ThreadTuning>();
  session->arenas_ = std::make_unique<RunArenas>();
  const auto& g = session->model_->graph;
  for (const auto& vi : g.inputs) session->inputs_.push_back(vi);
  try {
    DESKML_ASSIGN_OR_RETURN(session->plan_, ExecutionPlan::build(g, providers));
  } catch (const Error& e) {
    return e.status();
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kResourceExhausted, "out of memory while planning the model");
  }
  if (options.warmup) session->warm_up(options.batch_chunk);
  return session;
}

void Session::warm_up(int64_t chunk) {
  const auto& g = model_->graph;
  // Control flow runs as long as its data says; zeros are no basis for that.
  for (const auto& node : g.nodes) {
    for (const auto& [key, attr] : node.attributes) {
      if (std::holds_alternative<graph::GraphPtr>(attr)) return;
    }
  }
  NamedValues feeds;
  for (const auto& vi : g.inputs) {
    if (g.initializers.count(vi.name)) continue;
    const auto& t = vi.type;
    if (t.kind != graph::ValueType::Kind::kTensor || !t.shape || t.dtype == DataType::kUndefined ||
        t.dtype == DataType::kString) {
      if (t.optional) continue;
      return;  // nothing sensible to synthesise
    }
    // A warm-up must stay cheap; declared dims are untrusted (they may overflow).
    constexpr int64_t kMaxWarmupElements = int64_t{1} << 26;
    Shape shape;
    int64_t numel = 1;
    for (const auto& d : *t.shape) {
      const int64_t v = d.known() ? d.value : 1;
      if (v > 0 && numel > kMaxWarmupElements / v) return;
      numel *= v;
      shape.push_back(v);
    }
    feeds.emplace_back(vi.name, Value::from_tensor(Tensor::zeros(t.dtype, shape)));
  }
  // Zeros may be invalid data for some models, and a data-driven Loop may not
  // end on them: errors are ignored and the run is bounded.
  RunOptions ro;
  ro.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  int64_t largest = 0;
  ro.largest_tensor_bytes = &largest;
  // A model that keeps samples apart was just run on one sample (its batch dims
  // are symbolic, so 1): its largest tensor sizes the chunks of larger batches.
  if (run(feeds, ro).ok() && chunk != 0 && batch_separable(g)) {
    batch_chunk_ = chunk > 0 ? chunk : runtime::batch_chunk(largest, last_level_cache_bytes(), g.nodes.size());
  }
}

Status Session::validate_feed(const graph::ValueInfo& info, const Value& value) const {
  const auto& type = info.type;
  if (type.optional && value.is_none()) return Status::Ok();
  if (type.kind == graph::ValueType::Kind::kSequence) {
    if (!value.is_sequence()) return invalid_argument("input '" + info.name + "' expects a sequence of tensors");
    return Status::Ok();
  }
  if (!value.is_tensor()) {
    return invalid_argument("input '" + info.name + "' expects a tensor");
  }
  // An empty tensor may carry huge other dims ([0, 2^62, 2^62]); kernels multiply
  // runs of dims, so every feed gets the element limit on its non-zero dims.
  int64_t nonzero = 1;
  for (int64_t d : value.tensor.shape()) {
    if (d == 0) continue;
    if (d < 0 || nonzero > kMaxTensorElements / d) {
      return invalid_argument("input '" + info.name + "' has shape " + value.tensor.description() +
                              ", beyond the element limit");
    }
    nonzero *= d;
  }
  const Tensor& t = value.tensor;
  if (t.dtype() == DataType::kBool) {
    // Bytes other than 0/1 read as bool are undefined behaviour in every kernel.
    const auto* bytes = static_cast<const uint8_t*>(t.raw_data());
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (bytes[i] > 1) return invalid_argument("input '" + info.name + "' is bool but holds a byte other than 0/1");
    }
  }
  if (type.dtype != DataType::kUndefined && t.dtype() != type.dtype) {
    return invalid_argument("input '" + info.name + "' expects " + std::string(dtype_name(type.dtype)) + ", got " +
                            std::string(dtype_name(t.dtype())));
  }
  if (type.shape) {
    const auto& dims = *type.shape;
    if (dims.size() != t.shape().size()) {
      return invalid_argument("input '" + info.name + "' expects shape " + type.to_string() + ", got " +
                              t.description());
    }
    for (size_t i = 0; i < dims.size(); ++i) {
      if (dims[i].known() && dims[i].value != t.shape()[i]) {
        return invalid_argument("input '" + info.name + "' expects shape " + type.to_string() + ", got " +
                                t.description());
      }
    }
  }
  return Status::Ok();
}

Result<NamedValues> Session::run(const NamedValues& feeds, const RunOptions& options) const {
  if (const int64_t batch = tiled_batch(feeds); batch > 0) return run_tiled(feeds, options, batch);
  return run_whole(feeds, options);
}

int64_t Session::tiled_batch(const NamedValues& feeds) const {
  if (batch_chunk_ <= 0 || feeds.empty()) return 0;
  int64_t batch = -1;
  for (const auto& [name, v] : feeds) {
    if (!v.is_tensor() || v.tensor.rank() == 0) return 0;
    if (batch >= 0 && v.tensor.shape().front() != batch) return 0;
    batch = v.tensor.shape().front();
  }
  return batch > batch_chunk_ ? batch : 0;
}

Result<NamedValues> Session::run_tiled(const NamedValues& feeds, const RunOptions& options, int64_t batch) const {
  std::vector<NamedValues> parts;
  for (int64_t begin = 0; begin < batch; begin += batch_chunk_) {
    const int64_t count = std::min(batch_chunk_, batch - begin);
    NamedValues part;
    for (const auto& [name, v] : feeds) part.emplace_back(name, Value::from_tensor(v.tensor.rows(begin, count)));
    DESKML_ASSIGN_OR_RETURN(NamedValues out, run_whole(part, options));
    parts.push_back(std::move(out));
  }
  // The parts' outputs, concatenated along axis 0. batch_separable() promised
  // that shape; an output that breaks it is not pieced together but run whole.
  NamedValues joined;
  for (size_t i = 0; i < parts.front().size(); ++i) {
    const Value& first = parts.front()[i].second;
    if (!first.is_tensor() || first.tensor.rank() == 0 || first.tensor.dtype() == DataType::kString) {
      return run_whole(feeds, options);
    }
    Shape shape = first.tensor.shape();
    shape[0] = 0;
    for (const NamedValues& part : parts) {
      const Value& v = part[i].second;
      if (!v.is_tensor() || v.tensor.dtype() != first.tensor.dtype() || v.tensor.rank() != first.tensor.rank() ||
          !std::equal(v.tensor.shape().begin() + 1, v.tensor.shape().end(), first.tensor.shape().begin() + 1)) {
        return run_whole(feeds, options);
      }
      shape[0] += v.tensor.shape().front();
    }
    if (shape[0] != batch) return run_whole(feeds, options);
    std::vector<const Tensor*> pieces;
    for (const NamedValues& part : parts) pieces.push_back(&part[i].second.tensor);
    joined.emplace_back(parts.front()[i].first, Value::from_tensor(Tensor::concat_rows(pieces)));
  }
  return joined;
}

Result<NamedValues> Session::run_whole(const NamedValues& feeds, const RunOptions& options) const {
  const auto& g = model_->graph;
  std::vector<Value> inputs(g.inputs.size());
  std::vector<bool> fed(g.inputs.size(), false);
  for (const auto& [name, value] : feeds) {
    size_t i = 0;
    while (i < g.inputs.size() && g.inputs[i].name != name) ++i;
    if (i == g.inputs.size()) return invalid_argument("the model has no input named '" + name + "'");
    if (fed[i]) return invalid_argument("input '" + name + "' is fed twice");
    DESKML_RETURN_IF_ERROR(validate_feed(g.inputs[i], value));
    inputs[i] = value;
    fed[i] = true;
  }
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const bool optional = g.initializers.count(g.inputs[i].name) || g.inputs[i].type.optional;
    if (!fed[i] && !optional) return invalid_argument("input '" + g.inputs[i].name + "' was not provided");
  }
  const uint64_t feeds_key = feed_signature(feeds);
  bool trial = false;
  const int threads = options.threads > 0 ? std::min(options.threads, threads_) : pick_threads(feeds_key, trial);
  omp_set_num_threads(threads);
  // The run's tensors go where a recorded run of these inputs and threads planned them (run_arena.hpp).
  const uint64_t arena_key = (feeds_key ^ static_cast<uint64_t>(threads)) * kFnvPrime;
  const std::shared_ptr<AllocationScope> arena = arenas_->begin(arena_key);
  std::vector<Value> outputs;
  Status status;
  try {
    const RunControl control{
        threads, options.deadline, options.cancel, options.profile, 0, options.largest_tensor_bytes};
    const auto start = trial ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    {
      const AllocationScope::Guard scope(arena.get());
      auto ran = plan_->run(std::move(inputs), nullptr, control);
      if (ran.ok()) {
        outputs = std::move(ran).value();
      } else {
        status = ran.status();
      }
    }
    if (status.ok() && trial) {
      tuning_->record(feeds_key, threads, threads_,
                      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
    }
  } catch (const Error& e) {
    status = e.status();
  } catch (const std::bad_alloc&) {
    status = Status(StatusCode::kResourceExhausted, "out of memory while running the model");
  }
  arenas_->end(arena_key, arena, status.ok());
  DESKML_RETURN_IF_ERROR(status);
  NamedValues named;
  for (size_t i = 0; i < outputs.size(); ++i) named.emplace_back(g.outputs[i].name, std::move(outputs[i]));
  return named;
}

Result<std::vector<std::pair<std::string, Tensor>>> Session::run(
    const std::vector<std::pair<std::string, Tensor>>& feeds) const {
  NamedValues values;
  for (const auto& [name, t] : feeds) values.emplace_back(name, Value::from_tensor(t));
  DESKML_ASSIGN_OR_RETURN(NamedValues out, run(values));
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (auto& [name, v] : out) {
    if (!v.is_tensor() && !v.is_none()) return unsupported("output '" + name + "' is a sequence, not a tensor");
    tensors.emplace_back(name, v.tensor);
  }
  return tensors;
}

}  // namespace deskml::runtime
