// The graph optimizer end to end: sessions at optimisation level 2 compute what
// level 0 does, on small realistic blocks (ResNet, MobileNet, EfficientNet,
// SqueezeNet, transformer pieces, pools between convolutions).
#include <gtest/gtest.h>

#include "kernels/cpu/elementwise_isa.hpp"
#include "optimizer/optimizer.hpp"
#include "optimizer_test_util.hpp"

namespace deskml {
namespace {

using namespace optimizer_test;  // NOLINT: test helpers

// ===========================================================================
// The whole pipeline: level 0 and level 2 agree on small realistic blocks.

TEST(OptimizerNumerics, ConvBatchNormRelu) {
  Builder b;
  b.input("x", dims({2, 8, 10, 10}));
  const std::string c = b.conv("x", 8, 16, 3, pads1());
  b.node("Relu", {b.batch_norm(c, 16)}, {"y"});
  b.output("y");
  Graph opt;
  ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), {{"x", b.random({2, 8, 10, 10}, -1, 1)}}, &opt));
  EXPECT_EQ(count_ops(opt, "BatchNormalization"), 0u) << op_list(opt);
  EXPECT_EQ(count_ops(opt, "Relu"), 0u) << op_list(opt);
  EXPECT_EQ(count_fused(opt, "FusedConv"), 1u) << op_list(opt);
}

// conv-bn-relu-conv-bn (+x) relu: the second conv takes the block input as its residual.
std::string resnet_block(Builder& b, const std::string& x, int64_t c) {
  const std::string a = b.op("Relu", {b.batch_norm(b.conv(x, c, c, 3, pads1(), false), c)});
  const std::string m = b.batch_norm(b.conv(a, c, c, 3, pads1(), false), c);
  return b.op("Relu", {b.op("Add", {m, x})});
}

TEST(OptimizerNumerics, ResNetBasicBlocks) {
  Builder b;
  b.input("x", dims({2, 16, 9, 9}));
  const std::string stem = b.op("Relu", {b.conv("x", 16, 16, 3, pads1())});
  const std::string r1 = resnet_block(b, stem, 16);
  const std::string r2 = resnet_block(b, r1, 16);
  // Downsampling block: 1x1 stride-2 projection on the shortcut.
  const std::string a =
      b.op("Relu", {b.batch_norm(b.conv(r2, 16, 24, 3, {{"pads", Ints{1, 1, 1, 1}}, {"strides", Ints{2, 2}}}), 24)});
  const std::string m = b.batch_norm(b.conv(a, 24, 24, 3, pads1()), 24);
  const std::string sc = b.batch_norm(b.conv(r2, 16, 24, 1, {{"strides", Ints{2, 2}}}), 24);
  const std::string s = b.op("Relu", {b.op("Add", {m, sc})});
  b.node("Flatten", {b.op("GlobalAveragePool", {s})}, {"y"});
  b.output("y");
  Graph opt;
  ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), {{"x", b.random({2, 16, 9, 9}, -1, 1)}}, &opt));
  EXPECT_EQ(count_ops(opt, "Add"), 0u) << op_list(opt);
  EXPECT_EQ(count_ops(opt, "Relu"), 0u) << op_list(opt);
  EXPECT_EQ(count_ops(opt, "BatchNormalization"), 0u) << op_list(opt);
  size_t residual = 0;
  for (const auto& n : opt.nodes) residual += n.op_type == "FusedConv" && !n.input(3).empty();
  EXPECT_EQ(residual, 3u) << op_list(opt);
  EXPECT_EQ(count_ops(opt, "Transpose"), 2u) << op_list(opt);
  // 16 channels, but no Concat: the blocked layout would buy nothing here.
  EXPECT_EQ(count_fused(opt, "Reorder"), 0u) << op_list(opt);
}

// ResNet-sized 3x3 layers (64 channels, enough output pixels) are where the
// Conv kernel takes Winograd's algorithm on CPUs oneDNN has it for; its results
// match the direct algorithm's and the unoptimised graph's, at two batch sizes
// (each its own primitives, the second built after the first ran).
TEST(OptimizerNumerics, WinogradMatchesDirectConvolution) {
  Builder b;
  b.input("x", {Dim::named("N"), Dim::of(64), Dim::of(20), Dim::of(20)});
  const std::string a = b.op("Relu", {b.conv("x", 64, 64, 3, pads1())});
  const std::string m = b.conv(a, 64, 64, 3, pads1());
  const std::string s = b.op("Relu", {b.op("Add", {m, "x"})});  // residual: the direct algorithm
  b.node("Relu", {b.conv(s, 64, 32, 3, pads1())}, {"y"});
  b.output("y");
  auto wino = make_session(b.model(), 2, true, /*winograd=*/true);
  ASSERT_TRUE(wino.ok()) << wino.status().to_string();
  auto direct = make_session(b.model(), 2, true, /*winograd=*/false);
  ASSERT_TRUE(direct.ok()) << direct.status().to_string();
  size_t marked = 0;
  for (const auto& n : (*wino)->model().graph.nodes) marked += n.attr_int("winograd", 0) != 0;
  EXPECT_EQ(marked, 3u) << op_list((*wino)->model().graph);
  for (const auto& n : (*direct)->model().graph.nodes) EXPECT_EQ(n.attr_int("winograd", 0), 0) << n.label();
  for (int64_t batch : {1, 3}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    const Feeds feeds = {{"x", b.random({batch, 64, 20, 20}, -1, 1)}};
    ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), feeds));
    const auto want = run_session(**direct, feeds);
    expect_close(want, run_session(**wino, feeds), "winograd");
    expect_close(want, run_session(**wino, feeds), "winograd, second run");
  }
}

