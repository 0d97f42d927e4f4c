// How deskml.FusedConvMaxPool cuts its work: a convolution followed by a max
// pool, run band by band of rows. Each thread takes a contiguous run of the
// pool's output rows and, band after band, convolves just the rows those read
// into a buffer that stays in its cache and pools them from there. The
// convolution's whole output (SqueezeNet's stem: 3.2 MB at 224x224) is never
// written to memory and read back, and no thread reads rows another wrote:
// where the two CPUs share no cache that hand-off is what the pair of layers
// cost most (docs/OPTIMIZER.md, "Thread hand-offs").
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/conv_geometry.hpp"
#include "kernels/cpu/pool_geometry.hpp"

namespace deskml::kernels::cpu {

struct ConvPoolBand {
  int64_t pool_begin = 0, pool_end = 0;  // the pool's output rows
  int64_t conv_begin = 0, conv_end = 0;  // the rows of the convolution's output their windows cover
  int64_t in_begin = 0, in_end = 0;      // the rows of the convolution's input those read, within the input
  int64_t pad_top = 0, pad_bottom = 0;   // the padding rows the band's convolution adds above and below them

  bool operator==(const ConvPoolBand&) const = default;
};

// The bands of each of up to `threads` threads: the pool's output rows split
// into contiguous runs (fewer when there are fewer rows), each cut into bands
// of as many pool rows as keep the convolved rows at or under `max_conv_rows`
// (one pool row at least). Bands next to each other may share convolved rows;
// those are computed by both. 2-D problems; the pool's windows undilated.
std::vector<std::vector<ConvPoolBand>> conv_pool_bands(const ConvGeometry& conv, const PoolGeometry& pool, int threads,
                                                       int64_t max_conv_rows);

}  // namespace deskml::kernels::cpu
