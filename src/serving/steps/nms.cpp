// nms: greedy non-maximum suppression over boxes [N,4] (x1, y1, x2, y2) and scores [N].
//
// Boxes are visited by descending score (ties to the lower index); a box is kept unless
// its IoU with an already kept box exceeds iou_threshold. Boxes scoring below
// score_threshold, or NaN, are dropped first. Corners may come in either order.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "serving/steps/builtin.hpp"

namespace deskml::serving::steps {
namespace {

struct Box {
  float x1, y1, x2, y2, area;
};

float iou(const Box& a, const Box& b) {
  const float w = std::min(a.x2, b.x2) - std::max(a.x1, b.x1);
  const float h = std::min(a.y2, b.y2) - std::max(a.y1, b.y1);
  if (!(w > 0.0f) || !(h > 0.0f)) return 0.0f;
  const float inter = w * h;
  const float uni = a.area + b.area - inter;
  return uni > 0.0f ? inter / uni : 0.0f;
}

class Nms final : public BuiltinStep {
 public:
  Nms(double iou_threshold, double score_threshold, int64_t max_detections)
      : BuiltinStep("nms"), iou_(iou_threshold), score_(score_threshold), max_(max_detections) {}

  StepPorts ports() const override { return {{"boxes", "scores"}, false, 1, 1, {"indices"}}; }

 protected:
  Result<Tensors> compute(const Tensors& inputs) const override {
    DESKML_ASSIGN_OR_RETURN(const Tensor* boxes, input(inputs, "boxes"));
    DESKML_ASSIGN_OR_RETURN(const Tensor* scores, input(inputs, "scores"));
    if (boxes->dtype() != DataType::kFloat32 || boxes->rank() != 2 || boxes->dim(1) != 4) {
      return bad_input("boxes must be float [N,4], got " + boxes->description());
    }
    const int64_t n = boxes->dim(0);
    if (scores->dtype() != DataType::kFloat32 || scores->rank() != 1 || scores->dim(0) != n) {
      return bad_input("scores must be float [" + std::to_string(n) + "] to match boxes " + boxes->description() +
                       ", got " + scores->description());
    }
    const float* b = boxes->data<float>();
    const float* s = scores->data<float>();
    std::vector<int64_t> order;
    for (int64_t i = 0; i < n; ++i) {
      if (!std::isnan(s[i]) && s[i] >= score_) order.push_back(i);
    }
    std::stable_sort(order.begin(), order.end(), [s](int64_t a, int64_t c) { return s[a] > s[c]; });
    std::vector<Box> kept_boxes;
    std::vector<int64_t> kept;
    for (int64_t i : order) {
      if (max_ > 0 && static_cast<int64_t>(kept.size()) >= max_) break;
      const float* p = b + i * 4;
      Box box{std::min(p[0], p[2]), std::min(p[1], p[3]), std::max(p[0], p[2]), std::max(p[1], p[3]), 0.0f};
      box.area = (box.x2 - box.x1) * (box.y2 - box.y1);
      bool suppressed = false;
      for (const Box& k : kept_boxes) {
        if (iou(box, k) > iou_) {
          suppressed = true;
          break;
        }
      }
      if (suppressed) continue;
      kept_boxes.push_back(box);
      kept.push_back(i);
    }
    Tensors out;
    out.emplace_back("indices", Tensor::from_vector<int64_t>(kept, {static_cast<int64_t>(kept.size())}));
    return out;
  }

 private:
  double iou_;
  double score_;
  int64_t max_;  // 0: no limit
};

}  // namespace

Result<StepPtr> make_nms(const Params& p) {
  DESKML_RETURN_IF_ERROR(p.check_known({"iou_threshold", "score_threshold", "max_detections"}));
  DESKML_ASSIGN_OR_RETURN(double iou, p.get_number("iou_threshold"));
  if (iou < 0.0 || iou > 1.0) return p.error("iou_threshold", "must be between 0 and 1");
  DESKML_ASSIGN_OR_RETURN(double score, p.get_number("score_threshold", 0.0));
  DESKML_ASSIGN_OR_RETURN(int64_t max_detections, p.get_int("max_detections", 0));
  if (p.has("max_detections") && max_detections < 1) return p.error("max_detections", "must be at least 1");
  return StepPtr(std::make_unique<Nms>(iou, score, max_detections));
}

}  // namespace deskml::serving::steps
