// A compact binary form of a graph::Model for the plan cache: the structure
// (nodes, attributes, types, metadata) as bytes, and the tensors' numbers as
// references into a separate blob area that is memory-mapped when read back,
// so that loading a cached model copies no weights.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "graph/graph.hpp"

namespace deskml::plan_cache {

// Blobs start on this boundary inside the blob area (kernels want aligned weights).
inline constexpr uint64_t kBlobAlignment = 64;

// One block of bytes to store in the blob area, at `offset` from its start.
struct BlobSpan {
  const void* data = nullptr;
  uint64_t size = 0;
  uint64_t offset = 0;
};

// Lays out blobs one after another, each aligned.
class BlobLayout {
 public:
  // Where `size` bytes at `data` will lie in the blob area.
  uint64_t add(const void* data, uint64_t size);
  const std::vector<BlobSpan>& spans() const { return spans_; }
  uint64_t total() const { return total_; }

 private:
  std::vector<BlobSpan> spans_;
  uint64_t total_ = 0;
};

// Appends `model`'s structure to `out`; numeric tensors' bytes go to `blobs`.
void encode_model(const graph::Model& model, BlobLayout& blobs, std::string& out);

// The blob area of a mapped cache file: tensors become views of it that keep `owner` alive.
struct BlobArea {
  const std::byte* base = nullptr;
  uint64_t size = 0;
  std::shared_ptr<void> owner;
};

// Reads a model written by encode_model. Every count, offset and enum is
// checked: malformed bytes give InvalidModel, never a read out of bounds.
// `consumed` (when given) is set to the bytes read.
Result<graph::Model> decode_model(std::string_view bytes, const BlobArea& blobs, size_t* consumed = nullptr);

// Bounds-checked reading of the primitive values encode_model writes; throws
// Error(InvalidModel) past the end.
class ByteReader {
 public:
  explicit ByteReader(std::string_view bytes) : bytes_(bytes) {}
  uint8_t u8();
  uint64_t u64();
  int64_t i64() { return static_cast<int64_t>(u64()); }
  float f32();
  std::string str();
  // A count of items that each take at least `min_item_bytes`: bounded by what is left.
  uint64_t count(size_t min_item_bytes = 1);
  size_t offset() const { return pos_; }
  size_t left() const { return bytes_.size() - pos_; }
  bool at_end() const { return pos_ == bytes_.size(); }

 private:
  std::string_view take(size_t n);
  std::string_view bytes_;
  size_t pos_ = 0;
};

// The writing side of ByteReader.
void put_u8(std::string& out, uint8_t v);
void put_u64(std::string& out, uint64_t v);
void put_f32(std::string& out, float v);
void put_str(std::string& out, std::string_view s);

}  // namespace deskml::plan_cache