// 256 channels at 14x14: from batch 2 oneDNN's Winograd weights (F(4x4)) are
// too large, and the kernel runs the batch image by image through the batch-1
// primitive (F(2x2)); the results still match the direct algorithm's.
TEST(OptimizerNumerics, WinogradImageByImageMatchesDirectConvolution) {
  Builder b;
  b.input("x", {Dim::named("N"), Dim::of(256), Dim::of(14), Dim::of(14)});
  b.node("Relu", {b.conv("x", 256, 256, 3, pads1())}, {"y"});
  b.output("y");
  auto wino = make_session(b.model(), 2, true, /*winograd=*/true);
  ASSERT_TRUE(wino.ok()) << wino.status().to_string();
  auto direct = make_session(b.model(), 2, true, /*winograd=*/false);
  ASSERT_TRUE(direct.ok()) << direct.status().to_string();
  for (int64_t batch : {1, 3, 2}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    const Feeds feeds = {{"x", b.random({batch, 256, 14, 14}, -1, 1)}};
    const auto want = run_session(**direct, feeds);
    expect_close(want, run_session(**wino, feeds), "winograd");
    expect_close(want, run_session(**wino, feeds), "winograd, second run");
  }
}

TEST(OptimizerNumerics, ResidualStillReadAfterTheFusedConv) {
  Builder b;
  b.input("x", dims({2, 8, 9, 9}));
  const std::string a = b.op("Relu", {b.conv("x", 8, 8, 3, pads1())});
  const std::string s = b.op("Add", {b.conv(a, 8, 8, 3, pads1()), a});  // a: residual ...
  b.node("Add", {s, a}, {"y"});                                         // ... and read again after
  b.output("y");
  ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), {{"x", b.random({2, 8, 9, 9}, -1, 1)}}));
}

TEST(OptimizerNumerics, ResidualIsTheConvInput) {
  Builder b;
  b.input("x", dims({2, 8, 9, 9}));
  const std::string a = b.op("Relu", {b.conv("x", 8, 8, 3, pads1())});
  b.node("Relu", {b.op("Add", {b.conv(a, 8, 8, 3, pads1()), a})}, {"y"});  // Conv(a) + a
  b.output("y");
  Graph opt;
  ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), {{"x", b.random({2, 8, 9, 9}, -1, 1)}}, &opt));
  EXPECT_EQ(count_ops(opt, "Add"), 0u) << op_list(opt);
}

TEST(OptimizerNumerics, ResidualIsAGraphInput) {
  Builder b;
  b.input("x", dims({2, 8, 9, 9}));
  b.node("Relu", {b.op("Add", {"x", b.conv("x", 8, 8, 3, pads1())})}, {"y"});
  b.output("y");
  const Feeds feeds = {{"x", b.random({2, 8, 9, 9}, -1, 1)}};
  const Tensor before = feeds[0].second.clone();
  ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), feeds));
  EXPECT_EQ(max_abs_diff(before, feeds[0].second), 0.0f) << "the caller's input tensor was written";
}

TEST(OptimizerNumerics, MobileNetInvertedResidualWithClip6) {
  Builder b;
  b.input("x", dims({2, 8, 12, 12}));
  const std::string e = b.clip(b.batch_norm(b.conv("x", 8, 24, 1, {}, false), 24), 0.0f, 6.0f);
  const std::string d = b.clip(
      b.batch_norm(b.conv(e, 24, 24, 3, {{"pads", Ints{1, 1, 1, 1}}, {"group", int64_t{24}}}, false), 24), 0.0f, 6.0f);
  const std::string p = b.batch_norm(b.conv(d, 24, 8, 1, {}, false), 8);
  const std::string r = b.op("Add", {"x", p});
  // A strided depthwise stage without residual.
  const std::string e2 = b.clip(b.conv(r, 8, 16, 1), 0.0f, 6.0f);
  const std::string d2 = b.clip(
      b.conv(e2, 16, 16, 3, {{"pads", Ints{1, 1, 1, 1}}, {"group", int64_t{16}}, {"strides", Ints{2, 2}}}), 0.0f, 6.0f);
  b.node("Conv", {d2, b.init("wlast", b.random({12, 16, 1, 1}, -0.25f, 0.25f))}, {"y"});
  b.output("y");
  Graph opt;
  ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), {{"x", b.random({2, 8, 12, 12}, -1, 1)}}, &opt));
  EXPECT_EQ(count_ops(opt, "Clip"), 0u) << op_list(opt);
  EXPECT_EQ(count_ops(opt, "Add"), 0u) << op_list(opt);
  EXPECT_EQ(count_fused(opt, "FusedConv"), 6u) << op_list(opt);
}

