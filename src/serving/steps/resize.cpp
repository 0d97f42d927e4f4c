// resize: bilinear resampling of HWC / NHWC images, uint8 or float32.
//
// Half-pixel centres without antialiasing, as torch.nn.functional.interpolate(mode="bilinear",
// align_corners=False) and torchvision's resize(antialias=False): output pixel d samples the
// input at (d + 0.5) * in / out - 0.5, clamped at 0. uint8 results are rounded to nearest.
#include <algorithm>
#include <cmath>
#include <optional>

#include "serving/steps/builtin.hpp"

namespace deskml::serving::steps {
namespace {

struct Tap {
  int64_t i0 = 0;
  int64_t i1 = 0;
  float w1 = 0.0f;  // weight of i1; i0 gets 1 - w1
};

std::vector<Tap> taps(int64_t in, int64_t out) {
  std::vector<Tap> t(static_cast<size_t>(out));
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int64_t d = 0; d < out; ++d) {
    float src = scale * (static_cast<float>(d) + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
    int64_t i0 = std::min(static_cast<int64_t>(src), in - 1);
    t[d] = {i0, std::min(i0 + 1, in - 1), src - static_cast<float>(i0)};
  }
  return t;
}

template <typename T>
T store(float v) {
  if constexpr (std::is_same_v<T, uint8_t>) {
    return static_cast<uint8_t>(std::clamp(std::nearbyint(v), 0.0f, 255.0f));
  } else {
    return v;
  }
}

template <typename T>
void resample(const T* in, T* out, const ImageGeometry& g, int64_t oh, int64_t ow) {
  const std::vector<Tap> ty = taps(g.h, oh);
  const std::vector<Tap> tx = taps(g.w, ow);
  const int64_t c = g.c;
  for (int64_t n = 0; n < g.n; ++n) {
    const T* image = in + n * g.h * g.w * c;
    for (int64_t y = 0; y < oh; ++y) {
      const T* r0 = image + ty[y].i0 * g.w * c;
      const T* r1 = image + ty[y].i1 * g.w * c;
      const float wy1 = ty[y].w1;
      const float wy0 = 1.0f - wy1;
      T* o = out + ((n * oh + y) * ow) * c;
      for (int64_t x = 0; x < ow; ++x) {
        const int64_t a = tx[x].i0 * c;
        const int64_t b = tx[x].i1 * c;
        const float wx1 = tx[x].w1;
        const float wx0 = 1.0f - wx1;
        for (int64_t k = 0; k < c; ++k) {
          const float top = wx0 * static_cast<float>(r0[a + k]) + wx1 * static_cast<float>(r0[b + k]);
          const float bottom = wx0 * static_cast<float>(r1[a + k]) + wx1 * static_cast<float>(r1[b + k]);
          o[x * c + k] = store<T>(wy0 * top + wy1 * bottom);
        }
      }
    }
  }
}

class Resize final : public UnaryStep {
 public:
  Resize(int64_t h, int64_t w, int64_t shorter_side) : UnaryStep("resize"), h_(h), w_(w), shorter_(shorter_side) {}

 protected:
  Result<Tensor> apply(const Tensor& x) const override {
    if (x.dtype() != DataType::kUInt8 && x.dtype() != DataType::kFloat32) {
      return bad_input("input must be uint8 or float, got " + x.description());
    }
    DESKML_ASSIGN_OR_RETURN(ImageGeometry g, image_geometry(kind(), x));
    int64_t oh = h_;
    int64_t ow = w_;
    if (shorter_ > 0) {
      // torchvision's rule: the longer side is scaled and truncated.
      if (g.h <= g.w) {
        oh = shorter_;
        ow = shorter_ * g.w / g.h;
      } else {
        ow = shorter_;
        oh = shorter_ * g.h / g.w;
      }
      if (oh < 1 || ow < 1 || oh > kMaxImageSide || ow > kMaxImageSide) {
        return bad_input("resizing " + x.description() + " to a shorter side of " + std::to_string(shorter_) +
                         " gives " + std::to_string(oh) + "x" + std::to_string(ow) + ", outside 1.." +
                         std::to_string(kMaxImageSide));
      }
    }
    if (oh == g.h && ow == g.w) return x;
    Shape shape = {oh, ow, g.c};
    if (g.batched) shape.insert(shape.begin(), g.n);
    DESKML_RETURN_IF_ERROR(check_output_size(kind(), shape, x.dtype()));
    Tensor out(x.dtype(), std::move(shape));
    if (x.dtype() == DataType::kUInt8) {
      resample(x.data<uint8_t>(), out.data<uint8_t>(), g, oh, ow);
    } else {
      resample(x.data<float>(), out.data<float>(), g, oh, ow);
    }
    return out;
  }

 private:
  int64_t h_;
  int64_t w_;
  int64_t shorter_;
};

}  // namespace

Result<StepPtr> make_resize(const Params& p) {
  DESKML_RETURN_IF_ERROR(p.check_known({"size", "shorter_side"}));
  if (p.has("size") == p.has("shorter_side")) {
    return invalid_argument("resize: give exactly one of 'size = [h, w]' and 'shorter_side = n'");
  }
  const std::string range = "must be between 1 and " + std::to_string(kMaxImageSide);
  if (p.has("shorter_side")) {
    DESKML_ASSIGN_OR_RETURN(int64_t s, p.get_int("shorter_side"));
    if (s < 1 || s > kMaxImageSide) return p.error("shorter_side", range);
    return StepPtr(std::make_unique<Resize>(0, 0, s));
  }
  DESKML_ASSIGN_OR_RETURN(std::vector<int64_t> size, p.get_int_list("size"));
  if (size.size() != 2) return p.error("size", "must be [height, width]");
  for (int64_t v : size) {
    if (v < 1 || v > kMaxImageSide) return p.error("size", range);
  }
  return StepPtr(std::make_unique<Resize>(size[0], size[1], 0));
}

}  // namespace deskml::serving::steps
