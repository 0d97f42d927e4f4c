// Recurrent layers: LSTM, GRU and RNN (ONNX opsets 1..22, `layout` from 14).
//
// Each direction first projects the whole input sequence at once (one matrix
// product over seq*batch rows, biases folded in), then walks the sequence doing
// one small product with the recurrent weights per step. Products read the
// weights as stored, so nothing is transposed per call.
//
// sequence_lens: batch entry b only runs its first len_b steps; a reverse
// direction walks those len_b steps backwards. Y is zero past len_b and Y_h /
// Y_c hold the state after the entry's last step (the initial state when len_b is 0).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"

namespace deskml::kernels::cpu {
namespace {

// --- matrix products ----------------------------------------------------------------
//
// Written with GCC/Clang vector extensions: 32-byte vectors are one AVX register
// or two SSE ones, so the same code is register-tiled on either.

template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(32)));
};
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(32)));
};
template <typename T>
using Vec = typename VecOf<T>::type;
template <typename T>
inline constexpr int64_t kLanes = static_cast<int64_t>(32 / sizeof(T));

// Vectors travel by reference: passing 32-byte vectors by value changes the ABI without AVX.
#define DESKML_LOAD_VEC(v, p) std::memcpy(&(v), (p), sizeof(v))
template <typename T>
inline void store_vec(T* p, const Vec<T>& v) {
  std::memcpy(p, &v, sizeof(v));
}
template <typename T>
inline T hsum(const Vec<T>& v) {
  T s = 0;
  for (int64_t l = 0; l < kLanes<T>; ++l) s += v[l];
  return s;
}

// C[m, n] (+)= dot(A[m, :], B[n, :]) for a few rows m and n in [n0, n1): B in its
// stored [N, K] layout, for the matrix-vector products of small batches.
template <typename T>
void gemm_dot(int64_t M, int64_t n0, int64_t n1, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C,
              int64_t ldc, bool accumulate) {
  constexpr int64_t L = kLanes<T>;
  for (int64_t m = 0; m < M; ++m) {
    const T* a = A + m * lda;
    for (int64_t n = n0; n < n1; ++n) {
      const T* b = B + n * ldb;
      Vec<T> acc0 = {}, acc1 = {};
      int64_t k = 0;
      for (; k + 2 * L <= K; k += 2 * L) {
        Vec<T> a0, b0, a1, b1;
        DESKML_LOAD_VEC(a0, a + k);
        DESKML_LOAD_VEC(b0, b + k);
        DESKML_LOAD_VEC(a1, a + k + L);
        DESKML_LOAD_VEC(b1, b + k + L);
        acc0 += a0 * b0;
        acc1 += a1 * b1;
      }
      acc0 += acc1;
      T s = hsum<T>(acc0);
      for (; k < K; ++k) s += a[k] * b[k];
      T* c = C + m * ldc + n;
      *c = accumulate ? *c + s : s;
    }
  }
}

// C[m0:m1, n0:n1] (+)= A[m0:m1, :K] * Bt[:K, n0:n1] with Bt in [K, N] layout:
// 4 rows x one vector of columns stay in registers across the whole K loop.
template <typename T>
void gemm_tiles(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, const T* A, int64_t lda, const T* Bt,
                int64_t ldb, T* C, int64_t ldc, bool accumulate) {
  constexpr int64_t L = kLanes<T>;
  int64_t n = n0;
  for (; n + L <= n1; n += L) {
    int64_t m = m0;
    for (; m + 4 <= m1; m += 4) {
      const T* a = A + m * lda;
      Vec<T> c0 = {}, c1 = {}, c2 = {}, c3 = {};
      const T* b = Bt + n;
      for (int64_t k = 0; k < K; ++k, b += ldb) {
        Vec<T> bv;
        DESKML_LOAD_VEC(bv, b);
        c0 += a[k] * bv;
        c1 += a[lda + k] * bv;
        c2 += a[2 * lda + k] * bv;
        c3 += a[3 * lda + k] * bv;
      }
      T* c = C + m * ldc + n;
      if (accumulate) {
        Vec<T> p0, p1, p2, p3;
        DESKML_LOAD_VEC(p0, c);
        DESKML_LOAD_VEC(p1, c + ldc);
        DESKML_LOAD_VEC(p2, c + 2 * ldc);
        DESKML_LOAD_VEC(p3, c + 3 * ldc);
        c0 += p0;
        c1 += p1;
        c2 += p2;
        c3 += p3;
      }
      store_vec(c, c0);
      store_vec(c + ldc, c1);
      store_vec(c + 2 * ldc, c2);
      store_vec(c + 3 * ldc, c3);
    }
    for (; m < m1; ++m) {
      const T* a = A + m * lda;
      Vec<T> c0 = {};
      const T* b = Bt + n;
      for (int64_t k = 0; k < K; ++k, b += ldb) {
        Vec<T> bv;
        DESKML_LOAD_VEC(bv, b);
        c0 += a[k] * bv;
      }
      T* c = C + m * ldc + n;
      if (accumulate) {
        Vec<T> p0;
        DESKML_LOAD_VEC(p0, c);
        c0 += p0;
      }
      store_vec(c, c0);
    }
  }
  for (; n < n1; ++n) {  // fewer columns than a vector
    for (int64_t m = m0; m < m1; ++m) {
      T s = 0;
      for (int64_t k = 0; k < K; ++k) s += A[m * lda + k] * Bt[k * ldb + n];
      T* c = C + m * ldc + n;
      *c = accumulate ? *c + s : s;
    }
  }
}

