#include "features/sqlite_source.hpp"

#include <functional>

namespace deskml::features {

Result<std::shared_ptr<SqliteSource>> SqliteSource::open(const SourceUri& uri, const SourceOptions& options) {
  std::shared_ptr<SqliteSource> src(new SqliteSource(uri.path, uri.redacted, options));
  // Open one connection now, so a missing file or a non-database fails here.
  DESKML_ASSIGN_OR_RETURN(auto db,
                          sqlite::Database::open(uri.path, sqlite::Database::Mode::kQueryOnly, options.busy_timeout));
  src->idle_.push_back(std::move(db));
  return src;
}

Result<SqliteSource::Lease> SqliteSource::acquire() {
  std::unique_ptr<sqlite::Database> db;
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      db = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (!db) {
    DESKML_ASSIGN_OR_RETURN(db,
                            sqlite::Database::open(path_, sqlite::Database::Mode::kQueryOnly, options_.busy_timeout));
  }
  return Lease(db.release(), [this](sqlite::Database* d) {
    std::lock_guard lock(mutex_);
    idle_.emplace_back(d);
  });
}

Result<RowBatch> SqliteSource::fetch_page(const KeyedQuery& query, const std::optional<Key>& after, size_t limit) {
  DESKML_ASSIGN_OR_RETURN(auto db, acquire());
  DESKML_ASSIGN_OR_RETURN(auto stmt, sqlite::Statement::prepare(*db, page_sql(Dialect::kSqlite, query.sql, query.key,
                                                                              after.has_value(), limit)));
  if (after) stmt.bind_key(1, *after);
  RowBatch out;
  DESKML_RETURN_IF_ERROR(sqlite::read_rows(*db, stmt, out, limit));
  return out;
}

Result<FeatureSource::RowCount> SqliteSource::count(const KeyedQuery& query, const std::optional<Key>& after) {
  DESKML_ASSIGN_OR_RETURN(auto db, acquire());
  DESKML_ASSIGN_OR_RETURN(
      auto stmt, sqlite::Statement::prepare(*db, count_sql(Dialect::kSqlite, query.sql, query.key, after.has_value())));
  if (after) stmt.bind_key(1, *after);
  RowBatch out;
  DESKML_RETURN_IF_ERROR(sqlite::read_rows(*db, stmt, out));
  if (out.rows() != 1 || out.at(0, 0).type != CellType::kInt || out.at(0, 1).type != CellType::kInt) {
    return internal_error("count(*) gave no integers");
  }
  return RowCount{out.at(0, 0).i, out.at(0, 1).i};
}

Result<RowBatch> SqliteSource::fetch_keys(const KeyedQuery& query, const std::vector<Key>& keys,
                                          Clock::time_point deadline) {
  if (keys.empty()) return invalid_argument("no keys to look up");
  if (keys.size() > kMaxLookupKeys) {
    return invalid_argument(std::to_string(keys.size()) + " keys in one lookup; at most " +
                            std::to_string(kMaxLookupKeys));
  }
  DESKML_ASSIGN_OR_RETURN(auto db, acquire());
  DESKML_ASSIGN_OR_RETURN(
      auto stmt, sqlite::Statement::prepare(*db, lookup_sql(Dialect::kSqlite, query.sql, query.key, keys.size())));
  for (size_t i = 0; i < keys.size(); ++i) stmt.bind_key(static_cast<int>(i + 1), keys[i]);
  // SQLite runs in this thread; the deadline stops it between virtual machine steps.
  struct Progress {
    Clock::time_point deadline;
  } progress{deadline};
  if (deadline != Clock::time_point::max()) {
    sqlite3_progress_handler(
        db->get(), 1000, [](void* p) { return Clock::now() > static_cast<Progress*>(p)->deadline ? 1 : 0; }, &progress);
  }
  RowBatch out;
  Status st = sqlite::read_rows(*db, stmt, out);
  sqlite3_progress_handler(db->get(), 0, nullptr, nullptr);
  if (!st.ok() && Clock::now() > deadline) {
    return Status(StatusCode::kDeadlineExceeded, "feature lookup in " + description_ + " passed its deadline");
  }
  DESKML_RETURN_IF_ERROR(st);
  return out;
}

}  // namespace deskml::features
