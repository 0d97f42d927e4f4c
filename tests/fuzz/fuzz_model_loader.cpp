// libFuzzer target: untrusted bytes -> ModelProto -> graph IR -> Session -> one
// run on zero-filled inputs. Any crash, sanitizer report, leak or hang is a bug;
// every expected failure must come back as a Status.
//
// Byte-level mutation mostly breaks the protobuf framing, so half the time this
// target mutates the parsed model instead: it swaps op types among the ops the
// CPU backend registers, rewires inputs, and sets attributes, dims and integer
// data to boundary values. That is what reaches the kernels' corner cases.
#include <google/protobuf/stubs/logging.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_registry.hpp"
#include "model_harness.hpp"
#include "onnx/onnx_pb.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

using Rng = std::minstd_rand;

int64_t pick_int(Rng& rng) {
  static const int64_t kValues[] = {0,
                                    1,
                                    2,
                                    3,
                                    4,
                                    -1,
                                    -2,
                                    -3,
                                    7,
                                    16,
                                    255,
                                    256,
                                    65535,
                                    int64_t{1} << 31,
                                    int64_t{1} << 32,
                                    int64_t{1} << 40,
                                    int64_t{1} << 62,
                                    std::numeric_limits<int64_t>::max(),
                                    std::numeric_limits<int64_t>::min(),
                                    std::numeric_limits<int32_t>::min()};
  if (rng() % 3 == 0) return static_cast<int64_t>(rng() % 9) - 2;
  return kValues[rng() % std::size(kValues)];
}

float pick_float(Rng& rng) {
  static const float kValues[] = {0.0f,
                                  1.0f,
                                  -1.0f,
                                  0.5f,
                                  2.0f,
                                  1e-30f,
                                  1e30f,
                                  -0.0f,
                                  std::numeric_limits<float>::infinity(),
                                  std::numeric_limits<float>::quiet_NaN(),
                                  std::numeric_limits<float>::denorm_min(),
                                  std::numeric_limits<float>::max()};
  return kValues[rng() % std::size(kValues)];
}

std::string pick_string(Rng& rng) {
  static const char* kValues[] = {"",
                                  "nearest",
                                  "linear",
                                  "cubic",
                                  "SAME_UPPER",
                                  "SAME_LOWER",
                                  "VALID",
                                  "NOTSET",
                                  "constant",
                                  "reflect",
                                  "edge",
                                  "wrap",
                                  "forward",
                                  "reverse",
                                  "bidirectional",
                                  "DCR",
                                  "CRD",
                                  "half_pixel",
                                  "asymmetric",
                                  "align_corners",
                                  "tf_crop_and_resize",
                                  "round_prefer_floor",
                                  "floor",
                                  "ceil",
                                  "UPPER",
                                  "LOWER",
                                  "NONE",
                                  "mean",
                                  "sum",
                                  "none",
                                  "ij,jk->ik",
                                  "...ii->...i",
                                  "i,i",
                                  "tanh",
                                  "Sigmoid",
                                  "Relu",
                                  "string",
                                  "\xff\xfe"};
  return kValues[rng() % std::size(kValues)];
}

const std::vector<std::string>& registered_ops() {
  static const std::vector<std::string> ops = [] {
    std::vector<std::string> out;
    for (const auto& [domain, op] : deskml::kernels::cpu::cpu_registry().ops()) {
      if (domain.empty()) out.push_back(op);
    }
    if (out.empty()) out.push_back("Identity");
    return out;
  }();
  return ops;
}

const char* kAttrNames[] = {"axis",
                            "axes",
                            "keepdims",
                            "perm",
                            "to",
                            "mode",
                            "pads",
                            "strides",
                            "kernel_shape",
                            "dilations",
                            "group",
                            "epsilon",
                            "alpha",
                            "beta",
                            "transA",
                            "transB",
                            "select_last_index",
                            "batch_dims",
                            "blocksize",
                            "direction",
                            "hidden_size",
                            "num_scan_inputs",
                            "auto_pad",
                            "ceil_mode",
                            "count_include_pad",
                            "largest",
                            "sorted",
                            "k",
                            "reduction",
                            "allowzero",
                            "start",
                            "end",
                            "split",
                            "num_outputs",
                            "exclusive",
                            "reverse",
                            "equation",
                            "coordinate_transformation_mode",
                            "output_padding",
                            "output_shape",
                            "storage_order",
                            "p",
                            "bias",
                            "lambd",
                            "noop_with_empty_axes",
                            "stash_type",
                            "value",
                            "value_int",
                            "value_ints",
                            "value_float",
                            "seed",
                            "dtype",
                            "shape",
                            "scale"};

