#include "serving/pipeline.hpp"

#include <algorithm>
#include <atomic>
#include <deque>
#include <exception>
#include <mutex>

#include "serving/model_name.hpp"
#include "serving/steps/step_registry.hpp"

namespace deskml::serving {

struct Pipeline::StepNode {
  std::string name;
  std::string kind;
  int64_t line = 0;
  std::string model;  // kind "model"
  std::optional<int64_t> version;
  std::unique_ptr<Step> step;                       // built-in kinds; null for model steps
  StepPorts ports;                                  // built-in kinds
  std::vector<std::pair<std::string, Ref>> inputs;  // port -> source (list steps: "0", "1", ...)
  std::vector<std::string> used_ports;              // outputs read by other steps or the ensemble
  std::vector<size_t> upstream;                     // distinct steps this one reads
  std::vector<size_t> downstream;                   // distinct steps reading this one
  bool feeds_output = false;

  bool is_model() const { return step == nullptr; }
  std::string label() const { return "step '" + name + "'" + (line > 0 ? " (line " + std::to_string(line) + ")" : ""); }
};

struct Pipeline::RunState {
  std::shared_ptr<const Pipeline> pipeline;
  Tensors inputs;
  InferOptions options;
  ModelCall call;
  std::function<void(Result<Tensors>)> done;
  std::shared_ptr<CancelToken> token = std::make_shared<CancelToken>();  // given to every model call
  uint64_t caller_cancel = 0;                                            // registration on options.cancel

  std::mutex mu;                     // guards everything below
  std::vector<Tensors> results;      // per step, its used output ports once finished
  std::vector<size_t> waiting;       // per step, upstream steps not yet finished
  std::vector<size_t> readers_left;  // per step, downstream steps that have not yet taken its outputs
  size_t succeeded = 0;
  int64_t active = 0;  // drivers and model calls in flight; `done` fires when it drops to 0
  std::optional<Status> error;

