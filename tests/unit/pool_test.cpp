// MaxPool, AveragePool, LpPool, the Global pools, MaxUnpool and MaxRoiPool.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernel_harness.hpp"

namespace deskml {
namespace {

using testing::make_node;
using testing::run_node;
using Attrs = std::map<std::string, graph::AttributeValue>;
using Ints = std::vector<int64_t>;

Tensor random_input(const Shape& shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  Tensor t(DataType::kFloat32, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

void expect_values(const Tensor& got, const std::vector<double>& want, const Shape& shape, double tol = 1e-5) {
  ASSERT_EQ(got.shape(), shape);
  const Tensor g = got.cast(DataType::kFloat64);
  ASSERT_EQ(static_cast<size_t>(g.numel()), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(g.data<double>()[i], want[i], tol) << "at " << i;
}

// Naive 2-D pooling over one plane: windows start at o*s - pb, taps every d;
// output size from the floor/ceil formula with the ceil-mode rule written out.
struct Pool2d {
  Ints k, s, d, pads;  // pads: top, left, bottom, right
  bool ceil = false, include_pad = false;
};

int64_t pooled_size(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe, bool ceil) {
  const int64_t ext = (k - 1) * d + 1;
  const double v = static_cast<double>(in + pb + pe - ext) / static_cast<double>(s);
  int64_t out = static_cast<int64_t>(ceil ? std::ceil(v) : std::floor(v)) + 1;
  if (ceil && (out - 1) * s >= in + pb) --out;
  return out;
}

std::vector<double> naive_pool(const Tensor& x, const Pool2d& p, bool is_max, Shape& out_shape) {
  const int64_t planes = x.dim(0) * x.dim(1), h = x.dim(2), w = x.dim(3);
  const int64_t oh = pooled_size(h, p.k[0], p.s[0], p.d[0], p.pads[0], p.pads[2], p.ceil);
  const int64_t ow = pooled_size(w, p.k[1], p.s[1], p.d[1], p.pads[1], p.pads[3], p.ceil);
  out_shape = {x.dim(0), x.dim(1), oh, ow};
  std::vector<double> out;
  for (int64_t pl = 0; pl < planes; ++pl) {
    for (int64_t i = 0; i < oh; ++i) {
      for (int64_t j = 0; j < ow; ++j) {
        double best = -1e300, sum = 0;
        int64_t n = 0, padded = 0;
        for (int64_t a = 0; a < p.k[0]; ++a) {
          for (int64_t b = 0; b < p.k[1]; ++b) {
            const int64_t y = i * p.s[0] - p.pads[0] + a * p.d[0], z = j * p.s[1] - p.pads[1] + b * p.d[1];
            if (y >= -p.pads[0] && y < h + p.pads[2] && z >= -p.pads[1] && z < w + p.pads[3]) ++padded;
            if (y < 0 || y >= h || z < 0 || z >= w) continue;
            const double v = x.data<float>()[(pl * h + y) * w + z];
            best = std::max(best, v);
            sum += v;
            ++n;
          }
        }
        out.push_back(is_max ? best : sum / static_cast<double>(p.include_pad ? padded : n));
      }
    }
  }
  return out;
}

Attrs pool_attrs(const Pool2d& p) {
  return {{"kernel_shape", p.k},
          {"strides", p.s},
          {"dilations", p.d},
          {"pads", p.pads},
          {"ceil_mode", int64_t{p.ceil}},
          {"count_include_pad", int64_t{p.include_pad}}};
}

TEST(Pool, MaxAndAverageMatchNaiveReference) {
  const std::vector<Pool2d> cases = {
      {{3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, false, false}, {{3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, true, false},
      {{3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, true, true},   {{2, 3}, {3, 2}, {1, 1}, {0, 1, 1, 0}, true, true},
      {{2, 2}, {2, 2}, {1, 1}, {1, 1, 1, 1}, true, false},  // ceil window dropped: it would start in the right pad
      {{3, 2}, {1, 2}, {2, 2}, {2, 1, 2, 1}, false, true},  {{2, 2}, {3, 3}, {2, 1}, {1, 0, 0, 1}, true, false},
  };
  uint32_t seed = 7;
  for (const auto& p : cases) {
    const Tensor x = random_input({2, 3, 7, 8}, seed++);
    Shape shape;
    for (const bool is_max : {true, false}) {
      if (is_max && p.include_pad) continue;
      auto node = make_node(is_max ? "MaxPool" : "AveragePool", 1, 1, is_max ? 12 : 19, pool_attrs(p));
      if (is_max) node.attributes.erase("count_include_pad");
      auto r = run_node(node, {x}, 2);
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      const std::vector<double> want = naive_pool(x, p, is_max, shape);
      expect_values((*r)[0], want, shape);
    }
  }
}

// deskml.NhwcMaxPool on nChw16c activations (the blocked-layout pass's
// pools): windows with padding, strides, ceil mode and a dilation, at 1-3
// threads (the threads split the output rows, or one row's channel blocks),
// against the naive pool of the same values in NCHW.
TEST(NhwcMaxPool, BlockedLayoutMatchesTheReference) {
  const std::vector<Pool2d> cases = {
      {{3, 3}, {2, 2}, {1, 1}, {0, 0, 0, 0}, true, false},  // SqueezeNet's
      {{3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, false, false},
      {{3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, false, false},
      {{2, 3}, {3, 2}, {1, 1}, {0, 1, 1, 0}, true, false},
      {{2, 2}, {2, 2}, {1, 1}, {1, 1, 1, 1}, true, false},
      {{3, 2}, {1, 2}, {2, 2}, {2, 1, 2, 1}, false, false},
      {{9, 3}, {1, 2}, {1, 1}, {0, 0, 0, 0}, false, false},  // one output row: the threads split the channel blocks
  };
  const int64_t n = 2, c = 32, h = 9, w = 11, blocks = c / 16;
  const Tensor x = random_input({n, c, h, w}, 23);
  Tensor blocked(DataType::kFloat32, {n, blocks, h, w, 16});  // [n][c / 16][h][w][c % 16]
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t k = 0; k < c; ++k) {
      for (int64_t i = 0; i < h * w; ++i) {
        blocked.data<float>()[((b * blocks + k / 16) * h * w + i) * 16 + k % 16] =
            x.data<float>()[(b * c + k) * h * w + i];
      }
    }
  }
  for (const auto& p : cases) {
    Attrs attrs = pool_attrs(p);
    attrs.erase("count_include_pad");
    attrs["blocked"] = int64_t{16};
    graph::Node node = make_node("NhwcMaxPool", 1, 1, 1, attrs);
    node.domain = "deskml";
    Shape shape;
    const std::vector<double> want = naive_pool(x, p, true, shape);  // NCHW
    const int64_t oh = shape[2], ow = shape[3];
    for (int threads : {1, 2, 3}) {
      SCOPED_TRACE("kernel " + shape_to_string(p.k) + " strides " + shape_to_string(p.s) + " threads " +
                   std::to_string(threads));
      auto r = run_node(node, {blocked}, threads);
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      const Tensor& got = (*r)[0];
      ASSERT_EQ(got.shape(), (Shape{n, blocks, oh, ow, 16}));
      for (int64_t b = 0; b < n; ++b) {
        for (int64_t k = 0; k < c; ++k) {
          for (int64_t i = 0; i < oh * ow; ++i) {
            ASSERT_EQ(got.data<float>()[((b * blocks + k / 16) * oh * ow + i) * 16 + k % 16],
                      static_cast<float>(want[static_cast<size_t>((b * c + k) * oh * ow + i)]))
                << "image " << b << " channel " << k << " pixel " << i;
          }
        }
      }
    }
  }
}

TEST(NhwcGlobalPool, RowBandsAndWholeImagesAgreeWithTheReference) {
  // Fewer images than threads: each thread pools a band of rows, then the bands are joined.
  // As many images as threads or more: whole images per thread. Odd planes, 70 channels.
  for (const Shape& shape : {Shape{1, 5, 7, 70}, Shape{2, 3, 3, 70}, Shape{3, 1, 1, 5}, Shape{1, 1, 1, 3}}) {
    for (int threads : {1, 2, 3, 4}) {
      const Tensor x = random_input(shape, 17);
      const int64_t n = shape[0], plane = shape[1] * shape[2], c = shape[3];
      for (bool max : {false, true}) {
        graph::Node node = make_node(max ? "NhwcGlobalMaxPool" : "NhwcGlobalAveragePool", 1, 1, 1);
        node.domain = "deskml";
        auto r = run_node(node, {x}, threads);
        ASSERT_TRUE(r.ok()) << r.status().to_string();
        std::vector<double> want;
        for (int64_t b = 0; b < n; ++b) {
          for (int64_t k = 0; k < c; ++k) {
            double acc = max ? -1e30 : 0.0;
            for (int64_t p = 0; p < plane; ++p) {
              const double v = x.data<float>()[(b * plane + p) * c + k];
              acc = max ? std::max(acc, v) : acc + v;
            }
            want.push_back(max ? acc : acc / static_cast<double>(plane));
          }
        }
        SCOPED_TRACE(shape_to_string(shape) + " threads " + std::to_string(threads) + (max ? " max" : " avg"));
        expect_values((*r)[0], want, {n, 1, 1, c});
      }
    }
  }
}

TEST(Pool, CeilModeDropsWindowsStartingInTheRightPad) {
  // in 5, k 2, s 2, pads 1/1: floor gives 3, plain ceil 4, but window 4 would start at 6 >= 5 + 1.
  const Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5}, {1, 1, 5});
  auto r = run_node(
      make_node("MaxPool", 1, 1, 11,
                {{"kernel_shape", Ints{2}}, {"strides", Ints{2}}, {"pads", Ints{1, 1}}, {"ceil_mode", int64_t{1}}}),
      {x});
  ASSERT_TRUE(r.ok());
  expect_values((*r)[0], {1, 3, 5}, {1, 1, 3});
  // in 6, k 3, s 2, no pads: ceil keeps a partial last window [4, 6).
  const Tensor y = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {1, 1, 6});
  auto a = run_node(
      make_node("AveragePool", 1, 1, 11, {{"kernel_shape", Ints{3}}, {"strides", Ints{2}}, {"ceil_mode", int64_t{1}}}),
      {y});
  ASSERT_TRUE(a.ok());
  expect_values((*a)[0], {2, 4, 5.5}, {1, 1, 3});
}

TEST(Pool, AutoPadSameUpperAndLower) {
  const Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5}, {1, 1, 5});
  auto up = run_node(
      make_node("AveragePool", 1, 1, 11, {{"kernel_shape", Ints{2}}, {"auto_pad", std::string("SAME_UPPER")}}), {x});
  ASSERT_TRUE(up.ok());
  expect_values((*up)[0], {1.5, 2.5, 3.5, 4.5, 5}, {1, 1, 5});
  auto lo = run_node(
      make_node("AveragePool", 1, 1, 11, {{"kernel_shape", Ints{2}}, {"auto_pad", std::string("SAME_LOWER")}}), {x});
  ASSERT_TRUE(lo.ok());
  expect_values((*lo)[0], {1, 1.5, 2.5, 3.5, 4.5}, {1, 1, 5});
  auto valid =
      run_node(make_node("MaxPool", 1, 1, 11,
                         {{"kernel_shape", Ints{2}}, {"strides", Ints{2}}, {"auto_pad", std::string("VALID")}}),
               {x});
  ASSERT_TRUE(valid.ok());
  expect_values((*valid)[0], {2, 4}, {1, 1, 2});
}

TEST(MaxPool, IndicesInRowAndColumnMajorOrder) {
  // Two planes of 2x3; 2x2 windows, stride 1 -> 1x2 outputs per plane.
  const Tensor x = Tensor::from_vector<float>({1, 9, 2, 3, 4, 5, 6, 1, 1, 1, 1, 7}, {1, 2, 2, 3});
  for (int64_t order : {0, 1}) {
    auto r = run_node(make_node("MaxPool", 1, 2, 12, {{"kernel_shape", Ints{2, 2}}, {"storage_order", order}}), {x});
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    expect_values((*r)[0], {9, 9, 6, 7}, {1, 2, 1, 2});
    ASSERT_EQ((*r)[1].dtype(), DataType::kInt64);
    // Element (h, w) of plane p: row-major p*6 + h*3 + w; column-major p*6 + w*2 + h.
    const std::vector<double> want = order == 0 ? std::vector<double>{1, 1, 6, 11} : std::vector<double>{2, 2, 6, 11};
    expect_values((*r)[1], want, {1, 2, 1, 2});
  }
}

TEST(MaxPool, IntegerAndHalfTypes) {
  const Tensor x = Tensor::from_vector<int8_t>({-5, -3, -7, -1}, {1, 1, 4});
  auto r = run_node(make_node("MaxPool", 1, 1, 12, {{"kernel_shape", Ints{2}}}), {x});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].dtype(), DataType::kInt8);
  expect_values((*r)[0], {-3, -3, -1}, {1, 1, 3});
  EXPECT_FALSE(run_node(make_node("MaxPool", 1, 1, 11, {{"kernel_shape", Ints{2}}}), {x}).ok());  // int8 from opset 12
  EXPECT_FALSE(run_node(make_node("AveragePool", 1, 1, 12, {{"kernel_shape", Ints{2}}}), {x}).ok());
  const Tensor h = Tensor::from_vector<float>({1, 2, 3, 4}, {1, 1, 4}).cast(DataType::kFloat16);
  auto a = run_node(make_node("AveragePool", 1, 1, 11, {{"kernel_shape", Ints{2}}}), {h});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)[0].dtype(), DataType::kFloat16);
  expect_values((*a)[0], {1.5, 2.5, 3.5}, {1, 1, 3});
}

