// What a caller says about one inference request, and what it gets back.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "serving/tensors.hpp"

namespace deskml::serving {

using Clock = std::chrono::steady_clock;

// Shared between a caller and the runtime: the caller cancels, the runtime
// listens. A cancelled request leaves its queue at once and its caller is answered
// Cancelled; if it is already running, its result is dropped.
class CancelToken {
 public:
  // Sets the flag and runs the registered callbacks (once; later calls do nothing).
  void cancel();
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  const std::atomic<bool>* flag() const { return &cancelled_; }
  // Runs `fn` when cancel() is called, or at once when it already was. The id
  // unregisters it; a callback may still run concurrently with remove().
  uint64_t on_cancel(std::function<void()> fn);
  void remove(uint64_t id);

 private:
  std::atomic<bool> cancelled_{false};
  std::mutex mutex_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::function<void()>> callbacks_;
};

// How long a model stays loaded after a request, overriding its config.
struct KeepAlive {
  static constexpr std::chrono::milliseconds kForever{-1};
  static constexpr std::chrono::milliseconds kUnloadNow{0};
};

struct InferOptions {
  std::optional<int64_t> version;  // newest READY version when unset
  Clock::time_point deadline = Clock::time_point::max();
  int priority = 0;                                     // higher runs first; ties in arrival order
  std::shared_ptr<CancelToken> cancel;                  // optional
  std::optional<std::chrono::milliseconds> keep_alive;  // KeepAlive::kForever / kUnloadNow / a duration
  std::string request_id;                               // generated when empty; appears in logs
  bool use_cache = true;                                // consult the model's result cache, if it has one
};

struct InferResponse {
  std::string model;
  int64_t version = 0;
  std::string request_id;
  Tensors outputs;          // the model's declared outputs, in order
  bool cached = false;      // served from the result cache
  int batch_size = 1;       // requests in the batch this one ran in (0 when cached)
  double queue_ms = 0.0;    // submit -> start of compute
  double compute_ms = 0.0;  // the batch's Session::run time
};

}  // namespace deskml::serving
