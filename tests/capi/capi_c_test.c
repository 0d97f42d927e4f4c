/* The C API used from C: compiled as C99 against include/deskml/deskml.h alone
 * and linked with libdeskml.so. Covers runs through a session and an engine,
 * asynchronous submits with callbacks, cancellation, deadlines, borrowed
 * memory, errors and the version check. `make valgrind` runs it under Memcheck.
 *
 * Usage: capi_c_test MLP_DIR   (build/models/mlp from `make models`)
 * Exits 0 when every check passes, 1 otherwise, 77 (skipped) without the model. */
#include <deskml/deskml.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int failures = 0;

#define CHECK(cond)                                                                                           \
  do {                                                                                                        \
    if (!(cond)) {                                                                                            \
      fprintf(stderr, "%s:%d: CHECK failed: %s (last error: '%s')\n", __FILE__, __LINE__, #cond,              \
              deskml_last_error());                                                                           \
      ++failures;                                                                                             \
    }                                                                                                         \
  } while (0)

#define CHECK_OK(expr) CHECK((expr) == DESKML_OK)

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

/* Reads a little-endian float32 .npy file of rank 2; returns malloc'd data. */
static float* read_npy_f32(const char* path, int64_t dims[2]) {
  FILE* f = fopen(path, "rb");
  unsigned char head[10];
  char* header = NULL;
  const char* shape;
  size_t header_len, count;
  float* data = NULL;
  if (f == NULL) return NULL;
  if (fread(head, 1, 10, f) != 10 || memcmp(head, "\x93NUMPY", 6) != 0 || head[6] != 1) goto done;
  header_len = (size_t)head[8] | ((size_t)head[9] << 8);
  header = calloc(header_len + 1, 1);
  if (header == NULL || fread(header, 1, header_len, f) != header_len) goto done;
  if (strstr(header, "'<f4'") == NULL || strstr(header, "'fortran_order': False") == NULL) goto done;
  shape = strstr(header, "'shape': (");
  if (shape == NULL) goto done;
  shape += strlen("'shape': (");
  dims[0] = strtoll(shape, (char**)&shape, 10);
  if (*shape++ != ',') goto done;
  dims[1] = strtoll(shape, NULL, 10);
  count = (size_t)(dims[0] * dims[1]);
  data = malloc(count * sizeof(float));
  if (data != NULL && fread(data, sizeof(float), count, f) != count) {
    free(data);
    data = NULL;
  }
done:
  free(header);
  fclose(f);
  return data;
}

static int close_to(const float* got, const float* want, size_t n) {
  size_t i;
  for (i = 0; i < n; ++i) {
    if (fabsf(got[i] - want[i]) > 1e-4f + 1e-3f * fabsf(want[i])) return 0;
  }
  return 1;
}

