// Built-in ensemble steps (src/serving/steps): numerics against hand-computed or
// PyTorch 1.13 values, decoder robustness, parameter and input validation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "serving/steps/step_registry.hpp"
#include "serving_test_util.hpp"

namespace deskml::serving {
namespace {

using test_util::encode_jpeg;
using test_util::encode_png;
using test_util::TempDir;

Result<std::unique_ptr<Step>> make(std::string_view kind, const std::string& params,
                                   const std::filesystem::path& base_dir = std::filesystem::temp_directory_path()) {
  toml::table table = toml::parse(params);
  return make_step(kind, table, base_dir);
}

std::unique_ptr<Step> make_ok(std::string_view kind, const std::string& params,
                              const std::filesystem::path& base_dir = std::filesystem::temp_directory_path()) {
  auto step = make(kind, params, base_dir);
  EXPECT_TRUE(step.ok()) << step.status().to_string();
  return step.ok() ? std::move(step).value() : nullptr;
}

Tensor f32(const std::vector<float>& v, Shape s) { return Tensor::from_vector<float>(v, std::move(s)); }
Tensor u8(const std::vector<uint8_t>& v, Shape s) { return Tensor::from_vector<uint8_t>(v, std::move(s)); }
Tensor i64(const std::vector<int64_t>& v, Shape s) { return Tensor::from_vector<int64_t>(v, std::move(s)); }
Tensor bytes(const std::string& s) { return Tensor::from_vector<std::string>({s}, {}); }

template <typename T>
std::vector<T> values(const Tensor& t) {
  auto s = t.values<T>();
  return {s.begin(), s.end()};
}

// Runs a single-input step on `x`; returns its only (or its `port`) output.
Result<Tensor> run1(const Step& step, const Tensor& x, const std::string& port = "") {
  DESKML_ASSIGN_OR_RETURN(Tensors out, step.run({{"input", x}}));
  if (port.empty()) return out.at(0).second;
  const Tensor* t = find_tensor(out, port);
  if (t == nullptr) return invalid_argument("no output " + port);
  return *t;
}

Tensor run1_ok(const Step& step, const Tensor& x, const std::string& port = "") {
  auto r = run1(step, x, port);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? r.value() : Tensor();
}

void expect_invalid(const Status& s, const std::string& fragment) {
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find(fragment), std::string::npos) << s.message();
}

void expect_floats(const Tensor& t, const std::vector<float>& expected, float tol = 1e-5f) {
  ASSERT_EQ(t.dtype(), DataType::kFloat32);
  ASSERT_EQ(static_cast<size_t>(t.numel()), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(t.data<float>()[i], expected[i], tol) << "at " << i;
}

// A width x height RGB image whose samples all differ: (x * 40 + y * 7 + c * 90) % 256.
std::vector<uint8_t> test_rgb(int width, int height) {
  std::vector<uint8_t> p;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < 3; ++c) p.push_back(static_cast<uint8_t>((x * 40 + y * 7 + c * 90) % 256));
    }
  }
  return p;
}

// ---- registry and ports ----

TEST(StepsRegistry, UnknownKindsAndParameters) {
  expect_invalid(make("blur", "").status(), "unknown step kind 'blur'");
  expect_invalid(make("model", "").status(), "unknown step kind 'model'");
  expect_invalid(make("resize", "sise = [2, 2]").status(), "unknown parameter");
  expect_invalid(make("mean", "axis = 0").status(), "this kind takes none");
  EXPECT_EQ(builtin_step_kinds().size(), 14u);
}

TEST(StepsRegistry, PortNames) {
  EXPECT_EQ(make_ok("image_decode", "")->ports().outputs, std::vector<std::string>{"image"});
  EXPECT_EQ(make_ok("resize", "size = [2, 2]")->ports().inputs, std::vector<std::string>{"input"});
  EXPECT_EQ(make_ok("resize", "size = [2, 2]")->ports().outputs, std::vector<std::string>{"output"});
  EXPECT_EQ(make_ok("threshold", "value = 0.5")->ports().outputs, std::vector<std::string>{"mask"});
  EXPECT_EQ(make_ok("topk", "k = 1")->ports().outputs, (std::vector<std::string>{"indices", "scores"}));
  EXPECT_EQ(make_ok("nms", "iou_threshold = 0.5")->ports().inputs, (std::vector<std::string>{"boxes", "scores"}));
  const StepPorts mean = make_ok("mean", "")->ports();
  EXPECT_TRUE(mean.list);
  EXPECT_EQ(mean.outputs, std::vector<std::string>{"output"});
  const StepPorts weighted = make_ok("weighted_mean", "weights = [1, 3]")->ports();
  EXPECT_EQ(weighted.min_list, 2u);
  EXPECT_EQ(weighted.max_list, 2u);
}

