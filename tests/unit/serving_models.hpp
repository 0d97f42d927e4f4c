// Models and folders for the serving tests: small ONNX files written with the
// protobuf API into a temporary model repository.
#pragma once

#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "random_tensor.hpp"
#include "temp_dir.hpp"

namespace deskml::serving::testing {

namespace fs = std::filesystem;

// A folder removed with everything in it at the end of the test.
using test_support::TempDir;

inline void write_file(const fs::path& file, const std::string& bytes) {
  fs::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << bytes;
}

namespace detail {

inline onnx::ModelProto new_model() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.set_producer_name("deskml-tests");
  auto* o = m.add_opset_import();
  o->set_domain("");
  o->set_version(17);
  m.mutable_graph()->set_name("g");
  return m;
}

// dims: >= 0 fixed, -1 symbolic (named N, M, ... by position)
inline void add_value(google::protobuf::RepeatedPtrField<onnx::ValueInfoProto>* list, const std::string& name,
                      const std::vector<int64_t>& dims) {
  auto* vi = list->Add();
  vi->set_name(name);
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = tt->mutable_shape();
  for (size_t i = 0; i < dims.size(); ++i) {
    auto* d = shape->add_dim();
    if (dims[i] >= 0)
      d->set_dim_value(dims[i]);
    else
      d->set_dim_param(std::string(1, "NMKLPQ"[i % 6]));
  }
}

inline void add_initializer(onnx::GraphProto* g, const std::string& name, const std::vector<int64_t>& dims,
                            const std::vector<float>& values) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t->add_dims(d);
  std::string raw(values.size() * sizeof(float), '\0');
  std::memcpy(raw.data(), values.data(), raw.size());
  t->set_raw_data(raw);
}

inline void add_node(onnx::GraphProto* g, const std::string& op, const std::vector<std::string>& in,
                     const std::vector<std::string>& out) {
  auto* n = g->add_node();
  n->set_op_type(op);
  for (const auto& i : in) n->add_input(i);
  for (const auto& o : out) n->add_output(o);
}

}  // namespace detail

// y = x * scale + bias, x and y float[N, 4].
inline std::string affine_model(float scale, float bias) {
  auto m = detail::new_model();
  auto* g = m.mutable_graph();
  detail::add_value(g->mutable_input(), "x", {-1, 4});
  detail::add_value(g->mutable_output(), "y", {-1, 4});
  detail::add_initializer(g, "a", {4}, std::vector<float>(4, scale));
  detail::add_initializer(g, "b", {4}, std::vector<float>(4, bias));
  detail::add_node(g, "Mul", {"x", "a"}, {"t"});
  detail::add_node(g, "Add", {"t", "b"}, {"y"});
  return m.SerializeAsString();
}

// Four chained MatMuls with 512x512 weights (4 MiB): x float[N, M, 512] -> y.
// At N=1, M=512 a run takes milliseconds, long enough to queue requests behind it.
inline std::string slow_model(uint32_t seed = 1) {
  auto m = detail::new_model();
  auto* g = m.mutable_graph();
  detail::add_value(g->mutable_input(), "x", {-1, -1, 512});
  detail::add_value(g->mutable_output(), "y", {-1, -1, 512});
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-0.04f, 0.04f);
  std::string prev = "x";
  for (int i = 0; i < 4; ++i) {
    std::vector<float> w(512 * 512);
    for (auto& v : w) v = dist(rng);
    const std::string wn = "w" + std::to_string(i), out = i == 3 ? "y" : "h" + std::to_string(i);
    detail::add_initializer(g, wn, {512, 512}, w);
    detail::add_node(g, "MatMul", {prev, wn}, {out});
    prev = out;
  }
  return m.SerializeAsString();
}

// `make tsan` runs the kernels single-threaded (libgomp is not instrumented, so
// its threads' accesses look unsynchronised): DESKML_TEST_THREADS=1.
inline int test_threads() {
  const char* t = std::getenv("DESKML_TEST_THREADS");
  return t ? std::atoi(t) : 0;
}

inline Tensor filled(Shape shape, float value) {
  Tensor t(DataType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = value;
  return t;
}

using deskml::testing::random_tensor;

}  // namespace deskml::serving::testing
