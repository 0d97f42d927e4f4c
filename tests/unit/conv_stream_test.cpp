// StreamConv (the weight-streaming NHWC convolution FusedConv uses for few
// output pixels) against a float64 convolution written here: strides, padding,
// bias, the residual sum with and without a pre-activation, activations done
// on the vectors and by the scalar path, several thread counts, and weights
// that change between runs of one kernel.
#include "kernels/cpu/conv_stream.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "kernel_harness.hpp"
#include "kernels/cpu/elementwise_isa.hpp"
#include "random_tensor.hpp"

namespace deskml {
namespace {

using Ints = std::vector<int64_t>;
using kernels::cpu::StreamConv;
using testing::random_tensor;

double activate(const std::string& name, double v, double alpha = 0, double beta = 0) {
  if (name == "Relu") return v > 0 ? v : 0;
  if (name == "Sigmoid") return 1.0 / (1.0 + std::exp(-v));
  if (name == "Clip") return std::min(std::max(v, alpha), beta);
  if (name == "Swish") return v / (1.0 + std::exp(-alpha * v));
  return v;
}

struct Case {
  Shape x;             // NHWC
  Shape w;             // OIHW
  Ints strides, pads;  // pads: top, left, bottom, right
  bool bias = true, sum = false;
  std::string pre{}, act{};
  float act_alpha = 0.0f, act_beta = 0.0f;
};

Shape output_shape(const Case& c) {
  const int64_t oh = (c.x[1] + c.pads[0] + c.pads[2] - c.w[2]) / c.strides[0] + 1;
  const int64_t ow = (c.x[2] + c.pads[1] + c.pads[3] - c.w[3]) / c.strides[1] + 1;
  return {c.x[0], oh, ow, c.w[0]};
}

// act(conv + b), or act(pre(conv + b) + r) with a residual r, in float64, NHWC.
std::vector<double> reference(const Case& c, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& r) {
  const Shape ys = output_shape(c);
  const int64_t in = c.x[3], kh = c.w[2], kw = c.w[3];
  std::vector<double> y;
  for (int64_t n = 0; n < ys[0]; ++n)
    for (int64_t oy = 0; oy < ys[1]; ++oy)
      for (int64_t ox = 0; ox < ys[2]; ++ox)
        for (int64_t m = 0; m < ys[3]; ++m) {
          double acc = c.bias ? b.data<float>()[m] : 0.0;
          for (int64_t ky = 0; ky < kh; ++ky)
            for (int64_t kx = 0; kx < kw; ++kx) {
              const int64_t iy = oy * c.strides[0] - c.pads[0] + ky, ix = ox * c.strides[1] - c.pads[1] + kx;
              if (iy < 0 || iy >= c.x[1] || ix < 0 || ix >= c.x[2]) continue;
              const float* xp = x.data<float>() + ((n * c.x[1] + iy) * c.x[2] + ix) * in;
              for (int64_t ch = 0; ch < in; ++ch)
                acc += double{xp[ch]} * w.data<float>()[((m * in + ch) * kh + ky) * kw + kx];
            }
          if (c.sum) acc = activate(c.pre, acc) + r.data<float>()[y.size()];
          y.push_back(activate(c.act, acc, c.act_alpha, c.act_beta));
        }
  return y;
}

graph::Node node_for(const Case& c) {
  std::map<std::string, graph::AttributeValue> attrs = {
      {"strides", c.strides}, {"pads", c.pads}, {"channels_last", int64_t{1}}};
  if (!c.act.empty()) attrs["activation"] = c.act;
  if (c.act_alpha != 0.0f) attrs["activation_alpha"] = c.act_alpha;
  if (c.act_beta != 0.0f) attrs["activation_beta"] = c.act_beta;
  if (!c.pre.empty()) attrs["pre_activation"] = c.pre;
  auto node = testing::make_node("FusedConv", c.sum ? 4 : 3, 1, 1, attrs);
  node.domain = "deskml";
  return node;
}

bool suits(const Case& c) {
  kernels::cpu::ConvAttrs attrs;
  attrs.strides = c.strides;
  attrs.pads = c.pads;
  const Shape nchw = {c.x[0], c.x[3], c.x[1], c.x[2]};
  return StreamConv::suits(kernels::cpu::conv_geometry(attrs, nchw, c.w, "test"));
}

void expect_matches(const Case& c, uint32_t seed, int threads) {
  const Tensor x = random_tensor(c.x, seed), w = random_tensor(c.w, seed + 1), b = random_tensor({c.w[0]}, seed + 2);
  const Tensor r = c.sum ? random_tensor(output_shape(c), seed + 3) : Tensor();
  const std::vector<double> want = reference(c, x, w, b, r);
  // The residual's buffer may become the output: the kernel gets a copy.
  const Tensor residual = c.sum ? r.cast(DataType::kFloat32) : Tensor();
  std::vector<Tensor> inputs = {x, w, c.bias ? b : Tensor()};
  if (c.sum) inputs.push_back(residual);
  auto y = testing::run_node(node_for(c), inputs, threads);
  ASSERT_TRUE(y.ok()) << y.status().to_string();
  const Tensor& got = (*y)[0];
  ASSERT_EQ(got.shape(), output_shape(c));
  double worst = 0;
  int64_t at = -1;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double want_i = want[static_cast<size_t>(i)];
    const double err = std::abs(got.data<float>()[i] - want_i) / (1.0 + std::abs(want_i));
    if (err > worst) worst = err, at = i;
  }
  EXPECT_LT(worst, 1e-4) << "at " << at << " with " << threads << " thread(s)";
}

class StreamConvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kernels::cpu::ew::has_avx512()) GTEST_SKIP() << "StreamConv runs on AVX-512 CPUs only";
  }
};