  // Under `mu`. The model calls in flight are cancelled by cancel_calls(), which
  // must run outside `mu`: cancelling answers them, and their answers take `mu`.
  void fail(Status status) {
    if (error) return;
    error = std::move(status);
    cancel_pending.store(true, std::memory_order_release);
  }
  void cancel_calls() {
    if (cancel_pending.exchange(false, std::memory_order_acq_rel)) token->cancel();
  }
  std::atomic<bool> cancel_pending{false};
  // The caller's cancellation or an expired deadline, as a Status.
  std::optional<Status> interrupted(const std::string& when) const {
    if (options.cancel && options.cancel->cancelled()) {
      return Status(StatusCode::kCancelled, "ensemble: cancelled by the caller " + when);
    }
    if (Clock::now() >= options.deadline) {
      return Status(StatusCode::kDeadlineExceeded, "ensemble: deadline exceeded " + when);
    }
    return std::nullopt;
  }
};

namespace {

using RawInputs = std::vector<std::vector<std::pair<std::string, std::string>>>;

Status ensemble_error(const std::string& message) { return invalid_argument("ensemble: " + message); }

std::string at_line(const toml::node& node) {
  const auto line = node.source().begin.line;
  return line > 0 ? " (line " + std::to_string(line) + ")" : "";
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

bool contains(const std::vector<std::string>& items, const std::string& s) {
  return std::find(items.begin(), items.end(), s) != items.end();
}

// Ensemble input, output and step names: 1-128 of [A-Za-z0-9_-]. No '.', which separates
// a step from its port in references.
Status check_name(const std::string& what, const std::string& name) {
  if (name.empty() || name.size() > 128) return ensemble_error(what + " '" + name + "' must be 1-128 characters");
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return ensemble_error(what + " '" + name + "' may hold only letters, digits, '_' and '-'");
  }
  return Status::Ok();
}

Result<std::vector<std::string>> name_list(const toml::table& ensemble, std::string_view key) {
  const toml::node* node = ensemble.get(key);
  const std::string usage = std::string(key) + " = [\"name\", ...]";
  if (node == nullptr) return ensemble_error("missing " + usage);
  const toml::array* array = node->as_array();
  if (array == nullptr || array->empty())
    return ensemble_error(std::string(key) + at_line(*node) + " must be " + usage);
  std::vector<std::string> names;
  for (const toml::node& e : *array) {
    const auto* s = e.as_string();
    if (s == nullptr) return ensemble_error(std::string(key) + at_line(*node) + " must be a list of strings");
    DESKML_RETURN_IF_ERROR(check_name(std::string(key) + " entry", s->get()));
    if (contains(names, s->get())) return ensemble_error(std::string(key) + " lists '" + s->get() + "' twice");
    names.push_back(s->get());
  }
  return names;
}

Status check_keys(const toml::table& table, std::initializer_list<std::string_view> known, const std::string& where) {
  for (const auto& [key, node] : table) {
    if (std::find(known.begin(), known.end(), key.str()) != known.end()) continue;
    std::string list;
    for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
    return ensemble_error(where + ": unknown key '" + std::string(key.str()) + "'" + at_line(node) +
                          " (known: " + list + ")");
  }
  return Status::Ok();
}

}  // namespace

Pipeline::Pipeline() = default;
Pipeline::~Pipeline() = default;

Result<std::shared_ptr<Pipeline>> Pipeline::parse(const toml::table& ensemble, const std::filesystem::path& base_dir) {
  std::shared_ptr<Pipeline> pipeline(new Pipeline());
  DESKML_RETURN_IF_ERROR(pipeline->build(ensemble, base_dir));
  return pipeline;
}

Status Pipeline::build(const toml::table& ensemble, const std::filesystem::path& base_dir) {
  DESKML_RETURN_IF_ERROR(check_keys(ensemble, {"inputs", "outputs", "step", "output_map"}, "[ensemble]"));
  DESKML_ASSIGN_OR_RETURN(input_names_, name_list(ensemble, "inputs"));
  DESKML_ASSIGN_OR_RETURN(output_names_, name_list(ensemble, "outputs"));
  const toml::node* steps = ensemble.get("step");
  const toml::array* array = steps != nullptr ? steps->as_array() : nullptr;
  if (array == nullptr || array->empty()) return ensemble_error("needs at least one [[ensemble.step]]");
  if (array->size() > kMaxSteps) return ensemble_error("more than " + std::to_string(kMaxSteps) + " steps");
  RawInputs raw_inputs;
  for (const toml::node& node : *array) {
    const toml::table* table = node.as_table();
    if (table == nullptr) return ensemble_error("every entry of ensemble.step must be a table" + at_line(node));
    DESKML_RETURN_IF_ERROR(parse_step(*table, base_dir, raw_inputs));
  }
  const toml::node* output_map = ensemble.get("output_map");
  if (output_map == nullptr || !output_map->is_table()) {
    return ensemble_error("needs an [ensemble.output_map] table: output name = \"step.port\"");
  }
  return link(raw_inputs, output_map->as_table());
}

Status Pipeline::parse_step(const toml::table& table, const std::filesystem::path& base_dir, RawInputs& raw_inputs) {
  auto node = std::make_unique<StepNode>();
  node->line = static_cast<int64_t>(table.source().begin.line);
  const auto name = table["name"].value_exact<std::string>();
  if (!name) return ensemble_error("a step" + at_line(table) + " needs name = \"...\"");
  DESKML_RETURN_IF_ERROR(check_name("step name", *name));
  node->name = *name;
  for (const auto& other : steps_) {
    if (other->name == node->name) return ensemble_error("two steps are named '" + node->name + "'");
  }
  const std::string where = node->label();
  const auto kind = table["kind"].value_exact<std::string>();
  if (!kind) return ensemble_error(where + " needs kind = \"...\" (a built-in kind or \"model\")");
  node->kind = *kind;

  if (node->kind == "model") {
    DESKML_RETURN_IF_ERROR(check_keys(table, {"name", "kind", "inputs", "model", "version"}, where));
    const auto model = table["model"].value_exact<std::string>();
    if (!model) return ensemble_error(where + " needs model = \"<model name>\"");
    Status valid = validate_model_name(*model);
    if (!valid.ok()) return ensemble_error(where + ": " + valid.message());
    node->model = *model;
    if (table.contains("version")) {
      const auto version = table["version"].value_exact<int64_t>();
      if (!version || *version < 1) return ensemble_error(where + ": version must be an integer >= 1");
      node->version = *version;
    }
  } else {
    auto step = make_step(node->kind, table, base_dir, {"name", "kind", "inputs"});
    if (!step.ok()) return Status(step.status().code(), "ensemble: " + where + ": " + step.status().message());
    node->step = std::move(step).value();
    node->ports = node->step->ports();
  }

  std::vector<std::pair<std::string, std::string>> raw;
  const toml::node* inputs = table.get("inputs");
  if (inputs == nullptr) return ensemble_error(where + " needs inputs");
  const bool list = !node->is_model() && node->ports.list;
  if (const toml::array* array = inputs->as_array()) {
    if (!list) {
      return ensemble_error(
          where + ": inputs must be a table, port = \"source\" (" +
          (node->is_model() ? std::string("ports are the model's input names") : "ports: " + join(node->ports.inputs)) +
          ")");
    }
    for (const toml::node& e : *array) {
      const auto* s = e.as_string();
      if (s == nullptr) return ensemble_error(where + ": inputs must be a list of strings");
      raw.emplace_back(std::to_string(raw.size()), s->get());
    }
    if (raw.size() < node->ports.min_list || raw.size() > node->ports.max_list) {
      const std::string expected = node->ports.min_list == node->ports.max_list
                                       ? std::to_string(node->ports.min_list)
                                       : "at least " + std::to_string(node->ports.min_list);
      return ensemble_error(where + ": kind '" + node->kind + "' takes " + expected + " inputs, got " +
                            std::to_string(raw.size()));
    }
  } else if (const toml::table* ports = inputs->as_table()) {
    if (list) return ensemble_error(where + ": kind '" + node->kind + "' takes a list: inputs = [\"a.output\", ...]");
    for (const auto& [port, source] : *ports) {
      const auto* s = source.as_string();
      if (s == nullptr) return ensemble_error(where + ": input '" + std::string(port.str()) + "' must be a string");
      if (!node->is_model() && !contains(node->ports.inputs, std::string(port.str()))) {
        return ensemble_error(where + ": kind '" + node->kind + "' has no input port '" + std::string(port.str()) +
                              "' (ports: " + join(node->ports.inputs) + ")");
      }
      raw.emplace_back(std::string(port.str()), s->get());
    }
    if (raw.empty()) return ensemble_error(where + ": inputs is empty");
    if (!node->is_model()) {
      for (const std::string& port : node->ports.inputs) {
        const bool given = std::any_of(raw.begin(), raw.end(), [&](const auto& r) { return r.first == port; });
        if (!given) return ensemble_error(where + ": input port '" + port + "' is not connected");
      }
    }
  } else {
    return ensemble_error(where + ": inputs must be a table (port = \"source\") or, for aggregations, a list");
  }
  steps_.push_back(std::move(node));
  raw_inputs.push_back(std::move(raw));
  return Status::Ok();
}

Result<Pipeline::Ref> Pipeline::resolve(const std::string& text, const std::string& where) const {
  const size_t dot = text.find('.');
  if (dot == std::string::npos) {
    if (contains(input_names_, text)) return Ref{-1, text};
    return ensemble_error(where + " refers to '" + text +
                          "', which is not an ensemble input (a step's output is written \"step.port\")");
  }
  const std::string step = text.substr(0, dot);
  const std::string port = text.substr(dot + 1);
  for (size_t i = 0; i < steps_.size(); ++i) {
    const StepNode& node = *steps_[i];
    if (node.name != step) continue;
    if (port.empty()) return ensemble_error(where + " refers to '" + text + "' without a port");
    if (!node.is_model() && !contains(node.ports.outputs, port)) {
      return ensemble_error(where + " refers to '" + text + "', but kind '" + node.kind + "' has no output port '" +
                            port + "' (ports: " + join(node.ports.outputs) + ")");
    }
    return Ref{static_cast<int64_t>(i), port};
  }
  return ensemble_error(where + " refers to unknown step '" + step + "'");
}

Status Pipeline::link(const RawInputs& raw_inputs, const toml::table* output_map) {
  const size_t n = steps_.size();
  for (size_t i = 0; i < n; ++i) {
    StepNode& node = *steps_[i];
    for (const auto& [port, text] : raw_inputs[i]) {
      const std::string where =
          node.label() + " input " + (node.ports.list ? "#" : "'") + port + (node.ports.list ? "" : "'");
      DESKML_ASSIGN_OR_RETURN(Ref ref, resolve(text, where));
      if (ref.step >= 0) {
        const auto u = static_cast<size_t>(ref.step);
        if (std::find(node.upstream.begin(), node.upstream.end(), u) == node.upstream.end()) node.upstream.push_back(u);
      }
      node.inputs.emplace_back(port, std::move(ref));
    }
  }
  for (const auto& [key, value] : *output_map) {
    if (!contains(output_names_, std::string(key.str()))) {
      return ensemble_error("output_map names '" + std::string(key.str()) + "'" + at_line(value) +
                            ", which is not listed in outputs");
    }
    if (!value.is_string()) return ensemble_error("output_map entry '" + std::string(key.str()) + "' must be a string");
  }
  for (const std::string& name : output_names_) {
    const toml::node* value = output_map->get(name);
    if (value == nullptr) return ensemble_error("output '" + name + "' has no entry in [ensemble.output_map]");
    DESKML_ASSIGN_OR_RETURN(Ref ref, resolve(value->as_string()->get(), "output '" + name + "'"));
    outputs_.push_back(std::move(ref));
  }

  // Topological order, stable with respect to the declaration order.
  std::vector<size_t> order;
  std::vector<bool> placed(n, false);
  for (bool progress = true; progress && order.size() < n;) {
    progress = false;
    for (size_t i = 0; i < n; ++i) {
      if (placed[i]) continue;
      const auto& up = steps_[i]->upstream;
      if (std::all_of(up.begin(), up.end(), [&](size_t u) { return placed[u]; })) {
        placed[i] = true;
        order.push_back(i);
        progress = true;
      }
    }
  }
  if (order.size() < n) {
    std::vector<std::string> stuck;
    for (size_t i = 0; i < n; ++i) {
      if (!placed[i]) stuck.push_back("'" + steps_[i]->name + "'");
    }
    return ensemble_error("the steps form a cycle; these steps are on it or depend on it: " + join(stuck));
  }

  // Every step must contribute to an output.
  std::vector<bool> needed(n, false);
  std::vector<size_t> stack;
  for (const Ref& ref : outputs_) {
    if (ref.step >= 0) stack.push_back(static_cast<size_t>(ref.step));
  }
  while (!stack.empty()) {
    const size_t i = stack.back();
    stack.pop_back();
    if (needed[i]) continue;
    needed[i] = true;
    for (size_t u : steps_[i]->upstream) stack.push_back(u);
  }
  for (size_t i = 0; i < n; ++i) {
    if (!needed[i]) return ensemble_error(steps_[i]->label() + " contributes to no ensemble output");
  }

  // Which output ports are read, and by whom.
  auto use = [&](const Ref& ref) {
    if (ref.step < 0) return;
    auto& ports = steps_[static_cast<size_t>(ref.step)]->used_ports;
    if (!contains(ports, ref.name)) ports.push_back(ref.name);
  };
  for (const auto& node : steps_) {
    for (const auto& [port, ref] : node->inputs) use(ref);
  }
  for (const Ref& ref : outputs_) {
    use(ref);
    if (ref.step >= 0) steps_[static_cast<size_t>(ref.step)]->feeds_output = true;
  }

  // Reorder the steps topologically and renumber every reference.
  std::vector<size_t> position(n);
  for (size_t k = 0; k < n; ++k) position[order[k]] = k;
  std::vector<std::unique_ptr<StepNode>> sorted(n);
  for (size_t i = 0; i < n; ++i) sorted[position[i]] = std::move(steps_[i]);
  steps_ = std::move(sorted);
  auto renumber = [&](Ref& ref) {
    if (ref.step >= 0) ref.step = static_cast<int64_t>(position[static_cast<size_t>(ref.step)]);
  };
  for (auto& node : steps_) {
    for (auto& [port, ref] : node->inputs) renumber(ref);
    for (size_t& u : node->upstream) u = position[u];
  }
  for (Ref& ref : outputs_) renumber(ref);
  for (size_t i = 0; i < n; ++i) {
    for (size_t u : steps_[i]->upstream) steps_[u]->downstream.push_back(i);
  }
  return Status::Ok();
}

std::vector<std::string> Pipeline::model_dependencies() const {
  // steps_ is in topological order; report in declaration (config) order.
  std::vector<const StepNode*> nodes;
  for (const auto& node : steps_) nodes.push_back(node.get());
  std::stable_sort(nodes.begin(), nodes.end(), [](const StepNode* a, const StepNode* b) { return a->line < b->line; });
  std::vector<std::string> models;
  for (const StepNode* node : nodes) {
    if (node->is_model() && !contains(models, node->model)) models.push_back(node->model);
  }
  return models;
}

void Pipeline::run(Tensors inputs, const InferOptions& options, const ModelCall& call,
                   std::function<void(Result<Tensors>)> done) const {
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string& name = inputs[i].first;
    Status bad;
    if (!contains(input_names_, name)) {
      bad = ensemble_error("unknown input '" + name + "' (inputs: " + join(input_names_) + ")");
    } else if (!inputs[i].second.defined()) {
      bad = ensemble_error("input '" + name + "' is undefined");
    } else {
      for (size_t j = 0; j < i; ++j) {
        if (inputs[j].first == name) bad = ensemble_error("input '" + name + "' is given twice");
      }
    }
    if (!bad.ok()) return done(bad);
  }
  for (const std::string& name : input_names_) {
    if (find_tensor(inputs, name) == nullptr) return done(ensemble_error("missing input '" + name + "'"));
  }

