// topk: the k largest values along the last axis, with their indices and optional labels.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <system_error>

#include "serving/steps/builtin.hpp"

namespace deskml::serving::steps {
namespace {

constexpr std::uintmax_t kMaxLabelsFileBytes = 16u << 20;

// Resolves `relative` inside `base_dir`, refusing absolute paths, ".." components and
// anything (a symlink) whose real location is outside the real base_dir.
Result<std::filesystem::path> contained_path(const Params& p, std::string_view key, const std::string& relative) {
  namespace fs = std::filesystem;
  const fs::path rel(relative);
  if (relative.empty()) return p.error(key, "is empty");
  if (rel.is_absolute() || rel.has_root_name() || rel.has_root_directory()) {
    return p.error(key, "must be a path relative to the ensemble's folder, got '" + relative + "'");
  }
  for (const fs::path& part : rel) {
    if (part == "..") return p.error(key, "must stay inside the ensemble's folder, got '" + relative + "'");
  }
  std::error_code ec;
  const fs::path base = fs::weakly_canonical(p.base_dir(), ec);
  if (ec) return io_error("cannot resolve the ensemble folder " + p.base_dir().string() + ": " + ec.message());
  const fs::path full = fs::weakly_canonical(base / rel, ec);
  if (ec) return p.error(key, "cannot resolve '" + relative + "': " + ec.message());
  const fs::path inside = full.lexically_relative(base);
  if (inside.empty() || *inside.begin() == ".." || inside.is_absolute()) {
    return p.error(key, "'" + relative + "' resolves outside the ensemble's folder");
  }
  return full;
}

Result<std::vector<std::string>> read_labels(const Params& p, const std::string& relative) {
  DESKML_ASSIGN_OR_RETURN(std::filesystem::path path, contained_path(p, "labels", relative));
  std::error_code ec;
  const std::uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) return p.error("labels", "cannot read '" + relative + "': " + ec.message());
  if (size > kMaxLabelsFileBytes) return p.error("labels", "'" + relative + "' is larger than 16 MiB");
  std::ifstream in(path, std::ios::binary);
  if (!in) return p.error("labels", "cannot open '" + relative + "'");
  std::vector<std::string> labels;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    labels.push_back(line);
  }
  if (in.bad()) return p.error("labels", "error reading '" + relative + "'");
  if (labels.empty()) return p.error("labels", "'" + relative + "' holds no labels");
  return labels;
}

class TopK final : public BuiltinStep {
 public:
  TopK(int64_t k, std::vector<std::string> labels) : BuiltinStep("topk"), k_(k), labels_(std::move(labels)) {}

  StepPorts ports() const override {
    StepPorts ports{{"input"}, false, 1, 1, {"indices", "scores"}};
    if (!labels_.empty()) ports.outputs.push_back("labels");
    return ports;
  }

 protected:
  Result<Tensors> compute(const Tensors& inputs) const override {
    DESKML_ASSIGN_OR_RETURN(const Tensor* x, input(inputs, "input"));
    if (x->dtype() != DataType::kFloat32) return bad_input("input must be float, got " + x->description());
    if (x->rank() == 0) return bad_input("input must have at least one axis");
    const int64_t n = x->dim(-1);
    if (n == 0) return bad_input("last axis of " + x->description() + " is empty");
    const int64_t k = std::min(k_, n);
    const int64_t rows = x->numel() / n;
    Shape shape = x->shape();
    shape.back() = k;
    Tensor indices(DataType::kInt64, shape);
    Tensor scores(DataType::kFloat32, shape);
    Tensor labels;
    if (!labels_.empty()) labels = Tensor(DataType::kString, shape);
    const float* in = x->data<float>();
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = in + r * n;
      std::iota(order.begin(), order.end(), int64_t{0});
      // Descending, NaN last, ties to the lower index: a strict total order.
      std::partial_sort(order.begin(), order.begin() + k, order.end(), [row](int64_t a, int64_t b) {
        const float va = row[a];
        const float vb = row[b];
        const bool na = std::isnan(va);
        const bool nb = std::isnan(vb);
        if (na != nb) return nb;
        if (!na && va != vb) return va > vb;
        return a < b;
      });
      for (int64_t j = 0; j < k; ++j) {
        const int64_t idx = order[j];
        indices.data<int64_t>()[r * k + j] = idx;
        scores.data<float>()[r * k + j] = row[idx];
        if (labels.defined()) {
          if (idx >= static_cast<int64_t>(labels_.size())) {
            return bad_input("class " + std::to_string(idx) + " has no label (the labels file has " +
                             std::to_string(labels_.size()) + ")");
          }
          labels.data<std::string>()[r * k + j] = labels_[idx];
        }
      }
    }
    Tensors out;
    out.emplace_back("indices", std::move(indices));
    out.emplace_back("scores", std::move(scores));
    if (labels.defined()) out.emplace_back("labels", std::move(labels));
    return out;
  }

 private:
  int64_t k_;
  std::vector<std::string> labels_;
};

}  // namespace

Result<StepPtr> make_topk(const Params& p) {
  DESKML_RETURN_IF_ERROR(p.check_known({"k", "labels"}));
  DESKML_ASSIGN_OR_RETURN(int64_t k, p.get_int("k"));
  if (k < 1) return p.error("k", "must be at least 1");
  std::vector<std::string> labels;
  if (p.has("labels")) {
    DESKML_ASSIGN_OR_RETURN(std::string file, p.get_string("labels"));
    DESKML_ASSIGN_OR_RETURN(labels, read_labels(p, file));
  }
  return StepPtr(std::make_unique<TopK>(k, std::move(labels)));
}

}  // namespace deskml::serving::steps