TEST_F(StreamConvTest, TakesWeightHeavyProblemsWithFewPixels) {
  // ResNet-50's layer 4 at batch 1 and in tiles of 4, and output channels that do not fill a panel.
  EXPECT_TRUE(suits({{1, 7, 7, 512}, {512, 512, 3, 3}, {1, 1}, {1, 1, 1, 1}}));
  EXPECT_TRUE(suits({{1, 14, 14, 512}, {512, 512, 3, 3}, {2, 2}, {1, 1, 1, 1}}));
  EXPECT_TRUE(suits({{1, 7, 7, 2048}, {512, 2048, 1, 1}, {1, 1}, {0, 0, 0, 0}}));
  EXPECT_TRUE(suits({{1, 14, 14, 1024}, {2048, 1024, 1, 1}, {2, 2}, {0, 0, 0, 0}}));
  EXPECT_TRUE(suits({{4, 7, 7, 512}, {512, 512, 3, 3}, {1, 1}, {1, 1, 1, 1}}));
  EXPECT_TRUE(suits({{1, 7, 7, 512}, {1000, 512, 1, 1}, {1, 1}, {0, 0, 0, 0}}));
  // Too many pixels; small weights; too few bytes of weights per pixel (ResNet-50's 14x14
  // shortcut, SqueezeNet's classifier).
  EXPECT_FALSE(suits({{1, 28, 28, 512}, {512, 512, 3, 3}, {1, 1}, {1, 1, 1, 1}}));
  EXPECT_FALSE(suits({{8, 7, 7, 512}, {512, 512, 3, 3}, {1, 1}, {1, 1, 1, 1}}));
  EXPECT_FALSE(suits({{1, 7, 7, 64}, {64, 64, 3, 3}, {1, 1}, {1, 1, 1, 1}}));
  EXPECT_FALSE(suits({{1, 28, 28, 512}, {1024, 512, 1, 1}, {2, 2}, {0, 0, 0, 0}}));
  EXPECT_FALSE(suits({{1, 13, 13, 512}, {1000, 512, 1, 1}, {1, 1}, {0, 0, 0, 0}}));
}

