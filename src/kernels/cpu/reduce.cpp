// Reductions: ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1,
// ReduceL2, ReduceLogSum, ReduceLogSumExp, ReduceSumSquare (ArgMax/ArgMin live in
// reduce_arg.cpp).
//
// Axes come from the `axes` attribute before the opset where they became an
// input (13 for ReduceSum, 18 for the others). Adjacent dims with the same
// reduced/kept status are merged, size-1 dims dropped, and the work takes one
// of two shapes: the innermost merged dim is reduced (each output reduces
// contiguous runs) or kept (outputs accumulate whole contiguous rows, which
// vectorizes across the kept dim).
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"

namespace deskml::kernels::cpu {

void register_arg_reduce_kernels(KernelRegistry& r);  // reduce_arg.cpp

namespace {

enum class RK { kSum, kMean, kMax, kMin, kProd, kL1, kL2, kLogSum, kLogSumExp, kSumSquare };

template <typename T>
inline constexpr bool kFloatLike =
    std::is_floating_point_v<T> || std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>;

// The accumulator type for reduction K over storage type T.
template <RK K, typename T>
struct AccOf {
  static auto pick() {
    if constexpr (std::is_same_v<T, double>) {
      return double{};
    } else if constexpr (kFloatLike<T>) {
      return float{};
    } else if constexpr (K == RK::kMax || K == RK::kMin) {
      return T{};
    } else if constexpr (K == RK::kL2 || K == RK::kLogSum || K == RK::kLogSumExp) {
      return double{};
    } else if constexpr (std::is_unsigned_v<T>) {
      return uint64_t{};
    } else {
      return int64_t{};
    }
  }
  using type = decltype(pick());
};

// Integer arithmetic that wraps instead of overflowing (signed overflow is UB).
template <typename A>
inline A wrap_add(A a, A b) {
  if constexpr (std::is_integral_v<A>) {
    using U = std::make_unsigned_t<A>;
    return static_cast<A>(static_cast<U>(a) + static_cast<U>(b));
  } else {
    return a + b;
  }
}
template <typename A>
inline A wrap_mul(A a, A b) {
  if constexpr (std::is_integral_v<A>) {
    using U = std::make_unsigned_t<A>;
    return static_cast<A>(static_cast<U>(a) * static_cast<U>(b));
  } else {
    return a * b;
  }
}

template <RK K, typename A>
struct Red {
  static A init() {
    if constexpr (K == RK::kMax) {
      if constexpr (std::numeric_limits<A>::has_infinity) return -std::numeric_limits<A>::infinity();
      return std::numeric_limits<A>::lowest();
    } else if constexpr (K == RK::kMin) {
      if constexpr (std::numeric_limits<A>::has_infinity) return std::numeric_limits<A>::infinity();
      return std::numeric_limits<A>::max();
    } else if constexpr (K == RK::kProd) {
      return A(1);
    } else {
      return A(0);
    }
  }
  // Per-element transform; `shift` is only used by LogSumExp.
  static A pre(A x, A shift) {
    if constexpr (K == RK::kL1) {
      if constexpr (std::is_unsigned_v<A>) {
        return x;
      } else if constexpr (std::is_integral_v<A>) {
        return x < 0 ? wrap_mul(x, A(-1)) : x;
      } else {
        return std::abs(x);
      }
    } else if constexpr (K == RK::kL2 || K == RK::kSumSquare) {
      return wrap_mul(x, x);
    } else if constexpr (K == RK::kLogSumExp) {
      return std::exp(x - shift);
    } else {
      return x;
    }
  }
  static A combine(A a, A b) {
    if constexpr (K == RK::kMax) {
      const A m = b > a ? b : a;
      if constexpr (std::is_floating_point_v<A>) return b != b ? b : m;  // NaN propagates (branch-free form)
      return m;
    } else if constexpr (K == RK::kMin) {
      const A m = b < a ? b : a;
      if constexpr (std::is_floating_point_v<A>) return b != b ? b : m;
      return m;
    } else if constexpr (K == RK::kProd) {
      return wrap_mul(a, b);
    } else {
      return wrap_add(a, b);
    }
  }
  static A finish(A a, int64_t n, A shift) {
    if constexpr (K == RK::kMean) {
      if constexpr (std::is_floating_point_v<A>) return a / static_cast<A>(n);
      return n == 0 ? A(0) : static_cast<A>(a / static_cast<A>(n));
    } else if constexpr (K == RK::kL2) {
      return std::sqrt(a);
    } else if constexpr (K == RK::kLogSum) {
      return std::log(a);
    } else if constexpr (K == RK::kLogSumExp) {
      return std::log(a) + shift;
    } else {
      return a;
    }
  }
};

template <typename A, typename T>
inline A load(T v) {
  return convert_scalar<A>(v);
}

// Accumulator back to storage type; non-finite values headed for an integer saturate.
template <typename T, typename A>
inline T store(A a) {
  if constexpr (std::is_integral_v<T> && std::is_floating_point_v<A>) {
    if (std::isnan(a)) return T{};
    if (a <= static_cast<A>(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
    if (a >= static_cast<A>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return static_cast<T>(a);
  } else {
    return convert_scalar<T>(a);
  }
}

// A finite shift for LogSumExp (an infinite or NaN max would poison x - max).
template <typename A>
inline A lse_shift(A m) {
  if constexpr (std::is_floating_point_v<A>) return std::isfinite(m) ? m : A(0);
  return A(0);
}

// Reduces n contiguous elements with 32 independent lanes: more accurate sums, and
// a lane loop long enough for GCC to vectorize as a loop (short lane loops are
// unrolled first and then stay scalar for max/min).
template <RK K, typename T, typename A>
inline A reduce_run(const T* p, int64_t n, A shift) {
  using R = Red<K, A>;
  constexpr int kLanes = 32;
  A acc = R::init();
  int64_t i = 0;
  if (n >= kLanes) {
    A lane[kLanes];
    for (int j = 0; j < kLanes; ++j) lane[j] = R::init();
    for (; i + kLanes <= n; i += kLanes) {
      for (int j = 0; j < kLanes; ++j) lane[j] = R::combine(lane[j], R::pre(load<A>(p[i + j]), shift));
    }
    for (int j = 0; j < kLanes; ++j) acc = R::combine(acc, lane[j]);
  }
  for (; i < n; ++i) acc = R::combine(acc, R::pre(load<A>(p[i]), shift));
  return acc;
}

// All offsets (in elements) of the index grid `dims` with `strides`, row-major.
std::vector<int64_t> grid_offsets(const std::vector<int64_t>& dims, const std::vector<int64_t>& strides) {
  int64_t total = 1;
  for (int64_t d : dims) total *= d;
  std::vector<int64_t> out(static_cast<size_t>(total));
  std::vector<int64_t> idx(dims.size(), 0);
  int64_t off = 0;
  for (int64_t i = 0; i < total; ++i) {
    out[static_cast<size_t>(i)] = off;
    for (size_t d = dims.size(); d-- > 0;) {
      off += strides[d];
      if (++idx[d] < dims[d]) break;
      off -= strides[d] * dims[d];
      idx[d] = 0;
    }
  }
  return out;
}

// A grid walked as (offsets of all but its last dim) x (last dim by stride), so the
// offset list stays small next to the data it indexes.
struct Grid {
  std::vector<int64_t> outer{0};
  int64_t count = 1, stride = 0;
  template <typename Fn>
  void each(Fn&& fn) const {
    for (int64_t o : outer) {
      for (int64_t j = 0; j < count; ++j) fn(o + j * stride);
    }
  }
};

Grid make_grid(std::vector<int64_t> dims, std::vector<int64_t> strides) {
  Grid g;
  if (dims.empty()) return g;
  g.count = dims.back();
  g.stride = strides.back();
  dims.pop_back();
  strides.pop_back();
  g.outer = grid_offsets(dims, strides);
  return g;
}

// The input shape with adjacent same-status dims merged and size-1 dims dropped.
struct Layout {
  std::vector<int64_t> dims, strides;
  std::vector<char> reduced;
  int64_t out_count = 1;
  int64_t red_count = 1;
};

Layout make_layout(const Shape& shape, const std::vector<char>& mask) {
  Layout l;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (mask[i]) {
      l.red_count *= shape[i];
    } else {
      l.out_count *= shape[i];
    }
    if (shape[i] == 1) continue;
    if (!l.dims.empty() && l.reduced.back() == mask[i]) {
      l.dims.back() *= shape[i];
    } else {
      l.dims.push_back(shape[i]);
      l.reduced.push_back(mask[i]);
    }
  }
  l.strides.assign(l.dims.size(), 1);
  for (size_t i = l.dims.size(); i-- > 1;) l.strides[i - 1] = l.strides[i] * l.dims[i];
  return l;
}

// out[o] = finish(reduce over the elements of output o). `shift` (LogSumExp) is per output.
template <RK K, typename T, typename A>
void run_reduction(const T* in, T* out, const Layout& l, const A* shift, int threads) {
  using R = Red<K, A>;
  auto sh = [&](int64_t o) { return shift ? lse_shift(shift[o]) : A(0); };
  const size_t nd = l.dims.size();
  if (l.red_count == 1) {  // nothing to combine: an element-wise transform
    parallel_for(l.out_count, threads, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const A s = shift ? lse_shift(load<A>(in[i])) : A(0);
        out[i] = store<T>(R::finish(R::combine(R::init(), R::pre(load<A>(in[i]), s)), 1, s));
      }
    });
    return;
  }
  if (nd == 1) {  // everything reduced into one output: partial results per chunk
    const int64_t n = l.dims[0];
    const A s = sh(0);
    const int64_t chunks = std::clamp<int64_t>(n / kParallelGrain, 1, std::max(threads, 1));
    std::vector<A> part(static_cast<size_t>(chunks), R::init());
    parallel_for(chunks, threads, kParallelGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t c = lo; c < hi; ++c) {
        const int64_t b = n * c / chunks, e = n * (c + 1) / chunks;
        part[static_cast<size_t>(c)] = reduce_run<K, T, A>(in + b, e - b, s);
      }
    });
    A acc = R::init();
    for (A v : part) acc = R::combine(acc, v);
    out[0] = store<T>(R::finish(acc, n, s));
    return;
  }
  std::vector<int64_t> kd, ks, rd, rs;  // kept / reduced dims and strides, innermost excluded
  for (size_t i = 0; i + 1 < nd; ++i) {
    (l.reduced[i] ? rd : kd).push_back(l.dims[i]);
    (l.reduced[i] ? rs : ks).push_back(l.strides[i]);
  }
  const int64_t inner = l.dims[nd - 1];
  if (l.reduced[nd - 1]) {
    // Each output reduces `inner`-long contiguous runs at every reduced outer offset.
    const auto base = grid_offsets(kd, ks);
    const Grid roff = make_grid(rd, rs);
    parallel_for(l.out_count, threads, l.red_count, [&](int64_t lo, int64_t hi) {
      for (int64_t o = lo; o < hi; ++o) {
        const T* p = in + base[static_cast<size_t>(o)];
        const A s = sh(o);
        A acc = R::init();
        roff.each([&](int64_t r) { acc = R::combine(acc, reduce_run<K, T, A>(p + r, inner, s)); });
        out[o] = store<T>(R::finish(acc, l.red_count, s));
      }
    });
    return;
  }
  // Innermost dim kept: accumulate whole rows of `inner` outputs, a block at a time.
  const auto base = grid_offsets(kd, ks);
  const Grid roff = make_grid(rd, rs);
  constexpr int64_t kBlock = 256;
  const int64_t blocks = (inner + kBlock - 1) / kBlock;
  const int64_t rows = static_cast<int64_t>(base.size());
  parallel_for(rows * blocks, threads, l.red_count * std::min(inner, kBlock), [&](int64_t lo, int64_t hi) {
    A acc[kBlock];
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t row = t / blocks;
      const int64_t k0 = (t % blocks) * kBlock;
      const int64_t kn = std::min(kBlock, inner - k0);
      const int64_t o0 = row * inner + k0;
      const T* p = in + base[static_cast<size_t>(row)] + k0;
      for (int64_t k = 0; k < kn; ++k) acc[k] = R::init();
      if (shift == nullptr) {
        roff.each([&](int64_t r) {
          const T* q = p + r;
          for (int64_t k = 0; k < kn; ++k) acc[k] = R::combine(acc[k], R::pre(load<A>(q[k]), A(0)));
        });
        for (int64_t k = 0; k < kn; ++k) out[o0 + k] = store<T>(R::finish(acc[k], l.red_count, A(0)));
      } else {
        roff.each([&](int64_t r) {
          const T* q = p + r;
          for (int64_t k = 0; k < kn; ++k) acc[k] = R::combine(acc[k], R::pre(load<A>(q[k]), sh(o0 + k)));
        });
        for (int64_t k = 0; k < kn; ++k) out[o0 + k] = store<T>(R::finish(acc[k], l.red_count, sh(o0 + k)));
      }
    }
  });
}