TEST(StepsRegistry, MissingInputPort) {
  auto step = make_ok("softmax", "");
  expect_invalid(step->run({{"x", f32({1}, {1})}}).status(), "missing input 'input'");
}

// ---- image_decode ----

TEST(StepsImageDecode, PngRgbExact) {
  const auto rgb = test_rgb(5, 3);
  auto step = make_ok("image_decode", "");
  Tensor img = run1_ok(*step, bytes(encode_png(rgb, 5, 3, PNG_COLOR_TYPE_RGB)));
  EXPECT_EQ(img.dtype(), DataType::kUInt8);
  EXPECT_EQ(img.shape(), (Shape{3, 5, 3}));
  EXPECT_EQ(values<uint8_t>(img), rgb);
}

TEST(StepsImageDecode, PngInterlacedAlphaPaletteSixteenBit) {
  auto step = make_ok("image_decode", "channels = 3");
  const auto rgb = test_rgb(9, 7);
  EXPECT_EQ(values<uint8_t>(run1_ok(*step, bytes(encode_png(rgb, 9, 7, PNG_COLOR_TYPE_RGB, 8, true)))), rgb);

  // RGBA: alpha is dropped.
  std::vector<uint8_t> rgba;
  for (size_t i = 0; i < rgb.size(); i += 3) rgba.insert(rgba.end(), {rgb[i], rgb[i + 1], rgb[i + 2], 17});
  EXPECT_EQ(values<uint8_t>(run1_ok(*step, bytes(encode_png(rgba, 9, 7, PNG_COLOR_TYPE_RGBA)))), rgb);

  // Palette: expanded to RGB.
  const std::vector<png_color> palette = {{10, 20, 30}, {200, 100, 0}};
  Tensor pal = run1_ok(*step, bytes(encode_png({0, 1, 1, 0}, 2, 2, PNG_COLOR_TYPE_PALETTE, 8, false, palette)));
  EXPECT_EQ(values<uint8_t>(pal), (std::vector<uint8_t>{10, 20, 30, 200, 100, 0, 200, 100, 0, 10, 20, 30}));

  // 16-bit grey: scaled to 8 bits and replicated into RGB.
  std::vector<uint8_t> grey16(4);
  const uint16_t samples[2] = {0xFFFF, 0x8080};
  std::memcpy(grey16.data(), samples, sizeof samples);
  Tensor g = run1_ok(*step, bytes(encode_png(grey16, 2, 1, PNG_COLOR_TYPE_GRAY, 16)));
  EXPECT_EQ(g.shape(), (Shape{1, 2, 3}));
  EXPECT_EQ(values<uint8_t>(g), (std::vector<uint8_t>{255, 255, 255, 128, 128, 128}));
}

TEST(StepsImageDecode, GreyOutput) {
  auto step = make_ok("image_decode", "channels = 1");
  // Red, green, blue, white: ITU-R 601 luma.
  const std::vector<uint8_t> rgb = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255};
  Tensor png = run1_ok(*step, bytes(encode_png(rgb, 4, 1, PNG_COLOR_TYPE_RGB)));
  EXPECT_EQ(png.shape(), (Shape{1, 4, 1}));
  const std::vector<int> expected = {76, 150, 29, 255};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(png.data<uint8_t>()[i], expected[i], 1) << i;
  Tensor jpg = run1_ok(*step, bytes(encode_jpeg(std::vector<uint8_t>(64, 99), 8, 8, 1)));
  EXPECT_EQ(jpg.shape(), (Shape{8, 8, 1}));
  for (uint8_t v : values<uint8_t>(jpg)) EXPECT_NEAR(v, 99, 1);
}

TEST(StepsImageDecode, Jpeg) {
  // A smooth gradient survives quality-100 JPEG within a few levels.
  std::vector<uint8_t> rgb;
  for (int y = 0; y < 8; ++y) {
    for (int x = 0; x < 16; ++x) rgb.insert(rgb.end(), {uint8_t(x * 8), uint8_t(y * 16), uint8_t(128)});
  }
  auto step = make_ok("image_decode", "");
  Tensor img = run1_ok(*step, bytes(encode_jpeg(rgb, 16, 8, 3, 100)));
  ASSERT_EQ(img.shape(), (Shape{8, 16, 3}));
  for (size_t i = 0; i < rgb.size(); ++i) EXPECT_NEAR(img.data<uint8_t>()[i], rgb[i], 4) << i;
  // A grey JPEG decodes to RGB with equal channels.
  Tensor grey = run1_ok(*step, bytes(encode_jpeg(std::vector<uint8_t>(16, 60), 4, 4, 1)));
  ASSERT_EQ(grey.shape(), (Shape{4, 4, 3}));
  for (uint8_t v : values<uint8_t>(grey)) EXPECT_NEAR(v, 60, 1);
}

