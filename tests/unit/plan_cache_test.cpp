// The on-disk plan cache: the model codec round-trips every part of the IR and
// refuses malformed bytes; a second load maps the cached plan and its packed
// weights and computes the same outputs; anything that changes the plan (the
// model's bytes, the options) misses; damaged or unwritable caches only cost
// the speed-up; offered packed weights are used only for exactly their layout.
#include "plan_cache/plan_cache.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>

#include "kernels/cpu/dnnl_context.hpp"
#include "kernels/cpu/prepacked_weights.hpp"
#include "plan_cache/model_codec.hpp"
#include "runtime/session.hpp"
#include "serving_models.hpp"

namespace deskml {
namespace {

namespace fs = std::filesystem;
using runtime::PlanCacheReport;
using serving::testing::random_tensor;
using serving::testing::TempDir;
using serving::testing::write_file;
namespace detail = serving::testing::detail;

// x float[N,16,12,12] -> Conv 3x3 (32 channels, bias) -> Relu -> Conv 1x1 (16) -> y.
std::string conv_model(uint32_t seed) {
  auto m = detail::new_model();
  auto* g = m.mutable_graph();
  detail::add_value(g->mutable_input(), "x", {-1, 16, 12, 12});
  detail::add_value(g->mutable_output(), "y", {-1, 16, 12, 12});
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-0.2f, 0.2f);
  auto values = [&](size_t n) {
    std::vector<float> v(n);
    for (float& f : v) f = dist(rng);
    return v;
  };
  detail::add_initializer(g, "w1", {32, 16, 3, 3}, values(32 * 16 * 9));
  detail::add_initializer(g, "b1", {32}, values(32));
  detail::add_initializer(g, "w2", {16, 32, 1, 1}, values(16 * 32));
  detail::add_node(g, "Conv", {"x", "w1", "b1"}, {"h"});
  auto* pads = g->mutable_node(0)->add_attribute();
  pads->set_name("pads");
  pads->set_type(onnx::AttributeProto::INTS);
  for (int i = 0; i < 4; ++i) pads->add_ints(1);
  detail::add_node(g, "Relu", {"h"}, {"r"});
  detail::add_node(g, "Conv", {"r", "w2"}, {"y"});
  return m.SerializeAsString();
}

runtime::SessionOptions cached_options() {
  runtime::SessionOptions o;
  o.threads = serving::testing::test_threads();
  o.plan_cache = true;
  return o;
}

Tensor run_once(const runtime::Session& s, const Tensor& x) {
  auto out = s.run(std::vector<std::pair<std::string, Tensor>>{{"x", x}});
  EXPECT_TRUE(out.ok()) << out.status().to_string();
  return out.ok() ? (*out)[0].second : Tensor();
}

void expect_same(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.shape(), b.shape());
  for (int64_t i = 0; i < a.numel(); ++i) {
    ASSERT_NEAR(a.data<float>()[i], b.data<float>()[i], 1e-5f * (1.f + std::abs(b.data<float>()[i]))) << i;
  }
}

// Loads `model`, waits for the cache file, and says what the cache did.
std::unique_ptr<runtime::Session> load(const fs::path& model, const runtime::SessionOptions& o,
                                       PlanCacheReport::Use want, std::string* detail = nullptr) {
  auto s = runtime::Session::load(model, o);
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  if (!s.ok()) return nullptr;
  const PlanCacheReport r = (*s)->plan_cache_report();
  PlanCacheReport expected;
  expected.use = want;
  EXPECT_STREQ(r.use_name(), expected.use_name()) << r.detail;
  if (detail) *detail = r.detail;
  return std::move(s).value();
}

