#include "serving/batching.hpp"

#include <algorithm>
#include <functional>
#include <numeric>

namespace deskml::serving {

namespace {

// Rows along axis 0 (callers have checked rank >= 1). Not Tensor::dim: this runs
// per request and row, where its axis normalisation shows.
inline int64_t rows_of(const Tensor& t) { return t.shape()[0]; }

}  // namespace

Result<int64_t> batch_rows(const Tensors& inputs) {
  if (inputs.empty()) return invalid_argument("a batched request needs at least one input");
  int64_t rows = -1;
  for (const auto& [name, t] : inputs) {
    if (t.rank() < 1) return invalid_argument("input '" + name + "' is a scalar; batched inputs need a batch axis");
    if (rows >= 0 && rows_of(t) != rows) {
      return invalid_argument("inputs disagree on the batch size: '" + name + "' has " + std::to_string(rows_of(t)) +
                              " rows, others " + std::to_string(rows));
    }
    rows = rows_of(t);
  }
  return rows;
}

uint64_t batch_signature(const Tensors& inputs) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
  // Names are left out: prepared inputs come in the model's declared order, and
  // stackable() compares them.
  mix(inputs.size());
  for (const auto& input : inputs) {
    const Tensor& t = input.second;
    mix(static_cast<uint64_t>(t.dtype()));
    mix(static_cast<uint64_t>(t.rank()));
    for (int64_t d = 1; d < t.rank(); ++d) mix(static_cast<uint64_t>(t.shape()[static_cast<size_t>(d)]));
  }
  return h;
}

bool stackable(const Tensors& a, const Tensors& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const Tensor& x = a[i].second;
    const Tensor& y = b[i].second;
    if (a[i].first != b[i].first || x.dtype() != y.dtype() || x.rank() != y.rank()) return false;
    if (!std::equal(x.shape().begin() + 1, x.shape().end(), y.shape().begin() + 1)) return false;
  }
  return true;
}

Tensors stack_requests(const std::vector<const Tensors*>& requests) {
  const Tensors& first = *requests.front();
  Tensors out;
  out.reserve(first.size());
  for (size_t i = 0; i < first.size(); ++i) {
    std::vector<const Tensor*> parts;
    parts.reserve(requests.size());
    for (const Tensors* r : requests) parts.push_back(&(*r)[i].second);
    out.emplace_back(first[i].first, Tensor::concat_rows(parts));
  }
  return out;
}

Result<std::vector<Tensors>> split_outputs(const Tensors& outputs, const std::vector<int64_t>& rows) {
  const int64_t total = std::accumulate(rows.begin(), rows.end(), int64_t{0});
  std::vector<Tensors> parts(rows.size());
  for (auto& p : parts) p.reserve(outputs.size());
  for (const auto& [name, t] : outputs) {
    if (t.rank() < 1 || rows_of(t) != total) {
      return invalid_model("output '" + name + "' has shape " + shape_to_string(t.shape()) + ", not a first axis of " +
                           std::to_string(total) + " rows; the model cannot be batched");
    }
    int64_t at = 0;
    for (size_t r = 0; r < rows.size(); ++r) {
      parts[r].emplace_back(name, t.rows(at, rows[r]));  // a view: the parts share the batch's storage
      at += rows[r];
    }
  }
  return parts;
}

}  // namespace deskml::serving
