#include "serving/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace deskml::serving::log {

namespace {

constexpr const char* kPattern = R"({"ts":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l",%v})";

std::shared_ptr<spdlog::logger> make_logger() {
  auto logger = std::make_shared<spdlog::logger>("deskml", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_pattern(kPattern);
  logger->set_level(spdlog::level::info);
  if (const char* level = std::getenv("DESKML_LOG_LEVEL")) logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  return logger;
}

std::shared_ptr<spdlog::logger>& instance() {
  static std::shared_ptr<spdlog::logger> logger = make_logger();
  return logger;
}

}  // namespace

spdlog::logger& logger() { return *instance(); }

Status set_level(std::string_view name) {
  static constexpr std::string_view kNames[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  for (std::string_view n : kNames) {
    if (n == name) {
      logger().set_level(spdlog::level::from_str(std::string(n)));
      return Status::Ok();
    }
  }
  return invalid_argument("unknown log level '" + std::string(name) +
                          "': use trace, debug, info, warn, error, critical or off");
}

void set_sink(std::shared_ptr<spdlog::sinks::sink> sink) {
  sink->set_pattern(kPattern);
  auto& sinks = instance()->sinks();
  sinks.clear();
  sinks.push_back(std::move(sink));
}

void event(spdlog::level::level_enum level, std::string_view event, const nlohmann::json& fields) {
  auto& l = logger();
  if (!l.should_log(level)) return;
  nlohmann::json obj = nlohmann::json::object();
  obj["event"] = event;
  if (fields.is_object()) {
    for (auto it = fields.begin(); it != fields.end(); ++it) obj[it.key()] = it.value();
  }
  const std::string text = obj.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  l.log(level, "{}", std::string_view(text).substr(1, text.size() - 2));
}

std::string new_request_id() {
  // "r" + 4 hex digits fixed per process + "-" + a hex counter: short enough to
  // live inside std::string's own buffer (no allocation per request). Each
  // thread takes its numbers from the shared counter in blocks, so ids are
  // unique without an atomic operation per request.
  static const unsigned tag =
      static_cast<unsigned>((static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                             (static_cast<uint64_t>(::getpid()) * 2654435761u)) &
                            0xffffu);
  static std::atomic<uint64_t> counter{0};
  constexpr uint64_t kBlock = 1024;
  thread_local uint64_t next = 0, end = 0;
  if (next == end) {
    next = counter.fetch_add(kBlock, std::memory_order_relaxed) + 1;
    end = next + kBlock;
  }
  const uint64_t n = next++;
  constexpr char kHex[] = "0123456789abcdef";
  char buf[24];
  buf[0] = 'r';
  for (int i = 0; i < 4; ++i) buf[1 + i] = kHex[(tag >> (12 - 4 * i)) & 0xf];
  buf[5] = '-';
  const int digits = (64 - __builtin_clzll(n) + 3) / 4;  // n >= 1
  for (int i = 0; i < digits; ++i) buf[6 + digits - 1 - i] = kHex[(n >> (4 * i)) & 0xf];
  return std::string(buf, static_cast<size_t>(6 + digits));
}

}  // namespace deskml::serving::log
