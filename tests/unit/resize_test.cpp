// Unit tests for Resize / Upsample and the detection kernels (NonMaxSuppression,
// RoiAlign, GridSample). Golden values marked "torch" come from PyTorch 1.13.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernel_harness.hpp"

namespace deskml {
namespace {

using testing::make_node;
using testing::run_node;
using Attrs = std::map<std::string, graph::AttributeValue>;

Tensor f32(const std::vector<float>& v, Shape s) { return Tensor::from_vector<float>(v, std::move(s)); }
Tensor i64(const std::vector<int64_t>& v) { return Tensor::from_vector<int64_t>(v, {static_cast<int64_t>(v.size())}); }
Tensor scales(const std::vector<float>& v) { return f32(v, {static_cast<int64_t>(v.size())}); }

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

void expect_near(const Tensor& t, const std::vector<float>& expected, float tol = 1e-5f) {
  ASSERT_EQ(t.numel(), static_cast<int64_t>(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_NEAR(t.float_at(static_cast<int64_t>(i)), expected[i], tol) << "element " << i;
  }
}

// Resize with inputs X, roi, scales, sizes (absent ones undefined).
Result<std::vector<Tensor>> resize(const Tensor& x, const Tensor& scl, const Tensor& sizes, Attrs attrs = {},
                                   int opset = 13, const Tensor& roi = Tensor(), int threads = 1) {
  return run_node(make_node("Resize", 4, 1, opset, std::move(attrs)), {x, roi, scl, sizes}, threads);
}

// --- Resize -----------------------------------------------------------------------------

TEST(Resize, BilinearHalfPixelMatchesTorch) {
  auto out = resize(f32({1, 2, 3, 4}, {1, 1, 2, 2}), Tensor(), i64({1, 1, 4, 4}), {{"mode", std::string("linear")}});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4});
}

TEST(Resize, NearestUpsampleByScales) {
  auto out = resize(f32({1, 2, 3, 4}, {1, 1, 2, 2}), scales({1, 1, 2, 3}), Tensor());
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0].shape(), (Shape{1, 1, 4, 6}));
  expect_near((*out)[0], {1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4});
}

TEST(Resize, Opset10NearestCeilsWhenShrinking) {
  // x_original = x / 0.6 = 0, 1.67, 3.33: ceil picks 0, 2, 4 (floor would pick 0, 1, 3).
  auto out = run_node(make_node("Resize", 2, 1, 10), {f32({10, 11, 12, 13, 14}, {1, 5}), scales({1, 0.6f})});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  expect_near((*out)[0], {10, 12, 14});
}

TEST(Resize, NearestModesAndTransforms) {
  const Tensor x = f32({0, 1, 2, 3}, {4});
  struct Case {
    const char* ctm;
    const char* nearest;
    std::vector<float> expected;
  };
  // Downsample 4 -> 3 (scale 0.75).
  const std::vector<Case> cases = {
      {"half_pixel", "round_prefer_floor", {0, 1, 3}},  // x_orig = 0.17, 1.5, 2.83
      {"half_pixel", "round_prefer_ceil", {0, 2, 3}},
      {"half_pixel", "floor", {0, 1, 2}},
      {"half_pixel", "ceil", {1, 2, 3}},
      {"asymmetric", "floor", {0, 1, 2}},                  // 0, 1.33, 2.67
      {"align_corners", "round_prefer_floor", {0, 1, 3}},  // 0, 1.5, 3
      {"tf_half_pixel_for_nn", "floor", {0, 2, 3}},        // 0.67, 2, 3.33
  };
  for (const Case& c : cases) {
    auto out =
        resize(x, Tensor(), i64({3}),
               {{"coordinate_transformation_mode", std::string(c.ctm)}, {"nearest_mode", std::string(c.nearest)}}, 11);
    ASSERT_TRUE(out.ok()) << c.ctm << " " << c.nearest << ": " << out.status().to_string();
    expect_near((*out)[0], c.expected);
  }
}

