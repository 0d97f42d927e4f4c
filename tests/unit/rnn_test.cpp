// Unit tests for the recurrent kernels (LSTM, GRU, RNN) and the audio
// front-end kernels (DFT, STFT, windows, MelWeightMatrix).
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "kernel_harness.hpp"

namespace deskml {
namespace {

using testing::make_node;
using testing::run_node;
using Attrs = std::map<std::string, graph::AttributeValue>;

std::vector<float> random_values(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

Tensor f32(const std::vector<float>& v, Shape s) { return Tensor::from_vector<float>(v, std::move(s)); }

void expect_near(const Tensor& t, const std::vector<float>& expected, float tol = 1e-5f) {
  ASSERT_EQ(t.numel(), static_cast<int64_t>(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_NEAR(t.float_at(static_cast<int64_t>(i)), expected[i], tol) << "element " << i;
  }
}

void expect_same(const Tensor& a, const Tensor& b, double tol = 1e-5) {
  ASSERT_EQ(a.shape(), b.shape());
  for (int64_t i = 0; i < a.numel(); ++i) EXPECT_NEAR(a.float_at(i), b.float_at(i), tol) << "element " << i;
}

// Element [i0, i1, i2, i3] of a rank-4 tensor / [i0, i1, i2] of rank 3.
double at(const Tensor& t, std::initializer_list<int64_t> idx) {
  int64_t off = 0, k = 0;
  for (int64_t i : idx) off = off * t.dim(k++) + i;
  return t.float_at(off);
}

// --- golden case: bidirectional LSTM with sequence_lens, from torch.nn.LSTM ---------
// (pack_padded_sequence semantics; weights reordered from torch's i,f,g,o to ONNX's i,o,f,c)
const std::vector<float> kX = {-0.5525083,  0.6354773,  -0.3968158, -0.6570598, -1.642752, 0.9802917,
                               -0.04214706, -0.8205758, 0.3132995,  -1.135167,  0.3773337, -0.2824196};
const std::vector<float> kW = {0.3643461,   -0.3121015, -0.1370808, 0.331894,    0.2582553,  -0.2755602, -0.05155428,
                               -0.06365894, -0.6656964, 0.4240641,  -0.1454698,  0.3597362,  0.09829985, -0.08658109,
                               0.1961238,   0.03488284, -0.2041822, -0.07752322, -0.679804,  -0.3371356, -0.4570878,
                               0.4592974,   0.4292858,  0.6271294,  0.3837002,   -0.1718816, 0.7043133,  0.5668086,
                               -0.0331093,  -0.4719818, 0.4306013,  0.2194556};
const std::vector<float> kR = {0.1024908, -0.002824766, 0.6181292,  0.2200446,  -0.6912329,  0.43835,    0.1975401,
                               0.67073,   -0.263331,    -0.4270652, -0.1185222, -0.3050039,  -0.2265913, 0.03385741,
                               0.421526,  0.3843385,    -0.3963755, -0.116394,  -0.01369798, 0.1032782,  0.2571036,
                               0.3505204, -0.6548601,   0.3559232,  -0.5366362, -0.5017788,  0.3846693,  -0.1658108,
                               0.3454029, 0.04031211,   0.2321748,  0.1554848};
const std::vector<float> kB = {0.4667328,  -0.6442716, 0.302613,   -0.3286006, -0.672323,  -0.3410603, 0.6209188,
                               -0.1177821, 0.6938259,  -0.2991758, -0.3753465, 0.2079634,  0.5302769,  0.008373315,
                               -0.3725162, 0.3634634,  -0.4971832, -0.5335184, -0.6286051, 0.5146102,  0.04300226,
                               -0.1204961, 0.4153008,  -0.4095107, -0.1048511, 0.3977173,  -0.4734494, -0.3355026,
                               0.2273239,  -0.5302419, 0.1420565,  0.1698446};
const std::vector<float> kH0 = {-2.566737, -1.430327, 0.5009211, 0.5437675, -0.4057424, 1.134052, -1.111539, 0.3500676};
const std::vector<float> kC0 = {-0.7702728, -0.1472662, 0.627179, 1.093453, 0.09390315, 1.238066, -1.345894, 0.5118973};
const std::vector<float> kY = {-0.1945364,  -0.02726867, 0.1663682,   0.2895297,   0.07002134, -0.1606728,
                               -0.02829733, -0.1403501,  -0.07189691, -0.06579044, 0.1823265,  0.1413665,
                               0.09860253,  -0.1874996,  -0.0985779,  -0.1408202,  0.1403317,  -0.002457324,
                               0,           0,           0.05927861,  0.05569045,  0,          0};
const std::vector<float> kYh = {0.1403317,  -0.002457324, 0.1823265,   0.1413665,
                                0.07002134, -0.1606728,   -0.02829733, -0.1403501};
const std::vector<float> kYc = {0.2448079, -0.005235922, 0.3524706,  0.2679655,
                                0.1999785, -0.2996837,   -0.1326066, -0.3624952};

TEST(Lstm, BidirectionalWithSequenceLensMatchesTorch) {
  auto node =
      make_node("LSTM", 7, 3, 14, Attrs{{"hidden_size", int64_t{2}}, {"direction", std::string("bidirectional")}});
  auto out = run_node(node, {f32(kX, {3, 2, 2}), f32(kW, {2, 8, 2}), f32(kR, {2, 8, 2}), f32(kB, {2, 16}),
                             Tensor::from_vector<int32_t>({3, 2}, {2}), f32(kH0, {2, 2, 2}), f32(kC0, {2, 2, 2})});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].shape(), (Shape{3, 2, 2, 2}));
  expect_near((*out)[0], kY);
  expect_near((*out)[1], kYh);
  expect_near((*out)[2], kYc);
}

// --- properties ----------------------------------------------------------------------

struct RnnCase {
  std::string op;
  int64_t gates;
  int64_t T = 5, B = 3, I = 4, H = 6;
};

// Random weights for `dirs` directions.
std::vector<Tensor> rnn_inputs(const RnnCase& c, int64_t dirs, uint32_t seed) {
  const int64_t G = c.gates * c.H;
  return {f32(random_values(c.T * c.B * c.I, seed), {c.T, c.B, c.I}),
          f32(random_values(dirs * G * c.I, seed + 1, 0.5f), {dirs, G, c.I}),
          f32(random_values(dirs * G * c.H, seed + 2, 0.5f), {dirs, G, c.H}),
          f32(random_values(dirs * 2 * G, seed + 3, 0.5f), {dirs, 2 * G}),
          Tensor(),
          f32(random_values(dirs * c.B * c.H, seed + 4), {dirs, c.B, c.H})};
}

Tensor slice_dir(const Tensor& t, int64_t d) {  // [dirs, ...] -> [1, ...]
  Shape s = t.shape();
  const int64_t per = t.numel() / s[0];
  s[0] = 1;
  std::vector<float> v(t.data<float>() + d * per, t.data<float>() + (d + 1) * per);
  return f32(v, s);
}

class RnnProperties : public ::testing::TestWithParam<RnnCase> {};

TEST_P(RnnProperties, BidirectionalIsForwardPlusReverse) {
  const RnnCase c = GetParam();
  auto in = rnn_inputs(c, 2, 10);
  in[4] = Tensor::from_vector<int32_t>({5, 2, 4}, {3});
  auto bi =
      run_node(make_node(c.op, 6, 2, 14, Attrs{{"hidden_size", c.H}, {"direction", std::string("bidirectional")}}), in);
  ASSERT_TRUE(bi.ok()) << bi.status().to_string();
  for (int64_t d = 0; d < 2; ++d) {
    std::vector<Tensor> one = in;
    for (size_t i : {1, 2, 3, 5}) one[i] = slice_dir(in[i], d);
    auto uni = run_node(
        make_node(c.op, 6, 2, 14, Attrs{{"hidden_size", c.H}, {"direction", std::string(d ? "reverse" : "forward")}}),
        one);
    ASSERT_TRUE(uni.ok()) << uni.status().to_string();
    for (int64_t t = 0; t < c.T; ++t)
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t h = 0; h < c.H; ++h) {
          EXPECT_NEAR(at((*bi)[0], {t, d, b, h}), at((*uni)[0], {t, 0, b, h}), 1e-6);
        }
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t h = 0; h < c.H; ++h) EXPECT_NEAR(at((*bi)[1], {d, b, h}), at((*uni)[1], {0, b, h}), 1e-6);
  }
}