TEST(PlanCache, SecondLoadMapsThePlanAndItsPackedWeights) {
  TempDir dir;
  const fs::path model = dir.path() / "m.onnx";
  write_file(model, conv_model(1));
  const Tensor x = random_tensor({2, 16, 12, 12}, 3);
  runtime::SessionOptions plain = cached_options();
  plain.plan_cache = false;
  Tensor want;
  {
    kernels::cpu::PackRecorder packs;
    want = run_once(*load(model, plain, PlanCacheReport::Use::kOff), x);
    EXPECT_FALSE(packs.take().empty());  // without the cache the warm-up packs the convolutions' weights
  }
  EXPECT_FALSE(fs::exists(model.string() + ".deskml-plan"));

  auto first = load(model, cached_options(), PlanCacheReport::Use::kWritten);
  ASSERT_TRUE(fs::exists(model.string() + ".deskml-plan"));
  expect_same(run_once(*first, x), want);

  kernels::cpu::PackRecorder second_packs;
  auto second = load(model, cached_options(), PlanCacheReport::Use::kHit);
  // Batch 1 (the warm-up's) packs nothing: the mapped copies are taken.
  (void)run_once(*second, random_tensor({1, 16, 12, 12}, 4));
  EXPECT_TRUE(second_packs.take().empty());
  expect_same(run_once(*second, x), want);
  // The optimized graph came back as it was: the same nodes, no re-optimisation.
  ASSERT_EQ(second->model().graph.nodes.size(), first->model().graph.nodes.size());
  for (size_t i = 0; i < first->model().graph.nodes.size(); ++i) {
    EXPECT_EQ(second->model().graph.nodes[i].op_type, first->model().graph.nodes[i].op_type);
  }
  // Several sessions may hold one mapping; it outlives the first to go.
  auto third = load(model, cached_options(), PlanCacheReport::Use::kHit);
  second.reset();
  expect_same(run_once(*third, x), want);
}

TEST(PlanCache, AnotherModelOrOtherOptionsMissAndRewrite) {
  TempDir dir;
  const fs::path model = dir.path() / "m.onnx";
  write_file(model, conv_model(1));
  const Tensor x = random_tensor({1, 16, 12, 12}, 5);
  (void)load(model, cached_options(), PlanCacheReport::Use::kWritten);
  // Same size, other weights: the hash of the bytes decides.
  write_file(model, conv_model(2));
  runtime::SessionOptions plain = cached_options();
  plain.plan_cache = false;
  const Tensor want = run_once(*load(model, plain, PlanCacheReport::Use::kOff), x);
  expect_same(run_once(*load(model, cached_options(), PlanCacheReport::Use::kWritten), x), want);
  expect_same(run_once(*load(model, cached_options(), PlanCacheReport::Use::kHit), x), want);
  // Options that change the optimized graph are part of the key.
  runtime::SessionOptions other = cached_options();
  other.channels_last = false;
  expect_same(run_once(*load(model, other, PlanCacheReport::Use::kWritten), x), want);
  expect_same(run_once(*load(model, other, PlanCacheReport::Use::kHit), x), want);
  (void)load(model, cached_options(), PlanCacheReport::Use::kWritten);
}

