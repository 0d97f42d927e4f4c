// Tensor sequences (SequenceEmpty/Construct/Insert/At/Erase/Length,
// SplitToSequence, ConcatFromSequence, SequenceMap) and optionals
// (Optional, OptionalHasElement, OptionalGetElement).
//
// Sequences hold tensors that share storage with whatever produced them:
// inputs are never written, so inserting, erasing or reading an element
// never copies tensor data. Only SplitToSequence and ConcatFromSequence move
// elements, and SplitToSequence returns views when a piece is contiguous.
#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"

namespace deskml::kernels::cpu {
namespace {

// --- helpers ------------------------------------------------------------------

// Copies `rows` blocks of `len` elements (strings included):
// dst[dst_off + r * dst_stride + j] = src[src_off + r * src_stride + j].
void copy_blocks(const Tensor& src, int64_t src_off, int64_t src_stride, Tensor& dst, int64_t dst_off,
                 int64_t dst_stride, int64_t rows, int64_t len, int threads) {
  if (rows <= 0 || len <= 0) return;
  if (src.dtype() == DataType::kString) {
    const std::string* s = src.data<std::string>();
    std::string* d = dst.data<std::string>();
    parallel_for(rows, threads, len * 8, [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const std::string* sr = s + src_off + r * src_stride;
        std::string* dr = d + dst_off + r * dst_stride;
        for (int64_t j = 0; j < len; ++j) dr[j] = sr[j];
      }
    });
    return;
  }
  const auto es = static_cast<int64_t>(dtype_size(src.dtype()));
  const char* s = static_cast<const char*>(src.raw_data());
  char* d = static_cast<char*>(dst.raw_data());
  parallel_for(rows, threads, len * es / 4 + 1, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      std::memcpy(d + (dst_off + r * dst_stride) * es, s + (src_off + r * src_stride) * es,
                  static_cast<size_t>(len * es));
    }
  });
}

// A tensor of `shape` over src's elements [offset, offset + numel): no copy; the view keeps src's storage alive.
Tensor contiguous_view(const Tensor& src, int64_t offset, Shape shape) {
  auto owner = std::make_shared<Tensor>(src);
  const char* base = static_cast<const char*>(src.raw_data());
  void* data = const_cast<char*>(base) + offset * static_cast<int64_t>(dtype_size(src.dtype()));
  return Tensor::wrap(src.dtype(), std::move(shape), data, std::move(owner));
}

// Like required_input, with a clearer message when a sequence arrives where a tensor belongs.
const Tensor& tensor_input(const KernelContext& ctx, size_t i) {
  const Value* v = ctx.input_value(i);
  if (v != nullptr && v->is_sequence()) {
    throw_status(ctx.error("input " + std::to_string(i) + " must be a tensor, not a sequence"));
  }
  return ctx.required_input(i);
}

const Value& sequence_input(const KernelContext& ctx, size_t i) {
  const Value* v = ctx.input_value(i);
  if (v == nullptr) throw_status(ctx.error("input " + std::to_string(i) + " (a sequence) is missing"));
  if (!v->is_sequence()) throw_status(ctx.error("input " + std::to_string(i) + " must be a sequence of tensors"));
  return *v;
}

// Reads an optional scalar position input (int32/int64, one element); nullopt when absent.
std::optional<int64_t> position_input(const KernelContext& ctx, size_t i) {
  const Value* v = ctx.input_value(i);
  if (v == nullptr) return std::nullopt;
  if (!v->is_tensor()) throw_status(ctx.error("position must be a tensor"));
  const Tensor& t = v->tensor;
  if (t.dtype() != DataType::kInt32 && t.dtype() != DataType::kInt64) {
    throw_status(ctx.error("position must be int32 or int64, got " + std::string(dtype_name(t.dtype()))));
  }
  if (t.numel() != 1 || t.rank() > 1) throw_status(ctx.error("position must be a scalar, got " + t.description()));
  return t.int_at(0);
}

// Maps a position in [-n, n - 1 + allow_end] to [0, n - 1 + allow_end].
size_t normalize_position(const KernelContext& ctx, int64_t pos, size_t size, bool allow_end) {
  const auto n = static_cast<int64_t>(size);
  const int64_t hi = allow_end ? n : n - 1;
  if (pos < -n || pos > hi) {
    throw_status(ctx.error("position " + std::to_string(pos) + " is out of range [" + std::to_string(-n) + ", " +
                           std::to_string(hi) + "] for a sequence of " + std::to_string(n)));
  }
  return static_cast<size_t>(pos < 0 ? pos + n : pos);
}

