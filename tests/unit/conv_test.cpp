// Conv, ConvTranspose, ConvInteger, QLinearConv against naive N-D references
// written here independently of the kernels' own loops.
#include <gtest/gtest.h>

#include <atomic>
#include <climits>
#include <cmath>
#include <functional>
#include <random>
#include <thread>

#include "kernel_harness.hpp"
#include "kernels/cpu/dnnl_context.hpp"

namespace deskml {
namespace {

using testing::make_node;
using testing::run_node;
using Attrs = std::map<std::string, graph::AttributeValue>;
using Ints = std::vector<int64_t>;

Tensor random_tensor(const Shape& shape, uint32_t seed, DataType dtype = DataType::kFloat32) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  Tensor t(DataType::kFloat64, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = dist(rng);
  return t.cast(dtype);
}

// Calls fn(index) for every multi-index of `shape`, row-major.
void for_each_index(const Shape& shape, const std::function<void(const Ints&)>& fn) {
  if (shape_numel(shape) == 0) return;
  Ints idx(shape.size(), 0);
  while (true) {
    fn(idx);
    size_t d = shape.size();
    while (d > 0) {
      --d;
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
      if (d == 0) return;
    }
    if (shape.empty()) return;
  }
}

int64_t offset(const Shape& shape, const Ints& idx) {
  int64_t o = 0;
  for (size_t i = 0; i < shape.size(); ++i) o = o * shape[i] + idx[i];
  return o;
}

struct ConvCase {
  Ints strides, dilations, pads;  // pads: begin..., end...
  int64_t group = 1;
};

// y[n, m, o] = b[m] + sum_{c, k} x[n, g*C/G + c, o*s + k*d - pb] * w[m, c, k]
Tensor naive_conv(const Tensor& x64, const Tensor& w64, const Tensor* b64, const ConvCase& cc) {
  const Shape& xs = x64.shape();
  const Shape& ws = w64.shape();
  const size_t sr = xs.size() - 2;
  Shape ys = {xs[0], ws[0]};
  for (size_t i = 0; i < sr; ++i) {
    const int64_t dk = (ws[i + 2] - 1) * cc.dilations[i] + 1;
    ys.push_back((xs[i + 2] + cc.pads[i] + cc.pads[i + sr] - dk) / cc.strides[i] + 1);
  }
  Tensor y = Tensor::zeros(DataType::kFloat64, ys);
  const int64_t cg = ws[1], mg = ws[0] / cc.group;
  const Shape kshape(ws.begin() + 2, ws.end());
  for_each_index(ys, [&](const Ints& o) {
    double acc = b64 ? b64->data<double>()[o[1]] : 0.0;
    const int64_t grp = o[1] / mg;
    for (int64_t c = 0; c < cg; ++c) {
      for_each_index(kshape, [&](const Ints& k) {
        Ints xi = {o[0], grp * cg + c};
        for (size_t i = 0; i < sr; ++i) {
          const int64_t p = o[i + 2] * cc.strides[i] + k[i] * cc.dilations[i] - cc.pads[i];
          if (p < 0 || p >= xs[i + 2]) return;
          xi.push_back(p);
        }
        Ints wi = {o[1], c};
        wi.insert(wi.end(), k.begin(), k.end());
        acc += x64.data<double>()[offset(xs, xi)] * w64.data<double>()[offset(ws, wi)];
      });
    }
    y.data<double>()[offset(ys, o)] = acc;
  });
  return y;
}

void expect_close(const Tensor& got, const Tensor& want64, double tol, const std::string& what) {
  ASSERT_EQ(got.shape(), want64.shape()) << what;
  const Tensor g = got.cast(DataType::kFloat64);
  for (int64_t i = 0; i < g.numel(); ++i) {
    const double a = g.data<double>()[i], b = want64.data<double>()[i];
    ASSERT_NEAR(a, b, tol * (1.0 + std::abs(b))) << what << " at " << i;
  }
}

Attrs conv_attrs(const ConvCase& cc) {
  return {{"strides", cc.strides}, {"dilations", cc.dilations}, {"pads", cc.pads}, {"group", cc.group}};
}

struct ConvShapeCase {
  Shape x, w;
  ConvCase cc;
};

std::vector<ConvShapeCase> conv_cases() {
  return {
      {{2, 3, 9}, {4, 3, 3}, {{2}, {1}, {1, 2}, 1}},
      {{1, 4, 11}, {4, 2, 2}, {{1}, {3}, {0, 0}, 2}},
      {{2, 3, 7, 8}, {5, 3, 3, 3}, {{1, 1}, {1, 1}, {1, 1, 1, 1}, 1}},
      {{1, 4, 9, 10}, {6, 2, 3, 2}, {{2, 3}, {2, 1}, {0, 2, 1, 0}, 2}},
      {{2, 8, 6, 6}, {8, 1, 3, 3}, {{1, 1}, {1, 1}, {1, 1, 1, 1}, 8}},     // depthwise
      {{1, 4, 7, 7}, {8, 1, 3, 3}, {{2, 2}, {1, 1}, {1, 1, 1, 1}, 4}},     // depthwise with multiplier
      {{1, 16, 5, 5}, {32, 16, 1, 1}, {{1, 1}, {1, 1}, {0, 0, 0, 0}, 1}},  // 1x1
      {{1, 3, 5, 6, 7}, {4, 3, 2, 3, 2}, {{1, 2, 1}, {2, 1, 1}, {1, 0, 1, 0, 1, 1}, 1}},
      {{1, 4, 4, 5, 6}, {4, 2, 3, 3, 3}, {{2, 1, 2}, {1, 1, 1}, {1, 1, 1, 1, 1, 1}, 2}},
  };
}

TEST(Conv, Float32MatchesNaiveReference) {
  uint32_t seed = 1;
  for (const auto& c : conv_cases()) {
    for (bool bias : {false, true}) {
      const Tensor x = random_tensor(c.x, seed++), w = random_tensor(c.w, seed++);
      const Tensor b = random_tensor({c.w[0]}, seed++);
      auto node = make_node("Conv", bias ? 3 : 2, 1, 11, conv_attrs(c.cc));
      auto r = run_node(node, bias ? std::vector<Tensor>{x, w, b} : std::vector<Tensor>{x, w}, 2);
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      const Tensor b64 = b.cast(DataType::kFloat64);
      const Tensor want =
          naive_conv(x.cast(DataType::kFloat64), w.cast(DataType::kFloat64), bias ? &b64 : nullptr, c.cc);
      expect_close((*r)[0], want, 1e-5, "conv " + shape_to_string(c.x) + " x " + shape_to_string(c.w));
    }
  }
}

TEST(Conv, Float64AndFloat16Paths) {
  const auto c = conv_cases()[3];
  const Tensor x = random_tensor(c.x, 11, DataType::kFloat64), w = random_tensor(c.w, 12, DataType::kFloat64);
  const Tensor b = random_tensor({c.w[0]}, 13, DataType::kFloat64);
  const Tensor want = naive_conv(x, w, &b, c.cc);
  auto node = make_node("Conv", 3, 1, 11, conv_attrs(c.cc));
  auto r = run_node(node, {x, w, b});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].dtype(), DataType::kFloat64);
  expect_close((*r)[0], want, 1e-12, "float64");
  auto h = run_node(node, {x.cast(DataType::kFloat16), w.cast(DataType::kFloat16), b.cast(DataType::kFloat16)});
  ASSERT_TRUE(h.ok()) << h.status().to_string();
  EXPECT_EQ((*h)[0].dtype(), DataType::kFloat16);
  expect_close((*h)[0], want, 2e-2, "float16");
}

