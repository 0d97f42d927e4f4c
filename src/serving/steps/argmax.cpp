// argmax: index of the largest value along one axis (default the last) -> int64, the
// axis removed. Ties go to the lowest index; a NaN counts as the largest (as numpy).
#include "serving/steps/argmax.hpp"

#include <cmath>

#include "serving/steps/builtin.hpp"

namespace deskml::serving::steps {

Result<Tensor> argmax_along(const std::string& kind, const Tensor& x, int64_t axis_param) {
  if (x.rank() == 0) return invalid_argument(kind + ": input must have at least one axis");
  DESKML_ASSIGN_OR_RETURN(int64_t axis, resolve_axis(kind, axis_param, x.rank()));
  const int64_t n = x.dim(axis);
  if (n == 0)
    return invalid_argument(kind + ": axis " + std::to_string(axis_param) + " of " + x.description() + " is empty");
  int64_t inner = 1;
  for (int64_t d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.dim(d);
  Shape shape = x.shape();
  shape.erase(shape.begin() + axis);
  Tensor out(DataType::kInt64, std::move(shape));
  int64_t* o = out.data<int64_t>();
  auto run = [&](const auto* in) {
    for (int64_t a = 0; a < outer; ++a) {
      for (int64_t i = 0; i < inner; ++i) {
        const auto* p = in + a * n * inner + i;
        int64_t best = 0;
        for (int64_t k = 0; k < n; ++k) {
          const auto v = p[k * inner];
          if constexpr (std::is_floating_point_v<std::remove_cvref_t<decltype(v)>>) {
            if (std::isnan(v)) {
              best = k;
              break;
            }
          }
          if (v > p[best * inner]) best = k;
        }
        o[a * inner + i] = best;
      }
    }
  };
  if (!visit_numeric(x, run)) {
    return invalid_argument(kind + ": input must be " + kNumericTypes + ", got " + x.description());
  }
  return out;
}

namespace {

class Argmax final : public UnaryStep {
 public:
  explicit Argmax(int64_t axis) : UnaryStep("argmax"), axis_(axis) {}

 protected:
  Result<Tensor> apply(const Tensor& x) const override { return argmax_along(kind(), x, axis_); }

 private:
  int64_t axis_;
};

}  // namespace

Result<StepPtr> make_argmax(const Params& p) {
  DESKML_RETURN_IF_ERROR(p.check_known({"axis"}));
  DESKML_ASSIGN_OR_RETURN(int64_t axis, p.get_int("axis", -1));
  return StepPtr(std::make_unique<Argmax>(axis));
}

}  // namespace deskml::serving::steps