std::vector<std::string> value_names(const onnx::GraphProto& g) {
  std::vector<std::string> names;
  for (const auto& vi : g.input()) names.push_back(vi.name());
  for (const auto& t : g.initializer()) names.push_back(t.name());
  for (const auto& n : g.node()) {
    for (const auto& o : n.output()) names.push_back(o);
  }
  return names;
}

void mutate_attribute(onnx::AttributeProto* a, Rng& rng) {
  using A = onnx::AttributeProto;
  switch (rng() % 4) {
    case 0:
      a->Clear();
      a->set_type(A::INT);
      a->set_i(pick_int(rng));
      break;
    case 1: {
      a->set_type(A::INTS);
      a->clear_i();
      if (a->ints_size() > 0 && rng() % 2) {
        a->set_ints(static_cast<int>(rng() % a->ints_size()), pick_int(rng));
      } else {
        a->clear_ints();
        const int n = static_cast<int>(rng() % 7);
        for (int i = 0; i < n; ++i) a->add_ints(rng() % 2 ? pick_int(rng) : static_cast<int64_t>(rng() % 4));
      }
      break;
    }
    case 2:
      a->set_type(A::FLOAT);
      a->set_f(pick_float(rng));
      break;
    default:
      a->set_type(A::STRING);
      a->set_s(pick_string(rng));
      break;
  }
}

void mutate_tensor(onnx::TensorProto* t, Rng& rng) {
  switch (rng() % 4) {
    case 0:
      if (t->dims_size() > 0) {
        t->set_dims(static_cast<int>(rng() % t->dims_size()),
                    rng() % 2 ? pick_int(rng) : static_cast<int64_t>(rng() % 5));
      } else {
        t->add_dims(static_cast<int64_t>(rng() % 4));
      }
      break;
    case 1:
      t->set_data_type(static_cast<int32_t>(1 + rng() % 16));
      break;
    case 2: {
      // Integer payloads (shapes, axes, indices, pads) at boundary values.
      std::string* raw = t->mutable_raw_data();
      if (raw->size() >= 8 && t->data_type() == onnx::TensorProto::INT64) {
        const int64_t v = pick_int(rng);
        std::memcpy(raw->data() + 8 * (rng() % (raw->size() / 8)), &v, 8);
      } else if (t->int64_data_size() > 0) {
        t->set_int64_data(static_cast<int>(rng() % t->int64_data_size()), pick_int(rng));
      } else if (raw->size() >= 4 && t->data_type() == onnx::TensorProto::FLOAT) {
        const float f = pick_float(rng);
        std::memcpy(raw->data() + 4 * (rng() % (raw->size() / 4)), &f, 4);
      }
      break;
    }
    default: {
      // Rebuild a small int64 tensor: shapes and axes are where kernels go wrong.
      t->clear_dims();
      t->clear_raw_data();
      t->clear_float_data();
      t->clear_int32_data();
      t->clear_int64_data();
      t->set_data_type(onnx::TensorProto::INT64);
      const int n = static_cast<int>(rng() % 5);
      if (n > 0 || rng() % 2) t->add_dims(n);
      for (int i = 0; i < std::max(n, t->dims_size() == 0 ? 1 : 0); ++i) {
        t->add_int64_data(rng() % 2 ? pick_int(rng) : static_cast<int64_t>(rng() % 5));
      }
      break;
    }
  }
}