TEST(Resize, AntialiasMatchesTorch) {
  std::vector<float> x(8);
  for (int i = 0; i < 8; ++i) x[i] = static_cast<float>(i * i) / 10;
  // torch.nn.functional.interpolate(antialias=True) ignores taps outside the input: exclude_outside=1.
  auto lin = resize(f32(x, {1, 1, 1, 8}), Tensor(), i64({1, 1, 1, 3}),
                    {{"mode", std::string("linear")}, {"antialias", int64_t{1}}, {"exclude_outside", int64_t{1}}}, 18);
  ASSERT_TRUE(lin.ok()) << lin.status().to_string();
  expect_near((*lin)[0], {0.2052632f, 1.345238f, 3.557895f});
  auto cub = resize(f32(x, {1, 1, 1, 8}), Tensor(), i64({1, 1, 1, 3}),
                    {{"mode", std::string("cubic")},
                     {"antialias", int64_t{1}},
                     {"exclude_outside", int64_t{1}},
                     {"cubic_coeff_a", -0.5f}},
                    18);
  ASSERT_TRUE(cub.ok());
  expect_near((*cub)[0], {0.1035793f, 1.271856f, 3.748527f});
  // Before opset 18 the attribute does not exist: plain linear.
  auto old = resize(f32(x, {1, 1, 1, 8}), Tensor(), i64({1, 1, 1, 3}),
                    {{"mode", std::string("linear")}, {"antialias", int64_t{1}}}, 13);
  ASSERT_TRUE(old.ok());
  EXPECT_NE((*old)[0].float_at(0), (*lin)[0].float_at(0));
}

TEST(Resize, IntegerInputsRoundAndSaturate) {
  const Tensor x = Tensor::from_vector<uint8_t>({0, 255}, {1, 2});
  auto out = resize(x, Tensor(), i64({1, 4}), {{"mode", std::string("linear")}});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  ASSERT_EQ((*out)[0].dtype(), DataType::kUInt8);
  EXPECT_EQ((*out)[0].int_at(1), 64);   // 63.75
  EXPECT_EQ((*out)[0].int_at(2), 191);  // 191.25
  // Cubic overshoots past 255 next to the edge; the result saturates.
  auto cub = resize(Tensor::from_vector<uint8_t>({0, 0, 255, 255}, {4}), Tensor(), i64({16}),
                    {{"mode", std::string("cubic")}});
  ASSERT_TRUE(cub.ok());
  for (int64_t i = 0; i < 16; ++i) EXPECT_LE((*cub)[0].int_at(i), 255);
}

TEST(Resize, NearestWorksOnStrings) {
  const Tensor x = Tensor::from_vector<std::string>({"a", "b"}, {2});
  auto out = resize(x, scales({2}), Tensor());
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const auto* s = (*out)[0].data<std::string>();
  EXPECT_EQ(std::vector<std::string>(s, s + 4), (std::vector<std::string>{"a", "a", "b", "b"}));
  EXPECT_FALSE(resize(x, scales({2}), Tensor(), {{"mode", std::string("linear")}}).ok());
}

TEST(Resize, LinearIsExactOnLinearFunctionsInFiveDims) {
  // f = sum_d (d + 1) * i_d; align_corners maps output o to o * (in - 1) / (out - 1).
  const Shape in_shape = {2, 3, 2, 4, 3}, out_shape = {3, 5, 2, 7, 4};
  std::vector<float> x(static_cast<size_t>(shape_numel(in_shape)));
  const auto strides = shape_strides(in_shape);
  for (size_t i = 0; i < x.size(); ++i) {
    double v = 0;
    for (size_t d = 0; d < 5; ++d) v += (d + 1) * ((static_cast<int64_t>(i) / strides[d]) % in_shape[d]);
    x[i] = static_cast<float>(v);
  }
  auto out =
      resize(f32(x, in_shape), Tensor(), i64(out_shape),
             {{"mode", std::string("linear")}, {"coordinate_transformation_mode", std::string("align_corners")}});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const auto ostrides = shape_strides(out_shape);
  for (int64_t i = 0; i < shape_numel(out_shape); ++i) {
    double v = 0;
    for (size_t d = 0; d < 5; ++d) {
      const int64_t o = (i / ostrides[d]) % out_shape[d];
      v += (d + 1) * static_cast<double>(o) * (in_shape[d] - 1) / (out_shape[d] - 1);
    }
    ASSERT_NEAR((*out)[0].float_at(i), v, 1e-4) << i;
  }
}