// A weight matrix W [N, K] (ONNX stores W and R as [gates*hidden, in]) that
// multiplies row blocks: C[:, n0:n1] (+)= A * W[n0:n1, :]^T. One or two rows use
// dot products on W as stored (the streaming, batch-1 case pays no transpose);
// more rows use register tiles on a [K, N] copy made once per call.
template <typename T>
class WeightMatrix {
 public:
  WeightMatrix(const T* w, int64_t N, int64_t K) : w_(w), N_(N), K_(K) {}

  void multiply(int64_t M, const T* A, int64_t lda, T* C, int64_t ldc, bool accumulate, int64_t n0, int64_t n1,
                int threads) {
    const int64_t N = n1 - n0;
    if (M <= 0 || N <= 0) return;
    if (M < 4) {
      constexpr int64_t kChunk = 16;
      parallel_for((N + kChunk - 1) / kChunk, threads, kChunk * M * K_, [&](int64_t lo, int64_t hi) {
        gemm_dot(M, n0 + lo * kChunk, std::min(n1, n0 + hi * kChunk), K_, A, lda, w_, K_, C - n0, ldc, accumulate);
      });
      return;
    }
    if (wt_.empty()) {
      wt_.resize(static_cast<size_t>(N_ * K_));
      for (int64_t n = 0; n < N_; ++n) {
        for (int64_t k = 0; k < K_; ++k) wt_[k * N_ + n] = w_[n * K_ + k];
      }
    }
    const T* bt = wt_.data();
    if (M >= 16 * static_cast<int64_t>(threads)) {
      // Column panels of about 256 KiB stay in cache while every row block passes over them.
      const int64_t panel = std::max<int64_t>(kLanes<T>, (int64_t{64} << 10) / std::max<int64_t>(K_, 1) / kLanes<T> * kLanes<T>);
      parallel_for((M + 3) / 4, threads, 4 * N * K_, [&](int64_t lo, int64_t hi) {
        for (int64_t p = n0; p < n1; p += panel) {
          gemm_tiles(lo * 4, std::min(M, hi * 4), p, std::min(n1, p + panel), K_, A, lda, bt, N_, C - n0, ldc,
                     accumulate);
        }
      });
    } else {
      const int64_t chunk = 4 * kLanes<T>;
      parallel_for((N + chunk - 1) / chunk, threads, chunk * M * K_, [&](int64_t lo, int64_t hi) {
        gemm_tiles(0, M, n0 + lo * chunk, std::min(n1, n0 + hi * chunk), K_, A, lda, bt, N_, C - n0, ldc,
                   accumulate);
      });
    }
  }

 private:
  const T* w_;
  int64_t N_, K_;
  std::vector<T> wt_;
};

// --- activations ---------------------------------------------------------------

enum class ActKind { kSigmoid, kTanh, kRelu, kAffine, kLeakyRelu, kThresholdedRelu, kScaledTanh, kHardSigmoid,
                     kElu, kSoftsign, kSoftplus };

struct Activation {
  ActKind kind = ActKind::kSigmoid;
  float alpha = 0.f;
  float beta = 0.f;
};

