// The C API from C++: includes only <deskml/deskml.h> and links only libdeskml.so,
// as an application would. The C99 program beside it (capi_c_test.c) checks the
// same surface from C; this suite adds model repositories, versions, threads,
// chained submits and the reference outputs of the MLP.
#include <deskml/deskml.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const fs::path kMlp = DESKML_MLP_DIR;

// Owners for the C handles.
struct Deleter {
  void operator()(deskml_engine* p) const { deskml_engine_destroy(p); }
  void operator()(deskml_session* p) const { deskml_session_destroy(p); }
  void operator()(deskml_tensor* p) const { deskml_tensor_destroy(p); }
  void operator()(deskml_result* p) const { deskml_result_destroy(p); }
  void operator()(deskml_request* p) const { deskml_request_destroy(p); }
  void operator()(deskml_infer_options* p) const { deskml_infer_options_destroy(p); }
  void operator()(deskml_engine_options* p) const { deskml_engine_options_destroy(p); }
};
template <typename T>
using Owned = std::unique_ptr<T, Deleter>;

// A float32 .npy file of any rank (version 1 header, little-endian, C order).
struct Npy {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

Npy read_npy(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Npy npy;
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) return npy;
  const size_t header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
  const std::string header = bytes.substr(10, header_len);
  if (header.find("'<f4'") == std::string::npos) return npy;
  size_t p = header.find("'shape': (") + std::strlen("'shape': (");
  while (header[p] != ')') {
    char* end = nullptr;
    npy.shape.push_back(std::strtoll(header.c_str() + p, &end, 10));
    p = static_cast<size_t>(end - header.c_str());
    while (header[p] == ',' || header[p] == ' ') ++p;
  }
  npy.values.resize((bytes.size() - 10 - header_len) / sizeof(float));
  std::memcpy(npy.values.data(), bytes.data() + 10 + header_len, npy.values.size() * sizeof(float));
  return npy;
}

void expect_close(const deskml_tensor* got, const Npy& want) {
  ASSERT_NE(got, nullptr);
  ASSERT_EQ(deskml_tensor_dtype(got), DESKML_DTYPE_FLOAT32);
  ASSERT_EQ(deskml_tensor_rank(got), want.shape.size());
  for (size_t i = 0; i < want.shape.size(); ++i) EXPECT_EQ(deskml_tensor_shape(got)[i], want.shape[i]);
  ASSERT_EQ(static_cast<size_t>(deskml_tensor_element_count(got)), want.values.size());
  const auto* data = static_cast<const float*>(deskml_tensor_data(got));
  for (size_t i = 0; i < want.values.size(); ++i) {
    EXPECT_NEAR(data[i], want.values[i], 1e-4 + 1e-3 * std::fabs(want.values[i])) << "element " << i;
  }
}

std::string last_error() { return deskml_last_error(); }

// A fresh folder removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "deskml-capi-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// One completion: the callback's result, and how many times it was called.
struct Completion {
  std::mutex mutex;
  std::condition_variable cv;
  int calls = 0;
  Owned<deskml_result> result;
  std::thread::id thread;

  static void on_done(void* user_data, deskml_result* result) {
    auto* c = static_cast<Completion*>(user_data);
    std::lock_guard lock(c->mutex);
    ++c->calls;
    c->result.reset(result);
    c->thread = std::this_thread::get_id();
    c->cv.notify_all();
  }
  deskml_result* wait() {
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return calls > 0; });
    return result.get();
  }
  int count() {
    std::lock_guard lock(mutex);
    return calls;
  }
};

const char* const kFeatures[] = {"features"};

