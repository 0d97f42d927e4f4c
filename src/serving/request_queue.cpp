#include "serving/request_queue.hpp"

#include <algorithm>

namespace deskml::serving {

void RequestQueue::push(std::shared_ptr<PendingRequest> request) {
  const int priority = request->options.priority;
  auto level = std::find_if(levels_.begin(), levels_.end(), [&](const Level& l) { return l.priority <= priority; });
  if (level == levels_.end() || level->priority != priority) level = levels_.insert(level, Level{priority, {}});
  level->fifo.push_back(std::move(request));
  ++size_;
}

bool RequestQueue::remove(const PendingRequest* request) {
  const int priority = request->options.priority;
  auto level = std::find_if(levels_.begin(), levels_.end(), [&](const Level& l) { return l.priority == priority; });
  if (level == levels_.end()) return false;
  auto& q = level->fifo;
  auto it = std::find_if(q.begin(), q.end(), [&](const auto& r) { return r.get() == request; });
  if (it == q.end()) return false;
  q.erase(it);
  --size_;
  if (q.empty()) levels_.erase(level);
  return true;
}

}  // namespace deskml::serving
