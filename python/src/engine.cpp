// deskml.Engine's compiled base: the serving runtime with blocking calls that
// release the GIL, and submit() with a callback that the Python half
// (deskml/__init__.py) turns into asyncio awaitables and streams.
#include <pybind11/functional.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "bindings.hpp"
#include "convert.hpp"
#include "errors.hpp"
#include "serving/log.hpp"
#include "serving/model_config.hpp"
#include "serving/runtime.hpp"

namespace deskml::python {
namespace {

using namespace std::chrono_literals;
using serving::Clock;

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::duration<double>(seconds));
}

// A Python object shared with runtime threads: the last owner drops the
// reference with the GIL held, whichever thread it is.
std::shared_ptr<py::object> share(py::object o) {
  return std::shared_ptr<py::object>(new py::object(std::move(o)), [](py::object* p) {
    if (Py_IsInitialized() && !_Py_IsFinalizing()) {
      py::gil_scoped_acquire gil;
      delete p;
    } else {
      p->release();  // the interpreter is going away: leak the reference rather than touch it
      delete p;
    }
  });
}

struct RequestOptions {
  std::optional<int64_t> version;
  std::optional<double> timeout;
  int priority = 0;
  std::optional<std::string> request_id;
  bool use_cache = true;

  serving::InferOptions make() const {
    serving::InferOptions o;
    if (version) {
      if (*version <= 0) raise(invalid_argument("version must be positive"));
      o.version = *version;
    }
    if (timeout) {
      if (!(*timeout > 0)) raise(invalid_argument("timeout must be a positive number of seconds"));
      o.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*timeout));
    }
    o.priority = priority;
    o.request_id = request_id.value_or("");
    if (o.request_id.empty()) o.request_id = serving::log::new_request_id();
    o.use_cache = use_cache;
    o.cancel = std::make_shared<serving::CancelToken>();
    return o;
  }
};

// What submit() returns: the way to cancel a request.
class Request {
 public:
  Request(std::shared_ptr<serving::CancelToken> token, std::string id) : token_(std::move(token)), id_(std::move(id)) {}
  void cancel() const {
    py::gil_scoped_release nogil;  // the answer may be delivered, GIL and all, on this thread
    token_->cancel();
  }
  bool cancelled() const { return token_->cancelled(); }
  const std::string& id() const { return id_; }

 private:
  std::shared_ptr<serving::CancelToken> token_;
  std::string id_;
};

// One submit's way back. A request the runtime refuses before queueing is
// answered inside infer_async on the submitting thread; submit() raises that
// instead of calling back.
struct Submission {
  std::shared_ptr<py::object> callback;
  ReadOnlySpans read_only;
  std::thread::id submitter = std::this_thread::get_id();
  std::atomic<bool> submitting{true};
  std::optional<Status> refused;

  void answer(Result<serving::InferResponse> r) {
    if (!r.ok() && submitting.load(std::memory_order_acquire) && std::this_thread::get_id() == submitter) {
      refused = r.status();
      return;
    }
    if (!Py_IsInitialized() || _Py_IsFinalizing()) return;
    py::gil_scoped_acquire gil;
    try {
      if (r.ok()) {
        py::dict outputs = to_dict(std::move(r.value().outputs), read_only);
        (*callback)(outputs, py::none());
      } else {
        (*callback)(py::none(), exception_for(r.status()));
      }
    } catch (py::error_already_set& e) {
      e.discard_as_unraisable("deskml request callback");
    } catch (const std::exception& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
      PyErr_WriteUnraisable(nullptr);
    }
  }
};

class Engine {
 public:
  Engine(std::optional<std::filesystem::path> repository, int threads, std::optional<uint64_t> memory_budget,
         std::optional<double> keep_alive, double poll_interval, std::optional<std::filesystem::path> cache_dir,
         bool load_pinned) {
    serving::RuntimeOptions o;
    if (repository) o.repository = *repository;
    if (threads < 0) raise(invalid_argument("threads must be >= 0"));
    o.threads = threads;
    if (memory_budget) o.memory_budget_bytes = static_cast<size_t>(*memory_budget);
    if (keep_alive) o.default_keep_alive = *keep_alive < 0 ? serving::KeepAlive::kForever : to_ms(*keep_alive);
    if (poll_interval < 0) raise(invalid_argument("poll_interval must be >= 0"));
    o.poll_interval = to_ms(poll_interval);
    if (cache_dir) o.cache_dir = *cache_dir;
    o.load_pinned = load_pinned;
    auto created = [&] {
      py::gil_scoped_release nogil;
      return serving::Runtime::create(std::move(o));
    }();
    if (!created.ok()) raise(created.status());
    runtime_ = std::shared_ptr<serving::Runtime>(std::move(created).value());
  }
  ~Engine() { close(); }
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Stops taking requests, answers those waiting for a load with
  // UnavailableError, lets queued ones finish, unloads everything. Waits for
  // calls in progress on other threads to leave the runtime first.
  void close() {
    std::shared_ptr<serving::Runtime> rt = std::move(runtime_);
    runtime_.reset();
    if (!rt) return;
    py::gil_scoped_release nogil;
    while (rt.use_count() > 1) std::this_thread::sleep_for(1ms);
    rt.reset();
  }
  bool closed() const { return runtime_ == nullptr; }

