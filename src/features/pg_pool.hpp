// A PostgreSQL connection pool that rides out server restarts. Callers lease a
// connection or, better, hand the pool a unit of work with run(): when the work
// fails because the connection was lost, the pool reconnects with exponential
// backoff and runs it again, until the server has stayed away for
// reconnect_timeout. The outage clock is shared: once the pool has given up,
// other callers fail at their next attempt instead of waiting out another window.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "features/pg_connection.hpp"

namespace deskml::features::pg {

class Pool : public std::enable_shared_from_this<Pool> {
 public:
  struct Options {
    size_t max_size = 4;
    std::chrono::milliseconds connect_timeout{10'000};
    std::chrono::milliseconds reconnect_timeout{30'000};
    std::chrono::milliseconds initial_backoff{100};
    std::chrono::milliseconds max_backoff{5'000};
  };

  // Connects once, so a wrong address, database or password fails here.
  static Result<std::shared_ptr<Pool>> create(std::string conninfo, std::string description, Options options);

  // A leased connection; goes back to the pool (or is closed, when lost) at scope exit.
  class Lease {
   public:
    Lease(std::shared_ptr<Pool> pool, std::unique_ptr<Connection> conn)
        : pool_(std::move(pool)), conn_(std::move(conn)) {}
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = default;
    ~Lease();
    Connection& operator*() const { return *conn_; }
    Connection* operator->() const { return conn_.get(); }

   private:
    std::shared_ptr<Pool> pool_;
    std::unique_ptr<Connection> conn_;
  };

  // An idle connection, a new one (up to max_size), or the next one released.
  // Unavailable when connecting fails; DeadlineExceeded when the deadline passes while waiting.
  Result<Lease> acquire(Clock::time_point deadline = Clock::time_point::max());

  // Runs fn(Connection&), which returns Status or Result<T>. If it fails and the
  // connection is lost, fn runs again on a new connection after a backoff
  // (initial_backoff, doubling up to max_backoff, with jitter) until the outage has
  // lasted reconnect_timeout or the deadline passes; then the last error comes back
  // as Unavailable saying so. fn may therefore run more than once and must be safe
  // to repeat: make each attempt one transaction that checks what is already done.
  template <typename Fn>
  auto run(Fn&& fn, Clock::time_point deadline = Clock::time_point::max()) -> decltype(fn(std::declval<Connection&>()));

  const std::string& description() const { return description_; }
  const Options& options() const { return options_; }
  // Connections made after a loss.
  uint64_t reconnects() const;
  size_t open_connections() const;

 private:
  Pool(std::string conninfo, std::string description, Options options)
      : conninfo_(std::move(conninfo)), description_(std::move(description)), options_(options) {}
  void release(std::unique_ptr<Connection> conn);
  // Starts the outage clock (if not running) and drops idle connections, which
  // are likely dead too. Returns when retrying stops.
  Clock::time_point note_loss(const Status& why, int attempt, std::chrono::milliseconds backoff);
  void note_ok();
  Status gave_up(const Status& last, int attempts) const;
  static const Status& status_of(const Status& s) { return s; }
  template <typename T>
  static const Status& status_of(const Result<T>& r) {
    return r.status();
  }
  std::chrono::milliseconds jittered(std::chrono::milliseconds backoff);

  const std::string conninfo_;
  const std::string description_;
  const Options options_;
  mutable std::mutex mutex_;
  std::condition_variable released_;
  std::vector<std::unique_ptr<Connection>> idle_;
  size_t open_ = 0;  // leased + idle + being opened
  std::optional<Clock::time_point> outage_since_;
  uint64_t reconnects_ = 0;
  uint64_t jitter_state_ = 0x9e3779b97f4a7c15ull;
};

template <typename Fn>
auto Pool::run(Fn&& fn, Clock::time_point deadline) -> decltype(fn(std::declval<Connection&>())) {
  using R = decltype(fn(std::declval<Connection&>()));
  std::chrono::milliseconds backoff = options_.initial_backoff;
  for (int attempt = 1;; ++attempt) {
    Status failure;
    {
      auto lease = acquire(deadline);
      if (lease.ok()) {
        R r = fn(**lease);
        const Status& st = status_of(r);
        if (st.ok()) {
          note_ok();
          return r;
        }
        if (!(*lease)->lost() || st.code() == StatusCode::kDeadlineExceeded) return r;
        failure = st;
      } else if (lease.status().code() != StatusCode::kUnavailable) {
        return R(lease.status());
      } else {
        failure = lease.status();
      }
    }
    const Clock::time_point give_up = std::min(note_loss(failure, attempt, backoff), deadline);
    const Clock::time_point now = Clock::now();
    if (now >= give_up) return R(gave_up(failure, attempt));
    std::this_thread::sleep_for(std::min<Clock::duration>(jittered(backoff), give_up - now));
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

}  // namespace deskml::features::pg