TEST(Conv, AutoPadSameAndValid) {
  const Tensor x = random_tensor({1, 2, 7, 6}, 21), w = random_tensor({3, 2, 3, 2}, 22);
  // SAME_UPPER with stride 2: out = ceil(in / 2); total pad = (out-1)*2 + k - in, extra at the end.
  {
    auto r = run_node(make_node("Conv", 2, 1, 11, {{"auto_pad", std::string("SAME_UPPER")}, {"strides", Ints{2, 2}}}),
                      {x, w});
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    // H: out 4, total (3*2+3-7)=2 -> 1,1. W: out 3, total (2*2+2-6)=0.
    const Tensor want =
        naive_conv(x.cast(DataType::kFloat64), w.cast(DataType::kFloat64), nullptr, {{2, 2}, {1, 1}, {1, 0, 1, 0}, 1});
    expect_close((*r)[0], want, 1e-5, "SAME_UPPER");
  }
  {
    auto r = run_node(make_node("Conv", 2, 1, 11, {{"auto_pad", std::string("SAME_LOWER")}, {"strides", Ints{1, 1}}}),
                      {x, w});
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    // H: total 2 -> 1,1; W: total 1 -> extra at the beginning: 1,0.
    const Tensor want =
        naive_conv(x.cast(DataType::kFloat64), w.cast(DataType::kFloat64), nullptr, {{1, 1}, {1, 1}, {1, 1, 1, 0}, 1});
    expect_close((*r)[0], want, 1e-5, "SAME_LOWER");
  }
  {
    auto r =
        run_node(make_node("Conv", 2, 1, 11, {{"auto_pad", std::string("VALID")}, {"pads", Ints{1, 1, 1, 1}}}), {x, w});
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ((*r)[0].shape(), (Shape{1, 3, 5, 5}));
  }
}