template <RK K, typename T>
void reduce_typed(const Tensor& x, Tensor& y, const Layout& l, int threads) {
  using A = typename AccOf<K, T>::type;
  const T* in = x.data<T>();
  T* out = y.data<T>();
  if (l.out_count == 0) return;
  if (x.numel() == 0) {  // reducing over zero elements: the identity of each reduction
    const A v = Red<K, A>::finish(Red<K, A>::init(), 0, A(0));
    std::fill(out, out + l.out_count, store<T>(v));
    return;
  }
  if constexpr (K == RK::kLogSumExp) {
    std::vector<A> mx(static_cast<size_t>(l.out_count));
    if constexpr (std::is_same_v<A, T>) {
      run_reduction<RK::kMax, T, A>(in, mx.data(), l, nullptr, threads);
    } else {
      std::vector<T> tmp(static_cast<size_t>(l.out_count));
      run_reduction<RK::kMax, T, typename AccOf<RK::kMax, T>::type>(in, tmp.data(), l, nullptr, threads);
      for (size_t i = 0; i < tmp.size(); ++i) mx[i] = load<A>(tmp[i]);
    }
    run_reduction<K, T, A>(in, out, l, mx.data(), threads);
  } else {
    run_reduction<K, T, A>(in, out, l, nullptr, threads);
  }
}

