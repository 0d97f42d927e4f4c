/* deskml C API: ONNX inference for applications written in C or any language
 * with a C foreign-function interface. docs/C_API.md has the full guide.
 *
 * Conventions
 *  - Every object is an opaque handle made by a deskml_*_create (or a function
 *    that says it creates one) and released by the matching deskml_*_destroy.
 *    Destroy functions accept NULL.
 *  - Functions that can fail return a deskml_status. On failure the calling
 *    thread's deskml_last_error() says why, and no out-parameter is written.
 *    On success the message is cleared.
 *  - Strings passed in are UTF-8 and NUL-terminated, and are copied before the
 *    call returns. Strings handed out belong to the object they came from.
 *  - No C++ exception crosses this interface; an unexpected internal failure is
 *    reported as DESKML_INTERNAL.
 *
 * Thread-safety
 *  - An engine and a session may be used from any number of threads at once.
 *  - Tensors and results are immutable once made; several threads may read one
 *    concurrently. Destroying a handle must not race with other uses of it.
 *  - Option objects are plain values: do not change one while another thread
 *    reads it. A call copies what it needs, so options may be reused or
 *    destroyed as soon as the call returns.
 *  - deskml_last_error() is per thread.
 */
#ifndef DESKML_DESKML_H
#define DESKML_DESKML_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#  if defined(DESKML_BUILDING_LIBRARY)
#    define DESKML_API __declspec(dllexport)
#  else
#    define DESKML_API __declspec(dllimport)
#  endif
#else
#  define DESKML_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Versions                                                                 */

/* The interface this header describes. It grows by one whenever a function
 * is added or a documented behaviour changes; an application compiled against
 * version N runs with any library that supports N. */
#define DESKML_API_VERSION 2

/* The library's release, "MAJOR.MINOR.PATCH". Static storage. */
DESKML_API const char* deskml_version(void);
/* The newest interface version the loaded library implements. */
DESKML_API int deskml_api_version(void);
/* DESKML_OK when the loaded library implements `header_version` (pass
 * DESKML_API_VERSION), DESKML_VERSION_MISMATCH otherwise. Call once at start-up
 * so a stale libdeskml.so is reported instead of misbehaving. */
#define DESKML_CHECK_VERSION() deskml_check_api_version(DESKML_API_VERSION)

/* ------------------------------------------------------------------------ */
/* Status codes and errors                                                  */

typedef enum deskml_status {
  DESKML_OK = 0,
  DESKML_INVALID_ARGUMENT = 1,   /* a bad argument: NULL handle, wrong shape, dtype or input name */
  DESKML_INVALID_MODEL = 2,      /* the model file is malformed or inconsistent */
  DESKML_UNSUPPORTED = 3,        /* valid ONNX that deskml does not implement */
  DESKML_NOT_FOUND = 4,          /* unknown model, version, input or file */
  DESKML_OUT_OF_RANGE = 5,       /* a size or depth limit was exceeded */
  DESKML_IO_ERROR = 6,           /* the file system refused */
  DESKML_RESOURCE_EXHAUSTED = 7, /* out of memory, a full queue, the memory budget */
  DESKML_CANCELLED = 8,          /* the request was cancelled */
  DESKML_DEADLINE_EXCEEDED = 9,  /* the request's deadline passed */
  DESKML_UNAVAILABLE = 10,       /* the model cannot serve now (failed load, engine shutting down) */
  DESKML_INTERNAL = 11,          /* a bug in deskml */
  DESKML_VERSION_MISMATCH = 12   /* the library does not implement the requested API version */
} deskml_status;

DESKML_API deskml_status deskml_check_api_version(int header_version);

/* Logs are JSON lines on stderr, level "info" unless $DESKML_LOG_LEVEL says
 * otherwise. Sets the level for the whole process: "trace", "debug", "info",
 * "warn", "error", "critical" or "off". DESKML_INVALID_ARGUMENT for anything
 * else (the level is then unchanged). Thread-safe. Since API version 2. */
