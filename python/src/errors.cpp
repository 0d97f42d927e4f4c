#include "errors.hpp"

namespace deskml::python {
namespace {

py::object exception_class(StatusCode code) {
  // Looked up on every error (errors are rare): no Python object outlives the interpreter here.
  py::dict by_code = py::module_::import("deskml._errors").attr("_BY_CODE");
  py::str name(status_code_name(code));
  if (by_code.contains(name)) return by_code[name];
  return py::module_::import("deskml._errors").attr("Error");
}

}  // namespace

py::object exception_for(const Status& status) { return exception_class(status.code())(py::str(status.message())); }

void raise(const Status& status) {
  py::object error = exception_for(status);
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error.ptr())), error.ptr());
  throw py::error_already_set();
}

void register_error_translator() {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      py::object error = exception_for(e.status());
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error.ptr())), error.ptr());
    }
  });
}

}  // namespace deskml::python
