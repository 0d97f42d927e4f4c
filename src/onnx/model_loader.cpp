#include "onnx/model_loader.hpp"

#include <fcntl.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <new>
#include <unordered_set>

#include "onnx/onnx-data_pb.h"
#include "onnx/onnx_pb.h"
#include "onnx/tensor_proto.hpp"

namespace deskml::onnx_import {
namespace {

namespace fs = std::filesystem;
using graph::AttributeValue;
using graph::GraphPtr;

std::string normalize_domain(const std::string& d) { return d == "ai.onnx" ? std::string() : d; }

struct Converter {
  const LoadOptions& options;
  TensorReadLimits limits;
  std::map<std::string, int64_t> opsets;

  Result<graph::ValueType> convert_type(const onnx::TypeProto& t, int depth = 0) {
    graph::ValueType out;
    if (depth > 8) return invalid_model("type nesting too deep");
    if (t.has_tensor_type()) {
      const auto& tt = t.tensor_type();
      if (tt.elem_type() != 0) {
        DESKML_ASSIGN_OR_RETURN(out.dtype, dtype_from_onnx(tt.elem_type()));
      }
      if (tt.has_shape()) {
        std::vector<graph::Dim> dims;
        for (const auto& d : tt.shape().dim()) {
          if (d.has_dim_value()) {
            if (d.dim_value() < 0) return invalid_model("negative dimension in a declared shape");
            dims.push_back(graph::Dim::of(d.dim_value()));
          } else {
            dims.push_back(graph::Dim::named(d.dim_param()));
          }
        }
        out.shape = std::move(dims);
      }
      return out;
    }
    if (t.has_sequence_type()) {
      DESKML_ASSIGN_OR_RETURN(graph::ValueType elem, convert_type(t.sequence_type().elem_type(), depth + 1));
      elem.kind = graph::ValueType::Kind::kSequence;
      return elem;
    }
    if (t.has_optional_type()) {
      DESKML_ASSIGN_OR_RETURN(graph::ValueType elem, convert_type(t.optional_type().elem_type(), depth + 1));
      // An optional sequence stays a sequence with `optional` set; an optional tensor is kOptional.
      if (elem.kind == graph::ValueType::Kind::kTensor) elem.kind = graph::ValueType::Kind::kOptional;
      elem.optional = true;
      return elem;
    }
    if (t.value_case() == onnx::TypeProto::VALUE_NOT_SET) {
      out.kind = graph::ValueType::Kind::kUnknown;
      return out;
    }
    return unsupported("map and sparse-tensor values are not supported");
  }

  Result<graph::ValueInfo> convert_value_info(const onnx::ValueInfoProto& vi) {
    graph::ValueInfo out;
    out.name = vi.name();
    out.doc = vi.doc_string();
    if (vi.has_type()) {
      DESKML_ASSIGN_OR_RETURN(out.type, convert_type(vi.type()));
    } else {
      out.type.kind = graph::ValueType::Kind::kUnknown;
    }
    return out;
  }

