#include "features/mapping.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>

#include "features/sql.hpp"

namespace deskml::features {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (std::tolower(x) != std::tolower(y)) return false;
  }
  return true;
}

std::optional<size_t> find_column(const std::vector<std::string>& columns, std::string_view name) {
  for (size_t i = 0; i < columns.size(); ++i) {
    if (columns[i] == name) return i;
  }
  for (size_t i = 0; i < columns.size(); ++i) {
    if (iequals(columns[i], name)) return i;
  }
  return std::nullopt;
}

std::string join(const std::vector<std::string>& names, size_t max = 8) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < max; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > max) out += ", ... (" + std::to_string(names.size()) + " in all)";
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool parse_double(std::string_view text, double& out) {
  text = trim(text);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

bool parse_int(std::string_view text, int64_t& out) {
  text = trim(text);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

FillValue parse_fill(std::string_view text) {
  const std::string_view t = trim(text);
  if (t == "true") return 1.0;
  if (t == "false") return 0.0;
  double v = 0;
  if (parse_double(t, v)) return v;
  return std::string(text);
}

// A cell, or a fill value standing in for a NULL, seen the same way.
struct View {
  CellType type = CellType::kNull;
  int64_t i = 0;
  double d = 0;
  std::string_view text;
};

View view_of(const RowBatch& b, const Cell& c) {
  View v;
  v.type = c.type;
  switch (c.type) {
    case CellType::kInt:
    case CellType::kBool:
      v.i = c.i;
      break;
    case CellType::kReal:
      v.d = c.d;
      break;
    case CellType::kText:
      v.text = b.text(c);
      break;
    case CellType::kNull:
      break;
  }
  return v;
}

View view_of(const FillValue& f) {
  View v;
  if (const double* d = std::get_if<double>(&f)) {
    v.type = CellType::kReal;
    v.d = *d;
  } else {
    v.type = CellType::kText;
    v.text = std::get<std::string>(f);
  }
  return v;
}

// Each returns nullptr on success, else what is wrong with the value.
const char* to_double(const View& v, double& out) {
  switch (v.type) {
    case CellType::kInt:
    case CellType::kBool:
      out = static_cast<double>(v.i);
      return nullptr;
    case CellType::kReal:
      out = v.d;
      return nullptr;
    case CellType::kText:
      return parse_double(v.text, out) ? nullptr : "does not parse as a number";
    case CellType::kNull:
      break;
  }
  return "is NULL";
}

const char* to_int(const View& v, int64_t lo, int64_t hi, int64_t& out) {
  switch (v.type) {
    case CellType::kInt:
    case CellType::kBool:
      out = v.i;
      break;
    case CellType::kReal:
      if (!std::isfinite(v.d) || v.d != std::trunc(v.d)) return "is not an integer";
      if (v.d < static_cast<double>(lo) || v.d > static_cast<double>(hi)) return "is out of the input type's range";
      out = static_cast<int64_t>(v.d);
      break;
    case CellType::kText: {
      if (parse_int(v.text, out)) break;
      double d = 0;
      if (!parse_double(v.text, d)) return "does not parse as a number";
      return to_int(View{CellType::kReal, 0, d, {}}, lo, hi, out);
    }
    case CellType::kNull:
      return "is NULL";
  }
  if (out < lo || out > hi) return "is out of the input type's range";
  return nullptr;
}

const char* to_bool(const View& v, bool& out) {
  switch (v.type) {
    case CellType::kInt:
    case CellType::kBool:
      if (v.i != 0 && v.i != 1) return "is neither 0 nor 1";
      out = v.i == 1;
      return nullptr;
    case CellType::kReal:
      if (v.d != 0.0 && v.d != 1.0) return "is neither 0 nor 1";
      out = v.d == 1.0;
      return nullptr;
    case CellType::kText: {
      const std::string_view t = trim(v.text);
      if (t == "true" || t == "t" || t == "TRUE" || t == "True" || t == "1") {
        out = true;
      } else if (t == "false" || t == "f" || t == "FALSE" || t == "False" || t == "0") {
        out = false;
      } else {
        return "is not a boolean (true/false, t/f, 1/0)";
      }
      return nullptr;
    }
    case CellType::kNull:
      break;
  }
  return "is NULL";
}

// Writes one value as T.
template <typename T>
const char* convert(const View& v, T& out) {
  if constexpr (std::is_same_v<T, std::string>) {
    if (v.type != CellType::kText) {
      return "is not text, and a BYTES (string) input takes text: CAST it to text in the query";
    }
    out.assign(v.text);
    return nullptr;
  } else if constexpr (std::is_same_v<T, bool>) {
    return to_bool(v, out);
  } else if constexpr (std::is_integral_v<T>) {
    int64_t x = 0;
    constexpr int64_t lo = static_cast<int64_t>(std::numeric_limits<T>::min());
    // Values arrive as int64, so uint64 inputs take [0, INT64_MAX].
    constexpr int64_t hi = std::is_same_v<T, uint64_t> ? std::numeric_limits<int64_t>::max()
                                                       : static_cast<int64_t>(std::numeric_limits<T>::max());
    const char* err = to_int(v, lo, hi, x);
    if (!err) out = static_cast<T>(x);
    return err;
  } else {
    double x = 0;
    const char* err = to_double(v, x);
    if (!err) {
      if constexpr (std::is_same_v<T, double>) {
        out = x;
      } else if constexpr (std::is_same_v<T, float>) {
        out = static_cast<float>(x);
      } else {
        out = T(static_cast<float>(x));  // Float16, BFloat16
      }
    }
    return err;
  }
}

bool numeric_dtype(DataType t) { return t == DataType::kBool || dtype_is_float(t) || dtype_is_integer(t); }

}  // namespace

// ---- configuration ----------------------------------------------------------------

Result<MappingConfig> MappingConfig::from_toml(const toml::table& table, const std::string& origin) {
  MappingConfig c;
  const auto where = [&](const toml::node& n) {
    return origin + ":" + std::to_string(n.source().begin.line) + ": [features]";
  };
  for (const auto& [key, node] : table) {
    const std::string k(key.str());
    if (k == "fill") {
      if (auto d = node.value<double>(); d && (node.is_floating_point() || node.is_integer())) {
        c.fill = *d;
      } else if (auto b = node.value<bool>(); b && node.is_boolean()) {
        c.fill = *b ? 1.0 : 0.0;
      } else if (auto s = node.value<std::string>()) {
        c.fill = *s;
      } else {
        return invalid_argument(where(node) + ": fill must be a number, a boolean or a string");
      }
    } else if (k == "inputs") {
      const toml::table* inputs = node.as_table();
      if (!inputs) return invalid_argument(where(node) + ": inputs must be a table of input = [columns]");
      for (const auto& [input, cols] : *inputs) {
        std::vector<std::string> names;
        if (auto s = cols.value<std::string>()) {
          names.push_back(*s);
        } else if (const toml::array* arr = cols.as_array()) {
          for (const auto& e : *arr) {
            auto s2 = e.value<std::string>();
            if (!s2) return invalid_argument(where(e) + ": column names must be strings");
            names.push_back(*s2);
          }
        } else {
          return invalid_argument(where(cols) + ": inputs." + std::string(input.str()) +
                                  " must be a column name, a list of them, or \"*\"");
        }
        if (names.empty()) return invalid_argument(where(cols) + ": inputs." + std::string(input.str()) + " is empty");
        c.inputs[std::string(input.str())] = std::move(names);
      }
    } else if (k == "fill_values") {
      const toml::table* fills = node.as_table();
      if (!fills) return invalid_argument(where(node) + ": fill_values must be a table of column = value");
      for (const auto& [col, v] : *fills) {
        if (auto d = v.value<double>(); d && (v.is_floating_point() || v.is_integer())) {
          c.column_fill[std::string(col.str())] = *d;
        } else if (auto b = v.value<bool>(); b && v.is_boolean()) {
          c.column_fill[std::string(col.str())] = *b ? 1.0 : 0.0;
        } else if (auto s = v.value<std::string>()) {
          c.column_fill[std::string(col.str())] = *s;
        } else {
          return invalid_argument(where(v) + ": fill_values." + std::string(col.str()) +
                                  " must be a number, a boolean or a string");
        }
      }
    } else if (k == "sources") {
      const toml::table* sources = node.as_table();
      if (!sources) return invalid_argument(where(node) + ": sources must be a table of [features.sources.NAME]");
      for (const auto& [name, spec_node] : *sources) {
        const std::string n(name.str());
        const toml::table* spec = spec_node.as_table();
        if (!spec) return invalid_argument(where(spec_node) + ": sources." + n + " must be a table");
        SourceSpec s;
        for (const auto& [field, value] : *spec) {
          const std::string f(field.str());
          auto text = value.value<std::string>();
          if (!text || text->empty()) {
            return invalid_argument(where(value) + ": sources." + n + "." + f + " must be a non-empty string");
          }
          if (f == "uri") {
            s.uri = *text;
          } else if (f == "query") {
            s.query = *text;
          } else if (f == "key") {
            s.key = *text;
          } else {
            return invalid_argument(where(value) + ": unknown key '" + f + "' in sources." + n +
                                    " (known: uri, query, key)");
          }
        }
        if (s.uri.empty() || s.query.empty() || s.key.empty()) {
          return invalid_argument(where(spec_node) + ": sources." + n + " needs uri, query and key");
        }
        DESKML_RETURN_IF_ERROR(check_identifier(s.key, "sources." + n + ".key"));
        c.sources[n] = std::move(s);
      }
    } else {
      return invalid_argument(where(node) + ": unknown key '" + k + "' (known: fill, inputs, fill_values, sources)");
    }
  }
  return c;
}

Status MappingConfig::add_map_spec(std::string_view spec) {
  const size_t eq = spec.find('=');
  if (eq == std::string_view::npos || eq == 0 || eq + 1 == spec.size()) {
    return invalid_argument("--map expects INPUT=COLUMN[,COLUMN...] or INPUT=*, got '" + std::string(spec) + "'");
  }
  std::vector<std::string> cols;
  std::string_view rest = spec.substr(eq + 1);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view col = trim(rest.substr(0, comma));
    if (col.empty()) return invalid_argument("--map '" + std::string(spec) + "' has an empty column name");
    cols.emplace_back(col);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  inputs[std::string(trim(spec.substr(0, eq)))] = std::move(cols);
  return Status::Ok();
}

Status MappingConfig::add_fill_spec(std::string_view spec) {
  const size_t eq = spec.find('=');
  if (eq == std::string_view::npos) {
    fill = parse_fill(spec);
    return Status::Ok();
  }
  if (eq == 0) return invalid_argument("--fill expects VALUE or COLUMN=VALUE, got '" + std::string(spec) + "'");
  column_fill[std::string(trim(spec.substr(0, eq)))] = parse_fill(spec.substr(eq + 1));
  return Status::Ok();
}

// ---- bindings ------------------------------------------------------------------------

Result<FeatureMapping> FeatureMapping::create(const std::vector<graph::ValueInfo>& inputs,
                                              const std::vector<std::string>& columns, std::string_view key,
                                              const MappingConfig& config) {
  FeatureMapping m;
  m.columns_ = columns;
  const auto key_col = find_column(columns, key);
  if (!key_col) {
    return invalid_argument("the query has no key column '" + std::string(key) + "' (its columns: " + join(columns) +
                            ")");
  }
  m.key_column_ = *key_col;

  std::vector<std::string> input_names;
  for (const auto& in : inputs) input_names.push_back(in.name);
  for (const auto& [name, cols] : config.inputs) {
    bool known = false;
    for (const auto& in : inputs) known = known || in.name == name;
    if (!known) {
      return invalid_argument("the feature mapping names input '" + name +
                              "', which the model does not have (its inputs: " + join(input_names) + ")");
    }
  }

  std::vector<bool> used(columns.size(), false);
  std::vector<std::optional<std::vector<size_t>>> chosen(inputs.size());
  const auto all_but_key = [&] {
    std::vector<size_t> cols;
    for (size_t i = 0; i < columns.size(); ++i) {
      if (i != m.key_column_) cols.push_back(i);
    }
    return cols;
  };
  // 1 and 2: mapped in config, or a column of the input's name.
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string& name = inputs[i].name;
    if (auto it = config.inputs.find(name); it != config.inputs.end()) {
      std::vector<size_t> cols;
      if (it->second.size() == 1 && it->second[0] == "*") {
        cols = all_but_key();
      } else {
        for (const auto& col : it->second) {
          const auto idx = find_column(columns, col);
          if (!idx) {
            return invalid_argument("the feature mapping of input '" + name + "' names column '" + col +
                                    "', which the query does not return (its columns: " + join(columns) + ")");
          }
          cols.push_back(*idx);
        }
      }
      chosen[i] = cols;
    } else if (auto idx = find_column(columns, name)) {
      chosen[i] = std::vector<size_t>{*idx};
    }
    if (chosen[i]) {
      for (size_t c : *chosen[i]) used[c] = true;
    }
  }
  // 3: the one input left takes every column nobody uses.
  std::vector<size_t> unresolved;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!chosen[i]) unresolved.push_back(i);
  }
  if (unresolved.size() == 1) {
    std::vector<size_t> rest;
    for (size_t c = 0; c < columns.size(); ++c) {
      if (!used[c] && c != m.key_column_) rest.push_back(c);
    }
    if (rest.empty()) {
      return invalid_argument("input '" + inputs[unresolved[0]].name +
                              "' has no columns: every column of the query is the key or feeds another input");
    }
    chosen[unresolved[0]] = rest;
  } else if (unresolved.size() > 1) {
    std::vector<std::string> names;
    for (size_t i : unresolved) names.push_back(inputs[i].name);
    return invalid_argument("inputs " + join(names) +
                            " match no column of the query by name; name the columns after the inputs (AS ...), or map "
                            "them: [features.inputs] in the model's config.toml or --map INPUT=COLUMN,...");
  }

  // Shapes and types.
  for (size_t i = 0; i < inputs.size(); ++i) {
    const graph::ValueInfo& in = inputs[i];
    InputBinding b;
    b.input = in.name;
    b.dtype = in.type.dtype;
    b.columns = *chosen[i];
    const int64_t k = static_cast<int64_t>(b.columns.size());
    if (in.type.kind != graph::ValueType::Kind::kTensor || b.dtype == DataType::kUndefined) {
      return invalid_argument("input '" + in.name + "' is not a tensor of known type (" + in.type.to_string() +
                              "); scoring feeds tensors only");
    }
    const std::string shape_text = in.type.to_string();
    const std::string fed = std::to_string(k) + (k == 1 ? " column feeds it" : " columns feed it");
    if (!in.type.shape) {
      if (k > 1) b.row_dims = {k};
    } else {
      const auto& dims = *in.type.shape;
      if (dims.empty()) return invalid_argument("input '" + in.name + "' is a scalar; scoring needs a batch axis");
      if (dims[0].known()) {
        return invalid_argument("input '" + in.name + "' is " + shape_text +
                                ", with a fixed first dimension; scoring stacks rows along a dynamic batch axis "
                                "(export the model with one)");
      }
      if (dims.size() == 1) {
        if (k != 1)
          return invalid_argument("input '" + in.name + "' is " + shape_text + " (one value a row), but " + fed);
      } else {
        int64_t product = 1;
        bool all_known = true;
        for (size_t d = 1; d < dims.size(); ++d) {
          all_known = all_known && dims[d].known();
          if (dims[d].known()) product *= dims[d].value;
        }
        if (dims.size() == 2 && !dims[1].known()) {
          b.row_dims = {k};
        } else if (all_known && product == k) {
          for (size_t d = 1; d < dims.size(); ++d) b.row_dims.push_back(dims[d].value);
        } else {
          return invalid_argument("input '" + in.name + "' is " + shape_text + ", but " + fed + " (" + join([&] {
                                    std::vector<std::string> n;
                                    for (size_t c : b.columns) n.push_back(columns[c]);
                                    return n;
                                  }()) +
                                  ")");
        }
      }
    }
    if (!(numeric_dtype(b.dtype) || b.dtype == DataType::kString)) {
      return invalid_argument("input '" + in.name + "' is " + std::string(dtype_name(b.dtype)) +
                              ", which scoring cannot fill from SQL values");
    }
    m.bindings_.push_back(std::move(b));
  }

  // Fill values per column.
  m.fills_.assign(columns.size(), config.fill);
  for (const auto& [col, value] : config.column_fill) {
    const auto idx = find_column(columns, col);
    if (!idx) {
      return invalid_argument("a fill value is declared for column '" + col +
                              "', which the query does not return (its columns: " + join(columns) + ")");
    }
    m.fills_[*idx] = value;
  }
  for (const auto& b : m.bindings_) {
    for (size_t c : b.columns) {
      if (!m.fills_[c]) continue;
      const bool text = std::holds_alternative<std::string>(*m.fills_[c]);
      if (text && b.dtype != DataType::kString) {
        // A text fill may still parse as a number; check once here rather than on every NULL.
        double unused = 0;
        if (!parse_double(std::get<std::string>(*m.fills_[c]), unused)) {
          return invalid_argument("the fill value of column '" + columns[c] + "' is text ('" +
                                  std::get<std::string>(*m.fills_[c]) + "'), but it feeds input '" + b.input + "' (" +
                                  std::string(dtype_name(b.dtype)) + ")");
        }
      }
      if (!text && b.dtype == DataType::kString) {
        return invalid_argument("the fill value of column '" + columns[c] + "' is a number, but it feeds input '" +
                                b.input + "' (string); give a text fill value");
      }
    }
  }
  return m;
}

