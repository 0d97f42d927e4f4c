// A feature source: a database that answers a caller's SELECT with model inputs,
// either walked in key order one page at a time (bulk scoring, docs/SCORING.md)
// or looked up by key (online requests). One interface over SQLite (a file, the
// embedded default) and PostgreSQL (a connection pool that reconnects with
// exponential backoff when the server goes away).
//
// Sources are thread-safe: pages, counts and lookups may run from several threads
// at once (SQLite keeps a connection per concurrent caller, PostgreSQL leases
// pooled ones).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.hpp"
#include "features/row_batch.hpp"
#include "features/sql.hpp"
#include "features/uri.hpp"

namespace deskml::features {

using Clock = std::chrono::steady_clock;

struct SourceOptions {
  size_t pool_size = 4;                                 // PostgreSQL: connections at most
  std::chrono::milliseconds connect_timeout{10'000};    // PostgreSQL: one connection attempt
  std::chrono::milliseconds reconnect_timeout{30'000};  // PostgreSQL: how long to keep retrying a lost server
  std::chrono::milliseconds busy_timeout{30'000};       // SQLite: how long to wait for a locked database
};

// The caller's query and its key column. The key must be unique and not NULL, an
// integer or text column, and a plain SQL name (alias it in the query otherwise).
struct KeyedQuery {
  std::string sql;  // a SELECT; trailing semicolons are ignored; no ORDER BY or LIMIT needed
  std::string key;

  // Checks the key's name and cleans the SQL.
  static Result<KeyedQuery> make(std::string_view sql, std::string_view key);
};

// Lookups name at most this many keys at once.
inline constexpr size_t kMaxLookupKeys = 1000;

class FeatureSource {
 public:
  // Opens `uri` (features/uri.hpp). PostgreSQL connects once here, so a wrong
  // address or password fails now with the server's message.
  static Result<std::shared_ptr<FeatureSource>> open(std::string_view uri, const SourceOptions& options = {});
  virtual ~FeatureSource() = default;

  virtual SourceKind kind() const = 0;
  Dialect dialect() const { return kind() == SourceKind::kSqlite ? Dialect::kSqlite : Dialect::kPostgres; }
  // The URI with any password hidden.
  virtual const std::string& description() const = 0;

  // At most `limit` rows of the query whose key is greater than `after` (all rows
  // when nullopt), in key order. A page shorter than `limit` is the last.
  virtual Result<RowBatch> fetch_page(const KeyedQuery& query, const std::optional<Key>& after, size_t limit) = 0;
  // How many rows the query has with a key greater than `after` (all when nullopt),
  // and how many with a NULL key, which pages never return.
  struct RowCount {
    int64_t rows = 0;
    int64_t null_keys = 0;
  };
  virtual Result<RowCount> count(const KeyedQuery& query, const std::optional<Key>& after) = 0;
  // The rows whose key is one of `keys` (at most kMaxLookupKeys), in no particular
  // order; DeadlineExceeded when the deadline passes first.
  virtual Result<RowBatch> fetch_keys(const KeyedQuery& query, const std::vector<Key>& keys,
                                      Clock::time_point deadline = Clock::time_point::max()) = 0;
};

}  // namespace deskml::features