TEST_P(RnnProperties, SequenceLensEqualsRunningTheEntryAlone) {
  const RnnCase c = GetParam();
  auto in = rnn_inputs(c, 2, 20);
  const std::vector<int32_t> lens = {5, 2, 0};
  in[4] = Tensor::from_vector<int32_t>(lens, {3});
  const Attrs attrs{{"hidden_size", c.H}, {"direction", std::string("bidirectional")}};
  auto all = run_node(make_node(c.op, 6, 2, 14, attrs), in);
  ASSERT_TRUE(all.ok()) << all.status().to_string();
  for (int64_t b = 0; b < c.B; ++b) {
    const int64_t L = lens[b];
    for (int64_t d = 0; d < 2; ++d)
      for (int64_t h = 0; h < c.H; ++h) {
        if (L == 0) {
          EXPECT_EQ(at((*all)[1], {d, b, h}), at(in[5], {d, b, h}));  // state untouched
        }
        for (int64_t t = L; t < c.T; ++t) EXPECT_EQ(at((*all)[0], {t, d, b, h}), 0.0);  // zero past the end
      }
    if (L == 0) continue;
    // The same entry alone, with the sequence cut at its length.
    std::vector<float> x, h0;
    for (int64_t t = 0; t < L; ++t)
      for (int64_t i = 0; i < c.I; ++i) x.push_back(static_cast<float>(at(in[0], {t, b, i})));
    for (int64_t d = 0; d < 2; ++d)
      for (int64_t h = 0; h < c.H; ++h) h0.push_back(static_cast<float>(at(in[5], {d, b, h})));
    std::vector<Tensor> one = {f32(x, {L, 1, c.I}), in[1], in[2], in[3], Tensor(), f32(h0, {2, 1, c.H})};
    auto alone = run_node(make_node(c.op, 6, 2, 14, attrs), one);
    ASSERT_TRUE(alone.ok());
    for (int64_t d = 0; d < 2; ++d)
      for (int64_t h = 0; h < c.H; ++h) {
        EXPECT_NEAR(at((*all)[1], {d, b, h}), at((*alone)[1], {d, 0, h}), 1e-6);
        for (int64_t t = 0; t < L; ++t) EXPECT_NEAR(at((*all)[0], {t, d, b, h}), at((*alone)[0], {t, d, 0, h}), 1e-6);
      }
  }
}