DESKML_API deskml_status deskml_set_log_level(const char* level);

/* "OK", "InvalidArgument", "NotFound", ...: static storage. */
DESKML_API const char* deskml_status_name(deskml_status status);
/* The message of the last call on this thread that returned a deskml_status:
 * empty after a success. Valid until this thread's next deskml call. */
DESKML_API const char* deskml_last_error(void);

/* ------------------------------------------------------------------------ */
/* Tensors                                                                  */

/* Element types; the values are ONNX's TensorProto.DataType. */
typedef enum deskml_dtype {
  DESKML_DTYPE_UNDEFINED = 0,
  DESKML_DTYPE_FLOAT32 = 1,
  DESKML_DTYPE_UINT8 = 2,
  DESKML_DTYPE_INT8 = 3,
  DESKML_DTYPE_UINT16 = 4,
  DESKML_DTYPE_INT16 = 5,
  DESKML_DTYPE_INT32 = 6,
  DESKML_DTYPE_INT64 = 7,
  DESKML_DTYPE_STRING = 8,
  DESKML_DTYPE_BOOL = 9, /* one byte per element, 0 or 1 */
  DESKML_DTYPE_FLOAT16 = 10,
  DESKML_DTYPE_FLOAT64 = 11,
  DESKML_DTYPE_UINT32 = 12,
  DESKML_DTYPE_UINT64 = 13,
  DESKML_DTYPE_BFLOAT16 = 16
} deskml_dtype;

/* Bytes per element (0 for STRING and UNDEFINED). */
DESKML_API size_t deskml_dtype_size(deskml_dtype dtype);
/* "float32", "int64", "bool", "string", ...: static storage; "undefined" for unknown values. */
DESKML_API const char* deskml_dtype_name(deskml_dtype dtype);

/* A dense, row-major tensor. Immutable once created. */
typedef struct deskml_tensor deskml_tensor;

/* Creates a tensor holding a copy of `data` (`data_bytes` must equal the
 * element count times deskml_dtype_size). With data NULL and data_bytes 0 the
 * tensor is zero-filled. The caller may reuse `data` as soon as this returns.
 * `shape` holds `rank` non-negative dims; rank 0 makes a scalar. */
DESKML_API deskml_status deskml_tensor_create(deskml_dtype dtype, const int64_t* shape, size_t rank, const void* data,
                                              size_t data_bytes, deskml_tensor** out);

/* Called once when deskml no longer reads a borrowed buffer. */
typedef void (*deskml_release_fn)(void* user_data);

/* Creates a tensor over the caller's memory without copying it. deskml never
 * writes to it. The memory must stay valid and unchanged until `release` is
 * called with `release_user_data`: that happens once the tensor handle is
 * destroyed AND every request and result that uses the memory is done with it
 * (an output can be a view of an input, so a result may keep it in use). It may
 * run on any thread, including a runtime thread. With `release` NULL nothing
 * is called and the caller must keep the memory valid until it has destroyed
 * the tensor and every result of a request that used it.
 * `data` must be aligned to the element size. STRING tensors cannot be borrowed. */
DESKML_API deskml_status deskml_tensor_borrow(deskml_dtype dtype, const int64_t* shape, size_t rank, const void* data,
                                              size_t data_bytes, deskml_release_fn release, void* release_user_data,
                                              deskml_tensor** out);

/* Creates a STRING tensor from `count` strings (count = the product of the
 * dims). `lengths` gives each string's byte length (strings may then hold NUL
 * bytes); with `lengths` NULL the strings are NUL-terminated. Copies. */
DESKML_API deskml_status deskml_tensor_create_strings(const char* const* values, const size_t* lengths, size_t count,
                                                      const int64_t* shape, size_t rank, deskml_tensor** out);

/* A second handle to the same tensor (no copy). Destroy both. Use it to keep an
 * output beyond the life of its result. */
DESKML_API deskml_status deskml_tensor_share(const deskml_tensor* tensor, deskml_tensor** out);
DESKML_API void deskml_tensor_destroy(deskml_tensor* tensor);