TEST_F(StreamConvTest, MatchesTheDefinition) {
  const std::vector<Case> cases = {
      // 3x3, padded, bias and ReLU on the vectors
      {{1, 7, 7, 128}, {256, 128, 3, 3}, {1, 1}, {1, 1, 1, 1}, true, false, "", "Relu"},
      // stride 2 from an odd map, input channels that are no multiple of 16, no bias, no activation
      {{1, 9, 9, 113}, {288, 113, 3, 3}, {2, 2}, {1, 1, 1, 1}, false, false, "", ""},
      // a strided 1x1 with a residual and ReLU (ResNet's shortcut joins)
      {{1, 14, 14, 512}, {512, 512, 1, 1}, {2, 2}, {0, 0, 0, 0}, true, true, "", "Relu"},
      // two images, asymmetric padding, 50 pixels; a pre-activation before the sum, Sigmoid after
      {{2, 5, 5, 130}, {256, 130, 3, 3}, {1, 1}, {0, 1, 1, 0}, true, true, "Relu", "Sigmoid"},
      // one pixel
      {{1, 1, 1, 2048}, {512, 2048, 1, 1}, {1, 1}, {0, 0, 0, 0}, true, false, "", "Sigmoid"},
      // MobileNetV2's and EfficientNet-B0's heads: ReLU6 as Clip, SiLU as Swish
      {{1, 7, 7, 320}, {1280, 320, 1, 1}, {1, 1}, {0, 0, 0, 0}, true, false, "", "Clip", 0.0f, 6.0f},
      {{1, 7, 7, 320}, {1280, 320, 1, 1}, {1, 1}, {0, 0, 0, 0}, true, false, "", "Swish", 1.0f, 0.0f},
      // reductions in several chunks, with the residual: 1x1 over 1024 channels, 3x3 over 256
      {{1, 7, 7, 1024}, {512, 1024, 1, 1}, {1, 1}, {0, 0, 0, 0}, true, true, "", "Relu"},
      {{1, 4, 6, 256}, {160, 256, 3, 3}, {1, 1}, {1, 1, 1, 1}, true, true, "", ""},
      // output channels that do not fill the last panel: 1000, and 40 with a residual
      {{1, 7, 7, 512}, {1000, 512, 1, 1}, {1, 1}, {0, 0, 0, 0}, true, false, "", "Relu"},
      {{1, 6, 6, 1024}, {40, 1024, 3, 3}, {1, 1}, {1, 1, 1, 1}, true, true, "", "Sigmoid"},
      // a residual and ReLU6
      {{1, 7, 7, 512}, {512, 512, 1, 1}, {1, 1}, {0, 0, 0, 0}, false, true, "", "Clip", -1.0f, 0.5f},
  };
  uint32_t seed = 10;
  for (const Case& c : cases) {
    ASSERT_TRUE(suits(c)) << "case " << seed;
    for (int threads : {1, 2, 3}) expect_matches(c, seed, threads);
    seed += 10;
  }
}

// Weights that are an input change between runs; one kernel repacks them.
TEST_F(StreamConvTest, FollowsWeightsThatChange) {
  const Case c = {{1, 7, 7, 256}, {128, 256, 3, 3}, {1, 1}, {1, 1, 1, 1}, false, false, "", ""};
  ASSERT_TRUE(suits(c));
  const graph::Node node = node_for(c);
  auto kernel = kernels::cpu::cpu_registry().find("FusedConv", "deskml", 1, DataType::kFloat32)->factory(node);
  const Tensor x = random_tensor(c.x, 1);
  for (uint32_t seed : {2u, 3u, 2u}) {
    const Tensor w = random_tensor(c.w, seed);
    const std::vector<double> want = reference(c, x, w, Tensor(), Tensor());
    std::vector<Value> in = {Value::from_tensor(x), Value::from_tensor(w)};
    std::vector<const Value*> ptrs = {&in[0], &in[1], nullptr};
    std::vector<Value> out(1);
    kernels::KernelContext ctx(node, ptrs, out, nullptr, 2);
    ASSERT_TRUE(kernel->compute(ctx).ok());
    const Tensor& got = out[0].tensor;
    for (int64_t i = 0; i < got.numel(); ++i) {
      ASSERT_NEAR(got.data<float>()[i], want[static_cast<size_t>(i)],
                  1e-4 * (1.0 + std::abs(want[static_cast<size_t>(i)])))
          << "weights " << seed << " at " << i;
    }
  }
}

