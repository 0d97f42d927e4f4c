#include "kernels/kernel.hpp"

namespace deskml::kernels {

const Tensor* KernelContext::input(size_t i) const {
  if (i >= inputs_.size() || inputs_[i] == nullptr || !inputs_[i]->is_tensor()) return nullptr;
  return &inputs_[i]->tensor;
}

const Tensor& KernelContext::required_input(size_t i) const {
  const Tensor* t = input(i);
  if (t == nullptr) throw_status(error("input " + std::to_string(i) + " is required but missing"));
  return *t;
}

Tensor KernelContext::take_input(size_t i) {
  if (i >= donatable_.size() || donatable_[i] == nullptr || !donatable_[i]->is_tensor()) return Tensor();
  Value& slot = *donatable_[i];
  if (!slot.tensor.sole_owner()) return Tensor();
  Tensor t = std::move(slot.tensor);
  slot = Value{};
  return t;
}

Tensor& KernelContext::allocate_output(size_t i, DataType dtype, Shape shape) {
  if (i >= outputs_.size()) throw_status(error("output " + std::to_string(i) + " does not exist"));
  Tensor placed = placer_ != nullptr ? placer_->place(i, dtype, shape) : Tensor();
  outputs_[i] = Value::from_tensor(placed.defined() ? std::move(placed) : Tensor(dtype, std::move(shape)));
  return outputs_[i].tensor;
}

void KernelContext::set_output(size_t i, Tensor t) {
  if (i >= outputs_.size()) throw_status(error("output " + std::to_string(i) + " does not exist"));
  outputs_[i] = Value::from_tensor(std::move(t));
}

void KernelContext::set_output_value(size_t i, Value v) {
  if (i >= outputs_.size()) throw_status(error("output " + std::to_string(i) + " does not exist"));
  outputs_[i] = std::move(v);
}

}  // namespace deskml::kernels