TEST(Resize, CropAndResizeExtrapolates) {
  // roi covers x in [-0.5, 1.5] of a 3-wide row: the ends fall outside.
  auto out = resize(f32({0, 10, 20}, {1, 3}), Tensor(), i64({1, 5}),
                    {{"mode", std::string("linear")},
                     {"coordinate_transformation_mode", std::string("tf_crop_and_resize")},
                     {"extrapolation_value", -1.f}},
                    13, f32({0, -0.5f, 1, 1.5f}, {4}));
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  expect_near((*out)[0], {-1, 0, 10, 20, -1});  // x_original = -1, 0, 1, 2, 3
}

TEST(Resize, Opset18AxesAndAspectRatio) {
  const Tensor x = f32(random_values(6, 1), {1, 1, 2, 3});
  auto larger =
      resize(x, Tensor(), i64({4, 4}),
             {{"axes", std::vector<int64_t>{2, 3}}, {"keep_aspect_ratio_policy", std::string("not_larger")}}, 18);
  ASSERT_TRUE(larger.ok()) << larger.status().to_string();
  EXPECT_EQ((*larger)[0].shape(), (Shape{1, 1, 3, 4}));
  auto smaller =
      resize(x, Tensor(), i64({4, 4}),
             {{"axes", std::vector<int64_t>{-2, -1}}, {"keep_aspect_ratio_policy", std::string("not_smaller")}}, 18);
  ASSERT_TRUE(smaller.ok());
  EXPECT_EQ((*smaller)[0].shape(), (Shape{1, 1, 4, 6}));
  auto by_scale = resize(x, scales({2}), Tensor(), {{"axes", std::vector<int64_t>{3}}}, 18);
  ASSERT_TRUE(by_scale.ok());
  EXPECT_EQ((*by_scale)[0].shape(), (Shape{1, 1, 2, 6}));
  EXPECT_FALSE(resize(x, scales({2}), Tensor(), {{"axes", std::vector<int64_t>{4}}}, 18).ok());
  EXPECT_FALSE(resize(x, scales({2, 2}), Tensor(), {{"axes", std::vector<int64_t>{3, 3}}}, 18).ok());
}

TEST(Resize, IdentityAndThreads) {
  const Shape shape = {2, 8, 33, 47};
  const Tensor x = f32(random_values(static_cast<size_t>(shape_numel(shape)), 3), shape);
  auto same = resize(x, scales({1, 1, 1, 1}), Tensor(), {{"mode", std::string("cubic")}});
  ASSERT_TRUE(same.ok());
  for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ((*same)[0].float_at(i), x.float_at(i));
  for (const char* mode : {"nearest", "linear", "cubic"}) {
    auto one = resize(x, scales({1, 1, 2.5f, 0.7f}), Tensor(), {{"mode", std::string(mode)}}, 13, Tensor(), 1);
    auto four = resize(x, scales({1, 1, 2.5f, 0.7f}), Tensor(), {{"mode", std::string(mode)}}, 13, Tensor(), 4);
    ASSERT_TRUE(one.ok() && four.ok());
    EXPECT_EQ((*one)[0].shape(), (Shape{2, 8, 82, 32}));
    for (int64_t i = 0; i < (*one)[0].numel(); ++i) ASSERT_EQ((*one)[0].float_at(i), (*four)[0].float_at(i));
  }
}

TEST(Resize, EmptyTensors) {
  auto out = resize(f32({}, {0, 3, 4, 4}), scales({1, 1, 2, 2}), Tensor(), {{"mode", std::string("linear")}});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].shape(), (Shape{0, 3, 8, 8}));
  auto down = resize(f32({1, 2, 3, 4}, {1, 1, 2, 2}), scales({1, 1, 0.25f, 0.25f}), Tensor());
  ASSERT_TRUE(down.ok());
  EXPECT_EQ((*down)[0].shape(), (Shape{1, 1, 0, 0}));
  EXPECT_FALSE(resize(f32({}, {1, 0}), Tensor(), i64({1, 3}), {{"mode", std::string("linear")}}).ok());
}

