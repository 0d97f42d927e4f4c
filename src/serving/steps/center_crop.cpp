// center_crop: the central h x w window of HWC / NHWC images, any numeric dtype.
//
// Offsets follow torchvision's center_crop: top = round((H - h) / 2) with Python's
// round-half-to-even; a crop larger than the image pads with zeros, (h - H) // 2 above.
#include <algorithm>
#include <cstring>

#include "serving/steps/builtin.hpp"

namespace deskml::serving::steps {
namespace {

// Offset of the crop window in the image along one axis (negative when it pads).
int64_t crop_offset(int64_t image, int64_t crop) {
  const int64_t d = image - crop;
  if (d < 0) return -((-d) / 2);
  const int64_t q = d / 2;
  if (d % 2 == 0) return q;
  return q % 2 == 0 ? q : q + 1;  // q + 0.5 rounds to even
}

class CenterCrop final : public UnaryStep {
 public:
  CenterCrop(int64_t h, int64_t w) : UnaryStep("center_crop"), h_(h), w_(w) {}

 protected:
  Result<Tensor> apply(const Tensor& x) const override {
    if (x.dtype() == DataType::kString || x.dtype() == DataType::kUndefined) {
      return bad_input("input must be numeric, got " + x.description());
    }
    DESKML_ASSIGN_OR_RETURN(ImageGeometry g, image_geometry(kind(), x));
    if (g.h == h_ && g.w == w_) return x;
    Shape shape = {h_, w_, g.c};
    if (g.batched) shape.insert(shape.begin(), g.n);
    DESKML_RETURN_IF_ERROR(check_output_size(kind(), shape, x.dtype()));
    Tensor out = Tensor::zeros(x.dtype(), std::move(shape));
    const int64_t top = crop_offset(g.h, h_);
    const int64_t left = crop_offset(g.w, w_);
    const size_t pixel = static_cast<size_t>(g.c) * dtype_size(x.dtype());
    const int64_t x_begin = std::max<int64_t>(0, -left);
    const int64_t x_end = std::min<int64_t>(w_, g.w - left);
    const auto* in = static_cast<const unsigned char*>(x.raw_data());
    auto* o = static_cast<unsigned char*>(out.raw_data());
    for (int64_t n = 0; n < g.n; ++n) {
      for (int64_t y = 0; y < h_; ++y) {
        const int64_t iy = y + top;
        if (iy < 0 || iy >= g.h || x_end <= x_begin) continue;
        const unsigned char* src = in + static_cast<size_t>((n * g.h + iy) * g.w + x_begin + left) * pixel;
        unsigned char* dst = o + static_cast<size_t>((n * h_ + y) * w_ + x_begin) * pixel;
        std::memcpy(dst, src, static_cast<size_t>(x_end - x_begin) * pixel);
      }
    }
    return out;
  }

 private:
  int64_t h_;
  int64_t w_;
};

}  // namespace

Result<StepPtr> make_center_crop(const Params& p) {
  DESKML_RETURN_IF_ERROR(p.check_known({"size"}));
  DESKML_ASSIGN_OR_RETURN(std::vector<int64_t> size, p.get_int_list("size"));
  if (size.size() != 2) return p.error("size", "must be [height, width]");
  for (int64_t v : size) {
    if (v < 1 || v > kMaxImageSide) return p.error("size", "must be between 1 and " + std::to_string(kMaxImageSide));
  }
  return StepPtr(std::make_unique<CenterCrop>(size[0], size[1]));
}

}  // namespace deskml::serving::steps
