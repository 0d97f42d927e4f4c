// threshold: x > value -> bool "mask" (NaN gives false).
#include "serving/steps/builtin.hpp"

namespace deskml::serving::steps {
namespace {

class Threshold final : public UnaryStep {
 public:
  explicit Threshold(double value) : UnaryStep("threshold", "mask"), value_(value) {}

 protected:
  Result<Tensor> apply(const Tensor& x) const override {
    Tensor out(DataType::kBool, x.shape());
    bool* o = out.data<bool>();
    auto run = [&](const auto* in) {
      for (int64_t i = 0; i < x.numel(); ++i) o[i] = static_cast<double>(in[i]) > value_;
    };
    if (!visit_numeric(x, run))
      return bad_input(std::string("input must be ") + kNumericTypes + ", got " + x.description());
    return out;
  }

 private:
  double value_;
};

}  // namespace

Result<StepPtr> make_threshold(const Params& p) {
  DESKML_RETURN_IF_ERROR(p.check_known({"value"}));
  DESKML_ASSIGN_OR_RETURN(double value, p.get_number("value"));
  return StepPtr(std::make_unique<Threshold>(value));
}

}  // namespace deskml::serving::steps