class CApi : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kMlp / "model.onnx")) GTEST_SKIP() << "reference models missing: run `make models`";
    features_ = read_npy(kMlp / "inputs" / "features.npy");
    logits_ = read_npy(kMlp / "outputs" / "logits.npy");
    ASSERT_EQ(features_.shape.size(), 2u);
    ASSERT_EQ(features_.shape[1], 30);
  }

  Owned<deskml_tensor> features_tensor() const {
    deskml_tensor* t = nullptr;
    EXPECT_EQ(deskml_tensor_create(DESKML_DTYPE_FLOAT32, features_.shape.data(), 2, features_.values.data(),
                                   features_.values.size() * sizeof(float), &t),
              DESKML_OK)
        << last_error();
    return Owned<deskml_tensor>(t);
  }

  static Owned<deskml_engine> engine(const char* repository = nullptr) {
    deskml_engine_options* o = nullptr;
    EXPECT_EQ(deskml_engine_options_create(&o), DESKML_OK);
    Owned<deskml_engine_options> options(o);
    EXPECT_EQ(deskml_engine_options_set_threads(o, 2), DESKML_OK);
    EXPECT_EQ(deskml_engine_options_set_poll_interval_ms(o, 0), DESKML_OK);
    deskml_engine* e = nullptr;
    EXPECT_EQ(deskml_engine_create(repository, o, &e), DESKML_OK) << last_error();
    return Owned<deskml_engine>(e);
  }

  Owned<deskml_engine> mlp_engine() const {
    auto e = engine();
    EXPECT_EQ(deskml_engine_add_model_file(e.get(), "mlp", (kMlp / "model.onnx").c_str(), nullptr), DESKML_OK)
        << last_error();
    return e;
  }

  Npy features_, logits_;
};

TEST_F(CApi, VersionCheck) {
  EXPECT_EQ(DESKML_CHECK_VERSION(), DESKML_OK);
  EXPECT_EQ(deskml_api_version(), DESKML_API_VERSION);
  EXPECT_STREQ(deskml_version(), DESKML_EXPECTED_VERSION);
  EXPECT_EQ(deskml_check_api_version(DESKML_API_VERSION + 1), DESKML_VERSION_MISMATCH);
  EXPECT_NE(last_error().find(std::to_string(DESKML_API_VERSION + 1)), std::string::npos) << last_error();
  EXPECT_STREQ(deskml_status_name(DESKML_VERSION_MISMATCH), "VersionMismatch");
  EXPECT_STREQ(deskml_status_name(static_cast<deskml_status>(1000)), "Unknown");
  EXPECT_STREQ(deskml_dtype_name(DESKML_DTYPE_FLOAT16), "float16");
  EXPECT_EQ(deskml_dtype_size(DESKML_DTYPE_BFLOAT16), 2u);
  EXPECT_EQ(deskml_dtype_size(DESKML_DTYPE_STRING), 0u);
}

// What the library writes to stderr while fn runs.
template <typename Fn>
std::string captured_stderr(Fn&& fn) {
  std::fflush(stderr);
  char path[] = "/tmp/deskml_capi_stderr_XXXXXX";
  const int fd = ::mkstemp(path);
  const int saved = ::dup(2);
  ::dup2(fd, 2);
  fn();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ::close(fd);
  ::unlink(path);
  return text;
}

TEST_F(CApi, LogLevelIsSettable) {
  EXPECT_EQ(deskml_set_log_level("loud"), DESKML_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("'loud'"), std::string::npos) << last_error();
  EXPECT_EQ(deskml_set_log_level(nullptr), DESKML_INVALID_ARGUMENT);
  ASSERT_EQ(deskml_set_log_level("off"), DESKML_OK) << last_error();
  EXPECT_EQ(captured_stderr([] { engine(); }), "");
  ASSERT_EQ(deskml_set_log_level("info"), DESKML_OK);
  EXPECT_NE(captured_stderr([] { engine(); }).find("\"event\":\"runtime_started\""), std::string::npos);
  const char* env = std::getenv("DESKML_LOG_LEVEL");
  EXPECT_EQ(deskml_set_log_level(env ? env : "info"), DESKML_OK);
}

