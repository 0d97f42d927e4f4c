// GridSample (opset 16+) on 4-D input, matching torch.nn.functional.grid_sample:
// bilinear / nearest / bicubic (opset 20 calls them linear / nearest / cubic),
// zeros / border / reflection padding, align_corners.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"

namespace deskml::kernels::cpu {
namespace {

enum class GridMode { kBilinear, kNearest, kBicubic };
enum class Padding { kZeros, kBorder, kReflection };

// Coordinates past this are outside any tensor; keeps the integer casts defined.
constexpr double kFar = 1e15;

// Source coordinates are computed in the data's precision T, as PyTorch and ONNX
// Runtime do: nearest rounding of a coordinate that lands on .5 depends on it.
// Each float step is rounded explicitly so no fused multiply-add changes a tie.
template <typename T>
T unnormalize(T g, int64_t size, bool align_corners) {
  const double s = static_cast<double>(size);
  T t = static_cast<T>(static_cast<double>(g) + 1.0);
  if (align_corners) {
    t = static_cast<T>(static_cast<double>(t) / 2.0);
    return static_cast<T>(static_cast<double>(t) * (s - 1));
  }
  t = static_cast<T>(static_cast<double>(t) * s);
  t = static_cast<T>(static_cast<double>(t) - 1.0);
  return static_cast<T>(static_cast<double>(t) / 2.0);
}

template <typename T>
T reflect(T x, T twice_low, T twice_high) {
  if (twice_low == twice_high) return 0;
  const T lo = twice_low / 2;
  const T span = (twice_high - twice_low) / 2;
  x = std::abs(x - lo);
  const T extra = std::fmod(x, span);
  const int64_t flips = static_cast<int64_t>(std::floor(x / span));
  return flips % 2 == 0 ? extra + lo : span - extra + lo;
}

// Applies the padding mode to a source coordinate (torch's compute_coordinates).
template <typename T>
T pad_coord(T x, int64_t size, Padding p, bool align_corners) {
  const T hi = static_cast<T>(size - 1);
  if (p == Padding::kBorder) return std::clamp(x, T(0), hi);
  if (p == Padding::kReflection) {
    if (!(std::abs(x) < T(kFar))) return 0;  // not finite or absurd: nothing sensible to reflect
    x = align_corners ? reflect<T>(x, 0, 2 * hi) : reflect<T>(x, -1, 2 * static_cast<T>(size) - 1);
    return std::clamp(x, T(0), hi);
  }
  return x;
}

double cubic_w1(double x, double A) { return ((A + 2) * x - (A + 3)) * x * x + 1; }        // |x| <= 1
double cubic_w2(double x, double A) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; }  // 1 < |x| < 2

void cubic_weights(double t, double w[4]) {
  constexpr double A = -0.75;
  w[0] = cubic_w2(t + 1, A);
  w[1] = cubic_w1(t, A);
  w[2] = cubic_w1(1 - t, A);
  w[3] = cubic_w2(2 - t, A);
}

struct GridParams {
  int64_t N, C, H, W, oh, ow;
  GridMode mode;
  Padding padding;
  bool align_corners;
};

template <typename T>
void grid_sample(const T* X, const T* grid, T* Y, const GridParams& p, int threads) {
  const int64_t plane = p.H * p.W, out_plane = p.oh * p.ow;
  parallel_for(p.N * p.oh, threads, p.ow * p.C * 16, [&](int64_t lo, int64_t hi) {
    for (int64_t row = lo; row < hi; ++row) {
      const int64_t n = row / p.oh, y = row % p.oh;
      const T* img = X + n * p.C * plane;
      T* out = Y + n * p.C * out_plane + y * p.ow;
      const T* g = grid + row * p.ow * 2;
      for (int64_t x = 0; x < p.ow; ++x) {
        const T gx = unnormalize<T>(g[2 * x], p.W, p.align_corners);
        const T gy = unnormalize<T>(g[2 * x + 1], p.H, p.align_corners);
        // Up to 16 taps (offset into a plane, weight); out-of-bounds taps are dropped (zeros).
        int64_t pos[16];
        double wt[16];
        int taps = 0;
        auto add = [&](int64_t ix, int64_t iy, double w) {
          if (ix >= 0 && ix < p.W && iy >= 0 && iy < p.H) {
            pos[taps] = iy * p.W + ix;
            wt[taps++] = w;
          }
        };
        if (p.mode == GridMode::kBicubic) {
          if (std::abs(gx) < T(kFar) && std::abs(gy) < T(kFar)) {
            const T fx = std::floor(gx), fy = std::floor(gy);
            double wx[4], wy[4];
            cubic_weights(static_cast<double>(gx - fx), wx);
            cubic_weights(static_cast<double>(gy - fy), wy);
            for (int i = 0; i < 4; ++i) {
              const T sy = pad_coord<T>(fy - 1 + i, p.H, p.padding, p.align_corners);
              for (int j = 0; j < 4; ++j) {
                const T sx = pad_coord<T>(fx - 1 + j, p.W, p.padding, p.align_corners);
                add(static_cast<int64_t>(sx), static_cast<int64_t>(sy), wx[j] * wy[i]);
              }
            }
          }
        } else {
          const T sx = pad_coord<T>(gx, p.W, p.padding, p.align_corners);
          const T sy = pad_coord<T>(gy, p.H, p.padding, p.align_corners);
          if (std::abs(sx) < T(kFar) && std::abs(sy) < T(kFar)) {
            if (p.mode == GridMode::kNearest) {
              add(static_cast<int64_t>(std::nearbyint(sx)), static_cast<int64_t>(std::nearbyint(sy)), 1.0);
            } else {
              const T fx = std::floor(sx), fy = std::floor(sy);
              const double tx = static_cast<double>(sx - fx), ty = static_cast<double>(sy - fy);
              const int64_t x0 = static_cast<int64_t>(fx), y0 = static_cast<int64_t>(fy);
              add(x0, y0, (1 - tx) * (1 - ty));
              add(x0 + 1, y0, tx * (1 - ty));
              add(x0, y0 + 1, (1 - tx) * ty);
              add(x0 + 1, y0 + 1, tx * ty);
            }
          }
        }
        T w[16];
        for (int k = 0; k < taps; ++k) w[k] = static_cast<T>(wt[k]);
        for (int64_t c = 0; c < p.C; ++c) {
          const T* src = img + c * plane;
          T acc = 0;
          for (int k = 0; k < taps; ++k) acc += w[k] * src[pos[k]];
          out[c * out_plane + x] = acc;
        }
      }
    }
  });
}

Status compute_grid_sample(KernelContext& ctx) {
  const Tensor& X_in = ctx.required_input(0);
  const Tensor& grid_in = ctx.required_input(1);
  const graph::Node& node = ctx.node();
  GridParams p{};
  const std::string mode = node.attr_string("mode", ctx.opset() >= 20 ? "linear" : "bilinear");
  if (mode == "bilinear" || mode == "linear") {
    p.mode = GridMode::kBilinear;
  } else if (mode == "nearest") {
    p.mode = GridMode::kNearest;
  } else if (mode == "bicubic" || mode == "cubic") {
    p.mode = GridMode::kBicubic;
  } else {
    return ctx.error("unknown mode '" + mode + "'");
  }
  const std::string padding = node.attr_string("padding_mode", "zeros");
  if (padding == "zeros") {
    p.padding = Padding::kZeros;
  } else if (padding == "border") {
    p.padding = Padding::kBorder;
  } else if (padding == "reflection") {
    p.padding = Padding::kReflection;
  } else {
    return ctx.error("unknown padding_mode '" + padding + "'");
  }
  p.align_corners = node.attr_int("align_corners", 0) != 0;
  if (X_in.rank() != 4)
    return ctx.error("only 4-D input [N, C, H, W] is supported, got " + shape_to_string(X_in.shape()));
  if (grid_in.rank() != 4 || grid_in.dim(3) != 2 || grid_in.dim(0) != X_in.dim(0)) {
    return ctx.error("grid must have shape [N, H_out, W_out, 2] with N = " + std::to_string(X_in.dim(0)));
  }
  if (!dtype_is_float(grid_in.dtype())) return ctx.error("grid must be a float tensor");
  p.N = X_in.dim(0);
  p.C = X_in.dim(1);
  p.H = X_in.dim(2);
  p.W = X_in.dim(3);
  p.oh = grid_in.dim(1);
  p.ow = grid_in.dim(2);
  const DataType ct = X_in.dtype() == DataType::kFloat64 ? DataType::kFloat64 : DataType::kFloat32;
  const Tensor X = X_in.dtype() == ct ? X_in : X_in.cast(ct);
  const Tensor grid = grid_in.dtype() == ct ? grid_in : grid_in.cast(ct);
  Tensor Y(ct, {p.N, p.C, p.oh, p.ow});
  if (Y.numel() > 0) {
    if (p.H == 0 || p.W == 0) {
      Y = Tensor::zeros(ct, Y.shape());
    } else {
      dispatch_float(ct, "GridSample", [&](auto tag) {
        using T = decltype(tag);
        grid_sample<T>(X.data<T>(), grid.data<T>(), Y.data<T>(), p, ctx.threads());
      });
    }
  }
  ctx.set_output(0, Y.dtype() == X_in.dtype() ? Y : Y.cast(X_in.dtype()));
  return Status::Ok();
}

}  // namespace

void register_grid_sample_kernels(KernelRegistry& r) {
  r.add("GridSample", 16, INT_MAX, {DataType::kFloat32, DataType::kFloat64, DataType::kFloat16}, compute_grid_sample);
}

}  // namespace deskml::kernels::cpu
