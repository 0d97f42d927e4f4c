// One thread that runs callbacks at given times: request deadlines, keep-alive
// expiry, repository polling. It sleeps on a condition variable until the next
// due time, so an idle runtime uses no CPU.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "serving/request.hpp"

namespace deskml::serving {

class Timer {
 public:
  using Id = uint64_t;
  Timer();
  ~Timer();  // shutdown()
  // Drops pending callbacks, waits for a running one, and joins the thread. Later
  // schedule() calls do nothing (and return 0).
  void shutdown();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // Runs `fn` on the timer thread at `when` (at once if it is past). Callbacks
  // must be short: they delay every later one.
  Id schedule(Clock::time_point when, std::function<void()> fn);
  // Drops a callback that has not started. Returns whether it was dropped.
  bool cancel(Id id);

 private:
  void loop();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::map<std::pair<Clock::time_point, Id>, std::function<void()>> due_;
  std::map<Id, Clock::time_point> when_;
  Id next_id_ = 1;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace deskml::serving
