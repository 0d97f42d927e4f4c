// If, Loop and Scan. The subgraphs run through ctx.subgraphs(), which the
// executor provides; these kernels only move values in and out of them.
#include <cstring>

#include "kernels/cpu/cpu_registry.hpp"

namespace deskml::kernels::cpu {
namespace {

// Copies `count` elements (strings included) from src[src_off] to dst[dst_off].
void copy_elements(const Tensor& src, int64_t src_off, Tensor& dst, int64_t dst_off, int64_t count) {
  if (count <= 0) return;
  if (src.dtype() == DataType::kString) {
    const std::string* s = src.data<std::string>() + src_off;
    std::string* d = dst.data<std::string>() + dst_off;
    for (int64_t i = 0; i < count; ++i) d[i] = s[i];
    return;
  }
  const size_t es = dtype_size(src.dtype());
  std::memcpy(static_cast<char*>(dst.raw_data()) + dst_off * es,
              static_cast<const char*>(src.raw_data()) + src_off * es, static_cast<size_t>(count) * es);
}

// Stacks same-shaped tensors along a new axis `axis` (0 <= axis <= rank).
Tensor stack(const std::vector<Tensor>& items, int64_t axis, const std::string& what) {
  const Shape& shape = items.front().shape();
  for (const auto& t : items) {
    if (t.shape() != shape || t.dtype() != items.front().dtype()) {
      throw_status(invalid_argument(what + ": iterations produced different shapes (" +
                                    items.front().description() + " vs " + t.description() + ")"));
    }
  }
  Shape out_shape = shape;
  out_shape.insert(out_shape.begin() + axis, static_cast<int64_t>(items.size()));
  Tensor out(items.front().dtype(), out_shape);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= shape[static_cast<size_t>(d)];
  for (size_t d = static_cast<size_t>(axis); d < shape.size(); ++d) inner *= shape[d];
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t o = 0; o < outer; ++o) copy_elements(items[static_cast<size_t>(i)], o * inner, out, (o * n + i) * inner, inner);
  }
  return out;
}

// The i-th slice of t along `axis` (the axis removed).
Tensor slice_along(const Tensor& t, int64_t axis, int64_t i) {
  Shape out_shape = t.shape();
  const int64_t n = out_shape[static_cast<size_t>(axis)];
  out_shape.erase(out_shape.begin() + axis);
  Tensor out(t.dtype(), out_shape);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= t.shape()[static_cast<size_t>(d)];
  for (size_t d = static_cast<size_t>(axis) + 1; d < t.shape().size(); ++d) inner *= t.shape()[d];
  for (int64_t o = 0; o < outer; ++o) copy_elements(t, (o * n + i) * inner, out, o * inner, inner);
  return out;
}

bool scalar_true(const Tensor& t, const KernelContext& ctx, const char* what) {
  if (t.numel() != 1) throw_status(ctx.error(std::string(what) + " must have exactly one element"));
  return t.float_at(0) != 0.0;
}

Status if_kernel(KernelContext& ctx) {
  const bool cond = scalar_true(ctx.required_input(0), ctx, "the condition");
  DESKML_ASSIGN_OR_RETURN(std::vector<Value> outputs,
                          ctx.subgraphs()->run(cond ? "then_branch" : "else_branch", {}));
  if (outputs.size() != ctx.num_outputs()) {
    return ctx.error("the branch produced " + std::to_string(outputs.size()) + " outputs, the node has " +
                     std::to_string(ctx.num_outputs()));
  }
  for (size_t i = 0; i < outputs.size(); ++i) ctx.set_output_value(i, std::move(outputs[i]));
  return Status::Ok();
}

