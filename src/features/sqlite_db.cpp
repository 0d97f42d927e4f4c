#include "features/sqlite_db.hpp"

#include <algorithm>
#include <thread>

namespace deskml::features::sqlite {

Status error_status(sqlite3* db, int rc, std::string_view context) {
  const std::string msg = std::string(context) + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status(StatusCode::kUnavailable, msg);
    case SQLITE_ERROR:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
    case SQLITE_CONSTRAINT:
      return invalid_argument(msg);
    case SQLITE_NOMEM:
      return Status(StatusCode::kResourceExhausted, msg);
    default:
      return io_error(msg);
  }
}

Result<std::unique_ptr<Database>> Database::open(const std::string& path, Mode mode,
                                                 std::chrono::milliseconds busy_timeout) {
  sqlite3* db = nullptr;
  // SQLite opens a file it may not write read-only, silently; reading still works.
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    Status st =
        (rc & 0xff) == SQLITE_CANTOPEN
            ? not_found("cannot open SQLite database '" + path + "': " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)))
            : error_status(db, rc, "cannot open SQLite database '" + path + "'");
    sqlite3_close_v2(db);
    return st;
  }
  sqlite3_extended_result_codes(db, 1);
  std::unique_ptr<Database> out(new Database(db, path));
  out->busy_timeout_ = busy_timeout;
  sqlite3_busy_handler(db, &Database::on_busy, out.get());
  if (mode == Mode::kQueryOnly) DESKML_RETURN_IF_ERROR(out->exec("PRAGMA query_only = 1"));
  // A file that is not a database fails on first use; find out now (this also
  // rolls back a journal left by a writer that died).
  DESKML_RETURN_IF_ERROR(out->exec("SELECT count(*) FROM sqlite_master"));
  return out;
}

Database::~Database() { sqlite3_close_v2(db_); }

// sqlite3_busy_timeout's handler sleeps 1, 2, 5, 10, ... ms between tries. A
// reader and a writer of the same file (deskml score writing its results into
// the database it reads) meet at every commit, and each meeting cost at least a
// millisecond. This one waits 20 µs first, doubling up to 5 ms, for the same
// total timeout.
int Database::on_busy(void* self, int tries) {
  auto& db = *static_cast<Database*>(self);
  const auto now = std::chrono::steady_clock::now();
  if (tries == 0) db.busy_since_ = now;
  if (now - db.busy_since_ >= db.busy_timeout_) return 0;
  const auto wait = std::chrono::microseconds(int64_t{20} << std::min(tries, 8));
  std::this_thread::sleep_for(std::min<std::chrono::microseconds>(wait, std::chrono::milliseconds(5)));
  return 1;
}

Status Database::exec(std::string_view sql) {
  char* err = nullptr;
  const std::string text(sql);
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return Status::Ok();
  sqlite3_free(err);
  return error_status(db_, rc, path_);
}

Result<Statement> Statement::prepare(const Database& db, std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v2(db.get(), sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    std::string text(sql.substr(0, 160));
    for (char& c : text) {
      if (c == '\n') c = ' ';
    }
    if (sql.size() > 160) text += "...";
    Status st = error_status(db.get(), rc, db.path());
    return Status(st.code(), st.message() + " (in: " + text + ")");
  }
  return Statement(stmt);
}

void Statement::bind_key(int i, const Key& key) {
  if (const auto* v = std::get_if<int64_t>(&key)) {
    sqlite3_bind_int64(stmt_, i, *v);
  } else {
    bind_text(i, std::get<std::string>(key));
  }
}

void Statement::bind_text(int i, std::string_view text) {
  sqlite3_bind_text64(stmt_, i, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
}

Status read_rows(const Database& db, Statement& stmt, RowBatch& out, size_t expected_rows) {
  sqlite3_stmt* s = stmt.get();
  const int n = sqlite3_column_count(s);
  out.columns.clear();
  for (int c = 0; c < n; ++c) out.columns.emplace_back(sqlite3_column_name(s, c));
  out.cells.reserve(out.cells.size() + expected_rows * static_cast<size_t>(n));
  for (;;) {
    const int rc = stmt.step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) {
      Status st = error_status(db.get(), rc, db.path());
      stmt.reset();
      return st;
    }
    for (int c = 0; c < n; ++c) {
      // One column call per cell, then the value's own accessors, which skip the
      // per-call bookkeeping of sqlite3_column_*. The value is "unprotected";
      // connections here are opened without a mutex (multi-thread mode), where
      // SQLite makes no distinction.
      sqlite3_value* v = sqlite3_column_value(s, c);
      switch (sqlite3_value_type(v)) {
        case SQLITE_INTEGER:
          out.cells.push_back(Cell::integer(sqlite3_value_int64(v)));
          break;
        case SQLITE_FLOAT:
          out.cells.push_back(Cell::real(sqlite3_value_double(v)));
          break;
        case SQLITE_NULL:
          out.cells.push_back(Cell::null());
          break;
        default: {  // text or blob
          const auto* p = static_cast<const char*>(sqlite3_value_blob(v));
          const int bytes = sqlite3_value_bytes(v);
          out.add_text(std::string_view(p ? p : "", static_cast<size_t>(bytes)));
        }
      }
    }
  }
  stmt.reset();
  return Status::Ok();
}

}  // namespace deskml::features::sqlite
