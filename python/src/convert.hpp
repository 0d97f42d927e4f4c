// numpy arrays <-> deskml tensors, without copies where the layout allows.
//
// In: a C-contiguous, aligned, native-endian array whose dtype deskml has is
// borrowed: the tensor points into the array's memory and holds a reference to
// the array until the last tensor view is gone (deskml never writes to inputs).
// Anything else (strided, misaligned, byte-swapped, a list) is first converted
// with numpy.ascontiguousarray. There are no implicit dtype casts.
//
// Out: an array over the tensor's own memory, its base a capsule owning the
// tensor. It is writeable when nothing else can see that memory; a row of a
// batched result, an output that aliases a model constant or a read-only input
// comes back read-only (copy it to write).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"
#include "serving/tensors.hpp"

namespace deskml::python {

namespace py = pybind11;

// Memory of the read-only arrays a request borrowed: outputs inside it stay read-only.
struct ReadOnlySpans {
  std::vector<std::pair<const char*, size_t>> spans;
  bool contains(const void* p) const;
};

// Holds the GIL only while it must; see the file comment. Raises InvalidArgumentError.
Tensor to_tensor(py::handle value, const std::string& name, ReadOnlySpans& read_only);
// A mapping of input name -> array-like (requires the GIL).
serving::Tensors to_tensors(py::handle inputs, ReadOnlySpans& read_only);

py::object to_numpy(Tensor tensor, const ReadOnlySpans& read_only);
py::dict to_dict(serving::Tensors outputs, const ReadOnlySpans& read_only);

// numpy's name for a dtype ("float32"), or the deskml name where numpy has none ("bfloat16", "string").
std::string numpy_name(DataType dtype);

}  // namespace deskml::python
