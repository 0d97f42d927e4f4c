// Shared pieces of the built-in steps: base classes for the two port shapes and the
// factory of every kind. Internal to src/serving/steps.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"
#include "serving/steps/params.hpp"
#include "serving/steps/step.hpp"

namespace deskml::serving::steps {

// Limits on what a step will allocate for one image side and for one output tensor, so
// a hostile parameter or input becomes InvalidArgument rather than an allocation failure.
inline constexpr int64_t kMaxImageSide = 16384;
inline constexpr int64_t kMaxOutputBytes = int64_t{1} << 30;

// The numeric input types argmax and threshold take, for their messages.
inline constexpr const char* kNumericTypes = "float, double, uint8, int32 or int64";

// Calls fn(const T* data) for a float, double, uint8, int32 or int64 tensor;
// false (fn not called) for any other type.
template <typename Fn>
bool visit_numeric(const Tensor& x, Fn&& fn) {
  switch (x.dtype()) {
    case DataType::kFloat32:
      fn(x.data<float>());
      return true;
    case DataType::kFloat64:
      fn(x.data<double>());
      return true;
    case DataType::kUInt8:
      fn(x.data<uint8_t>());
      return true;
    case DataType::kInt32:
      fn(x.data<int32_t>());
      return true;
    case DataType::kInt64:
      fn(x.data<int64_t>());
      return true;
    default:
      return false;
  }
}

// Runs compute() and turns anything thrown (Error from tensor allocation, bad_alloc)
// into a Status, so Step::run never throws.
class BuiltinStep : public Step {
 public:
  explicit BuiltinStep(std::string kind) : kind_(std::move(kind)) {}
  Result<Tensors> run(const Tensors& inputs) const final;
  const std::string& kind() const { return kind_; }

 protected:
  virtual Result<Tensors> compute(const Tensors& inputs) const = 0;
  // "<kind>: <message>"
  Status bad_input(const std::string& message) const { return invalid_argument(kind_ + ": " + message); }
  // The input on `port`; InvalidArgument when absent or undefined.
  Result<const Tensor*> input(const Tensors& inputs, const std::string& port) const;

 private:
  std::string kind_;
};

// One input port, one output port ("input" -> "output" unless told otherwise).
class UnaryStep : public BuiltinStep {
 public:
  explicit UnaryStep(std::string kind, std::string output_port = "output")
      : BuiltinStep(std::move(kind)), output_port_(std::move(output_port)) {}
  StepPorts ports() const override { return {{"input"}, false, 1, 1, {output_port_}}; }

 protected:
  Result<Tensors> compute(const Tensors& inputs) const final;
  virtual Result<Tensor> apply(const Tensor& x) const = 0;

 private:
  std::string output_port_;
};

// An ordered list of inputs, one output "output".
class ListStep : public BuiltinStep {
 public:
  explicit ListStep(std::string kind, size_t min_inputs = 1, size_t max_inputs = SIZE_MAX)
      : BuiltinStep(std::move(kind)), min_(min_inputs), max_(max_inputs) {}
  StepPorts ports() const override { return {{}, true, min_, max_, {"output"}}; }

 protected:
  Result<Tensors> compute(const Tensors& inputs) const final;
  virtual Result<Tensor> apply(const std::vector<const Tensor*>& xs) const = 0;

 private:
  size_t min_;
  size_t max_;
};

// InvalidArgument unless numel(shape) * element size stays under kMaxOutputBytes.
Status check_output_size(const std::string& kind, const Shape& shape, DataType dtype);
// An image tensor seen as NHWC: HWC (rank 3, n = 1) or NHWC (rank 4).
struct ImageGeometry {
  int64_t n = 1, h = 0, w = 0, c = 0;
  bool batched = false;
};
Result<ImageGeometry> image_geometry(const std::string& kind, const Tensor& x);
// Maps `axis` (negative from the end) into [0, rank) or says why not.
Result<int64_t> resolve_axis(const std::string& kind, int64_t axis, int64_t rank);

using StepPtr = std::unique_ptr<Step>;
Result<StepPtr> make_image_decode(const Params& p);
Result<StepPtr> make_resize(const Params& p);
Result<StepPtr> make_center_crop(const Params& p);
Result<StepPtr> make_normalize(const Params& p);
Result<StepPtr> make_layout(const Params& p);
Result<StepPtr> make_softmax(const Params& p);
Result<StepPtr> make_argmax(const Params& p);
Result<StepPtr> make_topk(const Params& p);
Result<StepPtr> make_threshold(const Params& p);
Result<StepPtr> make_nms(const Params& p);
Result<StepPtr> make_mean(const Params& p);
Result<StepPtr> make_weighted_mean(const Params& p);
Result<StepPtr> make_vote(const Params& p);
Result<StepPtr> make_concat(const Params& p);

}  // namespace deskml::serving::steps