  auto state = std::make_shared<RunState>();
  state->pipeline = shared_from_this();
  state->inputs = std::move(inputs);
  state->options = options;
  state->call = call;
  state->done = std::move(done);
  const size_t n = steps_.size();
  state->results.resize(n);
  state->waiting.resize(n);
  state->readers_left.resize(n);
  Ready ready;
  for (size_t i = 0; i < n; ++i) {
    state->waiting[i] = steps_[i]->upstream.size();
    state->readers_left[i] = steps_[i]->downstream.size();
    if (state->waiting[i] == 0) ready.push_back(i);
  }
  state->active = 1;  // this driver
  if (options.cancel) {
    // The caller's cancellation reaches the model calls in flight at once.
    std::weak_ptr<RunState> weak = state;
    state->caller_cancel = options.cancel->on_cancel([weak] {
      if (auto s = weak.lock()) {
        {
          std::lock_guard<std::mutex> lock(s->mu);
          s->fail(Status(StatusCode::kCancelled, "ensemble: cancelled by the caller"));
        }
        s->cancel_calls();
      }
    });
  }
  drive(state, std::move(ready));
  release(state);
}

void Pipeline::drive(const std::shared_ptr<RunState>& state, Ready ready) {
  struct CancelOnExit {
    RunState& s;
    ~CancelOnExit() { s.cancel_calls(); }
  } cancel_on_exit{*state};
  const Pipeline& p = *state->pipeline;
  // Model steps go first so their calls are in flight while built-in steps compute.
  std::deque<size_t> queue;
  auto enqueue = [&](const Ready& r) {
    for (size_t i : r) {
      if (p.steps_[i]->is_model()) {
        queue.push_front(i);
      } else {
        queue.push_back(i);
      }
    }
  };
  enqueue(ready);
  while (!queue.empty()) {
    const size_t i = queue.front();
    queue.pop_front();
    const StepNode& node = *p.steps_[i];
    Tensors inputs;
    {
      std::lock_guard<std::mutex> lock(state->mu);
      if (state->error) return;  // the run failed: nothing more starts
      if (auto stop = state->interrupted("before " + node.label())) {
        state->fail(*stop);
        return;
      }
      for (const auto& [port, ref] : node.inputs) {
        const Tensor* t = ref.step < 0 ? find_tensor(state->inputs, ref.name)
                                       : find_tensor(state->results[static_cast<size_t>(ref.step)], ref.name);
        if (t == nullptr) {
          state->fail(internal_error("ensemble: " + node.label() + ": input '" + port + "' is not available"));
          return;
        }
        inputs.emplace_back(port, *t);
      }
      for (size_t u : node.upstream) {
        if (--state->readers_left[u] == 0 && !p.steps_[u]->feeds_output) state->results[u].clear();
      }
      if (node.is_model()) ++state->active;
    }
    if (node.is_model()) {
      start_model(state, i, std::move(inputs));
    } else {
      enqueue(complete(state, i, node.step->run(inputs)));
    }
  }
}

