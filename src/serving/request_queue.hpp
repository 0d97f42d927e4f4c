// A model's queued requests: highest priority first, arrival order within a
// priority. One FIFO per priority in use, so queueing and taking a batch cost a
// push and a sweep, with no tree rebalancing per request.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include "serving/pending_request.hpp"

namespace deskml::serving {

class RequestQueue {
 public:
  enum class Pick { kLeave, kTake, kDrop, kStop };

  void push(std::shared_ptr<PendingRequest> request);
  // Takes `request` out; false when it is not queued. Linear in its priority's
  // length (only cancellations and deadlines remove from the middle).
  bool remove(const PendingRequest* request);
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Visits the requests in order. `pick` answers for each: leave it queued, take
  // it (appended to `taken`, or left queued when `taken` is null), drop it from
  // the queue, or stop the sweep (this one and the rest stay queued).
  template <typename F>
  void sweep(F&& pick, std::vector<std::shared_ptr<PendingRequest>>* taken);

 private:
  struct Level {
    int priority;
    std::deque<std::shared_ptr<PendingRequest>> fifo;
  };
  std::vector<Level> levels_;  // by priority, highest first
  size_t size_ = 0;
};

template <typename F>
void RequestQueue::sweep(F&& pick, std::vector<std::shared_ptr<PendingRequest>>* taken) {
  bool stop = false;
  for (auto level = levels_.begin(); level != levels_.end() && !stop;) {
    auto& q = level->fifo;
    size_t keep = 0, i = 0;
    for (; i < q.size(); ++i) {
      const Pick p = pick(*q[i]);
      if (p == Pick::kStop) {
        stop = true;
        break;
      }
      if (p == Pick::kDrop || (p == Pick::kTake && taken != nullptr)) {
        if (p == Pick::kTake) taken->push_back(std::move(q[i]));
        --size_;
        continue;
      }
      if (keep != i) q[keep] = std::move(q[i]);
      ++keep;
    }
    // Close the gap the taken ones left, keeping the unvisited tail in order.
    if (keep != i) {
      for (size_t j = i; j < q.size(); ++j) q[keep + (j - i)] = std::move(q[j]);
      q.resize(keep + (q.size() - i));
    }
    if (q.empty()) {
      level = levels_.erase(level);
    } else {
      ++level;
    }
  }
}

}  // namespace deskml::serving
