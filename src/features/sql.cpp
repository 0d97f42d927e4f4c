#include "features/sql.hpp"

namespace deskml::features {

namespace {

std::string param(Dialect d, size_t i) { return d == Dialect::kPostgres ? "$" + std::to_string(i) : "?"; }

std::string from_query(std::string_view query) {
  // The newline before ')' ends a trailing -- comment in the caller's query.
  return "SELECT * FROM (\n" + std::string(query) + "\n) AS deskml_rows";
}

// The query's rows in key order after `after` (an SQL expression: a parameter or
// a literal), or all of them when there is none. NULL keys have no place in key
// order (SQLite sorts them first, PostgreSQL last): never read.
std::string in_key_order(std::string_view query, std::string_view key, const std::optional<std::string>& after) {
  const std::string k(key);
  std::string sql = from_query(query);
  sql += after ? " WHERE " + k + " > " + *after : " WHERE " + k + " IS NOT NULL";
  return sql + " ORDER BY " + k;
}

}  // namespace

bool is_plain_identifier(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

Status check_identifier(std::string_view name, std::string_view what) {
  if (is_plain_identifier(name)) return Status::Ok();
  return invalid_argument(std::string(what) + " '" + std::string(name) +
                          "' must be a plain SQL name ([A-Za-z_][A-Za-z0-9_]*, at most 63 characters)");
}

Status check_table_name(std::string_view name, Dialect dialect) {
  const size_t dot = name.find('.');
  if (dot == std::string_view::npos) return check_identifier(name, "table");
  if (dialect == Dialect::kSqlite) {
    return invalid_argument("table '" + std::string(name) + "': SQLite output tables take a plain name, no schema");
  }
  if (is_plain_identifier(name.substr(0, dot)) && is_plain_identifier(name.substr(dot + 1))) return Status::Ok();
  return invalid_argument("table '" + std::string(name) +
                          "' must be NAME or SCHEMA.NAME of plain SQL names ([A-Za-z_][A-Za-z0-9_]*)");
}

Result<std::string> clean_query(std::string_view query) {
  size_t end = query.size();
  while (end > 0) {
    const char c = query[end - 1];
    if (c == ';' || c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      --end;
    } else {
      break;
    }
  }
  size_t begin = 0;
  while (begin < end && (query[begin] == ' ' || query[begin] == '\t' || query[begin] == '\n' || query[begin] == '\r'))
    ++begin;
  if (begin == end) return invalid_argument("the query is empty");
  return std::string(query.substr(begin, end - begin));
}

std::string page_sql(Dialect dialect, std::string_view query, std::string_view key, bool after, size_t limit) {
  const auto after_param = after ? std::optional<std::string>(param(dialect, 1)) : std::nullopt;
  return in_key_order(query, key, after_param) + " LIMIT " + std::to_string(limit);
}

std::string copy_out_sql(std::string_view query, std::string_view key,
                         const std::optional<std::string>& after_literal) {
  return "COPY (" + in_key_order(query, key, after_literal) + ") TO STDOUT (FORMAT binary)";
}

std::string count_sql(Dialect dialect, std::string_view query, std::string_view key, bool after) {
  const std::string k(key);
  std::string sql =
      "SELECT count(" + k + "), count(*) - count(" + k + ") FROM (\n" + std::string(query) + "\n) AS deskml_rows";
  if (after) sql += " WHERE " + k + " > " + param(dialect, 1);
  return sql;
}

std::string lookup_sql(Dialect dialect, std::string_view query, std::string_view key, size_t n) {
  std::string sql = from_query(query) + " WHERE " + std::string(key) + " IN (";
  for (size_t i = 0; i < n; ++i) sql += (i ? ", " : "") + param(dialect, i + 1);
  return sql + ")";
}

std::string quote_literal(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

}  // namespace deskml::features