  Result<AttributeValue> convert_attribute(onnx::AttributeProto& a, int depth) {
    using A = onnx::AttributeProto;
    if (!a.ref_attr_name().empty()) return unsupported("attribute references (functions) are not supported");
    switch (a.type()) {
      case A::FLOAT: return AttributeValue(a.f());
      case A::INT: return AttributeValue(static_cast<int64_t>(a.i()));
      case A::STRING: return AttributeValue(a.s());
      case A::TENSOR: {
        DESKML_ASSIGN_OR_RETURN(Tensor t, tensor_from_proto(*a.mutable_t(), limits));
        return AttributeValue(std::move(t));
      }
      case A::GRAPH: {
        DESKML_ASSIGN_OR_RETURN(graph::Graph g, convert_graph(*a.mutable_g(), depth + 1));
        return AttributeValue(GraphPtr(std::make_shared<graph::Graph>(std::move(g))));
      }
      case A::FLOATS: return AttributeValue(std::vector<float>(a.floats().begin(), a.floats().end()));
      case A::INTS: return AttributeValue(std::vector<int64_t>(a.ints().begin(), a.ints().end()));
      case A::STRINGS: return AttributeValue(std::vector<std::string>(a.strings().begin(), a.strings().end()));
      case A::TENSORS: {
        std::vector<Tensor> ts;
        for (auto& tp : *a.mutable_tensors()) {
          DESKML_ASSIGN_OR_RETURN(Tensor t, tensor_from_proto(tp, limits));
          ts.push_back(std::move(t));
        }
        return AttributeValue(std::move(ts));
      }
      case A::GRAPHS: {
        std::vector<GraphPtr> gs;
        for (auto& gp : *a.mutable_graphs()) {
          DESKML_ASSIGN_OR_RETURN(graph::Graph g, convert_graph(gp, depth + 1));
          gs.push_back(std::make_shared<graph::Graph>(std::move(g)));
        }
        return AttributeValue(std::move(gs));
      }
      case A::SPARSE_TENSOR:
      case A::SPARSE_TENSORS: return unsupported("sparse tensor attributes are not supported");
      case A::TYPE_PROTO:
      case A::TYPE_PROTOS: {
        // Only the element type matters to the ops that use these (SequenceEmpty, Optional).
        if (a.type() == A::TYPE_PROTO) {
          DESKML_ASSIGN_OR_RETURN(graph::ValueType vt, convert_type(a.tp()));
          return AttributeValue(static_cast<int64_t>(vt.dtype));
        }
        return unsupported("type-proto list attributes are not supported");
      }
      default:
        // Old exporters leave `type` unset; infer it from the populated field.
        if (a.has_f()) return AttributeValue(a.f());
        if (a.has_i()) return AttributeValue(static_cast<int64_t>(a.i()));
        if (a.has_s()) return AttributeValue(a.s());
        if (a.ints_size()) return AttributeValue(std::vector<int64_t>(a.ints().begin(), a.ints().end()));
        if (a.floats_size()) return AttributeValue(std::vector<float>(a.floats().begin(), a.floats().end()));
        return invalid_model("attribute '" + a.name() + "' has no type");
    }
  }