/* Accessors: safe with any tensor handle; for NULL they return UNDEFINED, 0 or NULL. */
DESKML_API deskml_dtype deskml_tensor_dtype(const deskml_tensor* tensor);
DESKML_API size_t deskml_tensor_rank(const deskml_tensor* tensor);
/* `rank` dims, owned by the handle. */
DESKML_API const int64_t* deskml_tensor_shape(const deskml_tensor* tensor);
DESKML_API int64_t deskml_tensor_element_count(const deskml_tensor* tensor);
/* Element count times element size; 0 for STRING tensors. */
DESKML_API size_t deskml_tensor_byte_size(const deskml_tensor* tensor);
/* The elements, row-major; NULL for STRING tensors. Owned by the tensor: valid
 * as long as any handle to it (or a result holding it) lives. */
DESKML_API const void* deskml_tensor_data(const deskml_tensor* tensor);
/* Element `index` of a STRING tensor and its byte length (NUL-terminated as
 * well); NULL when the tensor is not STRING or the index is out of range. */
DESKML_API const char* deskml_tensor_string(const deskml_tensor* tensor, size_t index, size_t* length);

/* ------------------------------------------------------------------------ */
/* Results                                                                  */

/* The outcome of one inference: its status and, on success, named outputs in
 * the model's declared order. Owned by whoever received it; destroy it once. */
typedef struct deskml_result deskml_result;

DESKML_API void deskml_result_destroy(deskml_result* result);
/* DESKML_OK, or why the request failed (a callback's only way to learn it). */
DESKML_API deskml_status deskml_result_status(const deskml_result* result);
/* Empty when the status is DESKML_OK. Owned by the result. */
DESKML_API const char* deskml_result_error(const deskml_result* result);
DESKML_API size_t deskml_result_output_count(const deskml_result* result);
/* Owned by the result; NULL when index is out of range. */
DESKML_API const char* deskml_result_output_name(const deskml_result* result, size_t index);
/* Owned by the result (do not destroy; deskml_tensor_share keeps one longer). */
DESKML_API const deskml_tensor* deskml_result_output(const deskml_result* result, size_t index);
/* The output called `name`, or NULL. */
DESKML_API const deskml_tensor* deskml_result_find_output(const deskml_result* result, const char* name);
/* The model version that answered (0 for a session run or a failed request). */
DESKML_API int64_t deskml_result_model_version(const deskml_result* result);
/* The request's id (generated unless the options set one); "" for a session run. */
DESKML_API const char* deskml_result_request_id(const deskml_result* result);

/* ------------------------------------------------------------------------ */
/* Sessions: one model file, run directly on the calling thread             */

typedef struct deskml_session deskml_session;
typedef struct deskml_session_options deskml_session_options;

DESKML_API deskml_status deskml_session_options_create(deskml_session_options** out);
DESKML_API void deskml_session_options_destroy(deskml_session_options* options);
/* Threads for one run; 0 (the default) = the machine's physical cores. */
DESKML_API deskml_status deskml_session_options_set_threads(deskml_session_options* options, int threads);
/* 0 none, 1 clean-up and constant folding, 2 also fusions and layouts (default). */
DESKML_API deskml_status deskml_session_options_set_optimization_level(deskml_session_options* options, int level);

/* Loads, optimises and warms up the model in `model_path`. `options` may be NULL. */
DESKML_API deskml_status deskml_session_create(const char* model_path, const deskml_session_options* options,
                                               deskml_session** out);
/* Must not race with a run of the same session. */
DESKML_API void deskml_session_destroy(deskml_session* session);

/* The inputs a caller feeds and the outputs a run returns, in declared order.
 * Names are owned by the session. Dims are copied into `dims` (up to
 * `capacity`), with -1 for a dynamic dim; `*rank` receives the full rank, or
 * SIZE_MAX when the model does not declare it. `dtype`, `dims` and `rank` may
 * be NULL. */
