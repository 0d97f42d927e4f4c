#include "features/pg_source.hpp"

#include <charconv>
#include <cmath>
#include <cstring>

namespace deskml::features {

namespace {

pg::Params key_params(const std::vector<Key>& keys) {
  pg::Params params;
  params.reserve(keys.size());
  for (const auto& k : keys) params.emplace_back(key_to_string(k));
  return params;
}

}  // namespace

namespace pg {

Result<RowBatch> to_row_batch(const PGresult* result) {
  RowBatch out;
  const int cols = PQnfields(result), rows = PQntuples(result);
  std::vector<Oid> types(static_cast<size_t>(cols));
  for (int c = 0; c < cols; ++c) {
    out.columns.emplace_back(PQfname(result, c));
    types[static_cast<size_t>(c)] = PQftype(result, c);
  }
  out.cells.reserve(static_cast<size_t>(rows) * static_cast<size_t>(cols));
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      if (PQgetisnull(result, r, c)) {
        out.cells.push_back(Cell::null());
        continue;
      }
      const char* v = PQgetvalue(result, r, c);
      const size_t n = static_cast<size_t>(PQgetlength(result, r, c));
      switch (types[static_cast<size_t>(c)]) {
        case oid::kInt2:
        case oid::kInt4:
        case oid::kInt8:
        case oid::kOid: {
          int64_t x = 0;
          auto [end, ec] = std::from_chars(v, v + n, x);
          if (ec != std::errc() || end != v + n) {
            return invalid_argument("column '" + out.columns[static_cast<size_t>(c)] + "': '" + std::string(v, n) +
                                    "' is not an integer");
          }
          out.cells.push_back(Cell::integer(x));
          break;
        }
        case oid::kFloat4:
        case oid::kFloat8:
        case oid::kNumeric: {
          double x = 0;
          auto [end, ec] = std::from_chars(v, v + n, x);
          // from_chars accepts "inf", "infinity" and "nan" in any case, which covers
          // PostgreSQL's "Infinity" and "NaN"; out-of-range numerics become ±inf.
          if (ec == std::errc::result_out_of_range) {
            x = (n > 0 && v[0] == '-') ? -HUGE_VAL : HUGE_VAL;
          } else if (ec != std::errc() || end != v + n) {
            return invalid_argument("column '" + out.columns[static_cast<size_t>(c)] + "': '" + std::string(v, n) +
                                    "' is not a number");
          }
          out.cells.push_back(Cell::real(x));
          break;
        }
        case oid::kBool:
          out.cells.push_back(Cell::boolean(n > 0 && v[0] == 't'));
          break;
        default:
          out.add_text(std::string_view(v, n));
      }
    }
  }
  return out;
}

}  // namespace pg

Result<std::shared_ptr<PgSource>> PgSource::open(const SourceUri& uri, const SourceOptions& options) {
  pg::Pool::Options po;
  po.max_size = options.pool_size;
  po.connect_timeout = options.connect_timeout;
  po.reconnect_timeout = options.reconnect_timeout;
  DESKML_ASSIGN_OR_RETURN(auto pool, pg::Pool::create(uri.conninfo, uri.redacted, po));
  return std::shared_ptr<PgSource>(new PgSource(std::move(pool)));
}

