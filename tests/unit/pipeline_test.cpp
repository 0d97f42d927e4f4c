// Ensemble DAGs (src/serving/pipeline): config validation, concurrency of model steps,
// first-failure cancellation, deadlines and caller cancellation, and end-to-end outputs.
// Model calls go to a fake runtime that records them and completes them when told to.
#include "serving/pipeline.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "serving_test_util.hpp"

namespace deskml::serving {
namespace {

using namespace std::chrono_literals;
using test_util::encode_png;
using test_util::TempDir;

Tensor f32(const std::vector<float>& v, Shape s) { return Tensor::from_vector<float>(v, std::move(s)); }

template <typename T>
std::vector<T> values(const Tensor& t) {
  auto s = t.values<T>();
  return {s.begin(), s.end()};
}

Result<std::shared_ptr<Pipeline>> parse(const std::string& config,
                                        const std::filesystem::path& dir = std::filesystem::temp_directory_path()) {
  toml::table table = toml::parse(config);
  const toml::table* ensemble = table["ensemble"].as_table();
  if (ensemble == nullptr) return invalid_argument("test config has no [ensemble]");
  return Pipeline::parse(*ensemble, dir);
}

std::shared_ptr<Pipeline> parse_ok(const std::string& config,
                                   const std::filesystem::path& dir = std::filesystem::temp_directory_path()) {
  auto p = parse(config, dir);
  EXPECT_TRUE(p.ok()) << p.status().to_string();
  return p.ok() ? p.value() : nullptr;
}

void expect_parse_error(const std::string& config, const std::string& fragment) {
  auto p = parse(config);
  ASSERT_FALSE(p.ok()) << "parsed: " << config;
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument) << p.status().to_string();
  EXPECT_NE(p.status().message().find(fragment), std::string::npos) << p.status().message();
}

// Records model calls; completes them inline (`respond` set) or when the test says so.
class FakeRuntime {
 public:
  struct Call {
    std::string model;
    std::optional<int64_t> version;
    Tensors inputs;
    InferOptions options;
    std::function<void(Result<Tensors>)> done;
  };
  using Responder = std::function<Result<Tensors>(const std::string& model, const Tensors& inputs)>;

  explicit FakeRuntime(Responder respond = nullptr) : respond_(std::move(respond)) {}
  ~FakeRuntime() {
    for (auto& t : threads_) t.join();
  }

  ModelCall model_call() {
    return [this](const std::string& model, std::optional<int64_t> version, Tensors inputs, const InferOptions& options,
                  std::function<void(Result<Tensors>)> done) {
      Result<Tensors> immediate = Status(StatusCode::kInternal, "unset");
      {
        std::lock_guard<std::mutex> lock(mu_);
        calls_.push_back({model, version, inputs, options, done});
        if (respond_) immediate = respond_(model, inputs);
      }
      cv_.notify_all();
      if (respond_) done(std::move(immediate));
    };
  }

  bool wait_for_calls(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, 5s, [&] { return calls_.size() >= n; });
  }
  size_t call_count() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_.size();
  }
  Call call(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_.at(i);
  }
  // The index of the call to `model`, or -1.
  int find(const std::string& model) {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < calls_.size(); ++i) {
      if (calls_[i].model == model) return static_cast<int>(i);
    }
    return -1;
  }
  // Completes call i on a new thread (joined at destruction).
  void complete_async(size_t i, Result<Tensors> result) {
    auto done = call(i).done;
    threads_.emplace_back([done, result]() mutable { done(std::move(result)); });
  }
  void join() {
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  Responder respond_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Call> calls_;
  std::vector<std::thread> threads_;
};