TEST(PlanCache, DamagedFilesAreIgnoredAndReplaced) {
  TempDir dir;
  const fs::path model = dir.path() / "m.onnx";
  const fs::path plan = model.string() + ".deskml-plan";
  write_file(model, conv_model(1));
  const Tensor x = random_tensor({1, 16, 12, 12}, 6);
  const Tensor want = run_once(*load(model, cached_options(), PlanCacheReport::Use::kWritten), x);
  std::string bytes;
  {
    std::ifstream in(plan, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_GT(bytes.size(), 4096u);
  const size_t header = bytes.find("\nmodel ");  // the key's last line, then the sections
  ASSERT_NE(header, std::string::npos);
  struct Damage {
    const char* what;
    std::string bytes;
  };
  std::string flipped = bytes;
  flipped[header + 120] ^= 0x5a;  // inside the checksummed structure
  std::vector<Damage> damages = {{"truncated", bytes.substr(0, bytes.size() / 2)},
                                 {"cut in the header", bytes.substr(0, 12)},
                                 {"flipped byte", flipped},
                                 {"not a plan", std::string(100, 'x')},
                                 {"empty", ""}};
  for (const Damage& d : damages) {
    SCOPED_TRACE(d.what);
    write_file(plan, d.bytes);
    std::string detail;
    auto s = load(model, cached_options(), PlanCacheReport::Use::kWritten, &detail);
    expect_same(run_once(*s, x), want);
    // The next load finds the rewritten file.
    expect_same(run_once(*load(model, cached_options(), PlanCacheReport::Use::kHit), x), want);
  }
}

TEST(PlanCache, AFolderItCannotWriteOnlyCostsTheSpeedUp) {
  TempDir dir;
  const fs::path model = dir.path() / "m.onnx";
  write_file(model, conv_model(1));
  runtime::SessionOptions o = cached_options();
  o.plan_cache_dir = dir.path() / "no" / "such" / "folder";
  std::string detail;
  auto s = load(model, o, PlanCacheReport::Use::kNotWritten, &detail);
  EXPECT_NE(detail.find("cannot write the plan cache"), std::string::npos) << detail;
  (void)run_once(*s, random_tensor({1, 16, 12, 12}, 7));
  // A folder of its own: files named after the model's path, not beside it.
  o.plan_cache_dir = dir.path() / "plans";
  fs::create_directories(o.plan_cache_dir);
  (void)load(model, o, PlanCacheReport::Use::kWritten);
  (void)load(model, o, PlanCacheReport::Use::kHit);
  EXPECT_FALSE(fs::exists(model.string() + ".deskml-plan"));
  EXPECT_EQ(runtime::PlanCacheReport{}.use_name(), std::string("off"));
}

TEST(PlanCache, ModelsWithExternalDataAreNotCached) {
  TempDir dir;
  const fs::path model = dir.path() / "m.onnx";
  auto m = detail::new_model();
  auto* g = m.mutable_graph();
  detail::add_value(g->mutable_input(), "x", {-1, 4});
  detail::add_value(g->mutable_output(), "y", {-1, 4});
  auto* t = g->add_initializer();
  t->set_name("a");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(4);
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* kv = t->add_external_data();
  kv->set_key("location");
  kv->set_value("a.bin");
  const float a[4] = {1, 2, 3, 4};
  write_file(dir.path() / "a.bin", std::string(reinterpret_cast<const char*>(a), sizeof(a)));
  detail::add_node(g, "Mul", {"x", "a"}, {"y"});
  write_file(model, m.SerializeAsString());
  std::string detail_text;
  (void)load(model, cached_options(), PlanCacheReport::Use::kNotWritten, &detail_text);
  EXPECT_NE(detail_text.find("external data"), std::string::npos) << detail_text;
  EXPECT_FALSE(fs::exists(model.string() + ".deskml-plan"));
}

// A plan file is untrusted input like a model file: declared shapes beyond every
// limit (found by fuzz_plan_cache: the warm-up's element count overflowed and
// threw past Session::load) give a session or a Status, never an exception.
TEST(PlanCache, HostileDeclaredShapesComeBackAsAStatus) {
  TempDir dir;
  const fs::path model = dir.path() / "m.onnx";
  write_file(model, conv_model(1));
  const runtime::SessionOptions o = cached_options();
  auto key = runtime::plan_cache_key(model, o);
  ASSERT_TRUE(key.ok()) << key.status().to_string();
  for (const int64_t huge : {int64_t{1} << 43, int64_t{1} << 62, int64_t{3037000500}}) {
    graph::Model m;
    m.ir_version = 8;
    m.opsets = {{"", 17}};
    graph::ValueInfo x{"x", {}, ""};
    x.type.dtype = DataType::kFloat32;
    x.type.shape = std::vector<graph::Dim>{graph::Dim::of(2), graph::Dim::of(huge), graph::Dim::of(huge)};
    m.graph.inputs = {x};
    m.graph.outputs = {x};
    m.graph.outputs[0].name = "y";
    m.graph.nodes.push_back({"r", "Relu", "", 17, {"x"}, {"y"}, {}});
    ASSERT_TRUE(plan_cache::write_plan(plan_cache::plan_path(model), *key, m, {}).ok());
    Result<std::unique_ptr<runtime::Session>> s = Status();
    EXPECT_NO_THROW(s = runtime::Session::load(model, o));
    if (s.ok()) {
      EXPECT_STREQ((*s)->plan_cache_report().use_name(), "hit");
      auto run = (*s)->run(std::vector<std::pair<std::string, Tensor>>{{"x", random_tensor({2, 1, 1}, 1)}});
      EXPECT_FALSE(run.ok());  // the fed shape disagrees with the declared one
    }
  }
}

// A model touching every kind of attribute, nested graphs, string and empty tensors.
graph::Model every_kind_model() {
  graph::Model m;
  m.ir_version = 9;
  m.opsets = {{"", 17}, {"deskml", 1}};
  m.producer_name = "p";
  m.producer_version = "v";
  m.metadata = {{"k", "v"}, {"empty", ""}};
  auto sub = std::make_shared<graph::Graph>();
  sub->name = "body";
  sub->nodes.push_back({"n", "Identity", "", 17, {"a"}, {"b"}, {}});
  sub->initializers["c"] = Tensor::from_vector<int64_t>({1, 2, 3}, {3});
  graph::Graph& g = m.graph;
  g.name = "main";
  graph::Node n{"all", "Custom", "deskml", 1, {"x", "", "w"}, {"y"}, {}};
  n.attributes["f"] = 1.5f;
  n.attributes["i"] = int64_t{-7};
  n.attributes["s"] = std::string("text\0with nul", 13);
  n.attributes["t"] = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2});
  n.attributes["g"] = graph::GraphPtr(sub);
  n.attributes["fs"] = std::vector<float>{0.5f, -1.f};
  n.attributes["is"] = std::vector<int64_t>{1, -2, 3};
  n.attributes["ss"] = std::vector<std::string>{"a", ""};
  n.attributes["ts"] = std::vector<Tensor>{Tensor::scalar<int32_t>(5), Tensor(DataType::kFloat32, {0, 3})};
  n.attributes["gs"] = std::vector<graph::GraphPtr>{sub, sub};
  g.nodes.push_back(n);
  graph::ValueInfo x{"x", {}, "the input"};
  x.type.dtype = DataType::kFloat32;
  x.type.shape = std::vector<graph::Dim>{graph::Dim::named("batch"), graph::Dim::of(3), graph::Dim{}};
  g.inputs.push_back(x);
  graph::ValueInfo y{"y", {}, ""};
  y.type.kind = graph::ValueType::Kind::kSequence;
  y.type.dtype = DataType::kInt64;
  y.type.optional = true;
  g.outputs.push_back(y);
  Tensor names(DataType::kString, {2});
  names.data<std::string>()[0] = "one";
  names.data<std::string>()[1] = "two";
  g.initializers["names"] = names;
  g.initializers["w"] = Tensor::from_vector<double>({1.0, 2.0}, {2});
  g.value_types["h"] = x.type;
  return m;
}

