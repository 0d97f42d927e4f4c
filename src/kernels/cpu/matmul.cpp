// MatMul and Gemm: oneDNN matmul for float32 (half types computed in float32),
// plain loops for float64 and integers.
#include <cstring>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"
#include "kernels/cpu/dnnl_context.hpp"
#include "kernels/cpu/elementwise_common.hpp"
#include "kernels/cpu/matmul_loops.hpp"

namespace deskml::kernels::cpu {

void register_matmul_integer_kernels(KernelRegistry& r);
void register_einsum_kernels(KernelRegistry& r);
void register_fused_matmul_kernels(KernelRegistry& r);
void register_attention_kernels(KernelRegistry& r);

Result<MatMulShape> matmul_shape(const Shape& a, const Shape& b) {
  if (a.empty() || b.empty()) return invalid_argument("MatMul operands must have rank >= 1");
  MatMulShape s;
  Shape a2 = a, b2 = b;
  if (a2.size() == 1) a2.insert(a2.begin(), 1);
  if (b2.size() == 1) b2.push_back(1);
  s.m = a2[a2.size() - 2];
  s.k = a2.back();
  s.n = b2.back();
  if (b2[b2.size() - 2] != s.k) {
    return invalid_argument("MatMul shapes " + shape_to_string(a) + " and " + shape_to_string(b) +
                            " do not agree on the inner dimension");
  }
  const Shape a_batch(a2.begin(), a2.end() - 2), b_batch(b2.begin(), b2.end() - 2);
  DESKML_ASSIGN_OR_RETURN(s.batch, broadcast_shapes(a_batch, b_batch));
  const size_t br = s.batch.size();
  s.a3 = Shape(br - a_batch.size(), 1);
  s.a3.insert(s.a3.end(), a2.begin(), a2.end());
  s.b3 = Shape(br - b_batch.size(), 1);
  s.b3.insert(s.b3.end(), b2.begin(), b2.end());
  s.out = s.batch;
  if (a.size() > 1) s.out.push_back(s.m);
  if (b.size() > 1) s.out.push_back(s.n);
  const int64_t batch = shape_numel(s.batch);
  shape_numel(s.out);
  s.a_offsets.resize(static_cast<size_t>(batch));
  s.b_offsets.resize(static_cast<size_t>(batch));
  const auto as = broadcast_strides(Shape(s.a3.begin(), s.a3.end() - 2), s.batch);
  const auto bs = broadcast_strides(Shape(s.b3.begin(), s.b3.end() - 2), s.batch);
  std::vector<int64_t> idx(br, 0);
  int64_t ao = 0, bo = 0;
  for (int64_t i = 0; i < batch; ++i) {
    s.a_offsets[static_cast<size_t>(i)] = ao * s.m * s.k;
    s.b_offsets[static_cast<size_t>(i)] = bo * s.k * s.n;
    for (size_t d = br; d-- > 0;) {
      ++idx[d];
      ao += as[d];
      bo += bs[d];
      if (idx[d] < s.batch[d]) break;
      ao -= as[d] * s.batch[d];
      bo -= bs[d] * s.batch[d];
      idx[d] = 0;
    }
  }
  return s;
}

namespace {

template <typename E>
void permute_copy(const E* in, E* out, const Shape& out_shape, const std::vector<int64_t>& in_strides, int threads) {
  const size_t rank = out_shape.size();
  const int64_t total = shape_numel(out_shape);
  if (total == 0) return;
  if (rank == 0) {
    out[0] = in[0];
    return;
  }
  const int64_t inner = out_shape[rank - 1], inner_stride = in_strides[rank - 1];
  const int64_t rows = total / inner;
  parallel_for(rows, threads, inner, [&](int64_t lo, int64_t hi) {
    std::vector<int64_t> idx(rank, 0);
    int64_t off = 0, rem = lo;
    for (size_t d = rank - 1; d-- > 0;) {
      idx[d] = rem % out_shape[d];
      rem /= out_shape[d];
      off += idx[d] * in_strides[d];
    }
    for (int64_t r = lo; r < hi; ++r) {
      E* o = out + r * inner;
      for (int64_t j = 0; j < inner; ++j) o[j] = in[off + j * inner_stride];
      for (size_t d = rank - 1; d-- > 0;) {
        ++idx[d];
        off += in_strides[d];
        if (idx[d] < out_shape[d]) break;
        off -= in_strides[d] * out_shape[d];
        idx[d] = 0;
      }
    }
  });
}

}  // namespace

namespace {

// out[o][r][c] = in[o * outer_stride + r + c * col_stride]: a batch of 2-D
// transposes (NCHW -> NHWC is one, with r = H*W and c = C), done in row tiles so
// that both sides stay in cache however small c is.
// Rows r0..r1 of a tile with a compile-time column count: each output row is
// written whole, which the compiler turns into vector shuffles (an image's
// NCHW -> NHWC, 3 columns, ran 3x faster than column by column).
template <int C, typename E>
void interleave_rows(const E* ib, E* ob, int64_t r0, int64_t r1, int64_t col_stride) {
  const E* src[C];
  for (int c = 0; c < C; ++c) src[c] = ib + c * col_stride;
  for (int64_t r = r0; r < r1; ++r) {
    for (int c = 0; c < C; ++c) ob[r * C + c] = src[c][r];
  }
}

template <typename E>
void tiled_transpose(const E* in, E* out, int64_t outer, int64_t rows, int64_t cols, int64_t outer_stride,
                     int64_t col_stride, int threads) {
  const int64_t kTile = std::max<int64_t>(64, 8192 / std::max<int64_t>(cols, 1));  // ~32 KiB of output per tile
  const int64_t tiles = (rows + kTile - 1) / kTile;
  parallel_for(outer * tiles, threads, kTile * cols, [&](int64_t lo, int64_t hi) {
    ew::run_best([&] {
      for (int64_t t = lo; t < hi; ++t) {
        const int64_t o = t / tiles, r0 = (t % tiles) * kTile, r1 = std::min(rows, r0 + kTile);
        const E* ib = in + o * outer_stride;
        E* ob = out + o * rows * cols;
        switch (cols) {
          case 2: interleave_rows<2>(ib, ob, r0, r1, col_stride); continue;
          case 3: interleave_rows<3>(ib, ob, r0, r1, col_stride); continue;
          case 4: interleave_rows<4>(ib, ob, r0, r1, col_stride); continue;
          default: break;
        }
        for (int64_t c = 0; c < cols; ++c) {
          const E* src = ib + c * col_stride;
          for (int64_t r = r0; r < r1; ++r) ob[r * cols + c] = src[r];
        }
      }
    });
  });
}

template <typename E>
bool try_tiled_transpose(const Tensor& t, Tensor& out, const Shape& shape, const std::vector<int64_t>& strides,
                         int threads) {
  // Merge output dims that are contiguous in the input too; then look for [outer?, rows, cols]
  // with rows contiguous in the input and cols strided.
  Shape dims;
  std::vector<int64_t> st;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1) continue;
    if (!dims.empty() && st.back() == strides[i] * shape[i]) {
      dims.back() *= shape[i];
      st.back() = strides[i];
    } else {
      dims.push_back(shape[i]);
      st.push_back(strides[i]);
    }
  }
  if (dims.size() < 2 || dims.size() > 3) return false;
  const size_t n = dims.size();
  const int64_t rows = dims[n - 2], cols = dims[n - 1];
  if (st[n - 2] != 1 || cols > 64 || st[n - 1] != rows) return false;
  const int64_t outer = n == 3 ? dims[0] : 1;
  if (n == 3 && st[0] != rows * cols) return false;
  tiled_transpose(t.data<E>(), out.data<E>(), outer, rows, cols, rows * cols, rows, threads);
  return true;
}

}  // namespace

