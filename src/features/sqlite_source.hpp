// The SQLite feature source: a database file, read through query-only
// connections (one per concurrent caller, kept for reuse), so the caller's query
// cannot change the database.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "features/feature_source.hpp"
#include "features/sqlite_db.hpp"

namespace deskml::features {

class SqliteSource final : public FeatureSource {
 public:
  static Result<std::shared_ptr<SqliteSource>> open(const SourceUri& uri, const SourceOptions& options);

  SourceKind kind() const override { return SourceKind::kSqlite; }
  const std::string& description() const override { return description_; }
  const std::string& path() const { return path_; }
  std::chrono::milliseconds busy_timeout() const { return options_.busy_timeout; }

  Result<RowBatch> fetch_page(const KeyedQuery& query, const std::optional<Key>& after, size_t limit) override;
  Result<RowCount> count(const KeyedQuery& query, const std::optional<Key>& after) override;
  Result<RowBatch> fetch_keys(const KeyedQuery& query, const std::vector<Key>& keys,
                              Clock::time_point deadline) override;

 private:
  SqliteSource(std::string path, std::string description, SourceOptions options)
      : path_(std::move(path)), description_(std::move(description)), options_(options) {}

  // A connection for the caller's exclusive use, returned to the idle list when released.
  using Lease = std::unique_ptr<sqlite::Database, std::function<void(sqlite::Database*)>>;
  Result<Lease> acquire();

  std::string path_;
  std::string description_;
  SourceOptions options_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<sqlite::Database>> idle_;
};

}  // namespace deskml::features
