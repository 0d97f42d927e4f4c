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

// Fewer samples per run than the floor lose more to per-node overheads (a
// parallel region per node) than they gain in cache, and the overheads grow
// with the nodes: at batch 8 (2 threads, 32 MiB L3, CPUs sharing it, median ms
// of alternated runs, pieces of 2 against 4) ResNet-50 (59 nodes after
// optimization) ran 119.9 against 120.2 (127.0-130.8 against 131.1-137.1 on
// CPUs that share no cache), MobileNetV2 (57) 14.4-14.7 against 15.0-15.2,
// EfficientNet-B0 (118) 24.4-24.6 against 22.5-22.7. Pieces of 1 lost to
// whole runs for the last two. So plans of up to kFewNodes nodes may run in
// pieces of 2, larger ones in pieces of at least 4.
inline constexpr int64_t kMinBatchChunk = 4;
inline constexpr int64_t kMinBatchChunkFewNodes = 2;
inline constexpr int64_t kFewNodes = 80;

// Samples per run for a separable model of `nodes` nodes whose largest tensor
// per sample is `peak_bytes`, on a CPU with `cache_bytes` of last-level cache:
// a residual block keeps about three tensors of the peak size live (input,
// output and the residual), and they should take at most three quarters of
// the cache, so 3 * peak * chunk <= 3/4 * cache; at least the floor above.
// 0 when either size is unknown.
int64_t batch_chunk(int64_t peak_bytes, int64_t cache_bytes, size_t nodes);

// The last-level cache visible to this process (sysfs; a VM's, not the host
// chip's), or 0 when unknown.
int64_t last_level_cache_bytes();

}  // namespace deskml::runtime