static void sleep_ms(int ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

/* A request's completion, filled in by on_done on whichever thread answers. */
struct completion {
  pthread_mutex_t mutex;
  pthread_cond_t cond;
  int calls;
  deskml_result* result;
};

static void completion_init(struct completion* c) {
  pthread_mutex_init(&c->mutex, NULL);
  pthread_cond_init(&c->cond, NULL);
  c->calls = 0;
  c->result = NULL;
}

static void completion_destroy(struct completion* c) {
  deskml_result_destroy(c->result);
  pthread_cond_destroy(&c->cond);
  pthread_mutex_destroy(&c->mutex);
}

static void on_done(void* user_data, deskml_result* result) {
  struct completion* c = user_data;
  pthread_mutex_lock(&c->mutex);
  ++c->calls;
  deskml_result_destroy(c->result); /* only ever one; a second call is counted, not leaked */
  c->result = result;
  pthread_cond_broadcast(&c->cond);
  pthread_mutex_unlock(&c->mutex);
}

static int calls_of(struct completion* c) {
  int n;
  pthread_mutex_lock(&c->mutex);
  n = c->calls;
  pthread_mutex_unlock(&c->mutex);
  return n;
}

static deskml_result* wait_for(struct completion* c) {
  pthread_mutex_lock(&c->mutex);
  while (c->calls == 0) pthread_cond_wait(&c->cond, &c->mutex);
  pthread_mutex_unlock(&c->mutex);
  return c->result;
}

static int releases = 0;
static pthread_mutex_t releases_mutex = PTHREAD_MUTEX_INITIALIZER;

static void count_release(void* user_data) {
  pthread_mutex_lock(&releases_mutex);
  releases += *(int*)user_data;
  pthread_mutex_unlock(&releases_mutex);
}

static int releases_now(void) {
  int n;
  pthread_mutex_lock(&releases_mutex);
  n = releases;
  pthread_mutex_unlock(&releases_mutex);
  return n;
}

static const char* const kNames[1] = {"features"};

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */

static void test_version(void) {
  CHECK_OK(DESKML_CHECK_VERSION());
  CHECK(deskml_api_version() >= DESKML_API_VERSION);
  CHECK(strcmp(deskml_version(), DESKML_EXPECTED_VERSION) == 0);
  CHECK(deskml_check_api_version(DESKML_API_VERSION + 1) == DESKML_VERSION_MISMATCH);
  CHECK(strstr(deskml_last_error(), "API version") != NULL);
  CHECK(deskml_check_api_version(0) == DESKML_VERSION_MISMATCH);
  CHECK_OK(DESKML_CHECK_VERSION());
  CHECK(strcmp(deskml_last_error(), "") == 0); /* a success clears the message */
  CHECK(strcmp(deskml_status_name(DESKML_DEADLINE_EXCEEDED), "DeadlineExceeded") == 0);
}

static void test_tensors(void) {
  const int64_t shape[2] = {2, 3};
  const float values[6] = {1, 2, 3, 4, 5, 6};
  const char* strings[2] = {"alpha", "beta"};
  const int64_t bad_shape[2] = {2, -3};
  deskml_tensor *t = NULL, *shared = NULL, *borrowed = NULL, *s = NULL;
  int one = 1;
  size_t len = 0;

  CHECK_OK(deskml_tensor_create(DESKML_DTYPE_FLOAT32, shape, 2, values, sizeof values, &t));
  CHECK(deskml_tensor_dtype(t) == DESKML_DTYPE_FLOAT32);
  CHECK(deskml_tensor_rank(t) == 2 && deskml_tensor_shape(t)[1] == 3);
  CHECK(deskml_tensor_element_count(t) == 6 && deskml_tensor_byte_size(t) == sizeof values);
  CHECK(deskml_tensor_data(t) != values && ((const float*)deskml_tensor_data(t))[5] == 6.0f); /* a copy */
  CHECK_OK(deskml_tensor_share(t, &shared));
  deskml_tensor_destroy(t);
  CHECK(((const float*)deskml_tensor_data(shared))[0] == 1.0f); /* the share keeps the data */
  deskml_tensor_destroy(shared);

  CHECK_OK(deskml_tensor_create(DESKML_DTYPE_INT64, shape, 2, NULL, 0, &t)); /* zeros */
  CHECK(((const int64_t*)deskml_tensor_data(t))[5] == 0);
  deskml_tensor_destroy(t);

  releases = 0;
  CHECK_OK(deskml_tensor_borrow(DESKML_DTYPE_FLOAT32, shape, 2, values, sizeof values, count_release, &one,
                                &borrowed));
  CHECK(deskml_tensor_data(borrowed) == values); /* no copy */
  CHECK(releases_now() == 0);
  deskml_tensor_destroy(borrowed);
  CHECK(releases_now() == 1);

  CHECK_OK(deskml_tensor_create_strings(strings, NULL, 2, shape, 1, &s));
  CHECK(deskml_tensor_dtype(s) == DESKML_DTYPE_STRING && deskml_tensor_data(s) == NULL);
  CHECK(strcmp(deskml_tensor_string(s, 1, &len), "beta") == 0 && len == 4);
  CHECK(deskml_tensor_string(s, 2, &len) == NULL);
  deskml_tensor_destroy(s);

  /* Errors: nothing is written to `out`, and the message says why. */
  t = NULL;
  CHECK(deskml_tensor_create(DESKML_DTYPE_FLOAT32, shape, 2, values, 5, &t) == DESKML_INVALID_ARGUMENT);
  CHECK(t == NULL && strstr(deskml_last_error(), "data_bytes") != NULL);
  CHECK(deskml_tensor_create(DESKML_DTYPE_FLOAT32, bad_shape, 2, NULL, 0, &t) == DESKML_INVALID_ARGUMENT);
  CHECK(strstr(deskml_last_error(), "negative") != NULL);
  CHECK(deskml_tensor_create((deskml_dtype)99, shape, 2, NULL, 0, &t) == DESKML_INVALID_ARGUMENT);
  CHECK(deskml_tensor_create(DESKML_DTYPE_FLOAT32, shape, 2, NULL, 0, NULL) == DESKML_INVALID_ARGUMENT);
  CHECK(strstr(deskml_last_error(), "out is NULL") != NULL);
  CHECK(deskml_tensor_borrow(DESKML_DTYPE_FLOAT32, shape, 2, (const char*)values + 1, sizeof values, NULL, NULL,
                             &t) == DESKML_INVALID_ARGUMENT);
  CHECK(strstr(deskml_last_error(), "aligned") != NULL);
  CHECK(t == NULL);
  CHECK(releases_now() == 1); /* a failed borrow never calls release */
}

static void test_session(const char* model, const float* features, const float* logits) {
  const int64_t shape[2] = {1, 30};
  const int64_t wrong_shape[2] = {1, 29};
  deskml_session* session = NULL;
  deskml_session_options* options = NULL;
  deskml_tensor *input = NULL, *wrong = NULL;
  deskml_result* result = NULL;
  const deskml_tensor* inputs[1];
  const char* bad_name[1] = {"nope"};
  deskml_dtype dtype = DESKML_DTYPE_UNDEFINED;
  int64_t dims[4] = {0, 0, 0, 0};
  size_t rank = 0;

  CHECK_OK(deskml_session_options_create(&options));
  CHECK_OK(deskml_session_options_set_threads(options, 1));
  CHECK(deskml_session_options_set_optimization_level(options, 7) == DESKML_INVALID_ARGUMENT);
  CHECK_OK(deskml_session_create(model, options, &session));
  deskml_session_options_destroy(options);
  if (session == NULL) return;

  CHECK(deskml_session_input_count(session) == 1 && strcmp(deskml_session_input_name(session, 0), "features") == 0);
  CHECK_OK(deskml_session_input_info(session, 0, &dtype, dims, 4, &rank));
  CHECK(dtype == DESKML_DTYPE_FLOAT32 && rank == 2 && dims[0] == -1 && dims[1] == 30);
  CHECK(deskml_session_output_count(session) == 1 && strcmp(deskml_session_output_name(session, 0), "logits") == 0);
  CHECK(deskml_session_input_info(session, 3, &dtype, dims, 4, &rank) == DESKML_INVALID_ARGUMENT);

  CHECK_OK(deskml_tensor_borrow(DESKML_DTYPE_FLOAT32, shape, 2, features, 30 * sizeof(float), NULL, NULL, &input));
  inputs[0] = input;
  CHECK_OK(deskml_session_run(session, kNames, inputs, 1, &result));
  if (result != NULL) {
    const deskml_tensor* out = deskml_result_find_output(result, "logits");
    CHECK(deskml_result_status(result) == DESKML_OK && deskml_result_output_count(result) == 1);
    CHECK(out != NULL && deskml_tensor_element_count(out) == 2);
    CHECK(out != NULL && close_to(deskml_tensor_data(out), logits, 2));
    deskml_result_destroy(result);
  }

  /* Wrong dtype, wrong shape, unknown input name: InvalidArgument naming the input, no result. */
  result = NULL;
  CHECK_OK(deskml_tensor_create(DESKML_DTYPE_INT64, shape, 2, NULL, 0, &wrong));
  inputs[0] = wrong;
  CHECK(deskml_session_run(session, kNames, inputs, 1, &result) == DESKML_INVALID_ARGUMENT);
  CHECK(result == NULL && strstr(deskml_last_error(), "features") != NULL);
  deskml_tensor_destroy(wrong);
  CHECK_OK(deskml_tensor_create(DESKML_DTYPE_FLOAT32, wrong_shape, 2, NULL, 0, &wrong));
  inputs[0] = wrong;
  CHECK(deskml_session_run(session, kNames, inputs, 1, &result) == DESKML_INVALID_ARGUMENT);
  CHECK(strstr(deskml_last_error(), "features") != NULL);
  deskml_tensor_destroy(wrong);
  inputs[0] = input;
  CHECK(deskml_session_run(session, bad_name, inputs, 1, &result) == DESKML_INVALID_ARGUMENT);
  CHECK(strstr(deskml_last_error(), "nope") != NULL);
  CHECK(deskml_session_run(session, kNames, inputs, 0, &result) == DESKML_INVALID_ARGUMENT);
  CHECK(strstr(deskml_last_error(), "not provided") != NULL);
  inputs[0] = NULL;
  CHECK(deskml_session_run(session, kNames, inputs, 1, &result) == DESKML_INVALID_ARGUMENT);
  CHECK(strstr(deskml_last_error(), "inputs[0]") != NULL);
  CHECK(deskml_session_run(NULL, kNames, inputs, 1, &result) == DESKML_INVALID_ARGUMENT);
  CHECK(strstr(deskml_last_error(), "session is NULL") != NULL);

  deskml_tensor_destroy(input);
  deskml_session_destroy(session);

  session = NULL;
  CHECK(deskml_session_create("/nonexistent/model.onnx", NULL, &session) == DESKML_NOT_FOUND);
  CHECK(session == NULL && strstr(deskml_last_error(), "/nonexistent/model.onnx") != NULL);
}

static deskml_engine* make_engine(const char* model) {
  deskml_engine* engine = NULL;
  deskml_engine_options* options = NULL;
  CHECK_OK(deskml_engine_options_create(&options));
  CHECK_OK(deskml_engine_options_set_threads(options, 1));
  CHECK_OK(deskml_engine_options_set_poll_interval_ms(options, 0));
  CHECK_OK(deskml_engine_create(NULL, options, &engine));
  deskml_engine_options_destroy(options);
  if (engine != NULL) CHECK_OK(deskml_engine_add_model_file(engine, "mlp", model, NULL));
  return engine;
}

static void test_engine_run(deskml_engine* engine, const float* features, const float* logits) {
  const int64_t shape[2] = {1, 30};
  deskml_tensor* input = NULL;
  deskml_result* result = NULL;
  deskml_infer_options* options = NULL;
  const deskml_tensor* inputs[1];

  CHECK_OK(deskml_tensor_create(DESKML_DTYPE_FLOAT32, shape, 2, features, 30 * sizeof(float), &input));
  inputs[0] = input;
  CHECK_OK(deskml_infer_options_create(&options));
  CHECK_OK(deskml_infer_options_set_request_id(options, "c-run-1"));
  CHECK_OK(deskml_infer_options_set_timeout_ms(options, 60000));
  CHECK_OK(deskml_engine_run(engine, "mlp", kNames, inputs, 1, options, &result));
  if (result != NULL) {
    CHECK(close_to(deskml_tensor_data(deskml_result_output(result, 0)), logits, 2));
    CHECK(strcmp(deskml_result_output_name(result, 0), "logits") == 0);
    CHECK(deskml_result_model_version(result) == 1);
    CHECK(strcmp(deskml_result_request_id(result), "c-run-1") == 0);
    CHECK(strcmp(deskml_result_error(result), "") == 0);
    deskml_result_destroy(result);
  }

  result = NULL;
  CHECK(deskml_engine_run(engine, "no_such_model", kNames, inputs, 1, NULL, &result) == DESKML_NOT_FOUND);
  CHECK(result == NULL && strstr(deskml_last_error(), "no_such_model") != NULL);
  CHECK_OK(deskml_infer_options_set_version(options, 7));
  CHECK(deskml_engine_run(engine, "mlp", kNames, inputs, 1, options, &result) == DESKML_NOT_FOUND);
  CHECK(strstr(deskml_last_error(), "version 7") != NULL);
  CHECK(deskml_engine_run(NULL, "mlp", kNames, inputs, 1, NULL, &result) == DESKML_INVALID_ARGUMENT);
  CHECK(deskml_engine_run(engine, NULL, kNames, inputs, 1, NULL, &result) == DESKML_INVALID_ARGUMENT);
  CHECK(strstr(deskml_last_error(), "model is NULL") != NULL);
  CHECK(deskml_engine_add_model_file(engine, "broken", "/nonexistent.onnx", NULL) != DESKML_OK);
  CHECK(deskml_engine_add_model_file(engine, "x", "/nonexistent.onnx", "no_such_key = 1") == DESKML_INVALID_ARGUMENT);
  CHECK(strstr(deskml_last_error(), "no_such_key") != NULL);
  deskml_infer_options_destroy(options);
  deskml_tensor_destroy(input);
}

static void test_submit(deskml_engine* engine, const float* features, const float* logits) {
  const int64_t shape[2] = {1, 30};
  deskml_tensor* input = NULL;
  const deskml_tensor* inputs[1];
  deskml_request* request = NULL;
  struct completion done;
  deskml_result* result;
  int one = 1, waited;

  releases = 0;
  completion_init(&done);
  CHECK_OK(deskml_tensor_borrow(DESKML_DTYPE_FLOAT32, shape, 2, features, 30 * sizeof(float), count_release, &one,
                                &input));
  inputs[0] = input;
  CHECK_OK(deskml_engine_submit(engine, "mlp", kNames, inputs, 1, NULL, on_done, &done, &request));
  deskml_tensor_destroy(input); /* the request holds the data until it is done with it */
  CHECK(request != NULL && strlen(deskml_request_id(request)) > 0);
  result = wait_for(&done);
  CHECK(deskml_result_status(result) == DESKML_OK);
  CHECK(close_to(deskml_tensor_data(deskml_result_find_output(result, "logits")), logits, 2));
  CHECK(request != NULL && strcmp(deskml_result_request_id(result), deskml_request_id(request)) == 0);
  deskml_request_cancel(request); /* answered already: nothing happens */
  CHECK(calls_of(&done) == 1 && deskml_result_status(result) == DESKML_OK);
  deskml_request_destroy(request);
  completion_destroy(&done);
  for (waited = 0; releases_now() == 0 && waited < 5000; waited += 5) sleep_ms(5);
  CHECK(releases_now() == 1);

  /* Refused at once: an error is returned and the callback never runs. */
  completion_init(&done);
  request = NULL;
  CHECK(deskml_engine_submit(engine, "no_such_model", kNames, inputs, 0, NULL, on_done, &done, &request) ==
        DESKML_NOT_FOUND);
  CHECK(request == NULL && strstr(deskml_last_error(), "no_such_model") != NULL);
  CHECK(deskml_engine_submit(engine, "mlp", kNames, inputs, 0, NULL, on_done, &done, NULL) ==
        DESKML_INVALID_ARGUMENT);
  CHECK(strstr(deskml_last_error(), "features") != NULL);
  CHECK(deskml_engine_submit(engine, "mlp", kNames, inputs, 0, NULL, NULL, &done, NULL) == DESKML_INVALID_ARGUMENT);
  CHECK(strstr(deskml_last_error(), "done is NULL") != NULL);
  sleep_ms(20);
  CHECK(calls_of(&done) == 0);
  completion_destroy(&done);
}

/* A request big enough to keep the model's one worker busy for a while. */
static deskml_tensor* big_input(void) {
  const int64_t shape[2] = {200000, 30};
  deskml_tensor* t = NULL;
  CHECK_OK(deskml_tensor_create(DESKML_DTYPE_FLOAT32, shape, 2, NULL, 0, &t));
  return t;
}

static void test_cancel_and_deadline(deskml_engine* engine, const float* features) {
  const int64_t shape[2] = {1, 30};
  deskml_tensor* big = big_input();
  deskml_tensor* small = NULL;
  const deskml_tensor* inputs[1];
  deskml_request *blocker_request = NULL, *request = NULL;
  deskml_infer_options* options = NULL;
  struct completion blocker, cancelled, expired;
  deskml_status blocker_status;

  completion_init(&blocker);
  completion_init(&cancelled);
  completion_init(&expired);
  CHECK_OK(deskml_tensor_create(DESKML_DTYPE_FLOAT32, shape, 2, features, 30 * sizeof(float), &small));

  /* The blocker occupies the worker; the small request queues behind it, and
   * cancelling answers it at once, on this thread, before the blocker is done. */
  inputs[0] = big;
  CHECK_OK(deskml_engine_submit(engine, "mlp", kNames, inputs, 1, NULL, on_done, &blocker, &blocker_request));
  inputs[0] = small;
  CHECK_OK(deskml_engine_submit(engine, "mlp", kNames, inputs, 1, NULL, on_done, &cancelled, &request));
  deskml_request_cancel(request);
  CHECK(calls_of(&cancelled) == 1);
  CHECK(deskml_result_status(wait_for(&cancelled)) == DESKML_CANCELLED);
  CHECK(strstr(deskml_result_error(cancelled.result), "cancelled") != NULL);
  CHECK(deskml_result_output_count(cancelled.result) == 0);
  deskml_request_cancel(request); /* twice: nothing more happens */
  deskml_request_destroy(request);

  /* A deadline that passes while the request waits in the queue. */
  CHECK_OK(deskml_infer_options_create(&options));
  CHECK_OK(deskml_infer_options_set_timeout_ms(options, 1));
  CHECK_OK(deskml_engine_submit(engine, "mlp", kNames, inputs, 1, options, on_done, &expired, NULL));
  CHECK(deskml_result_status(wait_for(&expired)) == DESKML_DEADLINE_EXCEEDED);
  CHECK(strstr(deskml_result_error(expired.result), "deadline") != NULL);
  deskml_infer_options_destroy(options);

  /* The blocker itself: cancelled mid-run, or finished already. Exactly one answer either way. */
  deskml_request_cancel(blocker_request);
  blocker_status = deskml_result_status(wait_for(&blocker));
  CHECK(blocker_status == DESKML_CANCELLED || blocker_status == DESKML_OK);
  deskml_request_destroy(blocker_request);
  sleep_ms(20);
  CHECK(calls_of(&blocker) == 1 && calls_of(&cancelled) == 1 && calls_of(&expired) == 1);

  completion_destroy(&blocker);
  completion_destroy(&cancelled);
  completion_destroy(&expired);
  deskml_tensor_destroy(small);
  deskml_tensor_destroy(big);
}

/* Destroying the engine answers what is still queued before it returns. */
static void test_destroy_answers_everything(const char* model) {
  deskml_engine* engine = make_engine(model);
  deskml_tensor* big = big_input();
  const deskml_tensor* inputs[1];
  struct completion a, b;
  if (engine == NULL || big == NULL) return;
  completion_init(&a);
  completion_init(&b);
  inputs[0] = big;
  CHECK_OK(deskml_engine_submit(engine, "mlp", kNames, inputs, 1, NULL, on_done, &a, NULL));
  CHECK_OK(deskml_engine_submit(engine, "mlp", kNames, inputs, 1, NULL, on_done, &b, NULL));
  deskml_tensor_destroy(big);
  deskml_engine_destroy(engine);
  CHECK(calls_of(&a) == 1 && calls_of(&b) == 1);
  completion_destroy(&a);
  completion_destroy(&b);
}

int main(int argc, char** argv) {
  char path[4096];
  int64_t in_dims[2] = {0, 0}, out_dims[2] = {0, 0};
  float *features, *logits;
  deskml_engine* engine;
  if (argc != 2) {
    fprintf(stderr, "usage: capi_c_test MLP_DIR\n");
    return 2;
  }
  snprintf(path, sizeof path, "%s/inputs/features.npy", argv[1]);
  features = read_npy_f32(path, in_dims);
  snprintf(path, sizeof path, "%s/outputs/logits.npy", argv[1]);
  logits = read_npy_f32(path, out_dims);
  if (features == NULL || logits == NULL || in_dims[1] != 30 || out_dims[1] != 2) {
    fprintf(stderr, "skipped: %s lacks the MLP reference model (run `make models`)\n", argv[1]);
    free(features);
    free(logits);
    return 77;
  }
  snprintf(path, sizeof path, "%s/model.onnx", argv[1]);

  test_version();
  test_tensors();
  test_session(path, features, logits);
  engine = make_engine(path);
  if (engine != NULL) {
    test_engine_run(engine, features, logits);
    test_submit(engine, features, logits);
    test_cancel_and_deadline(engine, features);
    deskml_engine_destroy(engine);
  }
  test_destroy_answers_everything(path);

  free(features);
  free(logits);
  if (failures > 0) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("all C API checks passed\n");
  return 0;
}
