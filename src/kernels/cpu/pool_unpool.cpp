// MaxUnpool and MaxRoiPool.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"

namespace deskml::kernels::cpu {
namespace {

// Scatters X into a zero tensor of the shape MaxPool's input had (inferred from
// kernel, strides and pads); the optional output_shape then pads that at the
// end of each axis, as the ONNX reference does.
class MaxUnpoolKernel final : public Kernel {
 public:
  explicit MaxUnpoolKernel(const graph::Node& node)
      : kernel_(node.attr_ints("kernel_shape")), strides_(node.attr_ints("strides")), pads_(node.attr_ints("pads")) {}

  Status compute(KernelContext& ctx) override {
    const Tensor& x = ctx.required_input(0);
    const Tensor& idx = ctx.required_input(1);
    const Tensor* out_shape_t = ctx.input(2);
    if (x.rank() < 3) return ctx.error("X must have rank >= 3 (N, C, spatial...)");
    const size_t sr = static_cast<size_t>(x.rank()) - 2;
    if (kernel_.size() != sr) return ctx.error("kernel_shape must have one value per spatial axis");
    const std::vector<int64_t> strides = strides_.empty() ? std::vector<int64_t>(sr, 1) : strides_;
    const std::vector<int64_t> pads = pads_.empty() ? std::vector<int64_t>(2 * sr, 0) : pads_;
    if (strides.size() != sr || pads.size() != 2 * sr) return ctx.error("strides/pads do not match the input rank");
    if (idx.dtype() != DataType::kInt64 || idx.shape() != x.shape()) {
      return ctx.error("I must be int64 with the shape of X");
    }
    Shape inferred = {x.dim(0), x.dim(1)};
    for (size_t i = 0; i < sr; ++i) {
      for (int64_t v : {kernel_[i], strides[i], pads[i], pads[i + sr]}) {
        if (v > INT32_MAX) return ctx.error("kernel_shape, strides and pads must be plausibly small");
      }
      if (kernel_[i] < 1 || strides[i] < 1 || pads[i] < 0 || pads[i + sr] < 0) {
        return ctx.error("kernel_shape and strides must be >= 1, pads >= 0");
      }
      int64_t d = 0;
      if (__builtin_mul_overflow(std::max<int64_t>(x.shape()[i + 2] - 1, 0), strides[i], &d)) {
        return ctx.error("the unpooled size overflows");
      }
      d += kernel_[i] - pads[i] - pads[i + sr];
      if (d < 0) return ctx.error("pads are larger than the unpooled size");
      inferred.push_back(d);
    }
    Shape out_shape = inferred;
    if (out_shape_t) {
      out_shape = out_shape_t->to_int64_vector();
      if (out_shape.size() != inferred.size()) return ctx.error("output_shape must have the rank of X");
      for (size_t i = 0; i < out_shape.size(); ++i) {
        if (out_shape[i] < inferred[i] || (i < 2 && out_shape[i] != inferred[i])) {
          return ctx.error("output_shape " + shape_to_string(out_shape) + " is smaller than the unpooled shape " +
                           shape_to_string(inferred));
        }
      }
    }
    Tensor& y = ctx.allocate_output(0, x.dtype(), out_shape);
    std::memset(y.raw_data(), 0, y.nbytes());
    const int64_t inferred_total = shape_numel(inferred);
    const int64_t* ip = idx.data<int64_t>();
    // Row-major strides of both shapes, to move an index from one to the other.
    const auto in_strides = shape_strides(inferred), out_strides = shape_strides(out_shape);
    return dispatch_all(x.dtype(), "MaxUnpool", [&](auto tag) -> Status {
      using T = decltype(tag);
      if constexpr (std::is_same_v<T, std::string>) {
        return ctx.error("string tensors are not supported");
      } else {
        const T* xp = x.data<T>();
        T* yp = y.data<T>();
        for (int64_t i = 0; i < x.numel(); ++i) {
          int64_t flat = ip[i];
          if (flat < 0 || flat >= inferred_total) {
            return ctx.error("index " + std::to_string(flat) + " is out of range for the unpooled shape " +
                             shape_to_string(inferred));
          }
          int64_t target = 0;
          for (size_t d = 0; d < inferred.size(); ++d) {
            target += flat / in_strides[d] * out_strides[d];
            flat %= in_strides[d];
          }
          yp[target] = xp[i];
        }
        return Status::Ok();
      }
    });
  }

 private:
  std::vector<int64_t> kernel_, strides_, pads_;
};

class MaxRoiPoolKernel final : public Kernel {
 public:
  explicit MaxRoiPoolKernel(const graph::Node& node)
      : pooled_(node.attr_ints("pooled_shape")), spatial_scale_(node.attr_float("spatial_scale", 1.0f)) {}