TEST(StepsImageDecode, Batch) {
  auto step = make_ok("image_decode", "");
  const auto rgb = test_rgb(4, 2);
  const Tensor batch = Tensor::from_vector<std::string>(
      {encode_png(rgb, 4, 2, PNG_COLOR_TYPE_RGB), encode_jpeg(rgb, 4, 2, 3, 100)}, {2});
  Tensor img = run1_ok(*step, batch);
  ASSERT_EQ(img.shape(), (Shape{2, 2, 4, 3}));
  for (size_t i = 0; i < rgb.size(); ++i) EXPECT_EQ(img.data<uint8_t>()[i], rgb[i]);

  const Tensor mixed = Tensor::from_vector<std::string>(
      {encode_png(rgb, 4, 2, PNG_COLOR_TYPE_RGB), encode_png(test_rgb(2, 4), 2, 4, PNG_COLOR_TYPE_RGB)}, {2});
  expect_invalid(run1(*step, mixed).status(), "image 1: image is 2x4 but the first image of the batch is 4x2");
}

TEST(StepsImageDecode, CorruptAndTruncated) {
  auto step = make_ok("image_decode", "");
  const auto rgb = test_rgb(32, 32);
  const std::string png = encode_png(rgb, 32, 32, PNG_COLOR_TYPE_RGB);
  const std::string jpg = encode_jpeg(rgb, 32, 32, 3);

  expect_invalid(run1(*step, bytes("")).status(), "not a JPEG or PNG");
  expect_invalid(run1(*step, bytes("GIF89a......")).status(), "not a JPEG or PNG");
  expect_invalid(run1(*step, bytes(png.substr(0, 8))).status(), "PNG");
  expect_invalid(run1(*step, bytes(png.substr(0, png.size() / 2))).status(), "PNG");
  expect_invalid(run1(*step, bytes(png.substr(0, png.size() - 6))).status(), "PNG");  // IEND cut
  expect_invalid(run1(*step, bytes(jpg.substr(0, 3))).status(), "JPEG");
  expect_invalid(run1(*step, bytes(jpg.substr(0, jpg.size() / 2))).status(), "JPEG");
  expect_invalid(run1(*step, bytes(jpg.substr(0, jpg.size() - 2))).status(), "JPEG");  // EOI cut

  // Flipped bytes everywhere after the header: every outcome is an error or an image, never a crash.
  for (const std::string* original : {&png, &jpg}) {
    for (size_t pos = 2; pos < original->size(); pos += 7) {
      std::string broken = *original;
      broken[pos] = static_cast<char>(broken[pos] ^ 0x5A);
      auto r = run1(*step, bytes(broken));
      if (!r.ok()) {
        EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().to_string();
      }
    }
  }
  // PNG with a damaged chunk CRC is refused.
  std::string bad_crc = png;
  bad_crc[29] = static_cast<char>(bad_crc[29] ^ 1);  // last byte of the IHDR CRC
  expect_invalid(run1(*step, bytes(bad_crc)).status(), "PNG");
}

TEST(StepsImageDecode, SizeLimitsAndBadInputs) {
  auto step = make_ok("image_decode", "");
  const std::string wide = encode_png(std::vector<uint8_t>(20000, 0), 20000, 1, PNG_COLOR_TYPE_GRAY);
  expect_invalid(run1(*step, bytes(wide)).status(), "PNG");
  const std::string wide_jpeg = encode_jpeg(std::vector<uint8_t>(20000, 0), 20000, 1, 1);
  expect_invalid(run1(*step, bytes(wide_jpeg)).status(), "outside the limits");

  expect_invalid(run1(*step, u8({1, 2}, {2})).status(), "string tensor");
  expect_invalid(run1(*step, Tensor::from_vector<std::string>({"a", "b"}, {1, 2})).status(), "shape [N]");
  expect_invalid(run1(*step, Tensor::from_vector<std::string>({}, {0})).status(), "N >= 1");
  expect_invalid(make("image_decode", "channels = 4").status(), "channels");
  expect_invalid(make("image_decode", "channels = \"rgb\"").status(), "integer");
}

// ---- resize ----

TEST(StepsResize, MatchesTorchBilinear) {
  // torch.nn.functional.interpolate(x, size, mode="bilinear", align_corners=False)
  std::vector<float> x(12);
  for (int i = 0; i < 12; ++i) x[i] = 10.0f * static_cast<float>(i);
  Tensor down = run1_ok(*make_ok("resize", "size = [2, 3]"), f32(x, {3, 4, 1}));
  EXPECT_EQ(down.shape(), (Shape{2, 3, 1}));
  expect_floats(down, {11.666667f, 25.0f, 38.333332f, 71.66667f, 85.0f, 98.333336f}, 1e-4f);

  Tensor up = run1_ok(*make_ok("resize", "size = [4, 4]"), f32({0, 10, 20, 30}, {2, 2, 1}));
  expect_floats(up, {0, 2.5, 7.5, 10, 5, 7.5, 12.5, 15, 15, 17.5, 22.5, 25, 20, 22.5, 27.5, 30});

  // uint8 rounds to nearest; torch's float result for the same input, rounded.
  Tensor u = run1_ok(*make_ok("resize", "size = [3, 5]"), u8({0, 255, 7, 100, 3, 50}, {2, 3, 1}));
  ASSERT_EQ(u.dtype(), DataType::kUInt8);
  const std::vector<int> expected = {0, 102, 255, 106, 7, 50, 82, 129, 69, 28, 100, 61, 3, 31, 50};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(u.data<uint8_t>()[i], expected[i], 1) << i;
}