Status loop_kernel(KernelContext& ctx) {
  const graph::GraphPtr body = ctx.node().attr_graph("body");
  if (!body) return ctx.error("missing body");
  const Tensor* max_trip = ctx.input(0);
  const Tensor* cond_in = ctx.input(1);
  const int64_t carried = static_cast<int64_t>(ctx.num_inputs()) - 2;
  if (carried < 0) return ctx.error("needs at least the M and cond inputs (possibly empty)");
  const int64_t body_outputs = static_cast<int64_t>(body->outputs.size());
  const int64_t scans = body_outputs - 1 - carried;
  if (scans < 0 || static_cast<int64_t>(body->inputs.size()) != carried + 2) {
    return ctx.error("body signature does not match the node's inputs");
  }
  const int64_t trip_limit = max_trip ? max_trip->int_at(0) : INT64_MAX;
  bool cond = cond_in ? scalar_true(*cond_in, ctx, "cond") : true;

  std::vector<Value> state;
  for (int64_t i = 0; i < carried; ++i) {
    const Value* v = ctx.input_value(static_cast<size_t>(2 + i));
    state.push_back(v ? *v : Value{});
  }
  std::vector<std::vector<Tensor>> scan_items(static_cast<size_t>(scans));
  constexpr int64_t kMaxIterationsWithoutLimit = int64_t{1} << 31;
  int64_t iter = 0;
  for (; iter < trip_limit && cond; ++iter) {
    if (!max_trip && iter >= kMaxIterationsWithoutLimit) return ctx.error("loop did not terminate");
    std::vector<Value> inputs;
    inputs.push_back(Value::from_tensor(Tensor::scalar<int64_t>(iter)));
    inputs.push_back(Value::from_tensor(Tensor::scalar<bool>(cond)));
    for (auto& s : state) inputs.push_back(s);
    DESKML_ASSIGN_OR_RETURN(std::vector<Value> out, ctx.subgraphs()->run("body", std::move(inputs)));
    if (static_cast<int64_t>(out.size()) != body_outputs) return ctx.error("body returned the wrong output count");
    if (!out[0].is_tensor()) return ctx.error("body did not produce a condition");
    cond = scalar_true(out[0].tensor, ctx, "the body's condition output");
    for (int64_t i = 0; i < carried; ++i) state[static_cast<size_t>(i)] = std::move(out[static_cast<size_t>(1 + i)]);
    for (int64_t i = 0; i < scans; ++i) {
      const Value& v = out[static_cast<size_t>(1 + carried + i)];
      if (!v.is_tensor()) return ctx.error("scan outputs must be tensors");
      scan_items[static_cast<size_t>(i)].push_back(v.tensor);
    }
  }
  for (int64_t i = 0; i < carried; ++i) ctx.set_output_value(static_cast<size_t>(i), std::move(state[static_cast<size_t>(i)]));
  for (int64_t i = 0; i < scans; ++i) {
    auto& items = scan_items[static_cast<size_t>(i)];
    if (items.empty()) {
      // No iteration ran: an empty tensor of the body's declared element type.
      const auto& info = body->outputs[static_cast<size_t>(1 + carried + i)];
      Shape shape{0};
      if (info.type.shape) {
        for (const auto& d : *info.type.shape) shape.push_back(d.known() ? d.value : 0);
      }
      const DataType dt = info.type.dtype == DataType::kUndefined ? DataType::kFloat32 : info.type.dtype;
      ctx.set_output(static_cast<size_t>(carried + i), Tensor::zeros(dt, shape));
    } else {
      ctx.set_output(static_cast<size_t>(carried + i), stack(items, 0, ctx.node().label()));
    }
  }
  return Status::Ok();
}