  void add_model(const std::string& name, const std::filesystem::path& model, std::optional<std::string> config) {
    auto rt = runtime();
    serving::ModelConfig c;
    if (config) {
      auto parsed = serving::parse_model_config(*config, "the configuration of '" + name + "'");
      if (!parsed.ok()) raise(parsed.status());
      c = std::move(parsed).value();
    }
    Status s = [&] {
      py::gil_scoped_release nogil;
      return rt->add_model_file(name, model, std::move(c));
    }();
    if (!s.ok()) raise(s);
  }

  void load(const std::string& model, std::optional<int64_t> version) {
    auto rt = runtime();
    Status s = [&] {
      py::gil_scoped_release nogil;
      return rt->load(model, version);
    }();
    if (!s.ok()) raise(s);
  }

  void unload(const std::string& model, std::optional<int64_t> version) {
    auto rt = runtime();
    Status s = [&] {
      py::gil_scoped_release nogil;
      return rt->unload(model, version);
    }();
    if (!s.ok()) raise(s);
  }

  py::list models() {
    auto rt = runtime();
    std::vector<serving::ModelStatus> rows = [&] {
      py::gil_scoped_release nogil;
      return rt->models();
    }();
    py::list out;
    for (const auto& m : rows) {
      py::dict d;
      d["name"] = m.name;
      d["version"] = m.version;
      d["state"] = serving::model_state_name(m.state);
      d["reason"] = m.reason;
      d["reload_error"] = m.reload_error;
      d["ensemble"] = m.ensemble;
      d["pinned"] = m.pinned;
      d["resident_bytes"] = m.resident_bytes;
      d["load_ms"] = m.load_ms;
      d["outstanding"] = m.outstanding;
      d["queued"] = m.queued;
      out.append(d);
    }
    return out;
  }

  py::dict metadata(const std::string& model, std::optional<int64_t> version) {
    auto rt = runtime();
    auto md = [&] {
      py::gil_scoped_release nogil;
      return rt->metadata(model, version);
    }();
    if (!md.ok()) raise(md.status());
    py::dict d;
    d["name"] = md->name;
    d["versions"] = md->versions;
    py::list inputs, outputs;
    for (const auto& i : md->inputs) inputs.append(TensorInfo::of(i));
    for (const auto& o : md->outputs) outputs.append(TensorInfo::of(o));
    d["inputs"] = inputs;
    d["outputs"] = outputs;
    d["max_batch_size"] = md->max_batch_size;
    return d;
  }

  std::string metrics() {
    auto rt = runtime();
    py::gil_scoped_release nogil;
    return rt->metrics().text();
  }

  py::dict infer(const std::string& model, py::handle inputs, const RequestOptions& options) {
    auto rt = runtime();
    ReadOnlySpans read_only;
    serving::Tensors tensors = to_tensors(inputs, read_only);
    serving::InferOptions o = options.make();
    auto token = o.cancel;
    std::future<Result<serving::InferResponse>> answer = [&] {
      py::gil_scoped_release nogil;
      return rt->infer(model, std::move(tensors), std::move(o));
    }();
    rt.reset();
    // Wait without the GIL, waking now and then so Ctrl-C cancels the request.
    for (;;) {
      {
        py::gil_scoped_release nogil;
        if (answer.wait_for(50ms) == std::future_status::ready) break;
      }
      if (PyErr_CheckSignals() != 0) {
        py::error_already_set interrupted;  // takes the pending KeyboardInterrupt
        {
          py::gil_scoped_release nogil;
          token->cancel();
          answer.wait();
        }
        throw interrupted;
      }
    }
    Result<serving::InferResponse> r = answer.get();
    if (!r.ok()) raise(r.status());
    return to_dict(std::move(r.value().outputs), read_only);
  }