// A blocked (nChw16c) convolution with the weights StreamConv takes in NHWC
// still runs on oneDNN, which reads the blocked layout.
TEST_F(StreamConvTest, ABlockedConvolutionIsNotTaken) {
  const Case c = {{1, 7, 7, 512}, {512, 512, 1, 1}, {1, 1}, {0, 0, 0, 0}, true, false, "", "Relu"};
  ASSERT_TRUE(suits(c));
  const Tensor x = random_tensor(c.x, 1), w = random_tensor(c.w, 2), b = random_tensor({c.w[0]}, 3);
  const std::vector<double> want = reference(c, x, w, b, Tensor());  // NHWC
  // NHWC [1, 7, 7, C] -> [1, C/16, 7, 7, 16] and back.
  const auto index = [](int64_t pixel, int64_t ch) { return ((ch / 16) * 49 + pixel) * 16 + ch % 16; };
  Tensor xb(DataType::kFloat32, {1, 32, 7, 7, 16});
  for (int64_t p = 0; p < 49; ++p) {
    for (int64_t ch = 0; ch < 512; ++ch) xb.data<float>()[index(p, ch)] = x.data<float>()[p * 512 + ch];
  }
  graph::Node node = node_for(c);
  node.attributes["blocked"] = int64_t{16};
  auto y = testing::run_node(node, {xb, w, b}, 2);
  ASSERT_TRUE(y.ok()) << y.status().to_string();
  ASSERT_EQ((*y)[0].shape(), (Shape{1, 32, 7, 7, 16}));
  for (int64_t p = 0; p < 49; ++p) {
    for (int64_t ch = 0; ch < 512; ++ch) {
      const double want_i = want[static_cast<size_t>(p * 512 + ch)];
      ASSERT_NEAR((*y)[0].data<float>()[index(p, ch)], want_i, 1e-4 * (1.0 + std::abs(want_i))) << p << ", " << ch;
    }
  }
}

// Runs on several threads at once share one kernel, each with its own
// weights: the packed copy is swapped under its lock, never torn.
TEST_F(StreamConvTest, ConcurrentRunsWithTheirOwnWeights) {
  const Case c = {{1, 3, 3, 256}, {256, 256, 3, 3}, {1, 1}, {1, 1, 1, 1}, false, false, "", ""};
  ASSERT_TRUE(suits(c));
  const graph::Node node = node_for(c);
  auto kernel = kernels::cpu::cpu_registry().find("FusedConv", "deskml", 1, DataType::kFloat32)->factory(node);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const Tensor x = random_tensor(c.x, 100 + t), w = random_tensor(c.w, 200 + t);
      const std::vector<double> want = reference(c, x, w, Tensor(), Tensor());
      for (int i = 0; i < 20; ++i) {
        std::vector<Value> in = {Value::from_tensor(x), Value::from_tensor(w)};
        std::vector<const Value*> ptrs = {&in[0], &in[1], nullptr};
        std::vector<Value> out(1);
        kernels::KernelContext ctx(node, ptrs, out, nullptr, 1);
        if (!kernel->compute(ctx).ok()) {
          ++failures;
          continue;
        }
        const Tensor& got = out[0].tensor;
        for (int64_t j = 0; j < got.numel(); ++j) {
          const double want_j = want[static_cast<size_t>(j)];
          if (std::abs(got.data<float>()[j] - want_j) > 1e-4 * (1.0 + std::abs(want_j))) {
            ++failures;
            break;
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace deskml