TEST(OptimizerNumerics, SiLUConvWithSqueezeExcite) {
  Builder b;
  b.input("x", dims({2, 16, 10, 10}));
  auto silu = [&](const std::string& v) { return b.op("Mul", {v, b.op("Sigmoid", {v})}); };
  const std::string f = silu(b.batch_norm(b.conv("x", 16, 16, 3, pads1(), false), 16));
  // Squeeze-excite: GAP -> 1x1 conv -> SiLU -> 1x1 conv -> Sigmoid -> Mul by [N,C,1,1].
  const std::string sq = b.op("GlobalAveragePool", {f});
  const std::string s1 = silu(b.conv(sq, 16, 4, 1));
  const std::string gate = b.op("Sigmoid", {b.conv(s1, 4, 16, 1)});
  const std::string scaled = b.op("Mul", {f, gate});
  b.node("Conv", {scaled, b.init("wp", b.random({8, 16, 1, 1}, -0.25f, 0.25f))}, {"y"});
  b.output("y");
  Graph opt;
  ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), {{"x", b.random({2, 16, 10, 10}, -1, 1)}}, &opt));
  EXPECT_EQ(count_ops(opt, "Sigmoid"), 0u) << op_list(opt);
  EXPECT_EQ(count_ops(opt, "Mul"), 1u) << op_list(opt);  // the gate
  EXPECT_EQ(count_fused(opt, "FusedConv"), 4u) << op_list(opt);
  EXPECT_EQ(count_fused(opt, "Swish"), 0u) << op_list(opt);  // both went into convs
}

// conv -> relu -> pool -> conv, with the pool's attributes given.
void check_pool_between_convs(const std::string& pool_op, Attrs pool_attrs, int64_t hw) {
  Builder b;
  b.input("x", dims({2, 8, hw, hw}));
  const std::string a = b.op("Relu", {b.conv("x", 8, 12, 3, pads1())});
  const std::string p = b.op(pool_op, {a}, std::move(pool_attrs));
  b.node("Conv", {b.op("Relu", {b.conv(p, 12, 12, 3, pads1())}), b.init("wl", b.random({8, 12, 1, 1}, -0.3f, 0.3f))},
         {"y"});
  b.output("y");
  Graph opt;
  ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), {{"x", b.random({2, 8, hw, hw}, -1, 1)}}, &opt));
  EXPECT_EQ(count_fused(opt, "Nhwc" + pool_op), 1u) << op_list(opt);
  EXPECT_EQ(count_ops(opt, "Transpose"), 2u) << op_list(opt);
}

TEST(OptimizerNumerics, MaxPoolWithPadsStridesAndCeilModeBetweenConvs) {
  // 10 wide: (10 + 2 - 3) / 2 leaves a partial window that ceil_mode keeps.
  check_pool_between_convs(
      "MaxPool",
      {{"kernel_shape", Ints{3, 3}}, {"strides", Ints{2, 2}}, {"pads", Ints{1, 1, 1, 1}}, {"ceil_mode", int64_t{1}}},
      10);
}

TEST(OptimizerNumerics, MaxPoolCeilModeLastWindowInPaddingBetweenConvs) {
  // 9 wide, k2 s2 p1: the ceil window would start in the right padding and is dropped.
  check_pool_between_convs(
      "MaxPool",
      {{"kernel_shape", Ints{2, 2}}, {"strides", Ints{2, 2}}, {"pads", Ints{1, 1, 1, 1}}, {"ceil_mode", int64_t{1}}},
      9);
}

TEST(OptimizerNumerics, AveragePoolExcludingPadBetweenConvs) {
  check_pool_between_convs("AveragePool",
                           {{"kernel_shape", Ints{3, 3}},
                            {"strides", Ints{2, 2}},
                            {"pads", Ints{1, 1, 1, 1}},
                            {"count_include_pad", int64_t{0}},
                            {"ceil_mode", int64_t{1}}},
                           10);
}

TEST(OptimizerNumerics, AveragePoolIncludingPadBetweenConvs) {
  check_pool_between_convs("AveragePool",
                           {{"kernel_shape", Ints{3, 3}},
                            {"strides", Ints{2, 2}},
                            {"pads", Ints{1, 0, 1, 2}},
                            {"count_include_pad", int64_t{1}}},
                           11);
}

TEST(OptimizerNumerics, AveragePoolIncludingPadWithCeilModeBetweenConvs) {
  check_pool_between_convs("AveragePool",
                           {{"kernel_shape", Ints{3, 3}},
                            {"strides", Ints{2, 2}},
                            {"pads", Ints{1, 1, 1, 1}},
                            {"count_include_pad", int64_t{1}},
                            {"ceil_mode", int64_t{1}}},
                           10);
}

