#include "runtime/execution_plan.hpp"

#include <algorithm>
#include <unordered_set>

#include "runtime/concat_places.hpp"
#include "runtime/session.hpp"  // Profile

namespace deskml::runtime {
namespace {

// Gives control-flow kernels a way to run their subgraphs inside the current frame.
class FrameSubgraphRunner final : public kernels::SubgraphRunner {
 public:
  FrameSubgraphRunner(const PlannedNode& node, const std::unordered_map<std::string, int>& slot_of,
                      const std::vector<Value>& slots, const OuterLookup& outer, const RunControl& control)
      : node_(node), slot_of_(slot_of), slots_(slots), outer_(outer), control_(control) {}

  Result<std::vector<Value>> run(const std::string& attr, std::vector<Value> inputs) override {
    auto it = node_.subgraphs.find(attr);
    if (it == node_.subgraphs.end()) {
      return invalid_model(node_.node->label() + " has no subgraph attribute '" + attr + "'");
    }
    OuterLookup lookup = [this](const std::string& name) -> const Value* {
      auto s = slot_of_.find(name);
      if (s != slot_of_.end()) return &slots_[static_cast<size_t>(s->second)];
      return outer_ ? outer_(name) : nullptr;
    };
    if (control_.profile == nullptr) return it->second->run(std::move(inputs), lookup, control_);
    RunControl nested = control_;
    ++nested.depth;
    return it->second->run(std::move(inputs), lookup, nested);
  }

 private:
  const PlannedNode& node_;
  const std::unordered_map<std::string, int>& slot_of_;
  const std::vector<Value>& slots_;
  const OuterLookup& outer_;
  const RunControl& control_;
};

}  // namespace

Status RunControl::check() const {
  if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) {
    return Status(StatusCode::kCancelled, "run cancelled");
  }
  if (deadline != std::chrono::steady_clock::time_point::max() && std::chrono::steady_clock::now() >= deadline) {
    return Status(StatusCode::kDeadlineExceeded, "run stopped at its deadline");
  }
  return Status::Ok();
}

