// Aggregations over an ordered list of inputs: mean, weighted_mean, vote, concat.
#include <cstring>

#include "serving/steps/argmax.hpp"
#include "serving/steps/builtin.hpp"

namespace deskml::serving::steps {
namespace {

// Weighted sum / sum of weights of same-shaped float tensors (plain mean: all weights 1).
class WeightedMean final : public ListStep {
 public:
  WeightedMean(std::string kind, std::vector<double> weights)
      : ListStep(std::move(kind), weights.empty() ? 1 : weights.size(), weights.empty() ? SIZE_MAX : weights.size()),
        weights_(std::move(weights)) {}

 protected:
  Result<Tensor> apply(const std::vector<const Tensor*>& xs) const override {
    for (size_t i = 0; i < xs.size(); ++i) {
      if (xs[i]->dtype() != DataType::kFloat32) {
        return bad_input("input " + std::to_string(i) + " must be float, got " + xs[i]->description());
      }
      if (xs[i]->shape() != xs[0]->shape()) {
        return bad_input("input " + std::to_string(i) + " is " + xs[i]->description() + " but input 0 is " +
                         xs[0]->description() + "; shapes must match");
      }
    }
    double total = 0.0;
    std::vector<double> w(xs.size(), 1.0);
    if (!weights_.empty()) w = weights_;
    for (double v : w) total += v;
    Tensor out(DataType::kFloat32, xs[0]->shape());
    float* o = out.data<float>();
    std::vector<const float*> in;
    for (const Tensor* x : xs) in.push_back(x->data<float>());
    for (int64_t j = 0; j < out.numel(); ++j) {
      double acc = 0.0;
      for (size_t i = 0; i < in.size(); ++i) acc += w[i] * static_cast<double>(in[i][j]);
      o[j] = static_cast<float>(acc / total);
    }
    return out;
  }

 private:
  std::vector<double> weights_;
};

// Majority class per item. Inputs are class scores [..., C] (reduced by argmax) or class
// ids [...] (int64 or int32); after that all must have one shape. Ties go to the lowest class.
class Vote final : public ListStep {
 public:
  Vote() : ListStep("vote") {}

 protected:
  Result<Tensor> apply(const std::vector<const Tensor*>& xs) const override {
    std::vector<Tensor> ids;
    for (size_t i = 0; i < xs.size(); ++i) {
      const Tensor& x = *xs[i];
      if (x.dtype() == DataType::kInt64) {
        ids.push_back(x);
      } else if (x.dtype() == DataType::kInt32) {
        ids.push_back(x.cast(DataType::kInt64));
      } else if (x.dtype() == DataType::kFloat32 || x.dtype() == DataType::kFloat64) {
        DESKML_ASSIGN_OR_RETURN(Tensor a, argmax_along(kind(), x, -1));
        ids.push_back(std::move(a));
      } else {
        return bad_input("input " + std::to_string(i) + " must be class scores (float) or class ids (int64), got " +
                         x.description());
      }
      if (ids.back().shape() != ids[0].shape()) {
        return bad_input("input " + std::to_string(i) + " gives votes of shape " + shape_to_string(ids.back().shape()) +
                         " but input 0 gives " + shape_to_string(ids[0].shape()));
      }
    }
    Tensor out(DataType::kInt64, ids[0].shape());
    int64_t* o = out.data<int64_t>();
    std::vector<const int64_t*> in;
    for (const Tensor& t : ids) in.push_back(t.data<int64_t>());
    std::vector<int64_t> votes(ids.size());
    for (int64_t j = 0; j < out.numel(); ++j) {
      for (size_t i = 0; i < in.size(); ++i) votes[i] = in[i][j];
      int64_t best = votes[0];
      size_t best_count = 0;
      for (size_t i = 0; i < votes.size(); ++i) {
        size_t count = 0;
        for (int64_t v : votes) count += v == votes[i] ? 1 : 0;
        if (count > best_count || (count == best_count && votes[i] < best)) {
          best = votes[i];
          best_count = count;
        }
      }
      o[j] = best;
    }
    return out;
  }
};

class Concat final : public ListStep {
 public:
  explicit Concat(int64_t axis) : ListStep("concat"), axis_(axis) {}