TEST_P(RnnProperties, BatchwiseLayoutIsATranspose) {
  const RnnCase c = GetParam();
  auto in = rnn_inputs(c, 2, 30);
  in[4] = Tensor::from_vector<int32_t>({1, 5, 3}, {3});
  const Attrs a0{{"hidden_size", c.H}, {"direction", std::string("bidirectional")}};
  Attrs a1 = a0;
  a1["layout"] = int64_t{1};
  auto ref = run_node(make_node(c.op, 6, 2, 14, a0), in);
  ASSERT_TRUE(ref.ok());
  std::vector<Tensor> tin = in;
  std::vector<float> x, h0;
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t t = 0; t < c.T; ++t)
      for (int64_t i = 0; i < c.I; ++i) x.push_back(static_cast<float>(at(in[0], {t, b, i})));
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t d = 0; d < 2; ++d)
      for (int64_t h = 0; h < c.H; ++h) h0.push_back(static_cast<float>(at(in[5], {d, b, h})));
  tin[0] = f32(x, {c.B, c.T, c.I});
  tin[5] = f32(h0, {c.B, 2, c.H});
  auto bw = run_node(make_node(c.op, 6, 2, 14, a1), tin);
  ASSERT_TRUE(bw.ok()) << bw.status().to_string();
  EXPECT_EQ((*bw)[0].shape(), (Shape{c.B, c.T, 2, c.H}));
  EXPECT_EQ((*bw)[1].shape(), (Shape{c.B, 2, c.H}));
  for (int64_t t = 0; t < c.T; ++t)
    for (int64_t d = 0; d < 2; ++d)
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t h = 0; h < c.H; ++h) {
          EXPECT_EQ(at((*bw)[0], {b, t, d, h}), at((*ref)[0], {t, d, b, h}));
          if (t == 0) {
            EXPECT_EQ(at((*bw)[1], {b, d, h}), at((*ref)[1], {d, b, h}));
          }
        }
}