TEST(OptimizerNumerics, SqueezeNetFireModulesWithConcat) {
  Builder b;
  b.input("x", dims({2, 16, 10, 10}));
  auto fire = [&](const std::string& in, int64_t cin, int64_t squeeze, int64_t expand) {
    const std::string s = b.op("Relu", {b.conv(in, cin, squeeze, 1)});
    const std::string e1 = b.op("Relu", {b.conv(s, squeeze, expand, 1)});
    const std::string e3 = b.op("Relu", {b.conv(s, squeeze, expand, 3, pads1())});
    return b.op("Concat", {e1, e3}, {{"axis", int64_t{1}}});
  };
  const std::string f1 = fire(b.op("Relu", {b.conv("x", 16, 16, 3, {{"strides", Ints{2, 2}}})}), 16, 4, 8);
  const std::string p =
      b.op("MaxPool", {f1}, {{"kernel_shape", Ints{3, 3}}, {"strides", Ints{2, 2}}, {"ceil_mode", int64_t{1}}});
  const std::string f2 = fire(p, 16, 4, 12);
  const std::string head = b.op("Relu", {b.conv(f2, 24, 10, 1)});
  b.node("Flatten", {b.op("GlobalAveragePool", {head})}, {"y"});
  b.output("y");
  Graph opt;
  ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), {{"x", b.random({2, 16, 10, 10}, -1, 1)}}, &opt));
  size_t nhwc_concats = 0;
  for (const auto& n : opt.nodes) nhwc_concats += n.op_type == "Concat" && n.attr_int("axis", 0) == 3;
  EXPECT_EQ(nhwc_concats, 2u) << op_list(opt);
  EXPECT_EQ(count_ops(opt, "Transpose"), 2u) << op_list(opt);
}

// Channel counts that are multiples of 16: the fire modules run in nChw16c, with
// two pools (a max, and an average whose padded cells do not count), a residual sum, a 3x3 expansion big enough for
// Winograd and a value read outside the region (a graph output) inside; the head (10 channels) stays NHWC.
TEST(OptimizerNumerics, FireModulesRunInTheBlockedLayout) {
  for (int64_t batch : {2, 1}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    Builder b;
    b.input("x", dims({batch, 32, 14, 14}));
    auto fire = [&](const std::string& in, int64_t cin, int64_t squeeze, int64_t expand) {
      const std::string s = b.op("Relu", {b.conv(in, cin, squeeze, 1)});
      const std::string e1 = b.op("Relu", {b.conv(s, squeeze, expand, 1)});
      const std::string e3 = b.op("Relu", {b.conv(s, squeeze, expand, 3, pads1())});
      return b.op("Concat", {e1, e3}, {{"axis", int64_t{1}}});
    };
    const std::string f1 = fire("x", 32, 48, 64);
    const std::string p = b.op("MaxPool", {f1}, {{"kernel_shape", Ints{3, 3}}, {"pads", Ints{1, 1, 1, 1}}});
    const std::string f2 = fire(p, 128, 48, 64);
    const std::string a = b.op("AveragePool", {f2}, {{"kernel_shape", Ints{3, 3}}, {"pads", Ints{1, 1, 1, 1}}});
    const std::string r = b.op("Relu", {b.op("Add", {b.conv(a, 128, 128, 1), f1})});
    b.node("Relu", {f2}, {"mid"});
    const std::string head = b.op("Relu", {b.conv(r, 128, 10, 1)});
    b.node("Flatten", {b.op("GlobalAveragePool", {head})}, {"y"});
    b.output("y");
    b.output("mid");
    Graph opt;
    ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), {{"x", b.random({batch, 32, 14, 14}, -1, 1)}}, &opt));
    if (!kernels::cpu::ew::has_avx512()) {  // the pass runs on AVX-512 CPUs only
      EXPECT_EQ(count_fused(opt, "Reorder"), 0u) << op_list(opt);
      continue;
    }
    size_t blocked_concats = 0, blocked_convs = 0, blocked_pools = 0;
    for (const auto& n : opt.nodes) {
      blocked_concats += n.op_type == "Concat" && n.attr_int("axis", 0) == 1;
      blocked_convs += n.op_type == "FusedConv" && n.attr_int("blocked", 0) == 16;
      blocked_pools += (n.op_type == "NhwcMaxPool" || n.op_type == "NhwcAveragePool") && n.attr_int("blocked", 0) == 16;
    }
    EXPECT_EQ(blocked_concats, 2u) << op_list(opt);
    EXPECT_EQ(blocked_convs, 7u) << op_list(opt);  // all but the head
    EXPECT_EQ(blocked_pools, 2u) << op_list(opt);  // MaxPool and AveragePool
    // In: x. Out: the head's input, and f2 for "mid" (its Relu runs blocked, then one more back).
    EXPECT_EQ(count_fused(opt, "Reorder"), 3u) << op_list(opt);
    // Where AVX-512 is missing (here: capped at AVX2), the regions stay NHWC.
    kernels::cpu::ew::cap_isa(kernels::cpu::ew::IsaCap::kAvx2);
    auto avx2 = make_session(b.model(), 2);
    kernels::cpu::ew::cap_isa(kernels::cpu::ew::IsaCap::kBest);
    ASSERT_TRUE(avx2.ok());
    EXPECT_EQ(count_fused((*avx2)->model().graph, "Reorder"), 0u) << op_list((*avx2)->model().graph);
  }
}

