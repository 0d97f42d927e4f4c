// Engines: the serving runtime behind the C API; blocking runs, submits with a
// completion callback, and cancellable request handles.
#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include "capi/handles.hpp"
#include "serving/log.hpp"
#include "serving/model_config.hpp"

namespace deskml::capi {
namespace {

using serving::Clock;

Result<std::string> required_name(const char* name, const char* what) {
  DESKML_CHECK_ARG(name != nullptr, std::string(what) + " is NULL");
  return std::string(name);
}

serving::InferOptions to_infer_options(const deskml_infer_options* o, Clock::time_point submitted) {
  serving::InferOptions r;
  if (o == nullptr) return r;
  if (o->deadline_ns) {
    r.deadline =
        Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(*o->deadline_ns)));
  } else if (o->timeout_ms) {
    r.deadline = submitted + std::chrono::milliseconds(*o->timeout_ms);
  }
  r.priority = o->priority;
  r.version = o->version;
  r.request_id = o->request_id;
  r.use_cache = o->use_cache;
  return r;
}

// One submitted request's way back to its caller. The runtime answers a request
// that it refuses before queueing on the submitting thread, inside infer_async;
// such an answer becomes submit's return value instead of a callback.
struct Submission {
  deskml_callback done = nullptr;
  void* user_data = nullptr;
  std::thread::id submitter;
  std::atomic<bool> submitting{true};
  std::optional<Status> refused;
  // Made before submitting, so answering never needs memory it might not get.
  std::unique_ptr<deskml_result> result = std::make_unique<deskml_result>();

  void answer(Result<serving::InferResponse> r) noexcept {
    if (!r.ok() && submitting.load(std::memory_order_acquire) && std::this_thread::get_id() == submitter) {
      try {
        refused = r.status();
      } catch (...) {
        refused = Status(StatusCode::kResourceExhausted, "");
      }
      return;
    }
    deskml_result* out = result.release();
    try {
      if (r.ok()) {
        auto& response = r.value();
        out->names.reserve(response.outputs.size());
        out->outputs.reserve(response.outputs.size());
        for (auto& [name, tensor] : response.outputs) {
          out->names.push_back(std::move(name));
          out->outputs.push_back(deskml_tensor{std::move(tensor)});
        }
        out->version = response.version;
        out->request_id = std::move(response.request_id);
      } else {
        out->status = r.status();
      }
    } catch (...) {
      out->names.clear();
      out->outputs.clear();
      out->status = Status(StatusCode::kResourceExhausted, "");
    }
    try {
      done(user_data, out);
    } catch (...) {
      // A callback must not throw; an exception from one stops here, not in a runtime worker.
    }
  }
};

}  // namespace
}  // namespace deskml::capi

using namespace deskml;
using namespace deskml::capi;

extern "C" {

// ---------------------------------------------------------------------------
// Engine options

deskml_status deskml_engine_options_create(deskml_engine_options** out) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(out);
    *out = new deskml_engine_options{};
    return Status::Ok();
  });
}

void deskml_engine_options_destroy(deskml_engine_options* options) { delete options; }

deskml_status deskml_engine_options_set_threads(deskml_engine_options* options, int threads) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(options);
    DESKML_CHECK_ARG(threads >= 0, "threads must be >= 0");
    options->options.threads = threads;
    return Status::Ok();
  });
}

deskml_status deskml_engine_options_set_memory_budget(deskml_engine_options* options, uint64_t bytes) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(options);
    options->options.memory_budget_bytes = static_cast<size_t>(bytes);
    return Status::Ok();
  });
}

deskml_status deskml_engine_options_set_keep_alive_ms(deskml_engine_options* options, int64_t ms) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(options);
    DESKML_CHECK_ARG(ms >= -1, "keep-alive must be -1 (forever), 0 or a number of milliseconds");
    options->options.default_keep_alive = std::chrono::milliseconds(ms);
    return Status::Ok();
  });
}

deskml_status deskml_engine_options_set_poll_interval_ms(deskml_engine_options* options, int64_t ms) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(options);
    DESKML_CHECK_ARG(ms >= 0, "the poll interval must be >= 0");
    options->options.poll_interval = std::chrono::milliseconds(ms);
    return Status::Ok();
  });
}

deskml_status deskml_engine_options_set_cache_dir(deskml_engine_options* options, const char* path) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(options);
    DESKML_CAPI_REQUIRE(path);
    options->options.cache_dir = path;
    return Status::Ok();
  });
}

// ---------------------------------------------------------------------------
// Engine

deskml_status deskml_engine_create(const char* repository, const deskml_engine_options* options, deskml_engine** out) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(out);
    serving::RuntimeOptions o = options ? options->options : serving::RuntimeOptions{};
    o.repository = repository ? std::filesystem::path(repository) : std::filesystem::path();
    DESKML_ASSIGN_OR_RETURN(auto runtime, serving::Runtime::create(std::move(o)));
    *out = new deskml_engine{std::move(runtime)};
    return Status::Ok();
  });
}

void deskml_engine_destroy(deskml_engine* engine) {
  try {
    delete engine;
  } catch (...) {
    // ~Runtime does not throw; this keeps the promise that nothing crosses the C boundary.
  }
}

deskml_status deskml_engine_add_model_file(deskml_engine* engine, const char* name, const char* model_path,
                                           const char* config_toml) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(engine);
    DESKML_ASSIGN_OR_RETURN(std::string n, required_name(name, "name"));
    DESKML_CAPI_REQUIRE(model_path);
    serving::ModelConfig config;
    if (config_toml != nullptr) {
      DESKML_ASSIGN_OR_RETURN(config, serving::parse_model_config(config_toml, "the configuration of '" + n + "'"));
    }
    return engine->runtime->add_model_file(n, model_path, std::move(config));
  });
}

