// Batch tiling: a model whose ops treat the samples of a batch independently
// (a CNN classifier) can run a large batch as several smaller ones and
// concatenate the results. Each smaller run keeps its activations in the
// last-level cache. ResNet-50 at batch 8 on a 32 MiB L3 took 130.8-147.2 ms in
// runs of 4 against 141.8-152.7 ms whole (four alternated rounds; docs/KERNELS.md).
#pragma once

#include <cstdint>

#include "graph/graph.hpp"

namespace deskml::runtime {

// True when every sample along axis 0 of the graph's tensor inputs flows to
// axis 0 of every output without meeting another sample. Conservative: an op
// outside a short list of per-sample ops (convolutions, pools, activations,
// elementwise ops with constants that do not span the batch, products with
// constant weights, Flatten/Softmax/Concat/Transpose/Reshape that keep axis 0),
// or one used in a way that could mix samples, makes the answer false.
bool batch_separable(const graph::Graph& g);

// Fewer samples per run than this lose more to per-node overheads (a parallel
// region per node, hundreds of nodes) than they gain in cache: at batch 8,
// EfficientNet-B0 and MobileNetV2 ran slower in pieces of 1 than whole, and
// pieces of 4 were as fast as pieces of 2 or faster for all three CNNs measured.
inline constexpr int64_t kMinBatchChunk = 4;

// Samples per run for a separable model whose largest tensor per sample is
// `peak_bytes`, on a CPU with `cache_bytes` of last-level cache: a residual
// block keeps about three tensors of the peak size live (input, output and the
// residual), and they should take at most three quarters of the cache, so
// 3 * peak * chunk <= 3/4 * cache; at least kMinBatchChunk. 0 when either size is unknown.
int64_t batch_chunk(int64_t peak_bytes, int64_t cache_bytes);

// The last-level cache visible to this process (sysfs; a VM's, not the host
// chip's), or 0 when unknown.
int64_t last_level_cache_bytes();

}  // namespace deskml::runtime