TEST(LpPool, FloatAndIntegerOrders) {
  const Tensor x = Tensor::from_vector<float>({3, -4, 0, 1}, {1, 1, 4});
  auto p2 = run_node(make_node("LpPool", 1, 1, 11, {{"kernel_shape", Ints{2}}, {"p", int64_t{2}}}), {x});
  ASSERT_TRUE(p2.ok());
  expect_values((*p2)[0], {5, 4, 1}, {1, 1, 3});
  auto p1 = run_node(make_node("LpPool", 1, 1, 1, {{"kernel_shape", Ints{2}}, {"p", 1.0f}}), {x});
  ASSERT_TRUE(p1.ok());
  expect_values((*p1)[0], {7, 4, 1}, {1, 1, 3});
  auto g = run_node(make_node("GlobalLpPool", 1, 1, 2, {{"p", int64_t{3}}}), {x});
  ASSERT_TRUE(g.ok());
  expect_values((*g)[0], {std::cbrt(27.0 + 64.0 + 1.0)}, {1, 1, 1});
  EXPECT_FALSE(run_node(make_node("LpPool", 1, 1, 11, {{"kernel_shape", Ints{2}}, {"p", int64_t{0}}}), {x}).ok());
}

TEST(GlobalPool, AverageAndMaxKeepRank) {
  const Tensor x = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 2, 1, 2});
  auto avg = run_node(make_node("GlobalAveragePool", 1, 1), {x});
  ASSERT_TRUE(avg.ok());
  expect_values((*avg)[0], {2.5, 6.5}, {1, 2, 1, 1, 1});
  auto mx = run_node(make_node("GlobalMaxPool", 1, 1), {x.cast(DataType::kFloat32)});
  ASSERT_TRUE(mx.ok());
  expect_values((*mx)[0], {4, 8}, {1, 2, 1, 1, 1});
  EXPECT_FALSE(run_node(make_node("GlobalAveragePool", 1, 1), {Tensor::from_vector<float>({1, 2}, {1, 2})}).ok());
}

