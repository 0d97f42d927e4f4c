// Audio front-end ops (opset 17+): DFT, STFT, Hann/Hamming/Blackman windows and
// MelWeightMatrix. Transforms run in double precision: radix-2 FFT for powers
// of two, a direct sum for short odd lengths, Bluestein's chirp-z otherwise, so
// every length costs O(n log n).
#include <algorithm>
#include <cmath>
#include <complex>
#include <numbers>
#include <string>
#include <vector>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"

namespace deskml::kernels::cpu {
namespace {

using cd = std::complex<double>;

// Longest transform accepted: bounds the plan's buffers (Bluestein uses 4n).
constexpr int64_t kMaxDftLength = int64_t{1} << 20;

bool is_pow2(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

// e^{sign * 2*pi*i * num / den}, with num reduced mod den first for accuracy.
cd unit_root(int64_t num, int64_t den, int sign) {
  num %= den;
  const double a = 2.0 * std::numbers::pi * static_cast<double>(num) / static_cast<double>(den);
  return {std::cos(a), sign * std::sin(a)};
}

class FftPlan {
 public:
  // sign -1: forward transform, +1: inverse (unscaled).
  FftPlan(int64_t n, int sign) : n_(n) {
    if (is_pow2(n)) {
      kind_ = Kind::kRadix2;
      init_radix2(n, sign, twiddles_, bitrev_);
    } else if (n <= 64) {
      kind_ = Kind::kDirect;
      twiddles_.resize(static_cast<size_t>(n));
      for (int64_t k = 0; k < n; ++k) twiddles_[k] = unit_root(k, n, sign);
    } else {
      kind_ = Kind::kBluestein;
      m_ = 1;
      while (m_ < 2 * n - 1) m_ <<= 1;
      init_radix2(m_, -1, m_fwd_, m_bitrev_);
      init_radix2(m_, +1, m_inv_, m_bitrev_);
      chirp_.resize(static_cast<size_t>(n));
      // w_j = e^{sign*pi*i*j^2/n} = unit_root(j^2, 2n)
      for (int64_t j = 0; j < n; ++j) chirp_[j] = unit_root((j * j) % (2 * n), 2 * n, sign);
      filter_.assign(static_cast<size_t>(m_), cd(0, 0));
      filter_[0] = std::conj(chirp_[0]);
      for (int64_t j = 1; j < n; ++j) filter_[j] = filter_[m_ - j] = std::conj(chirp_[j]);
      radix2(filter_.data(), m_, m_fwd_, m_bitrev_);
    }
  }

  int64_t size() const { return n_; }

  // data: n values in, n values out. scratch is reused between calls.
  void run(cd* data, std::vector<cd>& scratch) const {
    switch (kind_) {
      case Kind::kRadix2:
        radix2(data, n_, twiddles_, bitrev_);
        break;
      case Kind::kDirect: {
        scratch.assign(data, data + n_);
        for (int64_t k = 0; k < n_; ++k) {
          cd acc(0, 0);
          int64_t idx = 0;
          for (int64_t j = 0; j < n_; ++j) {
            acc += scratch[j] * twiddles_[idx];
            idx += k;
            if (idx >= n_) idx -= n_;
          }
          data[k] = acc;
        }
        break;
      }
      case Kind::kBluestein: {
        scratch.assign(static_cast<size_t>(m_), cd(0, 0));
        for (int64_t j = 0; j < n_; ++j) scratch[j] = data[j] * chirp_[j];
        radix2(scratch.data(), m_, m_fwd_, m_bitrev_);
        for (int64_t j = 0; j < m_; ++j) scratch[j] *= filter_[j];
        radix2(scratch.data(), m_, m_inv_, m_bitrev_);
        const double inv_m = 1.0 / static_cast<double>(m_);
        for (int64_t k = 0; k < n_; ++k) data[k] = scratch[k] * chirp_[k] * inv_m;
        break;
      }
    }
  }

 private:
  enum class Kind { kRadix2, kDirect, kBluestein };

  static void init_radix2(int64_t n, int sign, std::vector<cd>& tw, std::vector<int64_t>& rev) {
    tw.resize(static_cast<size_t>(n / 2));
    for (int64_t k = 0; k < n / 2; ++k) tw[k] = unit_root(k, n, sign);
    rev.assign(static_cast<size_t>(n), 0);
    int bits = 0;
    while ((int64_t{1} << bits) < n) ++bits;
    for (int64_t i = 0; i < n; ++i) {
      int64_t r = 0;
      for (int b = 0; b < bits; ++b) r |= ((i >> b) & 1) << (bits - 1 - b);
      rev[i] = r;
    }
  }

  static void radix2(cd* a, int64_t n, const std::vector<cd>& tw, const std::vector<int64_t>& rev) {
    for (int64_t i = 0; i < n; ++i) {
      if (i < rev[i]) std::swap(a[i], a[rev[i]]);
    }
    for (int64_t len = 2; len <= n; len <<= 1) {
      const int64_t half = len / 2, step = n / len;
      for (int64_t i = 0; i < n; i += len) {
        for (int64_t j = 0; j < half; ++j) {
          const cd t = a[i + j + half] * tw[j * step];
          a[i + j + half] = a[i + j] - t;
          a[i + j] += t;
        }
      }
    }
  }

  int64_t n_;
  Kind kind_ = Kind::kDirect;
  std::vector<cd> twiddles_;
  std::vector<int64_t> bitrev_;
  int64_t m_ = 0;
  std::vector<cd> m_fwd_, m_inv_, chirp_, filter_;
  std::vector<int64_t> m_bitrev_;
};

int64_t scalar_int(const KernelContext& ctx, const Tensor& t, const char* what) {
  if (!dtype_is_integer(t.dtype()) || t.numel() != 1)
    throw_status(ctx.error(std::string(what) + " must be an integer scalar"));
  return t.int_at(0);
}

// --- DFT ----------------------------------------------------------------------------

template <typename T>
void run_dft(const Tensor& X, Tensor& Y, int64_t axis, int64_t n, int64_t bins, bool inverse, int threads) {
  const Shape& s = X.shape();
  const int64_t rank = X.rank();
  const int64_t in_len = s[axis];
  const int64_t in_c = s[rank - 1];  // 1 = real, 2 = complex
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= s[d];
  for (int64_t d = axis + 1; d < rank - 1; ++d) inner *= s[d];
  const FftPlan plan(n, inverse ? +1 : -1);
  const double scale = inverse ? 1.0 / static_cast<double>(n) : 1.0;
  const T* src = X.data<T>();
  T* dst = Y.data<T>();
  const int64_t copy = std::min(in_len, n);
  parallel_for(outer * inner, threads, n * 16, [&](int64_t lo, int64_t hi) {
    std::vector<cd> buf(static_cast<size_t>(n)), scratch;
    for (int64_t sig = lo; sig < hi; ++sig) {
      const int64_t o = sig / inner, i = sig % inner;
      const T* in = src + (o * in_len * inner + i) * in_c;
      std::fill(buf.begin(), buf.end(), cd(0, 0));
      for (int64_t k = 0; k < copy; ++k) {
        const T* v = in + k * inner * in_c;
        buf[k] = cd(static_cast<double>(v[0]), in_c == 2 ? static_cast<double>(v[1]) : 0.0);
      }
      plan.run(buf.data(), scratch);
      T* out = dst + (o * bins * inner + i) * 2;
      for (int64_t k = 0; k < bins; ++k) {
        out[k * inner * 2] = static_cast<T>(buf[k].real() * scale);
        out[k * inner * 2 + 1] = static_cast<T>(buf[k].imag() * scale);
      }
    }
  });
}

Status compute_dft(KernelContext& ctx) {
  const Tensor& X_in = ctx.required_input(0);
  const graph::Node& node = ctx.node();
  const int64_t rank = X_in.rank();
  if (rank < 2) return ctx.error("input must have at least 2 dims [..., signal, 1 or 2]");
  if (X_in.dim(rank - 1) != 1 && X_in.dim(rank - 1) != 2) return ctx.error("last dim must be 1 (real) or 2 (complex)");
  int64_t axis = 1;
  if (ctx.opset() >= 20) {
    axis = -2;
    if (const Tensor* a = ctx.input(2); a != nullptr) axis = scalar_int(ctx, *a, "axis");
  } else {
    axis = node.attr_int("axis", 1);
  }
  if (axis < -rank || axis >= rank) return ctx.error("axis " + std::to_string(axis) + " out of range");
  if (axis < 0) axis += rank;
  if (axis == rank - 1) return ctx.error("axis cannot be the last (real/imaginary) dim");
  const bool inverse = node.attr_int("inverse", 0) != 0;
  const bool onesided = node.attr_int("onesided", 0) != 0;
  if (inverse && onesided) return ctx.error("onesided inverse DFT is not supported");
  int64_t n = X_in.dim(axis);
  if (const Tensor* len = ctx.input(1); len != nullptr) {
    n = scalar_int(ctx, *len, "dft_length");
  }
  if (n <= 0 || n > kMaxDftLength) return ctx.error("dft_length must be in [1, 2^20], got " + std::to_string(n));
  const int64_t bins = onesided ? n / 2 + 1 : n;
  Shape out_shape = X_in.shape();
  out_shape[axis] = bins;
  out_shape[rank - 1] = 2;
  const DataType ct = X_in.dtype() == DataType::kFloat64 ? DataType::kFloat64 : DataType::kFloat32;
  const Tensor X = X_in.dtype() == ct ? X_in : X_in.cast(ct);
  Tensor Y(ct, out_shape);
  if (Y.numel() > 0) {
    dispatch_float(ct, "DFT", [&](auto tag) { run_dft<decltype(tag)>(X, Y, axis, n, bins, inverse, ctx.threads()); });
  }
  ctx.set_output(0, Y.dtype() == X_in.dtype() ? Y : Y.cast(X_in.dtype()));
  return Status::Ok();
}

// --- STFT ---------------------------------------------------------------------------

template <typename T>
void run_stft(const Tensor& S, const Tensor* window, Tensor& Y, int64_t n, int64_t step, int64_t frames, int64_t bins,
              int threads) {
  const int64_t batch = S.dim(0), len = S.dim(1), in_c = S.dim(2);
  const T* src = S.data<T>();
  std::vector<double> win(static_cast<size_t>(n), 1.0);
  if (window) {
    for (int64_t k = 0; k < n; ++k) win[k] = window->float_at(k);
  }
  const FftPlan plan(n, -1);
  T* dst = Y.data<T>();
  parallel_for(batch * frames, threads, n * 16, [&](int64_t lo, int64_t hi) {
    std::vector<cd> buf(static_cast<size_t>(n)), scratch;
    for (int64_t f = lo; f < hi; ++f) {
      const int64_t b = f / frames, fr = f % frames;
      const T* in = src + (b * len + fr * step) * in_c;
      for (int64_t k = 0; k < n; ++k) {
        const double re = static_cast<double>(in[k * in_c]);
        const double im = in_c == 2 ? static_cast<double>(in[k * in_c + 1]) : 0.0;
        buf[k] = cd(re, im) * win[k];
      }
      plan.run(buf.data(), scratch);
      T* out = dst + f * bins * 2;
      for (int64_t k = 0; k < bins; ++k) {
        out[2 * k] = static_cast<T>(buf[k].real());
        out[2 * k + 1] = static_cast<T>(buf[k].imag());
      }
    }
  });
}

Status compute_stft(KernelContext& ctx) {
  const Tensor& S_in = ctx.required_input(0);
  if (S_in.rank() != 3 || (S_in.dim(2) != 1 && S_in.dim(2) != 2)) {
    return ctx.error("signal must have shape [batch, length, 1 or 2], got " + shape_to_string(S_in.shape()));
  }
  const int64_t step = scalar_int(ctx, ctx.required_input(1), "frame_step");
  if (step <= 0) return ctx.error("frame_step must be positive");
  const Tensor* window = ctx.input(2);
  if (window != nullptr && window->rank() != 1) return ctx.error("window must be 1-D");
  int64_t n = -1;
  if (const Tensor* fl = ctx.input(3); fl != nullptr) n = scalar_int(ctx, *fl, "frame_length");
  if (window != nullptr) {
    if (n >= 0 && n != window->dim(0)) return ctx.error("frame_length does not match the window length");
    n = window->dim(0);
  }
  if (n < 0) return ctx.error("either window or frame_length must be given");
  if (n <= 0 || n > kMaxDftLength) return ctx.error("frame length must be in [1, 2^20]");
  const int64_t len = S_in.dim(1);
  if (len < n) return ctx.error("signal is shorter than one frame");
  const int64_t frames = (len - n) / step + 1;
  const bool onesided = ctx.node().attr_int("onesided", 1) != 0;
  const int64_t bins = onesided ? n / 2 + 1 : n;
  const DataType ct = S_in.dtype() == DataType::kFloat64 ? DataType::kFloat64 : DataType::kFloat32;
  const Tensor S = S_in.dtype() == ct ? S_in : S_in.cast(ct);
  Tensor Y(ct, {S.dim(0), frames, bins, 2});
  if (Y.numel() > 0) {
    dispatch_float(ct, "STFT",
                   [&](auto tag) { run_stft<decltype(tag)>(S, window, Y, n, step, frames, bins, ctx.threads()); });
  }
  ctx.set_output(0, Y.dtype() == S_in.dtype() ? Y : Y.cast(S_in.dtype()));
  return Status::Ok();
}

// --- windows and mel filters -----------------------------------------------------------

Result<DataType> output_datatype(const KernelContext& ctx) {
  const int64_t v = ctx.node().attr_int("output_datatype", 1);
  if (v < 0 || v > INT32_MAX) return ctx.error("bad output_datatype");
  auto dt = dtype_from_onnx(static_cast<int32_t>(v));
  if (!dt.ok() || *dt == DataType::kString || *dt == DataType::kBool || *dt == DataType::kUndefined) {
    return ctx.error("unsupported output_datatype " + std::to_string(v));
  }
  return *dt;
}

// Generalised cosine window: a0 - a1 cos(2 pi k / N) + a2 cos(4 pi k / N).
Status compute_window(KernelContext& ctx, double a0, double a1, double a2) {
  const int64_t size = scalar_int(ctx, ctx.required_input(0), "size");
  if (size < 0 || size > kMaxTensorElements) return ctx.error("size must not be negative");
  DESKML_ASSIGN_OR_RETURN(DataType dt, output_datatype(ctx));
  const bool periodic = ctx.node().attr_int("periodic", 1) != 0;
  const int64_t denom_i = periodic ? size : size - 1;
  const double denom = denom_i > 0 ? static_cast<double>(denom_i) : 1.0;
  Tensor w(DataType::kFloat64, {size});
  double* p = w.data<double>();
  for (int64_t k = 0; k < size; ++k) {
    const double x = 2.0 * std::numbers::pi * static_cast<double>(k) / denom;
    // A one-point window is 1, as numpy and PyTorch define it.
    p[k] = size == 1 ? 1.0 : a0 - a1 * std::cos(x) + a2 * std::cos(2 * x);
  }
  ctx.set_output(0, dt == DataType::kFloat64 ? w : w.cast(dt));
  return Status::Ok();
}

Status compute_mel(KernelContext& ctx) {
  const int64_t num_mel = scalar_int(ctx, ctx.required_input(0), "num_mel_bins");
  const int64_t dft_length = scalar_int(ctx, ctx.required_input(1), "dft_length");
  const int64_t sample_rate = scalar_int(ctx, ctx.required_input(2), "sample_rate");
  const Tensor& lo_t = ctx.required_input(3);
  const Tensor& hi_t = ctx.required_input(4);
  if (!dtype_is_float(lo_t.dtype()) || lo_t.numel() != 1 || !dtype_is_float(hi_t.dtype()) || hi_t.numel() != 1) {
    return ctx.error("lower_edge_hertz and upper_edge_hertz must be float scalars");
  }
  const float lower = static_cast<float>(lo_t.float_at(0)), upper = static_cast<float>(hi_t.float_at(0));
  if (num_mel <= 0 || num_mel > (int64_t{1} << 20)) return ctx.error("num_mel_bins must be in [1, 2^20]");
  if (dft_length <= 0 || dft_length > kMaxDftLength) return ctx.error("dft_length must be in [1, 2^20]");
  if (sample_rate <= 0) return ctx.error("sample_rate must be positive");
  if (!(lower >= 0 && lower <= upper && std::isfinite(upper))) {
    return ctx.error("need 0 <= lower_edge_hertz <= upper_edge_hertz");
  }
  DESKML_ASSIGN_OR_RETURN(DataType dt, output_datatype(ctx));
  const int64_t spec_bins = dft_length / 2 + 1;
  auto hz_to_mel = [](float hz) { return 2595.f * std::log10(1.f + hz / 700.f); };
  const double low_mel = hz_to_mel(lower), high_mel = hz_to_mel(upper);
  // num_mel + 2 band edges; the step divides by the edge count, as the ONNX reference does.
  const int64_t edges = num_mel + 2;
  const double step = (high_mel - low_mel) / static_cast<double>(edges);
  std::vector<int64_t> bin(static_cast<size_t>(edges));
  for (int64_t i = 0; i < edges; ++i) {
    const double hz = 700.0 * (std::pow(10.0, (static_cast<double>(i) * step + low_mel) / 2595.0) - 1.0);
    const double b = std::floor(static_cast<double>(dft_length + 1) * hz / static_cast<double>(sample_rate));
    if (!(std::abs(b) < 1e12)) return ctx.error("band edges out of range: upper_edge_hertz too large");
    bin[i] = static_cast<int64_t>(b);
  }
  Tensor out = Tensor::zeros(DataType::kFloat64, {spec_bins, num_mel});
  double* o = out.data<double>();
  auto set = [&](int64_t row, int64_t col, double v) {
    if (row >= 0 && row < spec_bins) o[row * num_mel + col] = v;
  };
  for (int64_t i = 0; i < num_mel; ++i) {
    const int64_t left = bin[i], center = bin[i + 1], right = bin[i + 2];
    if (center == left) {
      set(center, i, 1.0);
    } else {
      for (int64_t j = std::max<int64_t>(left, 0); j <= std::min(center, spec_bins - 1); ++j) {
        set(j, i, static_cast<double>(j - left) / static_cast<double>(center - left));
      }
    }
    if (right > center) {
      for (int64_t j = std::max<int64_t>(center, 0); j < std::min(right, spec_bins); ++j) {
        set(j, i, static_cast<double>(right - j) / static_cast<double>(right - center));
      }
    }
  }
  ctx.set_output(0, dt == DataType::kFloat64 ? out : out.cast(dt));
  return Status::Ok();
}

}  // namespace

void register_signal_kernels(KernelRegistry& r) {
  const std::vector<DataType> floats = {DataType::kFloat32, DataType::kFloat64, DataType::kFloat16,
                                        DataType::kBFloat16};
  r.add("DFT", 17, 19, floats, compute_dft);
  r.add("DFT", 20, INT_MAX, floats, compute_dft);
  r.add("STFT", 17, INT_MAX, floats, compute_stft);
  const std::vector<DataType> ints = {DataType::kInt32, DataType::kInt64};
  r.add("HannWindow", 17, INT_MAX, ints, [](KernelContext& ctx) { return compute_window(ctx, 0.5, 0.5, 0.0); });
  r.add("HammingWindow", 17, INT_MAX, ints,
        [](KernelContext& ctx) { return compute_window(ctx, 25.0 / 46.0, 21.0 / 46.0, 0.0); });
  r.add("BlackmanWindow", 17, INT_MAX, ints, [](KernelContext& ctx) { return compute_window(ctx, 0.42, 0.5, 0.08); });
  r.add("MelWeightMatrix", 17, INT_MAX, ints, compute_mel);
}

}  // namespace deskml::kernels::cpu