// Counts `done` calls and keeps the result.
class DoneRecorder {
 public:
  std::function<void(Result<Tensors>)> callback() {
    return [this](Result<Tensors> r) {
      std::lock_guard<std::mutex> lock(mu_);
      ++count_;
      result_.emplace(std::move(r));
      cv_.notify_all();
    };
  }
  bool wait() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, 5s, [&] { return count_ > 0; });
  }
  int count() {
    std::lock_guard<std::mutex> lock(mu_);
    return count_;
  }
  Result<Tensors> result() {
    std::lock_guard<std::mutex> lock(mu_);
    return result_.value_or(Status(StatusCode::kInternal, "done not called"));
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_ = 0;
  std::optional<Result<Tensors>> result_;
};

Tensors outputs(std::initializer_list<std::pair<std::string, Tensor>> items) { return Tensors(items); }

// Two classifiers on one input, averaged.
const char* kTwoModels = R"(
[ensemble]
inputs = ["x"]
outputs = ["avg"]
[[ensemble.step]]
name = "a"
kind = "model"
model = "model-a"
inputs = { input = "x" }
[[ensemble.step]]
name = "b"
kind = "model"
model = "model-b"
version = 3
inputs = { input = "x" }
[[ensemble.step]]
name = "mean"
kind = "mean"
inputs = ["a.logits", "b.logits"]
[ensemble.output_map]
avg = "mean.output"
)";

// model-a then model-b, in a chain.
const char* kChain = R"(
[ensemble]
inputs = ["x"]
outputs = ["y"]
[[ensemble.step]]
name = "second"
kind = "model"
model = "model-b"
inputs = { input = "first.out" }
[[ensemble.step]]
name = "first"
kind = "model"
model = "model-a"
inputs = { input = "x" }
[ensemble.output_map]
y = "second.out"
)";

// ---- parsing ----

TEST(PipelineParse, NamesAndDependencies) {
  auto p = parse_ok(kTwoModels);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->input_names(), std::vector<std::string>{"x"});
  EXPECT_EQ(p->output_names(), std::vector<std::string>{"avg"});
  EXPECT_EQ(p->model_dependencies(), (std::vector<std::string>{"model-a", "model-b"}));
  // Declared out of order: still valid, dependencies in config order.
  auto chain = parse_ok(kChain);
  ASSERT_NE(chain, nullptr);
  EXPECT_EQ(chain->model_dependencies(), (std::vector<std::string>{"model-b", "model-a"}));
}

TEST(PipelineParse, GraphErrors) {
  const std::string head = "[ensemble]\ninputs = [\"x\"]\noutputs = [\"y\"]\n";
  auto step = [](const std::string& name, const std::string& kind, const std::string& inputs,
                 const std::string& extra = "") {
    return "[[ensemble.step]]\nname = \"" + name + "\"\nkind = \"" + kind + "\"\ninputs = " + inputs + "\n" + extra;
  };
  const std::string map_a = "[ensemble.output_map]\ny = \"a.output\"\n";
  expect_parse_error(head + step("a", "softmax", "{ input = \"b.output\" }") +
                         step("b", "softmax", "{ input = \"a.output\" }") + map_a,
                     "cycle");
  expect_parse_error(head + step("a", "softmax", "{ input = \"a.output\" }") + map_a, "cycle");
  expect_parse_error(head + step("a", "softmax", "{ input = \"nope.output\" }") + map_a, "unknown step 'nope'");
  expect_parse_error(head + step("a", "softmax", "{ input = \"z\" }") + map_a, "not an ensemble input");
  expect_parse_error(head + step("a", "blur", "{ input = \"x\" }") + map_a, "unknown step kind 'blur'");
  expect_parse_error(
      head + step("a", "softmax", "{ input = \"x\" }") + step("a", "softmax", "{ input = \"x\" }") + map_a,
      "two steps are named 'a'");
  expect_parse_error(
      head + step("d", "image_decode", "{ input = \"x\" }") + step("a", "softmax", "{ input = \"d.output\" }") + map_a,
      "has no output port 'output'");
  expect_parse_error(head + step("a", "softmax", "{ image = \"x\" }") + map_a, "has no input port 'image'");
  expect_parse_error(head + step("a", "nms", "{ boxes = \"x\" }", "iou_threshold = 0.5\n") +
                         "[ensemble.output_map]\ny = \"a.indices\"\n",
                     "input port 'scores' is not connected");
  expect_parse_error(head + step("a", "softmax", "[\"x\"]") + map_a, "inputs must be a table");
  expect_parse_error(head + step("a", "mean", "{ input = \"x\" }") + map_a, "takes a list");
  expect_parse_error(head + step("a", "weighted_mean", "[\"x\"]", "weights = [1, 2]\n") + map_a,
                     "takes 2 inputs, got 1");
  expect_parse_error(
      head + step("a", "softmax", "{ input = \"x\" }") + step("unused", "softmax", "{ input = \"x\" }") + map_a,
      "step 'unused' (line");
  expect_parse_error(head + step("a", "softmax", "{ input = \"x\" }"), "output_map");
  expect_parse_error(head + step("a", "softmax", "{ input = \"x\" }") + "[ensemble.output_map]\nz = \"a.output\"\n",
                     "not listed in outputs");
  expect_parse_error(head + step("a", "softmax", "{ input = \"x\" }") + "[ensemble.output_map]\ny = \"a\"\n",
                     "not an ensemble input");
  expect_parse_error(head + step("a", "resize", "{ input = \"x\" }", "size = [0, 1]\n") + map_a,
                     "step 'a' (line 4): resize: parameter 'size' (line 8): must be between 1 and");
}

