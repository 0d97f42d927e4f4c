// deskml.Session: one model file run directly on the calling thread, GIL released.
#include "runtime/session.hpp"

#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>

#include "bindings.hpp"
#include "convert.hpp"
#include "errors.hpp"

namespace deskml::python {
namespace {

py::object value_to_python(Value value, const ReadOnlySpans& read_only) {
  if (value.is_tensor()) return to_numpy(std::move(value.tensor), read_only);
  if (value.is_sequence()) {
    py::list items;
    for (auto& t : value.sequence) items.append(to_numpy(std::move(t), read_only));
    return items;
  }
  return py::none();
}

class Session {
 public:
  Session(const std::filesystem::path& model, int threads, int optimization_level, bool warmup) {
    if (threads < 0) raise(invalid_argument("threads must be >= 0"));
    if (optimization_level < 0 || optimization_level > 2)
      raise(invalid_argument("optimization_level must be 0, 1 or 2"));
    runtime::SessionOptions o;
    o.threads = threads;
    o.optimization_level = optimization_level;
    o.warmup = warmup;
    Result<std::unique_ptr<runtime::Session>> loaded = [&] {
      py::gil_scoped_release nogil;
      return runtime::Session::load(model, o);
    }();
    if (!loaded.ok()) raise(loaded.status());
    session_ = std::move(loaded).value();
  }

  py::dict run(py::handle inputs, std::optional<double> timeout) const {
    ReadOnlySpans read_only;
    runtime::NamedValues feeds;
    for (auto& [name, tensor] : to_tensors(inputs, read_only)) feeds.emplace_back(name, Value::from_tensor(tensor));
    runtime::RunOptions options;
    if (timeout) {
      options.deadline =
          std::chrono::steady_clock::now() +
          std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(*timeout));
    }
    Result<runtime::NamedValues> outputs = [&] {
      py::gil_scoped_release nogil;
      return session_->run(feeds, options);
    }();
    feeds.clear();  // drops the borrowed arrays while the GIL is held
    if (!outputs.ok()) raise(outputs.status());
    py::dict result;
    for (auto& [name, value] : outputs.value()) result[py::str(name)] = value_to_python(std::move(value), read_only);
    return result;
  }

  std::vector<TensorInfo> inputs() const {
    std::vector<TensorInfo> v;
    for (const auto& i : session_->inputs()) v.push_back(TensorInfo::of(i));
    return v;
  }
  std::vector<TensorInfo> outputs() const {
    std::vector<TensorInfo> v;
    for (const auto& o : session_->outputs()) v.push_back(TensorInfo::of(o));
    return v;
  }
  int threads() const { return session_->threads(); }

 private:
  std::unique_ptr<runtime::Session> session_;
};

}  // namespace

void bind_session(py::module_& m) {
  py::class_<Session>(m, "Session", R"doc(
A model file loaded, optimised and ready to run on the calling thread.

    session = deskml.Session("model.onnx")
    outputs = session.run({"features": np.zeros((1, 30), np.float32)})

run() releases the GIL while the model runs, so several Python threads can
run one Session in parallel. Inputs are not copied when they are C-contiguous,
aligned, native-endian arrays (no implicit dtype casts: an array must have the
input's dtype); outputs are numpy arrays over the engine's own memory.
)doc")
      .def(py::init<const std::filesystem::path&, int, int, bool>(), py::arg("model"), py::kw_only(),
           py::arg("threads") = 0, py::arg("optimization_level") = 2, py::arg("warmup") = true,
           R"doc(
Loads `model` (an .onnx file). `threads` is the threads one run uses (0: the
machine's physical cores); `optimization_level` 0 none, 1 clean-up, 2 fusions and
layouts; `warmup` runs the model once on zeros so the first run is fast.
)doc")
      .def("run", &Session::run, py::arg("inputs"), py::kw_only(), py::arg("timeout") = py::none(),
           R"doc(
Runs the model on `inputs` (a mapping of input name to numpy array) and returns
a dict of output name to numpy array, in the model's declared order. `timeout`
(seconds) stops a run that takes longer with DeadlineExceededError. Bad inputs
raise InvalidArgumentError naming the input, and nothing runs.
)doc")
      .def_property_readonly("inputs", &Session::inputs, "The inputs the model takes, in declared order.")
      .def_property_readonly("outputs", &Session::outputs, "The outputs a run returns, in declared order.")
      .def_property_readonly("threads", &Session::threads, "Threads one run uses.");
}

}  // namespace deskml::python