deskml_status deskml_engine_load(deskml_engine* engine, const char* model, int64_t version) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(engine);
    DESKML_ASSIGN_OR_RETURN(std::string m, required_name(model, "model"));
    DESKML_CHECK_ARG(version >= 0, "version must be positive, or 0 for the newest");
    return engine->runtime->load(m, version > 0 ? std::optional<int64_t>(version) : std::nullopt);
  });
}

deskml_status deskml_engine_unload(deskml_engine* engine, const char* model, int64_t version) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(engine);
    DESKML_ASSIGN_OR_RETURN(std::string m, required_name(model, "model"));
    DESKML_CHECK_ARG(version >= 0, "version must be positive, or 0 for all");
    return engine->runtime->unload(m, version > 0 ? std::optional<int64_t>(version) : std::nullopt);
  });
}

// ---------------------------------------------------------------------------
// Request options

deskml_status deskml_infer_options_create(deskml_infer_options** out) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(out);
    *out = new deskml_infer_options{};
    return Status::Ok();
  });
}

void deskml_infer_options_destroy(deskml_infer_options* options) { delete options; }

deskml_status deskml_infer_options_set_timeout_ms(deskml_infer_options* options, int64_t ms) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(options);
    options->timeout_ms = ms > 0 ? std::optional<int64_t>(ms) : std::nullopt;
    return Status::Ok();
  });
}

deskml_status deskml_infer_options_set_deadline_ns(deskml_infer_options* options, int64_t deadline_ns) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(options);
    DESKML_CHECK_ARG(deadline_ns >= 0, "the deadline must be >= 0");
    options->deadline_ns = deadline_ns > 0 ? std::optional<int64_t>(deadline_ns) : std::nullopt;
    return Status::Ok();
  });
}

deskml_status deskml_infer_options_set_priority(deskml_infer_options* options, int priority) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(options);
    options->priority = priority;
    return Status::Ok();
  });
}

deskml_status deskml_infer_options_set_version(deskml_infer_options* options, int64_t version) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(options);
    DESKML_CHECK_ARG(version >= 0, "version must be positive, or 0 for the newest");
    options->version = version > 0 ? std::optional<int64_t>(version) : std::nullopt;
    return Status::Ok();
  });
}

deskml_status deskml_infer_options_set_request_id(deskml_infer_options* options, const char* id) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(options);
    options->request_id = id ? id : "";
    return Status::Ok();
  });
}

deskml_status deskml_infer_options_set_use_cache(deskml_infer_options* options, int use_cache) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(options);
    options->use_cache = use_cache != 0;
    return Status::Ok();
  });
}

int64_t deskml_clock_ns(void) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

// ---------------------------------------------------------------------------
// Requests

deskml_status deskml_engine_run(deskml_engine* engine, const char* model, const char* const* names,
                                const deskml_tensor* const* inputs, size_t count, const deskml_infer_options* options,
                                deskml_result** out) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(engine);
    DESKML_ASSIGN_OR_RETURN(std::string m, required_name(model, "model"));
    DESKML_CAPI_REQUIRE(out);
    DESKML_ASSIGN_OR_RETURN(auto feeds, named_inputs(names, inputs, count));
    DESKML_ASSIGN_OR_RETURN(auto response,
                            engine->runtime->infer_sync(m, std::move(feeds), to_infer_options(options, Clock::now())));
    *out = make_result(std::move(response.outputs), response.version, std::move(response.request_id));
    return Status::Ok();
  });
}

deskml_status deskml_engine_submit(deskml_engine* engine, const char* model, const char* const* names,
                                   const deskml_tensor* const* inputs, size_t count,
                                   const deskml_infer_options* options, deskml_callback done, void* user_data,
                                   deskml_request** request) {
  return guarded([&]() -> Status {
    DESKML_CAPI_REQUIRE(engine);
    DESKML_ASSIGN_OR_RETURN(std::string m, required_name(model, "model"));
    DESKML_CAPI_REQUIRE(done);
    DESKML_ASSIGN_OR_RETURN(auto feeds, named_inputs(names, inputs, count));
    serving::InferOptions o = to_infer_options(options, Clock::now());
    if (o.request_id.empty()) o.request_id = serving::log::new_request_id();
    std::unique_ptr<deskml_request> handle;
    if (request != nullptr) {
      o.cancel = std::make_shared<serving::CancelToken>();
      handle.reset(new deskml_request{o.cancel, o.request_id});
    }
    auto submission = std::make_shared<Submission>();
    submission->done = done;
    submission->user_data = user_data;
    submission->submitter = std::this_thread::get_id();
    serving::Runtime::Callback answer = [submission](Result<serving::InferResponse> r) {
      submission->answer(std::move(r));
    };
    engine->runtime->infer_async(m, std::move(feeds), std::move(o), std::move(answer));
    submission->submitting.store(false, std::memory_order_release);
    if (submission->refused) return *submission->refused;
    if (request != nullptr) *request = handle.release();
    return Status::Ok();
  });
}

void deskml_request_cancel(deskml_request* request) {
  if (request == nullptr || !request->cancel) return;
  try {
    request->cancel->cancel();
  } catch (...) {
    // Cancellation callbacks answer requests; they do not throw, and nothing may cross the C boundary.
  }
}

const char* deskml_request_id(const deskml_request* request) { return request ? request->id.c_str() : ""; }

void deskml_request_destroy(deskml_request* request) { delete request; }

}  // extern "C"
