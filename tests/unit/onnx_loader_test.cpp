// Model loading against hostile and broken input: every case must end in a clear
// Status (code and message), never a crash, a hang or an unbounded allocation.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/npy.hpp"
#include "graph/graph.hpp"
#include "model_harness.hpp"
#include "onnx/model_loader.hpp"
#include "onnx/onnx_pb.h"
#include "runtime/session.hpp"
#include "temp_dir.hpp"

namespace deskml {
namespace {

namespace fs = std::filesystem;
using onnx_import::load_model;
using onnx_import::load_model_from_bytes;
using runtime::Session;

// ---------------------------------------------------------------------------
// Helpers

::testing::AssertionResult HasStatus(const Status& st, StatusCode code, const std::string& fragment) {
  if (st.ok()) return ::testing::AssertionFailure() << "expected " << status_code_name(code) << ", got Ok";
  if (st.code() != code)
    return ::testing::AssertionFailure() << "expected " << status_code_name(code) << ", got " << st.to_string();
  if (st.message().find(fragment) == std::string::npos) {
    return ::testing::AssertionFailure() << "message lacks '" << fragment << "': " << st.to_string();
  }
  return ::testing::AssertionSuccess();
}

using test_support::TempDir;

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string float_bytes(const std::vector<float>& values) {
  std::string s(values.size() * sizeof(float), '\0');
  if (!values.empty()) std::memcpy(s.data(), values.data(), s.size());
  return s;
}

onnx::ModelProto new_model(int64_t opset = 17) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.set_producer_name("deskml-tests");
  auto* o = m.add_opset_import();
  o->set_domain("");
  o->set_version(opset);
  m.mutable_graph()->set_name("g");
  return m;
}

// dims: >= 0 fixed, -1 a symbolic "N"
void set_tensor_type(onnx::ValueInfoProto* vi, int32_t elem, const std::vector<int64_t>& dims) {
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem);
  auto* shape = tt->mutable_shape();
  for (int64_t d : dims) {
    auto* dim = shape->add_dim();
    if (d >= 0) {
      dim->set_dim_value(d);
    } else {
      dim->set_dim_param("N");
    }
  }
}

void add_input(onnx::GraphProto* g, const std::string& name, int32_t elem, const std::vector<int64_t>& dims) {
  auto* vi = g->add_input();
  vi->set_name(name);
  set_tensor_type(vi, elem, dims);
}

void add_output(onnx::GraphProto* g, const std::string& name, int32_t elem = onnx::TensorProto::FLOAT) {
  auto* vi = g->add_output();
  vi->set_name(name);
  vi->mutable_type()->mutable_tensor_type()->set_elem_type(elem);
}

onnx::NodeProto* add_node(onnx::GraphProto* g, const std::string& op, const std::vector<std::string>& inputs,
                          const std::vector<std::string>& outputs) {
  auto* n = g->add_node();
  n->set_op_type(op);
  for (const auto& i : inputs) n->add_input(i);
  for (const auto& o : outputs) n->add_output(o);
  return n;
}

onnx::TensorProto* add_float_initializer(onnx::GraphProto* g, const std::string& name, const std::vector<int64_t>& dims,
                                         const std::vector<float>& values) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t->add_dims(d);
  t->set_raw_data(float_bytes(values));
  return t;
}

std::string serialize(const onnx::ModelProto& m) {
  std::string s;
  EXPECT_TRUE(m.SerializeToString(&s));
  return s;
}

Result<graph::Model> load(const onnx::ModelProto& m) { return load_model_from_bytes(serialize(m), {}); }

// x: float[2,3] -> Identity -> y
onnx::ModelProto identity_model(const std::vector<int64_t>& dims = {2, 3}) {
  auto m = new_model();
  auto* g = m.mutable_graph();
  add_input(g, "x", onnx::TensorProto::FLOAT, dims);
  add_node(g, "Identity", {"x"}, {"y"});
  add_output(g, "y");
  return m;
}

Result<std::unique_ptr<Session>> session_for(const onnx::ModelProto& m) {
  DESKML_ASSIGN_OR_RETURN(graph::Model model, load(m));
  runtime::SessionOptions options;
  options.threads = 1;
  return Session::create(std::move(model), options);
}

// ---------------------------------------------------------------------------
// Bytes that are not a model

TEST(OnnxLoader, EmptyFileIsInvalidModel) {
  TempDir dir;
  write_file(dir / "empty.onnx", "");
  EXPECT_TRUE(HasStatus(load_model(dir / "empty.onnx").status(), StatusCode::kInvalidModel, "empty"));
  EXPECT_TRUE(HasStatus(load_model_from_bytes("", {}).status(), StatusCode::kInvalidModel, "empty"));
}

TEST(OnnxLoader, MissingFileIsNotFound) {
  TempDir dir;
  EXPECT_TRUE(HasStatus(load_model(dir / "nope.onnx").status(), StatusCode::kNotFound, "does not exist"));
  EXPECT_TRUE(HasStatus(load_model(dir.path()).status(), StatusCode::kInvalidArgument, "not a regular file"));
}

TEST(OnnxLoader, WrongMagicIsInvalidModel) {
  const std::vector<std::string> not_models = {
      std::string("\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'}", 26),
      std::string("PK\x03\x04\x14\x00\x00\x00", 8),
      "GGUF\x03\x00\x00\x00\xff\xff\xff\xff",
      "\x7f"
      "ELF\x02\x01\x01",
      "pytorch_model.bin",
      std::string(64, '\xff'),
      std::string(64, '\0'),
  };
  for (const auto& bytes : not_models) {
    auto r = load_model_from_bytes(bytes, {});
    EXPECT_TRUE(HasStatus(r.status(), StatusCode::kInvalidModel, "")) << "input of " << bytes.size() << " bytes";
    EXPECT_FALSE(r.status().message().empty());
  }
}

TEST(OnnxLoader, RandomBytesNeverCrash) {
  std::mt19937 rng(1234);
  for (int i = 0; i < 300; ++i) {
    std::string bytes(1 + rng() % 2048, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    auto r = load_model_from_bytes(bytes, {});
    ASSERT_FALSE(r.ok()) << "random bytes #" << i << " loaded as a model";
    EXPECT_TRUE(r.status().code() == StatusCode::kInvalidModel || r.status().code() == StatusCode::kUnsupported)
        << r.status().to_string();
  }
}

TEST(OnnxLoader, TruncatedModelFailsCleanlyAtEveryCut) {
  auto m = identity_model();
  add_float_initializer(m.mutable_graph(), "w", {4}, {1, 2, 3, 4});
  m.mutable_graph()->add_output()->set_name("w");
  const std::string bytes = serialize(m);
  ASSERT_TRUE(load_model_from_bytes(bytes, {}).ok());

  // Field order on the wire: ir_version(1), producer_name(2), graph(7), opset_import(8).
  onnx::ModelProto head;
  head.set_ir_version(m.ir_version());
  head.set_producer_name(m.producer_name());
  const size_t graph_begin = head.ByteSizeLong();
  onnx::ModelProto with_graph = head;
  *with_graph.mutable_graph() = m.graph();
  const size_t graph_end = with_graph.ByteSizeLong();
  ASSERT_LT(graph_end, bytes.size());

  int failed = 0;
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    auto r = load_model_from_bytes(std::string_view(bytes).substr(0, cut), {});
    if (cut > graph_begin && cut < graph_end) {
      EXPECT_FALSE(r.ok()) << "cut at " << cut << " inside the graph loaded";
    }
    if (!r.ok()) {
      ++failed;
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidModel) << "cut at " << cut << ": " << r.status().to_string();
      EXPECT_FALSE(r.status().message().empty());
    }
    (void)fuzz::exercise_model_bytes(std::string_view(bytes).substr(0, cut));
  }
  EXPECT_GT(failed, static_cast<int>(graph_end - graph_begin) - 2);
}

