// layout: HWC / NHWC / CHW / NCHW conversions; adds a batch axis of 1 or removes one
// (which must then be 1) when only one side names N. Any dtype.
#include <array>
#include <cstring>

#include "serving/steps/builtin.hpp"

namespace deskml::serving::steps {
namespace {

bool valid_layout(const std::string& s) { return s == "HWC" || s == "NHWC" || s == "CHW" || s == "NCHW"; }

// out[n][a][b][c] = in at the position named by `src` strides; all four-dimensional.
template <typename T>
void permute(const T* in, T* out, const std::array<int64_t, 4>& dims, const std::array<int64_t, 4>& strides) {
  for (int64_t i0 = 0; i0 < dims[0]; ++i0) {
    for (int64_t i1 = 0; i1 < dims[1]; ++i1) {
      for (int64_t i2 = 0; i2 < dims[2]; ++i2) {
        const T* src = in + i0 * strides[0] + i1 * strides[1] + i2 * strides[2];
        for (int64_t i3 = 0; i3 < dims[3]; ++i3) *out++ = src[i3 * strides[3]];
      }
    }
  }
}

class Layout final : public UnaryStep {
 public:
  Layout(std::string from, std::string to) : UnaryStep("layout"), from_(std::move(from)), to_(std::move(to)) {}

 protected:
  Result<Tensor> apply(const Tensor& x) const override {
    if (x.rank() != static_cast<int64_t>(from_.size())) {
      return bad_input("input " + x.description() + " does not match layout " + from_);
    }
    // Both sides as four letters, with N first.
    const std::string from = from_.size() == 3 ? "N" + from_ : from_;
    const std::string to = to_.size() == 3 ? "N" + to_ : to_;
    std::array<int64_t, 4> in_dims{1, 1, 1, 1};
    for (int64_t i = 0; i < x.rank(); ++i) in_dims[4 - x.rank() + i] = x.dim(i);
    if (to_.size() == 3 && in_dims[0] != 1) {
      return bad_input("cannot drop the batch axis of " + x.description() + " (" + from_ + " -> " + to_ +
                       "): it is not 1");
    }
    std::array<int64_t, 4> in_strides{};
    int64_t stride = 1;
    for (int i = 3; i >= 0; --i) {
      in_strides[i] = stride;
      stride *= in_dims[i];
    }
    std::array<int64_t, 4> dims{};
    std::array<int64_t, 4> strides{};
    for (int i = 0; i < 4; ++i) {
      const size_t j = from.find(to[i]);
      dims[i] = in_dims[j];
      strides[i] = in_strides[j];
    }
    Shape shape(dims.begin() + (to_.size() == 3 ? 1 : 0), dims.end());
    if (from == to) return x.reshaped(std::move(shape));
    Tensor out(x.dtype(), std::move(shape));
    switch (x.dtype()) {
      case DataType::kString:
        permute(x.data<std::string>(), out.data<std::string>(), dims, strides);
        break;
      default:
        switch (dtype_size(x.dtype())) {
          case 1:
            permute(static_cast<const uint8_t*>(x.raw_data()), static_cast<uint8_t*>(out.raw_data()), dims, strides);
            break;
          case 2:
            permute(static_cast<const uint16_t*>(x.raw_data()), static_cast<uint16_t*>(out.raw_data()), dims, strides);
            break;
          case 4:
            permute(static_cast<const uint32_t*>(x.raw_data()), static_cast<uint32_t*>(out.raw_data()), dims, strides);
            break;
          case 8:
            permute(static_cast<const uint64_t*>(x.raw_data()), static_cast<uint64_t*>(out.raw_data()), dims, strides);
            break;
          default:
            return bad_input("unsupported dtype in " + x.description());
        }
    }
    return out;
  }

 private:
  std::string from_;
  std::string to_;
};

}  // namespace

Result<StepPtr> make_layout(const Params& p) {
  DESKML_RETURN_IF_ERROR(p.check_known({"from", "to"}));
  DESKML_ASSIGN_OR_RETURN(std::string from, p.get_string("from"));
  DESKML_ASSIGN_OR_RETURN(std::string to, p.get_string("to"));
  if (!valid_layout(from)) return p.error("from", "must be one of HWC, NHWC, CHW, NCHW");
  if (!valid_layout(to)) return p.error("to", "must be one of HWC, NHWC, CHW, NCHW");
  return StepPtr(std::make_unique<Layout>(std::move(from), std::move(to)));
}

}  // namespace deskml::serving::steps