void check_element_type(const KernelContext& ctx, DataType seq_dtype, const Tensor& t) {
  if (seq_dtype != DataType::kUndefined && t.dtype() != seq_dtype) {
    throw_status(ctx.error("tensor of type " + std::string(dtype_name(t.dtype())) + " cannot join a sequence of " +
                           std::string(dtype_name(seq_dtype))));
  }
}

// --- sequence ops ---------------------------------------------------------------

Status sequence_empty(KernelContext& ctx) {
  const int64_t code = ctx.node().attr_int("dtype", static_cast<int64_t>(DataType::kFloat32));
  if (code < INT32_MIN || code > INT32_MAX) return ctx.error("invalid dtype " + std::to_string(code));
  auto dtype = dtype_from_onnx(static_cast<int32_t>(code));
  if (!dtype.ok()) return ctx.error("dtype: " + dtype.status().message());
  ctx.set_output_value(0, Value::from_sequence({}, *dtype));
  return Status::Ok();
}

Status sequence_construct(KernelContext& ctx) {
  if (ctx.num_inputs() == 0) return ctx.error("needs at least one input");
  std::vector<Tensor> items;
  items.reserve(ctx.num_inputs());
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    const Tensor& t = tensor_input(ctx, i);
    check_element_type(ctx, items.empty() ? DataType::kUndefined : items.front().dtype(), t);
    items.push_back(t);
  }
  const DataType dtype = items.front().dtype();
  ctx.set_output_value(0, Value::from_sequence(std::move(items), dtype));
  return Status::Ok();
}

Status sequence_insert(KernelContext& ctx) {
  const Value& seq = sequence_input(ctx, 0);
  const Tensor& t = tensor_input(ctx, 1);
  check_element_type(ctx, seq.sequence.empty() ? seq.sequence_dtype : seq.sequence.front().dtype(), t);
  const std::optional<int64_t> pos = position_input(ctx, 2);
  const size_t at = pos ? normalize_position(ctx, *pos, seq.sequence.size(), true) : seq.sequence.size();
  std::vector<Tensor> items;
  items.reserve(seq.sequence.size() + 1);
  items.insert(items.end(), seq.sequence.begin(), seq.sequence.begin() + static_cast<std::ptrdiff_t>(at));
  items.push_back(t);
  items.insert(items.end(), seq.sequence.begin() + static_cast<std::ptrdiff_t>(at), seq.sequence.end());
  ctx.set_output_value(0, Value::from_sequence(std::move(items), t.dtype()));
  return Status::Ok();
}

Status sequence_at(KernelContext& ctx) {
  const Value& seq = sequence_input(ctx, 0);
  const std::optional<int64_t> pos = position_input(ctx, 1);
  if (!pos) return ctx.error("position is required");
  if (seq.sequence.empty()) return ctx.error("cannot read from an empty sequence");
  ctx.set_output(0, seq.sequence[normalize_position(ctx, *pos, seq.sequence.size(), false)]);
  return Status::Ok();
}

Status sequence_erase(KernelContext& ctx) {
  const Value& seq = sequence_input(ctx, 0);
  if (seq.sequence.empty()) return ctx.error("cannot erase from an empty sequence");
  const std::optional<int64_t> pos = position_input(ctx, 1);
  const size_t at = pos ? normalize_position(ctx, *pos, seq.sequence.size(), false) : seq.sequence.size() - 1;
  std::vector<Tensor> items = seq.sequence;
  items.erase(items.begin() + static_cast<std::ptrdiff_t>(at));
  ctx.set_output_value(0, Value::from_sequence(std::move(items), seq.sequence_dtype));
  return Status::Ok();
}

Status sequence_length(KernelContext& ctx) {
  const Value& seq = sequence_input(ctx, 0);
  ctx.set_output(0, Tensor::scalar<int64_t>(static_cast<int64_t>(seq.sequence.size())));
  return Status::Ok();
}