TEST(OnnxLoader, TruncatedModelFileFailsCleanly) {
  // The file is parsed as it is read, through a buffer smaller than the model.
  auto m = identity_model();
  std::vector<float> big(600000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<float>(i);
  add_float_initializer(m.mutable_graph(), "w", {static_cast<int64_t>(big.size())}, big);
  m.mutable_graph()->add_output()->set_name("w");
  const std::string bytes = serialize(m);
  TempDir dir;
  for (size_t cut : {bytes.size() / 3, bytes.size() - 1}) {
    write_file(dir / "cut.onnx", bytes.substr(0, cut));
    auto r = load_model(dir / "cut.onnx");
    EXPECT_TRUE(HasStatus(r.status(), StatusCode::kInvalidModel, "protobuf parsing failed")) << cut;
  }
}

// Initializers of 64 KiB and more take over the parsed raw data instead of
// copying it; smaller ones are copied. Both, from a file and from bytes, hold
// exactly the values written (bools normalised either way).
TEST(OnnxLoader, InitializersSmallAndLargeLoadBitExact) {
  auto m = identity_model();
  auto* g = m.mutable_graph();
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  const std::vector<size_t> sizes = {3, 16383, 16384, 250000};
  std::vector<std::vector<float>> values;
  for (size_t n : sizes) {
    values.emplace_back(n);
    for (float& v : values.back()) v = dist(rng);
    add_float_initializer(g, "f" + std::to_string(n), {static_cast<int64_t>(n)}, values.back());
  }
  auto* flags = g->add_initializer();
  flags->set_name("flags");
  flags->set_data_type(onnx::TensorProto::BOOL);
  flags->add_dims(100000);
  std::string raw(100000, '\x07');
  raw[5] = '\0';
  flags->set_raw_data(raw);
  const std::string bytes = serialize(m);
  TempDir dir;
  write_file(dir / "m.onnx", bytes);
  for (bool from_file : {false, true}) {
    SCOPED_TRACE(from_file ? "from a file" : "from bytes");
    auto r = from_file ? load_model(dir / "m.onnx") : load_model_from_bytes(bytes, {});
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    for (size_t k = 0; k < sizes.size(); ++k) {
      const Tensor& t = r->graph.initializers.at("f" + std::to_string(sizes[k]));
      ASSERT_EQ(t.numel(), static_cast<int64_t>(sizes[k]));
      EXPECT_EQ(std::memcmp(t.raw_data(), values[k].data(), sizes[k] * sizeof(float)), 0) << sizes[k];
    }
    const Tensor& b = r->graph.initializers.at("flags");
    const auto* p = static_cast<const uint8_t*>(b.raw_data());
    int64_t ones = 0;
    for (int64_t i = 0; i < b.numel(); ++i) ones += p[i] == 1;
    EXPECT_EQ(ones, 99999);
    EXPECT_EQ(p[5], 0);
  }
}

TEST(OnnxLoader, OversizedModelIsOutOfRange) {
  const std::string bytes = serialize(identity_model());
  onnx_import::LoadOptions options;
  options.max_model_bytes = bytes.size() - 1;
  EXPECT_TRUE(HasStatus(load_model_from_bytes(bytes, {}, options).status(), StatusCode::kOutOfRange, "limit"));
  TempDir dir;
  write_file(dir / "m.onnx", bytes);
  EXPECT_TRUE(HasStatus(load_model(dir / "m.onnx", options).status(), StatusCode::kOutOfRange, "limit"));
}

// ---------------------------------------------------------------------------
// Tensors that lie about their size

TEST(OnnxLoader, HugeDimsWithTinyDataAreRefusedBeforeAllocating) {
  {
    auto m = identity_model();
    add_float_initializer(m.mutable_graph(), "w", {int64_t{1} << 40, int64_t{1} << 40}, {1.0f});
    EXPECT_TRUE(HasStatus(load(m).status(), StatusCode::kInvalidModel, "element limit"));
  }
  {
    // Within the element limit (4 TiB of floats), but the data is 4 bytes.
    auto m = identity_model();
    add_float_initializer(m.mutable_graph(), "w", {int64_t{1} << 40}, {1.0f});
    EXPECT_TRUE(HasStatus(load(m).status(), StatusCode::kInvalidModel, "needs 4398046511104"));
  }
  {
    // Typed field instead of raw_data: the count is checked before a 4 TiB allocation.
    auto m = identity_model();
    auto* t = m.mutable_graph()->add_initializer();
    t->set_name("w");
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->add_dims(int64_t{1} << 40);
    t->add_float_data(1.0f);
    EXPECT_TRUE(HasStatus(load(m).status(), StatusCode::kInvalidModel, "has 1 values"));
  }
  {
    // Strings: constructing 2^36 std::strings would take terabytes.
    auto m = identity_model();
    auto* t = m.mutable_graph()->add_initializer();
    t->set_name("s");
    t->set_data_type(onnx::TensorProto::STRING);
    t->add_dims(int64_t{1} << 36);
    t->add_string_data("x");
    EXPECT_TRUE(HasStatus(load(m).status(), StatusCode::kInvalidModel, "has 1 values"));
  }
  {
    // The same lie inside a node attribute (Constant's value).
    auto m = identity_model();
    auto* n = add_node(m.mutable_graph(), "Constant", {}, {"c"});
    auto* a = n->add_attribute();
    a->set_name("value");
    a->set_type(onnx::AttributeProto::TENSOR);
    a->mutable_t()->set_data_type(onnx::TensorProto::INT64);
    a->mutable_t()->add_dims(int64_t{1} << 39);
    a->mutable_t()->add_int64_data(7);
    EXPECT_TRUE(HasStatus(load(m).status(), StatusCode::kInvalidModel, "attribute 'value'"));
  }
}

TEST(OnnxLoader, EmptyTensorsWithHugeOtherDimsAreRefused) {
  // shape_numel is 0, but kernels multiplying the other dims would overflow (found by the fuzzer in ArgMin).
  auto m = identity_model();
  add_float_initializer(m.mutable_graph(), "w", {4, int64_t{1} << 41, 0, int64_t{1} << 40}, {});
  EXPECT_TRUE(HasStatus(load(m).status(), StatusCode::kInvalidModel, "non-zero dimensions exceed the element limit"));
  auto ok = identity_model();
  add_float_initializer(ok.mutable_graph(), "w", {4, 0, 1024}, {});
  EXPECT_TRUE(load(ok).ok());
}

TEST(OnnxLoader, RawDataSizeMismatch) {
  auto m = identity_model();
  auto* t = add_float_initializer(m.mutable_graph(), "w", {2, 3}, {1, 2, 3, 4, 5, 6});
  t->mutable_raw_data()->resize(20);
  EXPECT_TRUE(HasStatus(load(m).status(), StatusCode::kInvalidModel, "has 20 bytes of data"));
  t->mutable_raw_data()->resize(28);
  EXPECT_TRUE(HasStatus(load(m).status(), StatusCode::kInvalidModel, "needs 24"));
}

TEST(OnnxLoader, NegativeDims) {
  {
    auto m = identity_model();
    add_float_initializer(m.mutable_graph(), "w", {-1, 3}, {1, 2, 3});
    EXPECT_TRUE(HasStatus(load(m).status(), StatusCode::kInvalidModel, "negative dimension"));
  }
  {
    auto m = identity_model();
    m.mutable_graph()
        ->mutable_input(0)
        ->mutable_type()
        ->mutable_tensor_type()
        ->mutable_shape()
        ->mutable_dim(0)
        ->set_dim_value(-5);
    EXPECT_TRUE(HasStatus(load(m).status(), StatusCode::kInvalidModel, "negative dimension"));
  }
}

TEST(OnnxLoader, TypedFieldCountMismatch) {
  auto check = [](auto fill, int32_t dtype, const std::string& fragment) {
    auto m = identity_model();
    auto* t = m.mutable_graph()->add_initializer();
    t->set_name("w");
    t->set_data_type(dtype);
    t->add_dims(2);
    t->add_dims(3);
    fill(t);
    EXPECT_TRUE(HasStatus(load(m).status(), StatusCode::kInvalidModel, fragment)) << "dtype " << dtype;
  };
  check(
      [](onnx::TensorProto* t) {
        for (int i = 0; i < 5; ++i) t->add_float_data(1.0f);
      },
      onnx::TensorProto::FLOAT, "has 5 values for shape [2,3]");
  check(
      [](onnx::TensorProto* t) {
        for (int i = 0; i < 7; ++i) t->add_int64_data(1);
      },
      onnx::TensorProto::INT64, "has 7 values");
  check(
      [](onnx::TensorProto* t) {
        for (int i = 0; i < 2; ++i) t->add_int32_data(1);
      },
      onnx::TensorProto::FLOAT16, "has 2 values");
  check([](onnx::TensorProto* t) { t->add_string_data("a"); }, onnx::TensorProto::STRING, "has 1 values");
  check(
      [](onnx::TensorProto* t) {
        for (int i = 0; i < 6; ++i) t->add_int64_data(1);
      },  // wrong field entirely
      onnx::TensorProto::DOUBLE, "has 0 values");
}

TEST(OnnxLoader, UnsupportedTensorTypes) {
  auto m = identity_model();
  auto* t = m.mutable_graph()->add_initializer();
  t->set_name("w");
  t->set_data_type(onnx::TensorProto::COMPLEX64);
  EXPECT_TRUE(HasStatus(load(m).status(), StatusCode::kUnsupported, "complex"));
  t->set_data_type(12345);
  EXPECT_TRUE(HasStatus(load(m).status(), StatusCode::kUnsupported, "12345"));
  t->set_data_type(0);
  EXPECT_TRUE(HasStatus(load(m).status(), StatusCode::kUnsupported, "data type 0"));
}

TEST(OnnxLoader, TypedFieldsLoadWithTheRightValues) {
  auto m = identity_model();
  auto* t = m.mutable_graph()->add_initializer();
  t->set_name("w");
  t->set_data_type(onnx::TensorProto::INT8);
  t->add_dims(3);
  for (int v : {-3, 0, 127}) t->add_int32_data(v);
  auto r = load(m);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const Tensor& w = r->graph.initializers.at("w");
  EXPECT_EQ(w.dtype(), DataType::kInt8);
  EXPECT_EQ(w.data<int8_t>()[0], -3);
  EXPECT_EQ(w.data<int8_t>()[2], 127);
}

TEST(OnnxLoader, BoolRawBytesAreNormalised) {
  // Any byte other than 0/1 read through a bool is undefined behaviour (found by the fuzzer).
  auto m = identity_model();
  auto* t = m.mutable_graph()->add_initializer();
  t->set_name("b");
  t->set_data_type(onnx::TensorProto::BOOL);
  t->add_dims(4);
  t->set_raw_data(std::string("\x00\x07\xaf\x01", 4));
  auto r = load(m);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const auto* bytes = static_cast<const uint8_t*>(r->graph.initializers.at("b").raw_data());
  EXPECT_EQ(bytes[0], 0);
  EXPECT_EQ(bytes[1], 1);
  EXPECT_EQ(bytes[2], 1);
  EXPECT_EQ(bytes[3], 1);
}

// ---------------------------------------------------------------------------
// Graphs that are not DAGs, or not closed

TEST(OnnxGraph, CycleIsInvalidModel) {
  auto m = identity_model();
  auto* g = m.mutable_graph();
  add_node(g, "Add", {"x", "b"}, {"a"});
  add_node(g, "Relu", {"a"}, {"b"});
  add_output(g, "b");
  auto model = load(m);
  ASSERT_TRUE(model.ok()) << model.status().to_string();  // the loader keeps the graph as written
  EXPECT_TRUE(HasStatus(graph::topological_order(model->graph).status(), StatusCode::kInvalidModel, "cycle"));
  EXPECT_TRUE(HasStatus(session_for(m).status(), StatusCode::kInvalidModel, "cycle"));
}

TEST(OnnxGraph, SelfLoopIsInvalidModel) {
  auto m = identity_model();
  add_node(m.mutable_graph(), "Identity", {"z"}, {"z"});
  EXPECT_TRUE(HasStatus(session_for(m).status(), StatusCode::kInvalidModel, "cycle"));
}

TEST(OnnxGraph, ReadingAValueNothingProducesIsInvalidModel) {
  auto m = identity_model();
  add_node(m.mutable_graph(), "Identity", {"ghost"}, {"z"});
  EXPECT_TRUE(HasStatus(session_for(m).status(), StatusCode::kInvalidModel, "reads 'ghost', which nothing produces"));

  auto m2 = identity_model();
  add_output(m2.mutable_graph(), "phantom");
  EXPECT_TRUE(HasStatus(session_for(m2).status(), StatusCode::kInvalidModel, "'phantom' is read but never produced"));
}

TEST(OnnxGraph, DuplicateProducersAreInvalidModel) {
  {
    auto m = identity_model();
    add_node(m.mutable_graph(), "Identity", {"x"}, {"y"});
    EXPECT_TRUE(HasStatus(session_for(m).status(), StatusCode::kInvalidModel, "'y' is produced more than once"));
  }
  {
    // A node overwriting a graph input.
    auto m = identity_model();
    add_node(m.mutable_graph(), "Identity", {"y"}, {"x"});
    EXPECT_TRUE(HasStatus(session_for(m).status(), StatusCode::kInvalidModel, "'x' is produced more than once"));
  }
  {
    // A node overwriting an initializer.
    auto m = identity_model();
    add_float_initializer(m.mutable_graph(), "w", {1}, {1});
    add_node(m.mutable_graph(), "Identity", {"x"}, {"w"});
    EXPECT_TRUE(HasStatus(session_for(m).status(), StatusCode::kInvalidModel, "'w' is produced more than once"));
  }
  {
    auto m = identity_model();
    add_float_initializer(m.mutable_graph(), "w", {1}, {1});
    add_float_initializer(m.mutable_graph(), "w", {1}, {2});
    EXPECT_TRUE(HasStatus(load(m).status(), StatusCode::kInvalidModel, "'w' is defined twice"));
  }
  {
    auto m = identity_model();
    add_input(m.mutable_graph(), "x", onnx::TensorProto::FLOAT, {2, 3});
    EXPECT_TRUE(HasStatus(load(m).status(), StatusCode::kInvalidModel, "graph input 'x' is declared twice"));
  }
}

TEST(OnnxGraph, NodeInAnUnimportedDomain) {
  auto m = identity_model();
  add_node(m.mutable_graph(), "Evil", {"x"}, {"z"})->set_domain("com.example.evil");
  EXPECT_TRUE(
      HasStatus(load(m).status(), StatusCode::kInvalidModel, "'com.example.evil', which the model does not import"));
  // ai.onnx is the default domain under another name.
  auto m2 = identity_model();
  m2.mutable_graph()->mutable_node(0)->set_domain("ai.onnx");
  EXPECT_TRUE(load(m2).ok());
}

TEST(OnnxGraph, BadOpsetsAndNodes) {
  auto m = identity_model();
  m.mutable_opset_import(0)->set_version(0);
  EXPECT_TRUE(HasStatus(load(m).status(), StatusCode::kInvalidModel, "opset version 0"));
  auto m2 = identity_model();
  m2.mutable_graph()->mutable_node(0)->clear_op_type();
  EXPECT_TRUE(HasStatus(load(m2).status(), StatusCode::kInvalidModel, "no op_type"));
  auto m3 = identity_model();
  m3.clear_graph();
  EXPECT_TRUE(HasStatus(load(m3).status(), StatusCode::kInvalidModel, "no graph"));
  auto m4 = identity_model();
  m4.mutable_graph()->mutable_output(0)->clear_name();
  EXPECT_TRUE(HasStatus(load(m4).status(), StatusCode::kInvalidModel, "output has no name"));
}

// then_branch: the next level down (or Identity(x) at the bottom); else_branch: Identity(x).
onnx::GraphProto nested_if_graph(int depth, int level = 0) {
  onnx::GraphProto g;
  g.set_name("level" + std::to_string(level));
  const std::string out = "y" + std::to_string(level);
  if (depth == 0) {
    add_node(&g, "Identity", {"x"}, {out});
    add_output(&g, out);
    return g;
  }
  auto* n = add_node(&g, "If", {"cond"}, {out});
  auto* then_attr = n->add_attribute();
  then_attr->set_name("then_branch");
  then_attr->set_type(onnx::AttributeProto::GRAPH);
  *then_attr->mutable_g() = nested_if_graph(depth - 1, level + 1);
  auto* else_attr = n->add_attribute();
  else_attr->set_name("else_branch");
  else_attr->set_type(onnx::AttributeProto::GRAPH);
  auto* eg = else_attr->mutable_g();
  eg->set_name("else" + std::to_string(level));
  add_node(eg, "Identity", {"x"}, {"e" + std::to_string(level)});
  add_output(eg, "e" + std::to_string(level));
  add_output(&g, out);
  return g;
}

onnx::ModelProto nested_if_model(int depth) {
  auto m = new_model();
  *m.mutable_graph() = nested_if_graph(depth);
  auto* g = m.mutable_graph();
  add_input(g, "x", onnx::TensorProto::FLOAT, {2});
  add_input(g, "cond", onnx::TensorProto::BOOL, {});
  return m;
}

TEST(OnnxGraph, DeeplyNestedSubgraphsAreRefused) {
  // 100 levels: protobuf itself stops (the recursion limit follows max_subgraph_depth).
  auto deep = load(nested_if_model(100));
  EXPECT_TRUE(HasStatus(deep.status(), StatusCode::kInvalidModel, "levels deep"));
  // 40 levels parse, and the converter stops at its own limit (32).
  EXPECT_TRUE(HasStatus(load(nested_if_model(40)).status(), StatusCode::kInvalidModel,
                        "subgraphs are nested more than 32 levels deep"));
  // A tighter limit from the caller.
  onnx_import::LoadOptions options;
  options.max_subgraph_depth = 4;
  EXPECT_TRUE(HasStatus(load_model_from_bytes(serialize(nested_if_model(6)), {}, options).status(),
                        StatusCode::kInvalidModel, "levels deep"));
  EXPECT_TRUE(load_model_from_bytes(serialize(nested_if_model(4)), {}, options).ok());
  // 32 levels is within the limit and loads.
  auto ok = load(nested_if_model(32));
  EXPECT_TRUE(ok.ok()) << ok.status().to_string();
}

TEST(OnnxGraph, NestedIfRunsThroughEveryLevel) {
  auto session = session_for(nested_if_model(8));
  ASSERT_TRUE(session.ok()) << session.status().to_string();
  auto x = Tensor::from_vector<float>({1.5f, -2.0f}, {2});
  for (bool cond : {true, false}) {
    auto out = (*session)->run({{"x", x}, {"cond", Tensor::scalar<bool>(cond)}});
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    ASSERT_EQ(out->size(), 1u);
    EXPECT_EQ((*out)[0].second.data<float>()[0], 1.5f);
    EXPECT_EQ((*out)[0].second.data<float>()[1], -2.0f);
  }
}

// ---------------------------------------------------------------------------
// External data: confined to the model's folder

struct ExternalCase {
  TempDir dir;
  onnx::ModelProto model = identity_model();
  onnx::TensorProto* tensor = nullptr;

  ExternalCase() {
    tensor = model.mutable_graph()->add_initializer();
    tensor->set_name("w");
    tensor->set_data_type(onnx::TensorProto::FLOAT);
    tensor->add_dims(4);
    tensor->set_data_location(onnx::TensorProto::EXTERNAL);
    model.mutable_graph()->add_output()->set_name("w");
  }
  void set(const std::string& key, const std::string& value) {
    auto* kv = tensor->add_external_data();
    kv->set_key(key);
    kv->set_value(value);
  }
  Result<graph::Model> load_from_folder() {
    write_file(dir / "model.onnx", serialize(model));
    return load_model(dir / "model.onnx");
  }
};

TEST(OnnxLoader, EndlessFilesAreNeverRead) {
  // A model "file" that never ends (Ollama CVE-2024-39721): refused before reading a byte.
  EXPECT_TRUE(HasStatus(load_model("/dev/zero").status(), StatusCode::kInvalidArgument, "not a regular file"));
  EXPECT_TRUE(HasStatus(load_model("/dev/urandom").status(), StatusCode::kInvalidArgument, "not a regular file"));
  TempDir dir;
  ASSERT_EQ(mkfifo((dir / "pipe.onnx").c_str(), 0600), 0);
  EXPECT_TRUE(HasStatus(load_model(dir / "pipe.onnx").status(), StatusCode::kInvalidArgument, "not a regular file"));
  // The same for external data.
  ExternalCase c;
  ASSERT_EQ(mkfifo((c.dir / "w.bin").c_str(), 0600), 0);
  c.set("location", "w.bin");
  EXPECT_TRUE(HasStatus(c.load_from_folder().status(), StatusCode::kInvalidModel, "not a regular file"));
  ExternalCase d;
  fs::create_symlink("/dev/zero", d.dir / "z.bin");
  d.set("location", "z.bin");
  EXPECT_TRUE(HasStatus(d.load_from_folder().status(), StatusCode::kInvalidModel, "outside"));
}

TEST(ExternalData, AbsolutePathIsRefused) {
  ExternalCase c;
  write_file(c.dir / "w.bin", float_bytes({1, 2, 3, 4}));
  c.set("location", (c.dir / "w.bin").string());  // absolute, even though it points inside
  EXPECT_TRUE(HasStatus(c.load_from_folder().status(), StatusCode::kInvalidModel, "is absolute"));
  ExternalCase c2;
  c2.set("location", "/etc/passwd");
  EXPECT_TRUE(HasStatus(c2.load_from_folder().status(), StatusCode::kInvalidModel, "is absolute"));
}

TEST(ExternalData, ParentTraversalIsRefused) {
  for (const std::string location : {"../x", "a/../../x", "a/../w.bin", "./../x", "..", "sub/.."}) {
    ExternalCase c;
    write_file(c.dir / "w.bin", float_bytes({1, 2, 3, 4}));
    c.set("location", location);
    EXPECT_TRUE(HasStatus(c.load_from_folder().status(), StatusCode::kInvalidModel, "climbs out of the model folder"))
        << location;
  }
}

TEST(ExternalData, SymlinkPointingOutsideIsRefused) {
  TempDir outside;
  write_file(outside / "secret.bin", float_bytes({9, 9, 9, 9}));
  {
    ExternalCase c;
    fs::create_symlink(outside / "secret.bin", c.dir / "link.bin");
    c.set("location", "link.bin");
    EXPECT_TRUE(
        HasStatus(c.load_from_folder().status(), StatusCode::kInvalidModel, "resolves outside the model folder"));
  }
  {
    // A symlinked directory.
    ExternalCase c;
    fs::create_directory_symlink(outside.path(), c.dir / "sub");
    c.set("location", "sub/secret.bin");
    EXPECT_TRUE(
        HasStatus(c.load_from_folder().status(), StatusCode::kInvalidModel, "resolves outside the model folder"));
  }
  {
    // A sibling folder whose name extends the model folder's is still outside.
    ExternalCase c;
    const fs::path sibling = c.dir.path().string() + "-evil";
    fs::create_directory(sibling);
    write_file(sibling / "w.bin", float_bytes({1, 2, 3, 4}));
    fs::create_symlink(sibling / "w.bin", c.dir / "w.bin");
    c.set("location", "w.bin");
    EXPECT_TRUE(
        HasStatus(c.load_from_folder().status(), StatusCode::kInvalidModel, "resolves outside the model folder"));
    fs::remove_all(sibling);
  }
  {
    // A symlink that stays inside the folder is fine.
    ExternalCase c;
    fs::create_directory(c.dir / "data");
    write_file(c.dir / "data" / "w.bin", float_bytes({1, 2, 3, 4}));
    fs::create_symlink(c.dir / "data" / "w.bin", c.dir / "alias.bin");
    c.set("location", "alias.bin");
    auto r = c.load_from_folder();
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->graph.initializers.at("w").data<float>()[3], 4.0f);
  }
}

