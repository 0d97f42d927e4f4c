// normalize: (x * scale - mean[c]) / std[c] per channel, to float32.
#include <optional>

#include "serving/steps/builtin.hpp"

namespace deskml::serving::steps {
namespace {

class Normalize final : public UnaryStep {
 public:
  Normalize(std::optional<double> scale, std::vector<double> mean, std::vector<double> std, int64_t axis)
      : UnaryStep("normalize"), scale_(scale), mean_(std::move(mean)), std_(std::move(std)), axis_(axis) {}

 protected:
  Result<Tensor> apply(const Tensor& x) const override {
    if (x.dtype() != DataType::kUInt8 && x.dtype() != DataType::kFloat32) {
      return bad_input("input must be uint8 or float, got " + x.description());
    }
    if (x.rank() == 0) return bad_input("input must have a channel axis, got a scalar");
    DESKML_ASSIGN_OR_RETURN(int64_t axis, resolve_axis(kind(), axis_, x.rank()));
    const int64_t channels = x.dim(axis);
    for (const auto* v : {&mean_, &std_}) {
      if (v->size() != 1 && static_cast<int64_t>(v->size()) != channels) {
        return bad_input(std::string(v == &mean_ ? "mean" : "std") + " has " + std::to_string(v->size()) +
                         " values but axis " + std::to_string(axis_) + " of " + x.description() + " has " +
                         std::to_string(channels) + " channels");
      }
    }
    const double scale = scale_.value_or(x.dtype() == DataType::kUInt8 ? 1.0 / 255.0 : 1.0);
    std::vector<float> mean(static_cast<size_t>(channels));
    std::vector<float> inv_std(static_cast<size_t>(channels));
    for (int64_t c = 0; c < channels; ++c) {
      mean[c] = static_cast<float>(mean_.size() == 1 ? mean_[0] : mean_[c]);
      inv_std[c] = static_cast<float>(1.0 / (std_.size() == 1 ? std_[0] : std_[c]));
    }
    int64_t inner = 1;
    for (int64_t d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
    int64_t outer = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= x.dim(d);
    Tensor out(DataType::kFloat32, x.shape());
    float* o = out.data<float>();
    const float s = static_cast<float>(scale);
    auto run = [&](const auto* in) {
      for (int64_t a = 0; a < outer; ++a) {
        for (int64_t c = 0; c < channels; ++c) {
          const int64_t base = (a * channels + c) * inner;
          for (int64_t i = 0; i < inner; ++i)
            o[base + i] = (static_cast<float>(in[base + i]) * s - mean[c]) * inv_std[c];
        }
      }
    };
    if (x.dtype() == DataType::kUInt8) {
      run(x.data<uint8_t>());
    } else {
      run(x.data<float>());
    }
    return out;
  }

 private:
  std::optional<double> scale_;
  std::vector<double> mean_;
  std::vector<double> std_;
  int64_t axis_;
};

}  // namespace

Result<StepPtr> make_normalize(const Params& p) {
  DESKML_RETURN_IF_ERROR(p.check_known({"scale", "mean", "std", "axis"}));
  std::optional<double> scale;
  if (p.has("scale")) {
    DESKML_ASSIGN_OR_RETURN(scale, p.get_number("scale"));
  }
  std::vector<double> mean = {0.0};
  std::vector<double> std = {1.0};
  if (p.has("mean")) {
    DESKML_ASSIGN_OR_RETURN(mean, p.get_number_list("mean"));
    if (mean.empty()) return p.error("mean", "must not be empty");
  }
  if (p.has("std")) {
    DESKML_ASSIGN_OR_RETURN(std, p.get_number_list("std"));
    if (std.empty()) return p.error("std", "must not be empty");
    for (double v : std) {
      if (!(v > 0.0)) return p.error("std", "values must be positive");
    }
  }
  DESKML_ASSIGN_OR_RETURN(int64_t axis, p.get_int("axis", -1));
  return StepPtr(std::make_unique<Normalize>(scale, std::move(mean), std::move(std), axis));
}

}  // namespace deskml::serving::steps
