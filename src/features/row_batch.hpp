// Rows read from a feature source: a few hundred to a few thousand rows of
// typed cells, row-major, with the column names of the query's result.
// Values keep the type the database gave them; features/mapping.hpp turns them
// into tensors of the model's input types.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/status.hpp"

namespace deskml::features {

enum class CellType : uint8_t { kNull, kInt, kReal, kBool, kText };
const char* cell_type_name(CellType t);  // "NULL", "integer", "real", "boolean", "text"

// One value. Text lives in the batch's text arena; `index` points into it.
struct Cell {
  CellType type = CellType::kNull;
  union {
    int64_t i;     // kInt, kBool (0 or 1)
    double d;      // kReal
    size_t index;  // kText: RowBatch::texts[index]
  };
  Cell() : i(0) {}
  static Cell null() { return {}; }
  static Cell integer(int64_t v) {
    Cell c;
    c.type = CellType::kInt;
    c.i = v;
    return c;
  }
  static Cell real(double v) {
    Cell c;
    c.type = CellType::kReal;
    c.d = v;
    return c;
  }
  static Cell boolean(bool v) {
    Cell c;
    c.type = CellType::kBool;
    c.i = v ? 1 : 0;
    return c;
  }
};

// A row's key: scoring walks a query in key order and checkpoints the last key
// written. Integer keys compare as numbers, text keys in the database's collation.
using Key = std::variant<int64_t, std::string>;
enum class KeyKind { kInteger, kText };
std::string key_to_string(const Key& key);
KeyKind key_kind(const Key& key);
const char* key_kind_name(KeyKind kind);  // "integer", "text"
Result<KeyKind> key_kind_from_name(std::string_view name);
// Parses the text form written by key_to_string.
Result<Key> key_from_string(std::string_view text, KeyKind kind);

struct RowBatch {
  std::vector<std::string> columns;  // as the query names them
  std::vector<Cell> cells;           // rows() * columns.size(), row-major
  std::vector<std::string> texts;    // the text of kText cells

  size_t width() const { return columns.size(); }
  size_t rows() const { return columns.empty() ? 0 : cells.size() / columns.size(); }
  const Cell& at(size_t row, size_t col) const { return cells[row * columns.size() + col]; }
  std::string_view text(const Cell& c) const { return texts[c.index]; }

  void add_text(std::string_view s) {
    Cell c;
    c.type = CellType::kText;
    c.index = texts.size();
    texts.emplace_back(s);
    cells.push_back(c);
  }
  // "NULL", "42", "0.5", "true", "'abc'" (for error messages).
  std::string describe(const Cell& c) const;

  // The index of `name`, compared case-insensitively (SQL folds unquoted names);
  // NotFound listing the columns when absent.
  Result<size_t> column_index(std::string_view name) const;
  // Row `row`'s key from column `col`: integer or text; InvalidArgument for NULL or other types.
  Result<Key> key_at(size_t row, size_t col) const;
};

}  // namespace deskml::features