Status split_to_sequence(KernelContext& ctx) {
  const Tensor& x = tensor_input(ctx, 0);
  if (x.rank() == 0) return ctx.error("cannot split a scalar");
  const int64_t axis = normalize_axis_or_throw(ctx.node().attr_int("axis", 0), x.rank());
  const bool keepdims = ctx.node().attr_int("keepdims", 1) != 0;
  const int64_t dim = x.shape()[static_cast<size_t>(axis)];

  std::vector<int64_t> lengths;
  bool squeeze = false;
  if (const Tensor* split = ctx.input(1)) {
    if (split->dtype() != DataType::kInt32 && split->dtype() != DataType::kInt64) {
      return ctx.error("split must be int32 or int64");
    }
    if (split->rank() == 0) {
      const int64_t chunk = split->int_at(0);
      if (chunk <= 0) return ctx.error("split must be positive, got " + std::to_string(chunk));
      for (int64_t s = 0; s < dim; s += chunk) lengths.push_back(std::min(chunk, dim - s));
    } else if (split->rank() == 1) {
      lengths = split->to_int64_vector();
      int64_t total = 0;
      for (int64_t l : lengths) {
        if (l < 0) return ctx.error("split lengths must not be negative, got " + std::to_string(l));
        total += l;
        if (total > dim) break;
      }
      if (total != dim) {
        return ctx.error("split lengths sum to " + std::to_string(total) + " but axis " + std::to_string(axis) +
                         " has " + std::to_string(dim) + " elements");
      }
    } else {
      return ctx.error("split must be a scalar or 1-D, got " + split->description());
    }
  } else {
    lengths.assign(static_cast<size_t>(dim), 1);
    squeeze = !keepdims;
  }

  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.shape()[static_cast<size_t>(d)];
  for (size_t d = static_cast<size_t>(axis) + 1; d < x.shape().size(); ++d) inner *= x.shape()[d];

  std::vector<Tensor> items;
  items.reserve(lengths.size());
  int64_t start = 0;
  for (int64_t len : lengths) {
    Shape shape = x.shape();
    shape[static_cast<size_t>(axis)] = len;
    if (squeeze) shape.erase(shape.begin() + axis);
    if (outer == 1) {
      items.push_back(contiguous_view(x, start * inner, std::move(shape)));
    } else {
      Tensor piece(x.dtype(), std::move(shape));
      copy_blocks(x, start * inner, dim * inner, piece, 0, len * inner, outer, len * inner, ctx.threads());
      items.push_back(std::move(piece));
    }
    start += len;
  }
  ctx.set_output_value(0, Value::from_sequence(std::move(items), x.dtype()));
  return Status::Ok();
}

Status concat_from_sequence(KernelContext& ctx) {
  const Value& seq = sequence_input(ctx, 0);
  if (!ctx.node().has_attr("axis")) return ctx.error("attribute 'axis' is required");
  const bool new_axis = ctx.node().attr_int("new_axis", 0) != 0;
  const auto& items = seq.sequence;
  if (items.empty()) return ctx.error("cannot concatenate an empty sequence");
  const Tensor& first = items.front();
  const int64_t rank = first.rank();
  if (!new_axis && rank == 0) return ctx.error("cannot concatenate scalars (use new_axis=1 to stack them)");
  const int64_t axis = normalize_axis_or_throw(ctx.node().attr_int("axis", 0), new_axis ? rank + 1 : rank);

  int64_t total = 0;
  for (const auto& t : items) {
    if (t.dtype() != first.dtype()) return ctx.error("sequence elements have different types");
    bool compatible = t.rank() == rank;
    for (int64_t d = 0; compatible && d < rank; ++d) {
      if (d != axis || new_axis) compatible = t.shape()[static_cast<size_t>(d)] == first.shape()[static_cast<size_t>(d)];
    }
    if (!compatible) {
      return ctx.error("cannot " + std::string(new_axis ? "stack " : "concatenate ") + first.description() + " and " +
                       t.description() + " along axis " + std::to_string(axis));
    }
    total += new_axis ? 1 : t.shape()[static_cast<size_t>(axis)];
  }

  Shape out_shape = first.shape();
  if (new_axis) {
    out_shape.insert(out_shape.begin() + axis, total);
  } else {
    out_shape[static_cast<size_t>(axis)] = total;
  }
  if (items.size() == 1) {  // nothing to move
    ctx.set_output(0, first.reshaped(std::move(out_shape)));
    return Status::Ok();
  }
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= out_shape[static_cast<size_t>(d)];
  for (size_t d = static_cast<size_t>(axis) + 1; d < out_shape.size(); ++d) inner *= out_shape[d];
  Tensor& out = ctx.allocate_output(0, first.dtype(), std::move(out_shape));
  int64_t offset = 0;
  for (const auto& t : items) {
    const int64_t len = (new_axis ? 1 : t.shape()[static_cast<size_t>(axis)]) * inner;
    copy_blocks(t, 0, len, out, offset, total * inner, outer, len, ctx.threads());
    offset += len;
  }
  return Status::Ok();
}