TEST(ExternalData, RangePastTheEndOfTheFile) {
  {
    ExternalCase c;
    write_file(c.dir / "w.bin", float_bytes({1, 2, 3, 4}));
    c.set("location", "w.bin");
    c.set("offset", "8");
    EXPECT_TRUE(HasStatus(c.load_from_folder().status(), StatusCode::kInvalidModel, "runs past the end of 'w.bin'"));
  }
  {
    ExternalCase c;
    write_file(c.dir / "w.bin", float_bytes({1, 2, 3, 4}));
    c.set("location", "w.bin");
    c.set("offset", "18446744073709551615");
    EXPECT_TRUE(HasStatus(c.load_from_folder().status(), StatusCode::kInvalidModel, "runs past the end"));
  }
  {
    // A length that disagrees with the shape.
    ExternalCase c;
    write_file(c.dir / "w.bin", float_bytes({1, 2, 3, 4}));
    c.set("location", "w.bin");
    c.set("length", "8");
    EXPECT_TRUE(HasStatus(c.load_from_folder().status(), StatusCode::kInvalidModel, "does not match its shape"));
  }
  {
    // A huge declared shape with a matching huge length still has to exist in the file.
    ExternalCase c;
    c.tensor->set_dims(0, int64_t{1} << 36);
    write_file(c.dir / "w.bin", float_bytes({1, 2, 3, 4}));
    c.set("location", "w.bin");
    EXPECT_TRUE(HasStatus(c.load_from_folder().status(), StatusCode::kOutOfRange, "the limit is"));
  }
}