TEST(Resize, BadInputsAreErrors) {
  const Tensor x = f32({1, 2, 3, 4}, {1, 1, 2, 2});
  EXPECT_FALSE(resize(x, scales({1, 1, 2, 2}), i64({1, 1, 4, 4})).ok());  // both
  EXPECT_FALSE(resize(x, Tensor(), Tensor()).ok());                       // neither
  EXPECT_FALSE(resize(x, scales({2, 2}), Tensor()).ok());                 // wrong count
  EXPECT_FALSE(resize(x, scales({1, 1, -2, 2}), Tensor()).ok());
  EXPECT_FALSE(resize(x, Tensor(), i64({1, 1, -4, 4})).ok());
  EXPECT_FALSE(resize(x, scales({1, 1, 2, 2}), Tensor(), {{"mode", std::string("area")}}).ok());
  EXPECT_FALSE(
      resize(x, scales({1, 1, 2, 2}), Tensor(), {{"coordinate_transformation_mode", std::string("diagonal")}}).ok());
  EXPECT_FALSE(
      resize(x, Tensor(), i64({1, 1, 4, 4}), {{"coordinate_transformation_mode", std::string("tf_crop_and_resize")}})
          .ok());
  EXPECT_FALSE(resize(x, scales({1, 1, 1e30f, 1e30f}), Tensor()).ok());  // absurd output size
}

TEST(Upsample, AttributeAndInputScales) {
  const Tensor x = f32({1, 2, 3, 4}, {1, 1, 2, 2});
  auto v7 = run_node(make_node("Upsample", 1, 1, 7, {{"scales", std::vector<float>{1, 1, 2, 2}}}), {x});
  ASSERT_TRUE(v7.ok()) << v7.status().to_string();
  expect_near((*v7)[0], {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
  // Linear Upsample is asymmetric with the edge clamped.
  auto v9 = run_node(make_node("Upsample", 2, 1, 9, {{"mode", std::string("linear")}}), {x, scales({1, 1, 1, 2})});
  ASSERT_TRUE(v9.ok());
  expect_near((*v9)[0], {1, 1.5, 2, 2, 3, 3.5, 4, 4});
  EXPECT_FALSE(
      run_node(make_node("Upsample", 2, 1, 9, {{"mode", std::string("cubic")}}), {x, scales({1, 1, 2, 2})}).ok());
  EXPECT_FALSE(run_node(make_node("Upsample", 2, 1, 9), {x, scales({2, 2})}).ok());
}

// --- NonMaxSuppression ----------------------------------------------------------------------

const std::vector<float> kBoxes = {0, 0,  1, 1,  0, 0.1f,  1, 1.1f,  0, -0.1f, 1, 0.9f,
                                   0, 10, 1, 11, 0, 10.1f, 1, 11.1f, 0, 100,   1, 101};
const std::vector<float> kScores = {0.9f, 0.75f, 0.6f, 0.95f, 0.5f, 0.3f};

Result<std::vector<Tensor>> nms(const Tensor& boxes, const Tensor& scores, std::vector<Tensor> rest, Attrs attrs = {}) {
  std::vector<Tensor> in = {boxes, scores};
  in.insert(in.end(), rest.begin(), rest.end());
  return run_node(make_node("NonMaxSuppression", in.size(), 1, 11, std::move(attrs)), in);
}

std::vector<int64_t> values(const Tensor& t) { return t.to_int64_vector(); }

TEST(NonMaxSuppression, OnnxExamples) {
  const Tensor boxes = f32(kBoxes, {1, 6, 4}), scores = f32(kScores, {1, 1, 6});
  auto out = nms(boxes, scores, {i64({3}), scales({0.5f}), scales({0.f})});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].shape(), (Shape{3, 3}));
  EXPECT_EQ(values((*out)[0]), (std::vector<int64_t>{0, 0, 3, 0, 0, 0, 0, 0, 5}));
  auto by_score = nms(boxes, scores, {i64({3}), scales({0.5f}), scales({0.4f})});
  ASSERT_TRUE(by_score.ok());
  EXPECT_EQ(values((*by_score)[0]), (std::vector<int64_t>{0, 0, 3, 0, 0, 0}));
  auto limited = nms(boxes, scores, {i64({2}), scales({0.5f})});
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ(values((*limited)[0]), (std::vector<int64_t>{0, 0, 3, 0, 0, 0}));
  auto none = nms(boxes, scores, {});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ((*none)[0].shape(), (Shape{0, 3}));
}