TEST(Pool, RejectsBadAttributes) {
  const Tensor x = random_input({1, 1, 4, 4}, 3);
  auto pool = [&](Attrs attrs) { return run_node(make_node("MaxPool", 1, 1, 12, std::move(attrs)), {x}).ok(); };
  EXPECT_FALSE(pool({}));                                                             // kernel_shape missing
  EXPECT_FALSE(pool({{"kernel_shape", Ints{2}}}));                                    // wrong length
  EXPECT_FALSE(pool({{"kernel_shape", Ints{5, 5}}}));                                 // larger than input
  EXPECT_FALSE(pool({{"kernel_shape", Ints{2, 2}}, {"pads", Ints{1, 1}}}));           // pads length
  EXPECT_FALSE(pool({{"kernel_shape", Ints{2, 2}}, {"pads", Ints{-1, 0, 0, 0}}}));    // negative pad
  EXPECT_FALSE(pool({{"kernel_shape", Ints{2, 2}}, {"strides", Ints{0, 1}}}));        // zero stride
  EXPECT_FALSE(pool({{"kernel_shape", Ints{2, 2}}, {"storage_order", int64_t{2}}}));  // bad storage order
  EXPECT_FALSE(pool({{"kernel_shape", Ints{2, 2}}, {"auto_pad", std::string("X")}}));
  EXPECT_FALSE(run_node(make_node("MaxPool", 1, 1, 12, {{"kernel_shape", Ints{2}}}), {random_input({4, 4}, 1)}).ok());
}

