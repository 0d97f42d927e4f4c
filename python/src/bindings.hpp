// The parts of the _deskml extension module, each registered by its own file.
#pragma once

#include <pybind11/pybind11.h>

#include <optional>
#include <string>

#include "graph/graph.hpp"

namespace deskml::python {

namespace py = pybind11;

// An input or output as a model declares it.
struct TensorInfo {
  std::string name;
  std::string dtype;  // numpy's name ("float32"); "undefined" when the model does not say
  py::object shape;   // tuple of int (None for a dynamic dim), or None when the rank is unknown
  static TensorInfo of(const graph::ValueInfo& info);
};

void bind_tensor_info(py::module_& m);
void bind_session(py::module_& m);
void bind_engine(py::module_& m);

}  // namespace deskml::python