// encode_model's bytes with their blob area copied into one aligned buffer.
struct Encoded {
  std::string meta;
  std::shared_ptr<std::vector<std::byte>> blob_buffer;
  plan_cache::BlobArea area() const {
    return {blob_buffer->data(), blob_buffer->size(), std::shared_ptr<void>(blob_buffer, blob_buffer->data())};
  }
};

Encoded encode(const graph::Model& m) {
  Encoded e;
  plan_cache::BlobLayout blobs;
  plan_cache::encode_model(m, blobs, e.meta);
  // A vector's data is aligned for max_align_t only; the codec checks offsets, not addresses.
  e.blob_buffer = std::make_shared<std::vector<std::byte>>(blobs.total());
  for (const auto& span : blobs.spans()) std::memcpy(e.blob_buffer->data() + span.offset, span.data, span.size);
  return e;
}

TEST(PlanCacheCodec, RoundTripsEveryPartOfTheModel) {
  const graph::Model m = every_kind_model();
  const Encoded e = encode(m);
  size_t consumed = 0;
  auto back = plan_cache::decode_model(e.meta, e.area(), &consumed);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(consumed, e.meta.size());
  EXPECT_EQ(back->ir_version, 9);
  EXPECT_EQ(back->opsets, m.opsets);
  EXPECT_EQ(back->metadata, m.metadata);
  EXPECT_EQ(back->producer_version, "v");
  const graph::Graph& g = back->graph;
  ASSERT_EQ(g.nodes.size(), 1u);
  const graph::Node& n = g.nodes[0];
  EXPECT_EQ(n.inputs, (std::vector<std::string>{"x", "", "w"}));
  EXPECT_EQ(n.domain, "deskml");
  EXPECT_EQ(n.attr_float("f", 0), 1.5f);
  EXPECT_EQ(n.attr_int("i", 0), -7);
  EXPECT_EQ(n.attr_string("s"), std::string("text\0with nul", 13));
  EXPECT_EQ(n.attr_tensor("t")->values<float>()[3], 4.f);
  EXPECT_EQ(n.attr_graph("g")->initializers.at("c").values<int64_t>()[2], 3);
  EXPECT_EQ(n.attr_graph("g")->nodes[0].op_type, "Identity");
  EXPECT_EQ(n.attr_floats("fs"), (std::vector<float>{0.5f, -1.f}));
  EXPECT_EQ(n.attr_ints("is"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(n.attr_strings("ss"), (std::vector<std::string>{"a", ""}));
  const auto& ts = std::get<std::vector<Tensor>>(n.attributes.at("ts"));
  EXPECT_EQ(ts[0].values<int32_t>()[0], 5);
  EXPECT_EQ(ts[1].shape(), (Shape{0, 3}));
  EXPECT_EQ(std::get<std::vector<graph::GraphPtr>>(n.attributes.at("gs")).size(), 2u);
  EXPECT_EQ(g.inputs[0].type.to_string(), m.graph.inputs[0].type.to_string());
  EXPECT_EQ(g.inputs[0].doc, "the input");
  EXPECT_EQ(g.outputs[0].type.kind, graph::ValueType::Kind::kSequence);
  EXPECT_TRUE(g.outputs[0].type.optional);
  EXPECT_EQ(g.initializers.at("names").values<std::string>()[1], "two");
  EXPECT_EQ(g.initializers.at("w").values<double>()[1], 2.0);
  // Numbers are views of the blob area, not copies.
  const auto* w = static_cast<const std::byte*>(g.initializers.at("w").raw_data());
  EXPECT_TRUE(w >= e.blob_buffer->data() && w + 16 <= e.blob_buffer->data() + e.blob_buffer->size());
  EXPECT_EQ(g.value_types.at("h").to_string(), m.graph.value_types.at("h").to_string());
  // The same model gives the same bytes (maps are written in name order).
  EXPECT_EQ(encode(*back).meta, e.meta);
}

TEST(PlanCacheCodec, EveryTruncationAndStrayByteIsAnErrorNotACrash) {
  const Encoded e = encode(every_kind_model());
  for (size_t n = 0; n < e.meta.size(); ++n) {
    auto r = plan_cache::decode_model(std::string_view(e.meta).substr(0, n), e.area());
    ASSERT_FALSE(r.ok()) << n;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidModel) << n;
  }
  // Byte changes either decode to some model or fail cleanly (the sanitizer builds check the "cleanly").
  std::mt19937 rng(11);
  int failures = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bytes = e.meta;
    bytes[rng() % bytes.size()] = static_cast<char>(rng());
    if (!plan_cache::decode_model(bytes, e.area()).ok()) ++failures;
  }
  EXPECT_GT(failures, 0);
  // A blob area smaller than the tensors claim is refused.
  plan_cache::BlobArea small = e.area();
  small.size = 8;
  EXPECT_FALSE(plan_cache::decode_model(e.meta, small).ok());
}