  Result<graph::Graph> convert_graph(onnx::GraphProto& g, int depth) {
    if (depth > options.max_subgraph_depth) {
      return invalid_model("subgraphs are nested more than " + std::to_string(options.max_subgraph_depth) +
                           " levels deep");
    }
    graph::Graph out;
    out.name = g.name();
    for (auto& tp : *g.mutable_initializer()) {
      DESKML_ASSIGN_OR_RETURN(Tensor t, tensor_from_proto(tp, limits));
      if (tp.name().empty()) return invalid_model("an initializer has no name");
      if (!out.initializers.emplace(tp.name(), std::move(t)).second) {
        return invalid_model("initializer '" + tp.name() + "' is defined twice");
      }
    }
    if (g.sparse_initializer_size() > 0) return unsupported("sparse initializers are not supported");
    std::unordered_set<std::string> input_names;
    for (const auto& vi : g.input()) {
      DESKML_ASSIGN_OR_RETURN(graph::ValueInfo info, convert_value_info(vi));
      if (info.name.empty()) return invalid_model("a graph input has no name");
      if (!input_names.insert(info.name).second) {
        return invalid_model("graph input '" + info.name + "' is declared twice");
      }
      out.inputs.push_back(std::move(info));
    }
    for (const auto& vi : g.output()) {
      DESKML_ASSIGN_OR_RETURN(graph::ValueInfo info, convert_value_info(vi));
      if (info.name.empty()) return invalid_model("a graph output has no name");
      out.outputs.push_back(std::move(info));
    }
    for (const auto& vi : g.value_info()) {
      DESKML_ASSIGN_OR_RETURN(graph::ValueInfo info, convert_value_info(vi));
      out.value_types[info.name] = info.type;
    }
    out.nodes.reserve(static_cast<size_t>(g.node_size()));
    for (auto& np : *g.mutable_node()) {
      graph::Node n;
      n.name = np.name();
      n.op_type = np.op_type();
      n.domain = normalize_domain(np.domain());
      if (n.op_type.empty()) return invalid_model("a node has no op_type");
      auto it = opsets.find(n.domain);
      if (it == opsets.end()) {
        return invalid_model(n.label() + " uses domain '" + np.domain() + "', which the model does not import");
      }
      n.opset = static_cast<int>(std::min<int64_t>(it->second, 100000));
      n.inputs.assign(np.input().begin(), np.input().end());
      n.outputs.assign(np.output().begin(), np.output().end());
      for (auto& ap : *np.mutable_attribute()) {
        auto converted = convert_attribute(ap, depth);
        if (!converted.ok()) return converted.status().with_context(n.label() + " attribute '" + ap.name() + "'");
        n.attributes[ap.name()] = std::move(converted).value();
      }
      out.nodes.push_back(std::move(n));
    }
    return out;
  }
};

// Protobuf recurses once per nested message. Each level of subgraph costs three
// (Graph -> Node -> Attribute -> Graph), and a graph's own deepest chain (value
// info -> nested sequence/optional types -> shape -> dim) about thirty more.
int protobuf_recursion_limit(const LoadOptions& options) {
  const int depth = std::clamp(options.max_subgraph_depth, 0, 256);
  return 3 * (depth + 1) + 32;
}

Status validate_opsets(const std::map<std::string, int64_t>& opsets) {
  auto it = opsets.find("");
  if (it == opsets.end()) return Status::Ok();  // a graph of custom-domain ops only
  if (it->second < 1) return invalid_model("opset version " + std::to_string(it->second) + " is invalid");
  return Status::Ok();
}

// Protobuf cannot parse a message of 2 GiB or more, whatever the options say.
uint64_t model_byte_limit(const LoadOptions& options) { return std::min<uint64_t>(options.max_model_bytes, INT_MAX); }

// A model of `size` bytes is worth parsing: not empty, within the limit.
Status check_model_size(uint64_t size, const LoadOptions& options) {
  const uint64_t limit = model_byte_limit(options);
  if (size > limit) {
    return out_of_range("model is " + std::to_string(size) + " bytes; the limit is " + std::to_string(limit));
  }
  if (size == 0) return invalid_model("the model is empty (0 bytes)");
  return Status::Ok();
}

// Parses a ModelProto from `input` (whose size check_model_size passed).
Result<onnx::ModelProto> parse_model(google::protobuf::io::ZeroCopyInputStream& input, const LoadOptions& options) {
  onnx::ModelProto proto;
  const int recursion_limit = protobuf_recursion_limit(options);
  google::protobuf::io::CodedInputStream stream(&input);
  stream.SetTotalBytesLimit(static_cast<int>(model_byte_limit(options)));
  stream.SetRecursionLimit(recursion_limit);
  if (!proto.ParseFromCodedStream(&stream) || !stream.ConsumedEntireMessage()) {
    return invalid_model("not a valid ONNX model: protobuf parsing failed (the file is truncated, is not an .onnx "
                         "model, or nests messages more than " + std::to_string(recursion_limit) +
                         " levels deep, i.e. subgraphs beyond the " + std::to_string(options.max_subgraph_depth) +
                         "-level limit)");
  }
  return proto;
}

// Converts a parsed model. Tensors take over the proto's raw data rather than
// copy it, so `proto` is left without its weights.
Result<graph::Model> convert_model(onnx::ModelProto& proto, const fs::path& base_dir, const LoadOptions& options) {
  if (!proto.has_graph()) return invalid_model("the model has no graph");
  if (proto.functions_size() > 0) {
    return unsupported("model-local functions are not supported yet");
  }

  graph::Model model;
  model.ir_version = proto.ir_version();
  model.producer_name = proto.producer_name();
  model.producer_version = proto.producer_version();
  for (const auto& kv : proto.metadata_props()) model.metadata[kv.key()] = kv.value();
  for (const auto& op : proto.opset_import()) model.opsets[normalize_domain(op.domain())] = op.version();
  // IR version 3 and older could omit opset_import; ONNX then means opset 1.
  if (proto.opset_import_size() == 0) model.opsets[""] = 1;
  DESKML_RETURN_IF_ERROR(validate_opsets(model.opsets));

  Converter converter{options, TensorReadLimits{base_dir, options.max_external_bytes, options.external_files}, model.opsets};
  DESKML_ASSIGN_OR_RETURN(model.graph, converter.convert_graph(*proto.mutable_graph(), 0));
  return model;
}

// Parses and converts, with the errors every entry point turns into a Status.
Result<graph::Model> load_parsed(google::protobuf::io::ZeroCopyInputStream& input, const fs::path& base_dir,
                                 const LoadOptions& options) {
  try {
    DESKML_ASSIGN_OR_RETURN(onnx::ModelProto proto, parse_model(input, options));
    return convert_model(proto, base_dir, options);
  } catch (const Error& e) {
    return e.status();
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kResourceExhausted, "out of memory while loading the model");
  }
}

}  // namespace

Result<graph::Model> load_model_from_bytes(std::string_view bytes, const fs::path& base_dir,
                                           const LoadOptions& options) {
  DESKML_RETURN_IF_ERROR(check_model_size(bytes.size(), options));  // which also makes the size an int
  google::protobuf::io::ArrayInputStream input(bytes.data(), static_cast<int>(bytes.size()));
  return load_parsed(input, base_dir, options);
}

