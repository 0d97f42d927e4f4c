// Progress of a scoring job: a bar redrawn in place when stderr is a terminal,
//   [########............]  41.0%  410,112/1,000,000 rows  98.2k rows/s  ETA 0:06
// and otherwise a JSON log line (event "score_progress") every few seconds.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace deskml::scoring {

class Progress {
 public:
  using Clock = std::chrono::steady_clock;

  // `terminal`: draw the bar on stderr; else log every `interval`.
  explicit Progress(bool terminal, std::chrono::milliseconds interval = std::chrono::seconds(5));
  // Rows written by earlier runs, and all rows the job will have written when done (if known).
  void start(int64_t rows_before, std::optional<int64_t> rows_total);
  // Rows written by this run so far.
  void update(int64_t rows_this_run);
  // Ends the bar's line.
  void finish();

  double rows_per_second() const;

 private:
  void draw(bool last);

  bool terminal_;
  std::chrono::milliseconds interval_;
  Clock::time_point started_{}, last_shown_{};
  int64_t before_ = 0, done_ = 0;
  std::optional<int64_t> total_;
  bool drawn_ = false;
};

// "1,234,567"
std::string group_thousands(int64_t n);

}  // namespace deskml::scoring
