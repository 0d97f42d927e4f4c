// One request on its way through a model's queue. Exactly one party answers it:
// the worker that ran it, or whoever cancels it or sees its deadline pass. The
// state word decides who (queued -> running -> done, or straight to done).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "core/status.hpp"
#include "serving/metrics.hpp"
#include "serving/request.hpp"
#include "serving/result_cache.hpp"
#include "serving/timer.hpp"

namespace deskml::serving {

class LoadedModel;

struct PendingRequest {
  enum State : int { kQueued = 0, kRunning = 1, kDone = 2 };

  std::string model;
  int64_t version = 0;
  Tensors inputs;          // in the model's declared input order
  int64_t rows = 0;        // batch rows (dim 0), 0 when the model does not batch
  uint64_t signature = 0;  // batch_signature(inputs): equal ones may share a batch (stackable() confirms)
  InferOptions options;
  Clock::time_point enqueued;
  std::function<void(Result<InferResponse>)> done;  // the caller's callback
  // Runs before `done` with the result (metrics, cache, keep-alive bookkeeping).
  void (*on_finish)(PendingRequest&, const Result<InferResponse>&, void*) = nullptr;
  // The same for the requests of a batch answered together with results: once
  // for all of them (one lock, one metrics update) instead of on_finish on each.
  // Whoever sets on_finish sets this too (the runtime sets both).
  void (*on_finish_batch)(PendingRequest* const* requests, const InferResponse* responses, size_t n, void*) = nullptr;
  void* on_finish_arg = nullptr;
  std::atomic<int> state{kQueued};
  bool counted = false;  // counted in the model's request metrics
  const Metrics::Model* metrics = nullptr;
  bool holds_slot = false;       // counted in its version slot's outstanding requests
  ResultCache* cache = nullptr;  // where to store the result, with cache_key
  std::optional<CacheKey> cache_key;
  // Registrations made while other threads may already answer the request: the
  // one who answers takes them (exchange) and undoes them.
  std::atomic<uint64_t> cancel_registration{0};
  std::atomic<Timer::Id> deadline_timer{0};

  // Where to take the request out from on cancel; set by the router, read by
  // whoever cancels, so it is guarded.
  void set_queue(std::weak_ptr<LoadedModel> q) {
    std::lock_guard lock(link_mutex_);
    queued_in_ = std::move(q);
  }
  std::shared_ptr<LoadedModel> queue() {
    std::lock_guard lock(link_mutex_);
    return queued_in_.lock();
  }

  // Moves the state from `from` to kDone and answers; false when another party
  // already moved it.
  bool finish(int from, Result<InferResponse> result) {
    if (!claim(from)) return false;
    if (on_finish) on_finish(*this, result, on_finish_arg);
    deliver(std::move(result));
    return true;
  }
  // finish() in two steps, for answering a batch: claim each request (false when
  // another party answered it), do the bookkeeping, then deliver each result.
  bool claim(int from) { return state.compare_exchange_strong(from, kDone, std::memory_order_acq_rel); }
  void deliver(Result<InferResponse> result) {
    auto fn = std::move(done);
    fn(std::move(result));
  }
  bool done_state() const { return state.load(std::memory_order_acquire) == kDone; }
  bool start() {
    int from = kQueued;
    return state.compare_exchange_strong(from, kRunning, std::memory_order_acq_rel);
  }

 private:
  std::mutex link_mutex_;
  std::weak_ptr<LoadedModel> queued_in_;
};

}  // namespace deskml::serving