void Pipeline::start_model(const std::shared_ptr<RunState>& state, size_t index, Tensors inputs) {
  const StepNode& node = *state->pipeline->steps_[index];
  auto called = std::make_shared<std::atomic<bool>>(false);
  std::function<void(Result<Tensors>)> on_done = [state, index, called](Result<Tensors> result) {
    if (called->exchange(true)) return;  // a second call would break the accounting
    drive(state, complete(state, index, std::move(result)));
    release(state);
  };
  InferOptions options = state->options;
  options.version = node.version;
  options.cancel = state->token;
  try {
    state->call(node.model, node.version, std::move(inputs), options, on_done);
  } catch (const std::exception& e) {
    on_done(internal_error("ensemble: the call of model '" + node.model + "' threw: " + e.what()));
  } catch (...) {
    on_done(internal_error("ensemble: the call of model '" + node.model + "' threw"));
  }
}

Pipeline::Ready Pipeline::complete(const std::shared_ptr<RunState>& state, size_t index, Result<Tensors> result) {
  const StepNode& node = *state->pipeline->steps_[index];
  std::lock_guard<std::mutex> lock(state->mu);
  if (state->error) return {};
  if (!result.ok()) {
    const std::string what = node.is_model() ? " (model '" + node.model + "')" : "";
    state->fail(Status(result.status().code(), "ensemble: " + node.label() + what + ": " + result.status().message()));
    return {};
  }
  if (auto stop = state->interrupted("after " + node.label())) {
    state->fail(*stop);
    return {};
  }
  Tensors kept;
  for (const std::string& port : node.used_ports) {
    const Tensor* t = find_tensor(result.value(), port);
    if (t == nullptr || !t->defined()) {
      std::vector<std::string> names;
      for (const auto& [name, tensor] : result.value()) names.push_back(name);
      state->fail(ensemble_error(node.label() + ": " +
                                 (node.is_model() ? "model '" + node.model + "'" : "kind '" + node.kind + "'") +
                                 " returned no output '" + port + "' (it returned: " + join(names) + ")"));
      return {};
    }
    kept.emplace_back(port, *t);
  }
  state->results[index] = std::move(kept);
  ++state->succeeded;
  Ready ready;
  for (size_t d : node.downstream) {
    if (--state->waiting[d] == 0) ready.push_back(d);
  }
  return ready;
}