Status scan_kernel(KernelContext& ctx) {
  const graph::GraphPtr body = ctx.node().attr_graph("body");
  if (!body) return ctx.error("missing body");
  const int64_t num_scan_inputs = ctx.node().attr_int("num_scan_inputs", -1);
  const int64_t total_inputs = static_cast<int64_t>(ctx.num_inputs());
  if (num_scan_inputs < 1 || num_scan_inputs > total_inputs) return ctx.error("bad num_scan_inputs");
  const int64_t num_state = total_inputs - num_scan_inputs;
  const int64_t num_scan_outputs = static_cast<int64_t>(ctx.num_outputs()) - num_state;
  if (num_scan_outputs < 0) return ctx.error("fewer outputs than state variables");
  auto in_axes = ctx.node().attr_ints("scan_input_axes", std::vector<int64_t>(static_cast<size_t>(num_scan_inputs), 0));
  auto in_dirs =
      ctx.node().attr_ints("scan_input_directions", std::vector<int64_t>(static_cast<size_t>(num_scan_inputs), 0));
  auto out_axes =
      ctx.node().attr_ints("scan_output_axes", std::vector<int64_t>(static_cast<size_t>(num_scan_outputs), 0));
  auto out_dirs =
      ctx.node().attr_ints("scan_output_directions", std::vector<int64_t>(static_cast<size_t>(num_scan_outputs), 0));
  if (static_cast<int64_t>(in_axes.size()) != num_scan_inputs || static_cast<int64_t>(in_dirs.size()) != num_scan_inputs ||
      static_cast<int64_t>(out_axes.size()) != num_scan_outputs ||
      static_cast<int64_t>(out_dirs.size()) != num_scan_outputs) {
    return ctx.error("scan axes/directions attributes have the wrong length");
  }
  std::vector<Value> state;
  for (int64_t i = 0; i < num_state; ++i) state.push_back(Value::from_tensor(ctx.required_input(static_cast<size_t>(i))));
  int64_t length = -1;
  std::vector<const Tensor*> scan_inputs;
  for (int64_t i = 0; i < num_scan_inputs; ++i) {
    const Tensor& t = ctx.required_input(static_cast<size_t>(num_state + i));
    in_axes[static_cast<size_t>(i)] = normalize_axis_or_throw(in_axes[static_cast<size_t>(i)], t.rank());
    const int64_t n = t.shape()[static_cast<size_t>(in_axes[static_cast<size_t>(i)])];
    if (length >= 0 && n != length) return ctx.error("scan inputs have different lengths");
    length = n;
    scan_inputs.push_back(&t);
  }
  std::vector<std::vector<Tensor>> outs(static_cast<size_t>(num_scan_outputs));
  for (int64_t it = 0; it < length; ++it) {
    std::vector<Value> inputs = state;
    for (int64_t i = 0; i < num_scan_inputs; ++i) {
      const int64_t idx = in_dirs[static_cast<size_t>(i)] ? length - 1 - it : it;
      inputs.push_back(Value::from_tensor(slice_along(*scan_inputs[static_cast<size_t>(i)], in_axes[static_cast<size_t>(i)], idx)));
    }
    DESKML_ASSIGN_OR_RETURN(std::vector<Value> out, ctx.subgraphs()->run("body", std::move(inputs)));
    if (static_cast<int64_t>(out.size()) != num_state + num_scan_outputs) return ctx.error("body output count mismatch");
    for (int64_t i = 0; i < num_state; ++i) state[static_cast<size_t>(i)] = std::move(out[static_cast<size_t>(i)]);
    for (int64_t i = 0; i < num_scan_outputs; ++i) {
      outs[static_cast<size_t>(i)].push_back(out[static_cast<size_t>(num_state + i)].tensor);
    }
  }
  for (int64_t i = 0; i < num_state; ++i) ctx.set_output_value(static_cast<size_t>(i), std::move(state[static_cast<size_t>(i)]));
  for (int64_t i = 0; i < num_scan_outputs; ++i) {
    auto& items = outs[static_cast<size_t>(i)];
    if (items.empty()) return ctx.error("scan over zero iterations is not supported");
    if (out_dirs[static_cast<size_t>(i)]) std::reverse(items.begin(), items.end());
    const int64_t axis = normalize_axis_or_throw(out_axes[static_cast<size_t>(i)], items.front().rank() + 1);
    ctx.set_output(static_cast<size_t>(num_state + i), stack(items, axis, ctx.node().label()));
  }
  return Status::Ok();
}