Tensor permute_tensor(const Tensor& t, const std::vector<int64_t>& perm, int threads) {
  const auto strides = shape_strides(t.shape());
  Shape out_shape(perm.size());
  std::vector<int64_t> in_strides(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) {
    out_shape[i] = t.shape()[static_cast<size_t>(perm[i])];
    in_strides[i] = strides[static_cast<size_t>(perm[i])];
  }
  if (t.dtype() == DataType::kFloat32 && t.numel() > 0) {
    Tensor out(t.dtype(), out_shape);
    if (try_tiled_transpose<float>(t, out, out_shape, in_strides, threads)) return out;
  }
  return strided_copy(t, out_shape, in_strides, threads);
}

Tensor strided_copy(const Tensor& t, const Shape& out_shape, const std::vector<int64_t>& in_strides, int threads) {
  Tensor out(t.dtype(), out_shape);
  const void* in = t.raw_data();
  void* o = out.raw_data();
  switch (dtype_size(t.dtype())) {
    case 1:
      permute_copy(static_cast<const uint8_t*>(in), static_cast<uint8_t*>(o), out_shape, in_strides, threads);
      break;
    case 2:
      permute_copy(static_cast<const uint16_t*>(in), static_cast<uint16_t*>(o), out_shape, in_strides, threads);
      break;
    case 4:
      permute_copy(static_cast<const uint32_t*>(in), static_cast<uint32_t*>(o), out_shape, in_strides, threads);
      break;
    case 8:
      permute_copy(static_cast<const uint64_t*>(in), static_cast<uint64_t*>(o), out_shape, in_strides, threads);
      break;
    default:
      throw_status(unsupported("strided copy: unsupported data type " + std::string(dtype_name(t.dtype()))));
  }
  return out;
}