TEST(Conv, CachedPrimitivesFollowShapesAndWeights) {
  auto node = make_node("Conv", 2, 1, 11, {{"pads", Ints{1, 1, 1, 1}}});
  auto kernel_def = kernels::cpu::cpu_registry().find("Conv", "", 11, DataType::kFloat32);
  ASSERT_NE(kernel_def, nullptr);
  auto kernel = kernel_def->factory(node);
  const ConvCase cc = {{1, 1}, {1, 1}, {1, 1, 1, 1}, 1};
  // More shapes than the cache holds, twice, and new weights of the same shape each time.
  for (int round = 0; round < 2; ++round) {
    for (int64_t size = 3; size < 10; ++size) {
      const Tensor x = random_tensor({1, 3, size, size + 1}, static_cast<uint32_t>(100 + size));
      const Tensor w = random_tensor({2, 3, 3, 3}, static_cast<uint32_t>(200 + size + 17 * round));
      std::vector<Value> in = {Value::from_tensor(x), Value::from_tensor(w)};
      std::vector<const Value*> ptrs = {&in[0], &in[1]};
      std::vector<Value> out(1);
      kernels::KernelContext ctx(node, ptrs, out, nullptr, 1);
      ASSERT_TRUE(kernel->compute(ctx).ok());
      const Tensor want = naive_conv(x.cast(DataType::kFloat64), w.cast(DataType::kFloat64), nullptr, cc);
      expect_close(out[0].tensor, want, 1e-5, "size " + std::to_string(size));
    }
  }
}

TEST(Conv, RejectsBadInputs) {
  const Tensor x = random_tensor({1, 4, 5, 5}, 1);
  auto conv = [&](const Tensor& w, Attrs attrs = {}, std::vector<Tensor> extra = {}) {
    std::vector<Tensor> in = {x, w};
    in.insert(in.end(), extra.begin(), extra.end());
    return run_node(make_node("Conv", in.size(), 1, 11, std::move(attrs)), in);
  };
  EXPECT_FALSE(conv(random_tensor({2, 3, 3, 3}, 2)).ok());                             // channel mismatch
  EXPECT_FALSE(conv(random_tensor({2, 4, 3}, 2)).ok());                                // rank mismatch
  EXPECT_FALSE(conv(random_tensor({2, 4, 7, 7}, 2)).ok());                             // kernel larger than input
  EXPECT_FALSE(conv(random_tensor({3, 2, 3, 3}, 2), {{"group", int64_t{2}}}).ok());    // M not divisible by group
  EXPECT_FALSE(conv(random_tensor({2, 4, 3, 3}, 2), {{"strides", Ints{0, 1}}}).ok());  // zero stride
  EXPECT_FALSE(conv(random_tensor({2, 4, 3, 3}, 2), {{"pads", Ints{1, 1}}}).ok());     // pads of wrong length
  EXPECT_FALSE(conv(random_tensor({2, 4, 3, 3}, 2), {{"kernel_shape", Ints{2, 2}}}).ok());
  EXPECT_FALSE(conv(random_tensor({2, 4, 3, 3}, 2), {{"auto_pad", std::string("SAME")}}).ok());
  EXPECT_FALSE(conv(random_tensor({2, 4, 3, 3}, 2), {}, {random_tensor({3}, 3)}).ok());  // bias size
  EXPECT_FALSE(run_node(make_node("Conv", 2, 1, 11), {random_tensor({4, 5}, 1), random_tensor({2, 4}, 2)}).ok());
  // Absurd sizes are errors, not overflows.
  EXPECT_FALSE(conv(random_tensor({2, 4, 3, 3}, 2), {{"strides", Ints{int64_t{1} << 40, 1}}}).ok());
  EXPECT_FALSE(conv(random_tensor({2, 4, 3, 3}, 2), {{"pads", Ints{0, 0, int64_t{1} << 62, 0}}}).ok());
  EXPECT_FALSE(run_node(make_node("ConvTranspose", 2, 1, 11, {{"strides", Ints{INT32_MAX, INT32_MAX}}}),
                        {random_tensor({1, 4, 300, 300}, 1), random_tensor({4, 1, 3, 3}, 2)})
                   .ok());
}

