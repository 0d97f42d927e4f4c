#include "kernels/cpu/conv_pool.hpp"

#include <algorithm>

namespace deskml::kernels::cpu {

namespace {

ConvPoolBand make_band(const ConvGeometry& conv, const PoolGeometry& pool, int64_t first, int64_t last) {
  ConvPoolBand b;
  b.pool_begin = first;
  b.pool_end = last;
  const int64_t ps = pool.strides[0], pp = pool.pad_begin[0], pk = pool.kernel[0];
  b.conv_begin = std::clamp<int64_t>(first * ps - pp, 0, conv.out[0]);
  b.conv_end = std::clamp<int64_t>((last - 1) * ps - pp + pk, b.conv_begin, conv.out[0]);
  const int64_t cs = conv.strides[0], cp = conv.pad_begin[0];
  const int64_t extent = (conv.kernel[0] - 1) * conv.dilations[0] + 1;
  const int64_t lo = b.conv_begin * cs - cp, hi = (b.conv_end - 1) * cs - cp + extent;
  b.in_begin = std::clamp<int64_t>(lo, 0, conv.in[0]);
  b.in_end = std::clamp<int64_t>(hi, b.in_begin, conv.in[0]);
  b.pad_top = b.in_begin - lo;
  b.pad_bottom = hi - b.in_end;
  return b;
}

}  // namespace

std::vector<std::vector<ConvPoolBand>> conv_pool_bands(const ConvGeometry& conv, const PoolGeometry& pool, int threads,
                                                       int64_t max_conv_rows) {
  const int64_t rows = pool.out[0];
  const int64_t runs = std::clamp<int64_t>(threads, 1, std::max<int64_t>(rows, 1));
  // Pool rows per band: k rows read (k - 1) * stride + kernel convolved rows.
  const int64_t per_band =
      std::max<int64_t>(1, (max_conv_rows - pool.kernel[0]) / std::max<int64_t>(pool.strides[0], 1) + 1);
  std::vector<std::vector<ConvPoolBand>> out(static_cast<size_t>(runs));
  for (int64_t t = 0; t < runs; ++t) {
    const int64_t begin = rows * t / runs, end = rows * (t + 1) / runs;
    // Bands of equal size, so that most share one convolution primitive.
    const int64_t count = (end - begin + per_band - 1) / per_band;
    for (int64_t i = 0; i < count; ++i) {
      const int64_t first = begin + (end - begin) * i / count, last = begin + (end - begin) * (i + 1) / count;
      out[static_cast<size_t>(t)].push_back(make_band(conv, pool, first, last));
    }
  }
  return out;
}

}  // namespace deskml::kernels::cpu