DESKML_API size_t deskml_session_input_count(const deskml_session* session);
DESKML_API const char* deskml_session_input_name(const deskml_session* session, size_t index);
DESKML_API deskml_status deskml_session_input_info(const deskml_session* session, size_t index, deskml_dtype* dtype,
                                                   int64_t* dims, size_t capacity, size_t* rank);
DESKML_API size_t deskml_session_output_count(const deskml_session* session);
DESKML_API const char* deskml_session_output_name(const deskml_session* session, size_t index);
DESKML_API deskml_status deskml_session_output_info(const deskml_session* session, size_t index, deskml_dtype* dtype,
                                                    int64_t* dims, size_t capacity, size_t* rank);

/* Runs the model on the calling thread. `names[i]` names `inputs[i]`; every
 * required input must be given. On success `*out` receives a result whose
 * status is DESKML_OK; on failure (wrong name, dtype, rank or dim; a failing
 * node) nothing runs or the run stops, and no result is made. Several threads
 * may run one session at once. */
DESKML_API deskml_status deskml_session_run(const deskml_session* session, const char* const* names,
                                            const deskml_tensor* const* inputs, size_t count, deskml_result** out);

/* ------------------------------------------------------------------------ */
/* Engines: the serving runtime over a model repository                     */

/* An engine serves the models of a repository folder
 * (<repository>/<model>/<version>/model.onnx plus an optional config.toml;
 * docs/SERVING.md) and single files added by name. It loads models when first
 * used, batches concurrent requests where configured, and unloads idle ones. */
typedef struct deskml_engine deskml_engine;
typedef struct deskml_engine_options deskml_engine_options;

DESKML_API deskml_status deskml_engine_options_create(deskml_engine_options** out);
DESKML_API void deskml_engine_options_destroy(deskml_engine_options* options);
/* The thread budget shared by all models; 0 (default) = physical cores. */
DESKML_API deskml_status deskml_engine_options_set_threads(deskml_engine_options* options, int threads);
/* Idle models are evicted above this estimate; 0 (default) = half the machine's memory. */
DESKML_API deskml_status deskml_engine_options_set_memory_budget(deskml_engine_options* options, uint64_t bytes);
/* How long a model stays loaded after its last request unless its config says
 * otherwise; -1 = forever, 0 = unload when idle. Default 5 minutes. */
DESKML_API deskml_status deskml_engine_options_set_keep_alive_ms(deskml_engine_options* options, int64_t ms);
/* How often loaded models' folders are checked for new versions; 0 = never. Default 2000. */
DESKML_API deskml_status deskml_engine_options_set_poll_interval_ms(deskml_engine_options* options, int64_t ms);
/* Where result caches live; default $XDG_CACHE_HOME/deskml or ~/.cache/deskml. */
DESKML_API deskml_status deskml_engine_options_set_cache_dir(deskml_engine_options* options, const char* path);

/* Starts an engine over `repository` (a folder; NULL for none, then only models
 * added with deskml_engine_add_model_file serve). `options` may be NULL. */
DESKML_API deskml_status deskml_engine_create(const char* repository, const deskml_engine_options* options,
                                              deskml_engine** out);
/* Stops taking requests, answers those still waiting for a model to load with
 * DESKML_UNAVAILABLE, lets queued ones finish (their callbacks run before this
 * returns) and unloads everything. Must not be called from a callback. */
DESKML_API void deskml_engine_destroy(deskml_engine* engine);

/* Serves one model file as version 1 of `name`, with the default configuration
 * or the TOML text of a config.toml (`config_toml` may be NULL). */
DESKML_API deskml_status deskml_engine_add_model_file(deskml_engine* engine, const char* name, const char* model_path,
                                                      const char* config_toml);
/* Loads a model (version 0 = newest) and waits until it is ready or failed. */
DESKML_API deskml_status deskml_engine_load(deskml_engine* engine, const char* model, int64_t version);
/* Unloads a model's versions (version 0 = all); queued requests finish first. */
DESKML_API deskml_status deskml_engine_unload(deskml_engine* engine, const char* model, int64_t version);