struct ActSpec {
  const char* name;
  ActKind kind;
  bool uses_alpha, uses_beta;
  float alpha, beta;  // defaults
};

constexpr ActSpec kActSpecs[] = {
    {"sigmoid", ActKind::kSigmoid, false, false, 0.f, 0.f},
    {"tanh", ActKind::kTanh, false, false, 0.f, 0.f},
    {"relu", ActKind::kRelu, false, false, 0.f, 0.f},
    {"affine", ActKind::kAffine, true, true, 1.f, 0.f},
    {"leakyrelu", ActKind::kLeakyRelu, true, false, 0.01f, 0.f},
    {"thresholdedrelu", ActKind::kThresholdedRelu, true, false, 1.f, 0.f},
    {"scaledtanh", ActKind::kScaledTanh, true, true, 1.f, 1.f},
    {"hardsigmoid", ActKind::kHardSigmoid, true, true, 0.2f, 0.5f},
    {"elu", ActKind::kElu, true, false, 1.f, 0.f},
    {"softsign", ActKind::kSoftsign, false, false, 0.f, 0.f},
    {"softplus", ActKind::kSoftplus, false, false, 0.f, 0.f},
};

// Applies `a` in place to n values; the switch sits outside the element loop.
template <typename T>
void activate(const Activation& a, T* x, int64_t n) {
  const T alpha = static_cast<T>(a.alpha), beta = static_cast<T>(a.beta);
  switch (a.kind) {
    case ActKind::kSigmoid:
      for (int64_t i = 0; i < n; ++i) x[i] = T(1) / (T(1) + std::exp(-x[i]));
      break;
    case ActKind::kTanh:
      for (int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i]);
      break;
    case ActKind::kRelu:
      for (int64_t i = 0; i < n; ++i) x[i] = std::max(x[i], T(0));
      break;
    case ActKind::kAffine:
      for (int64_t i = 0; i < n; ++i) x[i] = alpha * x[i] + beta;
      break;
    case ActKind::kLeakyRelu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= T(0) ? x[i] : alpha * x[i];
      break;
    case ActKind::kThresholdedRelu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] > alpha ? x[i] : T(0);
      break;
    case ActKind::kScaledTanh:
      for (int64_t i = 0; i < n; ++i) x[i] = alpha * std::tanh(beta * x[i]);
      break;
    case ActKind::kHardSigmoid:
      for (int64_t i = 0; i < n; ++i) x[i] = std::clamp(alpha * x[i] + beta, T(0), T(1));
      break;
    case ActKind::kElu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= T(0) ? x[i] : alpha * (std::exp(x[i]) - T(1));
      break;
    case ActKind::kSoftsign:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (T(1) + std::abs(x[i]));
      break;
    case ActKind::kSoftplus:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] > T(20) ? x[i] : std::log1p(std::exp(x[i]));
      break;
  }
}