void Pipeline::release(const std::shared_ptr<RunState>& state) {
  std::optional<Result<Tensors>> outcome;
  {
    std::lock_guard<std::mutex> lock(state->mu);
    if (--state->active > 0) return;
    const Pipeline& p = *state->pipeline;
    if (!state->error) {
      if (auto stop = state->interrupted("at the end of the run")) state->fail(*stop);
    }
    if (!state->error && state->succeeded != p.steps_.size()) {
      state->fail(internal_error("ensemble: the run stopped with " +
                                 std::to_string(p.steps_.size() - state->succeeded) + " steps not run"));
    }
    if (state->error) {
      outcome.emplace(*state->error);
    } else {
      Tensors outputs;
      for (size_t k = 0; k < p.outputs_.size(); ++k) {
        const Ref& ref = p.outputs_[k];
        const Tensor* t = ref.step < 0 ? find_tensor(state->inputs, ref.name)
                                       : find_tensor(state->results[static_cast<size_t>(ref.step)], ref.name);
        outputs.emplace_back(p.output_names_[k], t != nullptr ? *t : Tensor());
      }
      outcome.emplace(std::move(outputs));
    }
    state->results.clear();
    state->inputs.clear();
  }
  state->cancel_calls();
  if (state->caller_cancel) state->options.cancel->remove(state->caller_cancel);
  auto done = std::move(state->done);
  done(std::move(*outcome));
}

}  // namespace deskml::serving
