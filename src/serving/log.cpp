#include "serving/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
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
  // live inside std::string's own buffer (no allocation per request).
  static const unsigned tag =
      static_cast<unsigned>((static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                             (static_cast<uint64_t>(::getpid()) * 2654435761u)) &
                            0xffffu);
  static std::atomic<uint64_t> counter{0};
  char buf[32];
  buf[0] = 'r';
  for (int i = 0; i < 4; ++i) buf[1 + i] = "0123456789abcdef"[(tag >> (12 - 4 * i)) & 0xf];
  buf[5] = '-';
  auto [end, ec] = std::to_chars(buf + 6, buf + sizeof buf, counter.fetch_add(1, std::memory_order_relaxed) + 1, 16);
  return std::string(buf, static_cast<size_t>(end - buf));
}

}  // namespace deskml::serving::log