Result<serving::Tensors> FeatureMapping::tensors(const RowBatch& batch, size_t begin, size_t end) const {
  if (batch.columns != columns_) {
    return invalid_argument("the query's columns changed between pages (now: " + join(batch.columns) + ")");
  }
  if (begin > end || end > batch.rows()) return invalid_argument("row range out of the batch");
  const size_t rows = end - begin;
  serving::Tensors out;
  out.reserve(bindings_.size());
  for (const InputBinding& b : bindings_) {
    Shape shape{static_cast<int64_t>(rows)};
    for (int64_t d : b.row_dims) shape.push_back(d);
    Tensor t(b.dtype, shape);
    const size_t width = b.columns.size();
    Status st = dispatch_all(b.dtype, "scoring input", [&](auto tag) -> Status {
      using T = decltype(tag);
      T* data = t.data<T>();
      for (size_t r = 0; r < rows; ++r) {
        for (size_t j = 0; j < width; ++j) {
          const size_t col = b.columns[j];
          const Cell& cell = batch.at(begin + r, col);
          if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
            // The common case, a real feed into a float input, without the general conversion.
            if (cell.type == CellType::kReal) {
              data[r * width + j] = static_cast<T>(cell.d);
              continue;
            }
          }
          const View v = (cell.type == CellType::kNull && fills_[col]) ? view_of(*fills_[col]) : view_of(batch, cell);
          const char* err = convert<T>(v, data[r * width + j]);
          if (err == nullptr) continue;
          std::string what;
          if (cell.type != CellType::kNull) {
            what = std::string("holds ") + cell_type_name(cell.type) + " " + batch.describe(cell) + ", which " + err;
          } else if (fills_[col]) {
            what = std::string("is NULL, and its fill value ") + err;
          } else {
            what =
                "is NULL and has no fill value; declare one in the model's config.toml ([features] fill, or "
                "[features.fill_values]) or with --fill";
          }
          return invalid_argument("row with key " + batch.describe(batch.at(begin + r, key_column_)) + ": column '" +
                                  columns_[col] + "' " + what + " (input '" + b.input + "', " +
                                  std::string(dtype_name(b.dtype)) + ")");
        }
      }
      return Status::Ok();
    });
    DESKML_RETURN_IF_ERROR(st);
    out.emplace_back(b.input, std::move(t));
  }
  return out;
}

std::string FeatureMapping::describe() const {
  std::string out;
  for (const auto& b : bindings_) {
    std::vector<std::string> names;
    for (size_t c : b.columns) names.push_back(columns_[c]);
    std::string shape = std::string(dtype_name(b.dtype)) + "[N";
    for (int64_t d : b.row_dims) shape += "," + std::to_string(d);
    shape += "]";
    if (!out.empty()) out += "; ";
    out += b.input + " <- " + shape + " from " + std::to_string(names.size()) +
           (names.size() == 1 ? " column (" : " columns (") + join(names, 4) + ")";
  }
  return out;
}

}  // namespace deskml::features