/* Per-request options. */
typedef struct deskml_infer_options deskml_infer_options;

DESKML_API deskml_status deskml_infer_options_create(deskml_infer_options** out);
DESKML_API void deskml_infer_options_destroy(deskml_infer_options* options);
/* A deadline `ms` after the request is submitted (not after this call). <= 0 clears it. */
DESKML_API deskml_status deskml_infer_options_set_timeout_ms(deskml_infer_options* options, int64_t ms);
/* An absolute deadline on deskml_clock_ns()'s clock; 0 clears it. Overrides a timeout. */
DESKML_API deskml_status deskml_infer_options_set_deadline_ns(deskml_infer_options* options, int64_t deadline_ns);
/* Among the queued requests of one model version, higher runs first; ties in
 * arrival order. Default 0. */
DESKML_API deskml_status deskml_infer_options_set_priority(deskml_infer_options* options, int priority);
/* A version of the model (positive); 0 (default) = the newest ready one. */
DESKML_API deskml_status deskml_infer_options_set_version(deskml_infer_options* options, int64_t version);
/* Appears in logs and the result; generated when NULL or empty (default). */
DESKML_API deskml_status deskml_infer_options_set_request_id(deskml_infer_options* options, const char* id);
/* 0 skips the model's result cache for this request. Default 1. */
DESKML_API deskml_status deskml_infer_options_set_use_cache(deskml_infer_options* options, int use_cache);

/* A monotonic clock in nanoseconds, the one deadlines are measured against. */
DESKML_API int64_t deskml_clock_ns(void);

/* Runs one request and waits for it. `options` may be NULL. On success `*out`
 * receives a result with status DESKML_OK; every failure (unknown model, bad
 * inputs, a full queue, cancellation, the deadline) is returned instead and no
 * result is made. */
DESKML_API deskml_status deskml_engine_run(deskml_engine* engine, const char* model, const char* const* names,
                                           const deskml_tensor* const* inputs, size_t count,
                                           const deskml_infer_options* options, deskml_result** out);

/* A submitted request: lets its submitter cancel it. Independent of the
 * completion: destroy it whenever convenient, before or after the callback. */
typedef struct deskml_request deskml_request;

/* Receives the result of a submitted request, which it then owns (destroy it
 * with deskml_result_destroy, possibly later and on another thread). Runs on a
 * runtime thread, or on the thread that calls deskml_request_cancel, which
 * answers the request at once. Keep it short: it occupies a worker. It may
 * submit further requests; it must not destroy the engine. */
typedef void (*deskml_callback)(void* user_data, deskml_result* result);

/* Submits a request without waiting. Inputs are shared, not copied: the caller
 * may destroy its tensor handles right away.
 * - Returns DESKML_OK when the request was accepted: `done` will then be called
 *   exactly once with the result, success or failure (cancelled, deadline
 *   passed, the model failed to load, the run failed), possibly before this
 *   function returns.
 * - Returns an error when the request is refused at once (NULL arguments, an
 *   unknown model or version, or, for a loaded model, bad inputs or a full
 *   queue): `done` is then never called. For a model that first has to load,
 *   the inputs are checked after the load and a mismatch reaches `done`.
 * `request` may be NULL; otherwise it receives a handle to destroy. */
DESKML_API deskml_status deskml_engine_submit(deskml_engine* engine, const char* model, const char* const* names,
                                              const deskml_tensor* const* inputs, size_t count,
                                              const deskml_infer_options* options, deskml_callback done,
                                              void* user_data, deskml_request** request);
/* Cancels the request: wherever it is (waiting for a load, queued, running) it
 * is answered with DESKML_CANCELLED, its callback running on this thread before
 * this returns. Does nothing once the request has been answered. Thread-safe. */
DESKML_API void deskml_request_cancel(deskml_request* request);
/* The request's id, owned by the handle. */
DESKML_API const char* deskml_request_id(const deskml_request* request);
/* Releases the handle; does not cancel the request. */
DESKML_API void deskml_request_destroy(deskml_request* request);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DESKML_DESKML_H */
