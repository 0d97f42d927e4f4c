// An ensemble through the runtime: JPEG bytes -> decode -> resize -> crop ->
// normalize -> NCHW -> two real image classifiers (the reference models) ->
// mean -> softmax -> top-5 with labels, compared with the same steps run by hand.
#include <gtest/gtest.h>

#include <fstream>

#include "runtime/session.hpp"
#include "serving/runtime.hpp"
#include "serving/steps/step_registry.hpp"
#include "serving_models.hpp"
#include "serving_test_util.hpp"

namespace deskml::serving {
namespace {

namespace fs = std::filesystem;

constexpr const char* kEnsemble = R"(
[ensemble]
inputs = ["image_bytes"]
outputs = ["labels", "scores"]

[[ensemble.step]]
name = "decode"
kind = "image_decode"
inputs = { input = "image_bytes" }

[[ensemble.step]]
name = "resize"
kind = "resize"
shorter_side = 256
inputs = { input = "decode.image" }

[[ensemble.step]]
name = "crop"
kind = "center_crop"
size = [224, 224]
inputs = { input = "resize.output" }

[[ensemble.step]]
name = "normalize"
kind = "normalize"
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
inputs = { input = "crop.output" }

[[ensemble.step]]
name = "nchw"
kind = "layout"
from = "HWC"
to = "NCHW"
inputs = { input = "normalize.output" }

[[ensemble.step]]
name = "mobilenet"
kind = "model"
model = "mobilenet_v2"
inputs = { input = "nchw.output" }

[[ensemble.step]]
name = "squeezenet"
kind = "model"
model = "squeezenet1_1"
inputs = { input = "nchw.output" }

[[ensemble.step]]
name = "avg"
kind = "mean"
inputs = ["mobilenet.logits", "squeezenet.logits"]

[[ensemble.step]]
name = "probs"
kind = "softmax"
inputs = { input = "avg.output" }

[[ensemble.step]]
name = "top5"
kind = "topk"
k = 5
labels = "labels.txt"
inputs = { input = "probs.output" }

[ensemble.output_map]
labels = "top5.labels"
scores = "top5.scores"
)";

// A 320x240 picture with structure (gradients and a disc), encoded as JPEG.
std::string test_jpeg() {
  const int w = 320, h = 240;
  std::vector<uint8_t> px(static_cast<size_t>(w * h * 3));
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &px[static_cast<size_t>((y * w + x) * 3)];
      const bool disc = (x - 180) * (x - 180) + (y - 110) * (y - 110) < 60 * 60;
      p[0] = static_cast<uint8_t>(disc ? 230 : x * 255 / w);
      p[1] = static_cast<uint8_t>(disc ? 40 : y * 255 / h);
      p[2] = static_cast<uint8_t>((x + y) % 256);
    }
  }
  return test_util::encode_jpeg(px, w, h, 3, 90);
}

Result<Tensors> run_step(const std::string& kind, const std::string& params, const Tensors& in, const fs::path& dir) {
  toml::table t = toml::parse(params);
  DESKML_ASSIGN_OR_RETURN(auto step, make_step(kind, t, dir));
  return step->run(in);
}