// A stem convolution of the image's 3 channels starts the blocked region,
// reading the NCHW input itself: no input transpose, no reorder into the region.
TEST(OptimizerNumerics, AStemConvolutionReadsTheNchwInputIntoTheBlockedRegion) {
  for (int64_t batch : {1, 2}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    Builder b;
    b.input("x", dims({batch, 3, 21, 21}));
    Attrs stem_attrs = pads1();
    stem_attrs["strides"] = Ints{2, 2};
    const std::string stem = b.op("Relu", {b.conv("x", 3, 32, 3, stem_attrs)});
    const std::string p = b.op("MaxPool", {stem}, {{"kernel_shape", Ints{3, 3}}, {"strides", Ints{2, 2}}});
    const std::string s = b.op("Relu", {b.conv(p, 32, 16, 1)});
    const std::string e1 = b.op("Relu", {b.conv(s, 16, 32, 1)});
    const std::string e3 = b.op("Relu", {b.conv(s, 16, 32, 3, pads1())});
    const std::string f = b.op("Concat", {e1, e3}, {{"axis", int64_t{1}}});
    const std::string head = b.op("Relu", {b.conv(f, 64, 10, 1)});
    b.node("Flatten", {b.op("GlobalAveragePool", {head})}, {"y"});
    b.output("y");
    Graph opt;
    ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), {{"x", b.random({batch, 3, 21, 21}, -1, 1)}}, &opt));
    if (!kernels::cpu::ew::has_avx512()) continue;  // the pass runs on AVX-512 CPUs only
    size_t stems = 0, blocked_convs = 0;
    for (const auto& n : opt.nodes) {
      // The stem and the max pool after it run as one node.
      stems += n.op_type == "FusedConvMaxPool" && n.attr_int("nchw_input", 0) == 1 && n.inputs[0] == "x" &&
               n.attr_ints("pool_kernel_shape") == Ints{3, 3} && n.attr_ints("pool_strides") == Ints{2, 2};
      blocked_convs += n.op_type == "FusedConv" && n.attr_int("blocked", 0) == 16;
    }
    EXPECT_EQ(stems, 1u) << op_list(opt);
    EXPECT_EQ(blocked_convs, 3u) << op_list(opt);  // all but the stem and the head
    EXPECT_EQ(count_fused(opt, "NhwcMaxPool"), 0u) << op_list(opt);
    EXPECT_EQ(count_ops(opt, "Transpose"), 1u) << op_list(opt);  // after the global pool only
    EXPECT_EQ(count_fused(opt, "Reorder"), 1u) << op_list(opt);  // out of the region, to the head
  }
}

TEST(OptimizerNumerics, MatMulAddErfGeluInBothPyTorchOrders) {
  Builder b;
  b.input("x", dims({2, 5, 16}));
  const std::string h1 = b.op("Add", {b.op("MatMul", {"x", b.init("w1", b.random({16, 32}, -0.25f, 0.25f))}),
                                      b.init("b1", b.random({32}, -0.2f, 0.2f))});
  const std::string g1 = erf_gelu(b, h1, /*half_first=*/true);  // x*0.5*(1+erf(x/sqrt2))
  const std::string h2 = b.op("Add", {b.init("b2", b.random({16}, -0.2f, 0.2f)),
                                      b.op("MatMul", {g1, b.init("w2", b.random({32, 16}, -0.2f, 0.2f))})});
  const std::string g2 = erf_gelu(b, h2, /*half_first=*/false);  // (x*(1+erf(x/sqrt2)))*0.5
  b.node("MatMul", {g2, b.init("w3", b.random({16, 4}, -0.25f, 0.25f))}, {"y"});
  b.output("y");
  Graph opt;
  ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), {{"x", b.random({2, 5, 16}, -2, 2)}}, &opt));
  EXPECT_EQ(count_ops(opt, "Erf"), 0u) << op_list(opt);
  EXPECT_EQ(count_fused(opt, "FusedMatMul"), 3u) << op_list(opt);
  size_t gelu = 0;
  for (const auto& n : opt.nodes) gelu += n.op_type == "FusedMatMul" && n.attr_string("activation") == "Gelu";
  EXPECT_EQ(gelu, 2u) << op_list(opt);
  EXPECT_EQ(opt.nodes.size(), 3u) << op_list(opt);
}