TEST_P(RnnProperties, Float64AndFloat16AgreeWithFloat32) {
  const RnnCase c = GetParam();
  auto in = rnn_inputs(c, 1, 40);
  const Attrs attrs{{"hidden_size", c.H}};
  auto ref = run_node(make_node(c.op, 6, 2, 14, attrs), in);
  ASSERT_TRUE(ref.ok());
  for (DataType dt : {DataType::kFloat64, DataType::kFloat16}) {
    std::vector<Tensor> cin;
    for (const Tensor& t : in) cin.push_back(t.defined() ? t.cast(dt) : t);
    auto out = run_node(make_node(c.op, 6, 2, 14, attrs), cin);
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    EXPECT_EQ((*out)[0].dtype(), dt);
    expect_same((*out)[0].cast(DataType::kFloat32), (*ref)[0], dt == DataType::kFloat16 ? 2e-2 : 1e-5);
  }
}

TEST_P(RnnProperties, ManyThreadsMatchOne) {
  RnnCase c = GetParam();
  c.T = 7;
  c.B = 37;
  c.I = 33;
  c.H = 40;
  auto in = rnn_inputs(c, 2, 50);
  const Attrs attrs{{"hidden_size", c.H}, {"direction", std::string("bidirectional")}};
  auto one = run_node(make_node(c.op, 6, 2, 14, attrs), in, 1);
  auto many = run_node(make_node(c.op, 6, 2, 14, attrs), in, 4);
  ASSERT_TRUE(one.ok() && many.ok());
  expect_same((*one)[0], (*many)[0], 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Cells, RnnProperties,
                         ::testing::Values(RnnCase{"LSTM", 4}, RnnCase{"GRU", 3}, RnnCase{"RNN", 1}),
                         [](const auto& info) { return info.param.op; });

// --- one step by hand (hidden size 1) -----------------------------------------------------

double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

TEST(Gru, LinearBeforeResetChangesWhereTheRecurrentBiasGoes) {
  // x = 1, h0 = 0.5; W = [z, r, h] = [0.1, 0.2, 0.3], R = [0.4, 0.5, 0.6], Wb = [0.01, 0.02, 0.03], Rb = [0.04, 0.05,
  // 0.06]
  const double x = 1, h = 0.5;
  const double z = sigmoid(0.1 * x + 0.4 * h + 0.01 + 0.04), r = sigmoid(0.2 * x + 0.5 * h + 0.02 + 0.05);
  const double hh0 = std::tanh(0.3 * x + (r * h) * 0.6 + 0.06 + 0.03);
  const double hh1 = std::tanh(0.3 * x + r * (h * 0.6 + 0.06) + 0.03);
  for (int64_t lbr : {0, 1}) {
    auto out = run_node(make_node("GRU", 6, 2, 14, Attrs{{"hidden_size", int64_t{1}}, {"linear_before_reset", lbr}}),
                        {f32({1}, {1, 1, 1}), f32({0.1f, 0.2f, 0.3f}, {1, 3, 1}), f32({0.4f, 0.5f, 0.6f}, {1, 3, 1}),
                         f32({0.01f, 0.02f, 0.03f, 0.04f, 0.05f, 0.06f}, {1, 6}), Tensor(), f32({0.5f}, {1, 1, 1})});
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    const double hh = lbr ? hh1 : hh0;
    EXPECT_NEAR((*out)[1].float_at(0), (1 - z) * hh + z * h, 1e-6) << "linear_before_reset=" << lbr;
  }
}

TEST(Lstm, ClipInputForgetAndActivationParameters) {
  // One step, hidden size 1, gates i, o, f, c with pre-activations W*x + R*h + Wb + Rb.
  const double x = 2, h = -0.5, c = 0.25;
  // The forget gate's own weights (0.9, 0.7) are ignored: input_forget sets f = 1 - i.
  const double pi = 0.3 * x - 0.2 * h, po = -0.4 * x + 0.1 * h, pc = 1.5 * x - 0.3 * h;
  auto clip = [](double v) { return std::clamp(v, -1.0, 1.0); };
  auto hard_sigmoid = [](double v) { return std::clamp(0.3 * v + 0.4, 0.0, 1.0); };
  auto scaled_tanh = [](double v) { return 1.5 * std::tanh(0.5 * v); };
  const double i = hard_sigmoid(clip(pi)), f = 1 - i;  // input_forget couples f to i
  const double cc = std::tanh(clip(pc));
  const double c1 = f * c + i * cc;
  const double o = hard_sigmoid(clip(po));
  const double h1 = o * scaled_tanh(c1);
  Attrs attrs{{"hidden_size", int64_t{1}},
              {"clip", 1.0f},
              {"input_forget", int64_t{1}},
              {"activations", std::vector<std::string>{"HardSigmoid", "tanh", "ScaledTanh"}},
              {"activation_alpha", std::vector<float>{0.3f, 1.5f}},
              {"activation_beta", std::vector<float>{0.4f, 0.5f}}};
  auto out =
      run_node(make_node("LSTM", 7, 3, 14, attrs), {f32({2}, {1, 1, 1}), f32({0.3f, -0.4f, 0.9f, 1.5f}, {1, 4, 1}),
                                                    f32({-0.2f, 0.1f, 0.7f, -0.3f}, {1, 4, 1}), Tensor(), Tensor(),
                                                    f32({-0.5f}, {1, 1, 1}), f32({0.25f}, {1, 1, 1})});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_NEAR((*out)[1].float_at(0), h1, 1e-6);
  EXPECT_NEAR((*out)[2].float_at(0), c1, 1e-6);
}

TEST(Lstm, PeepholesAndUnwantedOutputs) {
  const double x = 1, h = 0.2, c = -0.7;
  const double i = sigmoid(0.5 * x + 0.1 * h + 0.3 * c), f = sigmoid(-0.5 * x + 0.2 * h + 0.5 * c);
  const double c1 = f * c + i * std::tanh(0.8 * x - 0.1 * h);
  const double o = sigmoid(0.25 * x + 0.3 * h + 0.4 * c1);
  auto node = make_node("LSTM", 8, 3, 14, Attrs{{"hidden_size", int64_t{1}}});
  node.outputs = {"", "", "c"};  // only Y_c wanted
  auto out = run_node(
      node, {f32({1}, {1, 1, 1}), f32({0.5f, 0.25f, -0.5f, 0.8f}, {1, 4, 1}), f32({0.1f, 0.3f, 0.2f, -0.1f}, {1, 4, 1}),
             Tensor(), Tensor(), f32({0.2f}, {1, 1, 1}), f32({-0.7f}, {1, 1, 1}), f32({0.3f, 0.4f, 0.5f}, {1, 3})});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_FALSE((*out)[0].defined());
  EXPECT_NEAR((*out)[2].float_at(0), c1, 1e-6);
  (void)o;
}

TEST(Rnn, ReluAndDefaultTanh) {
  for (const char* act : {"Relu", "Tanh"}) {
    auto out = run_node(
        make_node("RNN", 3, 2, 14, Attrs{{"hidden_size", int64_t{1}}, {"activations", std::vector<std::string>{act}}}),
        {f32({1, -2}, {2, 1, 1}), f32({0.5f}, {1, 1, 1}), f32({2.f}, {1, 1, 1})});
    ASSERT_TRUE(out.ok());
    auto f = [&](double v) { return std::string(act) == "Relu" ? std::max(v, 0.0) : std::tanh(v); };
    const double h1 = f(0.5), h2 = f(-1 + 2 * h1);
    EXPECT_NEAR((*out)[0].float_at(0), h1, 1e-6);
    EXPECT_NEAR((*out)[0].float_at(1), h2, 1e-6);
    EXPECT_NEAR((*out)[1].float_at(0), h2, 1e-6);
  }
}

TEST(Rnn, BadInputsAreErrors) {
  const RnnCase c{"LSTM", 4};
  auto in = rnn_inputs(c, 1, 60);
  auto run = [&](const std::vector<Tensor>& inputs, Attrs attrs = {}) {
    attrs.emplace("hidden_size", c.H);
    return run_node(make_node("LSTM", inputs.size(), 2, 14, attrs), inputs);
  };
  EXPECT_TRUE(run(in).ok());
  auto bad = in;
  bad[1] = f32(random_values(4 * 6 * 5, 1), {1, 24, 5});  // input size 5 != 4
  EXPECT_FALSE(run(bad).ok());
  bad = in;
  bad[4] = Tensor::from_vector<int32_t>({5, 6, 1}, {3});  // longer than the sequence
  EXPECT_FALSE(run(bad).ok());
  bad = in;
  bad[4] = Tensor::from_vector<int32_t>({5, -1, 1}, {3});
  EXPECT_FALSE(run(bad).ok());
  bad = in;
  bad[5] = f32(random_values(6, 1), {1, 1, 6});  // wrong batch
  EXPECT_FALSE(run(bad).ok());
  EXPECT_FALSE(run(in, Attrs{{"direction", std::string("sideways")}}).ok());
  EXPECT_FALSE(run(in, Attrs{{"direction", std::string("bidirectional")}}).ok());  // W has one direction
  EXPECT_FALSE(run(in, Attrs{{"activations", std::vector<std::string>{"Sigmoid", "Tanh", "Gelu"}}}).ok());
  EXPECT_FALSE(run(in, Attrs{{"layout", int64_t{2}}}).ok());
  auto wrong_h = run_node(make_node("LSTM", 6, 2, 14, Attrs{{"hidden_size", int64_t{5}}}), in);
  EXPECT_FALSE(wrong_h.ok());
  bad = in;
  bad[0] = f32(random_values(12, 1), {3, 4});
  EXPECT_FALSE(run(bad).ok());
}

TEST(Rnn, EmptySequenceAndBatch) {
  for (const char* op : {"LSTM", "GRU", "RNN"}) {
    const RnnCase c{op, std::string(op) == "LSTM" ? 4 : std::string(op) == "GRU" ? 3 : 1};
    auto in = rnn_inputs(c, 1, 70);
    in[0] = f32({}, {0, c.B, c.I});  // no time steps: Y is empty, Y_h the initial state
    auto out = run_node(make_node(op, 6, 2, 14, Attrs{{"hidden_size", c.H}}), in);
    ASSERT_TRUE(out.ok()) << op << ": " << out.status().to_string();
    EXPECT_EQ((*out)[0].shape(), (Shape{0, 1, c.B, c.H}));
    for (int64_t i = 0; i < in[5].numel(); ++i) EXPECT_EQ((*out)[1].float_at(i), in[5].float_at(i));
    in = rnn_inputs(c, 1, 71);
    in[0] = f32({}, {c.T, 0, c.I});
    in[5] = Tensor();
    out = run_node(make_node(op, 6, 2, 14, Attrs{{"hidden_size", c.H}}), in);
    ASSERT_TRUE(out.ok()) << op << ": " << out.status().to_string();
    EXPECT_EQ((*out)[1].shape(), (Shape{1, 0, c.H}));
  }
}

// --- signal ops -----------------------------------------------------------------------------

std::vector<std::complex<double>> naive_dft(const std::vector<std::complex<double>>& x, int64_t n, bool inverse) {
  std::vector<std::complex<double>> y(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    for (int64_t j = 0; j < n && j < static_cast<int64_t>(x.size()); ++j) {
      const double a =
          (inverse ? 2 : -2) * std::numbers::pi * static_cast<double>((j * k) % n) / static_cast<double>(n);
      y[k] += x[j] * std::complex<double>(std::cos(a), std::sin(a));
    }
    if (inverse) y[k] /= static_cast<double>(n);
  }
  return y;
}

class DftLengths : public ::testing::TestWithParam<int64_t> {};

TEST_P(DftLengths, MatchesTheDefinition) {
  const int64_t n = GetParam();
  // [batch 2, n, complex]
  auto v = random_values(static_cast<size_t>(2 * n * 2), 7);
  for (bool inverse : {false, true}) {
    auto out = run_node(make_node("DFT", 1, 1, 17, Attrs{{"axis", int64_t{1}}, {"inverse", int64_t{inverse}}}),
                        {Tensor::from_vector<float>(v, {2, n, 2}).cast(DataType::kFloat64)});
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    for (int64_t b = 0; b < 2; ++b) {
      std::vector<std::complex<double>> x;
      for (int64_t j = 0; j < n; ++j) x.emplace_back(v[(b * n + j) * 2], v[(b * n + j) * 2 + 1]);
      const auto y = naive_dft(x, n, inverse);
      for (int64_t k = 0; k < n; ++k) {
        EXPECT_NEAR(at((*out)[0], {b, k, 0}), y[k].real(), 1e-9 * n);
        EXPECT_NEAR(at((*out)[0], {b, k, 1}), y[k].imag(), 1e-9 * n);
      }
    }
  }
}

// Powers of two (radix-2), short odd lengths (direct) and long odd ones (Bluestein).
INSTANTIATE_TEST_SUITE_P(Lengths, DftLengths, ::testing::Values(1, 2, 3, 8, 64, 100, 127, 257, 1024));

TEST(Dft, OnesidedRealInputWithLengthAndAxis) {
  // x: [1, 3, 6, 1], transform along axis 2 padded to 8; onesided keeps 5 bins.
  auto v = random_values(18, 3);
  auto out = run_node(make_node("DFT", 2, 1, 17, Attrs{{"axis", int64_t{2}}, {"onesided", int64_t{1}}}),
                      {f32(v, {1, 3, 6, 1}), Tensor::scalar<int64_t>(8)});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  ASSERT_EQ((*out)[0].shape(), (Shape{1, 3, 5, 2}));
  for (int64_t r = 0; r < 3; ++r) {
    std::vector<std::complex<double>> x;
    for (int64_t j = 0; j < 6; ++j) x.emplace_back(v[r * 6 + j], 0);
    const auto y = naive_dft(x, 8, false);
    for (int64_t k = 0; k < 5; ++k) {
      EXPECT_NEAR(at((*out)[0], {0, r, k, 0}), y[k].real(), 1e-5);
      EXPECT_NEAR(at((*out)[0], {0, r, k, 1}), y[k].imag(), 1e-5);
    }
  }
  // Truncation: dft_length shorter than the signal.
  auto cut = run_node(make_node("DFT", 2, 1, 17, Attrs{{"axis", int64_t{2}}}),
                      {f32(v, {1, 3, 6, 1}), Tensor::scalar<int64_t>(4)});
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ((*cut)[0].shape(), (Shape{1, 3, 4, 2}));
  EXPECT_NEAR(at((*cut)[0], {0, 0, 0, 0}), v[0] + v[1] + v[2] + v[3], 1e-5);
}

TEST(Dft, BadInputsAreErrors) {
  auto x = f32(random_values(8, 1), {1, 4, 2});
  EXPECT_FALSE(run_node(make_node("DFT", 1, 1, 17, Attrs{{"axis", int64_t{2}}}), {x}).ok());  // the complex dim
  EXPECT_FALSE(run_node(make_node("DFT", 1, 1, 17, Attrs{{"axis", int64_t{5}}}), {x}).ok());
  EXPECT_FALSE(run_node(make_node("DFT", 2, 1, 17), {x, Tensor::scalar<int64_t>(0)}).ok());
  EXPECT_FALSE(run_node(make_node("DFT", 1, 1, 17), {f32(random_values(12, 1), {1, 4, 3})}).ok());
  EXPECT_FALSE(
      run_node(make_node("DFT", 1, 1, 17, Attrs{{"inverse", int64_t{1}}, {"onesided", int64_t{1}}}), {x}).ok());
}

TEST(Dft, Opset20TakesAxisAsInput) {
  auto v = random_values(12, 5);
  auto a = run_node(make_node("DFT", 1, 1, 17, Attrs{{"axis", int64_t{1}}}), {f32(v, {3, 4, 1})});
  auto b = run_node(make_node("DFT", 3, 1, 20), {f32(v, {3, 4, 1}), Tensor(), Tensor::scalar<int64_t>(-2)});
  ASSERT_TRUE(a.ok() && b.ok()) << b.status().to_string();
  expect_same((*a)[0], (*b)[0]);
}

TEST(Stft, FramesAreWindowedDfts) {
  const int64_t len = 50, n = 12, step = 5;
  auto sig = random_values(2 * len, 9);
  std::vector<float> win(n);
  for (int64_t k = 0; k < n; ++k) win[k] = 0.5f - 0.5f * std::cos(2 * std::numbers::pi_v<float> * k / n);
  auto out =
      run_node(make_node("STFT", 3, 1, 17), {f32(sig, {2, len, 1}), Tensor::scalar<int64_t>(step), f32(win, {n})});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const int64_t frames = (len - n) / step + 1;
  ASSERT_EQ((*out)[0].shape(), (Shape{2, frames, n / 2 + 1, 2}));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t f = 0; f < frames; ++f) {
      std::vector<std::complex<double>> x;
      for (int64_t k = 0; k < n; ++k) x.emplace_back(sig[b * len + f * step + k] * win[k], 0);
      const auto y = naive_dft(x, n, false);
      for (int64_t k = 0; k <= n / 2; ++k) {
        EXPECT_NEAR(at((*out)[0], {b, f, k, 0}), y[k].real(), 1e-5);
        EXPECT_NEAR(at((*out)[0], {b, f, k, 1}), y[k].imag(), 1e-5);
      }
    }
  // Errors: no window and no frame_length; frame longer than the signal; non-positive step.
  EXPECT_FALSE(run_node(make_node("STFT", 2, 1, 17), {f32(sig, {2, len, 1}), Tensor::scalar<int64_t>(step)}).ok());
  EXPECT_FALSE(run_node(make_node("STFT", 4, 1, 17),
                        {f32(sig, {2, len, 1}), Tensor::scalar<int64_t>(step), Tensor(), Tensor::scalar<int64_t>(51)})
                   .ok());
  EXPECT_FALSE(
      run_node(make_node("STFT", 3, 1, 17), {f32(sig, {2, len, 1}), Tensor::scalar<int64_t>(0), f32(win, {n})}).ok());
}

