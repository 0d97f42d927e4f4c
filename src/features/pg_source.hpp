// The PostgreSQL feature source: statements run on a pooled connection
// (features/pg_pool.hpp), so a server restart costs a retry, not the job.
// Results arrive in text form and are typed by column: smallint, integer,
// bigint and oid as integers; real, double precision and numeric as reals;
// boolean; everything else as text.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "features/feature_source.hpp"
#include "features/pg_copy_stream.hpp"
#include "features/pg_pool.hpp"

namespace deskml::features {

class PgSource final : public FeatureSource {
 public:
  static Result<std::shared_ptr<PgSource>> open(const SourceUri& uri, const SourceOptions& options);

  SourceKind kind() const override { return SourceKind::kPostgres; }
  const std::string& description() const override { return pool_->description(); }
  const std::shared_ptr<pg::Pool>& pool() const { return pool_; }

  Result<RowBatch> fetch_page(const KeyedQuery& query, const std::optional<Key>& after, size_t limit) override;
  Result<RowCount> count(const KeyedQuery& query, const std::optional<Key>& after) override;
  Result<RowBatch> fetch_keys(const KeyedQuery& query, const std::vector<Key>& keys,
                              Clock::time_point deadline) override;

 private:
  // A bulk read: one COPY stream over the whole query, continued while pages are
  // asked for in order (each after the last key of the one before).
  struct Bulk {
    std::string query_sql, key;
    size_t key_col = 0;
    std::optional<Key> last;  // the last key handed out
    std::unique_ptr<pg::CopyStream> stream;
  };
  explicit PgSource(std::shared_ptr<pg::Pool> pool) : pool_(std::move(pool)) {}
  // A stream from `after`, or nullopt when the query is read page by page: a
  // column type without a binary decoder, or opening failed (the paged read then
  // reports the failure, retrying as it does).
  std::optional<Bulk> open_bulk(const KeyedQuery& query, const std::optional<Key>& after);

  std::shared_ptr<pg::Pool> pool_;
  std::mutex bulk_mutex_;
  std::optional<Bulk> bulk_;
  std::optional<std::pair<std::string, std::string>> paged_only_;  // (query, key) with a type COPY cannot stream
};

namespace pg {
// A result's rows as typed cells (see PgSource). InvalidArgument when a number does not parse.
Result<RowBatch> to_row_batch(const PGresult* result);
}  // namespace pg

}  // namespace deskml::features