namespace {

constexpr size_t kMaxDnnlRank = 12;  // DNNL_MAX_NDIMS

bool is_half(DataType t) { return t == DataType::kFloat16 || t == DataType::kBFloat16; }

template <typename T>
void matmul_loops(const MatMulShape& s, const Tensor& a, const Tensor& b, Tensor& y, int threads) {
  batched_gemm<T, T, T, AccumulatorOf<T>>(s.a_offsets, s.b_offsets, s.m, s.n, s.k, a.data<T>(), b.data<T>(),
                                          y.data<T>(), threads);
}

class MatMulKernel final : public Kernel {
 public:
  Status compute(KernelContext& ctx) override {
    const Tensor& a = ctx.required_input(0);
    const Tensor& b = ctx.required_input(1);
    if (a.dtype() != b.dtype()) return ctx.error("A and B must have one type");
    auto shape = matmul_shape(a.shape(), b.shape());
    if (!shape.ok()) return ctx.error(shape.status().message());
    const MatMulShape& s = *shape;
    if (is_half(a.dtype())) {
      Tensor y(DataType::kFloat32, s.out);
      run_f32(ctx, s, a.cast(DataType::kFloat32), b.cast(DataType::kFloat32), y);
      ctx.set_output(0, y.cast(a.dtype()));
      return Status::Ok();
    }
    Tensor& y = ctx.allocate_output(0, a.dtype(), s.out);
    if (y.numel() == 0) return Status::Ok();
    if (s.k == 0) {
      std::memset(y.raw_data(), 0, y.nbytes());
      return Status::Ok();
    }
    if (a.dtype() == DataType::kFloat32) {
      run_f32(ctx, s, a, b, y);
      return Status::Ok();
    }
    dispatch_numeric(a.dtype(), "MatMul", [&](auto tag) {
      using T = decltype(tag);
      matmul_loops<T>(s, a, b, y, ctx.threads());
    });
    return Status::Ok();
  }

 private:
  struct Primitive {
    bool use_loops = false;
    dnnl::matmul prim;
    dnnl::memory::desc a_md, b_md, c_md, scratch_md;
  };

  static std::shared_ptr<Primitive> build(const MatMulShape& s) {
    auto e = std::make_shared<Primitive>();
    if (s.a3.size() > kMaxDnnlRank) {
      e->use_loops = true;
      return e;
    }
    Shape c = s.batch;
    c.push_back(s.m);
    c.push_back(s.n);
    e->a_md = onednn::plain_desc(onednn::to_dims(s.a3));
    e->b_md = onednn::plain_desc(onednn::to_dims(s.b3));
    e->c_md = onednn::plain_desc(onednn::to_dims(c));
    try {
      const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(e->a_md, e->b_md, e->c_md), onednn::base_attr(),
                                            onednn::engine());
      e->prim = dnnl::matmul(pd);
      e->scratch_md = pd.scratchpad_desc();
    } catch (const dnnl::error& err) {
      if (err.status != dnnl_unimplemented) onednn::rethrow(err, "MatMul");
      e->use_loops = true;
    }
    return e;
  }

  void run_f32(const KernelContext& ctx, const MatMulShape& s, const Tensor& a, const Tensor& b, Tensor& y) {
    if (y.numel() == 0) return;
    if (s.k == 0) {
      std::memset(y.raw_data(), 0, y.nbytes());
      return;
    }
    std::vector<int64_t> key;
    onednn::append_key(key, a.shape());
    onednn::append_key(key, b.shape());
    auto e = cache_.get(key, [&] { return build(s); });
    if (e->use_loops) {
      matmul_loops<float>(s, a, b, y, ctx.threads());
      return;
    }
    try {
      onednn::execute(e->prim, e->scratch_md,
                      {{DNNL_ARG_SRC, onednn::wrap(e->a_md, a)},
                       {DNNL_ARG_WEIGHTS, onednn::wrap(e->b_md, b)},
                       {DNNL_ARG_DST, onednn::wrap(e->c_md, y)}});
    } catch (const dnnl::error& err) {
      onednn::rethrow(err, ctx.node().label());
    }
  }