TEST(Windows, KnownValues) {
  auto run = [](const char* op, int64_t size, int64_t periodic) {
    auto out = run_node(make_node(op, 1, 1, 17, Attrs{{"periodic", periodic}}), {Tensor::scalar<int64_t>(size)});
    EXPECT_TRUE(out.ok());
    return (*out)[0];
  };
  expect_near(run("HannWindow", 4, 1), {0, 0.5f, 1, 0.5f});
  expect_near(run("HannWindow", 5, 0), {0, 0.5f, 1, 0.5f, 0});
  expect_near(run("HammingWindow", 4, 1), {2.f / 23, 25.f / 46, 1, 25.f / 46});
  expect_near(run("BlackmanWindow", 4, 1), {0, 0.34f, 1, 0.34f});
  expect_near(run("BlackmanWindow", 1, 0), {1});
  EXPECT_EQ(run("HannWindow", 0, 1).numel(), 0);
  auto dbl = run_node(make_node("HannWindow", 1, 1, 17, Attrs{{"output_datatype", int64_t{11}}}),
                      {Tensor::scalar<int32_t>(3)});
  ASSERT_TRUE(dbl.ok());
  EXPECT_EQ((*dbl)[0].dtype(), DataType::kFloat64);
  EXPECT_FALSE(run_node(make_node("HannWindow", 1, 1, 17), {Tensor::scalar<int64_t>(-1)}).ok());
}