TEST(NonMaxSuppression, CenterFormatAndClasses) {
  // Same boxes as centres and sizes; two classes with the scores reversed for the second.
  std::vector<float> centre;
  for (size_t i = 0; i < kBoxes.size(); i += 4) {
    centre.insert(centre.end(), {(kBoxes[i + 1] + kBoxes[i + 3]) / 2, (kBoxes[i] + kBoxes[i + 2]) / 2,
                                 kBoxes[i + 3] - kBoxes[i + 1], kBoxes[i + 2] - kBoxes[i]});
  }
  std::vector<float> sc = kScores;
  sc.insert(sc.end(), kScores.rbegin(), kScores.rend());
  auto out =
      nms(f32(centre, {1, 6, 4}), f32(sc, {1, 2, 6}), {i64({3}), scales({0.5f})}, {{"center_point_box", int64_t{1}}});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  // Class 1 scores by box are 0.3, 0.5, 0.95, 0.6, 0.75, 0.9: boxes 2, 5 and 4 overlap nothing chosen before.
  EXPECT_EQ(values((*out)[0]), (std::vector<int64_t>{0, 0, 3, 0, 0, 0, 0, 0, 5, 0, 1, 2, 0, 1, 5, 0, 1, 4}));
}

TEST(NonMaxSuppression, BadInputsAreErrors) {
  EXPECT_FALSE(nms(f32(kBoxes, {1, 6, 4}), f32(kScores, {1, 1, 6}), {i64({3}), scales({1.5f})}).ok());
  EXPECT_FALSE(nms(f32(kBoxes, {1, 6, 4}), f32({0.1f, 0.2f}, {1, 1, 2}), {i64({3})}).ok());
  EXPECT_FALSE(nms(f32(kBoxes, {6, 4}), f32(kScores, {1, 1, 6}), {i64({3})}).ok());
  EXPECT_FALSE(
      nms(f32(kBoxes, {1, 6, 4}), f32(kScores, {1, 1, 6}), {i64({3})}, {{"center_point_box", int64_t{2}}}).ok());
}

// --- RoiAlign --------------------------------------------------------------------------------

TEST(RoiAlign, AveragesALinearImageToItsBinCentres) {
  const int64_t H = 10, W = 12;
  std::vector<float> img(H * W * 2);
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) img[(c * H + y) * W + x] = static_cast<float>(2 * x + 3 * y + 100 * c);
  const std::vector<float> roi = {2.2f, 1.6f, 8.4f, 7.0f};  // x1, y1, x2, y2
  for (const char* ctm : {"half_pixel", "output_half_pixel"}) {
    auto out = run_node(make_node("RoiAlign", 3, 1, 16,
                                  {{"output_height", int64_t{3}},
                                   {"output_width", int64_t{2}},
                                   {"sampling_ratio", int64_t{2}},
                                   {"coordinate_transformation_mode", std::string(ctm)}}),
                        {f32(img, {1, 2, H, W}), f32(roi, {1, 4}), i64({0})});
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    const double off = std::string(ctm) == "half_pixel" ? 0.5 : 0.0;
    const double x0 = roi[0] - off, y0 = roi[1] - off, bw = (roi[2] - roi[0]) / 2.0, bh = (roi[3] - roi[1]) / 3.0;
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t ph = 0; ph < 3; ++ph)
        for (int64_t pw = 0; pw < 2; ++pw) {
          const double cx = x0 + (pw + 0.5) * bw, cy = y0 + (ph + 0.5) * bh;
          EXPECT_NEAR((*out)[0].float_at((c * 3 + ph) * 2 + pw), 2 * cx + 3 * cy + 100 * c, 1e-4) << ctm;
        }
  }
}