TEST(OptimizerNumerics, GemmTransBRelu) {
  Builder b;
  b.input("x", dims({4, 16}));
  const std::string h = b.op(
      "Relu",
      {b.op("Gemm", {"x", b.init("w1", b.random({24, 16}, -0.25f, 0.25f)), b.init("b1", b.random({24}, -0.2f, 0.2f))},
            {{"transB", int64_t{1}}})});
  const std::string h2 =
      b.op("Gemm", {h, b.init("w2", b.random({24, 8}, -0.25f, 0.25f)), b.init("b2", b.random({1, 8}, -0.2f, 0.2f))});
  b.node("Relu", {h2}, {"y"});
  b.output("y");
  Graph opt;
  ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), {{"x", b.random({4, 16}, -1, 1)}}, &opt));
  EXPECT_EQ(count_fused(opt, "FusedMatMul"), 2u) << op_list(opt);
  EXPECT_EQ(opt.nodes.size(), 2u) << op_list(opt);
}

TEST(OptimizerNumerics, OneDimensionalConv) {
  Builder b;
  b.input("x", dims({2, 8, 20}));
  const Attrs p1 = {{"pads", Ints{1, 1}}};
  const std::string a = b.op("Relu", {b.batch_norm(b.conv("x", 8, 12, 3, p1, false, 1), 12)});
  const std::string m = b.conv(a, 12, 12, 3, p1, true, 1);
  const std::string r = b.op("Relu", {b.op("Add", {m, a})});
  const std::string d = b.conv(r, 12, 8, 5, {{"strides", Ints{2}}, {"pads", Ints{2, 2}}}, true, 1);
  b.node("Sigmoid", {d}, {"y"});
  b.output("y");
  Graph opt;
  ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), {{"x", b.random({2, 8, 20}, -1, 1)}}, &opt));
  EXPECT_EQ(count_ops(opt, "Transpose"), 0u) << op_list(opt);
  EXPECT_EQ(count_fused(opt, "FusedConv"), 3u) << op_list(opt);
  EXPECT_EQ(count_ops(opt, "Add"), 0u) << op_list(opt);
}

TEST(OptimizerNumerics, DynamicBatchGivesTheSameRowsAtBatchOneAndThree) {
  Builder b;
  b.input("x", {Dim::named("N"), Dim::of(8), Dim::of(10), Dim::of(10)});
  const std::string stem = b.op("Relu", {b.batch_norm(b.conv("x", 8, 12, 3, pads1(), false), 12)});
  const std::string blk = resnet_block(b, stem, 12);
  const std::string p = b.op(
      "MaxPool", {blk},
      {{"kernel_shape", Ints{3, 3}}, {"strides", Ints{2, 2}}, {"pads", Ints{1, 1, 1, 1}}, {"ceil_mode", int64_t{1}}});
  const std::string f = b.op("Flatten", {b.op("GlobalAveragePool", {b.conv(p, 12, 16, 3, pads1())})});
  b.node("Gemm", {f, b.init("wg", b.random({5, 16}, -0.3f, 0.3f)), b.init("bg", b.random({5}, -0.1f, 0.1f))}, {"y"},
         {{"transB", int64_t{1}}});
  b.output("y");
  const graph::Model model = b.model();
  const Tensor x3 = b.random({3, 8, 10, 10}, -1, 1);
  Tensor x1(DataType::kFloat32, {1, 8, 10, 10});
  std::copy(x3.data<float>(), x3.data<float>() + x1.numel(), x1.data<float>());

  Graph opt;
  ASSERT_NO_FATAL_FAILURE(check_levels(model, {{"x", x3}}, &opt));
  ASSERT_NO_FATAL_FAILURE(check_levels(model, {{"x", x1}}));
  EXPECT_EQ(count_ops(opt, "Add"), 0u) << op_list(opt);  // the residual was fused despite the symbolic batch
  EXPECT_EQ(count_fused(opt, "FusedMatMul"), 1u) << op_list(opt);

  auto s = make_session(model, 2);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  // Alternate batch sizes on one session (cached primitives per shape).
  const auto y3 = run_session(**s, {{"x", x3}});
  const auto y1 = run_session(**s, {{"x", x1}});
  const auto y3b = run_session(**s, {{"x", x3}});
  ASSERT_EQ(y3.size(), 1u);
  ASSERT_EQ(y1.size(), 1u);
  ASSERT_EQ(y3[0].second.shape(), (Shape{3, 5}));
  ASSERT_EQ(y1[0].second.shape(), (Shape{1, 5}));
  for (int64_t j = 0; j < 5; ++j) {
    EXPECT_NEAR(y1[0].second.data<float>()[j], y3[0].second.data<float>()[j], kTolerance) << j;
  }
  EXPECT_EQ(max_abs_diff(y3[0].second, y3b[0].second), 0.0f);
}

