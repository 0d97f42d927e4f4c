// kill -9 at random moments, then resume: the crash test shared by the SQLite,
// CSV and PostgreSQL scoring tests. Each trial starts a real `deskml score`
// process, kills it with SIGKILL one to three times at random points (model
// loading, reading, inference, mid-transaction, mid-fsync: wherever the moment
// falls), then lets a last run finish; the caller then checks every row was
// written exactly once.
#pragma once

#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "features_test_util.hpp"

namespace deskml::features::testing {

struct KillStats {
  int kills = 0;    // runs ended by SIGKILL
  int mid_run = 0;  // ... after some rows and before the last
  int finished_before_kill = 0;
};

struct KillPlan {
  int trials = 10;
  int64_t total_rows = 0;
  double full_run_seconds = 1;                              // an uninterrupted run, process start to exit
  std::function<std::vector<std::string>(int trial)> args;  // deskml score arguments (no binary)
  std::function<int64_t(int trial)> rows_done;              // what the trial's checkpoint says
  std::function<void(int trial)> verify;                    // after the trial's last run
};

inline KillStats kill_and_resume(const KillPlan& plan, const fs::path& dir, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  KillStats stats;
  const auto argv_for = [&](int trial, bool fresh) {
    std::vector<std::string> argv = {DESKML_BINARY};
    for (auto& a : plan.args(trial)) argv.push_back(a);
    if (fresh) argv.push_back("--fresh");
    return argv;
  };
  for (int trial = 0; trial < plan.trials; ++trial) {
    // Every trial is killed at least once: when the job outruns its first kill, it
    // starts over (--fresh) with kills drawn from a shorter span.
    int trial_kills = 0;
    double scale = 1.0;
    bool fresh = false;
    for (int attempt = 0; trial_kills == 0 && attempt < 8; ++attempt) {
      const int kills = 1 + static_cast<int>(rng() % 3);
      for (int k = 0; k < kills; ++k) {
        const int64_t before = fresh && k == 0 ? 0 : plan.rows_done(trial);
        if (before >= plan.total_rows) break;
        // Somewhere in what is left of the run, startup included.
        const double left = static_cast<double>(plan.total_rows - before) / static_cast<double>(plan.total_rows);
        const double span = scale * plan.full_run_seconds * (0.15 + 0.85 * left);
        Child child(argv_for(trial, fresh && k == 0), dir, "kill");
        if (unit(rng) < 0.5) {
          // Half the kills wait for the run's first committed rows, then a little
          // more: enough of them land mid-run however fast this machine is now
          // compared with when full_run_seconds was measured.
          const auto give_up =
              std::chrono::steady_clock::now() + std::chrono::duration<double>(2.0 + 4.0 * plan.full_run_seconds);
          while (child.running() && plan.rows_done(trial) <= before && std::chrono::steady_clock::now() < give_up) {
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
          }
          std::this_thread::sleep_for(std::chrono::duration<double>(unit(rng) * 0.2 * span));
        } else {
          std::this_thread::sleep_for(std::chrono::duration<double>(unit(rng) * 0.9 * span));
        }
        child.signal(SIGKILL);
        const Outcome o = child.wait();
        if (o.signal == SIGKILL) {
          ++stats.kills;
          ++trial_kills;
          const int64_t after = plan.rows_done(trial);
          EXPECT_GE(after, before) << "the checkpoint went backwards";
          if (after > 0 && after < plan.total_rows) ++stats.mid_run;
        } else {
          EXPECT_EQ(o.exit_code, 0) << o.err;
          ++stats.finished_before_kill;
          break;
        }
      }
      fresh = true;
      scale *= 0.5;
    }
    EXPECT_GT(trial_kills, 0) << "trial " << trial << " always finished before its kill";
    Child last(argv_for(trial, false), dir, "finish");
    const Outcome o = last.wait();
    EXPECT_EQ(o.exit_code, 0) << o.err;
    const auto summary = nlohmann::json::parse(o.out.substr(0, o.out.find('\n')), nullptr, false);
    EXPECT_TRUE(summary.is_object() && summary.value("complete", false)) << o.out << o.err;
    EXPECT_EQ(plan.rows_done(trial), plan.total_rows);
    plan.verify(trial);
  }
  return stats;
}

// The JSON summary `deskml score` prints on stdout.
// Prints what the kills hit and checks enough of them landed while rows were
// being written: fewer would not test the resume.
inline void expect_kills_landed(const char* what, const KillStats& stats, double full_run_seconds) {
  std::printf("%s: %d kills, %d mid-run, %d finished first (full run %.2f s)\n", what, stats.kills, stats.mid_run,
              stats.finished_before_kill, full_run_seconds);
  EXPECT_GE(stats.kills, 10);
  EXPECT_GE(stats.mid_run, 5) << "too few kills landed while rows were being written";
}

inline nlohmann::json summary_of(const Outcome& o) {
  return nlohmann::json::parse(o.out.substr(0, o.out.find('\n')), nullptr, false);
}

}  // namespace deskml::features::testing