  Request submit(const std::string& model, py::handle inputs, py::object callback, const RequestOptions& options) {
    if (!PyCallable_Check(callback.ptr())) raise(invalid_argument("callback must be callable"));
    auto rt = runtime();
    auto submission = std::make_shared<Submission>();
    serving::Tensors tensors = to_tensors(inputs, submission->read_only);
    serving::InferOptions o = options.make();
    Request request(o.cancel, o.request_id);
    submission->callback = share(std::move(callback));
    {
      py::gil_scoped_release nogil;
      rt->infer_async(model, std::move(tensors), std::move(o),
                      [submission](Result<serving::InferResponse> r) { submission->answer(std::move(r)); });
    }
    submission->submitting.store(false, std::memory_order_release);
    if (submission->refused) raise(*submission->refused);
    return request;
  }

  int threads() { return runtime()->threads(); }

 private:
  std::shared_ptr<serving::Runtime> runtime() const {
    if (!runtime_) raise(Status(StatusCode::kUnavailable, "the engine is closed"));
    return runtime_;
  }

  std::shared_ptr<serving::Runtime> runtime_;
};

// The keyword arguments every request method takes.
#define DESKML_REQUEST_ARGS                                                                                 \
  py::kw_only(), py::arg("version") = py::none(), py::arg("timeout") = py::none(), py::arg("priority") = 0, \
                 py::arg("request_id") = py::none(), py::arg("use_cache") = true

}  // namespace

void bind_engine(py::module_& m) {
  py::class_<Request>(m, "Request", "A submitted request: cancel() answers it with CancelledError wherever it is.")
      .def("cancel", &Request::cancel,
           "Cancels the request: queued, waiting for a load or running, it is answered at once (its callback may "
           "run on this thread before cancel returns). Does nothing once it has been answered.")
      .def_property_readonly("cancelled", &Request::cancelled, "Whether cancel() was called.")
      .def_property_readonly("id", &Request::id, "The request id (given or generated), as in the engine's logs.")
      .def("__repr__", [](const Request& r) { return "<deskml.Request " + r.id() + ">"; });

  py::class_<Engine>(m, "_Engine")
      .def(py::init<std::optional<std::filesystem::path>, int, std::optional<uint64_t>, std::optional<double>, double,
                    std::optional<std::filesystem::path>, bool>(),
           py::arg("repository") = py::none(), py::kw_only(), py::arg("threads") = 0,
           py::arg("memory_budget") = py::none(), py::arg("keep_alive") = py::none(), py::arg("poll_interval") = 2.0,
           py::arg("cache_dir") = py::none(), py::arg("load_pinned") = true)
      .def("close", &Engine::close)
      .def_property_readonly("closed", &Engine::closed)
      .def_property_readonly("threads", &Engine::threads)
      .def("add_model", &Engine::add_model, py::arg("name"), py::arg("path"), py::kw_only(),
           py::arg("config") = py::none())
      .def("load", &Engine::load, py::arg("model"), py::kw_only(), py::arg("version") = py::none())
      .def("unload", &Engine::unload, py::arg("model"), py::kw_only(), py::arg("version") = py::none())
      .def("models", &Engine::models)
      .def("metadata", &Engine::metadata, py::arg("model"), py::kw_only(), py::arg("version") = py::none())
      .def("metrics", &Engine::metrics)
      .def(
          "infer",
          [](Engine& e, const std::string& model, py::handle inputs, std::optional<int64_t> version,
             std::optional<double> timeout, int priority, std::optional<std::string> request_id, bool use_cache) {
            return e.infer(model, inputs, RequestOptions{version, timeout, priority, request_id, use_cache});
          },
          py::arg("model"), py::arg("inputs"), DESKML_REQUEST_ARGS)
      .def(
          "submit",
          [](Engine& e, const std::string& model, py::handle inputs, py::object callback,
             std::optional<int64_t> version, std::optional<double> timeout, int priority,
             std::optional<std::string> request_id, bool use_cache) {
            return e.submit(model, inputs, std::move(callback),
                            RequestOptions{version, timeout, priority, request_id, use_cache});
          },
          py::arg("model"), py::arg("inputs"), py::arg("callback"), DESKML_REQUEST_ARGS);
}

}  // namespace deskml::python
