// _deskml: the compiled half of the deskml Python package (python/deskml holds the rest).
#include <pybind11/pybind11.h>

#include "bindings.hpp"
#include "convert.hpp"
#include "errors.hpp"
#include "serving/log.hpp"

namespace deskml::python {

TensorInfo TensorInfo::of(const graph::ValueInfo& info) {
  TensorInfo t;
  t.name = info.name;
  t.dtype = numpy_name(info.type.dtype);
  if (info.type.shape) {
    py::list dims;
    for (const auto& d : *info.type.shape) dims.append(d.known() ? py::object(py::int_(d.value)) : py::none());
    t.shape = py::tuple(dims);
  } else {
    t.shape = py::none();
  }
  return t;
}

void bind_tensor_info(py::module_& m) {
  py::class_<TensorInfo>(m, "TensorInfo", "An input or output as the model declares it.")
      .def_readonly("name", &TensorInfo::name)
      .def_readonly("dtype", &TensorInfo::dtype, "numpy's dtype name, e.g. 'float32'")
      .def_readonly("shape", &TensorInfo::shape, "dims, None for a dynamic one; None when the rank is unknown")
      .def("__repr__", [](const TensorInfo& t) {
        return "TensorInfo(name=" + py::repr(py::str(t.name)).cast<std::string>() + ", dtype='" + t.dtype +
               "', shape=" + py::repr(t.shape).cast<std::string>() + ")";
      });
}

}  // namespace deskml::python

PYBIND11_MODULE(_deskml, m) {
  namespace py = pybind11;
  m.doc() = "deskml's compiled core; import the deskml package instead.";
  m.attr("__version__") = DESKML_VERSION;
  deskml::python::register_error_translator();
  deskml::python::bind_tensor_info(m);
  deskml::python::bind_session(m);
  deskml::python::bind_engine(m);
  m.def(
      "set_log_level",
      [](const std::string& level) {
        const deskml::Status st = deskml::serving::log::set_level(level);
        if (!st.ok()) deskml::python::raise(st);
      },
      py::arg("level"),
      "Sets the level of deskml's JSON log lines on stderr for the whole process: 'trace', 'debug', "
      "'info' (the default, unless $DESKML_LOG_LEVEL says otherwise), 'warn', 'error', 'critical' or "
      "'off'. Raises InvalidArgumentError for anything else.");
}