TEST(ExternalData, MalformedNumbersAreRefused) {
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, std::string>>{{"length", "-16"},
                                                        {"offset", "-1"},
                                                        {"offset", "4x"},
                                                        {"offset", " 4"},
                                                        {"length", ""},
                                                        {"offset", "99999999999999999999999"},
                                                        {"length", "0x10"}}) {
    ExternalCase c;
    write_file(c.dir / "w.bin", float_bytes({1, 2, 3, 4}));
    c.set("location", "w.bin");
    c.set(key, value);
    EXPECT_TRUE(HasStatus(c.load_from_folder().status(), StatusCode::kInvalidModel, "is not a non-negative integer"))
        << key << "=" << value;
  }
}

TEST(ExternalData, MissingOrOddFiles) {
  {
    ExternalCase c;
    c.set("location", "missing.bin");
    EXPECT_TRUE(HasStatus(c.load_from_folder().status(), StatusCode::kNotFound, "missing.bin"));
  }
  {
    ExternalCase c;
    EXPECT_TRUE(HasStatus(c.load_from_folder().status(), StatusCode::kInvalidModel, "empty location"));
  }
  {
    ExternalCase c;
    fs::create_directory(c.dir / "folder");
    c.set("location", "folder");
    EXPECT_TRUE(HasStatus(c.load_from_folder().status(), StatusCode::kInvalidModel, "not a regular file"));
  }
  {
    ExternalCase c;
    c.set("location", std::string("w.bin\0../../etc/passwd", 22));
    EXPECT_TRUE(HasStatus(c.load_from_folder().status(), StatusCode::kInvalidModel, ""));
  }
  {
    // String tensors have no external representation.
    ExternalCase c;
    c.tensor->set_data_type(onnx::TensorProto::STRING);
    write_file(c.dir / "w.bin", float_bytes({1, 2, 3, 4}));
    c.set("location", "w.bin");
    EXPECT_TRUE(HasStatus(c.load_from_folder().status(), StatusCode::kInvalidModel, "string tensors"));
  }
}

