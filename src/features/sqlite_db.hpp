// Small RAII wrappers over the SQLite C API, shared by the SQLite feature source
// and the result tables deskml score writes into a SQLite database.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.hpp"
#include "features/row_batch.hpp"

namespace deskml::features::sqlite {

// A Status for a failed call: Unavailable for a busy or locked database (try
// again later), InvalidArgument for an SQL error (with SQLite's message), IoError
// for the rest. `context` goes in front.
Status error_status(sqlite3* db, int rc, std::string_view context);

class Database {
 public:
  // Opens an existing database file (never creates one); busy_timeout is how
  // long a statement waits for a lock. A query-only connection refuses writes
  // (PRAGMA query_only) yet, unlike one opened read-only, can still roll back the
  // journal a writer killed mid-commit left behind, which the next reader of the
  // file must do before it can read.
  enum class Mode { kQueryOnly, kReadWrite };
  static Result<std::unique_ptr<Database>> open(const std::string& path, Mode mode,
                                                std::chrono::milliseconds busy_timeout);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  sqlite3* get() const { return db_; }
  const std::string& path() const { return path_; }
  // Runs statements that return no rows.
  Status exec(std::string_view sql);

 private:
  Database(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  static int on_busy(void* self, int tries);

  sqlite3* db_;
  std::string path_;
  std::chrono::milliseconds busy_timeout_{0};
  std::chrono::steady_clock::time_point busy_since_;
};

// A prepared statement, finalized at scope exit.
class Statement {
 public:
  static Result<Statement> prepare(const Database& db, std::string_view sql);
  Statement(Statement&& other) noexcept : stmt_(other.stmt_) { other.stmt_ = nullptr; }
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  sqlite3_stmt* get() const { return stmt_; }
  // Binds a key (integer or text) to parameter i (1-based).
  void bind_key(int i, const Key& key);
  void bind_text(int i, std::string_view text);
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(stmt_); }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

 private:
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  sqlite3_stmt* stmt_;
};

// Steps `stmt` to the end, appending every row to `out` (whose columns are set
// from the statement's). NULL, integer, real and text keep their types; a blob
// becomes text. `expected_rows` sizes the cells up front (a page's limit).
Status read_rows(const Database& db, Statement& stmt, RowBatch& out, size_t expected_rows = 0);

}  // namespace deskml::features::sqlite