TEST_F(CApi, LastErrorIsPerThread) {
  deskml_tensor* t = nullptr;
  EXPECT_EQ(deskml_tensor_create(DESKML_DTYPE_FLOAT32, nullptr, 1, nullptr, 0, &t), DESKML_INVALID_ARGUMENT);
  const std::string here = last_error();
  EXPECT_NE(here.find("shape is NULL"), std::string::npos) << here;
  std::string there = "unset";
  std::thread([&] { there = deskml_last_error(); }).join();
  EXPECT_EQ(there, "");
  EXPECT_EQ(last_error(), here);
}

TEST_F(CApi, SessionMatchesThePyTorchReference) {
  deskml_session* s = nullptr;
  ASSERT_EQ(deskml_session_create((kMlp / "model.onnx").c_str(), nullptr, &s), DESKML_OK) << last_error();
  Owned<deskml_session> session(s);
  auto input = features_tensor();
  const deskml_tensor* inputs[] = {input.get()};
  deskml_result* r = nullptr;
  ASSERT_EQ(deskml_session_run(s, kFeatures, inputs, 1, &r), DESKML_OK) << last_error();
  Owned<deskml_result> result(r);
  EXPECT_EQ(deskml_result_model_version(r), 0);
  EXPECT_STREQ(deskml_result_request_id(r), "");
  expect_close(deskml_result_find_output(r, "logits"), logits_);
  EXPECT_EQ(deskml_result_find_output(r, "nope"), nullptr);
  EXPECT_EQ(deskml_result_output(r, 1), nullptr);

  // An output shared beyond its result stays valid.
  deskml_tensor* kept = nullptr;
  ASSERT_EQ(deskml_tensor_share(deskml_result_output(r, 0), &kept), DESKML_OK);
  Owned<deskml_tensor> keep(kept);
  result.reset();
  expect_close(kept, logits_);
}

TEST_F(CApi, OneSessionRunsOnManyThreads) {
  deskml_session* s = nullptr;
  ASSERT_EQ(deskml_session_create((kMlp / "model.onnx").c_str(), nullptr, &s), DESKML_OK) << last_error();
  Owned<deskml_session> session(s);
  auto input = features_tensor();
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      const deskml_tensor* inputs[] = {input.get()};
      for (int i = 0; i < 50; ++i) {
        deskml_result* r = nullptr;
        if (deskml_session_run(s, kFeatures, inputs, 1, &r) != DESKML_OK) continue;
        const auto* y = static_cast<const float*>(deskml_tensor_data(deskml_result_output(r, 0)));
        if (std::fabs(y[0] - logits_.values[0]) < 1e-3 && std::fabs(y[1] - logits_.values[1]) < 1e-3) ++good;
        deskml_result_destroy(r);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 200);
}

TEST_F(CApi, RepositoryServesVersions) {
  TempDir dir;
  for (const char* v : {"1", "2"}) {
    fs::create_directories(dir.path() / "mlp" / v);
    fs::copy_file(kMlp / "model.onnx", dir.path() / "mlp" / v / "model.onnx");
  }
  auto e = engine(dir.path().c_str());
  ASSERT_TRUE(e);
  auto input = features_tensor();
  const deskml_tensor* inputs[] = {input.get()};

  deskml_result* r = nullptr;
  ASSERT_EQ(deskml_engine_run(e.get(), "mlp", kFeatures, inputs, 1, nullptr, &r), DESKML_OK) << last_error();
  Owned<deskml_result> newest(r);
  EXPECT_EQ(deskml_result_model_version(r), 2);
  expect_close(deskml_result_output(r, 0), logits_);

  deskml_infer_options* o = nullptr;
  ASSERT_EQ(deskml_infer_options_create(&o), DESKML_OK);
  Owned<deskml_infer_options> options(o);
  ASSERT_EQ(deskml_infer_options_set_version(o, 1), DESKML_OK);
  ASSERT_EQ(deskml_infer_options_set_priority(o, 5), DESKML_OK);
  ASSERT_EQ(deskml_infer_options_set_use_cache(o, 0), DESKML_OK);
  ASSERT_EQ(deskml_engine_run(e.get(), "mlp", kFeatures, inputs, 1, o, &r), DESKML_OK) << last_error();
  Owned<deskml_result> first(r);
  EXPECT_EQ(deskml_result_model_version(r), 1);

  EXPECT_EQ(deskml_engine_load(e.get(), "mlp", 2), DESKML_OK) << last_error();
  EXPECT_EQ(deskml_engine_unload(e.get(), "mlp", 0), DESKML_OK) << last_error();
  EXPECT_EQ(deskml_engine_load(e.get(), "nope", 0), DESKML_NOT_FOUND);
  EXPECT_NE(last_error().find("nope"), std::string::npos) << last_error();
  EXPECT_EQ(deskml_engine_load(e.get(), "mlp", -1), DESKML_INVALID_ARGUMENT);

  deskml_engine* bad = nullptr;
  EXPECT_NE(deskml_engine_create((dir.path() / "missing").c_str(), nullptr, &bad), DESKML_OK);
  EXPECT_EQ(bad, nullptr);
  EXPECT_FALSE(last_error().empty());
}

