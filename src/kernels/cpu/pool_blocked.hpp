// Max pooling of nChw16c activations by output rows: the loop behind
// deskml.NhwcMaxPool with `blocked` = 16, and the pool half of
// deskml.FusedConvMaxPool, which runs it on each band of rows it convolves.
#pragma once

#include <cstdint>

#include "kernels/cpu/pool_geometry.hpp"

namespace deskml::kernels::cpu {

// x holds n images of ih x iw pixels of 16 floats (the N x C/16 planes of an
// nChw16c tensor), y n images of g.out[0] x g.out[1]. Computes y's items
// [lo, hi), item = output row * n + image, each the maximum over the rows of
// x its window covers: window row r starts at x's row r * g.strides[0] -
// g.pad_begin[0], so a band of rows starting at row s of a larger input is
// pooled with pad_begin[0] raised by s. Windows are not dilated. Portable, and
// on AVX-512 CPUs vectorised: first the maximum down each input column the
// row's windows cover, then across each window's columns.
void blocked_max_rows(const PoolGeometry& g, int64_t n, int64_t ih, int64_t iw, const float* x, float* y, int64_t lo,
                      int64_t hi);

// All of y's items, the threads splitting them into contiguous runs: whole
// output rows per thread (the rows the next convolution most likely reads on
// that thread), or parts of one row's images when there are fewer rows than
// threads.
void blocked_max_pool(const PoolGeometry& g, int64_t n, int64_t ih, int64_t iw, const float* x, float* y, int threads);

}  // namespace deskml::kernels::cpu