TEST(ExternalData, ValidExternalInitializerLoads) {
  ExternalCase c;
  fs::create_directory(c.dir / "weights");
  // 8 bytes of padding, then the tensor, then trailing bytes that belong to something else.
  write_file(c.dir / "weights" / "w.bin", std::string(8, 'p') + float_bytes({0.5f, -1.0f, 3.25f, 1e6f}) + "tail");
  c.set("location", "weights/w.bin");
  c.set("offset", "8");
  c.set("length", "16");
  c.set("checksum", "ignored");
  auto r = c.load_from_folder();
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const Tensor& w = r->graph.initializers.at("w");
  ASSERT_EQ(w.shape(), (Shape{4}));
  EXPECT_EQ(w.data<float>()[0], 0.5f);
  EXPECT_EQ(w.data<float>()[1], -1.0f);
  EXPECT_EQ(w.data<float>()[2], 3.25f);
  EXPECT_EQ(w.data<float>()[3], 1e6f);

  // And the session returns it as an output.
  runtime::SessionOptions options;
  options.threads = 1;
  auto session = Session::create(std::move(r).value(), options);
  ASSERT_TRUE(session.ok()) << session.status().to_string();
  auto out = (*session)->run({{"x", Tensor::zeros(DataType::kFloat32, {2, 3})}});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ((*out)[1].second.data<float>()[2], 3.25f);
}

