#include "features/row_batch.hpp"

#include <charconv>
#include <cstdio>

namespace deskml::features {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace

const char* cell_type_name(CellType t) {
  switch (t) {
    case CellType::kNull:
      return "NULL";
    case CellType::kInt:
      return "integer";
    case CellType::kReal:
      return "real";
    case CellType::kBool:
      return "boolean";
    case CellType::kText:
      return "text";
  }
  return "?";
}

std::string key_to_string(const Key& key) {
  if (const auto* i = std::get_if<int64_t>(&key)) return std::to_string(*i);
  return std::get<std::string>(key);
}

KeyKind key_kind(const Key& key) { return std::holds_alternative<int64_t>(key) ? KeyKind::kInteger : KeyKind::kText; }

const char* key_kind_name(KeyKind kind) { return kind == KeyKind::kInteger ? "integer" : "text"; }

Result<KeyKind> key_kind_from_name(std::string_view name) {
  if (name == "integer") return KeyKind::kInteger;
  if (name == "text") return KeyKind::kText;
  return invalid_argument("unknown key kind '" + std::string(name) + "'");
}

Result<Key> key_from_string(std::string_view text, KeyKind kind) {
  if (kind == KeyKind::kText) return Key(std::string(text));
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return invalid_argument("'" + std::string(text) + "' is not an integer key");
  }
  return Key(v);
}

std::string RowBatch::describe(const Cell& c) const {
  switch (c.type) {
    case CellType::kNull:
      return "NULL";
    case CellType::kInt:
      return std::to_string(c.i);
    case CellType::kBool:
      return c.i ? "true" : "false";
    case CellType::kReal: {
      char buf[32];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, c.d);
      return ec == std::errc() ? std::string(buf, end) : "?";
    }
    case CellType::kText: {
      std::string_view t = text(c);
      if (t.size() > 40) return "'" + std::string(t.substr(0, 37)) + "...'";
      return "'" + std::string(t) + "'";
    }
  }
  return "?";
}

Result<size_t> RowBatch::column_index(std::string_view name) const {
  for (size_t i = 0; i < columns.size(); ++i) {
    if (columns[i] == name) return i;
  }
  for (size_t i = 0; i < columns.size(); ++i) {
    if (iequals(columns[i], name)) return i;
  }
  std::string list;
  for (const auto& c : columns) list += (list.empty() ? "" : ", ") + c;
  return not_found("the query has no column '" + std::string(name) + "' (its columns: " + list + ")");
}

Result<Key> RowBatch::key_at(size_t row, size_t col) const {
  const Cell& c = at(row, col);
  switch (c.type) {
    case CellType::kInt:
      return Key(c.i);
    case CellType::kText:
      return Key(std::string(text(c)));
    case CellType::kNull:
      return invalid_argument("key column '" + columns[col] + "' is NULL in a row; keys must be unique and not NULL");
    default:
      return invalid_argument("key column '" + columns[col] + "' holds " + cell_type_name(c.type) + " " + describe(c) +
                              "; keys must be integers or text");
  }
}

}  // namespace deskml::features
