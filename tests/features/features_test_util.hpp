// Shared by the feature-source and scoring tests: temporary folders, CSV files,
// SQLite databases built from them, the tabular model's generated files, and
// child processes (the real deskml binary).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "temp_dir.hpp"

namespace deskml::features::testing {

namespace fs = std::filesystem;

using test_support::TempDir;

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A CSV file with a header row and no quoted fields (what make_tabular_model.py writes).
struct Csv {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;

  static Csv read(const fs::path& path) {
    Csv csv;
    std::ifstream in(path);
    std::string line;
    bool first = true;
    while (std::getline(in, line)) {
      std::vector<std::string> fields;
      std::stringstream ss(line);
      std::string f;
      while (std::getline(ss, f, ',')) fields.push_back(f);
      if (!line.empty() && line.back() == ',') fields.emplace_back();
      if (first) {
        csv.header = std::move(fields);
        first = false;
      } else {
        csv.rows.push_back(std::move(fields));
      }
    }
    return csv;
  }
  size_t column(const std::string& name) const {
    for (size_t i = 0; i < header.size(); ++i) {
      if (header[i] == name) return i;
    }
    ADD_FAILURE() << "no column " << name;
    return 0;
  }
};

// The generated tabular model and data (tests/models/make_tabular_model.py, run by
// the tabular_model CTest fixture into the build folder).
inline fs::path tabular_dir() { return DESKML_TABULAR_DIR; }
inline fs::path tabular_models() { return tabular_dir() / "models"; }
inline bool tabular_ready() { return fs::exists(tabular_dir() / "meta.json"); }
#define DESKML_REQUIRE_TABULAR()                                                                  \
  do {                                                                                            \
    ASSERT_TRUE(::deskml::features::testing::tabular_ready())                                     \
        << "missing " << ::deskml::features::testing::tabular_dir()                               \
        << ": run tests/models/make_tabular_model.py --out <that folder> --synthetic-rows 20000 " \
           "(ctest's tabular_model fixture does)";                                                \
  } while (0)

// Expected outputs per id from expected.csv: logits_0, logits_1, probability_0.
inline std::map<int64_t, std::vector<double>> expected_outputs() {
  const Csv csv = Csv::read(tabular_dir() / "expected.csv");
  std::map<int64_t, std::vector<double>> out;
  for (const auto& r : csv.rows) out[std::stoll(r[0])] = {std::stod(r[1]), std::stod(r[2]), std::stod(r[3])};
  return out;
}

inline bool close(double actual, double expected, double rtol = 1e-3, double atol = 1e-4) {
  return std::fabs(actual - expected) <= atol + rtol * std::fabs(expected);
}

// ---- SQLite ----------------------------------------------------------------------------

class Sqlite {
 public:
  explicit Sqlite(const fs::path& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    sqlite3_busy_timeout(db_, 10000);
  }
  ~Sqlite() { sqlite3_close(db_); }
  Sqlite(const Sqlite&) = delete;
  Sqlite& operator=(const Sqlite&) = delete;
  sqlite3* get() const { return db_; }

  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << (err ? err : "?");
      sqlite3_free(err);
    }
  }
  // Rows of text values (NULL as "NULL").
  std::vector<std::vector<std::string>> query(const std::string& sql) {
    std::vector<std::vector<std::string>> out;
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return out;
    }
    while (sqlite3_step(s) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int c = 0; c < sqlite3_column_count(s); ++c) {
        const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(s, c));
        row.emplace_back(t ? t : "NULL");
      }
      out.push_back(std::move(row));
    }
    sqlite3_finalize(s);
    return out;
  }
  // The first value of the first row, or nullopt when the statement fails (a table not there yet).
  std::optional<std::string> try_scalar(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    std::optional<std::string> out;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
      const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
      out = t ? t : "NULL";
    }
    sqlite3_finalize(s);
    return out;
  }
  std::string scalar(const std::string& sql) {
    auto rows = query(sql);
    return rows.empty() || rows[0].empty() ? "" : rows[0][0];
  }

  // Creates `table` from a make_tabular_model.py CSV: id INTEGER PRIMARY KEY, the
  // features REAL, target INTEGER.
  void load_csv(const std::string& table, const fs::path& csv_path) {
    const Csv csv = Csv::read(csv_path);
    std::string ddl = "CREATE TABLE " + table + " (id INTEGER PRIMARY KEY";
    for (size_t i = 1; i + 1 < csv.header.size(); ++i) ddl += ", " + csv.header[i] + " REAL";
    exec(ddl + ", target INTEGER)");
    exec("BEGIN");
    std::string ins = "INSERT INTO " + table + " VALUES (?";
    for (size_t i = 1; i < csv.header.size(); ++i) ins += ", ?";
    sqlite3_stmt* s = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db_, (ins + ")").c_str(), -1, &s, nullptr), SQLITE_OK);
    for (const auto& r : csv.rows) {
      sqlite3_bind_int64(s, 1, std::stoll(r[0]));
      for (size_t i = 1; i + 1 < r.size(); ++i) sqlite3_bind_double(s, static_cast<int>(i + 1), std::stod(r[i]));
      sqlite3_bind_int64(s, static_cast<int>(r.size()), std::stoll(r.back()));
      EXPECT_EQ(sqlite3_step(s), SQLITE_DONE);
      sqlite3_reset(s);
    }
    sqlite3_finalize(s);
    exec("COMMIT");
  }

 private:
  sqlite3* db_ = nullptr;
};

// ---- child processes ---------------------------------------------------------------------

struct Outcome {
  bool exited = false;
  int exit_code = -1;
  int signal = 0;
  std::string out, err;
};

// A child process with stdout and stderr in files.
class Child {
 public:
  Child(const std::vector<std::string>& args, const fs::path& dir, const std::string& tag = "child")
      : out_(dir / (tag + ".out")), err_(dir / (tag + ".err")) {
    pid_ = ::fork();
    if (pid_ == 0) {
      const int o = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int e = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(o, 1);
      ::dup2(e, 2);
      ::setenv("DESKML_LOG_LEVEL", "info", 1);
      std::vector<std::string> all = args;
      std::vector<char*> argv;
      for (auto& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  ~Child() {
    if (pid_ > 0 && !done_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  void signal(int sig) { ::kill(pid_, sig); }
  // True until the child ends; its exit status is left for wait().
  bool running() const {
    siginfo_t info{};
    return ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == 0;
  }
  // Waits for the child to end (killing it after `timeout`).
  Outcome wait(std::chrono::seconds timeout = std::chrono::seconds(300)) {
    Outcome o;
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) break;
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "child " << pid_ << " did not end in time";
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    done_ = true;
    o.exited = WIFEXITED(status);
    o.exit_code = o.exited ? WEXITSTATUS(status) : -1;
    o.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    o.out = read_file(out_);
    o.err = read_file(err_);
    return o;
  }

 private:
  pid_t pid_ = -1;
  bool done_ = false;
  fs::path out_, err_;
};

inline Outcome run_deskml(const std::vector<std::string>& args, const fs::path& dir, const std::string& tag = "run") {
  std::vector<std::string> all = {DESKML_BINARY};
  all.insert(all.end(), args.begin(), args.end());
  Child c(all, dir, tag);
  return c.wait();
}

}  // namespace deskml::features::testing