TEST(ExternalData, ModelFromBytesMayNotUseExternalData) {
  ExternalCase c;
  write_file(c.dir / "w.bin", float_bytes({1, 2, 3, 4}));
  c.set("location", "w.bin");
  // Even when the current directory holds the file, in-memory models read nothing from disk.
  const fs::path cwd = fs::current_path();
  fs::current_path(c.dir.path());
  auto r = load_model_from_bytes(serialize(c.model), {});
  fs::current_path(cwd);
  EXPECT_TRUE(HasStatus(r.status(), StatusCode::kInvalidModel, "not allowed for in-memory models"));
  // With an explicit folder it loads.
  EXPECT_TRUE(load_model_from_bytes(serialize(c.model), c.dir.path()).ok());
}

// ---------------------------------------------------------------------------
// Session creation and feeds

TEST(SessionFeeds, UnsupportedOpAtCreation) {
  auto m = identity_model();
  add_node(m.mutable_graph(), "DeskmlNoSuchOp", {"x"}, {"z"});
  EXPECT_TRUE(HasStatus(session_for(m).status(), StatusCode::kUnsupported, "DeskmlNoSuchOp"));
  // A known op at an opset beyond anything registered for it is also refused at creation.
  auto m2 = identity_model();
  auto* o = m2.add_opset_import();
  o->set_domain("com.example");
  o->set_version(1);
  add_node(m2.mutable_graph(), "Identity", {"x"}, {"z"})->set_domain("com.example");
  EXPECT_TRUE(HasStatus(session_for(m2).status(), StatusCode::kUnsupported, "com.example.Identity"));
}

TEST(SessionFeeds, BadFeedsAreInvalidArgument) {
  auto session = session_for(identity_model());
  ASSERT_TRUE(session.ok()) << session.status().to_string();
  const Session& s = **session;
  auto good = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});

  EXPECT_TRUE(HasStatus(s.run({{"x", Tensor::zeros(DataType::kInt64, {2, 3})}}).status(), StatusCode::kInvalidArgument,
                        "expects float, got int64"));
  EXPECT_TRUE(HasStatus(s.run({{"x", Tensor::zeros(DataType::kFloat32, {6})}}).status(), StatusCode::kInvalidArgument,
                        "expects shape"));
  EXPECT_TRUE(HasStatus(s.run({{"x", Tensor::zeros(DataType::kFloat32, {3, 2})}}).status(),
                        StatusCode::kInvalidArgument, "expects shape float[2,3]"));
  EXPECT_TRUE(
      HasStatus(s.run({{"x", good}, {"nope", good}}).status(), StatusCode::kInvalidArgument, "no input named 'nope'"));
  EXPECT_TRUE(HasStatus(s.run(std::vector<std::pair<std::string, Tensor>>{}).status(), StatusCode::kInvalidArgument,
                        "'x' was not provided"));
  EXPECT_TRUE(HasStatus(s.run({{"x", good}, {"x", good}}).status(), StatusCode::kInvalidArgument, "fed twice"));
  runtime::NamedValues seq{{"x", Value::from_sequence({good}, DataType::kFloat32)}};
  EXPECT_TRUE(HasStatus(s.run(seq).status(), StatusCode::kInvalidArgument, "expects a tensor"));

  auto out = s.run({{"x", good}});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].first, "y");
  EXPECT_EQ((*out)[0].second.data<float>()[5], 6.0f);
}

TEST(SessionFeeds, HostileFeedsAreInvalidArgument) {
  auto session = session_for(identity_model({-1, -1, -1}));
  ASSERT_TRUE(session.ok()) << session.status().to_string();
  const Tensor empty_but_huge = Tensor::zeros(DataType::kFloat32, {0, int64_t{1} << 40, int64_t{1} << 40});
  EXPECT_TRUE(HasStatus((*session)->run({{"x", empty_but_huge}}).status(), StatusCode::kInvalidArgument,
                        "beyond the element limit"));

  auto m = identity_model({2});
  m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::BOOL);
  m.mutable_graph()->mutable_output(0)->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::BOOL);
  auto bool_session = session_for(m);
  ASSERT_TRUE(bool_session.ok()) << bool_session.status().to_string();
  Tensor b = Tensor::zeros(DataType::kBool, {2});
  static_cast<uint8_t*>(b.raw_data())[1] = 0x80;
  EXPECT_TRUE(HasStatus((*bool_session)->run({{"x", b}}).status(), StatusCode::kInvalidArgument, "other than 0/1"));
  static_cast<uint8_t*>(b.raw_data())[1] = 1;
  EXPECT_TRUE((*bool_session)->run({{"x", b}}).ok());
}

TEST(SessionFeeds, SymbolicDimsAcceptAnySize) {
  auto session = session_for(identity_model({-1, 3}));
  ASSERT_TRUE(session.ok()) << session.status().to_string();
  EXPECT_TRUE((*session)->run({{"x", Tensor::zeros(DataType::kFloat32, {5, 3})}}).ok());
  EXPECT_TRUE((*session)->run({{"x", Tensor::zeros(DataType::kFloat32, {0, 3})}}).ok());
  EXPECT_TRUE(HasStatus((*session)->run({{"x", Tensor::zeros(DataType::kFloat32, {5, 4})}}).status(),
                        StatusCode::kInvalidArgument, "expects shape float[N,3]"));
}