void mutate_graph(onnx::GraphProto* g, Rng& rng, int depth) {
  // Occasionally descend into a subgraph instead.
  if (depth < 3 && rng() % 4 == 0) {
    std::vector<onnx::GraphProto*> subs;
    for (auto& n : *g->mutable_node()) {
      for (auto& a : *n.mutable_attribute()) {
        if (a.has_g()) subs.push_back(a.mutable_g());
      }
    }
    if (!subs.empty()) return mutate_graph(subs[rng() % subs.size()], rng, depth + 1);
  }
  const auto names = value_names(*g);
  switch (rng() % 9) {
    case 0:
    case 1:
      if (g->node_size() > 0) {
        const auto& ops = registered_ops();
        g->mutable_node(static_cast<int>(rng() % g->node_size()))->set_op_type(ops[rng() % ops.size()]);
      }
      break;
    case 2:
      if (g->node_size() > 0) {
        auto* n = g->mutable_node(static_cast<int>(rng() % g->node_size()));
        if (n->attribute_size() > 0 && rng() % 2) {
          auto* a = n->mutable_attribute(static_cast<int>(rng() % n->attribute_size()));
          if (!a->has_g()) mutate_attribute(a, rng);
        } else {
          auto* a = n->add_attribute();
          a->set_name(kAttrNames[rng() % std::size(kAttrNames)]);
          mutate_attribute(a, rng);
        }
      }
      break;
    case 3:
      if (g->node_size() > 0 && !names.empty()) {
        auto* n = g->mutable_node(static_cast<int>(rng() % g->node_size()));
        const std::string& name = rng() % 6 == 0 ? std::string() : names[rng() % names.size()];
        if (n->input_size() > 0 && rng() % 3) {
          n->set_input(static_cast<int>(rng() % n->input_size()), name);
        } else {
          n->add_input(name);
        }
      }
      break;
    case 4:
      if (g->node_size() > 0) {
        auto* n = g->mutable_node(static_cast<int>(rng() % g->node_size()));
        if (rng() % 2) {
          n->add_output(n->output_size() > 0 ? n->output(0) + "_" + std::to_string(rng() % 100) : "o");
        } else if (n->output_size() > 1) {
          n->mutable_output()->RemoveLast();
        }
      }
      break;
    case 5:
      if (g->initializer_size() > 0)
        mutate_tensor(g->mutable_initializer(static_cast<int>(rng() % g->initializer_size())), rng);
      break;
    case 6:
      if (g->input_size() > 0) {
        auto* tt = g->mutable_input(static_cast<int>(rng() % g->input_size()))->mutable_type()->mutable_tensor_type();
        auto* shape = tt->mutable_shape();
        if (rng() % 4 == 0) {
          tt->set_elem_type(static_cast<int32_t>(1 + rng() % 16));
        } else if (shape->dim_size() > 0 && rng() % 3) {
          shape->mutable_dim(static_cast<int>(rng() % shape->dim_size()))
              ->set_dim_value(static_cast<int64_t>(rng() % 6));
        } else if (rng() % 2) {
          shape->add_dim()->set_dim_value(static_cast<int64_t>(1 + rng() % 4));
        } else if (shape->dim_size() > 0) {
          shape->mutable_dim()->RemoveLast();
        }
      }
      break;
    case 7:
      // Duplicate a node under new output names, sometimes as an extra graph output.
      if (g->node_size() > 0 && g->node_size() < 64) {
        auto* copy = g->add_node();
        *copy = g->node(static_cast<int>(rng() % (g->node_size() - 1)));
        for (int i = 0; i < copy->output_size(); ++i) copy->set_output(i, copy->output(i) + "_dup");
        if (rng() % 2) g->add_output()->set_name(copy->output_size() ? copy->output(0) : "y");
      }
      break;
    default:
      if (g->node_size() > 1) {
        g->mutable_node()->SwapElements(static_cast<int>(rng() % g->node_size()),
                                        static_cast<int>(rng() % g->node_size()));
      }
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Protobuf logs some parse failures to stderr; a fuzzer would print millions.
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  Rng rng(seed);
  onnx::ModelProto model;
  if (rng() % 2 == 0 || !model.ParseFromArray(data, static_cast<int>(size)) || !model.has_graph()) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  const int steps = 1 + static_cast<int>(rng() % 3);
  for (int i = 0; i < steps; ++i) {
    if (rng() % 16 == 0 && model.opset_import_size() > 0) {
      model.mutable_opset_import(0)->set_version(static_cast<int64_t>(1 + rng() % 20));
    } else {
      mutate_graph(model.mutable_graph(), rng, 0);
    }
  }
  std::string out;
  if (!model.SerializeToString(&out) || out.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data, out.data(), out.size());
  return out.size();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)deskml::fuzz::exercise_model_bytes(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