 protected:
  Result<Tensor> apply(const std::vector<const Tensor*>& xs) const override {
    const Tensor& first = *xs[0];
    if (first.rank() == 0) return bad_input("inputs must have at least one axis");
    DESKML_ASSIGN_OR_RETURN(int64_t axis, resolve_axis(kind(), axis_, first.rank()));
    Shape shape = first.shape();
    shape[axis] = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      const Tensor& x = *xs[i];
      bool match = x.dtype() == first.dtype() && x.rank() == first.rank();
      for (int64_t d = 0; match && d < x.rank(); ++d) match = d == axis || x.dim(d) == first.dim(d);
      if (!match) {
        return bad_input("input " + std::to_string(i) + " is " + x.description() + " but input 0 is " +
                         first.description() + "; dtypes and all dims but axis " + std::to_string(axis_) +
                         " must match");
      }
      shape[axis] += x.dim(axis);
    }
    DESKML_RETURN_IF_ERROR(check_output_size(kind(), shape, first.dtype()));
    Tensor out(first.dtype(), shape);
    int64_t inner = 1;
    for (int64_t d = axis + 1; d < first.rank(); ++d) inner *= first.dim(d);
    int64_t outer = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= first.dim(d);
    const bool strings = first.dtype() == DataType::kString;
    const size_t es = dtype_size(first.dtype());
    int64_t offset = 0;  // elements written per outer slice so far
    const int64_t out_slice = shape[axis] * inner;
    for (const Tensor* x : xs) {
      const int64_t slice = x->dim(axis) * inner;
      for (int64_t a = 0; a < outer; ++a) {
        const int64_t src = a * slice;
        const int64_t dst = a * out_slice + offset;
        if (strings) {
          for (int64_t e = 0; e < slice; ++e) out.data<std::string>()[dst + e] = x->data<std::string>()[src + e];
        } else if (slice > 0) {
          std::memcpy(static_cast<char*>(out.raw_data()) + dst * es, static_cast<const char*>(x->raw_data()) + src * es,
                      static_cast<size_t>(slice) * es);
        }
      }
      offset += slice;
    }
    return out;
  }

 private:
  int64_t axis_;
};

}  // namespace

Result<StepPtr> make_mean(const Params& p) {
  DESKML_RETURN_IF_ERROR(p.check_known({}));
  return StepPtr(std::make_unique<WeightedMean>("mean", std::vector<double>{}));
}

Result<StepPtr> make_weighted_mean(const Params& p) {
  DESKML_RETURN_IF_ERROR(p.check_known({"weights"}));
  DESKML_ASSIGN_OR_RETURN(std::vector<double> weights, p.get_number_list("weights"));
  if (weights.empty()) return p.error("weights", "must not be empty");
  double total = 0.0;
  for (double w : weights) {
    if (w < 0.0) return p.error("weights", "must not be negative");
    total += w;
  }
  if (!(total > 0.0)) return p.error("weights", "must not all be zero");
  return StepPtr(std::make_unique<WeightedMean>("weighted_mean", std::move(weights)));
}

Result<StepPtr> make_vote(const Params& p) {
  DESKML_RETURN_IF_ERROR(p.check_known({}));
  return StepPtr(std::make_unique<Vote>());
}

Result<StepPtr> make_concat(const Params& p) {
  DESKML_RETURN_IF_ERROR(p.check_known({"axis"}));
  DESKML_ASSIGN_OR_RETURN(int64_t axis, p.get_int("axis", 0));
  return StepPtr(std::make_unique<Concat>(axis));
}

}  // namespace deskml::serving::steps