TEST(StepsResize, ChannelsBatchAndShorterSide) {
  // Two channels, the second twice the first, in a batch of two images.
  std::vector<float> x;
  for (int n = 0; n < 2; ++n) {
    for (int i = 0; i < 4; ++i) x.insert(x.end(), {float(i + n), 2.0f * float(i + n)});
  }
  Tensor y = run1_ok(*make_ok("resize", "size = [4, 4]"), f32(x, {2, 2, 2, 2}));
  ASSERT_EQ(y.shape(), (Shape{2, 4, 4, 2}));
  for (int64_t i = 0; i < y.numel(); i += 2) EXPECT_FLOAT_EQ(y.data<float>()[i + 1], 2.0f * y.data<float>()[i]);
  EXPECT_FLOAT_EQ(y.data<float>()[16 * 2], 1.0f);  // second image, first pixel

  auto shorter = make_ok("resize", "shorter_side = 2");
  EXPECT_EQ(run1_ok(*shorter, Tensor::zeros(DataType::kUInt8, {4, 9, 3})).shape(), (Shape{2, 4, 3}));
  EXPECT_EQ(run1_ok(*shorter, Tensor::zeros(DataType::kUInt8, {9, 4, 3})).shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(run1_ok(*make_ok("resize", "shorter_side = 256"), Tensor::zeros(DataType::kFloat32, {480, 640, 3})).shape(),
            (Shape{256, 341, 3}));
  // Same size: unchanged.
  EXPECT_EQ(values<float>(run1_ok(*make_ok("resize", "size = [2, 2]"), f32({1, 2, 3, 4}, {2, 2, 1}))),
            (std::vector<float>{1, 2, 3, 4}));
}

TEST(StepsResize, Errors) {
  expect_invalid(make("resize", "").status(), "exactly one");
  expect_invalid(make("resize", "size = [2, 2]\nshorter_side = 3").status(), "exactly one");
  expect_invalid(make("resize", "size = [0, 2]").status(), "between 1 and");
  expect_invalid(make("resize", "size = [2]").status(), "[height, width]");
  expect_invalid(make("resize", "size = [2.5, 2]").status(), "list of integers");
  expect_invalid(make("resize", "shorter_side = 100000").status(), "between 1 and");
  auto step = make_ok("resize", "size = [2, 2]");
  expect_invalid(run1(*step, i64({1, 2, 3, 4}, {2, 2, 1})).status(), "uint8 or float");
  expect_invalid(run1(*step, f32({1, 2, 3, 4}, {2, 2})).status(), "HWC or NHWC");
  expect_invalid(run1(*step, f32({}, {0, 2, 1})).status(), "empty image");
  // A 1 x 16384 image whose shorter side becomes 2 would need a 32768-wide output.
  expect_invalid(run1(*make_ok("resize", "shorter_side = 2"), Tensor::zeros(DataType::kUInt8, {1, 16384, 1})).status(),
                 "outside 1..");
}

// ---- center_crop ----

TEST(StepsCenterCrop, OffsetsMatchTorchvision) {
  std::vector<float> x;
  for (int y = 0; y < 5; ++y) {
    for (int c = 0; c < 5; ++c) x.push_back(float(y * 10 + c));
  }
  // (5 - 2) / 2 = 1.5 rounds half to even: 2.
  EXPECT_EQ(values<float>(run1_ok(*make_ok("center_crop", "size = [2, 2]"), f32(x, {5, 5, 1}))),
            (std::vector<float>{22, 23, 32, 33}));
  // (5 - 3) / 2 = 1.
  EXPECT_EQ(values<float>(run1_ok(*make_ok("center_crop", "size = [3, 1]"), f32(x, {5, 5, 1}))),
            (std::vector<float>{12, 22, 32}));
  // Larger than the image: zero padding, (4 - 2) // 2 = 1 before.
  Tensor padded = run1_ok(*make_ok("center_crop", "size = [4, 3]"), u8({1, 2, 3, 4}, {2, 2, 1}));
  EXPECT_EQ(values<uint8_t>(padded), (std::vector<uint8_t>{0, 0, 0, 1, 2, 0, 3, 4, 0, 0, 0, 0}));
  // NHWC batch, multi-channel.
  Tensor b = run1_ok(*make_ok("center_crop", "size = [1, 1]"), u8({1, 2, 3, 4, 5, 6, 7, 8}, {2, 1, 2, 2}));
  EXPECT_EQ(b.shape(), (Shape{2, 1, 1, 2}));
  EXPECT_EQ(values<uint8_t>(b), (std::vector<uint8_t>{1, 2, 5, 6}));  // (2 - 1) / 2 = 0.5 rounds to 0
}

TEST(StepsCenterCrop, Errors) {
  expect_invalid(make("center_crop", "").status(), "missing parameter 'size'");
  expect_invalid(make("center_crop", "size = [3, -1]").status(), "between 1 and");
  auto step = make_ok("center_crop", "size = [1, 1]");
  expect_invalid(run1(*step, Tensor::from_vector<std::string>({"a"}, {1, 1, 1})).status(), "numeric");
  expect_invalid(run1(*step, f32({1}, {1})).status(), "HWC or NHWC");
}

// ---- normalize ----

TEST(StepsNormalize, Values) {
  auto step = make_ok("normalize", "mean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]");
  Tensor y = run1_ok(*step, u8({0, 128, 255, 255, 0, 51}, {1, 2, 3}));
  auto expect = [](float v, float m, float s) { return (v / 255.0f - m) / s; };
  expect_floats(y, {expect(0, 0.485f, 0.229f), expect(128, 0.456f, 0.224f), expect(255, 0.406f, 0.225f),
                    expect(255, 0.485f, 0.229f), expect(0, 0.456f, 0.224f), expect(51, 0.406f, 0.225f)});
  // Float input: scale 1 by default; one mean/std for every channel; explicit scale.
  expect_floats(run1_ok(*make_ok("normalize", "mean = [1]\nstd = [2]"), f32({3, 5}, {2})), {1, 2});
  expect_floats(run1_ok(*make_ok("normalize", "scale = 2"), f32({3, 5}, {1, 2})), {6, 10});
  // Channels first with axis = 0.
  expect_floats(run1_ok(*make_ok("normalize", "mean = [1, 2]\naxis = 0"), f32({1, 1, 2, 2}, {2, 2})), {0, 0, 0, 0});
}

TEST(StepsNormalize, Errors) {
  expect_invalid(make("normalize", "std = [1, 0]").status(), "positive");
  expect_invalid(make("normalize", "mean = []").status(), "empty");
  expect_invalid(make("normalize", "mean = [\"a\"]").status(), "numbers");
  auto step = make_ok("normalize", "mean = [1, 2]");
  expect_invalid(run1(*step, f32({1, 2, 3}, {1, 3})).status(), "mean has 2 values");
  expect_invalid(run1(*step, i64({1, 2}, {1, 2})).status(), "uint8 or float");
  expect_invalid(run1(*make_ok("normalize", "axis = 3"), f32({1, 2}, {1, 2})).status(), "axis 3");
}

// ---- layout ----

TEST(StepsLayout, Conversions) {
  // HWC [2,3,2]: value = h*100 + w*10 + c.
  std::vector<float> hwc;
  for (int h = 0; h < 2; ++h) {
    for (int w = 0; w < 3; ++w) {
      for (int c = 0; c < 2; ++c) hwc.push_back(float(h * 100 + w * 10 + c));
    }
  }
  Tensor nchw = run1_ok(*make_ok("layout", "from = \"HWC\"\nto = \"NCHW\""), f32(hwc, {2, 3, 2}));
  EXPECT_EQ(nchw.shape(), (Shape{1, 2, 2, 3}));
  EXPECT_EQ(values<float>(nchw), (std::vector<float>{0, 10, 20, 100, 110, 120, 1, 11, 21, 101, 111, 121}));
  Tensor back = run1_ok(*make_ok("layout", "from = \"NCHW\"\nto = \"HWC\""), nchw);
  EXPECT_EQ(back.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(values<float>(back), hwc);
  // Same order, batch axis added; strings move too.
  EXPECT_EQ(run1_ok(*make_ok("layout", "from = \"CHW\"\nto = \"NCHW\""), f32(hwc, {2, 3, 2})).shape(),
            (Shape{1, 2, 3, 2}));
  Tensor s = run1_ok(*make_ok("layout", "from = \"HWC\"\nto = \"CHW\""),
                     Tensor::from_vector<std::string>({"a", "b", "c", "d"}, {1, 2, 2}));
  EXPECT_EQ(values<std::string>(s), (std::vector<std::string>{"a", "c", "b", "d"}));
  // NHWC batch of 2 -> NCHW.
  Tensor nb = run1_ok(*make_ok("layout", "from = \"NHWC\"\nto = \"NCHW\""), u8({1, 2, 3, 4}, {2, 1, 1, 2}));
  EXPECT_EQ(nb.shape(), (Shape{2, 2, 1, 1}));
  EXPECT_EQ(values<uint8_t>(nb), (std::vector<uint8_t>{1, 2, 3, 4}));
}

TEST(StepsLayout, Errors) {
  expect_invalid(make("layout", "from = \"HCW\"\nto = \"NCHW\"").status(), "one of HWC");
  expect_invalid(make("layout", "from = \"HWC\"").status(), "missing parameter 'to'");
  auto drop = make_ok("layout", "from = \"NHWC\"\nto = \"CHW\"");
  expect_invalid(run1(*drop, f32({1, 2}, {2, 1, 1, 1})).status(), "cannot drop the batch axis");
  expect_invalid(run1(*drop, f32({1, 2}, {2, 1, 1})).status(), "does not match layout NHWC");
}

// ---- softmax, argmax, threshold ----

TEST(StepsSoftmax, StableAndAxis) {
  auto step = make_ok("softmax", "");
  const float e1 = std::exp(1.0f), e2 = std::exp(2.0f);
  const float z = 1.0f + e1 + e2;
  expect_floats(run1_ok(*step, f32({0, 1, 2, 1000, 1001, 1002}, {2, 3})),
                {1 / z, e1 / z, e2 / z, 1 / z, e1 / z, e2 / z});
  expect_floats(run1_ok(*make_ok("softmax", "axis = 0"), f32({0, 5, 0, 5}, {2, 2})), {0.5, 0.5, 0.5, 0.5});
  expect_invalid(run1(*step, i64({1}, {1})).status(), "float");
  expect_invalid(run1(*make_ok("softmax", "axis = 2"), f32({1, 2}, {2})).status(), "axis 2 is out of range");
}

TEST(StepsArgmax, TiesAndTypes) {
  auto step = make_ok("argmax", "");
  Tensor a = run1_ok(*step, f32({1, 3, 3, 7, 0, 7}, {2, 3}));
  EXPECT_EQ(a.dtype(), DataType::kInt64);
  EXPECT_EQ(a.shape(), (Shape{2}));
  EXPECT_EQ(values<int64_t>(a), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(values<int64_t>(run1_ok(*step, i64({-5, -2, -9}, {3}))), (std::vector<int64_t>{1}));
  EXPECT_EQ(values<int64_t>(run1_ok(*step, f32({1, NAN, 5}, {3}))), (std::vector<int64_t>{1}));
  EXPECT_EQ(values<int64_t>(run1_ok(*make_ok("argmax", "axis = 0"), f32({1, 5, 2, 4}, {2, 2}))),
            (std::vector<int64_t>{1, 0}));
  expect_invalid(run1(*step, f32({}, {2, 0})).status(), "empty");
  // Zero-sized dims after the axis give empty outputs, not a division by zero.
  EXPECT_EQ(run1_ok(*make_ok("argmax", "axis = 0"), f32({}, {2, 0})).shape(), (Shape{0}));
  EXPECT_EQ(run1_ok(*make_ok("softmax", "axis = 0"), f32({}, {2, 0})).shape(), (Shape{2, 0}));
  EXPECT_EQ(run1_ok(*make_ok("normalize", "mean = [1, 2]\naxis = 0"), f32({}, {2, 0})).shape(), (Shape{2, 0}));
  expect_invalid(run1(*step, Tensor::scalar<float>(1)).status(), "at least one axis");
}

TEST(StepsThreshold, Mask) {
  auto step = make_ok("threshold", "value = 0.5");
  Tensor m = run1_ok(*step, f32({0.2f, 0.5f, 0.7f, NAN}, {2, 2}), "mask");
  EXPECT_EQ(m.dtype(), DataType::kBool);
  EXPECT_EQ(m.shape(), (Shape{2, 2}));
  EXPECT_EQ(values<bool>(m), (std::vector<bool>{false, false, true, false}));
  EXPECT_EQ(values<bool>(run1_ok(*make_ok("threshold", "value = 1"), u8({0, 1, 2}, {3}))),
            (std::vector<bool>{false, false, true}));
  expect_invalid(make("threshold", "").status(), "missing parameter 'value'");
  expect_invalid(make("threshold", "value = nan").status(), "finite");
  expect_invalid(run1(*step, bytes("x")).status(), "input must be");
}

// ---- topk ----

TEST(StepsTopK, ValuesTiesAndClamp) {
  auto step = make_ok("topk", "k = 3");
  auto out = step->run({{"input", f32({0.1f, 0.5f, 0.5f, 0.2f, NAN, 3, 2, 1, 0, -1}, {2, 5})}});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const Tensor* idx = find_tensor(*out, "indices");
  const Tensor* scores = find_tensor(*out, "scores");
  ASSERT_NE(idx, nullptr);
  ASSERT_NE(scores, nullptr);
  EXPECT_EQ(find_tensor(*out, "labels"), nullptr);
  EXPECT_EQ(idx->shape(), (Shape{2, 3}));
  EXPECT_EQ(values<int64_t>(*idx), (std::vector<int64_t>{1, 2, 3, 0, 1, 2}));  // NaN sorts last
  EXPECT_EQ(values<float>(*scores), (std::vector<float>{0.5f, 0.5f, 0.2f, 3, 2, 1}));
  Tensor clamped = run1_ok(*make_ok("topk", "k = 10"), f32({1, 2}, {2}), "indices");
  EXPECT_EQ(values<int64_t>(clamped), (std::vector<int64_t>{1, 0}));
  expect_invalid(make("topk", "k = 0").status(), "at least 1");
  expect_invalid(run1(*step, i64({1}, {1})).status(), "float");
}

TEST(StepsTopK, Labels) {
  TempDir dir;
  dir.write("labels/imagenet.txt", "cat\r\ndog\nbird\n");
  auto step = make_ok("topk", "k = 2\nlabels = \"labels/imagenet.txt\"", dir.path());
  EXPECT_EQ(step->ports().outputs, (std::vector<std::string>{"indices", "scores", "labels"}));
  Tensor labels = run1_ok(*step, f32({0.1f, 0.3f, 0.6f}, {1, 3}), "labels");
  EXPECT_EQ(labels.dtype(), DataType::kString);
  EXPECT_EQ(labels.shape(), (Shape{1, 2}));
  EXPECT_EQ(values<std::string>(labels), (std::vector<std::string>{"bird", "dog"}));
  // A class past the end of the labels file.
  expect_invalid(run1(*step, f32({0, 0, 0, 1}, {4})).status(), "class 3 has no label");
}

TEST(StepsTopK, LabelsPathsStayInsideTheEnsemble) {
  TempDir outside;
  outside.write("secret.txt", "x\n");
  TempDir dir;
  dir.write("sub/ok.txt", "a\n");
  const std::string secret = (outside.path() / "secret.txt").string();
  expect_invalid(make("topk", "k = 1\nlabels = \"" + secret + "\"", dir.path()).status(), "relative");
  expect_invalid(make("topk", "k = 1\nlabels = \"../x.txt\"", dir.path()).status(), "inside the ensemble");
  expect_invalid(make("topk", "k = 1\nlabels = \"sub/../../x.txt\"", dir.path()).status(), "inside the ensemble");
  expect_invalid(make("topk", "k = 1\nlabels = \"missing.txt\"", dir.path()).status(), "cannot read");
  expect_invalid(make("topk", "k = 1\nlabels = \"\"", dir.path()).status(), "empty");
  std::filesystem::create_symlink(outside.path() / "secret.txt", dir.path() / "link.txt");
  expect_invalid(make("topk", "k = 1\nlabels = \"link.txt\"", dir.path()).status(), "outside the ensemble");
  EXPECT_TRUE(make("topk", "k = 1\nlabels = \"sub/ok.txt\"", dir.path()).ok());
  dir.write("empty.txt", "");
  expect_invalid(make("topk", "k = 1\nlabels = \"empty.txt\"", dir.path()).status(), "no labels");
}

// ---- nms ----

TEST(StepsNms, Suppression) {
  auto step = make_ok("nms", "iou_threshold = 0.5");
  // Boxes 0 and 1 overlap with IoU 81/119; box 2 is apart; box 3 has corners swapped.
  const Tensor boxes = f32({0, 0, 10, 10, 1, 1, 11, 11, 20, 20, 30, 30, 51, 51, 41, 41}, {4, 4});
  auto run = [&](const Step& s, const std::vector<float>& scores) {
    auto r = s.run({{"boxes", boxes}, {"scores", f32(scores, {4})}});
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? values<int64_t>(r->at(0).second) : std::vector<int64_t>{};
  };
  EXPECT_EQ(run(*step, {0.9f, 0.8f, 0.7f, 0.1f}), (std::vector<int64_t>{0, 2, 3}));
  EXPECT_EQ(run(*step, {0.8f, 0.9f, 0.7f, 0.95f}), (std::vector<int64_t>{3, 1, 2}));
  // Equal scores: lower index first.
  EXPECT_EQ(run(*step, {0.5f, 0.5f, 0.5f, 0.5f}), (std::vector<int64_t>{0, 2, 3}));
  EXPECT_EQ(run(*make_ok("nms", "iou_threshold = 0.9"), {0.9f, 0.8f, 0.7f, 0.1f}), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(run(*make_ok("nms", "iou_threshold = 0.5\nscore_threshold = 0.75"), {0.9f, 0.8f, 0.7f, 0.1f}),
            (std::vector<int64_t>{0}));
  EXPECT_EQ(run(*make_ok("nms", "iou_threshold = 0.5\nmax_detections = 2"), {0.9f, 0.8f, 0.7f, 0.1f}),
            (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(run(*step, {NAN, -1.0f, 0.3f, 0.2f}), (std::vector<int64_t>{2, 3}));
}

TEST(StepsNms, Errors) {
  expect_invalid(make("nms", "").status(), "iou_threshold");
  expect_invalid(make("nms", "iou_threshold = 1.5").status(), "between 0 and 1");
  expect_invalid(make("nms", "iou_threshold = 0.5\nmax_detections = 0").status(), "at least 1");
  auto step = make_ok("nms", "iou_threshold = 0.5");
  expect_invalid(step->run({{"boxes", f32({0, 0, 1}, {1, 3})}, {"scores", f32({1}, {1})}}).status(), "boxes");
  expect_invalid(step->run({{"boxes", f32({0, 0, 1, 1}, {1, 4})}, {"scores", f32({1, 2}, {2})}}).status(), "scores");
  expect_invalid(step->run({{"boxes", f32({0, 0, 1, 1}, {1, 4})}}).status(), "missing input 'scores'");
}

// ---- aggregations ----

Tensors list(std::vector<Tensor> ts) {
  Tensors out;
  for (size_t i = 0; i < ts.size(); ++i) out.emplace_back(std::to_string(i), std::move(ts[i]));
  return out;
}

Tensor run_list_ok(const Step& step, std::vector<Tensor> ts) {
  auto r = step.run(list(std::move(ts)));
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? r->at(0).second : Tensor();
}

TEST(StepsAggregate, MeanAndWeightedMean) {
  expect_floats(run_list_ok(*make_ok("mean", ""), {f32({1, 2}, {1, 2}), f32({3, 6}, {1, 2}), f32({2, 1}, {1, 2})}),
                {2, 3});
  auto weighted = make_ok("weighted_mean", "weights = [1, 3]");
  expect_floats(run_list_ok(*weighted, {f32({0, 4}, {2}), f32({4, 0}, {2})}), {3, 1});
  expect_invalid(weighted->run(list({f32({0}, {1})})).status(), "takes 2 inputs, got 1");
  expect_invalid(make_ok("mean", "")->run(list({f32({0}, {1}), f32({0, 1}, {2})})).status(), "shapes must match");
  expect_invalid(make_ok("mean", "")->run(list({i64({0}, {1})})).status(), "must be float");
  expect_invalid(make("weighted_mean", "weights = [1, -1]").status(), "negative");
  expect_invalid(make("weighted_mean", "weights = [0, 0]").status(), "all be zero");
  expect_invalid(make("weighted_mean", "").status(), "missing parameter 'weights'");
}

TEST(StepsAggregate, Vote) {
  auto vote = make_ok("vote", "");
  // Class ids: per item majority, ties to the lowest class.
  Tensor ids = run_list_ok(*vote, {i64({2, 1, 5}, {3}), i64({2, 0, 4}, {3}), i64({1, 0, 3}, {3})});
  EXPECT_EQ(values<int64_t>(ids), (std::vector<int64_t>{2, 0, 3}));
  // Scores [2,3] reduced by argmax, mixed with ids [2].
  Tensor mixed =
      run_list_ok(*vote, {f32({0, 1, 0, 1, 0, 0}, {2, 3}), i64({2, 0}, {2}), f32({0, 0, 1, 0, 0, 1}, {2, 3})});
  EXPECT_EQ(values<int64_t>(mixed), (std::vector<int64_t>{2, 0}));
  expect_invalid(vote->run(list({i64({1, 2}, {2}), i64({1}, {1})})).status(), "votes of shape");
  expect_invalid(vote->run(list({Tensor::from_vector<std::string>({"a"}, {1})})).status(), "class scores");
}

TEST(StepsAggregate, Concat) {
  Tensor c = run_list_ok(*make_ok("concat", "axis = 1"), {f32({1, 2, 3, 4}, {2, 2}), f32({5, 6}, {2, 1})});
  EXPECT_EQ(c.shape(), (Shape{2, 3}));
  EXPECT_EQ(values<float>(c), (std::vector<float>{1, 2, 5, 3, 4, 6}));
  Tensor s = run_list_ok(*make_ok("concat", ""), {Tensor::from_vector<std::string>({"a"}, {1}),
                                                  Tensor::from_vector<std::string>({"b", "c"}, {2})});
  EXPECT_EQ(values<std::string>(s), (std::vector<std::string>{"a", "b", "c"}));
  expect_invalid(make_ok("concat", "axis = 1")->run(list({f32({1, 2}, {1, 2}), f32({1, 2}, {2, 1})})).status(),
                 "must match");
  expect_invalid(make_ok("concat", "")->run(list({f32({1}, {1}), i64({1}, {1})})).status(), "must match");
  expect_invalid(make_ok("concat", "axis = -3")->run(list({f32({1}, {1})})).status(), "out of range");
}

}  // namespace
}  // namespace deskml::serving
