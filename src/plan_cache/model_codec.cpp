#include "plan_cache/model_codec.hpp"

#include <algorithm>
#include <cstring>
#include <new>

namespace deskml::plan_cache {

namespace {

constexpr int kMaxGraphDepth = 32;

// --- writing ---------------------------------------------------------------

void put_dims(std::string& out, const Shape& shape) {
  put_u64(out, shape.size());
  for (int64_t d : shape) put_u64(out, static_cast<uint64_t>(d));
}

void put_tensor(std::string& out, const Tensor& t, BlobLayout& blobs) {
  put_u64(out, static_cast<uint64_t>(t.dtype()));
  if (!t.defined()) return;
  put_dims(out, t.shape());
  if (t.dtype() == DataType::kString) {
    for (const std::string& s : t.values<std::string>()) put_str(out, s);
    return;
  }
  put_u64(out, blobs.add(t.raw_data(), t.nbytes()));
  put_u64(out, t.nbytes());
}

void put_type(std::string& out, const graph::ValueType& type) {
  put_u8(out, static_cast<uint8_t>(type.kind));
  put_u64(out, static_cast<uint64_t>(type.dtype));
  put_u8(out, type.shape.has_value() ? 1 : 0);
  if (type.shape) {
    put_u64(out, type.shape->size());
    for (const graph::Dim& d : *type.shape) {
      put_u64(out, static_cast<uint64_t>(d.value));
      put_str(out, d.symbol);
    }
  }
  put_u8(out, type.optional ? 1 : 0);
}

void put_info(std::string& out, const graph::ValueInfo& info) {
  put_str(out, info.name);
  put_type(out, info.type);
  put_str(out, info.doc);
}

void put_strings(std::string& out, const std::vector<std::string>& v) {
  put_u64(out, v.size());
  for (const auto& s : v) put_str(out, s);
}

void put_graph(std::string& out, const graph::Graph& g, BlobLayout& blobs);

void put_attribute(std::string& out, const graph::AttributeValue& value, BlobLayout& blobs) {
  put_u8(out, static_cast<uint8_t>(value.index()));
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, float>) {
          put_f32(out, v);
        } else if constexpr (std::is_same_v<T, int64_t>) {
          put_u64(out, static_cast<uint64_t>(v));
        } else if constexpr (std::is_same_v<T, std::string>) {
          put_str(out, v);
        } else if constexpr (std::is_same_v<T, Tensor>) {
          put_tensor(out, v, blobs);
        } else if constexpr (std::is_same_v<T, graph::GraphPtr>) {
          put_graph(out, *v, blobs);
        } else if constexpr (std::is_same_v<T, std::vector<float>>) {
          put_u64(out, v.size());
          for (float f : v) put_f32(out, f);
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
          put_u64(out, v.size());
          for (int64_t i : v) put_u64(out, static_cast<uint64_t>(i));
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          put_strings(out, v);
        } else if constexpr (std::is_same_v<T, std::vector<Tensor>>) {
          put_u64(out, v.size());
          for (const Tensor& t : v) put_tensor(out, t, blobs);
        } else {
          static_assert(std::is_same_v<T, std::vector<graph::GraphPtr>>);
          put_u64(out, v.size());
          for (const auto& sub : v) put_graph(out, *sub, blobs);
        }
      },
      value);
}

// Map contents in name order, so the same model always gives the same bytes.
template <typename Map>
std::vector<const typename Map::value_type*> sorted(const Map& map) {
  std::vector<const typename Map::value_type*> items;
  for (const auto& item : map) items.push_back(&item);
  std::sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
  return items;
}

void put_graph(std::string& out, const graph::Graph& g, BlobLayout& blobs) {
  put_str(out, g.name);
  put_u64(out, g.nodes.size());
  for (const graph::Node& n : g.nodes) {
    put_str(out, n.name);
    put_str(out, n.op_type);
    put_str(out, n.domain);
    put_u64(out, static_cast<uint64_t>(n.opset));
    put_strings(out, n.inputs);
    put_strings(out, n.outputs);
    put_u64(out, n.attributes.size());
    for (const auto& [key, value] : n.attributes) {
      put_str(out, key);
      put_attribute(out, value, blobs);
    }
  }
  put_u64(out, g.inputs.size());
  for (const auto& vi : g.inputs) put_info(out, vi);
  put_u64(out, g.outputs.size());
  for (const auto& vi : g.outputs) put_info(out, vi);
  put_u64(out, g.initializers.size());
  for (const auto* item : sorted(g.initializers)) {
    put_str(out, item->first);
    put_tensor(out, item->second, blobs);
  }
  put_u64(out, g.value_types.size());
  for (const auto* item : sorted(g.value_types)) {
    put_str(out, item->first);
    put_type(out, item->second);
  }
}

