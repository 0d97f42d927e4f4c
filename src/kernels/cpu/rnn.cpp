// Recurrent layers: LSTM, GRU and RNN (ONNX opsets 1..22, `layout` from 14).
//
// Each direction first projects the whole input sequence at once (one matrix
// product over seq*batch rows, biases folded in), then walks the sequence doing
// one small product with the recurrent weights per step (rnn_math.hpp: batches
// of one or two read the weights as stored; larger ones use a transposed copy).
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
#include "kernels/cpu/rnn_math.hpp"

namespace deskml::kernels::cpu {
namespace {

using rnn_math::activate;
using rnn_math::Activation;
using rnn_math::ActKind;
using rnn_math::ActSpec;
using rnn_math::clip_values;
using rnn_math::kActSpecs;
using rnn_math::WeightMatrix;

// --- attributes and shapes -------------------------------------------------------

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

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
  bool input_forget = false;         // LSTM
  bool linear_before_reset = false;  // GRU
  std::vector<Activation> acts;      // per direction: LSTM f,g,h; GRU f,g; RNN f
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
    case Cell::kLstm:
      defaults = {"Sigmoid", "Tanh", "Tanh"};
      break;
    case Cell::kGru:
      defaults = {"Sigmoid", "Tanh"};
      break;
    case Cell::kRnn:
      defaults = {"Tanh"};
      break;
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
    return ctx.error("hidden_size attribute " + std::to_string(node.attr_int("hidden_size", 0)) + " does not match R " +
                     shape_to_string(R.shape()));
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
      case Cell::kLstm:
        lstm_step(s);
        break;
      case Cell::kGru:
        gru_step(s);
        break;
      case Cell::kRnn:
        rnn_step(s);
        break;
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
    if (t->dtype() != dt)
      return ctx.error("input " + std::to_string(i) + " has type " + std::string(dtype_name(t->dtype())) +
                       ", expected " + std::string(dtype_name(dt)));
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