Status sequence_map(KernelContext& ctx) {
  const graph::GraphPtr body = ctx.node().attr_graph("body");
  if (!body) return ctx.error("attribute 'body' is required");
  if (ctx.subgraphs() == nullptr) return ctx.error("no subgraph runner available");
  if (ctx.num_inputs() == 0) return ctx.error("needs at least one input");
  if (body->inputs.size() != ctx.num_inputs()) {
    return ctx.error("the body takes " + std::to_string(body->inputs.size()) + " inputs, the node has " +
                     std::to_string(ctx.num_inputs()));
  }
  if (body->outputs.size() != ctx.num_outputs()) {
    return ctx.error("the body has " + std::to_string(body->outputs.size()) + " outputs, the node has " +
                     std::to_string(ctx.num_outputs()));
  }
  const size_t n = sequence_input(ctx, 0).sequence.size();
  std::vector<const Value*> inputs(ctx.num_inputs());
  for (size_t i = 0; i < inputs.size(); ++i) {
    inputs[i] = ctx.input_value(i);
    if (inputs[i] == nullptr) return ctx.error("input " + std::to_string(i) + " is missing");
    if (inputs[i]->is_sequence() && inputs[i]->sequence.size() != n) {
      return ctx.error("input " + std::to_string(i) + " has " + std::to_string(inputs[i]->sequence.size()) +
                       " elements, the first sequence has " + std::to_string(n));
    }
  }
  std::vector<std::vector<Tensor>> results(ctx.num_outputs());
  for (auto& r : results) r.reserve(n);
  for (size_t s = 0; s < n; ++s) {
    std::vector<Value> args;
    args.reserve(inputs.size());
    for (const Value* v : inputs) args.push_back(v->is_sequence() ? Value::from_tensor(v->sequence[s]) : *v);
    DESKML_ASSIGN_OR_RETURN(std::vector<Value> outs, ctx.subgraphs()->run("body", std::move(args)));
    if (outs.size() != results.size()) return ctx.error("the body returned the wrong number of outputs");
    for (size_t k = 0; k < outs.size(); ++k) {
      if (!outs[k].is_tensor()) {
        return ctx.error("body output " + std::to_string(k) + " is not a tensor (iteration " + std::to_string(s) + ")");
      }
      if (!results[k].empty() && outs[k].tensor.dtype() != results[k].front().dtype()) {
        return ctx.error("body output " + std::to_string(k) + " changes type between iterations");
      }
      results[k].push_back(std::move(outs[k].tensor));
    }
  }
  for (size_t k = 0; k < results.size(); ++k) {
    const DataType dtype = results[k].empty() ? body->outputs[k].type.dtype : results[k].front().dtype();
    ctx.set_output_value(k, Value::from_sequence(std::move(results[k]), dtype));
  }
  return Status::Ok();
}

// --- optionals --------------------------------------------------------------------

Status optional_kernel(KernelContext& ctx) {
  const Value* v = ctx.input_value(0);
  if (v != nullptr) {
    ctx.set_output_value(0, *v);
    return Status::Ok();
  }
  const bool input_named = !ctx.node().input(0).empty();
  if (!input_named && !ctx.node().has_attr("type")) {
    return ctx.error("an Optional without an input needs the 'type' attribute");
  }
  ctx.set_output_value(0, Value{});  // an empty optional
  return Status::Ok();
}

Status optional_has_element(KernelContext& ctx) {
  ctx.set_output(0, Tensor::scalar<bool>(ctx.input_value(0) != nullptr));
  return Status::Ok();
}

Status optional_get_element(KernelContext& ctx) {
  const Value* v = ctx.input_value(0);
  if (v == nullptr) return ctx.error("the optional input is empty");
  ctx.set_output_value(0, *v);
  return Status::Ok();
}

}  // namespace

void register_sequence_kernels(KernelRegistry& r) {
  const auto& any = types::kAll;
  r.add("SequenceEmpty", 11, INT_MAX, any, sequence_empty);
  r.add("SequenceConstruct", 11, INT_MAX, any, sequence_construct);
  r.add("SequenceInsert", 11, INT_MAX, any, sequence_insert);
  r.add("SequenceAt", 11, INT_MAX, any, sequence_at);
  r.add("SequenceErase", 11, INT_MAX, any, sequence_erase);
  r.add("SequenceLength", 11, INT_MAX, any, sequence_length);
  r.add("SplitToSequence", 11, INT_MAX, any, split_to_sequence);
  r.add("ConcatFromSequence", 11, INT_MAX, any, concat_from_sequence);
  r.add("SequenceMap", 17, INT_MAX, any, sequence_map);
  r.add("Optional", 15, INT_MAX, any, optional_kernel);
  r.add("OptionalHasElement", 15, INT_MAX, any, optional_has_element);
  r.add("OptionalGetElement", 15, INT_MAX, any, optional_get_element);
}

}  // namespace deskml::kernels::cpu
