// What every connection of one server shares: the runtime, the options and
// policy, the pool for calls that wait (load, unload, metadata), and the counters
// shutdown drains by.
#pragma once

#include <atomic>
#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "server/infer_codec.hpp"
#include "server/options.hpp"
#include "server/security.hpp"
#include "serving/runtime.hpp"

namespace deskml::features {
class FeatureService;
}

namespace deskml::server {

struct ServerState {
  ServerState(serving::Runtime& rt, ServerOptions opts, uint16_t bound_port)
      : runtime(rt), options(std::move(opts)), policy(options, bound_port), port(bound_port) {}

  serving::Runtime& runtime;
  // Answers requests that name a feature source and keys instead of tensors; null
  // when the server has none (such requests then fail with Unsupported).
  features::FeatureService* features = nullptr;
  const ServerOptions options;
  const SecurityPolicy policy;
  const uint16_t port;
  // Management calls block until a model is loaded or unloaded; they run here so the
  // I/O threads never wait.
  boost::asio::thread_pool blocking{2};

  std::atomic<int64_t> in_flight{0};        // requests read and not yet answered on the socket
  std::atomic<int64_t> runtime_pending{0};  // inference callbacks the runtime still owes
  std::atomic<bool> stopping{false};

  // Runs a parsed request on `model`: its tensors (moved out of it) through the
  // runtime, or its feature lookup through the feature service. `done` is called
  // exactly once, as Runtime::infer_async's callback is.
  void infer_async(const std::string& model, InferRequest& request, serving::InferOptions options,
                   serving::Runtime::Callback done);

  // Cancels everything still running (the end of a shutdown drain).
  uint64_t track(std::shared_ptr<serving::CancelToken> token) {
    std::lock_guard lock(mutex_);
    cancels_.emplace(next_id_, std::move(token));
    return next_id_++;
  }
  void untrack(uint64_t id) {
    std::lock_guard lock(mutex_);
    cancels_.erase(id);
  }
  void cancel_all() {
    std::unordered_map<uint64_t, std::shared_ptr<serving::CancelToken>> all;
    {
      std::lock_guard lock(mutex_);
      all = cancels_;
    }
    for (auto& [id, token] : all) token->cancel();
  }

 private:
  std::mutex mutex_;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::shared_ptr<serving::CancelToken>> cancels_;
};

}  // namespace deskml::server