namespace {

// Checks a file protobuf will parse: a regular file of at most `limit` bytes
// (< 2 GiB). Returns its size.
Result<uint64_t> checked_size(const fs::path& path, uint64_t limit, const char* what) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) return not_found(std::string(what) + " '" + path.string() + "' does not exist");
  // Devices and pipes (/dev/zero, /dev/stdin) never end: never read one.
  if (!fs::is_regular_file(status)) {
    return invalid_argument(std::string(what) + " '" + path.string() + "' is not a regular file");
  }
  const uint64_t size = fs::file_size(path, ec);
  if (ec) return io_error(std::string(what) + " '" + path.string() + "': " + ec.message());
  limit = std::min<uint64_t>(limit, INT_MAX);
  if (size > limit) {
    return out_of_range(std::string(what) + " '" + path.string() + "' is " + std::to_string(size) +
                        " bytes; the limit is " + std::to_string(limit));
  }
  return size;
}

// Reads a whole file that protobuf will parse.
Result<std::string> read_bounded(const fs::path& path, uint64_t limit, const char* what) {
  DESKML_ASSIGN_OR_RETURN(uint64_t size, checked_size(path, limit, what));
  std::ifstream in(path, std::ios::binary);
  std::string bytes(size, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (!in) return io_error("could not read " + std::string(what) + " '" + path.string() + "'");
  return bytes;
}

// Closes a file descriptor on every path out.
struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

Result<Value> convert_value_file(const std::string& bytes, const fs::path& path, const graph::ValueType& expected) {
  const TensorReadLimits limits{path.parent_path(), uint64_t{1} << 32};
  auto parse_error = [&] { return invalid_argument("'" + path.string() + "' is not a valid serialized value"); };
  auto read_sequence = [&](const onnx::SequenceProto& seq) -> Result<Value> {
    std::vector<Tensor> items;
    for (const auto& tp : seq.tensor_values()) {
      DESKML_ASSIGN_OR_RETURN(Tensor t, tensor_from_proto(tp, limits));
      items.push_back(std::move(t));
    }
    return Value::from_sequence(std::move(items), expected.dtype);
  };
  if (expected.kind == graph::ValueType::Kind::kSequence && !expected.optional) {
    onnx::SequenceProto seq;
    if (!seq.ParseFromString(bytes)) return parse_error();
    return read_sequence(seq);
  }
  if (expected.optional) {
    onnx::OptionalProto opt;
    if (!opt.ParseFromString(bytes)) return parse_error();
    if (opt.has_tensor_value()) {
      DESKML_ASSIGN_OR_RETURN(Tensor t, tensor_from_proto(opt.tensor_value(), limits));
      return Value::from_tensor(std::move(t));
    }
    if (opt.has_sequence_value()) return read_sequence(opt.sequence_value());
    return Value{};
  }
  onnx::TensorProto tp;
  if (!tp.ParseFromString(bytes)) return parse_error();
  DESKML_ASSIGN_OR_RETURN(Tensor t, tensor_from_proto(tp, limits));
  return Value::from_tensor(std::move(t));
}

}  // namespace

Result<graph::Model> load_model(const fs::path& path, const LoadOptions& options) {
  try {
    DESKML_ASSIGN_OR_RETURN(uint64_t size, checked_size(path, options.max_model_bytes, "model file"));
    if (Status st = check_model_size(size, options); !st.ok()) return st.with_context(path.filename().string());
    // Parsed straight from the file through a small buffer: the model's bytes
    // are never held twice, and its weights are copied once (into the proto,
    // whose raw data the tensors then take over).
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return io_error("could not open model file '" + path.string() + "': " + std::strerror(errno));
    const FdCloser closer{fd};
    constexpr int kReadBlock = 1 << 20;
    google::protobuf::io::FileInputStream input(fd, kReadBlock);
    auto model = load_parsed(input, path.has_parent_path() ? path.parent_path() : fs::path("."), options);
    if (input.GetErrno() != 0) {
      return io_error("could not read model file '" + path.string() + "': " + std::strerror(input.GetErrno()));
    }
    if (!model.ok()) return model.status().with_context(path.filename().string());
    return model;
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kResourceExhausted, "out of memory reading model file '" + path.string() + "'");
  }
}

Result<Value> load_value_file(const fs::path& path, const graph::ValueType& expected) {
  try {
    DESKML_ASSIGN_OR_RETURN(std::string bytes, read_bounded(path, INT_MAX, "value file"));
    return convert_value_file(bytes, path, expected);
  } catch (const Error& e) {
    return e.status();
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kResourceExhausted, "out of memory reading value file '" + path.string() + "'");
  }
}

}  // namespace deskml::onnx_import