TEST_F(CApi, InputsOfAModelThatMustLoadFirstAreCheckedThroughTheCallback) {
  TempDir dir;
  fs::create_directories(dir.path() / "mlp" / "1");
  fs::copy_file(kMlp / "model.onnx", dir.path() / "mlp" / "1" / "model.onnx");
  auto e = engine(dir.path().c_str());
  const int64_t shape[] = {1, 29};
  deskml_tensor* t = nullptr;
  ASSERT_EQ(deskml_tensor_create(DESKML_DTYPE_FLOAT32, shape, 2, nullptr, 0, &t), DESKML_OK);
  Owned<deskml_tensor> wrong(t);
  const deskml_tensor* inputs[] = {t};
  Completion done;
  ASSERT_EQ(deskml_engine_submit(e.get(), "mlp", kFeatures, inputs, 1, nullptr, Completion::on_done, &done, nullptr),
            DESKML_OK)
      << last_error();
  deskml_result* r = done.wait();
  EXPECT_EQ(deskml_result_status(r), DESKML_INVALID_ARGUMENT);
  EXPECT_NE(std::string(deskml_result_error(r)).find("features"), std::string::npos) << deskml_result_error(r);

  // Now loaded: the same mistake is refused at once and the callback never runs.
  Completion refused;
  EXPECT_EQ(deskml_engine_submit(e.get(), "mlp", kFeatures, inputs, 1, nullptr, Completion::on_done, &refused, nullptr),
            DESKML_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("features"), std::string::npos) << last_error();
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(refused.count(), 0);
}

TEST_F(CApi, ManyThreadsSubmitToOneEngine) {
  auto e = mlp_engine();
  auto input = features_tensor();
  constexpr int kThreads = 4, kEach = 100;
  std::vector<Completion> done(kThreads * kEach);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const deskml_tensor* inputs[] = {input.get()};
      for (int i = 0; i < kEach; ++i) {
        auto& c = done[static_cast<size_t>(t * kEach + i)];
        EXPECT_EQ(deskml_engine_submit(e.get(), "mlp", kFeatures, inputs, 1, nullptr, Completion::on_done, &c, nullptr),
                  DESKML_OK)
            << last_error();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& c : done) {
    deskml_result* r = c.wait();
    ASSERT_EQ(deskml_result_status(r), DESKML_OK) << deskml_result_error(r);
    expect_close(deskml_result_output(r, 0), logits_);
  }
  for (auto& c : done) EXPECT_EQ(c.count(), 1);
}

// A callback may submit the next request, as an event loop does.
struct Chain {
  deskml_engine* engine;
  const deskml_tensor* input;
  std::atomic<int> remaining;
  std::atomic<int> failures{0};
  std::promise<void> finished;