template <typename T>
void clip_values(T* x, int64_t n, T clip) {
  for (int64_t i = 0; i < n; ++i) x[i] = std::clamp(x[i], -clip, clip);
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// --- attributes and shapes -------------------------------------------------------

enum class Cell { kLstm, kGru, kRnn };

struct RnnConfig {
  Cell cell = Cell::kLstm;
  int64_t gates = 4;  // LSTM 4 (i, o, f, c), GRU 3 (z, r, h), RNN 1
  int64_t num_dir = 1;
  bool reverse_only = false;  // direction == "reverse"
  int64_t seq = 0, batch = 0, input = 0, hidden = 0;
  int64_t layout = 0;
  bool has_clip = false;
  double clip = 0;
  bool input_forget = false;       // LSTM
  bool linear_before_reset = false;  // GRU
  std::vector<Activation> acts;    // per direction: LSTM f,g,h; GRU f,g; RNN f
  int64_t acts_per_dir = 1;
  std::vector<int64_t> lens;  // per batch entry
  bool uniform_lens = true;   // every entry runs the full sequence
};

Status parse_activations(const KernelContext& ctx, RnnConfig& cfg) {
  const graph::Node& node = ctx.node();
  std::vector<std::string> names;
  if (node.has_attr("activations")) names = node.attr_strings("activations");
  std::vector<std::string> defaults;
  switch (cfg.cell) {
    case Cell::kLstm: defaults = {"Sigmoid", "Tanh", "Tanh"}; break;
    case Cell::kGru: defaults = {"Sigmoid", "Tanh"}; break;
    case Cell::kRnn: defaults = {"Tanh"}; break;
  }
  cfg.acts_per_dir = static_cast<int64_t>(defaults.size());
  if (names.empty()) {
    for (int64_t d = 0; d < cfg.num_dir; ++d) names.insert(names.end(), defaults.begin(), defaults.end());
  } else if (static_cast<int64_t>(names.size()) == cfg.acts_per_dir && cfg.num_dir == 2) {
    // One direction's list given for a bidirectional layer: both directions use it.
    const auto one = names;
    names.insert(names.end(), one.begin(), one.end());
  }
  if (static_cast<int64_t>(names.size()) != cfg.acts_per_dir * cfg.num_dir) {
    return ctx.error("expected " + std::to_string(cfg.acts_per_dir * cfg.num_dir) + " activations, got " +
                     std::to_string(names.size()));
  }
  const std::vector<float> alphas = node.attr_floats("activation_alpha");
  const std::vector<float> betas = node.attr_floats("activation_beta");
  size_t next_alpha = 0, next_beta = 0;
  for (const std::string& name : names) {
    const std::string key = lower(name);
    const ActSpec* spec = nullptr;
    for (const ActSpec& s : kActSpecs) {
      if (key == s.name) spec = &s;
    }
    if (spec == nullptr) return ctx.error("unsupported activation '" + name + "'");
    Activation a{spec->kind, spec->alpha, spec->beta};
    // activation_alpha/beta list values in order for the activations that take them.
    if (spec->uses_alpha && next_alpha < alphas.size()) a.alpha = alphas[next_alpha++];
    if (spec->uses_beta && next_beta < betas.size()) a.beta = betas[next_beta++];
    cfg.acts.push_back(a);
  }
  return Status::Ok();
}

Status parse_config(const KernelContext& ctx, Cell cell, RnnConfig& cfg) {
  const graph::Node& node = ctx.node();
  cfg.cell = cell;
  cfg.gates = cell == Cell::kLstm ? 4 : cell == Cell::kGru ? 3 : 1;
  const std::string direction = node.attr_string("direction", "forward");
  if (direction == "forward") {
    cfg.num_dir = 1;
  } else if (direction == "reverse") {
    cfg.num_dir = 1;
    cfg.reverse_only = true;
  } else if (direction == "bidirectional") {
    cfg.num_dir = 2;
  } else {
    return ctx.error("unknown direction '" + direction + "'");
  }
  cfg.layout = ctx.opset() >= 14 ? node.attr_int("layout", 0) : 0;
  if (cfg.layout != 0 && cfg.layout != 1) return ctx.error("layout must be 0 or 1");
  if (node.has_attr("clip")) {
    cfg.has_clip = true;
    cfg.clip = node.attr_float("clip", 0.f);
    if (!(cfg.clip > 0)) return ctx.error("clip must be positive");
  }
  cfg.input_forget = cell == Cell::kLstm && node.attr_int("input_forget", 0) != 0;
  cfg.linear_before_reset = cell == Cell::kGru && node.attr_int("linear_before_reset", 0) != 0;

  const Tensor& X = ctx.required_input(0);
  const Tensor& W = ctx.required_input(1);
  const Tensor& R = ctx.required_input(2);
  if (X.rank() != 3) return ctx.error("X must be 3-D, got " + shape_to_string(X.shape()));
  if (W.rank() != 3 || R.rank() != 3) return ctx.error("W and R must be 3-D");
  cfg.seq = cfg.layout == 0 ? X.dim(0) : X.dim(1);
  cfg.batch = cfg.layout == 0 ? X.dim(1) : X.dim(0);
  cfg.input = X.dim(2);
  cfg.hidden = R.dim(2);
  if (node.has_attr("hidden_size") && node.attr_int("hidden_size", 0) != cfg.hidden) {
    return ctx.error("hidden_size attribute " + std::to_string(node.attr_int("hidden_size", 0)) +
                     " does not match R " + shape_to_string(R.shape()));
  }
  const int64_t gh = cfg.gates * cfg.hidden;
  if (W.shape() != Shape{cfg.num_dir, gh, cfg.input}) {
    return ctx.error("W must have shape " + shape_to_string({cfg.num_dir, gh, cfg.input}) + ", got " +
                     shape_to_string(W.shape()));
  }
  if (R.shape() != Shape{cfg.num_dir, gh, cfg.hidden}) {
    return ctx.error("R must have shape " + shape_to_string({cfg.num_dir, gh, cfg.hidden}) + ", got " +
                     shape_to_string(R.shape()));
  }
  if (const Tensor* B = ctx.input(3); B != nullptr && B->shape() != Shape{cfg.num_dir, 2 * gh}) {
    return ctx.error("B must have shape " + shape_to_string({cfg.num_dir, 2 * gh}));
  }
  const Shape state_shape =
      cfg.layout == 0 ? Shape{cfg.num_dir, cfg.batch, cfg.hidden} : Shape{cfg.batch, cfg.num_dir, cfg.hidden};
  if (const Tensor* h0 = ctx.input(5); h0 != nullptr && h0->shape() != state_shape) {
    return ctx.error("initial_h must have shape " + shape_to_string(state_shape));
  }
  if (cell == Cell::kLstm) {
    if (const Tensor* c0 = ctx.input(6); c0 != nullptr && c0->shape() != state_shape) {
      return ctx.error("initial_c must have shape " + shape_to_string(state_shape));
    }
    if (const Tensor* P = ctx.input(7); P != nullptr && P->shape() != Shape{cfg.num_dir, 3 * cfg.hidden}) {
      return ctx.error("P must have shape " + shape_to_string({cfg.num_dir, 3 * cfg.hidden}));
    }
  }
  cfg.lens.assign(static_cast<size_t>(cfg.batch), cfg.seq);
  if (const Tensor* sl = ctx.input(4); sl != nullptr) {
    if (!dtype_is_integer(sl->dtype())) return ctx.error("sequence_lens must be an integer tensor");
    if (sl->shape() != Shape{cfg.batch}) return ctx.error("sequence_lens must have shape [batch]");
    cfg.lens = sl->to_int64_vector();
    for (int64_t l : cfg.lens) {
      if (l < 0 || l > cfg.seq) {
        return ctx.error("sequence_lens value " + std::to_string(l) + " outside [0, " + std::to_string(cfg.seq) + "]");
      }
      if (l != cfg.seq) cfg.uniform_lens = false;
    }
  }
  return parse_activations(ctx, cfg);
}

// --- the recurrence --------------------------------------------------------------

// Row of X / XW holding time t of batch entry b (X is [seq, batch] or [batch, seq]).
inline int64_t x_row(const RnnConfig& c, int64_t t, int64_t b) {
  return c.layout == 0 ? t * c.batch + b : b * c.seq + t;
}
// Offset of Y[t, d, b, :] (layout 0) or Y[b, t, d, :] (layout 1).
inline int64_t y_offset(const RnnConfig& c, int64_t t, int64_t d, int64_t b) {
  return (c.layout == 0 ? (t * c.num_dir + d) * c.batch + b : (b * c.seq + t) * c.num_dir + d) * c.hidden;
}
// Offset of a state [d, b, :] (layout 0) or [b, d, :] (layout 1).
inline int64_t state_offset(const RnnConfig& c, int64_t d, int64_t b) {
  return (c.layout == 0 ? d * c.batch + b : b * c.num_dir + d) * c.hidden;
}

template <typename T>
struct RnnTensors {
  const T* X = nullptr;
  const T* W = nullptr;
  const T* R = nullptr;
  const T* B = nullptr;   // may be null
  const T* h0 = nullptr;  // may be null
  const T* c0 = nullptr;  // may be null
  const T* P = nullptr;   // may be null
  T* Y = nullptr;         // may be null (not wanted)
  T* Y_h = nullptr;       // always present (scratch when not wanted)
  T* Y_c = nullptr;       // LSTM only
};

template <typename T>
class Direction {
 public:
  Direction(const RnnConfig& c, const RnnTensors<T>& io, int64_t d, int threads)
      : c_(c), io_(io), d_(d), threads_(threads), H_(c.hidden), G_(c.gates * c.hidden) {
    reverse_ = c.reverse_only || d == 1;
    acts_ = &c.acts[static_cast<size_t>(d * c.acts_per_dir)];
    if (c.has_clip) clip_ = static_cast<T>(c.clip);
  }

  void run() {
    project_input();
    const size_t state = static_cast<size_t>(c_.batch * H_);
    h_.assign(state, T(0));
    if (c_.cell == Cell::kLstm) cstate_.assign(state, T(0));
    for (int64_t b = 0; b < c_.batch; ++b) {
      if (io_.h0) std::memcpy(&h_[b * H_], io_.h0 + state_offset(c_, d_, b), sizeof(T) * H_);
      if (io_.c0) std::memcpy(&cstate_[b * H_], io_.c0 + state_offset(c_, d_, b), sizeof(T) * H_);
    }
    R_.emplace(io_.R + d_ * G_ * H_, G_, H_);
    gates_.assign(static_cast<size_t>(c_.batch * G_), T(0));
    if (c_.cell == Cell::kGru) scratch_.assign(static_cast<size_t>(c_.batch * G_), T(0));
    if (c_.cell == Cell::kLstm) scratch_.assign(static_cast<size_t>(H_), T(0));
    for (int64_t s = 0; s < c_.seq; ++s) step(s);
    for (int64_t b = 0; b < c_.batch; ++b) {
      std::memcpy(io_.Y_h + state_offset(c_, d_, b), &h_[b * H_], sizeof(T) * H_);
      if (io_.Y_c) std::memcpy(io_.Y_c + state_offset(c_, d_, b), &cstate_[b * H_], sizeof(T) * H_);
    }
  }

 private:
  // XW[row] = X[row] * W^T + bias, over all seq*batch rows at once.
  void project_input() {
    const int64_t rows = c_.seq * c_.batch;
    std::vector<T> bias(static_cast<size_t>(G_), T(0));
    rbh_.clear();
    if (io_.B) {
      const T* wb = io_.B + d_ * 2 * G_;
      const T* rb = wb + G_;
      for (int64_t i = 0; i < G_; ++i) bias[i] = wb[i] + rb[i];
      if (c_.cell == Cell::kGru && c_.linear_before_reset) {
        // Rbh sits inside r * (H R_h^T + Rbh): keep it out of the projection.
        rbh_.assign(rb + 2 * H_, rb + 3 * H_);
        for (int64_t i = 0; i < H_; ++i) bias[2 * H_ + i] -= rb[2 * H_ + i];
      }
    }
    if (c_.cell == Cell::kGru && c_.linear_before_reset && rbh_.empty()) rbh_.assign(static_cast<size_t>(H_), T(0));
    xw_.resize(static_cast<size_t>(rows * G_));
    for (int64_t r = 0; r < rows; ++r) std::memcpy(&xw_[r * G_], bias.data(), sizeof(T) * G_);
    WeightMatrix<T> W(io_.W + d_ * G_ * c_.input, G_, c_.input);
    W.multiply(rows, io_.X, c_.input, xw_.data(), G_, true, 0, G_, threads_);
  }

  // Time index batch entry b visits at step s, or -1 when it has finished.
  int64_t time_of(int64_t s, int64_t b) const {
    const int64_t len = c_.lens[b];
    if (s >= len) return -1;
    return reverse_ ? len - 1 - s : s;
  }

  void clip(T* x, int64_t n) const {
    if (c_.has_clip) clip_values(x, n, clip_);
  }

  void step(int64_t s) {
    for (int64_t b = 0; b < c_.batch; ++b) {
      const int64_t t = time_of(s, b);
      T* g = &gates_[b * G_];
      if (t < 0) {
        std::fill(g, g + G_, T(0));
      } else {
        std::memcpy(g, &xw_[x_row(c_, t, b) * G_], sizeof(T) * G_);
      }
    }
    switch (c_.cell) {
      case Cell::kLstm: lstm_step(s); break;
      case Cell::kGru: gru_step(s); break;
      case Cell::kRnn: rnn_step(s); break;
    }
  }

  void store(int64_t s, int64_t b) {
    const int64_t t = time_of(s, b);
    if (io_.Y) std::memcpy(io_.Y + y_offset(c_, t, d_, b), &h_[b * H_], sizeof(T) * H_);
  }

  void rnn_step(int64_t s) {
    R_->multiply(c_.batch, h_.data(), H_, gates_.data(), H_, true, 0, H_, threads_);
    for (int64_t b = 0; b < c_.batch; ++b) {
      if (time_of(s, b) < 0) continue;
      T* g = &gates_[b * G_];
      clip(g, H_);
      activate(acts_[0], g, H_);
      std::memcpy(&h_[b * H_], g, sizeof(T) * H_);
      store(s, b);
    }
  }

  void lstm_step(int64_t s) {
    R_->multiply(c_.batch, h_.data(), H_, gates_.data(), G_, true, 0, G_, threads_);
    const T* P = io_.P ? io_.P + d_ * 3 * H_ : nullptr;
    for (int64_t b = 0; b < c_.batch; ++b) {
      if (time_of(s, b) < 0) continue;
      T* gi = &gates_[b * G_];
      T* go = gi + H_;
      T* gf = gi + 2 * H_;
      T* gc = gi + 3 * H_;
      T* cs = &cstate_[b * H_];
      T* hs = &h_[b * H_];
      if (P) {
        for (int64_t j = 0; j < H_; ++j) {
          gi[j] += P[j] * cs[j];
          gf[j] += P[2 * H_ + j] * cs[j];
        }
      }
      clip(gi, H_);
      activate(acts_[0], gi, H_);
      if (c_.input_forget) {
        for (int64_t j = 0; j < H_; ++j) gf[j] = T(1) - gi[j];
      } else {
        clip(gf, H_);
        activate(acts_[0], gf, H_);
      }
      clip(gc, H_);
      activate(acts_[1], gc, H_);
      for (int64_t j = 0; j < H_; ++j) cs[j] = gf[j] * cs[j] + gi[j] * gc[j];
      if (P) {
        for (int64_t j = 0; j < H_; ++j) go[j] += P[H_ + j] * cs[j];
      }
      clip(go, H_);
      activate(acts_[0], go, H_);
      T* hc = scratch_.data();
      std::memcpy(hc, cs, sizeof(T) * H_);
      activate(acts_[2], hc, H_);
      for (int64_t j = 0; j < H_; ++j) hs[j] = go[j] * hc[j];
      store(s, b);
    }
  }

  void gru_step(int64_t s) {
    const int64_t B = c_.batch;
    T* hr = scratch_.data();  // [batch, 3H]: H R^T (linear_before_reset) or r*H in the first H columns
    if (c_.linear_before_reset) {
      R_->multiply(B, h_.data(), H_, hr, G_, false, 0, G_, threads_);
      for (int64_t b = 0; b < B; ++b) {
        T* g = &gates_[b * G_];
        const T* r_in = &hr[b * G_];
        for (int64_t j = 0; j < 2 * H_; ++j) g[j] += r_in[j];
      }
    } else {
      // z and r first; the candidate needs r * H before its product.
      R_->multiply(B, h_.data(), H_, gates_.data(), G_, true, 0, 2 * H_, threads_);
    }
    for (int64_t b = 0; b < B; ++b) {
      T* g = &gates_[b * G_];
      clip(g, 2 * H_);
      activate(acts_[0], g, 2 * H_);
      const T* r = g + H_;
      const T* hs = &h_[b * H_];
      if (c_.linear_before_reset) {
        const T* hrh = &hr[b * G_ + 2 * H_];
        for (int64_t j = 0; j < H_; ++j) g[2 * H_ + j] += r[j] * (hrh[j] + rbh_[j]);
      } else {
        T* rh = &hr[b * H_];
        for (int64_t j = 0; j < H_; ++j) rh[j] = r[j] * hs[j];
      }
    }
    if (!c_.linear_before_reset) {
      R_->multiply(B, hr, H_, gates_.data() + 2 * H_, G_, true, 2 * H_, 3 * H_, threads_);
    }
    for (int64_t b = 0; b < B; ++b) {
      if (time_of(s, b) < 0) continue;
      T* g = &gates_[b * G_];
      T* hh = g + 2 * H_;
      clip(hh, H_);
      activate(acts_[1], hh, H_);
      const T* z = g;
      T* hs = &h_[b * H_];
      for (int64_t j = 0; j < H_; ++j) hs[j] = (T(1) - z[j]) * hh[j] + z[j] * hs[j];
      store(s, b);
    }
  }

  const RnnConfig& c_;
  const RnnTensors<T>& io_;
  int64_t d_;
  int threads_;
  int64_t H_, G_;
  bool reverse_ = false;
  const Activation* acts_ = nullptr;
  T clip_ = T(0);
  std::optional<WeightMatrix<T>> R_;  // this direction's recurrent weights [gates*hidden, hidden]
  std::vector<T> xw_, h_, cstate_, gates_, scratch_, rbh_;
};

struct RnnOutputs {
  Tensor Y, Y_h, Y_c;
};

template <typename T>
RnnOutputs run_typed(const KernelContext& ctx, const RnnConfig& cfg, const std::vector<Tensor>& in) {
  RnnTensors<T> io;
  auto ptr = [&](size_t i) -> const T* { return in[i].defined() ? in[i].data<T>() : nullptr; };
  io.X = ptr(0);
  io.W = ptr(1);
  io.R = ptr(2);
  io.B = ptr(3);
  io.h0 = ptr(5);
  if (cfg.cell == Cell::kLstm) {
    io.c0 = ptr(6);
    io.P = ptr(7);
  }
  const DataType dt = dtype_of<T>;
  RnnOutputs out;
  const Shape y_shape = cfg.layout == 0 ? Shape{cfg.seq, cfg.num_dir, cfg.batch, cfg.hidden}
                                        : Shape{cfg.batch, cfg.seq, cfg.num_dir, cfg.hidden};
  const Shape state_shape =
      cfg.layout == 0 ? Shape{cfg.num_dir, cfg.batch, cfg.hidden} : Shape{cfg.batch, cfg.num_dir, cfg.hidden};
  if (ctx.output_wanted(0)) {
    // Entries shorter than the sequence leave zeros past their end.
    out.Y = cfg.uniform_lens ? Tensor(dt, y_shape) : Tensor::zeros(dt, y_shape);
    io.Y = out.Y.template data<T>();
  }
  out.Y_h = Tensor(dt, state_shape);
  io.Y_h = out.Y_h.template data<T>();
  if (cfg.cell == Cell::kLstm) {
    out.Y_c = Tensor(dt, state_shape);
    io.Y_c = out.Y_c.template data<T>();
  }
  for (int64_t d = 0; d < cfg.num_dir; ++d) {
    Direction<T> dir(cfg, io, d, ctx.threads());
    dir.run();
  }
  return out;
}

Status compute_rnn(KernelContext& ctx, Cell cell) {
  RnnConfig cfg;
  DESKML_RETURN_IF_ERROR(parse_config(ctx, cell, cfg));
  const DataType dt = ctx.required_input(0).dtype();
  const size_t num_in = cell == Cell::kLstm ? 8 : 6;
  // Half precision runs in float32.
  const DataType compute = dt == DataType::kFloat64 ? DataType::kFloat64 : DataType::kFloat32;
  std::vector<Tensor> in(num_in);
  for (size_t i = 0; i < num_in; ++i) {
    if (i == 4) continue;  // sequence_lens is already parsed
    const Tensor* t = ctx.input(i);
    if (t == nullptr) continue;
    if (t->dtype() != dt) return ctx.error("input " + std::to_string(i) + " has type " +
                                           std::string(dtype_name(t->dtype())) + ", expected " +
                                           std::string(dtype_name(dt)));
    in[i] = t->dtype() == compute ? *t : t->cast(compute);
  }
  RnnOutputs out = compute == DataType::kFloat64 ? run_typed<double>(ctx, cfg, in) : run_typed<float>(ctx, cfg, in);
  auto emit = [&](size_t i, Tensor& t) {
    if (!t.defined() || !ctx.output_wanted(i)) return;
    ctx.set_output(i, t.dtype() == dt ? t : t.cast(dt));
  };
  emit(0, out.Y);
  emit(1, out.Y_h);
  if (cell == Cell::kLstm) emit(2, out.Y_c);
  return Status::Ok();
}

}  // namespace

void register_rnn_kernels(KernelRegistry& r) {
  const std::vector<DataType> types = {DataType::kFloat32, DataType::kFloat64, DataType::kFloat16};
  r.add("LSTM", 1, INT_MAX, types, [](KernelContext& ctx) { return compute_rnn(ctx, Cell::kLstm); });
  r.add("GRU", 1, INT_MAX, types, [](KernelContext& ctx) { return compute_rnn(ctx, Cell::kGru); });
  r.add("RNN", 1, INT_MAX, types, [](KernelContext& ctx) { return compute_rnn(ctx, Cell::kRnn); });
}

}  // namespace deskml::kernels::cpu