// A Loop whose trip count (an initializer) is 2^63-1 and whose body only passes its condition through.
onnx::ModelProto endless_loop_model() {
  auto m = new_model();
  auto* g = m.mutable_graph();
  add_input(g, "x", onnx::TensorProto::FLOAT, {2});
  auto* trip = g->add_initializer();
  trip->set_name("m");
  trip->set_data_type(onnx::TensorProto::INT64);
  trip->add_int64_data(INT64_MAX);
  auto* cond = g->add_initializer();
  cond->set_name("c");
  cond->set_data_type(onnx::TensorProto::BOOL);
  cond->add_int32_data(1);
  auto* loop = add_node(g, "Loop", {"m", "c", "x"}, {"x_final"});
  auto* body_attr = loop->add_attribute();
  body_attr->set_name("body");
  body_attr->set_type(onnx::AttributeProto::GRAPH);
  auto* body = body_attr->mutable_g();
  body->set_name("body");
  add_input(body, "i", onnx::TensorProto::INT64, {});
  add_input(body, "cond_in", onnx::TensorProto::BOOL, {});
  add_input(body, "s_in", onnx::TensorProto::FLOAT, {2});
  add_node(body, "Identity", {"cond_in"}, {"cond_out"});
  add_node(body, "Identity", {"s_in"}, {"s_out"});
  add_output(body, "cond_out", onnx::TensorProto::BOOL);
  add_output(body, "s_out");
  add_output(g, "x_final");
  return m;
}

TEST(SessionLimits, DeadlineStopsAnEndlessLoop) {
  auto session = session_for(endless_loop_model());
  ASSERT_TRUE(session.ok()) << session.status().to_string();
  runtime::RunOptions options;
  options.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  const auto start = std::chrono::steady_clock::now();
  auto out = (*session)->run({{"x", Value::from_tensor(Tensor::zeros(DataType::kFloat32, {2}))}}, options);
  EXPECT_TRUE(HasStatus(out.status(), StatusCode::kDeadlineExceeded, "deadline"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  // A deadline already past stops before the first node.
  options.deadline = std::chrono::steady_clock::now();
  EXPECT_TRUE(
      HasStatus((*session)->run({{"x", Value::from_tensor(Tensor::zeros(DataType::kFloat32, {2}))}}, options).status(),
                StatusCode::kDeadlineExceeded, "deadline"));
}

TEST(SessionLimits, CancelFlagStopsARunFromAnotherThread) {
  auto session = session_for(endless_loop_model());
  ASSERT_TRUE(session.ok()) << session.status().to_string();
  std::atomic<bool> cancel{false};
  runtime::RunOptions options;
  options.cancel = &cancel;
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cancel = true;
  });
  auto out = (*session)->run({{"x", Value::from_tensor(Tensor::zeros(DataType::kFloat32, {2}))}}, options);
  stopper.join();
  EXPECT_TRUE(HasStatus(out.status(), StatusCode::kCancelled, "cancelled"));
}

// ---------------------------------------------------------------------------
// Mutated models and recorded fuzzer findings

TEST(OnnxFuzzRegressions, MutatedModelsNeverCrash) {
  auto m = nested_if_model(2);
  add_float_initializer(m.mutable_graph(), "w", {2}, {1, 2});
  add_node(m.mutable_graph(), "Add", {"y0", "w"}, {"sum"});
  add_output(m.mutable_graph(), "sum");
  const std::string bytes = serialize(m);
  ASSERT_EQ(fuzz::exercise_model_bytes(bytes).stage, fuzz::HarnessStage::kRan)
      << fuzz::exercise_model_bytes(bytes).status.to_string();
  std::mt19937 rng(42);
  for (int i = 0; i < 2000; ++i) {
    std::string mutated = bytes;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) mutated[rng() % mutated.size()] = static_cast<char>(rng());
    const auto r = fuzz::exercise_model_bytes(mutated);
    if (r.stage != fuzz::HarnessStage::kRan && r.stage != fuzz::HarnessStage::kNotRun) {
      EXPECT_FALSE(r.status.ok());
      EXPECT_FALSE(r.status.message().empty());
    }
  }
}

TEST(OnnxFuzzRegressions, EveryRecordedInputRunsWithoutCrashing) {
  const fs::path dir = DESKML_FUZZ_REGRESSIONS_DIR;
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  int replayed = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file() || entry.path().filename().string().front() == '.') continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto r = fuzz::exercise_model_bytes(bytes);
    if (r.stage != fuzz::HarnessStage::kRan && r.stage != fuzz::HarnessStage::kNotRun) {
      EXPECT_FALSE(r.status.message().empty()) << entry.path();
    }
    ++replayed;
  }
  RecordProperty("replayed", replayed);
}

// ---------------------------------------------------------------------------
// .npy

std::string npy_with_header(const std::string& dict, const std::string& data) {
  std::string header = dict;
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header + data;
}

TEST(Npy, BadMagic) {
  EXPECT_TRUE(HasStatus(parse_npy("").status(), StatusCode::kInvalidArgument, "bad magic"));
  EXPECT_TRUE(HasStatus(parse_npy("\x93NUMPZ\x01\x00\x00\x00").status(), StatusCode::kInvalidArgument, "bad magic"));
  EXPECT_TRUE(HasStatus(parse_npy("PK\x03\x04 this is a zip").status(), StatusCode::kInvalidArgument, "bad magic"));
  EXPECT_TRUE(HasStatus(parse_npy(std::string("\x93NUMPY\x09\x00\x00\x00", 10)).status(), StatusCode::kUnsupported,
                        "version 9"));
}

TEST(Npy, TruncatedHeader) {
  const std::string full = serialize_npy(Tensor::from_vector<float>({1, 2, 3}, {3}));
  EXPECT_TRUE(HasStatus(parse_npy(full.substr(0, 9)).status(), StatusCode::kInvalidArgument, "bad magic"));
  EXPECT_TRUE(HasStatus(parse_npy(full.substr(0, 40)).status(), StatusCode::kInvalidArgument, "truncated .npy header"));
  // Every prefix fails cleanly.
  for (size_t cut = 0; cut < full.size(); ++cut) {
    auto r = parse_npy(full.substr(0, cut));
    EXPECT_FALSE(r.ok()) << "cut " << cut;
  }
  // A version 2 header claiming 4 GiB.
  std::string v2("\x93NUMPY\x02\x00\xff\xff\xff\xff", 12);
  EXPECT_TRUE(HasStatus(parse_npy(v2).status(), StatusCode::kOutOfRange, "header"));
  EXPECT_TRUE(HasStatus(parse_npy(v2.substr(0, 11)).status(), StatusCode::kInvalidArgument, "truncated"));
}