// --- reading ---------------------------------------------------------------

[[noreturn]] void malformed(const std::string& what) { throw_status(invalid_model("plan cache: " + what)); }

class Decoder {
 public:
  Decoder(std::string_view bytes, const BlobArea& blobs) : in_(bytes), blobs_(blobs) {}
  ByteReader& in() { return in_; }

  DataType dtype() {
    const uint64_t v = in_.u64();
    if (v == 0) return DataType::kUndefined;
    if (v > INT32_MAX) malformed("bad element type");
    auto dt = dtype_from_onnx(static_cast<int32_t>(v));
    if (!dt.ok()) malformed("bad element type");
    return *dt;
  }

  Tensor tensor() {
    const DataType dt = dtype();
    if (dt == DataType::kUndefined) return Tensor();
    Shape shape(in_.count(8));
    for (int64_t& d : shape) {
      d = in_.i64();
      if (d < 0) malformed("negative dimension");
    }
    const int64_t numel = shape_numel(shape);  // throws past the element limit
    if (dt == DataType::kString) {
      if (static_cast<uint64_t>(numel) > in_.left() / 8) malformed("a count runs past the end");
      Tensor t(dt, shape);
      for (std::string& s : std::span<std::string>(t.data<std::string>(), static_cast<size_t>(numel))) s = in_.str();
      return t;
    }
    const uint64_t offset = in_.u64(), nbytes = in_.u64();
    if (nbytes != static_cast<uint64_t>(numel) * dtype_size(dt)) malformed("a tensor's size disagrees with its shape");
    if (offset % kBlobAlignment != 0 || offset > blobs_.size || nbytes > blobs_.size - offset) {
      malformed("a tensor lies outside the blob area");
    }
    return Tensor::wrap(dt, std::move(shape), const_cast<std::byte*>(blobs_.base) + offset, blobs_.owner);
  }

  graph::ValueType type() {
    graph::ValueType t;
    const uint8_t kind = in_.u8();
    if (kind > static_cast<uint8_t>(graph::ValueType::Kind::kUnknown)) malformed("bad value kind");
    t.kind = static_cast<graph::ValueType::Kind>(kind);
    t.dtype = dtype();
    if (in_.u8() != 0) {
      std::vector<graph::Dim> dims(in_.count(16));
      for (graph::Dim& d : dims) {
        d.value = in_.i64();
        if (d.value < -1) malformed("bad dimension");
        d.symbol = in_.str();
      }
      t.shape = std::move(dims);
    }
    t.optional = in_.u8() != 0;
    return t;
  }

  graph::ValueInfo info() {
    graph::ValueInfo vi;
    vi.name = in_.str();
    vi.type = type();
    vi.doc = in_.str();
    return vi;
  }

  std::vector<std::string> strings() {
    std::vector<std::string> v(in_.count(8));
    for (auto& s : v) s = in_.str();
    return v;
  }

  graph::AttributeValue attribute(int depth) {
    switch (in_.u8()) {
      case 0:
        return in_.f32();
      case 1:
        return in_.i64();
      case 2:
        return in_.str();
      case 3:
        return tensor();
      case 4:
        return graph(depth + 1);
      case 5: {
        std::vector<float> v(in_.count(4));
        for (float& f : v) f = in_.f32();
        return v;
      }
      case 6: {
        std::vector<int64_t> v(in_.count(8));
        for (int64_t& i : v) i = in_.i64();
        return v;
      }
      case 7:
        return strings();
      case 8: {
        std::vector<Tensor> v(in_.count(8));
        for (Tensor& t : v) t = tensor();
        return v;
      }
      case 9: {
        std::vector<graph::GraphPtr> v(in_.count(8));
        for (auto& g : v) g = graph(depth + 1);
        return v;
      }
      default:
        malformed("bad attribute kind");
    }
  }

  graph::GraphPtr graph(int depth) {
    auto g = std::make_shared<graph::Graph>();
    read_graph(*g, depth);
    return g;
  }