TEST(OptimizerNumerics, EveryFusableActivationAfterConvAndMatMul) {
  const std::vector<std::pair<std::string, Attrs>> acts = {
      {"Relu", {}},      {"LeakyRelu", {{"alpha", 0.2f}}},
      {"Sigmoid", {}},   {"Tanh", {}},
      {"HardSwish", {}}, {"Elu", {{"alpha", 0.7f}}},
      {"Gelu", {}},      {"Gelu", {{"approximate", std::string("tanh")}}}};
  for (const auto& [act, attrs] : acts) {
    SCOPED_TRACE(act + (attrs.empty() ? "" : " with attributes"));
    {  // conv -> act -> conv -> act -> (+ residual) -> act
      Builder b;
      b.input("x", dims({2, 8, 9, 9}));
      const std::string a = b.op(act, {b.conv("x", 8, 8, 3, pads1())}, attrs);
      const std::string m = b.op(act, {b.conv(a, 8, 8, 3, pads1())}, attrs);  // the pre-activation
      b.node(act, {b.op("Add", {m, a})}, {"y"}, attrs);
      b.output("y");
      Graph opt;
      ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), {{"x", b.random({2, 8, 9, 9}, -3, 3)}}, &opt));
      EXPECT_EQ(count_ops(opt, act), 0u) << op_list(opt);
      EXPECT_EQ(count_ops(opt, "Add"), 0u) << op_list(opt);
    }
    {  // matmul + bias -> act
      Builder b;
      b.input("x", dims({3, 16}));
      const std::string m = b.op("MatMul", {"x", b.init("w", b.random({16, 12}, -0.5f, 0.5f))});
      b.node(act, {b.op("Add", {m, b.init("bias", b.random({12}, -0.5f, 0.5f))})}, {"y"}, attrs);
      b.output("y");
      Graph opt;
      ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), {{"x", b.random({3, 16}, -3, 3)}}, &opt));
      EXPECT_EQ(count_ops(opt, act), 0u) << op_list(opt);
      EXPECT_EQ(count_fused(opt, "FusedMatMul"), 1u) << op_list(opt);
    }
  }
}

TEST(OptimizerNumerics, ClipWithAttributeBoundsAtOpset10) {
  Builder b;
  b.opset = 10;
  b.input("x", dims({2, 8, 9, 9}));
  const std::string a = b.op("Clip", {b.conv("x", 8, 8, 3, pads1())}, {{"min", -0.5f}, {"max", 0.5f}});
  b.node("Clip", {b.conv(a, 8, 8, 3, pads1())}, {"y"}, {{"max", 0.25f}});
  b.output("y");
  Graph opt;
  ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), {{"x", b.random({2, 8, 9, 9}, -3, 3)}}, &opt));
  EXPECT_EQ(count_ops(opt, "Clip"), 0u) << op_list(opt);
}

TEST(OptimizerNumerics, ResidualIsAConstant) {
  Builder b;
  b.input("x", dims({1, 8, 6, 6}));
  const std::string k = b.init("res", b.random({1, 8, 6, 6}, -1, 1));
  b.node("Relu", {b.op("Add", {b.conv("x", 8, 8, 3, pads1()), k})}, {"y"});
  b.output("y");
  Graph opt;
  // check_levels runs level 2 twice: a constant taken as the in-place sum buffer would show.
  ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), {{"x", b.random({1, 8, 6, 6}, -1, 1)}}, &opt));
  EXPECT_EQ(count_ops(opt, "Add"), 0u) << op_list(opt);
}

TEST(OptimizerNumerics, SharedConvWeightsWithTwoBatchNorms) {
  Builder b;
  b.input("x", dims({2, 8, 9, 9}));
  const std::string w = b.init("w", b.random({8, 8, 3, 3}, -0.2f, 0.2f));
  const std::string a = b.op("Relu", {b.batch_norm(b.op("Conv", {"x", w}, pads1()), 8)});
  const std::string c = b.batch_norm(b.op("Conv", {a, w}, pads1()), 8);
  b.node("Add", {c, a}, {"y"});
  b.output("y");
  Graph opt;
  ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), {{"x", b.random({2, 8, 9, 9}, -1, 1)}}, &opt));
  EXPECT_EQ(count_ops(opt, "BatchNormalization"), 0u) << op_list(opt);
}

TEST(OptimizerNumerics, MatMulWithVectorInput) {
  Builder b;
  b.input("x", dims({16}));
  const std::string m = b.op("MatMul", {"x", b.init("w", b.random({16, 8}, -0.5f, 0.5f))});
  b.node("Relu", {b.op("Add", {m, b.init("bias", b.random({8}, -0.5f, 0.5f))})}, {"y"});
  b.output("y");
  Graph opt;
  ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), {{"x", b.random({16}, -1, 1)}}, &opt));
  EXPECT_EQ(count_fused(opt, "FusedMatMul"), 1u) << op_list(opt);
}