TEST(Npy, MalformedHeaderFields) {
  EXPECT_TRUE(HasStatus(parse_npy(npy_with_header("{'fortran_order': False, 'shape': (1,), }", "abcd")).status(),
                        StatusCode::kInvalidArgument, "'descr'"));
  EXPECT_TRUE(HasStatus(parse_npy(npy_with_header("{'descr': '<f4', 'fortran_order': False, }", "abcd")).status(),
                        StatusCode::kInvalidArgument, "'shape'"));
  EXPECT_TRUE(HasStatus(
      parse_npy(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", "abcd")).status(),
      StatusCode::kInvalidArgument, "malformed npy shape"));
  EXPECT_TRUE(
      HasStatus(parse_npy(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,, }", "abcd")).status(),
                StatusCode::kInvalidArgument, "malformed npy shape"));
  EXPECT_TRUE(HasStatus(
      parse_npy(npy_with_header("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", "abcd")).status(),
      StatusCode::kUnsupported, "'>f4'"));
  EXPECT_TRUE(HasStatus(
      parse_npy(npy_with_header("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", "abcdefgh")).status(),
      StatusCode::kUnsupported, "'|O'"));
  EXPECT_TRUE(
      HasStatus(parse_npy(npy_with_header("{'descr': <f4, 'fortran_order': False, 'shape': (1,), }", "abcd")).status(),
                StatusCode::kInvalidArgument, "malformed npy descr"));
}

TEST(Npy, ShapeAndDataSizeMismatch) {
  EXPECT_TRUE(HasStatus(
      parse_npy(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", std::string(20, 'x')))
          .status(),
      StatusCode::kInvalidArgument, ".npy data is 20 bytes; shape [2,3] needs 24"));
  EXPECT_TRUE(HasStatus(
      parse_npy(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", std::string(28, 'x')))
          .status(),
      StatusCode::kInvalidArgument, "needs 24"));
}

TEST(Npy, FortranOrderIsUnsupported) {
  EXPECT_TRUE(HasStatus(
      parse_npy(npy_with_header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", std::string(16, 'x')))
          .status(),
      StatusCode::kUnsupported, "Fortran"));
}

TEST(Npy, HugeShapes) {
  EXPECT_TRUE(HasStatus(
      parse_npy(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }",
                                "abcd"))
          .status(),
      StatusCode::kOutOfRange, "element limit"));
  EXPECT_TRUE(HasStatus(
      parse_npy(
          npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }", "abcd"))
          .status(),
      StatusCode::kOutOfRange, "too large"));
  // Within the element limit, but the data is 4 bytes: refused before allocating 4 TiB.
  EXPECT_TRUE(HasStatus(
      parse_npy(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }", "abcd"))
          .status(),
      StatusCode::kInvalidArgument, "needs 4398046511104"));
}

TEST(Npy, AcceptsWhatNumpyWrites) {
  // Byte-for-byte what numpy 1.24 writes for np.arange(3, dtype='<i8'), plus Python 2's "3L" dims.
  auto r = parse_npy(npy_with_header("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }",
                                     std::string("\x01\0\0\0\0\0\0\0\x02\0\0\0\0\0\0\0\x03\0\0\0\0\0\0\0", 24)));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->data<int64_t>()[2], 3);
  auto scalar =
      parse_npy(npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", std::string(8, '\0')));
  ASSERT_TRUE(scalar.ok()) << scalar.status().to_string();
  EXPECT_EQ(scalar->shape(), Shape{});
  auto py2 = parse_npy(npy_with_header("{'descr': '|u1', 'fortran_order': False, 'shape': (2L, 1L), }", "ab"));
  ASSERT_TRUE(py2.ok()) << py2.status().to_string();
  EXPECT_EQ(py2->shape(), (Shape{2, 1}));
  // Bool bytes other than 0/1 are normalised.
  auto b = parse_npy(
      npy_with_header("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", std::string("\x07\x00", 2)));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(static_cast<const uint8_t*>(b->raw_data())[0], 1);
}

template <typename T>
void expect_round_trip(const std::vector<T>& values, Shape shape) {
  const Tensor t = Tensor::from_vector<T>(values, shape);
  auto back = parse_npy(serialize_npy(t));
  ASSERT_TRUE(back.ok()) << dtype_name(t.dtype()) << ": " << back.status().to_string();
  EXPECT_EQ(back->dtype(), t.dtype());
  EXPECT_EQ(back->shape(), t.shape());
  EXPECT_EQ(std::memcmp(back->raw_data(), t.raw_data(), t.nbytes()), 0) << dtype_name(t.dtype());
}

TEST(Npy, RoundTripsEveryDtype) {
  expect_round_trip<float>({1.5f, -2.0f, 3e30f, 0.0f, -0.0f, 7.0f}, {2, 3});
  expect_round_trip<double>({1e300, -1e-300}, {2});
  expect_round_trip<Float16>({Float16(1.0f), Float16(-65504.0f), Float16(0.5f)}, {3, 1});
  expect_round_trip<int8_t>({-128, 0, 127}, {3});
  expect_round_trip<uint8_t>({0, 255}, {1, 2});
  expect_round_trip<int16_t>({-32768, 32767}, {2});
  expect_round_trip<uint16_t>({0, 65535}, {2});
  expect_round_trip<int32_t>({INT32_MIN, INT32_MAX, 0}, {3});
  expect_round_trip<uint32_t>({0, UINT32_MAX}, {2});
  expect_round_trip<int64_t>({INT64_MIN, INT64_MAX}, {2, 1, 1});
  expect_round_trip<uint64_t>({0, UINT64_MAX}, {2});
  expect_round_trip<bool>({true, false, true, true}, {2, 2});
  expect_round_trip<float>({42.0f}, {});
  expect_round_trip<float>({}, {0, 3});
  // Through the file system too.
  TempDir dir;
  const Tensor t = Tensor::from_vector<int32_t>({1, 2, 3, 4}, {2, 2});
  ASSERT_TRUE(write_npy(dir / "t.npy", t).ok());
  auto back = read_npy(dir / "t.npy");
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->data<int32_t>()[3], 4);
  EXPECT_TRUE(HasStatus(read_npy(dir / "missing.npy").status(), StatusCode::kNotFound, "missing.npy"));
  // numpy has no bfloat16 or fixed-width string here: refused with a Status.
  EXPECT_TRUE(HasStatus(write_npy(dir / "b.npy", Tensor::zeros(DataType::kBFloat16, {2})), StatusCode::kUnsupported,
                        "bfloat16"));
  EXPECT_TRUE(HasStatus(write_npy(dir / "s.npy", Tensor(DataType::kString, {1})), StatusCode::kUnsupported, "string"));
}

TEST(Npy, HighRankUsesFormatTwo) {
  // 30000 dims of 1 make a header longer than format 1.0's 16-bit length field.
  const Tensor t = Tensor::zeros(DataType::kUInt8, Shape(30000, 1));
  const std::string bytes = serialize_npy(t);
  EXPECT_EQ(bytes[6], '\x02');
  auto back = parse_npy(bytes);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->rank(), 30000);
}

}  // namespace
}  // namespace deskml