Result<std::unique_ptr<ExecutionPlan>> ExecutionPlan::build(
    const graph::Graph& graph, const std::vector<const kernels::KernelRegistry*>& providers,
    const std::vector<std::string>& outer_scope) {
  auto plan = std::unique_ptr<ExecutionPlan>(new ExecutionPlan());
  plan->graph_ = &graph;
  plan->providers_ = providers;
  DESKML_ASSIGN_OR_RETURN(std::vector<size_t> order, graph::topological_order(graph, outer_scope));

  auto slot = [&](const std::string& name) {
    auto [it, inserted] = plan->slot_of_.emplace(name, static_cast<int>(plan->slot_names_.size()));
    if (inserted) plan->slot_names_.push_back(name);
    return it->second;
  };
  for (const auto& [name, tensor] : graph.initializers) plan->initializer_slots_.emplace_back(slot(name), &tensor);
  for (const auto& vi : graph.inputs) plan->input_slots_.push_back(slot(vi.name));
  for (size_t idx : order) {
    for (const auto& out : graph.nodes[idx].outputs) {
      if (!out.empty()) slot(out);
    }
  }
  const std::unordered_set<std::string> outer_set(outer_scope.begin(), outer_scope.end());
  auto resolve = [&](const std::string& name) -> Result<int> {
    if (auto it = plan->slot_of_.find(name); it != plan->slot_of_.end()) return it->second;
    if (!outer_set.count(name)) return invalid_model("value '" + name + "' is read but never produced");
    const int s = slot(name);
    plan->outer_slots_.emplace_back(s, name);
    plan->outer_names_.push_back(name);
    return s;
  };

  // Everything this graph can see, for its subgraphs' outer scope.
  std::vector<std::string> visible = outer_scope;
  visible.insert(visible.end(), plan->slot_names_.begin(), plan->slot_names_.end());

  std::vector<int> last_use(plan->slot_names_.size() + outer_scope.size() + 1, -1);
  std::vector<int> reads(last_use.size(), 0);
  auto touch = [&](int s, int step) {
    if (static_cast<size_t>(s) >= last_use.size()) {
      last_use.resize(static_cast<size_t>(s) + 1, -1);
      reads.resize(last_use.size(), 0);
    }
    last_use[static_cast<size_t>(s)] = step;
    ++reads[static_cast<size_t>(s)];
  };
  for (size_t step = 0; step < order.size(); ++step) {
    const graph::Node& node = graph.nodes[order[step]];
    bool supported = false;
    for (const auto* p : providers) supported = supported || p->supports(node.op_type, node.domain, node.opset);
    if (!supported) {
      return unsupported("op " + (node.domain.empty() ? node.op_type : node.domain + "." + node.op_type) + " (opset " +
                         std::to_string(node.opset) + ") is not supported");
    }
    auto pn = std::make_unique<PlannedNode>();
    pn->node = &node;
    for (const auto& in : node.inputs) {
      if (in.empty()) {
        pn->inputs.push_back(-1);
        continue;
      }
      DESKML_ASSIGN_OR_RETURN(int s, resolve(in));
      pn->inputs.push_back(s);
      touch(s, static_cast<int>(step));
    }
    for (const auto& out : node.outputs) pn->outputs.push_back(out.empty() ? -1 : plan->slot_of_.at(out));
    for (const auto& [attr_name, attr] : node.attributes) {
      const auto* g = std::get_if<graph::GraphPtr>(&attr);
      if (g == nullptr) continue;
      auto sub = ExecutionPlan::build(**g, providers, visible);
      if (!sub.ok()) return sub.status().with_context(node.label() + " subgraph '" + attr_name + "'");
      for (const auto& name : (*sub)->outer_names()) {
        DESKML_ASSIGN_OR_RETURN(int s, resolve(name));
        touch(s, static_cast<int>(step));
      }
      pn->subgraphs.emplace(attr_name, std::move(sub).value());
    }
    plan->nodes_.push_back(std::move(pn));
  }
  for (const auto& vi : graph.outputs) {
    DESKML_ASSIGN_OR_RETURN(int s, resolve(vi.name));
    plan->output_slots_.push_back(s);
  }
  const std::unordered_set<int> keep(plan->output_slots_.begin(), plan->output_slots_.end());
  for (size_t s = 0; s < last_use.size(); ++s) {
    if (last_use[s] >= 0 && !keep.count(static_cast<int>(s))) {
      plan->nodes_[static_cast<size_t>(last_use[s])]->release_after.push_back(static_cast<int>(s));
    }
  }
  for (auto& pn : plan->nodes_) {
    pn->donatable.assign(pn->inputs.size(), false);
    if (!pn->subgraphs.empty()) continue;
    for (size_t k = 0; k < pn->inputs.size(); ++k) {
      const int s = pn->inputs[k];
      if (s < 0 || std::count(pn->inputs.begin(), pn->inputs.end(), s) != 1) continue;
      pn->donatable[k] = std::find(pn->release_after.begin(), pn->release_after.end(), s) != pn->release_after.end();
    }
  }
  plan->concat_buffers_ = plan_concat_places(plan->nodes_, reads, keep);
  return plan;
}

Result<kernels::Kernel*> ExecutionPlan::kernel_for(const PlannedNode& pn,
                                                   const std::vector<const Value*>& inputs) const {
  std::vector<DataType> types(inputs.size(), DataType::kUndefined);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i] == nullptr) continue;
    types[i] = inputs[i]->is_tensor() ? inputs[i]->tensor.dtype() : inputs[i]->sequence_dtype;
  }
  std::lock_guard lock(pn.mutex);
  for (auto& c : pn.choices) {
    if (c.input_types == types) return c.kernel.get();
  }
  const graph::Node& node = *pn.node;
  for (const auto* provider : providers_) {
    const auto* def = provider->find(node.op_type, node.domain, node.opset, [&](int i) {
      return i >= 0 && static_cast<size_t>(i) < types.size() ? types[static_cast<size_t>(i)] : DataType::kUndefined;
    });
    if (def == nullptr) continue;
    auto kernel = def->factory(node);
    if (!kernel) return internal_error(node.label() + ": kernel factory failed");
    pn.choices.push_back({types, std::move(kernel)});
    return pn.choices.back().kernel.get();
  }
  std::string list;
  for (DataType t : types) list += (list.empty() ? "" : ", ") + std::string(dtype_name(t));
  return unsupported(node.label() + " (opset " + std::to_string(node.opset) + ") has no kernel for input types (" +
                     list + ")");
}

