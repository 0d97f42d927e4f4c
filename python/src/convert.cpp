#include "convert.hpp"

#include <bit>
#include <memory>

#include "core/dtype.hpp"
#include "errors.hpp"

namespace deskml::python {
namespace {

// numpy's array flag for C order (pybind11 exposes it through array::c_style).
constexpr int kCContiguous = py::array::c_style;
constexpr int kAligned = py::detail::npy_api::NPY_ARRAY_ALIGNED_;

Result<DataType> from_numpy(const py::dtype& dt) {
  const auto size = dt.itemsize();
  switch (dt.kind()) {
    case 'f':
      if (size == 2) return DataType::kFloat16;
      if (size == 4) return DataType::kFloat32;
      if (size == 8) return DataType::kFloat64;
      break;
    case 'i':
      if (size == 1) return DataType::kInt8;
      if (size == 2) return DataType::kInt16;
      if (size == 4) return DataType::kInt32;
      if (size == 8) return DataType::kInt64;
      break;
    case 'u':
      if (size == 1) return DataType::kUInt8;
      if (size == 2) return DataType::kUInt16;
      if (size == 4) return DataType::kUInt32;
      if (size == 8) return DataType::kUInt64;
      break;
    case 'b':
      return DataType::kBool;
    case 'U':
    case 'S':
    case 'O':
      return DataType::kString;
    default:
      break;
  }
  return invalid_argument("numpy dtype " + py::str(py::handle(dt)).cast<std::string>() + " has no deskml equivalent");
}

bool native_order(char byteorder) {
  constexpr char kNative = std::endian::native == std::endian::little ? '<' : '>';
  return byteorder == '=' || byteorder == '|' || byteorder == kNative;
}

// Drops a reference to a Python object from any thread. A tensor that outlives
// the interpreter (it cannot, once every engine is closed at exit) is leaked
// rather than touched.
void release_reference(void* object) {
  if (!Py_IsInitialized() || _Py_IsFinalizing()) return;
  py::gil_scoped_acquire gil;
  Py_DECREF(static_cast<PyObject*>(object));
}

Tensor strings_to_tensor(const py::array& arr, const std::string& name) {
  Shape shape(arr.shape(), arr.shape() + arr.ndim());
  Tensor t(DataType::kString, shape);
  auto* out = t.data<std::string>();
  py::list items = arr.attr("ravel")().attr("tolist")();
  size_t i = 0;
  for (py::handle item : items) {
    if (PyUnicode_Check(item.ptr())) {
      Py_ssize_t size = 0;
      const char* utf8 = PyUnicode_AsUTF8AndSize(item.ptr(), &size);
      if (utf8 == nullptr) throw py::error_already_set();
      out[i++].assign(utf8, static_cast<size_t>(size));
    } else if (PyBytes_Check(item.ptr())) {
      out[i++] = std::string(py::reinterpret_borrow<py::bytes>(item));
    } else {
      raise(invalid_argument("input '" + name + "': string tensors hold str or bytes, not " +
                             py::str(py::type::of(item).attr("__name__")).cast<std::string>()));
    }
  }
  return t;
}

}  // namespace

bool ReadOnlySpans::contains(const void* p) const {
  const auto* c = static_cast<const char*>(p);
  for (const auto& [start, size] : spans) {
    if (c >= start && c < start + size) return true;
  }
  return false;
}

Tensor to_tensor(py::handle value, const std::string& name, ReadOnlySpans& read_only) {
  py::array arr = py::array::ensure(value);
  if (!arr) {
    raise(invalid_argument("input '" + name + "': expected a numpy array, got " +
                           py::str(py::type::of(value).attr("__name__")).cast<std::string>()));
  }
  auto dtype = from_numpy(arr.dtype());
  if (!dtype.ok()) raise(dtype.status().with_context("input '" + name + "'"));
  if (*dtype == DataType::kString) return strings_to_tensor(arr, name);

  const bool direct = (arr.flags() & kCContiguous) && (arr.flags() & kAligned) && native_order(arr.dtype().byteorder());
  if (!direct) {
    py::object native = arr.dtype().attr("newbyteorder")("=");
    arr = py::module_::import("numpy").attr("ascontiguousarray")(arr, native);
  }
  Shape shape(arr.shape(), arr.shape() + arr.ndim());
  void* data = const_cast<void*>(arr.data());  // deskml never writes to inputs
  if (!arr.writeable()) read_only.spans.emplace_back(static_cast<const char*>(data), static_cast<size_t>(arr.nbytes()));
  std::shared_ptr<void> owner(arr.release().ptr(), release_reference);
  return Tensor::wrap(*dtype, std::move(shape), data, std::move(owner));
}

serving::Tensors to_tensors(py::handle inputs, ReadOnlySpans& read_only) {
  if (!PyMapping_Check(inputs.ptr()) || PySequence_Check(inputs.ptr())) {
    raise(invalid_argument("inputs must be a mapping of input name to numpy array, got " +
                           py::str(py::type::of(inputs).attr("__name__")).cast<std::string>()));
  }
  serving::Tensors tensors;
  for (py::handle item : inputs.attr("items")()) {
    auto pair = item.cast<py::tuple>();
    if (!PyUnicode_Check(pair[0].ptr())) raise(invalid_argument("input names must be str"));
    auto name = pair[0].cast<std::string>();
    tensors.emplace_back(name, to_tensor(pair[1], name, read_only));
  }
  return tensors;
}

py::object to_numpy(Tensor tensor, const ReadOnlySpans& read_only) {
  const Shape shape = tensor.shape();
  if (tensor.dtype() == DataType::kString) {
    py::list items;
    for (const std::string& s : tensor.values<std::string>()) {
      PyObject* text = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "strict");
      if (text == nullptr) {
        PyErr_Clear();
        items.append(py::bytes(s));
      } else {
        items.append(py::reinterpret_steal<py::object>(text));
      }
    }
    py::module_ np = py::module_::import("numpy");
    py::array flat = np.attr("empty")(items.size(), "object");
    for (size_t i = 0; i < items.size(); ++i) flat[py::int_(i)] = items[i];
    return flat.attr("reshape")(py::tuple(py::cast(shape)));
  }
  if (tensor.dtype() == DataType::kBFloat16) tensor = tensor.cast(DataType::kFloat32);  // numpy has no bfloat16
  const py::dtype dt(std::string(dtype_numpy_descr(tensor.dtype())));
  const bool writeable = tensor.sole_owner() && !read_only.contains(tensor.raw_data());
  auto holder = std::make_unique<Tensor>(std::move(tensor));
  void* data = holder->raw_data();
  py::capsule base(holder.get(), [](void* p) { delete static_cast<Tensor*>(p); });
  holder.release();
  std::vector<py::ssize_t> dims(shape.begin(), shape.end());
  py::array arr(dt, dims, std::vector<py::ssize_t>{}, data, base);
  if (!writeable) arr.attr("setflags")(py::arg("write") = false);
  return arr;
}

py::dict to_dict(serving::Tensors outputs, const ReadOnlySpans& read_only) {
  py::dict d;
  for (auto& [name, tensor] : outputs) d[py::str(name)] = to_numpy(std::move(tensor), read_only);
  return d;
}

std::string numpy_name(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32:
      return "float32";
    case DataType::kFloat64:
      return "float64";
    case DataType::kFloat16:
      return "float16";
    case DataType::kBFloat16:
      return "bfloat16";
    case DataType::kInt8:
      return "int8";
    case DataType::kInt16:
      return "int16";
    case DataType::kInt32:
      return "int32";
    case DataType::kInt64:
      return "int64";
    case DataType::kUInt8:
      return "uint8";
    case DataType::kUInt16:
      return "uint16";
    case DataType::kUInt32:
      return "uint32";
    case DataType::kUInt64:
      return "uint64";
    case DataType::kBool:
      return "bool";
    case DataType::kString:
      return "string";
    case DataType::kUndefined:
      break;
  }
  return "undefined";
}

}  // namespace deskml::python
