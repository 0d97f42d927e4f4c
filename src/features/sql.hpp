// The SQL deskml writes around a caller's query. Keyset pagination walks the
// query in key order, one page at a time, so memory stays bounded and a job can
// resume from the last key it wrote:
//
//   SELECT * FROM (
//   <the caller's query>
//   ) AS deskml_rows WHERE key > $1 ORDER BY key LIMIT n
//
// Both SQLite and PostgreSQL push the condition into the query and walk the key's
// index, so each page costs about the same however far into the table it is (as
// long as the key is indexed and the query has no ORDER BY or LIMIT of its own).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.hpp"

namespace deskml::features {

enum class Dialect { kSqlite, kPostgres };

// [A-Za-z_][A-Za-z0-9_]*, at most 63 characters: a name deskml may put in SQL
// without quoting (so the database folds its case as it does in the caller's query).
bool is_plain_identifier(std::string_view name);
// InvalidArgument naming `what` unless is_plain_identifier(name).
Status check_identifier(std::string_view name, std::string_view what);
// A plain identifier, or schema.name of two (PostgreSQL).
Status check_table_name(std::string_view name, Dialect dialect);

// The caller's query with trailing whitespace and semicolons removed; InvalidArgument when empty.
Result<std::string> clean_query(std::string_view query);

// SELECT * FROM (query) AS deskml_rows WHERE key > <param 1> ORDER BY key LIMIT limit
// (WHERE key IS NOT NULL on the first page, when there is no `after`)
std::string page_sql(Dialect dialect, std::string_view query, std::string_view key, bool after, size_t limit);
// COPY (SELECT * FROM (query) AS deskml_rows WHERE key > <after_literal> | IS NOT NULL ORDER BY key)
// TO STDOUT (FORMAT binary): PostgreSQL only; COPY takes no parameters, so the
// key comes as an SQL literal (an integer, or quote_literal() of a text key).
std::string copy_out_sql(std::string_view query, std::string_view key, const std::optional<std::string>& after_literal);
// SELECT count(key), count(*) - count(key) FROM (query) AS deskml_rows [WHERE key > <param 1>]
std::string count_sql(Dialect dialect, std::string_view query, std::string_view key, bool after);
// SELECT * FROM (query) AS deskml_rows WHERE key IN (<params 1..n>)
std::string lookup_sql(Dialect dialect, std::string_view query, std::string_view key, size_t n);

// 'text' with quotes doubled: a string literal.
std::string quote_literal(std::string_view text);

}  // namespace deskml::features
