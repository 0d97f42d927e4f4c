// Shared by the convolution family (Conv, ConvTranspose, ConvInteger,
// QLinearConv): attribute parsing, ONNX output-shape rules, and the direct
// reference loops used for types oneDNN does not take.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "graph/graph.hpp"
#include "kernels/cpu/common.hpp"

namespace deskml::kernels::cpu {

struct ConvAttrs {
  std::string auto_pad = "NOTSET";
  std::vector<int64_t> kernel_shape, strides, dilations, pads, output_padding, output_shape;
  int64_t group = 1;
  ConvAttrs() = default;
  explicit ConvAttrs(const graph::Node& node);
};

// One convolution problem with concrete shapes. Spatial vectors have one entry
// per spatial axis. For ConvTranspose, `in` is the input (smaller) side and
// `out` the output side, and pads crop the full output (they may be negative:
// a negative pad adds zero rows, as output_shape/output_padding can ask for).
struct ConvGeometry {
  int64_t batch = 0, in_channels = 0, out_channels = 0, group = 1;
  std::vector<int64_t> in, kernel, out, strides, dilations, pad_begin, pad_end;

  size_t spatial_rank() const { return in.size(); }
  Shape output_shape() const;
  int64_t in_size() const;      // product of `in`
  int64_t out_size() const;     // product of `out`
  int64_t kernel_size() const;  // product of `kernel`
  // The same problem with exactly 3 spatial axes (leading size-1 axes), so
  // loops are written once for 1-D, 2-D and 3-D.
  ConvGeometry as_3d() const;
};

// Validates shapes and attributes for Conv-like ops (W is [M, C/group, k...]); throws Error.
ConvGeometry conv_geometry(const ConvAttrs& attrs, const Shape& x, const Shape& w, const std::string& label);
// Same for ConvTranspose (W is [C, M/group, k...]), following the spec's output-shape formulas.
ConvGeometry conv_transpose_geometry(const ConvAttrs& attrs, const Shape& x, const Shape& w, const std::string& label);

// Range of output positions o in [0, out) for which o * stride + offset lands in [0, in).
inline std::pair<int64_t, int64_t> valid_output_range(int64_t out, int64_t in, int64_t stride, int64_t offset) {
  // o >= ceil(-offset / stride), o <= floor((in - 1 - offset) / stride)
  auto floor_div = [](int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); };
  int64_t lo = offset >= 0 ? 0 : -floor_div(offset, stride);
  int64_t hi = in - 1 - offset < 0 ? 0 : floor_div(in - 1 - offset, stride) + 1;
  lo = std::clamp<int64_t>(lo, 0, out);
  hi = std::clamp<int64_t>(hi, lo, out);
  return {lo, hi};
}

// Direct convolution over a 3-D geometry (see as_3d):
// y[n, m, o] = sum over c in m's group and k of (x[n, c, o*s + k*d - pb] - x_zero) * (w[m, c, k] - w_zero[m]).
// w_zero may be null (no zero point). y is fully written (no bias).
template <typename TX, typename TW, typename Acc>
void reference_conv(const ConvGeometry& g, const TX* x, const TW* w, Acc x_zero, const Acc* w_zero, Acc* y,
                    int threads) {
  const int64_t cg = g.in_channels / g.group, mg = g.out_channels / g.group;
  const int64_t in_plane = g.in_size(), out_plane = g.out_size(), ksize = g.kernel_size();
  const int64_t od = g.out[0], oh = g.out[1], ow = g.out[2];
  const int64_t id = g.in[0], ih = g.in[1], iw = g.in[2];
  parallel_for(g.batch * g.out_channels, threads, out_plane * cg * ksize, [&](int64_t lo, int64_t hi) {
    for (int64_t nm = lo; nm < hi; ++nm) {
      const int64_t n = nm / g.out_channels, m = nm % g.out_channels, grp = m / mg;
      Acc* yp = y + nm * out_plane;
      std::fill(yp, yp + out_plane, Acc{});
      const Acc wz = w_zero ? w_zero[m] : Acc{};
      for (int64_t c = 0; c < cg; ++c) {
        const TX* xp = x + (n * g.in_channels + grp * cg + c) * in_plane;
        const TW* wp = w + (m * cg + c) * ksize;
        for (int64_t kd = 0; kd < g.kernel[0]; ++kd) {
          const int64_t off_d = kd * g.dilations[0] - g.pad_begin[0];
          const auto [d_lo, d_hi] = valid_output_range(od, id, g.strides[0], off_d);
          for (int64_t kh = 0; kh < g.kernel[1]; ++kh) {
            const int64_t off_h = kh * g.dilations[1] - g.pad_begin[1];
            const auto [h_lo, h_hi] = valid_output_range(oh, ih, g.strides[1], off_h);
            for (int64_t kw = 0; kw < g.kernel[2]; ++kw) {
              const int64_t off_w = kw * g.dilations[2] - g.pad_begin[2];
              const auto [w_lo, w_hi] = valid_output_range(ow, iw, g.strides[2], off_w);
              const Acc wv = static_cast<Acc>(wp[(kd * g.kernel[1] + kh) * g.kernel[2] + kw]) - wz;
              const int64_t sw = g.strides[2];
              for (int64_t a = d_lo; a < d_hi; ++a) {
                const int64_t xd = a * g.strides[0] + off_d;
                for (int64_t b = h_lo; b < h_hi; ++b) {
                  const TX* xrow = xp + (xd * ih + b * g.strides[1] + off_h) * iw;
                  Acc* yrow = yp + (a * oh + b) * ow;
                  for (int64_t o = w_lo; o < w_hi; ++o) {
                    yrow[o] += (static_cast<Acc>(xrow[o * sw + off_w]) - x_zero) * wv;
                  }
                }
              }
            }
          }
        }
      }
    }
  });
}

}  // namespace deskml::kernels::cpu
