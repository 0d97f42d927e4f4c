// Detection post-processing: NonMaxSuppression (10+), RoiAlign (10, 16+) and
// GridSample (16+, 4-D; the opset-20 mode names are accepted too).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"

namespace deskml::kernels::cpu {
namespace {

// Runs fn(T{}) for float / double, and for half types through a float copy.
// Returns the float tensor the caller should read instead of `t` (or `t` itself).
Tensor as_compute(const Tensor& t) {
  if (t.dtype() == DataType::kFloat16 || t.dtype() == DataType::kBFloat16) return t.cast(DataType::kFloat32);
  return t;
}

DataType compute_type(DataType t) { return t == DataType::kFloat64 ? DataType::kFloat64 : DataType::kFloat32; }

// --- NonMaxSuppression --------------------------------------------------------------

struct Box {
  float y1, x1, y2, x2;  // y1 <= y2, x1 <= x2
  float area;
};

Box read_box(const float* b, bool center_point) {
  Box r;
  if (center_point) {
    const float hw = b[2] / 2, hh = b[3] / 2;
    r = {b[1] - hh, b[0] - hw, b[1] + hh, b[0] + hw, 0.f};
  } else {
    r = {std::min(b[0], b[2]), std::min(b[1], b[3]), std::max(b[0], b[2]), std::max(b[1], b[3]), 0.f};
  }
  r.area = (r.y2 - r.y1) * (r.x2 - r.x1);
  return r;
}

// The boxes selected so far for one class, as columns so that testing a
// candidate against all of them is one branch-free (vectorisable) loop.
class Kept {
 public:
  void clear() { y1_.clear(), x1_.clear(), y2_.clear(), x2_.clear(), area_.clear(); }
  void push_back(const Box& b) {
    y1_.push_back(b.y1), x1_.push_back(b.x1), y2_.push_back(b.y2), x2_.push_back(b.x2), area_.push_back(b.area);
  }
  // IoU > threshold with any kept box; boxes without area never suppress anything.
  bool suppresses(const Box& b, float iou_threshold) const {
    if (b.area <= 0) return false;
    const size_t n = area_.size();
    int any = 0;
    for (size_t j = 0; j < n; ++j) {
      const float h = std::min(y2_[j], b.y2) - std::max(y1_[j], b.y1);
      const float w = std::min(x2_[j], b.x2) - std::max(x1_[j], b.x1);
      const float inter = std::max(h, 0.f) * std::max(w, 0.f);
      const float uni = area_[j] + b.area - inter;
      // Lanes where uni is 0 divide by it but are masked off by the other tests.
      const bool hit = h > 0 && w > 0 && area_[j] > 0 && uni > 0 && inter / uni > iou_threshold;
      any |= hit;
    }
    return any != 0;
  }

