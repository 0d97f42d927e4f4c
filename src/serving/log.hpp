// Structured logs: one JSON object per line, on stderr by default, e.g.
//   {"ts":"2026-11-22T09:15:02.118+0000","level":"info","event":"model_loaded","model":"mlp","ms":41.2}
// Request ids tie a request's lines together.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/status.hpp"

namespace deskml::serving::log {

// The "deskml" logger (created on first use, on stderr, level info or $DESKML_LOG_LEVEL).
spdlog::logger& logger();
// Sets the level: "trace", "debug", "info", "warn", "error", "critical" or "off"
// (what $DESKML_LOG_LEVEL takes). InvalidArgument for anything else; the level
// is then unchanged.
Status set_level(std::string_view name);
// Replaces the logger's sinks, e.g. with a file or a test's capture. Not thread-safe:
// call it while nothing logs (before starting a runtime, or between requests).
void set_sink(std::shared_ptr<spdlog::sinks::sink> sink);
// Writes {"ts":..., "level":..., "event": event, ...fields}.
void event(spdlog::level::level_enum level, std::string_view event,
           const nlohmann::json& fields = nlohmann::json::object());
inline bool enabled(spdlog::level::level_enum level) { return logger().should_log(level); }
// A process-unique id such as "r5f3a-2a".
std::string new_request_id();

}  // namespace deskml::serving::log