std::optional<PgSource::Bulk> PgSource::open_bulk(const KeyedQuery& query, const std::optional<Key>& after) {
  if (paged_only_ && paged_only_->first == query.sql && paged_only_->second == query.key) return std::nullopt;
  auto lease = pool_->acquire();
  if (!lease.ok()) return std::nullopt;
  // The result's columns and types, from the page query with LIMIT 0.
  pg::Params params;
  if (after) params.emplace_back(key_to_string(*after));
  auto described = (*lease)->exec(page_sql(Dialect::kPostgres, query.sql, query.key, after.has_value(), 0), params);
  if (!described.ok()) return std::nullopt;
  const PGresult* r = described->get();
  RowBatch shape;
  std::vector<Oid> types;
  for (int c = 0; c < PQnfields(r); ++c) {
    shape.columns.emplace_back(PQfname(r, c));
    types.push_back(PQftype(r, c));
    if (!pg::binary_decodable(types.back())) {
      paged_only_.emplace(query.sql, query.key);
      return std::nullopt;
    }
  }
  auto key_col = shape.column_index(query.key);
  if (!key_col.ok()) return std::nullopt;
  std::optional<std::string> literal;
  if (after) {
    if (const auto* i = std::get_if<int64_t>(&*after)) {
      literal = std::to_string(*i);
    } else {
      const std::string& text = std::get<std::string>(*after);
      std::unique_ptr<char, decltype(&PQfreemem)> quoted(PQescapeLiteral((*lease)->get(), text.data(), text.size()),
                                                         &PQfreemem);
      if (!quoted) return std::nullopt;
      literal = quoted.get();
    }
  }
  auto stream = pg::CopyStream::open(std::move(*lease), copy_out_sql(query.sql, query.key, literal),
                                     std::move(shape.columns), std::move(types));
  if (!stream.ok()) return std::nullopt;
  return Bulk{query.sql, query.key, *key_col, after, std::move(stream).value()};
}

Result<RowBatch> PgSource::fetch_page(const KeyedQuery& query, const std::optional<Key>& after, size_t limit) {
  {
    std::lock_guard lock(bulk_mutex_);
    const bool continues = bulk_ && bulk_->query_sql == query.sql && bulk_->key == query.key && bulk_->last == after;
    if (!continues) {
      bulk_.reset();
      bulk_ = open_bulk(query, after);
    }
    if (bulk_) {
      auto page = bulk_->stream->next(limit);
      if (page.ok() && page->rows() > 0) {
        auto last = page->key_at(page->rows() - 1, bulk_->key_col);
        if (last.ok()) {
          bulk_->last = std::move(last).value();
          return page;
        }
      } else if (page.ok()) {
        bulk_.reset();  // the end
        return page;
      }
      // The stream broke (the server went away, say): the paged read below
      // retries from the same key, reconnecting as it does.
      bulk_.reset();
    }
  }
  const std::string sql = page_sql(Dialect::kPostgres, query.sql, query.key, after.has_value(), limit);
  pg::Params params;
  if (after) params.emplace_back(key_to_string(*after));
  return pool_->run([&](pg::Connection& conn) -> Result<RowBatch> {
    DESKML_ASSIGN_OR_RETURN(auto result, conn.exec(sql, params));
    return pg::to_row_batch(result.get());
  });
}

Result<FeatureSource::RowCount> PgSource::count(const KeyedQuery& query, const std::optional<Key>& after) {
  const std::string sql = count_sql(Dialect::kPostgres, query.sql, query.key, after.has_value());
  pg::Params params;
  if (after) params.emplace_back(key_to_string(*after));
  return pool_->run([&](pg::Connection& conn) -> Result<RowCount> {
    DESKML_ASSIGN_OR_RETURN(auto result, conn.exec(sql, params));
    DESKML_ASSIGN_OR_RETURN(auto rows, pg::to_row_batch(result.get()));
    if (rows.rows() != 1 || rows.at(0, 0).type != CellType::kInt || rows.at(0, 1).type != CellType::kInt) {
      return internal_error("count(*) gave no integers");
    }
    return RowCount{rows.at(0, 0).i, rows.at(0, 1).i};
  });
}

Result<RowBatch> PgSource::fetch_keys(const KeyedQuery& query, const std::vector<Key>& keys,
                                      Clock::time_point deadline) {
  if (keys.empty()) return invalid_argument("no keys to look up");
  if (keys.size() > kMaxLookupKeys) {
    return invalid_argument(std::to_string(keys.size()) + " keys in one lookup; at most " +
                            std::to_string(kMaxLookupKeys));
  }
  const std::string sql = lookup_sql(Dialect::kPostgres, query.sql, query.key, keys.size());
  const pg::Params params = key_params(keys);
  return pool_->run(
      [&](pg::Connection& conn) -> Result<RowBatch> {
        DESKML_ASSIGN_OR_RETURN(auto result, conn.exec(sql, params, deadline));
        return pg::to_row_batch(result.get());
      },
      deadline);
}

}  // namespace deskml::features