TEST(MaxUnpool, InvertsMaxPoolIndices) {
  const Tensor x = random_input({2, 3, 4, 6}, 9);
  auto pooled = run_node(make_node("MaxPool", 1, 2, 12, {{"kernel_shape", Ints{2, 2}}, {"strides", Ints{2, 2}}}), {x});
  ASSERT_TRUE(pooled.ok());
  auto un = run_node(make_node("MaxUnpool", 2, 1, 11, {{"kernel_shape", Ints{2, 2}}, {"strides", Ints{2, 2}}}),
                     {(*pooled)[0], (*pooled)[1]});
  ASSERT_TRUE(un.ok()) << un.status().to_string();
  const Tensor& y = (*un)[0];
  ASSERT_EQ(y.shape(), x.shape());
  int64_t nonzero = 0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    const float v = y.data<float>()[i];
    if (v != 0.0f) {
      ++nonzero;
      EXPECT_EQ(v, x.data<float>()[i]);
    }
  }
  EXPECT_EQ(nonzero, (*pooled)[0].numel());
  // With output_shape the unpooled block sits at the start of each axis.
  auto big = run_node(make_node("MaxUnpool", 3, 1, 11, {{"kernel_shape", Ints{2, 2}}, {"strides", Ints{2, 2}}}),
                      {(*pooled)[0], (*pooled)[1], Tensor::from_vector<int64_t>({2, 3, 5, 7}, {4})});
  ASSERT_TRUE(big.ok()) << big.status().to_string();
  ASSERT_EQ((*big)[0].shape(), (Shape{2, 3, 5, 7}));
  EXPECT_EQ((*big)[0].data<float>()[((1 * 3 + 2) * 5 + 3) * 7 + 5], y.data<float>()[((1 * 3 + 2) * 4 + 3) * 6 + 5]);
  // Out-of-range indices and too-small output shapes are errors.
  const Tensor bad_idx = Tensor::from_vector<int64_t>({0, 99}, {1, 1, 1, 2});
  EXPECT_FALSE(run_node(make_node("MaxUnpool", 2, 1, 11, {{"kernel_shape", Ints{2, 2}}, {"strides", Ints{2, 2}}}),
                        {random_input({1, 1, 1, 2}, 1), bad_idx})
                   .ok());
  EXPECT_FALSE(run_node(make_node("MaxUnpool", 3, 1, 11, {{"kernel_shape", Ints{2, 2}}, {"strides", Ints{2, 2}}}),
                        {(*pooled)[0], (*pooled)[1], Tensor::from_vector<int64_t>({2, 3, 3, 6}, {4})})
                   .ok());
}

TEST(MaxRoiPool, PoolsEachRegion) {
  Tensor x(DataType::kFloat32, {1, 1, 4, 4});
  for (int64_t i = 0; i < 16; ++i) x.data<float>()[i] = static_cast<float>(i);
  // Region x1=0,y1=0,x2=3,y2=3 (the whole image) and region x1=1,y1=1,x2=2,y2=2, each pooled to 2x2.
  const Tensor rois = Tensor::from_vector<float>({0, 0, 0, 3, 3, 0, 1, 1, 2, 2}, {2, 5});
  auto r = run_node(make_node("MaxRoiPool", 2, 1, 1, {{"pooled_shape", Ints{2, 2}}}), {x, rois});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  expect_values((*r)[0], {5, 7, 13, 15, 5, 6, 9, 10}, {2, 1, 2, 2});
  const Tensor bad = Tensor::from_vector<float>({3, 0, 0, 1, 1}, {1, 5});
  EXPECT_FALSE(run_node(make_node("MaxRoiPool", 2, 1, 1, {{"pooled_shape", Ints{2, 2}}}), {x, bad}).ok());
}

}  // namespace
}  // namespace deskml
