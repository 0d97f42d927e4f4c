// The real `deskml score` binary on SQLite: killed with SIGKILL at random points
// and resumed, ten trials each into a table and into a CSV file, every row
// written exactly once with the values of an uninterrupted run; SIGTERM stops it
// cleanly with a resumable checkpoint.
#include <gtest/gtest.h>

#include "kill_resume.hpp"

namespace deskml::features::testing {
namespace {

constexpr int64_t kRows = 20000;

class ScoreKillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DESKML_REQUIRE_TABULAR();
    db_ = dir_ / "features.db";
    Sqlite db(db_);
    db.load_csv("rows", tabular_dir() / "synthetic_20000.csv");
    // The reference: one uninterrupted run, timed.
    const auto t0 = std::chrono::steady_clock::now();
    const Outcome o = run_deskml(args("reference"), dir_.path(), "reference");
    full_run_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_EQ(o.exit_code, 0) << o.err;
    reference_ = values("SELECT * FROM reference ORDER BY key");
    ASSERT_EQ(reference_.size(), static_cast<size_t>(kRows));
  }

  std::vector<std::string> args(const std::string& into) const {
    return {"score",
            "--models",
            tabular_models().string(),
            "--model",
            "breast_cancer",
            "--source",
            "sqlite:" + db_.string(),
            "--query",
            "SELECT * FROM rows",
            "--key",
            "id",
            "--into",
            into,
            "--batch",
            "128",
            "--threads",
            "1",
            "--progress",
            "off"};
  }

  std::vector<std::vector<std::string>> values(const std::string& sql) {
    Sqlite db(db_);
    return db.query(sql);
  }

  int64_t table_rows_done(const std::string& table) {
    Sqlite db(db_);
    const auto v = db.try_scalar("SELECT rows_done FROM deskml_score_checkpoints WHERE output_table = '" + table + "'");
    return v ? std::stoll(*v) : 0;
  }

  // Every key once, in order, each row equal to the reference run's.
  void expect_exactly_once(const std::vector<std::vector<std::string>>& rows, const std::string& what) {
    ASSERT_EQ(rows.size(), reference_.size()) << what;
    for (size_t i = 0; i < rows.size(); ++i) {
      ASSERT_EQ(rows[i].size(), reference_[i].size()) << what << " row " << i;
      ASSERT_EQ(rows[i][0], std::to_string(i + 1)) << what << ": keys are not 1.." << kRows << " once each";
      for (size_t c = 1; c < rows[i].size(); ++c) {
        ASSERT_TRUE(close(std::stod(rows[i][c]), std::stod(reference_[i][c]), 1e-6, 1e-9))
            << what << " key " << rows[i][0] << " column " << c << ": " << rows[i][c] << " vs " << reference_[i][c];
      }
    }
  }

  TempDir dir_;
  fs::path db_;
  double full_run_seconds_ = 1;
  std::vector<std::vector<std::string>> reference_;
};

TEST_F(ScoreKillTest, KilledRunsResumeIntoATableExactlyOnce) {
  KillPlan plan;
  plan.total_rows = kRows;
  plan.full_run_seconds = full_run_seconds_;
  plan.args = [&](int t) { return args("preds_" + std::to_string(t)); };
  plan.rows_done = [&](int t) { return table_rows_done("preds_" + std::to_string(t)); };
  plan.verify = [&](int t) {
    const std::string table = "preds_" + std::to_string(t);
    expect_exactly_once(values("SELECT * FROM " + table + " ORDER BY key"), table);
    Sqlite db(db_);
    EXPECT_EQ(db.scalar("SELECT count(DISTINCT key) FROM " + table), std::to_string(kRows));
  };
  const KillStats stats = kill_and_resume(plan, dir_.path(), 20240601);
  expect_kills_landed("table", stats, full_run_seconds_);
}

TEST_F(ScoreKillTest, KilledRunsResumeIntoACsvFileExactlyOnce) {
  const auto csv_path = [&](int t) { return (dir_ / ("preds_" + std::to_string(t) + ".csv")).string(); };
  KillPlan plan;
  plan.total_rows = kRows;
  plan.full_run_seconds = full_run_seconds_;
  plan.args = [&](int t) { return args(csv_path(t)); };
  plan.rows_done = [&](int t) {
    const auto j = nlohmann::json::parse(read_file(csv_path(t) + ".checkpoint"), nullptr, false);
    return j.is_object() ? j.value("rows_done", int64_t{0}) : int64_t{0};
  };
  plan.verify = [&](int t) {
    const std::string text = read_file(csv_path(t));
    ASSERT_FALSE(text.empty());
    EXPECT_EQ(text.back(), '\n') << "a partial line at the end";
    const Csv csv = Csv::read(csv_path(t));
    EXPECT_EQ(csv.header, (std::vector<std::string>{"key", "logits_0", "logits_1", "probability_0"}));
    expect_exactly_once(csv.rows, csv_path(t));
  };
  const KillStats stats = kill_and_resume(plan, dir_.path(), 77);
  expect_kills_landed("csv", stats, full_run_seconds_);
}

TEST_F(ScoreKillTest, SigtermStopsAfterAPageAndTheRerunFinishes) {
  std::vector<std::string> argv = {DESKML_BINARY};
  for (auto& a : args("stopped")) argv.push_back(a);
  Child child(argv, dir_.path(), "term");
  // Wait for the first rows, then ask it to stop.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (table_rows_done("stopped") == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  child.signal(SIGTERM);
  const Outcome o = child.wait();
  const int64_t done = table_rows_done("stopped");
  if (done < kRows) {
    EXPECT_EQ(o.exit_code, 128 + SIGTERM) << o.err;
    EXPECT_NE(o.err.find("stopped;"), std::string::npos) << o.err;
    EXPECT_FALSE(summary_of(o).value("complete", true));
  }
  EXPECT_EQ(done, summary_of(o).value("rows_total", int64_t{-1}));
  const Outcome rest = run_deskml(args("stopped"), dir_.path(), "rest");
  ASSERT_EQ(rest.exit_code, 0) << rest.err;
  EXPECT_EQ(summary_of(rest).value("rows_before", int64_t{-1}), done);
  expect_exactly_once(values("SELECT * FROM stopped ORDER BY key"), "stopped");
}

}  // namespace
}  // namespace deskml::features::testing