// One run of a kernel shared between threads; false when it fails or any
// element of Y (brought back to NCHW by `to_nchw`) is off `want` by over 1e-4.
bool shared_run_matches(kernels::Kernel& kernel, const graph::Node& node, const Tensor& x, const Tensor& w,
                        const Tensor& want, const std::function<Tensor(const Tensor&)>& to_nchw = nullptr) {
  std::vector<Value> in = {Value::from_tensor(x), Value::from_tensor(w)};
  std::vector<const Value*> ptrs = {&in[0], &in[1]};
  std::vector<Value> out(1);
  kernels::KernelContext ctx(node, ptrs, out, nullptr, 1);
  if (!kernel.compute(ctx).ok()) return false;
  const Tensor got = (to_nchw ? to_nchw(out[0].tensor) : out[0].tensor).cast(DataType::kFloat64);
  for (int64_t j = 0; j < want.numel(); ++j) {
    if (std::abs(got.data<double>()[j] - want.data<double>()[j]) > 1e-4) return false;
  }
  return true;
}

TEST(Conv, ConcurrentRunsShareOneKernel) {
  auto node = make_node("Conv", 2, 1, 11, {{"pads", Ints{1, 1, 1, 1}}, {"strides", Ints{2, 1}}});
  auto kernel = kernels::cpu::cpu_registry().find("Conv", "", 11, DataType::kFloat32)->factory(node);
  const ConvCase cc = {{2, 1}, {1, 1}, {1, 1, 1, 1}, 1};
  const Tensor w = random_tensor({4, 3, 3, 3}, 5);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        const int64_t size = 4 + (t + i) % 6;  // more shapes than the cache keeps
        const Tensor x = random_tensor({1, 3, size, size}, static_cast<uint32_t>(t * 100 + i));
        const Tensor want = naive_conv(x.cast(DataType::kFloat64), w.cast(DataType::kFloat64), nullptr, cc);
        if (!shared_run_matches(*kernel, node, x, w, want)) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

// NCHW -> NHWC (to_nhwc) or back, for 4-D float tensors.
Tensor to_layout(const Tensor& t, bool to_nhwc) {
  const Shape& s = t.shape();
  const int64_t n = s[0], c = to_nhwc ? s[1] : s[3], h = to_nhwc ? s[2] : s[1], w = to_nhwc ? s[3] : s[2];
  Tensor out(DataType::kFloat32, to_nhwc ? Shape{n, h, w, c} : Shape{n, c, h, w});
  for (int64_t a = 0; a < n; ++a)
    for (int64_t k = 0; k < c; ++k)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) {
          const int64_t nchw = ((a * c + k) * h + y) * w + x, nhwc = ((a * h + y) * w + x) * c + k;
          out.data<float>()[to_nhwc ? nhwc : nchw] = t.data<float>()[to_nhwc ? nchw : nhwc];
        }
  return out;
}

