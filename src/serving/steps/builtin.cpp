#include "serving/steps/builtin.hpp"

#include <exception>
#include <new>

namespace deskml::serving::steps {

Result<Tensors> BuiltinStep::run(const Tensors& inputs) const {
  try {
    return compute(inputs);
  } catch (const Error& e) {
    return e.status().with_context(kind_);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kResourceExhausted, kind_ + ": out of memory");
  } catch (const std::exception& e) {
    return internal_error(kind_ + ": " + e.what());
  }
}

Result<const Tensor*> BuiltinStep::input(const Tensors& inputs, const std::string& port) const {
  const Tensor* t = find_tensor(inputs, port);
  if (t == nullptr) return bad_input("missing input '" + port + "'");
  if (!t->defined()) return bad_input("input '" + port + "' is undefined");
  return t;
}

Result<Tensors> UnaryStep::compute(const Tensors& inputs) const {
  DESKML_ASSIGN_OR_RETURN(const Tensor* x, input(inputs, "input"));
  DESKML_ASSIGN_OR_RETURN(Tensor y, apply(*x));
  Tensors out;
  out.emplace_back(output_port_, std::move(y));
  return out;
}

Result<Tensors> ListStep::compute(const Tensors& inputs) const {
  if (inputs.size() < min_ || inputs.size() > max_) {
    return bad_input("takes " + (min_ == max_ ? std::to_string(min_) : "at least " + std::to_string(min_)) +
                     " inputs, got " + std::to_string(inputs.size()));
  }
  std::vector<const Tensor*> xs;
  for (const auto& [name, t] : inputs) {
    if (!t.defined()) return bad_input("input '" + name + "' is undefined");
    xs.push_back(&t);
  }
  DESKML_ASSIGN_OR_RETURN(Tensor y, apply(xs));
  Tensors out;
  out.emplace_back("output", std::move(y));
  return out;
}

Status check_output_size(const std::string& kind, const Shape& shape, DataType dtype) {
  double bytes = static_cast<double>(dtype_size(dtype));
  for (int64_t d : shape) {
    if (d < 0) return invalid_argument(kind + ": negative dimension in " + shape_to_string(shape));
    bytes *= static_cast<double>(d);
  }
  if (bytes > static_cast<double>(kMaxOutputBytes)) {
    return invalid_argument(kind + ": output " + shape_to_string(shape) + " would exceed " +
                            std::to_string(kMaxOutputBytes >> 20) + " MiB");
  }
  return Status::Ok();
}

Result<ImageGeometry> image_geometry(const std::string& kind, const Tensor& x) {
  if (x.rank() != 3 && x.rank() != 4) {
    return invalid_argument(kind + ": expected an HWC or NHWC image tensor, got " + x.description());
  }
  ImageGeometry g;
  g.batched = x.rank() == 4;
  const int64_t off = g.batched ? 1 : 0;
  if (g.batched) g.n = x.dim(0);
  g.h = x.dim(off);
  g.w = x.dim(off + 1);
  g.c = x.dim(off + 2);
  if (g.h == 0 || g.w == 0 || g.c == 0) return invalid_argument(kind + ": empty image " + x.description());
  return g;
}

Result<int64_t> resolve_axis(const std::string& kind, int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank) {
    return invalid_argument(kind + ": axis " + std::to_string(axis) + " is out of range for rank " +
                            std::to_string(rank));
  }
  return axis < 0 ? axis + rank : axis;
}

}  // namespace deskml::serving::steps
