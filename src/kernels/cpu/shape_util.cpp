#include "kernels/cpu/shape_util.hpp"

namespace deskml::kernels::cpu {
namespace {

constexpr int64_t kTile = 32;
constexpr size_t kMaxCopyRank = 64;

// Transposed copy where the output's inner dim reads with stride `istride` and
// dim `j` reads with stride 1: processed in kTile x kTile tiles so both sides
// stay in cache.
template <typename S>
void tiled_transpose(S* dst, const S* src, const Shape& s, const std::vector<int64_t>& st, size_t j, int threads) {
  const size_t r = s.size();
  const int64_t inner = s[r - 1];
  const int64_t istride = st[r - 1];
  const int64_t jn = s[j];
  std::vector<int64_t> dst_st(r, 1);
  for (size_t d = r - 1; d-- > 0;) dst_st[d] = dst_st[d + 1] * s[d + 1];
  const int64_t djs = dst_st[j];
  // The remaining (outer) dims.
  std::vector<int64_t> os, osrc, odst;
  for (size_t d = 0; d + 1 < r; ++d) {
    if (d == j) continue;
    os.push_back(s[d]);
    osrc.push_back(st[d]);
    odst.push_back(dst_st[d]);
  }
  int64_t outer = 1;
  for (int64_t v : os) outer *= v;
  const int64_t jtiles = (jn + kTile - 1) / kTile;
  parallel_for(outer * jtiles, threads, kTile * inner, [&](int64_t lo, int64_t hi) {
    for (int64_t u = lo; u < hi; ++u) {
      const int64_t jt = u % jtiles;
      int64_t o = u / jtiles;
      int64_t soff = 0, doff = 0;
      for (size_t d = os.size(); d-- > 0;) {
        const int64_t i = o % os[d];
        o /= os[d];
        soff += i * osrc[d];
        doff += i * odst[d];
      }
      const int64_t jb = jt * kTile, je = std::min(jn, jb + kTile);
      for (int64_t ib = 0; ib < inner; ib += kTile) {
        const int64_t ie = std::min(inner, ib + kTile);
        for (int64_t jj = jb; jj < je; ++jj) {
          S* out = dst + doff + jj * djs;
          const S* in = src + soff + jj;
          for (int64_t ii = ib; ii < ie; ++ii) out[ii] = in[ii * istride];
        }
      }
    }
  });
}

template <typename S>
void strided_copy_impl(S* dst, const S* src, const Shape& out_shape, const std::vector<int64_t>& src_strides,
                       int threads) {
  // Drop unit dims, merge dims whose source is contiguous across them.
  Shape s;
  std::vector<int64_t> st;
  for (size_t d = 0; d < out_shape.size(); ++d) {
    if (out_shape[d] == 0) return;
    if (out_shape[d] == 1) continue;
    if (!s.empty() && st.back() == src_strides[d] * out_shape[d]) {
      s.back() *= out_shape[d];
      st.back() = src_strides[d];
    } else {
      s.push_back(out_shape[d]);
      st.push_back(src_strides[d]);
    }
  }
  if (s.empty()) {
    dst[0] = src[0];
    return;
  }
  const size_t r = s.size();
  const int64_t inner = s[r - 1];
  const int64_t istride = st[r - 1];
  if (istride != 1 && istride != 0 && r >= 2) {
    for (size_t j = 0; j + 1 < r; ++j) {
      if (st[j] == 1) {
        tiled_transpose(dst, src, s, st, j, threads);
        return;
      }
    }
  }
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < r; ++d) rows *= s[d];
  if (r > kMaxCopyRank) throw_status(unsupported("strided copy of rank " + std::to_string(r) + " is not supported"));
  parallel_for(rows, threads, inner, [&](int64_t lo, int64_t hi) {
    int64_t idx[kMaxCopyRank] = {};
    int64_t off = 0;
    int64_t rem = lo;
    for (size_t d = r - 1; d-- > 0;) {
      idx[d] = rem % s[d];
      rem /= s[d];
      off += idx[d] * st[d];
    }
    S* out = dst + lo * inner;
    for (int64_t row = lo; row < hi; ++row) {
      const S* in = src + off;
      if (istride == 1) {
        std::copy_n(in, inner, out);
      } else if (istride == 0) {
        std::fill_n(out, inner, *in);
      } else {
        for (int64_t k = 0; k < inner; ++k) out[k] = in[k * istride];
      }
      out += inner;
      for (size_t d = r - 1; d-- > 0;) {
        off += st[d];
        if (++idx[d] < s[d]) break;
        off -= st[d] * s[d];
        idx[d] = 0;
      }
    }
  });
}

}  // namespace

void strided_copy(DataType dtype, void* dst, const void* src, const Shape& out_shape,
                  const std::vector<int64_t>& src_strides, int threads) {
  dispatch_storage(dtype, [&](auto tag) {
    using S = decltype(tag);
    strided_copy_impl(static_cast<S*>(dst), static_cast<const S*>(src), out_shape, src_strides, threads);
  });
}

void copy_all(const Tensor& src, Tensor& dst, int threads) {
  dispatch_storage(src.dtype(), [&](auto tag) {
    using S = decltype(tag);
    const S* in = storage_ptr<S>(src);
    S* out = storage_ptr<S>(dst);
    parallel_for(src.numel(), threads, 1, [&](int64_t lo, int64_t hi) { std::copy(in + lo, in + hi, out + lo); });
  });
}

bool ints_from_attr_or_input(const KernelContext& ctx, const std::string& attr, size_t input, bool from_input,
                             std::vector<int64_t>& out) {
  if (from_input) {
    const Tensor* t = ctx.input(input);
    if (t == nullptr) return false;
    if (!dtype_is_integer(t->dtype())) {
      throw_status(ctx.error("input " + std::to_string(input) + " (" + attr + ") must be an integer tensor, got " +
                             std::string(dtype_name(t->dtype()))));
    }
    if (t->rank() > 1) throw_status(ctx.error("input " + std::to_string(input) + " (" + attr + ") must be 1-D"));
    out = t->to_int64_vector();
    return true;
  }
  if (!ctx.node().has_attr(attr)) return false;
  out = ctx.node().attr_ints(attr);
  return true;
}

int64_t checked_axis(const KernelContext& ctx, int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= std::max<int64_t>(rank, 1) || (rank == 0 && axis != 0)) {
    throw_status(ctx.error("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank)));
  }
  return axis < 0 ? axis + rank : axis;
}

int64_t scalar_int(const KernelContext& ctx, const Tensor& t, const char* what) {
  if (t.numel() != 1) {
    throw_status(ctx.error(std::string(what) + " must hold exactly one value, got shape " +
                           shape_to_string(t.shape())));
  }
  if (t.dtype() == DataType::kString) throw_status(ctx.error(std::string(what) + " must be numeric"));
  return t.int_at(0);
}

}  // namespace deskml::kernels::cpu