// Scan before opset 9: a leading optional sequence_lens input, every input has a
// batch axis 0 and scans run along axis 1, one batch item at a time.
Status scan8_kernel(KernelContext& ctx) {
  const graph::GraphPtr body = ctx.node().attr_graph("body");
  if (!body) return ctx.error("missing body");
  const int64_t num_scan_inputs = ctx.node().attr_int("num_scan_inputs", -1);
  const int64_t total_inputs = static_cast<int64_t>(ctx.num_inputs()) - 1;
  if (num_scan_inputs < 1 || num_scan_inputs > total_inputs) return ctx.error("bad num_scan_inputs");
  const int64_t num_state = total_inputs - num_scan_inputs;
  const int64_t num_scan_outputs = static_cast<int64_t>(ctx.num_outputs()) - num_state;
  if (num_scan_outputs < 0) return ctx.error("fewer outputs than state variables");
  const auto dirs =
      ctx.node().attr_ints("directions", std::vector<int64_t>(static_cast<size_t>(num_scan_inputs), 0));
  if (static_cast<int64_t>(dirs.size()) != num_scan_inputs) return ctx.error("directions has the wrong length");
  std::vector<const Tensor*> inputs;
  for (int64_t i = 0; i < total_inputs; ++i) {
    const Tensor& t = ctx.required_input(static_cast<size_t>(1 + i));
    if (t.rank() < (i < num_state ? 1 : 2)) return ctx.error("inputs need a batch axis (and a sequence axis)");
    inputs.push_back(&t);
  }
  const int64_t batch = inputs[0]->dim(0);
  const int64_t seq = inputs[static_cast<size_t>(num_state)]->dim(1);
  for (const Tensor* t : inputs) {
    if (t->dim(0) != batch) return ctx.error("inputs disagree on the batch size");
  }
  if (const Tensor* lens = ctx.input(0)) {
    for (int64_t b = 0; b < lens->numel(); ++b) {
      if (lens->int_at(b) != seq) return unsupported(ctx.node().label() + ": ragged sequence_lens are not supported");
    }
  }
  std::vector<std::vector<Tensor>> final_state(static_cast<size_t>(num_state));
  std::vector<std::vector<Tensor>> scan_out(static_cast<size_t>(num_scan_outputs));
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<Value> state;
    for (int64_t i = 0; i < num_state; ++i) state.push_back(Value::from_tensor(slice_along(*inputs[static_cast<size_t>(i)], 0, b)));
    std::vector<Tensor> sequences;
    for (int64_t i = 0; i < num_scan_inputs; ++i) sequences.push_back(slice_along(*inputs[static_cast<size_t>(num_state + i)], 0, b));
    std::vector<std::vector<Tensor>> steps(static_cast<size_t>(num_scan_outputs));
    for (int64_t t = 0; t < seq; ++t) {
      std::vector<Value> body_in = state;
      for (int64_t i = 0; i < num_scan_inputs; ++i) {
        const int64_t idx = dirs[static_cast<size_t>(i)] ? seq - 1 - t : t;
        body_in.push_back(Value::from_tensor(slice_along(sequences[static_cast<size_t>(i)], 0, idx)));
      }
      DESKML_ASSIGN_OR_RETURN(std::vector<Value> out, ctx.subgraphs()->run("body", std::move(body_in)));
      if (static_cast<int64_t>(out.size()) != num_state + num_scan_outputs) return ctx.error("body output count mismatch");
      for (int64_t i = 0; i < num_state; ++i) state[static_cast<size_t>(i)] = std::move(out[static_cast<size_t>(i)]);
      for (int64_t i = 0; i < num_scan_outputs; ++i) steps[static_cast<size_t>(i)].push_back(out[static_cast<size_t>(num_state + i)].tensor);
    }
    for (int64_t i = 0; i < num_state; ++i) final_state[static_cast<size_t>(i)].push_back(state[static_cast<size_t>(i)].tensor);
    for (int64_t i = 0; i < num_scan_outputs; ++i) {
      if (steps[static_cast<size_t>(i)].empty()) return ctx.error("scan over zero steps is not supported");
      scan_out[static_cast<size_t>(i)].push_back(stack(steps[static_cast<size_t>(i)], 0, ctx.node().label()));
    }
  }
  for (int64_t i = 0; i < num_state; ++i) ctx.set_output(static_cast<size_t>(i), stack(final_state[static_cast<size_t>(i)], 0, ctx.node().label()));
  for (int64_t i = 0; i < num_scan_outputs; ++i) {
    ctx.set_output(static_cast<size_t>(num_state + i), stack(scan_out[static_cast<size_t>(i)], 0, ctx.node().label()));
  }
  return Status::Ok();
}

}  // namespace

void register_control_flow_kernels(KernelRegistry& r) {
  r.add("If", 1, INT_MAX, {DataType::kBool}, if_kernel);
  r.add("Loop", 1, INT_MAX, types::kAll, loop_kernel);
  r.add("Scan", 8, 8, types::kAll, scan8_kernel);
  r.add("Scan", 9, INT_MAX, types::kAll, scan_kernel);
}

}  // namespace deskml::kernels::cpu