// Offered packed weights are used only for exactly the layouts they were made
// for, with the size those take; anything else is packed afresh.
TEST(PlanCache, OfferedPackedWeightsMustMatchTheirLayouts) {
  using dnnl::memory;
  namespace onednn = kernels::cpu::onednn;
  const memory::desc user({32, 16, 3, 3}, memory::data_type::f32, memory::format_tag::oihw);
  const memory::desc want({32, 16, 3, 3}, memory::data_type::f32, memory::format_tag::OIhw16i16o);
  const Tensor w = random_tensor({32, 16, 3, 3}, 9);
  const memory fresh = onednn::reorder_to(onednn::wrap(user, w), want);
  auto bytes_of = [](const memory::desc& md) {
    return std::string(reinterpret_cast<const char*>(&md.data), sizeof(md.data));
  };
  auto owner = std::make_shared<std::vector<float>>(want.get_size() / sizeof(float), 7.f);
  kernels::cpu::PackedCopy good{w.raw_data(), bytes_of(user), bytes_of(want), owner->data(), want.get_size(), {}};
  std::string garbage = bytes_of(want);
  for (size_t i = 0; i < garbage.size(); i += 7) garbage[i] = static_cast<char>(0xff);
  kernels::cpu::PackedCopy wrong_layout = good, wrong_size = good, garbled = good;
  wrong_layout.packed = bytes_of(user);
  wrong_size.size -= 4;
  garbled.packed = garbage;
  for (const auto* offered : {&wrong_layout, &wrong_size, &garbled}) {
    const std::shared_ptr<const void> keep(owner, owner->data());
    kernels::cpu::offer_prepacked({*offered}, keep);
    onednn::ReorderedWeights rw;
    const onednn::PackedWeights got = rw.get(w, user, want);
    EXPECT_NE(got.memory.get_data_handle(), owner->data());
    EXPECT_EQ(std::memcmp(got.memory.get_data_handle(), fresh.get_data_handle(), want.get_size()), 0);
  }
  {
    const std::shared_ptr<const void> keep(owner, owner->data());
    kernels::cpu::offer_prepacked({good}, keep);
    onednn::ReorderedWeights rw;
    EXPECT_EQ(rw.get(w, user, want).memory.get_data_handle(), owner->data());
  }
  // Once the owner is gone, the offer is gone with it.
  std::weak_ptr<std::vector<float>> watch = owner;
  onednn::ReorderedWeights before;
  const onednn::PackedWeights held = before.get(w, user, want);
  owner.reset();
  EXPECT_FALSE(watch.expired());  // the packed weights in use keep it alive
  EXPECT_EQ(held.memory.get_data_handle(), watch.lock()->data());
}

}  // namespace
}  // namespace deskml
