// TfIdfVectorizer (opset 9): n-gram counts over int32/int64/string tokens,
// 1-D [C] or 2-D [N, C] input, with skip-grams and TF / IDF / TFIDF weighting.
//
// The pool of n-grams is built once per node into a trie (one level per token);
// every (start, skip) pair walks the trie from the root, so an input row costs
// O(C * (max_skip_count + 1) * max_gram_length) hash lookups. Rows run in parallel.
// Weights are indexed by output coordinate, as onnxruntime and the ONNX reference do.
#include <algorithm>
#include <memory>
#include <unordered_map>
#include <variant>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"

namespace deskml::kernels::cpu {
namespace {

template <typename K>
class NgramTrie {
 public:
  NgramTrie() : nodes_(1) {}

  // Inserts an n-gram with output coordinate `out`; returns false when it is already there.
  bool insert(const K* tokens, size_t n, int64_t out) {
    int32_t node = 0;
    for (size_t i = 0; i < n; ++i) {
      auto it = nodes_[static_cast<size_t>(node)].children.find(tokens[i]);
      if (it == nodes_[static_cast<size_t>(node)].children.end()) {
        const auto child = static_cast<int32_t>(nodes_.size());
        nodes_[static_cast<size_t>(node)].children.emplace(tokens[i], child);
        nodes_.emplace_back();
        node = child;
      } else {
        node = it->second;
      }
    }
    if (nodes_[static_cast<size_t>(node)].out >= 0) return false;
    nodes_[static_cast<size_t>(node)].out = out;
    return true;
  }

  // Child of `node` for token t, or -1.
  int32_t child(int32_t node, const K& t) const {
    const auto& c = nodes_[static_cast<size_t>(node)].children;
    auto it = c.find(t);
    return it == c.end() ? -1 : it->second;
  }
  int64_t out(int32_t node) const { return nodes_[static_cast<size_t>(node)].out; }
  bool empty() const { return nodes_.size() == 1; }

 private:
  struct Node {
    std::unordered_map<K, int32_t> children;
    int64_t out = -1;  // output coordinate when the path from the root is a pool n-gram
  };
  std::vector<Node> nodes_;
};

class TfIdfKernel final : public Kernel {
 public:
  explicit TfIdfKernel(const graph::Node& node) {
    try {
      config_ = configure(node);
    } catch (const Error& e) {
      config_ = e.status();
    }
  }

  Status compute(KernelContext& ctx) override {
    DESKML_RETURN_IF_ERROR(config_);
    const Tensor& x = ctx.required_input(0);
    const bool strings = std::holds_alternative<NgramTrie<std::string>>(trie_);
    if (strings != (x.dtype() == DataType::kString)) {
      return ctx.error(strings ? "pool_strings needs a string input, got " + std::string(dtype_name(x.dtype()))
                               : "pool_int64s needs an int32 or int64 input, got " + std::string(dtype_name(x.dtype())));
    }
    if (x.rank() != 1 && x.rank() != 2) return ctx.error("input must be 1-D or 2-D, got " + x.description());
    const int64_t rows = x.rank() == 2 ? x.shape()[0] : 1;
    const int64_t cols = x.shape().back();
    Tensor& y = ctx.allocate_output(0, DataType::kFloat32, x.rank() == 2 ? Shape{rows, output_size_} : Shape{output_size_});
    float* out = y.data<float>();
    std::fill(out, out + y.numel(), 0.0f);
    if (output_size_ == 0) return Status::Ok();
    const int64_t cost = cols * (max_skip_ + 1) * max_gram_;
    auto run = [&](const auto* data, const auto& trie) {
      parallel_for(rows, ctx.threads(), cost, [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) {
          count_row(data + r * cols, cols, trie, out + r * output_size_);
          weigh_row(out + r * output_size_);
        }
      });
    };
    switch (x.dtype()) {
      case DataType::kString: run(x.data<std::string>(), std::get<NgramTrie<std::string>>(trie_)); break;
      case DataType::kInt32: run(x.data<int32_t>(), std::get<NgramTrie<int64_t>>(trie_)); break;
      case DataType::kInt64: run(x.data<int64_t>(), std::get<NgramTrie<int64_t>>(trie_)); break;
      default: return ctx.error("unsupported input type " + std::string(dtype_name(x.dtype())));
    }
    return Status::Ok();
  }

 private:
  enum class Mode { kTF, kIDF, kTFIDF };