TEST(PipelineParse, ShapeOfTheConfig) {
  const std::string map = "[ensemble.output_map]\ny = \"m.out\"\n";
  auto model = [](const std::string& extra) {
    return "[[ensemble.step]]\nname = \"m\"\nkind = \"model\"\ninputs = { input = \"x\" }\n" + extra;
  };
  const std::string head = "[ensemble]\ninputs = [\"x\"]\noutputs = [\"y\"]\n";
  EXPECT_TRUE(parse(head + model("model = \"m1\"\nversion = 2\n") + map).ok());
  expect_parse_error(head + model("") + map, "needs model");
  expect_parse_error(head + model("model = \"../etc\"\n") + map, "must start with a letter or digit");
  expect_parse_error(head + model("model = \"m1\"\nversion = 0\n") + map, "version");
  expect_parse_error(head + model("model = \"m1\"\nsize = 3\n") + map, "unknown key 'size'");
  expect_parse_error("[ensemble]\noutputs = [\"y\"]\n" + model("model = \"m1\"\n") + map, "missing inputs");
  expect_parse_error("[ensemble]\ninputs = [\"a.b\"]\noutputs = [\"y\"]\n" + model("model = \"m1\"\n") + map,
                     "may hold only");
  expect_parse_error("[ensemble]\ninputs = [\"x\", \"x\"]\noutputs = [\"y\"]\n" + model("model = \"m1\"\n") + map,
                     "twice");
  expect_parse_error(head + "extra = 1\n" + model("model = \"m1\"\n") + map, "unknown key 'extra'");
  expect_parse_error(head + map, "at least one [[ensemble.step]]");
  expect_parse_error(head + "[[ensemble.step]]\nkind = \"softmax\"\n" + map, "needs name");
  expect_parse_error(head + "[[ensemble.step]]\nname = \"m\"\ninputs = { input = \"x\" }\n" + map, "needs kind");
}

// ---- running ----