TEST(MelWeightMatrix, OnnxExample) {
  auto out = run_node(make_node("MelWeightMatrix", 5, 1, 17),
                      {Tensor::scalar<int32_t>(8), Tensor::scalar<int32_t>(16), Tensor::scalar<int32_t>(8192),
                       Tensor::scalar<float>(0), Tensor::scalar<float>(4096)});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  ASSERT_EQ((*out)[0].shape(), (Shape{9, 8}));
  // Rows 0..5 carry the filters (see onnx's melweightmatrix.py); rows 6..8 are empty.
  const std::vector<std::pair<int64_t, int64_t>> ones = {{0, 0}, {0, 1}, {1, 2}, {1, 3},
                                                         {2, 4}, {3, 5}, {4, 6}, {5, 7}};
  for (int64_t r = 0; r < 9; ++r)
    for (int64_t c = 0; c < 8; ++c) {
      const bool one = std::find(ones.begin(), ones.end(), std::make_pair(r, c)) != ones.end();
      EXPECT_EQ((*out)[0].float_at(r * 8 + c), one ? 1.0 : 0.0) << r << "," << c;
    }
  EXPECT_FALSE(run_node(make_node("MelWeightMatrix", 5, 1, 17),
                        {Tensor::scalar<int32_t>(0), Tensor::scalar<int32_t>(16), Tensor::scalar<int32_t>(8192),
                         Tensor::scalar<float>(0), Tensor::scalar<float>(4096)})
                   .ok());
}

}  // namespace
}  // namespace deskml