TEST(RoiAlign, BadInputsAreErrors) {
  const Tensor x = f32(random_values(48, 2), {1, 3, 4, 4});
  auto run = [&](const Tensor& rois, const Tensor& idx, Attrs a = {}) {
    return run_node(make_node("RoiAlign", 3, 1, 16, std::move(a)), {x, rois, idx});
  };
  EXPECT_TRUE(run(f32({0, 0, 2, 2}, {1, 4}), i64({0})).ok());
  EXPECT_FALSE(run(f32({0, 0, 2, 2}, {1, 4}), i64({1})).ok());  // batch index out of range
  EXPECT_FALSE(run(f32({0, 0, 2, 2}, {1, 4}), i64({-1})).ok());
  EXPECT_FALSE(run(f32({0, 0, 2}, {1, 3}), i64({0})).ok());
  EXPECT_FALSE(run(f32({0, 0, 2, 2}, {1, 4}), i64({0, 0})).ok());
  EXPECT_FALSE(run(f32({0, 0, NAN, 2}, {1, 4}), i64({0})).ok());
  EXPECT_FALSE(run(f32({0, 0, 1e30f, 1e30f}, {1, 4}), i64({0})).ok());  // adaptive grid explodes
  EXPECT_FALSE(run(f32({0, 0, 2, 2}, {1, 4}), i64({0}), {{"mode", std::string("median")}}).ok());
}

// --- GridSample ------------------------------------------------------------------------------

TEST(GridSample, IdentityGridReproducesTheInput) {
  const int64_t H = 5, W = 7;
  const Tensor x = f32(random_values(2 * H * W, 4), {1, 2, H, W});
  std::vector<float> grid;
  for (int64_t y = 0; y < H; ++y)
    for (int64_t xx = 0; xx < W; ++xx) {
      grid.push_back(-1.f + 2.f * xx / (W - 1));
      grid.push_back(-1.f + 2.f * y / (H - 1));
    }
  for (const char* mode : {"bilinear", "nearest", "bicubic"}) {
    auto out = run_node(make_node("GridSample", 2, 1, 16, {{"mode", std::string(mode)}, {"align_corners", int64_t{1}}}),
                        {x, f32(grid, {1, H, W, 2})});
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    for (int64_t i = 0; i < x.numel(); ++i) ASSERT_NEAR((*out)[0].float_at(i), x.float_at(i), 1e-5) << mode << " " << i;
  }
}

TEST(GridSample, BicubicReflectionMatchesTorch) {
  std::vector<float> x(12);
  for (int i = 0; i < 12; ++i) x[i] = static_cast<float>(i);
  auto out = run_node(make_node("GridSample", 2, 1, 16,
                                {{"mode", std::string("bicubic")}, {"padding_mode", std::string("reflection")}}),
                      {f32(x, {1, 1, 3, 4}), f32({-1, -1, 0.3f, 0.1f, 1.2f, 0.9f}, {1, 1, 3, 2})});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  expect_near((*out)[0], {-0.9375f, 6.978628f, 11.75f}, 1e-4f);
}

TEST(GridSample, ZerosPaddingAndBadInputs) {
  const Tensor x = f32({1, 2, 3, 4}, {1, 1, 2, 2});
  auto out = run_node(make_node("GridSample", 2, 1, 16), {x, f32({5, 5, NAN, 0, -1e30f, 0}, {1, 1, 3, 2})});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  expect_near((*out)[0], {0, 0, 0});
  EXPECT_FALSE(run_node(make_node("GridSample", 2, 1, 16), {x, f32({0, 0}, {1, 1, 1, 1, 2})}).ok());
  EXPECT_FALSE(run_node(make_node("GridSample", 2, 1, 16), {x, f32({0, 0, 0, 0}, {2, 1, 1, 2})}).ok());
  EXPECT_FALSE(
      run_node(make_node("GridSample", 2, 1, 16, {{"mode", std::string("area")}}), {x, f32({0, 0}, {1, 1, 1, 2})})
          .ok());
  EXPECT_FALSE(run_node(make_node("GridSample", 2, 1, 16, {{"padding_mode", std::string("wrap")}}),
                        {x, f32({0, 0}, {1, 1, 1, 2})})
                   .ok());
}

}  // namespace
}  // namespace deskml