  static void next(void* user_data, deskml_result* r) {
    auto* c = static_cast<Chain*>(user_data);
    if (deskml_result_status(r) != DESKML_OK) ++c->failures;
    deskml_result_destroy(r);
    if (--c->remaining == 0) {
      c->finished.set_value();
      return;
    }
    const deskml_tensor* inputs[] = {c->input};
    if (deskml_engine_submit(c->engine, "mlp", kFeatures, inputs, 1, nullptr, next, c, nullptr) != DESKML_OK) {
      ++c->failures;
      c->finished.set_value();
    }
  }
};

TEST_F(CApi, CallbacksMaySubmit) {
  auto e = mlp_engine();
  auto input = features_tensor();
  Chain chain{e.get(), input.get(), 20, 0, {}};
  const deskml_tensor* inputs[] = {input.get()};
  ASSERT_EQ(deskml_engine_submit(e.get(), "mlp", kFeatures, inputs, 1, nullptr, Chain::next, &chain, nullptr),
            DESKML_OK);
  ASSERT_EQ(chain.finished.get_future().wait_for(30s), std::future_status::ready);
  EXPECT_EQ(chain.failures.load(), 0);
}

TEST_F(CApi, CancelAnswersAtOnceOnTheCancellingThread) {
  auto e = mlp_engine();
  const int64_t big_shape[] = {200000, 30};
  deskml_tensor* t = nullptr;
  ASSERT_EQ(deskml_tensor_create(DESKML_DTYPE_FLOAT32, big_shape, 2, nullptr, 0, &t), DESKML_OK);
  Owned<deskml_tensor> big(t);
  auto small = features_tensor();

  Completion blocker, queued;
  const deskml_tensor* big_in[] = {big.get()};
  const deskml_tensor* small_in[] = {small.get()};
  ASSERT_EQ(deskml_engine_submit(e.get(), "mlp", kFeatures, big_in, 1, nullptr, Completion::on_done, &blocker, nullptr),
            DESKML_OK);
  deskml_request* q = nullptr;
  ASSERT_EQ(deskml_engine_submit(e.get(), "mlp", kFeatures, small_in, 1, nullptr, Completion::on_done, &queued, &q),
            DESKML_OK);
  Owned<deskml_request> request(q);
  deskml_request_cancel(q);
  ASSERT_EQ(queued.count(), 1);
  EXPECT_EQ(queued.thread, std::this_thread::get_id());
  EXPECT_EQ(deskml_result_status(queued.result.get()), DESKML_CANCELLED);
  EXPECT_EQ(blocker.count(), 0);  // still running: the cancelled request did not wait for it
  EXPECT_EQ(deskml_result_status(blocker.wait()), DESKML_OK);
}