// Reduction kind, and whether this registration reads axes from input 1.
Status reduce_kernel(KernelContext& ctx, RK kind, bool axes_from_input) {
  const Tensor& x = ctx.required_input(0);
  const auto& node = ctx.node();
  const bool keepdims = node.attr_int("keepdims", 1) != 0;
  const bool noop_empty = node.attr_int("noop_with_empty_axes", 0) != 0;
  std::vector<int64_t> axes;
  if (axes_from_input) {
    if (const Tensor* a = ctx.input(1)) {
      if (a->dtype() != DataType::kInt64 && a->dtype() != DataType::kInt32) {
        return ctx.error("axes must be an int64 tensor, got " + std::string(dtype_name(a->dtype())));
      }
      if (a->rank() > 1) return ctx.error("axes must be 1-D, got shape " + shape_to_string(a->shape()));
      axes = a->to_int64_vector();
    }
  } else {
    axes = node.attr_ints("axes");
  }
  const int64_t rank = x.rank();
  std::vector<char> mask(static_cast<size_t>(rank), 0);
  if (axes.empty()) {
    if (noop_empty) {
      // Reducing over no axes: each element is reduced on its own.
      if (kind == RK::kSum || kind == RK::kMean || kind == RK::kMax || kind == RK::kMin || kind == RK::kProd ||
          kind == RK::kLogSumExp) {
        ctx.set_output(0, x);
        return Status::Ok();
      }
    } else {
      std::fill(mask.begin(), mask.end(), 1);
    }
  } else {
    for (int64_t a : axes) {
      auto ax = normalize_axis(a, rank);
      if (!ax.ok()) return ctx.error(ax.status().message());
      if (rank == 0) continue;  // axis 0 of a scalar: nothing to reduce
      if (mask[static_cast<size_t>(*ax)]) return ctx.error("axis " + std::to_string(a) + " is listed twice");
      mask[static_cast<size_t>(*ax)] = 1;
    }
  }
  Shape out_shape;
  for (int64_t i = 0; i < rank; ++i) {
    if (!mask[static_cast<size_t>(i)]) {
      out_shape.push_back(x.shape()[static_cast<size_t>(i)]);
    } else if (keepdims) {
      out_shape.push_back(1);
    }
  }
  const Layout l = make_layout(x.shape(), mask);
  // Identity-like reductions over only size-1 dims are views of the input.
  if (l.red_count == 1 && x.numel() > 0 &&
      (kind == RK::kSum || kind == RK::kMean || kind == RK::kMax || kind == RK::kMin || kind == RK::kProd ||
       kind == RK::kLogSumExp)) {
    ctx.set_output(0, x.reshaped(out_shape));
    return Status::Ok();
  }
  Tensor& y = ctx.allocate_output(0, x.dtype(), out_shape);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const int th = ctx.threads();
    switch (kind) {
      case RK::kSum:
        return reduce_typed<RK::kSum, T>(x, y, l, th);
      case RK::kMean:
        return reduce_typed<RK::kMean, T>(x, y, l, th);
      case RK::kMax:
        return reduce_typed<RK::kMax, T>(x, y, l, th);
      case RK::kMin:
        return reduce_typed<RK::kMin, T>(x, y, l, th);
      case RK::kProd:
        return reduce_typed<RK::kProd, T>(x, y, l, th);
      case RK::kL1:
        return reduce_typed<RK::kL1, T>(x, y, l, th);
      case RK::kL2:
        return reduce_typed<RK::kL2, T>(x, y, l, th);
      case RK::kLogSum:
        return reduce_typed<RK::kLogSum, T>(x, y, l, th);
      case RK::kLogSumExp:
        return reduce_typed<RK::kLogSumExp, T>(x, y, l, th);
      case RK::kSumSquare:
        return reduce_typed<RK::kSumSquare, T>(x, y, l, th);
    }
  };
  switch (x.dtype()) {
    case DataType::kFloat32:
      run(float{});
      break;
    case DataType::kFloat64:
      run(double{});
      break;
    case DataType::kFloat16:
      run(Float16{});
      break;
    case DataType::kBFloat16:
      run(BFloat16{});
      break;
    case DataType::kInt8:
      run(int8_t{});
      break;
    case DataType::kUInt8:
      run(uint8_t{});
      break;
    case DataType::kInt32:
      run(int32_t{});
      break;
    case DataType::kUInt32:
      run(uint32_t{});
      break;
    case DataType::kInt64:
      run(int64_t{});
      break;
    case DataType::kUInt64:
      run(uint64_t{});
      break;
    case DataType::kBool:  // ReduceMax / ReduceMin only (opset 20): any / all
      if (kind == RK::kMax) {
        reduce_typed<RK::kMax, bool>(x, y, l, ctx.threads());
        break;
      }
      if (kind == RK::kMin) {
        reduce_typed<RK::kMin, bool>(x, y, l, ctx.threads());
        break;
      }
      [[fallthrough]];
    default:
      return unsupported(node.label() + ": unsupported data type " + std::string(dtype_name(x.dtype())));
  }
  return Status::Ok();
}