  onednn::PrimitiveCache<Primitive> cache_;
};

// Y = alpha * op(A) * op(B) + beta * C, C broadcast to [M, N].
class GemmKernel final : public Kernel {
 public:
  explicit GemmKernel(const graph::Node& node)
      : trans_a_(node.attr_int("transA", 0) != 0),
        trans_b_(node.attr_int("transB", 0) != 0),
        alpha_(node.attr_float("alpha", 1.0f)),
        beta_(node.attr_float("beta", 1.0f)) {}

  Status compute(KernelContext& ctx) override {
    const Tensor& a = ctx.required_input(0);
    const Tensor& b = ctx.required_input(1);
    const Tensor* c = ctx.input(2);
    if (c == nullptr && ctx.opset() < 11) return ctx.error("input C is required before opset 11");
    if (a.dtype() != b.dtype() || (c && c->dtype() != a.dtype())) return ctx.error("A, B and C must have one type");
    if (a.rank() != 2 || b.rank() != 2) return ctx.error("A and B must be 2-D");
    const int64_t m = trans_a_ ? a.dim(1) : a.dim(0), k = trans_a_ ? a.dim(0) : a.dim(1);
    const int64_t kb = trans_b_ ? b.dim(1) : b.dim(0), n = trans_b_ ? b.dim(0) : b.dim(1);
    if (k != kb) {
      return ctx.error("A " + shape_to_string(a.shape()) + " and B " + shape_to_string(b.shape()) +
                       " do not agree on K (transA=" + std::to_string(trans_a_) +
                       ", transB=" + std::to_string(trans_b_) + ")");
    }
    const Shape out_shape = {m, n};
    if (c && beta_ != 0.0f) {
      auto bs = broadcast_shapes(c->shape(), out_shape);
      if (!bs.ok() || *bs != out_shape) {
        return ctx.error("C " + shape_to_string(c->shape()) + " cannot be broadcast to " + shape_to_string(out_shape));
      }
    }
    const Tensor* cc = beta_ != 0.0f ? c : nullptr;
    if (is_half(a.dtype())) {
      Tensor y(DataType::kFloat32, out_shape);
      const Tensor cf = cc ? cc->cast(DataType::kFloat32) : Tensor();
      run_f32(ctx, a.cast(DataType::kFloat32), b.cast(DataType::kFloat32), cc ? &cf : nullptr, m, n, k, y);
      ctx.set_output(0, y.cast(a.dtype()));
      return Status::Ok();
    }
    Tensor& y = ctx.allocate_output(0, a.dtype(), out_shape);
    if (y.numel() == 0) return Status::Ok();
    if (a.dtype() == DataType::kFloat32) {
      run_f32(ctx, a, b, cc, m, n, k, y);
      return Status::Ok();
    }
    dispatch_numeric(a.dtype(), "Gemm", [&](auto tag) {
      using T = decltype(tag);
      run_loops<T>(ctx, a, b, cc, m, n, k, y);
    });
    return Status::Ok();
  }

 private:
  struct Primitive {
    bool use_loops = false;
    bool fill_c = false;  // Y is pre-filled with broadcast C and accumulated with a sum post-op
    dnnl::matmul prim;
    dnnl::memory::desc a_md, b_md, c_md, bias_md, scratch_md;
  };