TEST_F(CApi, AbsoluteDeadlines) {
  auto e = mlp_engine();
  auto input = features_tensor();
  const deskml_tensor* inputs[] = {input.get()};
  deskml_infer_options* o = nullptr;
  ASSERT_EQ(deskml_infer_options_create(&o), DESKML_OK);
  Owned<deskml_infer_options> options(o);
  ASSERT_EQ(deskml_infer_options_set_deadline_ns(o, deskml_clock_ns() + 60'000'000'000), DESKML_OK);
  deskml_result* r = nullptr;
  ASSERT_EQ(deskml_engine_run(e.get(), "mlp", kFeatures, inputs, 1, o, &r), DESKML_OK) << last_error();
  deskml_result_destroy(r);

  // Already past: the run fails with DeadlineExceeded (returned, no result).
  ASSERT_EQ(deskml_infer_options_set_deadline_ns(o, deskml_clock_ns() - 1'000'000), DESKML_OK);
  r = nullptr;
  EXPECT_EQ(deskml_engine_run(e.get(), "mlp", kFeatures, inputs, 1, o, &r), DESKML_DEADLINE_EXCEEDED);
  EXPECT_EQ(r, nullptr);
  EXPECT_NE(last_error().find("deadline"), std::string::npos) << last_error();
  EXPECT_EQ(deskml_infer_options_set_deadline_ns(o, -5), DESKML_INVALID_ARGUMENT);
}

TEST_F(CApi, BorrowedMemoryIsReleasedWhenTheLastUserIsDone) {
  auto e = mlp_engine();
  static std::atomic<int> released{0};
  released = 0;
  std::vector<float> data = features_.values;
  deskml_tensor* t = nullptr;
  ASSERT_EQ(deskml_tensor_borrow(
                DESKML_DTYPE_FLOAT32, features_.shape.data(), 2, data.data(), data.size() * sizeof(float),
                [](void* user) { static_cast<std::atomic<int>*>(user)->fetch_add(1); }, &released, &t),
            DESKML_OK);
  EXPECT_EQ(deskml_tensor_data(t), data.data());
  const deskml_tensor* inputs[] = {t};
  Completion done;
  ASSERT_EQ(deskml_engine_submit(e.get(), "mlp", kFeatures, inputs, 1, nullptr, Completion::on_done, &done, nullptr),
            DESKML_OK);
  deskml_tensor_destroy(t);
  expect_close(deskml_result_output(done.wait(), 0), logits_);
  for (int i = 0; i < 1000 && released.load() == 0; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(released.load(), 1);
}

TEST_F(CApi, StringTensors) {
  const char* values[] = {"a", "with\0nul", ""};
  const size_t lengths[] = {1, 8, 0};
  const int64_t shape[] = {3};
  deskml_tensor* t = nullptr;
  ASSERT_EQ(deskml_tensor_create_strings(values, lengths, 3, shape, 1, &t), DESKML_OK) << last_error();
  Owned<deskml_tensor> s(t);
  size_t len = 0;
  const char* second = deskml_tensor_string(t, 1, &len);
  EXPECT_EQ(std::string(second, len), std::string("with\0nul", 8));
  EXPECT_EQ(deskml_tensor_byte_size(t), 0u);
  EXPECT_EQ(deskml_tensor_create_strings(values, lengths, 2, shape, 1, &t), DESKML_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("holds 3"), std::string::npos) << last_error();
  EXPECT_EQ(deskml_tensor_borrow(DESKML_DTYPE_STRING, shape, 1, nullptr, 0, nullptr, nullptr, &t),
            DESKML_INVALID_ARGUMENT);
}

TEST_F(CApi, NullHandlesAreRefusedOrHarmless) {
  EXPECT_EQ(deskml_engine_create(nullptr, nullptr, nullptr), DESKML_INVALID_ARGUMENT);
  EXPECT_EQ(deskml_engine_add_model_file(nullptr, "m", "f", nullptr), DESKML_INVALID_ARGUMENT);
  EXPECT_EQ(deskml_engine_submit(nullptr, "m", nullptr, nullptr, 0, nullptr, Completion::on_done, nullptr, nullptr),
            DESKML_INVALID_ARGUMENT);
  EXPECT_EQ(deskml_session_create(nullptr, nullptr, nullptr), DESKML_INVALID_ARGUMENT);
  EXPECT_EQ(deskml_infer_options_set_timeout_ms(nullptr, 5), DESKML_INVALID_ARGUMENT);
  EXPECT_EQ(deskml_tensor_share(nullptr, nullptr), DESKML_INVALID_ARGUMENT);
  EXPECT_EQ(deskml_result_status(nullptr), DESKML_INVALID_ARGUMENT);
  EXPECT_EQ(deskml_tensor_dtype(nullptr), DESKML_DTYPE_UNDEFINED);
  EXPECT_EQ(deskml_tensor_data(nullptr), nullptr);
  EXPECT_EQ(deskml_session_input_name(nullptr, 0), nullptr);
  deskml_request_cancel(nullptr);
  deskml_engine_destroy(nullptr);
  deskml_session_destroy(nullptr);
  deskml_tensor_destroy(nullptr);
  deskml_result_destroy(nullptr);
  deskml_request_destroy(nullptr);
}

}  // namespace