  void read_graph(graph::Graph& g, int depth) {
    if (depth > kMaxGraphDepth) malformed("subgraphs nest too deep");
    g.name = in_.str();
    g.nodes.resize(in_.count(48));
    for (graph::Node& n : g.nodes) {
      n.name = in_.str();
      n.op_type = in_.str();
      n.domain = in_.str();
      const int64_t opset = in_.i64();
      if (opset < 0 || opset > INT32_MAX) malformed("bad opset");
      n.opset = static_cast<int>(opset);
      n.inputs = strings();
      n.outputs = strings();
      const uint64_t attrs = in_.count(10);
      for (uint64_t i = 0; i < attrs; ++i) {
        std::string key = in_.str();
        n.attributes.insert_or_assign(std::move(key), attribute(depth));
      }
    }
    g.inputs.resize(in_.count(26));
    for (auto& vi : g.inputs) vi = info();
    g.outputs.resize(in_.count(26));
    for (auto& vi : g.outputs) vi = info();
    const uint64_t inits = in_.count(16);
    for (uint64_t i = 0; i < inits; ++i) {
      std::string name = in_.str();
      g.initializers.insert_or_assign(std::move(name), tensor());
    }
    const uint64_t types = in_.count(18);
    for (uint64_t i = 0; i < types; ++i) {
      std::string name = in_.str();
      g.value_types.insert_or_assign(std::move(name), type());
    }
  }

 private:
  ByteReader in_;
  const BlobArea& blobs_;
};

}  // namespace

uint64_t BlobLayout::add(const void* data, uint64_t size) {
  const uint64_t offset = (total_ + kBlobAlignment - 1) / kBlobAlignment * kBlobAlignment;
  spans_.push_back({data, size, offset});
  total_ = offset + size;
  return offset;
}

void put_u8(std::string& out, uint8_t v) { out.push_back(static_cast<char>(v)); }

void put_u64(std::string& out, uint64_t v) {
  char b[8];
  std::memcpy(b, &v, 8);  // little-endian: the cache is keyed by this CPU
  out.append(b, 8);
}

void put_f32(std::string& out, float v) {
  char b[4];
  std::memcpy(b, &v, 4);
  out.append(b, 4);
}

void put_str(std::string& out, std::string_view s) {
  put_u64(out, s.size());
  out.append(s);
}

std::string_view ByteReader::take(size_t n) {
  if (n > bytes_.size() - pos_) malformed("truncated");
  std::string_view v = bytes_.substr(pos_, n);
  pos_ += n;
  return v;
}

uint8_t ByteReader::u8() { return static_cast<uint8_t>(take(1)[0]); }

uint64_t ByteReader::u64() {
  uint64_t v;
  std::memcpy(&v, take(8).data(), 8);
  return v;
}

float ByteReader::f32() {
  float v;
  std::memcpy(&v, take(4).data(), 4);
  return v;
}

std::string ByteReader::str() {
  const uint64_t n = u64();
  if (n > bytes_.size() - pos_) malformed("truncated");
  return std::string(take(static_cast<size_t>(n)));
}

uint64_t ByteReader::count(size_t min_item_bytes) {
  const uint64_t n = u64();
  const uint64_t left = bytes_.size() - pos_;
  if (min_item_bytes > 0 ? n > left / min_item_bytes : n > left) malformed("a count runs past the end");
  return n;
}

void encode_model(const graph::Model& model, BlobLayout& blobs, std::string& out) {
  put_u64(out, static_cast<uint64_t>(model.ir_version));
  put_u64(out, model.opsets.size());
  for (const auto& [domain, version] : model.opsets) {
    put_str(out, domain);
    put_u64(out, static_cast<uint64_t>(version));
  }
  put_str(out, model.producer_name);
  put_str(out, model.producer_version);
  put_u64(out, model.metadata.size());
  for (const auto& [key, value] : model.metadata) {
    put_str(out, key);
    put_str(out, value);
  }
  put_graph(out, model.graph, blobs);
}

Result<graph::Model> decode_model(std::string_view bytes, const BlobArea& blobs, size_t* consumed) {
  try {
    Decoder d(bytes, blobs);
    ByteReader& in = d.in();
    graph::Model m;
    m.ir_version = in.i64();
    const uint64_t opsets = in.count(16);
    for (uint64_t i = 0; i < opsets; ++i) {
      std::string domain = in.str();
      m.opsets[std::move(domain)] = in.i64();
    }
    m.producer_name = in.str();
    m.producer_version = in.str();
    const uint64_t metadata = in.count(16);
    for (uint64_t i = 0; i < metadata; ++i) {
      std::string key = in.str();
      m.metadata[std::move(key)] = in.str();
    }
    d.read_graph(m.graph, 0);
    if (consumed) *consumed = in.offset();
    return m;
  } catch (const Error& e) {
    const std::string& message = e.status().message();
    return invalid_model(message.rfind("plan cache:", 0) == 0 ? message : "plan cache: " + message);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kResourceExhausted, "out of memory while reading a plan cache");
  }
}

}  // namespace deskml::plan_cache