TEST(PipelineRun, ModelStepsStartConcurrently) {
  auto p = parse_ok(kTwoModels);
  ASSERT_NE(p, nullptr);
  DoneRecorder done;
  FakeRuntime runtime;
  p->run({{"x", f32({1, 2}, {1, 2})}}, InferOptions{}, runtime.model_call(), done.callback());
  // Both calls are in flight before either completes.
  ASSERT_TRUE(runtime.wait_for_calls(2));
  EXPECT_EQ(done.count(), 0);
  const int a = runtime.find("model-a");
  const int b = runtime.find("model-b");
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  EXPECT_EQ(runtime.call(a).version, std::nullopt);
  EXPECT_EQ(runtime.call(b).version, 3);
  EXPECT_EQ(runtime.call(b).options.version, 3);
  EXPECT_EQ(values<float>(runtime.call(a).inputs.at(0).second), (std::vector<float>{1, 2}));
  EXPECT_EQ(runtime.call(a).inputs.at(0).first, "input");
  ASSERT_NE(runtime.call(a).options.cancel, nullptr);

  runtime.complete_async(b, outputs({{"logits", f32({3, 5}, {1, 2})}, {"extra", f32({0}, {1})}}));
  runtime.complete_async(a, outputs({{"logits", f32({1, 1}, {1, 2})}}));
  ASSERT_TRUE(done.wait());
  runtime.join();
  EXPECT_EQ(done.count(), 1);
  auto r = done.result();
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ(r->at(0).first, "avg");
  EXPECT_EQ(values<float>(r->at(0).second), (std::vector<float>{2, 3}));
}

