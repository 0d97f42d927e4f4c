// softmax: exp(x - max) / sum over one axis (default the last), float32.
#include <cmath>

#include "serving/steps/builtin.hpp"

namespace deskml::serving::steps {
namespace {

class Softmax final : public UnaryStep {
 public:
  explicit Softmax(int64_t axis) : UnaryStep("softmax"), axis_(axis) {}

 protected:
  Result<Tensor> apply(const Tensor& x) const override {
    if (x.dtype() != DataType::kFloat32) return bad_input("input must be float, got " + x.description());
    if (x.rank() == 0) return bad_input("input must have at least one axis");
    DESKML_ASSIGN_OR_RETURN(int64_t axis, resolve_axis(kind(), axis_, x.rank()));
    const int64_t n = x.dim(axis);
    int64_t inner = 1;
    for (int64_t d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
    int64_t outer = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= x.dim(d);
    Tensor out(DataType::kFloat32, x.shape());
    const float* in = x.data<float>();
    float* o = out.data<float>();
    for (int64_t a = 0; a < outer; ++a) {
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t base = a * n * inner + i;
        float m = -INFINITY;
        for (int64_t k = 0; k < n; ++k) m = std::fmax(m, in[base + k * inner]);
        double sum = 0.0;
        for (int64_t k = 0; k < n; ++k) {
          const float e = std::exp(in[base + k * inner] - m);
          o[base + k * inner] = e;
          sum += e;
        }
        const float inv = static_cast<float>(1.0 / sum);
        for (int64_t k = 0; k < n; ++k) o[base + k * inner] *= inv;
      }
    }
    return out;
  }

 private:
  int64_t axis_;
};

}  // namespace

Result<StepPtr> make_softmax(const Params& p) {
  DESKML_RETURN_IF_ERROR(p.check_known({"axis"}));
  DESKML_ASSIGN_OR_RETURN(int64_t axis, p.get_int("axis", -1));
  return StepPtr(std::make_unique<Softmax>(axis));
}

}  // namespace deskml::serving::steps
