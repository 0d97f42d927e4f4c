// A direct NHWC convolution for layers whose weights outweigh their pixels:
// ResNet-50's 7x7 layers at batch 1 read 2-9 MB of weights for 49 output
// pixels, every run, from memory, and oneDNN's brgemm kernels wait on those
// bytes (its 512-channel 3x3 at 7x7 runs at about 75% of the FMA peak). Here
// the threads split the output channels, so that each streams its own part of
// the weights once, in the order it uses them, prefetched 16 KB ahead; the
// activations (a few hundred KB, in cache) are read through a table of input
// pixel pointers, so strides and padding cost nothing.
//
// ConvKernel takes it where Winograd's algorithm does not pay and suits()
// holds. Measured on ResNet-50 (2 threads, AVX-512 Zen 5), docs/OPTIMIZER.md.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include "core/tensor.hpp"
#include "kernels/cpu/conv_geometry.hpp"
#include "kernels/cpu/post_ops.hpp"

namespace deskml::kernels::cpu {

class StreamConv {
 public:
  // Output channels per packed panel: two AVX-512 vectors.
  static constexpr int64_t kPanel = 32;

  // Whether the problem is one this kernel takes and runs faster than oneDNN's
  // direct convolution: 2-D, one group, no dilation, on an AVX-512 CPU, with
  // - at most kMaxPixels output pixels (batch x height x width: ResNet-50's
  //   7x7 maps at batch 1 and in the tiles of 4 images a batch of 8 runs in);
  //   above, oneDNN is as fast or faster;
  // - at least kMinWeightBytes of weights, and kMinWeightBytesPerPixel per
  //   output pixel: where the arithmetic outweighs the weights' bytes oneDNN
  //   is as fast (ResNet-50's 1024->256 1x1 at 14x14, 5 KB per pixel: the same)
  //   or faster (SqueezeNet's 512->1000 classifier at 13x13, 12 KB per pixel,
  //   weights in cache: 0.34 ms against 0.35-0.38).
  static bool suits(const ConvGeometry& g);
  static constexpr int64_t kMaxPixels = 196;
  static constexpr int64_t kMinWeightBytes = int64_t{1} << 20;
  static constexpr int64_t kMinWeightBytesPerPixel = int64_t{16} << 10;

  // y = act(conv(x, w) + b), or with `has_sum` y = act(pre(conv(x, w) + b) + y)
  // (y holds the residual on entry), as oneDNN's post-ops compute them.
  // x and y are NHWC; w is OIHW, packed on first use and kept while it is the
  // same tensor. Safe to call from several threads at once.
  void run(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor* b, bool has_sum,
           const FusedActivation& pre, const FusedActivation& act, Tensor& y, int threads);

 private:
  // Weights as [ceil(out / kPanel)][kernel taps][in][kPanel] (zeros past `out`), on huge pages.
  std::shared_ptr<const float> packed(const ConvGeometry& g, const Tensor& w, int threads);

  std::mutex mutex_;
  Tensor source_;  // the weights packed_ holds (kept, so that their address stays theirs)
  std::shared_ptr<const float> packed_;
};

}  // namespace deskml::kernels::cpu