  Status configure(const graph::Node& node) {
    auto fail = [&](const std::string& m) { return invalid_argument(node.label() + ": " + m); };
    const std::string mode = node.attr_string("mode", "");
    if (mode == "TF") {
      mode_ = Mode::kTF;
    } else if (mode == "IDF") {
      mode_ = Mode::kIDF;
    } else if (mode == "TFIDF") {
      mode_ = Mode::kTFIDF;
    } else {
      return fail("mode must be TF, IDF or TFIDF, got '" + mode + "'");
    }
    min_gram_ = node.attr_int("min_gram_length", 0);
    max_gram_ = node.attr_int("max_gram_length", 0);
    max_skip_ = node.attr_int("max_skip_count", 0);
    if (min_gram_ < 1 || max_gram_ < min_gram_) {
      return fail("need 1 <= min_gram_length <= max_gram_length, got " + std::to_string(min_gram_) + " and " +
                  std::to_string(max_gram_));
    }
    if (max_skip_ < 0) return fail("max_skip_count must not be negative");
    const bool has_ints = node.has_attr("pool_int64s"), has_strings = node.has_attr("pool_strings");
    if (has_ints == has_strings) return fail("exactly one of pool_int64s and pool_strings must be set");
    const std::vector<int64_t> counts = node.attr_ints("ngram_counts");
    const std::vector<int64_t> indexes = node.attr_ints("ngram_indexes");
    weights_ = node.attr_floats("weights");

    int64_t max_index = -1;
    for (int64_t i : indexes) {
      if (i < 0) return fail("ngram_indexes must not be negative");
      max_index = std::max(max_index, i);
    }
    output_size_ = max_index + 1;
    (void)shape_numel({output_size_});
    if (!weights_.empty() && static_cast<int64_t>(weights_.size()) < output_size_) {
      return fail("weights has " + std::to_string(weights_.size()) + " values for " + std::to_string(output_size_) +
                  " outputs");
    }

    auto build = [&](const auto& pool, auto& trie) -> Status {
      const auto total = static_cast<int64_t>(pool.size());
      size_t id = 0;
      for (size_t level = 0; level < counts.size(); ++level) {
        const int64_t n = static_cast<int64_t>(level) + 1;
        const int64_t begin = counts[level];
        const int64_t end = level + 1 < counts.size() ? counts[level + 1] : total;
        if (begin < 0 || end < begin || end > total) return fail("ngram_counts is not a valid list of pool offsets");
        if ((end - begin) % n != 0) {
          return fail(std::to_string(end - begin) + " pool items cannot form " + std::to_string(n) + "-grams");
        }
        for (int64_t p = begin; p < end; p += n, ++id) {
          if (id >= indexes.size()) return fail("ngram_indexes has fewer entries than the pool has n-grams");
          if (n < min_gram_ || n > max_gram_) continue;  // never counted
          if (!trie.insert(pool.data() + p, static_cast<size_t>(n), indexes[id])) {
            return fail("the pool holds the same n-gram twice");
          }
        }
      }
      if (id != indexes.size()) return fail("ngram_indexes has more entries than the pool has n-grams");
      return Status::Ok();
    };
    if (has_ints) {
      trie_.emplace<NgramTrie<int64_t>>();
      return build(node.attr_ints("pool_int64s"), std::get<NgramTrie<int64_t>>(trie_));
    }
    trie_.emplace<NgramTrie<std::string>>();
    return build(node.attr_strings("pool_strings"), std::get<NgramTrie<std::string>>(trie_));
  }

  // Adds the counts of row [x, x + cols) into out[0, output_size_).
  template <typename T, typename K>
  void count_row(const T* x, int64_t cols, const NgramTrie<K>& trie, float* out) const {
    if (trie.empty()) return;
    int64_t start_n = min_gram_;
    for (int64_t skip = 0; skip <= max_skip_; ++skip) {
      const int64_t dist = skip + 1;
      for (int64_t start = 0; start < cols; ++start) {
        if (start + dist * (start_n - 1) >= cols) break;  // no n-gram of a counted size fits any more
        int32_t node = 0;
        int64_t pos = start;
        for (int64_t n = 1; n <= max_gram_ && pos < cols; ++n, pos += dist) {
          node = trie.child(node, x[pos]);
          if (node < 0) break;
          if (n >= start_n && trie.out(node) >= 0) out[trie.out(node)] += 1.0f;
        }
      }
      // Unigrams do not depend on the skip distance: count them once.
      if (start_n == 1 && ++start_n > max_gram_) break;
    }
  }

  void weigh_row(float* out) const {
    switch (mode_) {
      case Mode::kTF: break;
      case Mode::kIDF:
        for (int64_t i = 0; i < output_size_; ++i) {
          out[i] = out[i] > 0 ? (weights_.empty() ? 1.0f : weights_[static_cast<size_t>(i)]) : 0.0f;
        }
        break;
      case Mode::kTFIDF:
        if (!weights_.empty()) {
          for (int64_t i = 0; i < output_size_; ++i) out[i] *= weights_[static_cast<size_t>(i)];
        }
        break;
    }
  }

  Status config_;
  Mode mode_ = Mode::kTF;
  int64_t min_gram_ = 1, max_gram_ = 1, max_skip_ = 0, output_size_ = 0;
  std::vector<float> weights_;
  std::variant<NgramTrie<int64_t>, NgramTrie<std::string>> trie_;
};

}  // namespace

void register_tfidf_kernels(KernelRegistry& r) {
  KernelDef def;
  def.op = "TfIdfVectorizer";
  def.since = 9;
  def.types = {DataType::kInt32, DataType::kInt64, DataType::kString};
  def.factory = [](const graph::Node& node) { return std::make_unique<TfIdfKernel>(node); };
  r.add(std::move(def));
}

}  // namespace deskml::kernels::cpu
