#include "features/pg_pool.hpp"

#include <cstdio>

#include "serving/log.hpp"

namespace deskml::features::pg {

Result<std::shared_ptr<Pool>> Pool::create(std::string conninfo, std::string description, Options options) {
  if (options.max_size == 0) options.max_size = 1;
  std::shared_ptr<Pool> pool(new Pool(std::move(conninfo), std::move(description), options));
  DESKML_ASSIGN_OR_RETURN(auto conn, Connection::connect(pool->conninfo_, pool->description_, options.connect_timeout));
  pool->idle_.push_back(std::move(conn));
  pool->open_ = 1;
  return pool;
}

Pool::Lease::~Lease() {
  if (pool_ && conn_) pool_->release(std::move(conn_));
}

Result<Pool::Lease> Pool::acquire(Clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (!idle_.empty()) {
      auto conn = std::move(idle_.back());
      idle_.pop_back();
      return Lease(shared_from_this(), std::move(conn));
    }
    if (open_ < options_.max_size) break;
    if (deadline == Clock::time_point::max()) {
      released_.wait(lock);
    } else if (released_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
               open_ >= options_.max_size) {
      return Status(StatusCode::kDeadlineExceeded, "no PostgreSQL connection to " + description_ +
                                                       " came free in time (pool of " +
                                                       std::to_string(options_.max_size) + ")");
    }
  }
  ++open_;
  const bool after_loss = outage_since_.has_value();
  lock.unlock();
  auto timeout = options_.connect_timeout;
  if (deadline != Clock::time_point::max()) {
    timeout = std::min(timeout, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
  }
  auto conn = Connection::connect(conninfo_, description_, timeout);
  lock.lock();
  if (!conn.ok()) {
    --open_;
    released_.notify_one();
    return conn.status();
  }
  if (after_loss) {
    ++reconnects_;
    if (outage_since_) {
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - *outage_since_).count();
      outage_since_.reset();
      lock.unlock();
      serving::log::event(spdlog::level::info, "postgres_reconnected", {{"server", description_}, {"outage_ms", ms}});
      lock.lock();
    }
  }
  return Lease(shared_from_this(), std::move(conn).value());
}

void Pool::release(std::unique_ptr<Connection> conn) {
  std::lock_guard lock(mutex_);
  if (conn->lost()) {
    --open_;
  } else {
    idle_.push_back(std::move(conn));
  }
  released_.notify_one();
}

Clock::time_point Pool::note_loss(const Status& why, int attempt, std::chrono::milliseconds backoff) {
  std::vector<std::unique_ptr<Connection>> stale;
  Clock::time_point since;
  bool first = false;
  {
    std::lock_guard lock(mutex_);
    if (!outage_since_) {
      outage_since_ = Clock::now();
      first = true;
    }
    since = *outage_since_;
    open_ -= idle_.size();
    stale.swap(idle_);
  }
  serving::log::event(
      first ? spdlog::level::warn : spdlog::level::info, "postgres_connection_lost",
      {{"server", description_}, {"error", why.message()}, {"attempt", attempt}, {"retry_in_ms", backoff.count()}});
  return since + options_.reconnect_timeout;
}

Status Pool::gave_up(const Status& last, int attempts) const {
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.1f", std::chrono::duration<double>(options_.reconnect_timeout).count());
  return Status(StatusCode::kUnavailable, last.message() + " (gave up after " + std::to_string(attempts) +
                                              " attempts; reconnect timeout " + secs + " s)");
}

void Pool::note_ok() {
  std::lock_guard lock(mutex_);
  outage_since_.reset();
}

std::chrono::milliseconds Pool::jittered(std::chrono::milliseconds backoff) {
  uint64_t x;
  {
    std::lock_guard lock(mutex_);
    jitter_state_ ^= jitter_state_ << 13;
    jitter_state_ ^= jitter_state_ >> 7;
    jitter_state_ ^= jitter_state_ << 17;
    x = jitter_state_;
  }
  // 75% to 125% of the nominal backoff, so callers that lost the server together do not retry in step.
  const double f = 0.75 + 0.5 * static_cast<double>(x % 1000) / 1000.0;
  return std::chrono::milliseconds(static_cast<int64_t>(static_cast<double>(backoff.count()) * f));
}

uint64_t Pool::reconnects() const {
  std::lock_guard lock(mutex_);
  return reconnects_;
}

size_t Pool::open_connections() const {
  std::lock_guard lock(mutex_);
  return open_;
}

}  // namespace deskml::features::pg
