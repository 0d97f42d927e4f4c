// libFuzzer target for the plan cache's reading side: the input is a plan file's
// structure section (the encoded model, then the packed weights' list), wrapped
// in a valid header with the right key and checksum over a blob area of
// patterned bytes, so mutations reach the decoder instead of stopping at the
// checksum. Session::load then takes the real cache-hit path: decode, offer the
// packed copies, plan, warm up. A bad structure must come back as a Status (the
// model file beside it is not ONNX, so the fallback load fails cleanly too).
//
// Seeds: DESKML_FUZZ_SEED_DIR=DIR fuzz_plan_cache writes encoded models there and exits
// (tests/fuzz/run_fuzzer does this on first use).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "plan_cache/model_codec.hpp"
#include "plan_cache/plan_cache.hpp"
#include "runtime/session.hpp"

namespace {

namespace fs = std::filesystem;
using namespace deskml;

struct Files {
  fs::path dir, model, plan;
  std::string key;
};

Files& files() {
  static Files f = [] {
    Files made;
    const char* shm = fs::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
    made.dir = fs::path(shm) / ("deskml-fuzz-plan-" + std::to_string(::getpid()));
    fs::create_directories(made.dir);
    made.model = made.dir / "model.onnx";
    std::ofstream(made.model) << "not an onnx model";
    made.plan = plan_cache::plan_path(made.model);
    return made;
  }();
  static const bool cleanup = [] {
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(files().dir, ec);
    });
    return true;
  }();
  (void)cleanup;
  return f;
}

runtime::SessionOptions options() {
  runtime::SessionOptions o;
  o.threads = 1;
  o.plan_cache = true;
  return o;
}

// The blob area every input gets: 64 KiB of a pattern that decodes as varied floats and ints.
const plan_cache::BlobLayout& blobs() {
  static const std::string bytes = [] {
    std::string b(64 << 10, '\0');
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<char>((i * 2654435761u) >> 13);
    return b;
  }();
  static const plan_cache::BlobLayout layout = [] {
    plan_cache::BlobLayout l;
    l.add(bytes.data(), bytes.size());
    return l;
  }();
  return layout;
}

// A few models as the optimizer leaves them, encoded over blobs at their own offsets.
void write_seeds(const fs::path& dir) {
  fs::create_directories(dir);
  auto seed = [&](const std::string& name, const graph::Model& m) {
    plan_cache::BlobLayout layout;
    std::string structure;
    plan_cache::encode_model(m, layout, structure);
    plan_cache::put_u64(structure, 0);  // no packed copies
    std::ofstream(dir / name, std::ios::binary) << structure;
  };
  auto base = [] {
    graph::Model m;
    m.ir_version = 8;
    m.opsets = {{"", 17}, {"deskml", 1}};
    return m;
  };
  auto input = [](const std::string& name, Shape shape) {
    graph::ValueInfo vi{name, {}, ""};
    vi.type.dtype = DataType::kFloat32;
    std::vector<graph::Dim> dims;
    for (int64_t d : shape) dims.push_back(graph::Dim::of(d));
    vi.type.shape = dims;
    return vi;
  };
  {
    graph::Model m = base();
    m.graph.inputs = {input("x", {1, 4})};
    m.graph.outputs = {input("y", {1, 4})};
    m.graph.initializers["a"] = Tensor::from_vector<float>({1, 2, 3, 4}, {4});
    m.graph.nodes.push_back({"mul", "Mul", "", 17, {"x", "a"}, {"y"}, {}});
    seed("mul", m);
  }
  {
    graph::Model m = base();
    m.graph.inputs = {input("x", {1, 8, 6, 6})};
    m.graph.outputs = {input("y", {1, 16, 6, 6})};
    Tensor w(DataType::kFloat32, {16, 8, 3, 3});
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = static_cast<float>(i % 7) * 0.1f;
    m.graph.initializers["w"] = w;
    graph::Node conv{"conv", "FusedConv", "deskml", 1, {"x", "w"}, {"y"}, {}};
    conv.attributes["pads"] = std::vector<int64_t>{1, 1, 1, 1};
    conv.attributes["activation"] = std::string("Relu");
    m.graph.nodes.push_back(conv);
    seed("fused_conv", m);
  }
  {
    graph::Model m = base();
    m.graph.inputs = {input("x", {2, 3})};
    m.graph.outputs = {input("y", {2, 3})};
    graph::Node relu{"r", "Relu", "", 17, {"x"}, {"y"}, {}};
    m.graph.nodes.push_back(relu);
    m.graph.value_types["y"] = m.graph.outputs[0].type;
    seed("relu", m);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("DESKML_FUZZ_SEED_DIR")) {
    write_seeds(dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Files& f = files();
  static const runtime::SessionOptions o = options();
  // The key Session::load will compute: the plan written here is one it reads.
  static const std::string key = [&] {
    auto k = runtime::plan_cache_key(f.model, o);
    if (!k.ok()) std::abort();
    return *k;
  }();
  const std::string_view structure(reinterpret_cast<const char*>(data), size);
  if (!plan_cache::write_plan_file(f.plan, key, structure, blobs()).ok()) std::abort();
  auto session = runtime::Session::load(f.model, o);
  if (!session.ok() && session.status().message().empty()) std::abort();
  return 0;
}