  Status compute(KernelContext& ctx) override {
    const Tensor& x = ctx.required_input(0);
    const Tensor& rois = ctx.required_input(1);
    if (x.rank() != 4) return ctx.error("X must be 4-D (N, C, H, W)");
    if (pooled_.size() != 2 || pooled_[0] < 1 || pooled_[1] < 1) return ctx.error("pooled_shape must be 2 values >= 1");
    if (rois.dtype() != x.dtype() || rois.rank() != 2 || rois.dim(1) != 5) {
      return ctx.error("rois must be [num_rois, 5] of X's type");
    }
    const Shape out_shape = {rois.dim(0), x.dim(1), pooled_[0], pooled_[1]};
    Tensor& y = ctx.allocate_output(0, x.dtype(), out_shape);
    switch (x.dtype()) {
      case DataType::kFloat32:
        return run<float>(ctx, x, rois, y);
      case DataType::kFloat64:
        return run<double>(ctx, x, rois, y);
      case DataType::kFloat16:
        return run<Float16>(ctx, x, rois, y);
      case DataType::kBFloat16:
        return run<BFloat16>(ctx, x, rois, y);
      default:
        return unsupported(ctx.node().label() + ": unsupported type " + std::string(dtype_name(x.dtype())));
    }
  }

 private:
  template <typename T>
  Status run(const KernelContext& ctx, const Tensor& x, const Tensor& rois, Tensor& y) const {
    using C = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const int64_t n = x.dim(0), channels = x.dim(1), h = x.dim(2), w = x.dim(3);
    const int64_t ph = pooled_[0], pw = pooled_[1];
    const T* xp = x.data<T>();
    const T* rp = rois.data<T>();
    T* yp = y.data<T>();
    for (int64_t r = 0; r < rois.dim(0); ++r) {
      const T* roi = rp + r * 5;
      for (int i = 1; i < 5; ++i) {
        const C v = static_cast<C>(roi[i]) * static_cast<C>(spatial_scale_);
        if (!(std::abs(v) < C(1e15))) return ctx.error("roi coordinates must be finite");
      }
      const C batch = static_cast<C>(roi[0]);
      if (!(batch >= 0 && batch < static_cast<C>(n))) return ctx.error("roi batch index out of range");
      const int64_t b = static_cast<int64_t>(batch);
      const C scale = static_cast<C>(spatial_scale_);
      const int64_t x1 = static_cast<int64_t>(std::round(static_cast<C>(roi[1]) * scale));
      const int64_t y1 = static_cast<int64_t>(std::round(static_cast<C>(roi[2]) * scale));
      const int64_t x2 = static_cast<int64_t>(std::round(static_cast<C>(roi[3]) * scale));
      const int64_t y2 = static_cast<int64_t>(std::round(static_cast<C>(roi[4]) * scale));
      const C bin_h = static_cast<C>(std::max<int64_t>(y2 - y1 + 1, 1)) / static_cast<C>(ph);
      const C bin_w = static_cast<C>(std::max<int64_t>(x2 - x1 + 1, 1)) / static_cast<C>(pw);
      parallel_for(channels, ctx.threads(), ph * pw * 16, [&](int64_t lo, int64_t hi) {
        for (int64_t c = lo; c < hi; ++c) {
          const T* plane = xp + (b * channels + c) * h * w;
          T* out = yp + (r * channels + c) * ph * pw;
          for (int64_t i = 0; i < ph; ++i) {
            const int64_t hs = std::clamp<int64_t>(static_cast<int64_t>(std::floor(i * bin_h)) + y1, 0, h);
            const int64_t he = std::clamp<int64_t>(static_cast<int64_t>(std::ceil((i + 1) * bin_h)) + y1, 0, h);
            for (int64_t j = 0; j < pw; ++j) {
              const int64_t ws = std::clamp<int64_t>(static_cast<int64_t>(std::floor(j * bin_w)) + x1, 0, w);
              const int64_t we = std::clamp<int64_t>(static_cast<int64_t>(std::ceil((j + 1) * bin_w)) + x1, 0, w);
              C best = he <= hs || we <= ws ? C(0) : std::numeric_limits<C>::lowest();
              for (int64_t yy = hs; yy < he; ++yy) {
                for (int64_t xx = ws; xx < we; ++xx) best = std::max(best, static_cast<C>(plane[yy * w + xx]));
              }
              out[i * pw + j] = static_cast<T>(best);
            }
          }
        }
      });
    }
    return Status::Ok();
  }

  std::vector<int64_t> pooled_;
  float spatial_scale_;
};

}  // namespace

void register_pool_extra_kernels(KernelRegistry& r) {
  KernelDef def;
  def.op = "MaxUnpool";
  def.since = 9;
  def.types = {DataType::kFloat32, DataType::kFloat64, DataType::kFloat16, DataType::kBFloat16};
  def.factory = [](const graph::Node& node) { return std::make_unique<MaxUnpoolKernel>(node); };
  r.add(def);
  def.op = "MaxRoiPool";
  def.since = 1;
  def.factory = [](const graph::Node& node) { return std::make_unique<MaxRoiPoolKernel>(node); };
  r.add(def);
}

}  // namespace deskml::kernels::cpu