const std::vector<DataType> kReduceTypes = {
    DataType::kFloat32, DataType::kFloat64, DataType::kFloat16, DataType::kBFloat16, DataType::kInt8,
    DataType::kUInt8,   DataType::kInt32,   DataType::kUInt32,  DataType::kInt64,    DataType::kUInt64};

}  // namespace

void register_reduce_kernels(KernelRegistry& r) {
  struct Entry {
    const char* op;
    RK kind;
    int axes_input_since;
  };
  const Entry entries[] = {
      {"ReduceSum", RK::kSum, 13},
      {"ReduceMean", RK::kMean, 18},
      {"ReduceMax", RK::kMax, 18},
      {"ReduceMin", RK::kMin, 18},
      {"ReduceProd", RK::kProd, 18},
      {"ReduceL1", RK::kL1, 18},
      {"ReduceL2", RK::kL2, 18},
      {"ReduceLogSum", RK::kLogSum, 18},
      {"ReduceLogSumExp", RK::kLogSumExp, 18},
      {"ReduceSumSquare", RK::kSumSquare, 18},
  };
  for (const auto& e : entries) {
    const RK kind = e.kind;
    auto types = kReduceTypes;
    if (kind == RK::kMax || kind == RK::kMin) types.push_back(DataType::kBool);
    r.add(e.op, 1, e.axes_input_since - 1, types,
          [kind](KernelContext& ctx) { return reduce_kernel(ctx, kind, false); });
    r.add(e.op, e.axes_input_since, INT_MAX, types,
          [kind](KernelContext& ctx) { return reduce_kernel(ctx, kind, true); });
  }
  register_arg_reduce_kernels(r);
}

}  // namespace deskml::kernels::cpu
