#include "features/feature_source.hpp"

#include "features/pg_source.hpp"
#include "features/sqlite_source.hpp"

namespace deskml::features {

Result<KeyedQuery> KeyedQuery::make(std::string_view sql, std::string_view key) {
  DESKML_RETURN_IF_ERROR(check_identifier(key, "key column"));
  KeyedQuery q;
  DESKML_ASSIGN_OR_RETURN(q.sql, clean_query(sql));
  q.key = std::string(key);
  return q;
}

Result<std::shared_ptr<FeatureSource>> FeatureSource::open(std::string_view uri, const SourceOptions& options) {
  DESKML_ASSIGN_OR_RETURN(SourceUri parsed, parse_source_uri(uri));
  if (parsed.kind == SourceKind::kSqlite) {
    DESKML_ASSIGN_OR_RETURN(auto src, SqliteSource::open(parsed, options));
    return std::shared_ptr<FeatureSource>(std::move(src));
  }
  DESKML_ASSIGN_OR_RETURN(auto src, PgSource::open(parsed, options));
  return std::shared_ptr<FeatureSource>(std::move(src));
}

}  // namespace deskml::features
