#include "serving/batching.hpp"

#include <cstring>
#include <numeric>

namespace deskml::serving {

namespace {

// Copies `rows` rows starting at row `from` of `src` into `dst` at row `at`.
void copy_rows(const Tensor& src, int64_t from, Tensor& dst, int64_t at, int64_t rows) {
  const int64_t row_elems = src.rank() == 0 || src.dim(0) == 0 ? 0 : src.numel() / src.dim(0);
  if (src.dtype() == DataType::kString) {
    const auto* s = src.data<std::string>() + from * row_elems;
    auto* d = dst.data<std::string>() + at * row_elems;
    std::copy(s, s + rows * row_elems, d);
    return;
  }
  const size_t row_bytes = static_cast<size_t>(row_elems) * dtype_size(src.dtype());
  if (row_bytes * static_cast<size_t>(rows) == 0) return;
  std::memcpy(static_cast<char*>(dst.raw_data()) + static_cast<size_t>(at) * row_bytes,
              static_cast<const char*>(src.raw_data()) + static_cast<size_t>(from) * row_bytes,
              row_bytes * static_cast<size_t>(rows));
}

}  // namespace

Result<int64_t> batch_rows(const Tensors& inputs) {
  if (inputs.empty()) return invalid_argument("a batched request needs at least one input");
  int64_t rows = -1;
  for (const auto& [name, t] : inputs) {
    if (t.rank() < 1) return invalid_argument("input '" + name + "' is a scalar; batched inputs need a batch axis");
    if (rows >= 0 && t.dim(0) != rows) {
      return invalid_argument("inputs disagree on the batch size: '" + name + "' has " + std::to_string(t.dim(0)) +
                              " rows, others " + std::to_string(rows));
    }
    rows = t.dim(0);
  }
  return rows;
}

std::string batch_signature(const Tensors& inputs) {
  std::string sig;
  for (const auto& [name, t] : inputs) {
    sig += name;
    sig += ':';
    sig += std::to_string(static_cast<int>(t.dtype()));
    for (int64_t d = 1; d < t.rank(); ++d) {
      sig += ',';
      sig += std::to_string(t.shape()[static_cast<size_t>(d)]);
    }
    sig += ';';
  }
  return sig;
}

Tensors stack_requests(const std::vector<const Tensors*>& requests) {
  const Tensors& first = *requests.front();
  Tensors out;
  out.reserve(first.size());
  for (size_t i = 0; i < first.size(); ++i) {
    int64_t total = 0;
    for (const Tensors* r : requests) total += (*r)[i].second.dim(0);
    Shape shape = first[i].second.shape();
    shape[0] = total;
    Tensor batch(first[i].second.dtype(), shape);
    int64_t at = 0;
    for (const Tensors* r : requests) {
      const Tensor& t = (*r)[i].second;
      copy_rows(t, 0, batch, at, t.dim(0));
      at += t.dim(0);
    }
    out.emplace_back(first[i].first, std::move(batch));
  }
  return out;
}

Result<std::vector<Tensors>> split_outputs(const Tensors& outputs, const std::vector<int64_t>& rows) {
  const int64_t total = std::accumulate(rows.begin(), rows.end(), int64_t{0});
  std::vector<Tensors> parts(rows.size());
  for (auto& p : parts) p.reserve(outputs.size());
  for (const auto& [name, t] : outputs) {
    if (t.rank() < 1 || t.dim(0) != total) {
      return invalid_model("output '" + name + "' has shape " + shape_to_string(t.shape()) + ", not a first axis of " +
                           std::to_string(total) + " rows; the model cannot be batched");
    }
    // Each part is a view of its rows; together they keep the batch's tensor alive.
    auto holder = std::make_shared<Tensor>(t);
    const int64_t row_elems = total == 0 ? 0 : t.numel() / total;
    const size_t row_bytes = static_cast<size_t>(row_elems) * dtype_size(t.dtype());
    auto* base = static_cast<char*>(holder->raw_data());
    int64_t at = 0;
    for (size_t r = 0; r < rows.size(); ++r) {
      Shape shape = t.shape();
      shape[0] = rows[r];
      void* data = base + static_cast<size_t>(at) * row_bytes;
      parts[r].emplace_back(name, Tensor::wrap(t.dtype(), std::move(shape), data, std::shared_ptr<void>(holder, data)));
      at += rows[r];
    }
  }
  return parts;
}

}  // namespace deskml::serving
