#include "serving/timer.hpp"

namespace deskml::serving {

Timer::Timer() : thread_([this] { loop(); }) {}

Timer::~Timer() { shutdown(); }

void Timer::shutdown() {
  {
    std::lock_guard lock(mutex_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
    due_.clear();
    when_.clear();
  }
  wake_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

Timer::Id Timer::schedule(Clock::time_point when, std::function<void()> fn) {
  Id id;
  bool earliest;
  {
    std::lock_guard lock(mutex_);
    if (stop_) return 0;
    id = next_id_++;
    due_.emplace(std::make_pair(when, id), std::move(fn));
    when_.emplace(id, when);
    earliest = due_.begin()->first.second == id;
  }
  if (earliest) wake_.notify_one();
  return id;
}

bool Timer::cancel(Id id) {
  std::lock_guard lock(mutex_);
  auto it = when_.find(id);
  if (it == when_.end()) return false;
  due_.erase({it->second, id});
  when_.erase(it);
  return true;
}

void Timer::loop() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    if (due_.empty()) {
      wake_.wait(lock);
      continue;
    }
    const auto next = due_.begin()->first.first;
    if (Clock::now() < next) {
      wake_.wait_until(lock, next);
      continue;
    }
    auto node = due_.extract(due_.begin());
    when_.erase(node.key().second);
    lock.unlock();
    node.mapped()();
    lock.lock();
  }
}

}  // namespace deskml::serving
