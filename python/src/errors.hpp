// deskml statuses as Python exceptions: the classes live in deskml/_errors.py
// (Error and one subclass per status code, each also a fitting builtin such as
// ValueError or TimeoutError), so Python code can catch them by either name.
#pragma once

#include <pybind11/pybind11.h>

#include "core/status.hpp"

namespace deskml::python {

namespace py = pybind11;

// An exception instance for `status` (for handing to a callback). Requires the GIL.
py::object exception_for(const Status& status);
// Raises the exception for `status` in Python (throws py::error_already_set).
[[noreturn]] void raise(const Status& status);
// Translates deskml::Error escaping a binding into its Python exception.
void register_error_translator();

}  // namespace deskml::python