 private:
  std::vector<float> y1_, x1_, y2_, x2_, area_;
};

Status compute_nms(KernelContext& ctx) {
  auto as_float = [](const Tensor& t) { return t.dtype() == DataType::kFloat32 ? t : t.cast(DataType::kFloat32); };
  const Tensor boxes_t = as_float(ctx.required_input(0));
  const Tensor scores_t = as_float(ctx.required_input(1));
  if (boxes_t.rank() != 3 || boxes_t.dim(2) != 4) return ctx.error("boxes must have shape [batch, boxes, 4]");
  if (scores_t.rank() != 3) return ctx.error("scores must have shape [batch, classes, boxes]");
  const int64_t batches = boxes_t.dim(0), num_boxes = boxes_t.dim(1), classes = scores_t.dim(1);
  if (scores_t.dim(0) != batches || scores_t.dim(2) != num_boxes) {
    return ctx.error("boxes " + shape_to_string(boxes_t.shape()) + " and scores " + shape_to_string(scores_t.shape()) +
                     " disagree");
  }
  int64_t max_out = 0;
  if (const Tensor* t = ctx.input(2); t != nullptr && t->numel() > 0) {
    if (!dtype_is_integer(t->dtype())) return ctx.error("max_output_boxes_per_class must be an integer");
    max_out = std::max<int64_t>(t->int_at(0), 0);
  }
  float iou_threshold = 0.f;
  if (const Tensor* t = ctx.input(3); t != nullptr && t->numel() > 0)
    iou_threshold = static_cast<float>(t->float_at(0));
  if (!(iou_threshold >= 0.f && iou_threshold <= 1.f)) return ctx.error("iou_threshold must be in [0, 1]");
  bool has_score_threshold = false;
  float score_threshold = 0.f;
  if (const Tensor* t = ctx.input(4); t != nullptr && t->numel() > 0) {
    has_score_threshold = true;
    score_threshold = static_cast<float>(t->float_at(0));
  }
  const int64_t center = ctx.node().attr_int("center_point_box", 0);
  if (center != 0 && center != 1) return ctx.error("center_point_box must be 0 or 1");

  // Corners and areas once per box, shared by every class.
  const float* raw_boxes = boxes_t.data<float>();
  std::vector<Box> boxes(static_cast<size_t>(batches * num_boxes));
  for (int64_t i = 0; i < batches * num_boxes; ++i) boxes[i] = read_box(raw_boxes + i * 4, center == 1);
  const float* scores = scores_t.data<float>();
  const int64_t pairs = batches * classes;
  std::vector<std::vector<int64_t>> selected(static_cast<size_t>(pairs));
  if (max_out > 0) {
    parallel_for(pairs, ctx.threads(), num_boxes * 8, [&](int64_t lo, int64_t hi) {
      struct Candidate {
        float score;
        int64_t index;
      };
      // Max-heap on score, lower index first on ties: only as many candidates
      // are ordered as the selection consumes (max_out is usually small).
      auto lower = [](const Candidate& x, const Candidate& y) {
        return x.score < y.score || (x.score == y.score && x.index > y.index);
      };
      std::vector<Candidate> heap;
      Kept kept;
      for (int64_t p = lo; p < hi; ++p) {
        const int64_t b = p / classes;
        const float* s = scores + p * num_boxes;
        heap.clear();
        for (int64_t i = 0; i < num_boxes; ++i) {
          if (!has_score_threshold || s[i] > score_threshold) heap.push_back({s[i], i});
        }
        std::make_heap(heap.begin(), heap.end(), lower);
        kept.clear();
        while (!heap.empty() && static_cast<int64_t>(selected[p].size()) < max_out) {
          std::pop_heap(heap.begin(), heap.end(), lower);
          const int64_t i = heap.back().index;
          heap.pop_back();
          const Box& box = boxes[b * num_boxes + i];
          if (!kept.suppresses(box, iou_threshold)) {
            kept.push_back(box);
            selected[p].push_back(i);
          }
        }
      }
    });
  }
  int64_t total = 0;
  for (const auto& v : selected) total += static_cast<int64_t>(v.size());
  Tensor& out = ctx.allocate_output(0, DataType::kInt64, {total, 3});
  int64_t* o = out.data<int64_t>();
  for (int64_t p = 0; p < pairs; ++p) {
    for (int64_t i : selected[p]) {
      *o++ = p / classes;
      *o++ = p % classes;
      *o++ = i;
    }
  }
  return Status::Ok();
}

// --- RoiAlign ---------------------------------------------------------------------

template <typename T>
struct Sample {
  int64_t pos[4];
  T w[4];
};

template <typename T>
void roi_align(const T* X, const T* rois, const int64_t* batch_idx, const int64_t* grids, T* Y, int64_t num_rois,
               int64_t C, int64_t H, int64_t W, int64_t oh, int64_t ow, T spatial_scale, bool half_pixel, bool max_mode,
               int threads) {
  parallel_for(num_rois, threads, C * oh * ow * 16, [&](int64_t lo, int64_t hi) {
    std::vector<Sample<T>> samples;
    for (int64_t n = lo; n < hi; ++n) {
      const T* roi = rois + n * 4;
      const T offset = half_pixel ? T(0.5) : T(0);
      const T start_w = roi[0] * spatial_scale - offset, start_h = roi[1] * spatial_scale - offset;
      const T end_w = roi[2] * spatial_scale - offset, end_h = roi[3] * spatial_scale - offset;
      T roi_w = end_w - start_w, roi_h = end_h - start_h;
      if (!half_pixel) {
        roi_w = std::max(roi_w, T(1));
        roi_h = std::max(roi_h, T(1));
      }
      const T bin_h = roi_h / static_cast<T>(oh), bin_w = roi_w / static_cast<T>(ow);
      const int64_t grid_h = grids[2 * n], grid_w = grids[2 * n + 1];
      const T count = static_cast<T>(std::max<int64_t>(grid_h * grid_w, 1));
      // Bilinear taps of every sample point, shared by all channels.
      samples.clear();
      for (int64_t ph = 0; ph < oh; ++ph) {
        for (int64_t pw = 0; pw < ow; ++pw) {
          for (int64_t iy = 0; iy < grid_h; ++iy) {
            T y = start_h + ph * bin_h + (iy + T(0.5)) * bin_h / static_cast<T>(grid_h);
            for (int64_t ix = 0; ix < grid_w; ++ix) {
              T x = start_w + pw * bin_w + (ix + T(0.5)) * bin_w / static_cast<T>(grid_w);
              Sample<T> s{{0, 0, 0, 0}, {0, 0, 0, 0}};
              if (!(y >= -1 && y <= static_cast<T>(H) && x >= -1 && x <= static_cast<T>(W))) {
                samples.push_back(s);
                continue;
              }
              y = std::max(y, T(0));
              x = std::max(x, T(0));
              int64_t y0 = static_cast<int64_t>(y), x0 = static_cast<int64_t>(x), y1, x1;
              if (y0 >= H - 1) {
                y0 = y1 = H - 1;
                y = static_cast<T>(y0);
              } else {
                y1 = y0 + 1;
              }
              if (x0 >= W - 1) {
                x0 = x1 = W - 1;
                x = static_cast<T>(x0);
              } else {
                x1 = x0 + 1;
              }
              const T ly = y - static_cast<T>(y0), lx = x - static_cast<T>(x0);
              const T hy = 1 - ly, hx = 1 - lx;
              s = {{y0 * W + x0, y0 * W + x1, y1 * W + x0, y1 * W + x1}, {hy * hx, hy * lx, ly * hx, ly * lx}};
              samples.push_back(s);
            }
          }
        }
      }
      const int64_t per_bin = grid_h * grid_w;
      const T* img = X + batch_idx[n] * C * H * W;
      for (int64_t c = 0; c < C; ++c) {
        const T* plane = img + c * H * W;
        T* out = Y + (n * C + c) * oh * ow;
        for (int64_t bin = 0; bin < oh * ow; ++bin) {
          const Sample<T>* s = samples.data() + bin * per_bin;
          T acc = 0;
          for (int64_t k = 0; k < per_bin; ++k) {
            if (max_mode) {
              T v = s[k].w[0] * plane[s[k].pos[0]];
              for (int q = 1; q < 4; ++q) v = std::max(v, s[k].w[q] * plane[s[k].pos[q]]);
              acc = k == 0 ? v : std::max(acc, v);
            } else {
              for (int q = 0; q < 4; ++q) acc += s[k].w[q] * plane[s[k].pos[q]];
            }
          }
          out[bin] = max_mode ? acc : acc / count;
        }
      }
    }
  });
}

Status compute_roi_align(KernelContext& ctx) {
  const Tensor& X_in = ctx.required_input(0);
  const Tensor& rois_in = ctx.required_input(1);
  const Tensor& idx_in = ctx.required_input(2);
  const graph::Node& node = ctx.node();
  if (X_in.rank() != 4) return ctx.error("X must be 4-D [N, C, H, W]");
  if (rois_in.rank() != 2 || rois_in.dim(1) != 4) return ctx.error("rois must have shape [num_rois, 4]");
  if (idx_in.rank() != 1 || idx_in.dim(0) != rois_in.dim(0))
    return ctx.error("batch_indices must have shape [num_rois]");
  if (!dtype_is_integer(idx_in.dtype())) return ctx.error("batch_indices must be an integer tensor");
  const std::string mode = node.attr_string("mode", "avg");
  if (mode != "avg" && mode != "max") return ctx.error("mode must be 'avg' or 'max'");
  const std::string ctm =
      ctx.opset() >= 16 ? node.attr_string("coordinate_transformation_mode", "half_pixel") : "output_half_pixel";
  if (ctm != "half_pixel" && ctm != "output_half_pixel") return ctx.error("unknown coordinate_transformation_mode");
  const int64_t oh = node.attr_int("output_height", 1), ow = node.attr_int("output_width", 1);
  const int64_t sampling_ratio = node.attr_int("sampling_ratio", 0);
  const float spatial_scale = node.attr_float("spatial_scale", 1.f);
  if (oh <= 0 || ow <= 0) return ctx.error("output_height and output_width must be positive");
  if (sampling_ratio < 0) return ctx.error("sampling_ratio must not be negative");
  const int64_t N = X_in.dim(0), C = X_in.dim(1), H = X_in.dim(2), W = X_in.dim(3);
  const int64_t num_rois = rois_in.dim(0);
  const std::vector<int64_t> batch_idx = idx_in.to_int64_vector();
  for (int64_t b : batch_idx) {
    if (b < 0 || b >= N)
      return ctx.error("batch index " + std::to_string(b) + " out of range [0, " + std::to_string(N) + ")");
  }
  if (num_rois > 0 && (H == 0 || W == 0)) return ctx.error("X has an empty spatial extent");
  if (oh > (int64_t{1} << 20) || ow > (int64_t{1} << 20) || sampling_ratio > (int64_t{1} << 20)) {
    return ctx.error("output size or sampling_ratio too large");
  }
  const DataType ct = compute_type(X_in.dtype());
  const Tensor X = as_compute(X_in);
  const Tensor rois = rois_in.cast(ct);
  for (int64_t i = 0; i < rois.numel(); ++i) {
    if (!std::isfinite(rois.float_at(i))) return ctx.error("rois must be finite");
  }
  Tensor Y(ct, {num_rois, C, oh, ow});
  bool too_many = false;
  dispatch_float(ct, "RoiAlign", [&](auto tag) {
    using T = decltype(tag);
    const T* r = rois.data<T>();
    const T scale = static_cast<T>(spatial_scale);
    // Sample grid per roi, in T as the kernel sees the roi; an adaptive grid
    // follows the roi size, so it is bounded.
    std::vector<int64_t> grids(static_cast<size_t>(2 * num_rois));
    for (int64_t n = 0; n < num_rois; ++n) {
      T rw = (r[n * 4 + 2] - r[n * 4]) * scale, rh = (r[n * 4 + 3] - r[n * 4 + 1]) * scale;
      if (ctm != "half_pixel") {
        rw = std::max(rw, T(1));
        rh = std::max(rh, T(1));
      }
      const double gh = sampling_ratio > 0 ? double(sampling_ratio) : std::max(0.0, double(std::ceil(rh / T(oh))));
      const double gw = sampling_ratio > 0 ? double(sampling_ratio) : std::max(0.0, double(std::ceil(rw / T(ow))));
      if (gh * gw * double(oh) * double(ow) > double(int64_t{1} << 30)) too_many = true;
      grids[2 * n] = static_cast<int64_t>(std::min(gh, 1e9));
      grids[2 * n + 1] = static_cast<int64_t>(std::min(gw, 1e9));
    }
    if (too_many || Y.numel() == 0) return;
    roi_align<T>(X.data<T>(), r, batch_idx.data(), grids.data(), Y.data<T>(), num_rois, C, H, W, oh, ow, scale,
                 ctm == "half_pixel", mode == "max", ctx.threads());
  });
  if (too_many) return ctx.error("too many sample points for a roi");
  ctx.set_output(0, Y.dtype() == X_in.dtype() ? Y : Y.cast(X_in.dtype()));
  return Status::Ok();
}

}  // namespace

void register_grid_sample_kernels(KernelRegistry& r);  // detection_grid_sample.cpp

void register_detection_kernels(KernelRegistry& r) {
  r.add("NonMaxSuppression", 10, INT_MAX, {DataType::kFloat32, DataType::kFloat64, DataType::kFloat16}, compute_nms);
  const std::vector<DataType> floats = {DataType::kFloat32, DataType::kFloat64, DataType::kFloat16};
  r.add("RoiAlign", 10, INT_MAX, floats, compute_roi_align);
  register_grid_sample_kernels(r);
}

}  // namespace deskml::kernels::cpu