Status ExecutionPlan::run_node(const PlannedNode& pn, std::vector<Value>& slots, std::vector<Tensor>& concat_buffers,
                               const OuterLookup& outer, const RunControl& control) const {
  std::vector<const Value*> inputs(pn.inputs.size(), nullptr);
  for (size_t i = 0; i < pn.inputs.size(); ++i) {
    const int s = pn.inputs[i];
    if (s >= 0 && !slots[static_cast<size_t>(s)].is_none()) inputs[i] = &slots[static_cast<size_t>(s)];
  }
  std::vector<Value> outputs(pn.outputs.size());
  const graph::Node& node = *pn.node;
  try {
    DESKML_ASSIGN_OR_RETURN(kernels::Kernel * kernel, kernel_for(pn, inputs));
    FrameSubgraphRunner subgraphs(pn, slot_of_, slots, outer, control);
    kernels::KernelContext ctx(node, inputs, outputs, &subgraphs, control.threads);
    std::vector<Value*> donatable(pn.inputs.size(), nullptr);
    for (size_t i = 0; i < pn.inputs.size(); ++i) {
      if (pn.donatable[i] && inputs[i] != nullptr) donatable[i] = &slots[static_cast<size_t>(pn.inputs[i])];
    }
    ctx.allow_taking(donatable);
    ConcatPlacer placer(pn, nodes_, concat_buffers);
    if (!pn.places.empty() || pn.concat_buffer >= 0) ctx.set_placer(&placer);
    Status st = kernel->compute(ctx);
    if (!st.ok()) return st.message().rfind(node.label(), 0) == 0 ? st : st.with_context(node.label());
  } catch (const Error& e) {
    const Status& st = e.status();
    return st.message().rfind(node.label(), 0) == 0 ? st : st.with_context(node.label());
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kResourceExhausted, node.label() + ": out of memory");
  } catch (const std::exception& e) {
    return internal_error(node.label() + ": " + e.what());
  }
  for (size_t i = 0; i < pn.outputs.size(); ++i) {
    if (pn.outputs[i] >= 0) slots[static_cast<size_t>(pn.outputs[i])] = std::move(outputs[i]);
  }
  return Status::Ok();
}

Result<std::vector<Value>> ExecutionPlan::run(std::vector<Value> inputs, const OuterLookup& outer,
                                              const RunControl& control) const {
  // Checked here as well as per node: a Loop over an empty body still stops.
  DESKML_RETURN_IF_ERROR(control.check());
  std::vector<Value> slots(slot_names_.size());
  for (const auto& [s, tensor] : initializer_slots_) slots[static_cast<size_t>(s)] = Value::from_tensor(*tensor);
  for (size_t i = 0; i < inputs.size() && i < input_slots_.size(); ++i) {
    if (!inputs[i].is_none()) slots[static_cast<size_t>(input_slots_[i])] = std::move(inputs[i]);
  }
  for (const auto& [s, name] : outer_slots_) {
    const Value* v = outer ? outer(name) : nullptr;
    if (v == nullptr) return internal_error("outer value '" + name + "' is not available");
    slots[static_cast<size_t>(s)] = *v;
  }
  std::vector<Tensor> concat_buffers(static_cast<size_t>(concat_buffers_));
  for (const auto& pn : nodes_) {
    DESKML_RETURN_IF_ERROR(control.check());
    if (control.profile == nullptr) {
      DESKML_RETURN_IF_ERROR(run_node(*pn, slots, concat_buffers, outer, control));
    } else {
      const auto t0 = std::chrono::steady_clock::now();
      Status st = run_node(*pn, slots, concat_buffers, outer, control);
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      const graph::Node& node = *pn->node;
      control.profile->entries.push_back(
          {node.domain.empty() ? node.op_type : node.domain + "." + node.op_type, node.name, ms, control.depth});
      DESKML_RETURN_IF_ERROR(st);
    }
    if (control.largest_tensor_bytes != nullptr) {
      for (int s : pn->outputs) {
        if (s >= 0 && slots[static_cast<size_t>(s)].is_tensor()) {
          const auto bytes = static_cast<int64_t>(slots[static_cast<size_t>(s)].tensor.nbytes());
          *control.largest_tensor_bytes = std::max(*control.largest_tensor_bytes, bytes);
        }
      }
    }
    if (pn->concat_buffer >= 0) {
      remember_concat_inputs(*pn, slots);
      concat_buffers[static_cast<size_t>(pn->concat_buffer)] = Tensor();  // lives on as the output, if it is
    }
    for (int s : pn->release_after) slots[static_cast<size_t>(s)] = Value{};
  }
  std::vector<Value> outputs;
  outputs.reserve(output_slots_.size());
  for (int s : output_slots_) outputs.push_back(slots[static_cast<size_t>(s)]);
  return outputs;
}

}  // namespace deskml::runtime