TEST(PipelineRun, FirstFailureCancelsTheRestAndWaitsForThem) {
  auto p = parse_ok(R"(
[ensemble]
inputs = ["x"]
outputs = ["y"]
[[ensemble.step]]
name = "a"
kind = "model"
model = "model-a"
inputs = { input = "x" }
[[ensemble.step]]
name = "b"
kind = "model"
model = "model-b"
inputs = { input = "x" }
[[ensemble.step]]
name = "c"
kind = "model"
model = "model-c"
inputs = { input = "x" }
[[ensemble.step]]
name = "avg"
kind = "mean"
inputs = ["a.out", "b.out", "c.out"]
[[ensemble.step]]
name = "head"
kind = "model"
model = "model-head"
inputs = { input = "avg.output" }
[ensemble.output_map]
y = "head.out"
)");
  ASSERT_NE(p, nullptr);
  DoneRecorder done;
  FakeRuntime runtime;
  p->run({{"x", f32({1}, {1})}}, InferOptions{}, runtime.model_call(), done.callback());
  ASSERT_TRUE(runtime.wait_for_calls(3));
  const int a = runtime.find("model-a"), b = runtime.find("model-b"), c = runtime.find("model-c");
  runtime.complete_async(b, Status(StatusCode::kResourceExhausted, "queue full"));
  runtime.join();
  // The failure cancelled the token the other calls hold, but `done` waits for them.
  EXPECT_TRUE(runtime.call(a).options.cancel->cancelled());
  EXPECT_TRUE(runtime.call(c).options.cancel->cancelled());
  EXPECT_EQ(done.count(), 0);
  runtime.complete_async(a, outputs({{"out", f32({1}, {1})}}));
  runtime.join();
  EXPECT_EQ(done.count(), 0);
  runtime.complete_async(c, Status(StatusCode::kCancelled, "cancelled"));
  ASSERT_TRUE(done.wait());
  runtime.join();
  EXPECT_EQ(done.count(), 1);
  const Status s = done.result().status();
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.to_string();
  EXPECT_NE(s.message().find("step 'b'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("queue full"), std::string::npos) << s.message();
  EXPECT_EQ(runtime.call_count(), 3u);  // the head model never started
}

TEST(PipelineRun, BuiltinFailureSkipsLaterSteps) {
  auto p = parse_ok(R"(
[ensemble]
inputs = ["x"]
outputs = ["y"]
[[ensemble.step]]
name = "probs"
kind = "softmax"
inputs = { input = "x" }
[[ensemble.step]]
name = "m"
kind = "model"
model = "m"
inputs = { input = "probs.output" }
[ensemble.output_map]
y = "m.out"
)");
  ASSERT_NE(p, nullptr);
  DoneRecorder done;
  FakeRuntime runtime;
  p->run({{"x", Tensor::from_vector<int64_t>({1}, {1})}}, InferOptions{}, runtime.model_call(), done.callback());
  ASSERT_EQ(done.count(), 1);  // everything ran on this thread
  EXPECT_EQ(runtime.call_count(), 0u);
  const Status s = done.result().status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("step 'probs'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("softmax: input must be float"), std::string::npos) << s.message();
}

TEST(PipelineRun, DeadlineAndCallerCancel) {
  auto p = parse_ok(kChain);
  ASSERT_NE(p, nullptr);
  {  // Already past: nothing starts.
    DoneRecorder done;
    FakeRuntime runtime;
    InferOptions options;
    options.deadline = Clock::now() - 1ms;
    p->run({{"x", f32({1}, {1})}}, options, runtime.model_call(), done.callback());
    ASSERT_EQ(done.count(), 1);
    EXPECT_EQ(done.result().status().code(), StatusCode::kDeadlineExceeded);
    EXPECT_EQ(runtime.call_count(), 0u);
  }
  {  // Expires while the first model runs: the second never starts.
    DoneRecorder done;
    FakeRuntime runtime;
    InferOptions options;
    options.deadline = Clock::now() + 50ms;
    p->run({{"x", f32({1}, {1})}}, options, runtime.model_call(), done.callback());
    ASSERT_TRUE(runtime.wait_for_calls(1));
    EXPECT_EQ(runtime.call(0).options.deadline, options.deadline);
    std::this_thread::sleep_for(80ms);
    runtime.complete_async(0, outputs({{"out", f32({1}, {1})}}));
    ASSERT_TRUE(done.wait());
    runtime.join();
    EXPECT_EQ(done.result().status().code(), StatusCode::kDeadlineExceeded);
    EXPECT_EQ(runtime.call_count(), 1u);
  }
  {  // The caller cancels while the first model runs.
    DoneRecorder done;
    FakeRuntime runtime;
    InferOptions options;
    options.cancel = std::make_shared<CancelToken>();
    p->run({{"x", f32({1}, {1})}}, options, runtime.model_call(), done.callback());
    ASSERT_TRUE(runtime.wait_for_calls(1));
    EXPECT_NE(runtime.call(0).options.cancel, options.cancel);  // the run's own token
    options.cancel->cancel();
    runtime.complete_async(0, outputs({{"out", f32({1}, {1})}}));
    ASSERT_TRUE(done.wait());
    runtime.join();
    EXPECT_EQ(done.result().status().code(), StatusCode::kCancelled);
    EXPECT_EQ(runtime.call_count(), 1u);
    EXPECT_TRUE(runtime.call(0).options.cancel->cancelled());
  }
  {  // Cancelled before the run: nothing starts.
    DoneRecorder done;
    FakeRuntime runtime;
    InferOptions options;
    options.cancel = std::make_shared<CancelToken>();
    options.cancel->cancel();
    p->run({{"x", f32({1}, {1})}}, options, runtime.model_call(), done.callback());
    ASSERT_EQ(done.count(), 1);
    EXPECT_EQ(done.result().status().code(), StatusCode::kCancelled);
    EXPECT_EQ(runtime.call_count(), 0u);
  }
}

TEST(PipelineRun, InputsAndModelOutputsAreChecked) {
  auto p = parse_ok(kChain);
  ASSERT_NE(p, nullptr);
  FakeRuntime runtime([](const std::string& model, const Tensors& inputs) -> Result<Tensors> {
    if (model == "model-a") return outputs({{"out", inputs.at(0).second}});
    return outputs({{"logits", inputs.at(0).second}});  // not the "out" the config reads
  });
  auto run = [&](Tensors inputs) {
    DoneRecorder done;
    p->run(std::move(inputs), InferOptions{}, runtime.model_call(), done.callback());
    EXPECT_EQ(done.count(), 1);
    return done.result().status();
  };
  EXPECT_NE(run({}).message().find("missing input 'x'"), std::string::npos);
  EXPECT_NE(run({{"x", f32({1}, {1})}, {"z", f32({1}, {1})}}).message().find("unknown input 'z'"), std::string::npos);
  EXPECT_NE(run({{"x", f32({1}, {1})}, {"x", f32({1}, {1})}}).message().find("given twice"), std::string::npos);
  EXPECT_NE(run({{"x", Tensor()}}).message().find("undefined"), std::string::npos);
  EXPECT_EQ(runtime.call_count(), 0u);
  const Status s = run({{"x", f32({1}, {1})}});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("model 'model-b' returned no output 'out' (it returned: logits)"), std::string::npos)
      << s.message();
}

TEST(PipelineRun, ThrowingModelCallFailsTheRun) {
  auto p = parse_ok(kTwoModels);
  ASSERT_NE(p, nullptr);
  DoneRecorder done;
  int calls = 0;
  ModelCall call = [&](const std::string&, std::optional<int64_t>, Tensors, const InferOptions&,
                       std::function<void(Result<Tensors>)> finish) {
    if (++calls == 1) throw std::runtime_error("boom");
    finish(outputs({{"logits", f32({1}, {1})}}));
    finish(outputs({{"logits", f32({1}, {1})}}));  // a second call is ignored
  };
  p->run({{"x", f32({1}, {1})}}, InferOptions{}, call, done.callback());
  EXPECT_EQ(done.count(), 1);
  EXPECT_EQ(done.result().status().code(), StatusCode::kInternal);
  EXPECT_NE(done.result().status().message().find("boom"), std::string::npos);
}

// decode -> resize -> normalize -> layout -> two fake classifiers -> mean -> softmax -> top-2 with labels.
TEST(PipelineRun, ImageClassificationEndToEnd) {
  TempDir dir;
  dir.write("labels.txt", "cat\ndog\nbird\n");
  const std::string config = R"(
[ensemble]
inputs = ["image_bytes"]
outputs = ["labels", "scores", "pixels"]

[[ensemble.step]]
name = "decode"
kind = "image_decode"
inputs = { input = "image_bytes" }

[[ensemble.step]]
name = "resize"
kind = "resize"
size = [2, 2]
inputs = { input = "decode.image" }

[[ensemble.step]]
name = "normalize"
kind = "normalize"
mean = [0.5, 0.5, 0.5]
std = [0.5, 0.5, 0.5]
inputs = { input = "resize.output" }

[[ensemble.step]]
name = "layout"
kind = "layout"
from = "HWC"
to = "NCHW"
inputs = { input = "normalize.output" }

[[ensemble.step]]
name = "small"
kind = "model"
model = "classifier-small"
inputs = { pixel_values = "layout.output" }

[[ensemble.step]]
name = "large"
kind = "model"
model = "classifier-large"
version = 2
inputs = { pixel_values = "layout.output" }

[[ensemble.step]]
name = "avg"
kind = "mean"
inputs = ["small.logits", "large.logits"]

[[ensemble.step]]
name = "probs"
kind = "softmax"
inputs = { input = "avg.output" }

[[ensemble.step]]
name = "top2"
kind = "topk"
k = 2
labels = "labels.txt"
inputs = { input = "probs.output" }

[ensemble.output_map]
labels = "top2.labels"
scores = "top2.scores"
pixels = "layout.output"
)";
  auto p = parse_ok(config, dir.path());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->model_dependencies(), (std::vector<std::string>{"classifier-small", "classifier-large"}));

  // A 4x4 image of solid colour (255, 0, 51): normalised to (1, -1, -0.6).
  std::vector<uint8_t> rgb;
  for (int i = 0; i < 16; ++i) rgb.insert(rgb.end(), {255, 0, 51});
  const Tensor image = Tensor::from_vector<std::string>({encode_png(rgb, 4, 4, PNG_COLOR_TYPE_RGB)}, {});

  for (bool threaded : {false, true}) {
    SCOPED_TRACE(threaded ? "completed on other threads" : "completed inline");
    auto logits = [](const std::string& model, const Tensors& inputs) -> Result<Tensors> {
      const Tensor& x = inputs.at(0).second;
      if (x.shape() != Shape{1, 3, 2, 2}) return invalid_argument("unexpected " + x.description());
      const float r = x.data<float>()[0];  // channel 0, pixel 0
      if (model == "classifier-small") return outputs({{"logits", f32({r, 0, 2}, {1, 3})}});
      return outputs({{"logits", f32({3, 2, 0}, {1, 3})}});
    };
    DoneRecorder done;
    FakeRuntime runtime(threaded ? FakeRuntime::Responder() : logits);
    p->run({{"image_bytes", image}}, InferOptions{}, runtime.model_call(), done.callback());
    if (threaded) {
      ASSERT_TRUE(runtime.wait_for_calls(2));
      for (size_t i = 0; i < 2; ++i) {
        const auto c = runtime.call(i);
        runtime.complete_async(i, logits(c.model, c.inputs));
      }
    }
    ASSERT_TRUE(done.wait());
    runtime.join();
    EXPECT_EQ(done.count(), 1);
    auto r = done.result();
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    ASSERT_EQ(r->size(), 3u);
    EXPECT_EQ(r->at(0).first, "labels");
    EXPECT_EQ(r->at(1).first, "scores");
    EXPECT_EQ(r->at(2).first, "pixels");
    // Mean logits: (2, 1, 1); softmax; top 2 = class 0 then class 1 (tie with 2 goes to the lower index).
    EXPECT_EQ(values<std::string>(r->at(0).second), (std::vector<std::string>{"cat", "dog"}));
    const float z = std::exp(2.0f) + 2.0f * std::exp(1.0f);
    const auto scores = values<float>(r->at(1).second);
    ASSERT_EQ(scores.size(), 2u);
    EXPECT_NEAR(scores[0], std::exp(2.0f) / z, 1e-6);
    EXPECT_NEAR(scores[1], std::exp(1.0f) / z, 1e-6);
    const Tensor& pixels = r->at(2).second;
    ASSERT_EQ(pixels.shape(), (Shape{1, 3, 2, 2}));
    for (int i = 0; i < 4; ++i) {
      EXPECT_NEAR(pixels.data<float>()[i], 1.0f, 1e-6);
      EXPECT_NEAR(pixels.data<float>()[4 + i], -1.0f, 1e-6);
      EXPECT_NEAR(pixels.data<float>()[8 + i], -0.6f, 1e-6);
    }
  }
}

TEST(PipelineRun, PipelineOutlivesItsOwner) {
  auto p = parse_ok(kChain);
  ASSERT_NE(p, nullptr);
  DoneRecorder done;
  FakeRuntime runtime;
  p->run({{"x", f32({4}, {1})}}, InferOptions{}, runtime.model_call(), done.callback());
  p.reset();  // the run keeps the Pipeline alive
  ASSERT_TRUE(runtime.wait_for_calls(1));
  runtime.complete_async(0, outputs({{"out", f32({5}, {1})}}));
  ASSERT_TRUE(runtime.wait_for_calls(2));
  runtime.complete_async(1, outputs({{"out", f32({6}, {1})}}));
  ASSERT_TRUE(done.wait());
  runtime.join();
  auto r = done.result();
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(values<float>(r->at(0).second), (std::vector<float>{6}));
  EXPECT_EQ(values<float>(runtime.call(1).inputs.at(0).second), (std::vector<float>{5}));
}

}  // namespace
}  // namespace deskml::serving
