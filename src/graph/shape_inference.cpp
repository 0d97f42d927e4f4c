#include "graph/shape_inference.hpp"

#include <algorithm>
#include <functional>
#include <unordered_set>

namespace deskml::graph {
namespace {

using Dims = std::vector<Dim>;

bool same_dim(const Dim& a, const Dim& b) {
  if (a.known() && b.known()) return a.value == b.value;
  return !a.known() && !b.known() && !a.symbol.empty() && a.symbol == b.symbol;
}

// Declared dims and attributes come from the model file, so any arithmetic on them
// can overflow; an overflowing result is simply unknown.
std::optional<int64_t> checked_mul(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}
std::optional<int64_t> checked_add(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// Broadcast one dim pair; `ok` turns false for provably incompatible numbers.
Dim broadcast_dim(const Dim& a, const Dim& b, bool& ok) {
  if (same_dim(a, b)) return a;
  if (a.known() && a.value == 1) return b;
  if (b.known() && b.value == 1) return a;
  if (a.known() && b.known()) {
    ok = false;
    return Dim{};
  }
  if (a.known()) return a;  // b must be 1 or equal to a
  if (b.known()) return b;
  return Dim{};
}

// The dim a Reshape's -1 stands for: the input's element count over the other
// target dims', where numbers divide and symbols cancel. Unknown when a dim
// without a symbol takes part, or when more than one symbol is left over.
Dim inferred_dim(const Dims& in, const Dims& target, int skip) {
  std::optional<int64_t> in_known = 1, out_known = 1;
  std::vector<std::string> symbols;  // the input's, less the target's
  for (const Dim& d : in) {
    if (d.known()) {
      in_known = in_known ? checked_mul(*in_known, d.value) : std::nullopt;
    } else if (d.symbol.empty()) {
      return Dim{};
    } else {
      symbols.push_back(d.symbol);
    }
  }
  for (size_t i = 0; i < target.size(); ++i) {
    if (static_cast<int>(i) == skip) continue;
    const Dim& d = target[i];
    if (d.known()) {
      out_known = out_known ? checked_mul(*out_known, d.value) : std::nullopt;
      continue;
    }
    auto it = d.symbol.empty() ? symbols.end() : std::find(symbols.begin(), symbols.end(), d.symbol);
    if (it == symbols.end()) return Dim{};
    symbols.erase(it);
  }
  if (!in_known || !out_known || *out_known <= 0 || *in_known % *out_known != 0) return Dim{};
  const int64_t ratio = *in_known / *out_known;
  if (symbols.empty()) return Dim::of(ratio);
  if (symbols.size() == 1 && ratio == 1) return Dim::named(symbols.front());
  return Dim{};
}

// One element of an integer tensor that holds dims: a number, a dim's symbol,
// or unknown.
struct DimValue {
  std::optional<int64_t> number;
  std::string symbol;
  static DimValue of(const Dim& d) { return d.known() ? DimValue{d.value, {}} : DimValue{std::nullopt, d.symbol}; }
  Dim as_dim() const { return number ? Dim::of(*number) : Dim{-1, symbol}; }
};
using DimValues = std::vector<DimValue>;

struct Inference {
  Graph& graph;
  std::unordered_map<std::string, const Tensor*> constants;
  // Small integer tensors computed from shapes (Shape, then Gather, Slice,
  // Unsqueeze, Concat...): their elements, so that a Reshape to
  // Concat(Shape(x)[0], Shape(x)[1], 384) keeps x's symbolic dims.
  std::unordered_map<std::string, DimValues> dim_values;

  std::optional<ValueType> type_of(const std::string& name) const {
    if (name.empty()) return std::nullopt;
    return graph.type_of(name);
  }
  std::optional<Dims> shape(const std::string& name) const {
    auto t = type_of(name);
    if (!t || !t->shape) return std::nullopt;
    return t->shape;
  }
  DataType dtype(const std::string& name) const {
    auto t = type_of(name);
    return t ? t->dtype : DataType::kUndefined;
  }
  std::optional<std::vector<int64_t>> const_ints(const std::string& name) const {
    auto it = constants.find(name);
    if (it == constants.end()) return std::nullopt;
    if (!dtype_is_integer(it->second->dtype()) || it->second->numel() > 1024) return std::nullopt;
    return it->second->to_int64_vector();
  }

  // The elements of a 0-D or 1-D integer value, when they are known as numbers or dims.
  std::optional<DimValues> values_of(const std::string& name) const {
    if (auto it = dim_values.find(name); it != dim_values.end()) return it->second;
    auto c = constants.find(name);
    if (c == constants.end() || c->second->rank() > 1) return std::nullopt;
    auto ints = const_ints(name);
    if (!ints) return std::nullopt;
    DimValues v;
    for (int64_t x : *ints) v.push_back(DimValue{x, {}});
    return v;
  }

  // Follows dim values through the integer ops that shape computations use.
  void propagate_dim_values(const Node& n);

  void set(const std::string& name, DataType dt, std::optional<Dims> dims) {
    if (name.empty()) return;
    ValueType vt;
    vt.dtype = dt;
    vt.shape = std::move(dims);
    auto it = graph.value_types.find(name);
    if (it != graph.value_types.end()) {
      // Keep declared information where inference knows less.
      if (vt.dtype == DataType::kUndefined) vt.dtype = it->second.dtype;
      if (!vt.shape) vt.shape = it->second.shape;
    }
    graph.value_types[name] = std::move(vt);
  }

  static std::optional<Dims> broadcast(const std::vector<std::optional<Dims>>& shapes, bool& ok) {
    size_t rank = 0;
    for (const auto& s : shapes) {
      if (!s) return std::nullopt;
      rank = std::max(rank, s->size());
    }
    Dims out(rank, Dim::of(1));
    for (const auto& s : shapes) {
      const size_t off = rank - s->size();
      for (size_t i = 0; i < s->size(); ++i) out[off + i] = broadcast_dim(out[off + i], (*s)[i], ok);
    }
    return out;
  }

  // Strict: a rank-0 value has no axis (callers index vectors of `rank` entries with the result).
  static std::optional<int64_t> norm_axis(int64_t axis, size_t rank) {
    const auto r = static_cast<int64_t>(rank);
    if (axis < -r || axis >= r) return std::nullopt;
    return axis < 0 ? axis + r : axis;
  }

  // Spatial output size for conv/pool along one axis, when everything is numeric.
  static Dim window_dim(const Dim& in, int64_t kernel, int64_t stride, int64_t pad_begin, int64_t pad_end,
                        int64_t dilation, bool ceil_mode, const std::string& auto_pad) {
    if (!in.known() || kernel <= 0 || stride <= 0 || dilation <= 0 || pad_begin < 0 || pad_end < 0) return Dim{};
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      return Dim::of(in.value / stride + (in.value % stride != 0 ? 1 : 0));
    }
    const auto eff = checked_mul(kernel - 1, dilation);
    auto padded = checked_add(in.value, auto_pad == "VALID" ? 0 : pad_begin);
    if (padded) padded = checked_add(*padded, auto_pad == "VALID" ? 0 : pad_end);
    if (!eff || !padded || *padded - 1 < *eff) return Dim{};
    const int64_t span = *padded - 1 - *eff;  // (padded - effective kernel), >= 0
    int64_t out = span / stride + (ceil_mode && span % stride != 0 ? 1 : 0) + 1;
    // As the pool kernels do: a ceil-mode window may not start in the right padding.
    if (ceil_mode && out > 1 && (out - 1) * stride >= in.value + (auto_pad == "VALID" ? 0 : pad_begin)) --out;
    return Dim::of(out);
  }

  Status infer_node(const Node& n);
};

Status Inference::infer_node(const Node& n) {
  static const std::unordered_set<std::string> kSameAsInput = {
      "Relu", "Sigmoid", "Tanh", "Abs", "Neg", "Exp", "Log", "Sqrt", "Erf", "Softmax", "LogSoftmax", "Hardmax",
      "Identity", "LeakyRelu", "Clip", "HardSigmoid", "HardSwish", "Elu", "Selu", "Celu", "Gelu", "Softplus",
      "Softsign", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan",
      "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "InstanceNormalization", "LRN", "Mish", "CumSum", "Shrink",
      "ThresholdedRelu", "MeanVarianceNormalization", "LpNormalization", "BatchNormalization", "LayerNormalization",
      "GroupNormalization", "Dropout", "BitwiseNot", "QuantizeLinear", "DequantizeLinear"};
  static const std::unordered_set<std::string> kBroadcast = {"Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max",
                                                             "Min", "Sum", "Mean", "PRelu", "BitShift",
                                                             "BitwiseAnd", "BitwiseOr", "BitwiseXor"};
  static const std::unordered_set<std::string> kCompare = {"Equal", "Less", "Greater", "LessOrEqual",
                                                           "GreaterOrEqual", "And", "Or", "Xor"};
  if (!n.domain.empty() || n.outputs.empty()) return Status::Ok();
  propagate_dim_values(n);
  const std::string& op = n.op_type;
  const std::string& out = n.outputs[0];
  auto in = [&](size_t i) { return n.input(i); };
  bool ok = true;

  if (kSameAsInput.count(op)) {
    DataType dt = dtype(in(0));
    if (op == "QuantizeLinear") dt = n.inputs.size() > 2 ? dtype(in(2)) : DataType::kUInt8;
    if (op == "DequantizeLinear") dt = n.inputs.size() > 1 ? dtype(in(1)) : DataType::kFloat32;
    set(out, dt, shape(in(0)));
  } else if (kBroadcast.count(op) || kCompare.count(op) || op == "Where") {
    std::vector<std::optional<Dims>> shapes;
    for (const auto& name : n.inputs) shapes.push_back(shape(name));
    auto b = broadcast(shapes, ok);
    if (!ok) return invalid_model(n.label() + ": input shapes cannot be broadcast together");
    const DataType dt = kCompare.count(op) ? DataType::kBool : dtype(in(op == "Where" ? 1 : 0));
    set(out, dt, b);
  } else if (op == "Not" || op == "IsNaN" || op == "IsInf") {
    set(out, DataType::kBool, shape(in(0)));
  } else if (op == "Cast") {
    set(out, static_cast<DataType>(n.attr_int("to", 0)), shape(in(0)));
  } else if (op == "CastLike") {
    set(out, dtype(in(1)), shape(in(0)));
  } else if (op == "Shape") {
    std::optional<Dims> dims;
    if (auto s = shape(in(0))) {
      const auto rank = static_cast<int64_t>(s->size());
      int64_t start = n.attr_int("start", 0), end = n.attr_int("end", rank);
      start = std::clamp(start < 0 ? start + rank : start, int64_t{0}, rank);
      end = std::clamp(end < 0 ? end + rank : end, int64_t{0}, rank);
      dims = Dims{Dim::of(std::max<int64_t>(end - start, 0))};
    }
    set(out, DataType::kInt64, dims);
  } else if (op == "Size") {
    set(out, DataType::kInt64, Dims{});
  } else if (op == "Constant") {
    if (const Tensor* t = n.attr_tensor("value")) {
      constants[out] = t;
      Dims d;
      for (int64_t v : t->shape()) d.push_back(Dim::of(v));
      set(out, t->dtype(), d);
    } else if (n.has_attr("value_int")) {
      set(out, DataType::kInt64, Dims{});
    } else if (n.has_attr("value_ints")) {
      set(out, DataType::kInt64, Dims{Dim::of(static_cast<int64_t>(n.attr_ints("value_ints").size()))});
    } else if (n.has_attr("value_float")) {
      set(out, DataType::kFloat32, Dims{});
    }
  } else if (op == "MatMul") {
    auto a = shape(in(0)), b = shape(in(1));
    std::optional<Dims> dims;
    if (a && b && !a->empty() && !b->empty()) {
      Dims aa = *a, bb = *b;
      const bool a1 = aa.size() == 1, b1 = bb.size() == 1;
      if (a1) aa.insert(aa.begin(), Dim::of(1));
      if (b1) bb.push_back(Dim::of(1));
      Dims batch_a(aa.begin(), aa.end() - 2), batch_b(bb.begin(), bb.end() - 2);
      auto batch = broadcast({batch_a, batch_b}, ok);
      if (!ok) return invalid_model(n.label() + ": batch dimensions cannot be broadcast");
      dims = *batch;
      if (!a1) dims->push_back(aa[aa.size() - 2]);
      if (!b1) dims->push_back(bb.back());
    }
    set(out, dtype(in(0)), dims);
  } else if (op == "Gemm") {
    auto a = shape(in(0)), b = shape(in(1));
    std::optional<Dims> dims;
    if (a && b && a->size() == 2 && b->size() == 2) {
      dims = Dims{(*a)[n.attr_int("transA", 0) ? 1 : 0], (*b)[n.attr_int("transB", 0) ? 0 : 1]};
    }
    set(out, dtype(in(0)), dims);
  } else if (op == "Conv" || op == "MaxPool" || op == "AveragePool" || op == "LpPool") {
    auto x = shape(in(0));
    std::optional<Dims> dims;
    const bool conv = op == "Conv";
    auto w = conv ? shape(in(1)) : std::nullopt;
    if (x && x->size() >= 3 && (!conv || (w && w->size() == x->size()))) {
      const size_t spatial = x->size() - 2;
      std::vector<int64_t> kernel = n.attr_ints("kernel_shape");
      if (kernel.empty() && conv) {
        for (size_t i = 0; i < spatial; ++i) kernel.push_back((*w)[2 + i].known() ? (*w)[2 + i].value : -1);
      }
      const auto strides = n.attr_ints("strides", std::vector<int64_t>(spatial, 1));
      const auto dil = n.attr_ints("dilations", std::vector<int64_t>(spatial, 1));
      const auto pads = n.attr_ints("pads", std::vector<int64_t>(2 * spatial, 0));
      const std::string auto_pad = n.attr_string("auto_pad", "NOTSET");
      if (kernel.size() == spatial && strides.size() == spatial && dil.size() == spatial &&
          pads.size() == 2 * spatial) {
        dims = Dims{(*x)[0], conv ? (*w)[0] : (*x)[1]};
        for (size_t i = 0; i < spatial; ++i) {
          dims->push_back(window_dim((*x)[2 + i], kernel[i], strides[i], pads[i], pads[i + spatial], dil[i],
                                     n.attr_int("ceil_mode", 0) != 0, auto_pad));
        }
      }
    }
    set(out, dtype(in(0)), dims);
  } else if (op == "GlobalAveragePool" || op == "GlobalMaxPool") {
    auto x = shape(in(0));
    if (x && x->size() >= 2) {
      Dims d{(*x)[0], (*x)[1]};
      d.resize(x->size(), Dim::of(1));
      set(out, dtype(in(0)), d);
    } else {
      set(out, dtype(in(0)), std::nullopt);
    }
  } else if (op == "Flatten") {
    auto x = shape(in(0));
    std::optional<Dims> dims;
    if (x) {
      if (auto axis = norm_axis(n.attr_int("axis", 1), x->size() + 1)) {
        auto product = [&](size_t lo, size_t hi) {
          int64_t p = 1;
          for (size_t i = lo; i < hi; ++i) {
            const auto next = (*x)[i].known() ? checked_mul(p, (*x)[i].value) : std::nullopt;
            if (!next) return Dim{};
            p = *next;
          }
          return Dim::of(p);
        };
        dims = Dims{product(0, static_cast<size_t>(*axis)), product(static_cast<size_t>(*axis), x->size())};
      }
    }
    set(out, dtype(in(0)), dims);
  } else if (op == "Transpose") {
    auto x = shape(in(0));
    std::optional<Dims> dims;
    if (x) {
      std::vector<int64_t> perm = n.attr_ints("perm");
      if (perm.empty()) {
        for (size_t i = x->size(); i-- > 0;) perm.push_back(static_cast<int64_t>(i));
      }
      if (perm.size() == x->size()) {
        dims = Dims{};
        for (int64_t p : perm) {
          if (p < 0 || p >= static_cast<int64_t>(x->size())) return invalid_model(n.label() + ": bad perm");
          dims->push_back((*x)[static_cast<size_t>(p)]);
        }
      }
    }
    set(out, dtype(in(0)), dims);
  } else if (op == "Concat") {
    std::optional<Dims> dims = shape(in(0));
    if (dims && dims->empty()) return invalid_model(n.label() + ": cannot concatenate scalars");
    if (dims) {
      auto axis = norm_axis(n.attr_int("axis", 0), dims->size());
      if (!axis) return invalid_model(n.label() + ": axis out of range");
      Dim total = (*dims)[static_cast<size_t>(*axis)];
      for (size_t i = 1; i < n.inputs.size() && dims; ++i) {
        auto s = shape(in(i));
        if (!s || s->size() != dims->size()) {
          dims.reset();
          break;
        }
        const Dim& d = (*s)[static_cast<size_t>(*axis)];
        const auto sum = total.known() && d.known() ? checked_add(total.value, d.value) : std::nullopt;
        total = sum ? Dim::of(*sum) : Dim{};
      }
      if (dims) (*dims)[static_cast<size_t>(*axis)] = total;
    }
    set(out, dtype(in(0)), dims);
  } else if (op == "Reshape") {
    auto x = shape(in(0));
    std::optional<DimValues> target;
    if (n.opset >= 5) {
      target = values_of(in(1));
    } else {
      target = DimValues{};
      for (int64_t v : n.attr_ints("shape")) target->push_back(DimValue{v, {}});
    }
    std::optional<Dims> dims;
    if (target) {
      dims = Dims{};
      const bool allowzero = n.attr_int("allowzero", 0) != 0;
      int minus_one = -1;
      for (size_t i = 0; i < target->size(); ++i) {
        const DimValue& v = (*target)[i];
        if (v.number && *v.number == 0 && !allowzero) {
          dims->push_back(x && i < x->size() ? (*x)[i] : Dim{});
        } else if (v.number && *v.number == -1) {
          minus_one = static_cast<int>(i);
          dims->push_back(Dim{});
        } else if (v.number && *v.number < 0) {
          dims->push_back(Dim{});
        } else {
          dims->push_back(v.as_dim());
        }
      }
      if (minus_one >= 0 && x) (*dims)[static_cast<size_t>(minus_one)] = inferred_dim(*x, *dims, minus_one);
    }
    set(out, dtype(in(0)), dims);
  } else if (op == "Unsqueeze" || op == "Squeeze") {
    auto x = shape(in(0));
    auto axes = n.opset >= 13 ? (n.inputs.size() > 1 ? const_ints(in(1)) : std::optional<std::vector<int64_t>>())
                              : std::optional(n.attr_ints("axes"));
    std::optional<Dims> dims;
    if (x && axes) {
      if (op == "Unsqueeze") {
        const size_t rank = x->size() + axes->size();
        std::vector<bool> inserted(rank, false);
        for (int64_t a : *axes) {
          auto na = norm_axis(a, rank);
          if (!na) return invalid_model(n.label() + ": axis out of range");
          if (inserted[static_cast<size_t>(*na)]) return invalid_model(n.label() + ": axis repeated");
          inserted[static_cast<size_t>(*na)] = true;
        }
        dims = Dims{};
        size_t src = 0;
        for (size_t i = 0; i < rank; ++i) dims->push_back(inserted[i] ? Dim::of(1) : (*x)[src++]);
      } else {
        std::vector<bool> removed(x->size(), false);
        for (int64_t a : *axes) {
          auto na = norm_axis(a, x->size());
          if (!na) return invalid_model(n.label() + ": axis out of range");
          removed[static_cast<size_t>(*na)] = true;
        }
        dims = Dims{};
        for (size_t i = 0; i < x->size(); ++i) {
          if (!removed[i]) dims->push_back((*x)[i]);
        }
      }
    }
    set(out, dtype(in(0)), dims);
  } else if (op == "Gather") {
    auto x = shape(in(0)), idx = shape(in(1));
    std::optional<Dims> dims;
    if (x && idx && !x->empty()) {
      if (auto axis = norm_axis(n.attr_int("axis", 0), x->size())) {
        dims = Dims(x->begin(), x->begin() + *axis);
        dims->insert(dims->end(), idx->begin(), idx->end());
        dims->insert(dims->end(), x->begin() + *axis + 1, x->end());
      }
    }
    set(out, dtype(in(0)), dims);
  } else if (op == "ConstantOfShape") {
    std::optional<Dims> dims;
    if (auto s = const_ints(in(0))) {
      dims = Dims{};
      for (int64_t v : *s) dims->push_back(Dim::of(v));
    }
    const Tensor* value = n.attr_tensor("value");
    set(out, value ? value->dtype() : DataType::kFloat32, dims);
  } else if (op == "ArgMax" || op == "ArgMin") {
    auto x = shape(in(0));
    std::optional<Dims> dims;
    if (x && !x->empty()) {
      if (auto axis = norm_axis(n.attr_int("axis", 0), x->size())) {
        dims = *x;
        if (n.attr_int("keepdims", 1)) (*dims)[static_cast<size_t>(*axis)] = Dim::of(1);
        else dims->erase(dims->begin() + *axis);
      }
    }
    set(out, DataType::kInt64, dims);
  } else if (op.rfind("Reduce", 0) == 0) {
    auto x = shape(in(0));
    std::optional<std::vector<int64_t>> axes;
    if (n.has_attr("axes")) axes = n.attr_ints("axes");
    else if (n.inputs.size() > 1) axes = const_ints(in(1));
    else axes = std::vector<int64_t>{};
    std::optional<Dims> dims;
    if (x && axes) {
      const bool keep = n.attr_int("keepdims", 1) != 0;
      std::vector<bool> reduced(x->size(), axes->empty() && !n.attr_int("noop_with_empty_axes", 0));
      for (int64_t a : *axes) {
        auto na = norm_axis(a, x->size());
        if (!na) return invalid_model(n.label() + ": axis out of range");
        reduced[static_cast<size_t>(*na)] = true;
      }
      dims = Dims{};
      for (size_t i = 0; i < x->size(); ++i) {
        if (!reduced[i]) dims->push_back((*x)[i]);
        else if (keep) dims->push_back(Dim::of(1));
      }
    }
    set(out, dtype(in(0)), dims);
  } else {
    // No rule: leave the output as declared (or unknown).
    set(out, DataType::kUndefined, std::nullopt);
  }
  return Status::Ok();
}

void Inference::propagate_dim_values(const Node& n) {
  const std::string& op = n.op_type;
  const std::string& out = n.outputs[0];
  if (out.empty()) return;
  constexpr size_t kMaxValues = 64;  // shapes, not data
  DimValues v;
  if (op == "Shape") {
    auto x = shape(n.input(0));
    if (!x) return;
    const auto rank = static_cast<int64_t>(x->size());
    int64_t start = n.attr_int("start", 0), end = n.attr_int("end", rank);
    start = std::clamp(start < 0 ? start + rank : start, int64_t{0}, rank);
    end = std::clamp(end < 0 ? end + rank : end, int64_t{0}, rank);
    for (int64_t i = start; i < end; ++i) v.push_back(DimValue::of((*x)[static_cast<size_t>(i)]));
  } else if (op == "Identity" || op == "Unsqueeze" || op == "Squeeze" ||
             (op == "Cast" && dtype_is_integer(static_cast<DataType>(n.attr_int("to", 0))))) {
    auto x = values_of(n.input(0));
    if (!x) return;
    v = std::move(*x);
  } else if (op == "Gather") {
    auto x = values_of(n.input(0));
    auto idx = const_ints(n.input(1));
    if (!x || !idx || n.attr_int("axis", 0) != 0) return;
    const auto size = static_cast<int64_t>(x->size());
    for (int64_t i : *idx) {
      if (i < -size || i >= size) return;
      v.push_back((*x)[static_cast<size_t>(i < 0 ? i + size : i)]);
    }
  } else if (op == "Concat") {
    for (const auto& name : n.inputs) {
      auto x = values_of(name);
      if (!x) return;
      v.insert(v.end(), x->begin(), x->end());
    }
  } else if (op == "Slice" && n.opset >= 10) {
    auto x = values_of(n.input(0));
    auto starts = const_ints(n.input(1)), ends = const_ints(n.input(2));
    auto axes = n.input(3).empty() ? std::optional(std::vector<int64_t>{0}) : const_ints(n.input(3));
    auto steps = n.input(4).empty() ? std::optional(std::vector<int64_t>{1}) : const_ints(n.input(4));
    if (!x || !starts || !ends || !axes || !steps || starts->size() != 1 || ends->size() != 1 || axes->size() != 1 ||
        steps->size() != 1 || ((*axes)[0] != 0 && (*axes)[0] != -1) || (*steps)[0] != 1) {
      return;
    }
    const auto size = static_cast<int64_t>(x->size());
    auto clamp = [&](int64_t i) { return std::clamp(i < 0 ? i + size : i, int64_t{0}, size); };
    for (int64_t i = clamp((*starts)[0]); i < clamp((*ends)[0]); ++i) v.push_back((*x)[static_cast<size_t>(i)]);
  } else {
    return;
  }
  if (v.size() <= kMaxValues) dim_values[out] = std::move(v);
}

}  // namespace

Result<InferenceStats> infer_shapes(Graph& graph) {
  DESKML_ASSIGN_OR_RETURN(std::vector<size_t> order, topological_order(graph, {}));
  Inference inf{graph, {}, {}};
  for (const auto& [name, t] : graph.initializers) inf.constants[name] = &t;
  InferenceStats stats;
  for (size_t idx : order) {
    const Node& n = graph.nodes[idx];
    DESKML_RETURN_IF_ERROR(inf.infer_node(n));
  }
  for (size_t idx : order) {
    for (const auto& out : graph.nodes[idx].outputs) {
      if (out.empty()) continue;
      ++stats.values;
      auto t = graph.type_of(out);
      if (t && t->dtype != DataType::kUndefined) ++stats.typed;
      if (t && t->shape &&
          std::all_of(t->shape->begin(), t->shape->end(), [](const Dim& d) { return d.known() || !d.symbol.empty(); })) {
        ++stats.fully_shaped;
      }
    }
  }
  return stats;
}

}  // namespace deskml::graph