TEST(OptimizerNumerics, ConvAttributesAndWidePoolsSurviveFusionAndLayout) {
  Builder b;
  b.input("x", dims({2, 8, 11, 11}));
  const std::string a =
      b.op("LeakyRelu",
           {b.conv("x", 8, 16, 3,
                   {{"auto_pad", std::string("SAME_UPPER")}, {"strides", Ints{2, 2}}, {"group", int64_t{2}}}, false)},
           {{"alpha", 0.1f}});
  const std::string d =
      b.op("Elu", {b.conv(a, 16, 72, 3, {{"dilations", Ints{2, 2}}, {"pads", Ints{2, 1, 2, 1}}})}, {{"alpha", 0.5f}});
  const std::string p = b.op(
      "MaxPool", {d},
      {{"kernel_shape", Ints{2, 3}}, {"dilations", Ints{2, 1}}, {"pads", Ints{1, 1, 0, 1}}, {"strides", Ints{1, 2}}});
  const std::string gmax = b.op("GlobalMaxPool", {p});  // 72 channels: more than one 64-channel block
  const std::string gavg = b.op("GlobalAveragePool", {p});
  b.node("Concat", {gmax, gavg}, {"y"}, {{"axis", int64_t{-3}}});
  b.output("y");
  Graph opt;
  ASSERT_NO_FATAL_FAILURE(check_levels(b.model(), {{"x", b.random({2, 8, 11, 11}, -2, 2)}}, &opt));
  EXPECT_EQ(count_fused(opt, "NhwcMaxPool"), 1u) << op_list(opt);
  EXPECT_EQ(count_fused(opt, "NhwcGlobalMaxPool"), 1u) << op_list(opt);
  EXPECT_EQ(count_fused(opt, "NhwcGlobalAveragePool"), 1u) << op_list(opt);
  EXPECT_EQ(count_ops(opt, "Transpose"), 2u) << op_list(opt);
}

// Conv weights that are an input (not constant): the caller may refill the same
// tensor between runs, and every run must use the values it holds then.
TEST(OptimizerNumerics, ConvWeightsFedAsInputAreReadEachRun) {
  Builder b;
  b.input("x", dims({1, 16, 8, 8}));
  b.input("w", dims({16, 16, 3, 3}));
  b.node("Relu", {b.op("Conv", {"x", "w"}, pads1())}, {"y"});
  b.output("y");
  const Tensor x = b.random({1, 16, 8, 8}, -1, 1);
  Tensor w = b.random({16, 16, 3, 3}, -0.2f, 0.2f);
  for (int level : {0, 2}) {
    SCOPED_TRACE("level " + std::to_string(level));
    auto s = make_session(b.model(), level);
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    Tensor w_run = w.clone();
    const auto first = run_session(**s, {{"x", x}, {"w", w_run}});
    // Same tensor object, new contents.
    for (int64_t i = 0; i < w_run.numel(); ++i) w_run.data<float>()[i] = -w_run.data<float>()[i];
    const auto second = run_session(**s, {{"x", x}, {"w", w_run}});
    auto fresh = make_session(b.model(), level);
    ASSERT_TRUE(fresh.ok());
    const auto want = run_session(**fresh, {{"x", x}, {"w", w_run.clone()}});
    ASSERT_EQ(second.size(), 1u);
    ASSERT_EQ(want.size(), 1u);
    EXPECT_LE(max_abs_diff(want[0].second, second[0].second), kTolerance);
    EXPECT_GT(max_abs_diff(first[0].second, second[0].second), 0.0f);
  }
}

TEST(OptimizerNumerics, BinaryOpsWorkInPlaceOnlyOverValuesNobodyReadsLater) {
  // h's last reader is Mul (broadcast constant first, so Mul takes its input 1), m's is Add
  // (input 0); n is read again after Sub, and g is a graph output, so neither may be taken.
  Builder b;
  b.input("x", dims({2, 3, 4}));
  const Tensor c = b.random({4}, -1, 1), d = b.random({3, 1}, -1, 1);
  const std::string h = b.op("Relu", {"x"});
  const std::string m = b.op("Mul", {b.init("c", c), h});
  b.node("Add", {m, b.init("d", d)}, {"k"});
  const std::string n = b.op("Neg", {"x"});
  const std::string e = b.op("Sub", {n, b.scalar(0.5f)});
  b.node("Mul", {n, e}, {"f"});
  b.node("Sigmoid", {"x"}, {"g"});
  b.node("Add", {"g", b.scalar(1.0f)}, {"q"});
  for (const char* y : {"k", "f", "g", "q"}) b.output(y);
  const Tensor x = b.random({2, 3, 4}, -2, 2);
  for (int level : {0, 2}) {
    SCOPED_TRACE("level " + std::to_string(level));
    auto s = make_session(b.model(), level);
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    for (int run = 0; run < 3; ++run) {  // the third run replays the run arena's plan
      const auto out = run_session(**s, {{"x", x}});
      ASSERT_EQ(out.size(), 4u);
      for (int64_t i = 0; i < x.numel(); ++i) {
        const float v = x.data<float>()[i];
        const float cv = c.data<float>()[i % 4], dv = d.data<float>()[(i / 4) % 3];
        const float sig = 1.0f / (1.0f + std::exp(-v));
        EXPECT_NEAR(out[0].second.data<float>()[i], cv * std::max(v, 0.0f) + dv, 1e-6f) << i;
        EXPECT_NEAR(out[1].second.data<float>()[i], -v * (-v - 0.5f), 1e-5f) << i;
        EXPECT_NEAR(out[2].second.data<float>()[i], sig, 1e-6f) << i;
        EXPECT_NEAR(out[3].second.data<float>()[i], sig + 1.0f, 1e-6f) << i;
      }
    }
  }
}

}  // namespace
}  // namespace deskml
