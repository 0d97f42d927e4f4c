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
  // direct convolution: 2-D, one group, no dilation, output channels a
  // multiple of kPanel, at most kMaxPixels output pixels (batch x height x
  // width: ResNet-50's 14x14 maps at batch 1 and its 7x7 maps in the batch
  // tiles of 4 that a batch of 8 runs in) and at least kMinWeightBytes of
  // weights, on an AVX-512 CPU. Below 1 MiB the weights stay in cache and
  // oneDNN is as fast; above 196 pixels it is faster.
  static bool suits(const ConvGeometry& g);
  static constexpr int64_t kMaxPixels = 196;
  static constexpr int64_t kMinWeightBytes = int64_t{1} << 20;

  // y = act(conv(x, w) + b), or with `has_sum` y = act(pre(conv(x, w) + b) + y)
  // (y holds the residual on entry), as oneDNN's post-ops compute them.
  // x and y are NHWC; w is OIHW, packed on first use and kept while it is the
  // same tensor. Safe to call from several threads at once.
  void run(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor* b, bool has_sum,
           const FusedActivation& pre, const FusedActivation& act, Tensor& y, int threads);

 private:
  // Weights as [out / kPanel][kernel taps][in][kPanel], on huge pages.
  std::shared_ptr<const float> packed(const ConvGeometry& g, const Tensor& w, int threads);

  std::mutex mutex_;
  Tensor source_;  // the weights packed_ holds (kept, so that their address stays theirs)
  std::shared_ptr<const float> packed_;
};

}  // namespace deskml::kernels::cpu