// Weights that are an input (not a constant) change from run to run; runs on
// several threads at once each use their own, through one kernel whose packed
// weights (NHWC: oneDNN wants them blocked) are swapped between the runs.
TEST(Conv, ConcurrentRunsWithTheirOwnWeights) {
  auto node = make_node("FusedConv", 2, 1, 1, {{"pads", Ints{1, 1, 1, 1}}, {"channels_last", int64_t{1}}});
  node.domain = "deskml";
  auto kernel = kernels::cpu::cpu_registry().find("FusedConv", "deskml", 1, DataType::kFloat32)->factory(node);
  const ConvCase cc = {{1, 1}, {1, 1}, {1, 1, 1, 1}, 1};
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const Tensor w = random_tensor({32, 16, 3, 3}, static_cast<uint32_t>(700 + t));
      const Tensor x = random_tensor({1, 16, 8, 8}, static_cast<uint32_t>(800 + t));
      const Tensor want = naive_conv(x.cast(DataType::kFloat64), w.cast(DataType::kFloat64), nullptr, cc);
      const Tensor x_nhwc = to_layout(x, true);
      for (int i = 0; i < 200; ++i) {
        if (!shared_run_matches(*kernel, node, x_nhwc, w, want, [](const Tensor& y) { return to_layout(y, false); })) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

// y[n, m, i*s + k*d - pb] += x[n, c, i] * w[c, m - g*M/G, k]; y has `out` spatial dims.
Tensor naive_conv_transpose(const Tensor& x64, const Tensor& w64, const Ints& strides, const Ints& dil,
                            const Ints& pad_begin, const Shape& out, int64_t group) {
  const Shape& xs = x64.shape();
  const Shape& ws = w64.shape();
  const size_t sr = xs.size() - 2;
  Shape ys = {xs[0], ws[1] * group};
  ys.insert(ys.end(), out.begin(), out.end());
  Tensor y = Tensor::zeros(DataType::kFloat64, ys);
  const int64_t cg = xs[1] / group, mg = ws[1];
  const Shape kshape(ws.begin() + 2, ws.end());
  for_each_index(xs, [&](const Ints& xi) {
    const int64_t grp = xi[1] / cg;
    for (int64_t ml = 0; ml < mg; ++ml) {
      for_each_index(kshape, [&](const Ints& k) {
        Ints yi = {xi[0], grp * mg + ml};
        for (size_t i = 0; i < sr; ++i) {
          const int64_t p = xi[i + 2] * strides[i] + k[i] * dil[i] - pad_begin[i];
          if (p < 0 || p >= out[i]) return;
          yi.push_back(p);
        }
        Ints wi = {xi[1], ml};
        wi.insert(wi.end(), k.begin(), k.end());
        y.data<double>()[offset(ys, yi)] += x64.data<double>()[offset(xs, xi)] * w64.data<double>()[offset(ws, wi)];
      });
    }
  });
  return y;
}

TEST(ConvTranspose, MatchesNaiveReference) {
  struct Case {
    Shape x, w;
    Attrs attrs;
    Ints strides, dil, pad_begin;
    Shape out;
    int64_t group;
  };
  const std::vector<Case> cases = {
      {{1, 2, 5}, {2, 3, 3}, {{"strides", Ints{2}}}, {2}, {1}, {0}, {11}, 1},
      {{2, 3, 4, 5},
       {3, 2, 3, 3},
       {{"strides", Ints{2, 1}}, {"pads", Ints{1, 0, 1, 2}}},
       {2, 1},
       {1, 1},
       {1, 0},
       {7, 5},
       1},
      {{1, 4, 3, 3},
       {4, 3, 2, 3},
       {{"group", int64_t{2}}, {"dilations", Ints{2, 1}}},
       {1, 1},
       {2, 1},
       {0, 0},
       {5, 5},
       2},
      // output_padding 1 > end pad 0: an extra row and column of bias only
      {{1, 2, 3, 3},
       {2, 2, 3, 3},
       {{"strides", Ints{2, 2}}, {"output_padding", Ints{1, 1}}},
       {2, 2},
       {1, 1},
       {0, 0},
       {8, 8},
       1},
      // output_shape larger than the full result: zeros at the end (negative pads)
      {{1, 1, 3, 3},
       {1, 2, 3, 3},
       {{"strides", Ints{3, 2}}, {"output_shape", Ints{10, 8}}},
       {3, 2},
       {1, 1},
       {0, 0},
       {10, 8},
       1},
      // output_shape smaller: spec splits the total padding, extra at the beginning (NOTSET)
      {{1, 1, 3, 3},
       {1, 1, 3, 3},
       {{"strides", Ints{2, 2}}, {"output_shape", Ints{1, 1, 6, 5}}},
       {2, 2},
       {1, 1},
       {1, 1},
       {6, 5},
       1},
      {{1, 1, 3, 3},
       {1, 1, 3, 3},
       {{"strides", Ints{2, 2}}, {"auto_pad", std::string("SAME_UPPER")}},
       {2, 2},
       {1, 1},
       {0, 0},
       {6, 6},
       1},
      {{1, 1, 3, 3},
       {1, 1, 3, 3},
       {{"strides", Ints{2, 2}}, {"auto_pad", std::string("SAME_LOWER")}},
       {2, 2},
       {1, 1},
       {1, 1},
       {6, 6},
       1},
      {{1, 2, 2, 3, 2},
       {2, 2, 2, 2, 3},
       {{"strides", Ints{2, 1, 2}}, {"pads", Ints{0, 1, 1, 1, 0, 1}}},
       {2, 1, 2},
       {1, 1, 1},
       {0, 1, 1},
       {3, 3, 3},
       1},
  };
  uint32_t seed = 50;
  for (const auto& c : cases) {
    for (DataType dt : {DataType::kFloat32, DataType::kFloat64}) {
      const Tensor x = random_tensor(c.x, seed++, dt), w = random_tensor(c.w, seed++, dt);
      const Tensor b = random_tensor({c.w[1] * c.group}, seed++, dt);
      auto r = run_node(make_node("ConvTranspose", 3, 1, 11, c.attrs), {x, w, b});
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      Tensor want = naive_conv_transpose(x.cast(DataType::kFloat64), w.cast(DataType::kFloat64), c.strides, c.dil,
                                         c.pad_begin, c.out, c.group);
      const int64_t m = want.dim(1), plane = want.numel() / (want.dim(0) * m);
      for (int64_t i = 0; i < want.numel(); ++i)
        want.data<double>()[i] += b.cast(DataType::kFloat64).data<double>()[(i / plane) % m];
      expect_close((*r)[0], want, 1e-5, "convtranspose " + shape_to_string(c.x));
    }
  }
}

TEST(ConvTranspose, RejectsBadInputs) {
  const Tensor x = random_tensor({1, 4, 3, 3}, 1);
  EXPECT_FALSE(run_node(make_node("ConvTranspose", 2, 1, 11), {x, random_tensor({3, 2, 3, 3}, 2)}).ok());
  EXPECT_FALSE(
      run_node(make_node("ConvTranspose", 2, 1, 11, {{"pads", Ints{3, 3, 3, 3}}}), {x, random_tensor({4, 2, 2, 2}, 2)})
          .ok());
  EXPECT_FALSE(
      run_node(make_node("ConvTranspose", 2, 1, 11, {{"output_shape", Ints{5}}}), {x, random_tensor({4, 2, 2, 2}, 2)})
          .ok());
}

TEST(ConvInteger, ZeroPointsPerTensorAndPerChannel) {
  const Shape xs = {1, 2, 4, 4}, ws = {3, 2, 2, 2};
  Tensor x(DataType::kUInt8, xs), w(DataType::kInt8, ws);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<uint8_t>()[i] = static_cast<uint8_t>((i * 37) % 256);
  for (int64_t i = 0; i < w.numel(); ++i) w.data<int8_t>()[i] = static_cast<int8_t>((i * 53) % 256 - 128);
  const Tensor xz = Tensor::scalar<uint8_t>(100);
  const Tensor wz = Tensor::from_vector<int8_t>({-3, 0, 5}, {3});
  auto r = run_node(make_node("ConvInteger", 4, 1, 10, {{"pads", Ints{1, 0, 0, 1}}}), {x, w, xz, wz});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  // Reference: float conv on shifted values.
  Tensor xf(DataType::kFloat64, xs), wf(DataType::kFloat64, ws);
  for (int64_t i = 0; i < x.numel(); ++i) xf.data<double>()[i] = x.data<uint8_t>()[i] - 100.0;
  for (int64_t i = 0; i < w.numel(); ++i) wf.data<double>()[i] = w.data<int8_t>()[i] - wz.data<int8_t>()[i / 8];
  const Tensor want = naive_conv(xf, wf, nullptr, {{1, 1}, {1, 1}, {1, 0, 0, 1}, 1});
  ASSERT_EQ((*r)[0].dtype(), DataType::kInt32);
  expect_close((*r)[0], want, 0, "ConvInteger");
  EXPECT_FALSE(run_node(make_node("ConvInteger", 4, 1, 10), {x, w, xz, Tensor::from_vector<int8_t>({1, 2}, {2})}).ok());
}

TEST(QLinearConv, RequantizesWithBias) {
  const Tensor x = Tensor::from_vector<uint8_t>({10, 20, 30, 40, 50, 60, 70, 80, 90}, {1, 1, 3, 3});
  const Tensor w = Tensor::from_vector<uint8_t>({1, 2, 3, 4, 130, 131, 132, 133}, {2, 1, 2, 2});
  const Tensor bias = Tensor::from_vector<int32_t>({100, -50}, {2});
  auto r = run_node(
      make_node("QLinearConv", 9, 1, 10),
      {x, Tensor::scalar<float>(0.5f), Tensor::scalar<uint8_t>(10), w, Tensor::from_vector<float>({0.25f, 0.125f}, {2}),
       Tensor::from_vector<uint8_t>({0, 128}, {2}), Tensor::scalar<float>(2.0f), Tensor::scalar<uint8_t>(5), bias});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const Tensor& y = (*r)[0];
  ASSERT_EQ(y.shape(), (Shape{1, 2, 2, 2}));
  // Channel 0 at (0,0): acc = 0*1 + 10*2 + 30*3 + 40*4 + 100 = 370; 370 * 0.5*0.25/2 = 23.125 -> 23 + 5.
  EXPECT_EQ(y.data<uint8_t>()[0], 28);
  // Channel 1 at (0,0): acc = 0*2 + 10*3 + 30*4 + 40*5 - 50 = 300; 300 * 0.5*0.125/2 = 9.375 -> 9 + 5.
  EXPECT_EQ(y.data<uint8_t>()[4], 14);
}

// Primitives of one node built for different input shapes share the reordered
// weights when they want the same layout, and hold them only while one lives.
TEST(SharedWeights, OneCopyPerLayoutWhileInUse) {
  using dnnl::memory;
  kernels::cpu::onednn::SharedWeights shared;
  const memory::desc a({64, 64, 3, 3}, memory::data_type::f32, memory::format_tag::oihw);
  const memory::desc b({64, 64, 3, 3}, memory::data_type::f32, memory::format_tag::OIhw16i16o);
  auto first = shared.for_layout(a);
  auto again = shared.for_layout(a);
  auto other = shared.for_layout(b);
  EXPECT_EQ(first.get(), again.get());
  EXPECT_NE(first.get(), other.get());
  std::weak_ptr<kernels::cpu::onednn::ReorderedWeights> watch = first;
  first.reset();
  again.reset();
  EXPECT_TRUE(watch.expired());  // the cache does not keep it alive
  auto fresh = shared.for_layout(a);
  EXPECT_TRUE(fresh != nullptr);
  EXPECT_EQ(shared.for_layout(b).get(), other.get());
}

// FastArgs keeps a primitive's memory objects in per-thread slots and only
// swaps their data pointers; alternating buffers, several threads (more than
// there are slots: the rest use temporaries) still compute the right thing.
TEST(FastArgs, ReusedMemoryObjectsFollowTheirBuffers) {
  using dnnl::memory;
  namespace onednn = kernels::cpu::onednn;
  const memory::desc md({1, 16, 4, 4}, memory::data_type::f32, memory::format_tag::nhwc);
  const dnnl::eltwise_forward::primitive_desc pd(
      dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::eltwise_relu, md, 0.0f),
      onednn::base_attr(), onednn::engine());
  const dnnl::eltwise_forward relu(pd);
  onednn::ArgSlots slots;
  std::vector<float> in_a(256), in_b(256);
  for (int i = 0; i < 256; ++i) {
    in_a[static_cast<size_t>(i)] = static_cast<float>(i - 128);
    in_b[static_cast<size_t>(i)] = static_cast<float>(128 - i);
  }
  std::atomic<int> wrong{0};
  auto work = [&] {
    std::vector<float> out(256);
    for (int k = 0; k < 200; ++k) {
      const std::vector<float>& in = k % 2 ? in_a : in_b;
      onednn::FastArgs args(slots);
      args.add(DNNL_ARG_SRC, md, in.data());
      args.add(DNNL_ARG_DST, md, out.data());
      args.execute(relu, pd.scratchpad_desc());
      for (size_t i = 0; i < 256; ++i) wrong += out[i] != std::max(in[i], 0.0f);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < onednn::ArgSlots::kSlots + 2; ++t) threads.emplace_back(work);
  for (auto& t : threads) t.join();
  work();
  EXPECT_EQ(wrong.load(), 0);
}

// deskml.Reorder: NHWC [N, H, W, C] <-> nChw16c [N, C/16, H, W, 16], element by element.
TEST(LayoutReorder, RoundTripsAndPlacesEveryChannel) {
  const int64_t n = 2, h = 3, w = 5, c = 32;
  Tensor x(DataType::kFloat32, {n, h, w, c});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(i);
  auto to = make_node("Reorder", 1, 1, 1, {{"to", std::string("nChw16c")}});
  to.domain = "deskml";
  auto blocked = run_node(to, {x}, 2);
  ASSERT_TRUE(blocked.ok()) << blocked.status().to_string();
  const Tensor& b = (*blocked)[0];
  ASSERT_EQ(b.shape(), (Shape{n, c / 16, h, w, 16}));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t z = 0; z < w; ++z)
        for (int64_t k = 0; k < c; ++k) {
          const float want = x.data<float>()[((i * h + y) * w + z) * c + k];
          const float got = b.data<float>()[(((i * (c / 16) + k / 16) * h + y) * w + z) * 16 + k % 16];
          ASSERT_EQ(got, want) << i << " " << y << " " << z << " " << k;
        }
  auto back = make_node("Reorder", 1, 1, 1, {{"to", std::string("nhwc")}});
  back.domain = "deskml";
  auto again = run_node(back, {b}, 2);
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  ASSERT_EQ((*again)[0].shape(), x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ((*again)[0].data<float>()[i], x.data<float>()[i]);
}

TEST(LayoutReorder, RejectsWrongShapesAndTargets) {
  auto to = make_node("Reorder", 1, 1, 1, {{"to", std::string("nChw16c")}});
  to.domain = "deskml";
  EXPECT_FALSE(run_node(to, {Tensor(DataType::kFloat32, {1, 2, 2, 20})}).ok());  // 20 channels
  EXPECT_FALSE(run_node(to, {Tensor(DataType::kFloat32, {1, 2, 20})}).ok());
  auto back = make_node("Reorder", 1, 1, 1, {{"to", std::string("nhwc")}});
  back.domain = "deskml";
  EXPECT_FALSE(run_node(back, {Tensor(DataType::kFloat32, {1, 2, 2, 2, 8})}).ok());
  auto odd = make_node("Reorder", 1, 1, 1, {{"to", std::string("nchw")}});
  odd.domain = "deskml";
  auto r = run_node(odd, {Tensor(DataType::kFloat32, {1, 2, 2, 16})});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("attribute 'to'"), std::string::npos) << r.status().to_string();
  // A blocked FusedConv checks its operands the same way.
  auto conv = make_node("FusedConv", 2, 1, 1, {{"blocked", int64_t{16}}});
  conv.domain = "deskml";
  EXPECT_FALSE(
      run_node(conv, {Tensor(DataType::kFloat32, {1, 2, 4, 4}), Tensor(DataType::kFloat32, {16, 32, 1, 1})}).ok());
  EXPECT_FALSE(
      run_node(conv, {Tensor(DataType::kFloat32, {1, 2, 4, 4, 16}), Tensor(DataType::kFloat32, {8, 32, 1, 1})}).ok());
  EXPECT_FALSE(
      run_node(conv, {Tensor(DataType::kFloat32, {1, 2, 4, 4, 16}), Tensor(DataType::kFloat32, {16, 16, 1, 1})}).ok());
}

}  // namespace
}  // namespace deskml
