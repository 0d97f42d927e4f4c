#include "scoring/progress.hpp"

#include <algorithm>
#include <cstdio>
#include <string>

#include "serving/log.hpp"

namespace deskml::scoring {

namespace {

std::string duration_text(double seconds) {
  const auto s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  }
  return buf;
}

std::string rate_text(double r) {
  char buf[32];
  if (r >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2fM", r / 1e6);
  } else if (r >= 1e3) {
    std::snprintf(buf, sizeof buf, "%.1fk", r / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f", r);
  }
  return buf;
}

}  // namespace

std::string group_thousands(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

Progress::Progress(bool terminal, std::chrono::milliseconds interval) : terminal_(terminal), interval_(interval) {}

void Progress::start(int64_t rows_before, std::optional<int64_t> rows_total) {
  started_ = last_shown_ = Clock::now();
  before_ = rows_before;
  total_ = rows_total;
  done_ = 0;
  if (terminal_) draw(false);
}

double Progress::rows_per_second() const {
  const double s = std::chrono::duration<double>(Clock::now() - started_).count();
  return s > 0 ? static_cast<double>(done_) / s : 0.0;
}

void Progress::update(int64_t rows_this_run) {
  done_ = rows_this_run;
  const auto now = Clock::now();
  const auto every = terminal_ ? std::chrono::milliseconds(100) : interval_;
  if (now - last_shown_ < every) return;
  last_shown_ = now;
  draw(false);
}

void Progress::finish() {
  if (terminal_) {
    draw(true);
    std::fputc('\n', stderr);
    std::fflush(stderr);
  }
}

void Progress::draw(bool last) {
  const int64_t written = before_ + done_;
  const double rate = rows_per_second();
  std::optional<double> eta;
  if (total_ && rate > 0) eta = static_cast<double>(std::max<int64_t>(0, *total_ - written)) / rate;
  if (!terminal_) {
    nlohmann::json fields = {{"rows_written", written}, {"rows_this_run", done_}, {"rows_per_s", rate}};
    if (total_) fields["rows_total"] = *total_;
    if (eta) fields["eta_s"] = *eta;
    serving::log::event(spdlog::level::info, "score_progress", fields);
    return;
  }
  constexpr int kWidth = 24;
  std::string line = "\r";
  if (total_ && *total_ > 0) {
    const double f = std::clamp(static_cast<double>(written) / static_cast<double>(*total_), 0.0, 1.0);
    const int fill = static_cast<int>(f * kWidth);
    line +=
        "[" + std::string(static_cast<size_t>(fill), '#') + std::string(static_cast<size_t>(kWidth - fill), '.') + "] ";
    char pct[16];
    std::snprintf(pct, sizeof pct, "%5.1f%%  ", f * 100);
    line += pct;
    line += group_thousands(written) + "/" + group_thousands(*total_) + " rows";
  } else {
    line += group_thousands(written) + " rows";
  }
  line += "  " + rate_text(rate) + " rows/s";
  if (last) {
    line += "  in " + duration_text(std::chrono::duration<double>(Clock::now() - started_).count());
  } else if (eta) {
    line += "  ETA " + duration_text(*eta);
  }
  line += "\x1b[K";  // clear what a longer earlier line left
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace deskml::scoring