TEST(ServingEnsemble, ImageBytesToTop5MatchesTheStepsRunByHand) {
  const fs::path reference = DESKML_REFERENCE_MODELS_DIR;
  for (const char* m : {"mobilenet_v2", "squeezenet1_1"}) {
    if (!fs::exists(reference / m / "model.onnx")) {
      GTEST_SKIP() << "reference models missing: run `make models` (make test does)";
    }
  }
  testing::TempDir dir;
  const fs::path models = dir.path() / "models";
  for (const char* m : {"mobilenet_v2", "squeezenet1_1"}) {
    fs::create_directories(models / m / "1");
    fs::copy_file(reference / m / "model.onnx", models / m / "1" / "model.onnx");
  }
  std::string labels;
  for (int i = 0; i < 1000; ++i) labels += "class_" + std::to_string(i) + "\n";
  testing::write_file(models / "classify" / "labels.txt", labels);
  testing::write_file(models / "classify" / "config.toml", kEnsemble);

  RuntimeOptions o;
  o.repository = models;
  o.cache_dir = dir.path() / "cache";
  o.threads = testing::test_threads();
  auto rt = Runtime::create(o);
  ASSERT_TRUE(rt.ok()) << rt.status().to_string();
  const std::string jpeg = test_jpeg();
  Tensor bytes(DataType::kString, {});
  bytes.data<std::string>()[0] = jpeg;
  auto r = (*rt)->infer_sync("classify", {{"image_bytes", bytes}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->outputs.size(), 2u);
  const Tensor& got_labels = r->outputs[0].second;
  const Tensor& got_scores = r->outputs[1].second;
  ASSERT_EQ(got_labels.numel(), 5);

  // The same steps by hand, with bare sessions.
  const fs::path cdir = models / "classify";
  auto step = [&](const std::string& kind, const std::string& params, const Tensors& in) {
    auto out = run_step(kind, params, in, cdir);
    EXPECT_TRUE(out.ok()) << kind << ": " << out.status().to_string();
    return out.ok() ? std::move(out).value() : Tensors{};
  };
  Tensors t = step("image_decode", "", {{"input", bytes}});
  t = step("resize", "shorter_side = 256", {{"input", t.at(0).second}});
  t = step("center_crop", "size = [224, 224]", {{"input", t.at(0).second}});
  t = step("normalize", "mean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]", {{"input", t.at(0).second}});
  t = step("layout", "from = \"HWC\"\nto = \"NCHW\"", {{"input", t.at(0).second}});
  const Tensor image = t.at(0).second;
  Tensors logits;
  for (const char* m : {"mobilenet_v2", "squeezenet1_1"}) {
    runtime::SessionOptions so;
    so.threads = testing::test_threads();
    auto s = runtime::Session::load(models / m / "1" / "model.onnx", so);
    ASSERT_TRUE(s.ok());
    auto out = (*s)->run({{"input", image}});
    ASSERT_TRUE(out.ok());
    logits.emplace_back(m, out->at(0).second);
  }
  t = step("mean", "", logits);
  t = step("softmax", "", {{"input", t.at(0).second}});
  t = step("topk", "k = 5\nlabels = \"labels.txt\"", {{"input", t.at(0).second}});
  const Tensor* want_labels = find_tensor(t, "labels");
  const Tensor* want_scores = find_tensor(t, "scores");
  ASSERT_NE(want_labels, nullptr);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(got_labels.data<std::string>()[i], want_labels->data<std::string>()[i]) << "rank " << i;
    EXPECT_NEAR(got_scores.data<float>()[i], want_scores->data<float>()[i], 1e-5f) << "rank " << i;
  }
  // Both classifiers were loaded lazily by the ensemble's first request.
  EXPECT_EQ((*rt)->model_status("mobilenet_v2")->state, ModelState::kReady);
  EXPECT_EQ((*rt)->model_status("squeezenet1_1")->state, ModelState::kReady);
  EXPECT_TRUE((*rt)->model_status("classify")->ensemble);

  // A corrupt image fails the whole request with the failing step named.
  Tensor broken(DataType::kString, {});
  broken.data<std::string>()[0] = jpeg.substr(0, jpeg.size() / 3);
  auto bad = (*rt)->infer_sync("classify", {{"image_bytes", broken}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("decode"), std::string::npos) << bad.status().message();
}

TEST(ServingEnsemble, CancellingTheCallerCancelsTheModelCalls) {
  testing::TempDir dir;
  const fs::path models = dir.path() / "models";
  testing::write_file(models / "slow" / "1" / "model.onnx", testing::slow_model());
  testing::write_file(models / "pair" / "config.toml", R"(
[ensemble]
inputs = ["x"]
outputs = ["y"]
[[ensemble.step]]
name = "a"
kind = "model"
model = "slow"
inputs = { x = "x" }
[[ensemble.step]]
name = "b"
kind = "model"
model = "slow"
inputs = { x = "x" }
[[ensemble.step]]
name = "sum"
kind = "mean"
inputs = ["a.y", "b.y"]
[ensemble.output_map]
y = "sum.output"
)");
  RuntimeOptions o;
  o.repository = models;
  o.cache_dir = dir.path() / "cache";
  o.threads = testing::test_threads();
  auto rt = Runtime::create(o);
  ASSERT_TRUE(rt.ok());
  ASSERT_TRUE((*rt)->load("pair").ok());
  auto ok = (*rt)->infer_sync("pair", {{"x", testing::random_tensor({1, 64, 512}, 1)}});
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  InferOptions opts;
  opts.cancel = std::make_shared<CancelToken>();
  auto fut = (*rt)->infer("pair", {{"x", testing::random_tensor({8, 512, 512}, 1)}}, opts);
  opts.cancel->cancel();
  EXPECT_EQ(fut.get().status().code(), StatusCode::kCancelled);
  // Nothing is left running or queued behind it.
  for (int i = 0; i < 500 && (*rt)->model_status("slow")->outstanding > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ((*rt)->model_status("slow")->outstanding, 0u);
}

}  // namespace
}  // namespace deskml::serving
