// deskml.FusedConvMaxPool: a blocked convolution and the max pool after it,
// run band by band of rows (kernels/cpu/conv_pool.hpp), against the two nodes
// it replaces; and the band plan it runs.
#include "kernels/cpu/conv_pool.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>

#include "kernel_harness.hpp"
#include "random_tensor.hpp"

namespace deskml {
namespace {

using kernels::cpu::ConvAttrs;
using kernels::cpu::ConvPoolBand;
using kernels::cpu::PoolAttrs;
using testing::make_node;
using testing::random_tensor;
using testing::run_node;
using Attrs = std::map<std::string, graph::AttributeValue>;
using Ints = std::vector<int64_t>;

struct Case {
  std::string name;
  Shape x, w;          // X: NCHW (a stem reading the image) or nChw16c; W: OIHW
  Ints strides, pads;  // the convolution's
  Ints pool_kernel, pool_strides, pool_pads;
  bool ceil = false;
  bool bias = true;
  std::string activation;
};

// Tall images, so that each thread's rows make several bands of at most
// 256 KB of convolved rows (the kernel's bound), and padding on every side.
std::vector<Case> cases() {
  return {
      // SqueezeNet 1.1's stem: 3x3 stride 2, no padding; its pool in ceil mode.
      {"squeezenet stem",
       {1, 3, 1601, 60},
       {32, 3, 3, 3},
       {2, 2},
       {0, 0, 0, 0},
       {3, 3},
       {2, 2},
       {0, 0, 0, 0},
       true,
       true,
       "Relu"},
      // ResNet's: 7x7 stride 2, padded by 3; its pool padded by 1; two images.
      {"resnet stem",
       {2, 3, 1203, 48},
       {16, 3, 7, 7},
       {2, 2},
       {3, 3, 3, 3},
       {3, 3},
       {2, 2},
       {1, 1, 1, 1},
       false,
       false,
       "Relu"},
      // A blocked input (32 channels), 3x3 stride 1 padded by 1 (Winograd may take
      // the bands), a 2x2 pool whose windows do not overlap, an uneven bottom pad.
      {"blocked 3x3",
       {1, 2, 1100, 40, 16},
       {16, 32, 3, 3},
       {1, 1},
       {1, 1, 2, 1},
       {2, 2},
       {2, 2},
       {0, 0, 0, 0},
       true,
       true,
       ""},
      // Windows three rows apart overlapping by one, kernel taller than wide.
      {"stride 1 pool",
       {1, 1, 900, 24, 16},
       {32, 16, 1, 1},
       {1, 1},
       {0, 0, 0, 0},
       {3, 2},
       {1, 2},
       {1, 0, 1, 0},
       false,
       true,
       "Relu"},
  };
}

Attrs conv_attrs(const Case& c) {
  Attrs a = {{"strides", c.strides}, {"pads", c.pads}, {"blocked", int64_t{16}}};
  if (c.x.size() == 4) a["nchw_input"] = int64_t{1};
  if (!c.activation.empty()) a["activation"] = c.activation;
  return a;
}

Attrs pool_attrs(const Case& c, const std::string& prefix) {
  return {{prefix + "kernel_shape", c.pool_kernel},
          {prefix + "strides", c.pool_strides},
          {prefix + "pads", c.pool_pads},
          {prefix + "ceil_mode", int64_t{c.ceil}}};
}

graph::Node deskml_node(const std::string& op, size_t inputs, Attrs attrs) {
  graph::Node n = make_node(op, inputs, 1, 1, std::move(attrs));
  n.domain = "deskml";
  return n;
}

TEST(FusedConvMaxPool, MatchesTheConvolutionThenThePool) {
  uint32_t seed = 1;
  for (const Case& c : cases()) {
    const Tensor x = random_tensor(c.x, seed++), w = random_tensor(c.w, seed++);
    const Tensor b = c.bias ? random_tensor({c.w[0]}, seed++) : Tensor();
    const std::vector<Tensor> inputs = c.bias ? std::vector<Tensor>{x, w, b} : std::vector<Tensor>{x, w};
    const graph::Node conv = deskml_node("FusedConv", inputs.size(), conv_attrs(c));
    Attrs pooled_attrs = conv_attrs(c);
    for (auto& [k, v] : pool_attrs(c, "pool_")) pooled_attrs[k] = v;
    const graph::Node pooled = deskml_node("FusedConvMaxPool", inputs.size(), pooled_attrs);
    Attrs pool = pool_attrs(c, "");
    pool["blocked"] = int64_t{16};
    const graph::Node max_pool = deskml_node("NhwcMaxPool", 1, pool);
    for (int threads : {1, 2, 3}) {
      SCOPED_TRACE(c.name + ", " + std::to_string(threads) + " threads");
      auto convolved = run_node(conv, inputs, threads);
      ASSERT_TRUE(convolved.ok()) << convolved.status().to_string();
      auto want = run_node(max_pool, {(*convolved)[0]}, threads);
      ASSERT_TRUE(want.ok()) << want.status().to_string();
      auto got = run_node(pooled, inputs, threads);
      ASSERT_TRUE(got.ok()) << got.status().to_string();
      const Tensor& y = (*got)[0];
      ASSERT_EQ(y.shape(), (*want)[0].shape());
      const float* wp = (*want)[0].data<float>();
      for (int64_t i = 0; i < y.numel(); ++i) {
        ASSERT_NEAR(y.data<float>()[i], wp[i], 1e-5f * (1.0f + std::abs(wp[i]))) << "at " << i;
      }
    }
  }
}

// One kernel run from several threads at once, on more image sizes than its
// cache of band primitives keeps (named so that `make tsan` runs it).
TEST(Conv, ConcurrentPooledRunsShareOneKernel) {
  const Case c = cases()[0];
  Attrs attrs = conv_attrs(c);
  for (auto& [k, v] : pool_attrs(c, "pool_")) attrs[k] = v;
  const graph::Node node = deskml_node("FusedConvMaxPool", 2, attrs);
  auto kernel = kernels::cpu::cpu_registry().find("FusedConvMaxPool", "deskml", 1, DataType::kFloat32)->factory(node);
  Attrs pool = pool_attrs(c, "");
  pool["blocked"] = int64_t{16};
  const Tensor w = random_tensor({32, 3, 3, 3}, 3);
  std::vector<Tensor> xs, wants;
  for (int64_t h = 300; h < 1100; h += 40) {  // each height's bands need primitives of their own
    xs.push_back(random_tensor({1, 3, h, 30}, static_cast<uint32_t>(h)));
    auto convolved = run_node(deskml_node("FusedConv", 2, conv_attrs(c)), {xs.back(), w});
    ASSERT_TRUE(convolved.ok()) << convolved.status().to_string();
    auto want = run_node(deskml_node("NhwcMaxPool", 1, pool), {(*convolved)[0]});
    ASSERT_TRUE(want.ok()) << want.status().to_string();
    wants.push_back((*want)[0]);
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = 0; i < 2 * xs.size(); ++i) {
        const size_t k = (i * 7 + static_cast<size_t>(t) * 5) % xs.size();
        std::vector<Value> in = {Value::from_tensor(xs[k]), Value::from_tensor(w)};
        std::vector<const Value*> ptrs = {&in[0], &in[1]};
        std::vector<Value> out(1);
        kernels::KernelContext ctx(node, ptrs, out, nullptr, 1);
        if (!kernel->compute(ctx).ok() || out[0].tensor.shape() != wants[k].shape()) {
          ++failures;
          continue;
        }
        for (int64_t j = 0; j < wants[k].numel(); ++j) {
          if (std::abs(out[0].tensor.data<float>()[j] - wants[k].data<float>()[j]) > 1e-5f) {
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

TEST(FusedConvMaxPool, RejectsWhatItDoesNotRun) {
  const Case c = cases()[0];
  Attrs attrs = conv_attrs(c);
  for (auto& [k, v] : pool_attrs(c, "pool_")) attrs[k] = v;
  const Tensor x = random_tensor({1, 3, 20, 20}, 1), w = random_tensor({16, 3, 3, 3}, 2);
  Attrs plain = attrs;  // not blocked
  plain.erase("blocked");
  plain.erase("nchw_input");
  auto r = run_node(deskml_node("FusedConvMaxPool", 2, plain), {x, w});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("blocked"), std::string::npos) << r.status().to_string();
  Attrs dilated = attrs;
  dilated["pool_dilations"] = Ints{2, 2};
  EXPECT_FALSE(run_node(deskml_node("FusedConvMaxPool", 2, dilated), {x, w}).ok());
  Attrs wide = attrs;  // a window wider than the padded input
  wide["pool_kernel_shape"] = Ints{3, 30};
  EXPECT_FALSE(run_node(deskml_node("FusedConvMaxPool", 2, wide), {x, w}).ok());
  EXPECT_TRUE(run_node(deskml_node("FusedConvMaxPool", 2, attrs), {x, w}).ok());
}

// Each pool row lands in exactly one band, in order; a band convolves the rows
// its windows cover and reads the input rows those need, padded where they
// fall outside the input.
TEST(ConvPoolBands, CoverEveryRowOnceAndReadWhatTheWindowsNeed) {
  struct Geometry {
    Shape x;
    Ints kernel, strides, pads, dilations, pool_kernel, pool_strides, pool_pads;
    bool ceil;
  };
  const std::vector<Geometry> geometries = {
      {{1, 3, 224, 224}, {3, 3}, {2, 2}, {0, 0, 0, 0}, {1, 1}, {3, 3}, {2, 2}, {0, 0, 0, 0}, true},
      {{1, 3, 224, 224}, {7, 7}, {2, 2}, {3, 3, 3, 3}, {1, 1}, {3, 3}, {2, 2}, {1, 1, 1, 1}, false},
      {{2, 16, 30, 9}, {3, 3}, {1, 1}, {1, 1, 2, 1}, {2, 2}, {2, 2}, {1, 1}, {1, 0, 1, 0}, true},
      {{1, 16, 7, 7}, {1, 1}, {1, 1}, {0, 0, 0, 0}, {1, 1}, {7, 7}, {1, 1}, {0, 0, 0, 0}, false},  // one row
  };
  for (const Geometry& geo : geometries) {
    ConvAttrs ca;
    ca.strides = geo.strides;
    ca.pads = geo.pads;
    ca.dilations = geo.dilations;
    const auto conv = kernels::cpu::conv_geometry(ca, geo.x, {16, geo.x[1], geo.kernel[0], geo.kernel[1]}, "conv");
    PoolAttrs pa;
    pa.kernel_shape = geo.pool_kernel;
    pa.strides = geo.pool_strides;
    pa.pads = geo.pool_pads;
    pa.ceil_mode = geo.ceil;
    const auto pool = kernels::cpu::pool_geometry(pa, {1, 16, conv.out[0], conv.out[1]}, "pool");
    const int64_t extent = (conv.kernel[0] - 1) * conv.dilations[0] + 1;
    for (int threads : {1, 2, 3, 8}) {
      for (int64_t max_rows : {1, 3, 9, 40, 1000}) {
        SCOPED_TRACE(shape_to_string(geo.x) + " threads " + std::to_string(threads) + " max rows " +
                     std::to_string(max_rows));
        const auto plan = kernels::cpu::conv_pool_bands(conv, pool, threads, max_rows);
        ASSERT_EQ(plan.size(), static_cast<size_t>(std::min<int64_t>(threads, pool.out[0])));
        int64_t next = 0;
        for (const auto& bands : plan) {
          ASSERT_FALSE(bands.empty());
          for (const ConvPoolBand& b : bands) {
            ASSERT_EQ(b.pool_begin, next);
            ASSERT_GT(b.pool_end, b.pool_begin);
            next = b.pool_end;
            // The convolved rows: every window's rows within the output, and no more.
            const int64_t ps = pool.strides[0], pp = pool.pad_begin[0], pk = pool.kernel[0];
            EXPECT_EQ(b.conv_begin, std::max<int64_t>(0, b.pool_begin * ps - pp));
            EXPECT_EQ(b.conv_end, std::min(conv.out[0], (b.pool_end - 1) * ps - pp + pk));
            if (b.pool_end - b.pool_begin > 1) {
              EXPECT_LE(b.conv_end - b.conv_begin, max_rows);
            }
            // The input rows and padding give exactly those convolved rows.
            EXPECT_GE(b.in_begin, 0);
            EXPECT_LE(b.in_end, conv.in[0]);
            EXPECT_LE(b.pad_top, conv.pad_begin[0]);
            EXPECT_LE(b.pad_bottom, conv.pad_end[0]);
            EXPECT_EQ(b.in_begin - b.pad_top, b.conv_begin * conv.strides[0] - conv.pad_begin[0]);
            EXPECT_EQ(b.in_end - b.in_begin + b.pad_top + b.pad_bottom,
                      (b.conv_end - b.conv_begin - 1) * conv.strides[0] + extent);
          }
        }
        EXPECT_EQ(next, pool.out[0]);
      }
    }
  }
}

}  // namespace
}  // namespace deskml