  std::shared_ptr<Primitive> build(const Tensor* c, int64_t m, int64_t n, int64_t k) const {
    auto e = std::make_shared<Primitive>();
    using dnnl::memory;
    e->a_md = onednn::strided_desc({m, k}, trans_a_ ? memory::dims{1, m} : memory::dims{k, 1});
    e->b_md = onednn::strided_desc({k, n}, trans_b_ ? memory::dims{1, k} : memory::dims{n, 1});
    e->c_md = onednn::plain_desc({m, n});
    dnnl::primitive_attr attr = onednn::base_attr();
    if (alpha_ != 1.0f) attr.set_output_scales(0, {alpha_});
    // A row of C ([N] or [1, N]) with unit scales is a bias; anything else is
    // copied into Y first and added by the sum post-op.
    const bool row = c && (c->shape() == Shape{n} || c->shape() == Shape{1, n});
    if (c && row && alpha_ == 1.0f && beta_ == 1.0f) {
      e->bias_md = onednn::plain_desc({1, n});
    } else if (c) {
      e->fill_c = true;
      dnnl::post_ops ops;
      ops.append_sum(beta_);
      attr.set_post_ops(ops);
    }
    try {
      const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(e->a_md, e->b_md, e->bias_md, e->c_md), attr,
                                            onednn::engine());
      e->prim = dnnl::matmul(pd);
      e->scratch_md = pd.scratchpad_desc();
    } catch (const dnnl::error& err) {
      if (err.status != dnnl_unimplemented) onednn::rethrow(err, "Gemm");
      e->use_loops = true;
    }
    return e;
  }

  void run_f32(const KernelContext& ctx, const Tensor& a, const Tensor& b, const Tensor* c, int64_t m, int64_t n,
               int64_t k, Tensor& y) {
    if (y.numel() == 0) return;
    std::vector<int64_t> key;
    onednn::append_key(key, a.shape());
    onednn::append_key(key, b.shape());
    if (c) onednn::append_key(key, c->shape());
    auto e = cache_.get(key, [&] { return build(c, m, n, k); });
    if (e->use_loops || k == 0) {
      run_loops<float>(ctx, a, b, c, m, n, k, y);
      return;
    }
    if (e->fill_c) broadcast_c<float>(*c, y);
    try {
      std::unordered_map<int, dnnl::memory> args = {{DNNL_ARG_SRC, onednn::wrap(e->a_md, a)},
                                                    {DNNL_ARG_WEIGHTS, onednn::wrap(e->b_md, b)},
                                                    {DNNL_ARG_DST, onednn::wrap(e->c_md, y)}};
      if (c && !e->fill_c) args.insert({DNNL_ARG_BIAS, onednn::wrap(e->bias_md, *c)});
      onednn::execute(e->prim, e->scratch_md, std::move(args));
    } catch (const dnnl::error& err) {
      onednn::rethrow(err, ctx.node().label());
    }
  }

  template <typename T>
  static void broadcast_c(const Tensor& c, Tensor& y) {
    const T* cp = c.data<T>();
    T* yp = y.data<T>();
    for_each_broadcast<1>(y.shape(), {c.shape()}, [&](int64_t o, int64_t i) { yp[o] = cp[i]; });
  }

  template <typename T>
  void run_loops(const KernelContext& ctx, const Tensor& a, const Tensor& b, const Tensor* c, int64_t m, int64_t n,
                 int64_t k, Tensor& y) const {
    const Tensor at = trans_a_ ? permute_tensor(a, {1, 0}, ctx.threads()) : a;
    const Tensor bt = trans_b_ ? permute_tensor(b, {1, 0}, ctx.threads()) : b;
    using Acc = AccumulatorOf<T>;
    Tensor prod(DataType::kFloat64, {m, n});
    batched_gemm<T, T, double, Acc>({0}, {0}, m, n, k, at.data<T>(), bt.data<T>(), prod.data<double>(), ctx.threads());
    const double* pp = prod.data<double>();
    T* yp = y.data<T>();
    const double alpha = alpha_, beta = beta_;
    if (c) {
      const T* cp = c->data<T>();
      for_each_broadcast<1>(y.shape(), {c->shape()}, [&](int64_t o, int64_t i) {
        yp[o] = static_cast<T>(alpha * pp[o] + beta * static_cast<double>(cp[i]));
      });
    } else {
      for (int64_t i = 0; i < m * n; ++i) yp[i] = static_cast<T>(alpha * pp[i]);
    }
  }

  bool trans_a_, trans_b_;
  float alpha_, beta_;
  onednn::PrimitiveCache<Primitive> cache_;
};

const std::vector<DataType> kMatMulTypes = {DataType::kFloat32,  DataType::kFloat64, DataType::kFloat16,
                                            DataType::kBFloat16, DataType::kInt32,   DataType::kInt64,
                                            DataType::kUInt32,   DataType::kUInt64};

}  // namespace

void register_matmul_kernels(KernelRegistry& r) {
  KernelDef def;
  def.op = "MatMul";
  def.since = 1;
  def.types = kMatMulTypes;
  def.factory = [](const graph::Node&) { return std::make_unique<MatMulKernel>(); };
  r.add(def);
  def.op = "Gemm";
  def.factory = [](const graph::Node& node) { return std::make_unique<GemmKernel>(node); };
  r.add(def);
  register_matmul_integer_kernels(r);
  register_einsum_kernels(r);
  register_fused_matmul_kernels(r);
  register_attention_kernels(r);
}

}  // namespace deskml::kernels::cpu
