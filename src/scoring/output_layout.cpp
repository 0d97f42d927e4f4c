#include "scoring/output_layout.hpp"

#include <charconv>
#include <cmath>
#include <cstring>
#include <set>

#include "features/pg_connection.hpp"

namespace deskml::scoring {

namespace {

std::string column_base(std::string_view output) {
  std::string out;
  for (char c : output) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    out += ok ? c : '_';
  }
  if (out.empty() || (out[0] >= '0' && out[0] <= '9')) out = "o" + out;
  return out;
}

int64_t row_elements(const Tensor& t) {
  int64_t n = 1;
  for (size_t d = 1; d < t.shape().size(); ++d) n *= t.shape()[d];
  return n;
}

template <typename F>
void append_float(std::string& out, F v, TextStyle style) {
  if (std::isnan(v)) {
    out += style == TextStyle::kCsv ? "nan" : "NaN";
  } else if (std::isinf(v)) {
    out += v < 0 ? (style == TextStyle::kCsv ? "-inf" : "-Infinity") : (style == TextStyle::kCsv ? "inf" : "Infinity");
  } else {
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, ec == std::errc() ? end : buf);
  }
}

}  // namespace

Result<OutputLayout> OutputLayout::from_outputs(const serving::Tensors& outputs, int64_t rows,
                                                features::KeyKind key_kind) {
  OutputLayout l;
  l.key_kind = key_kind;
  std::set<std::string> names = {"key"};
  for (size_t o = 0; o < outputs.size(); ++o) {
    const auto& [name, t] = outputs[o];
    if (!t.defined() || t.rank() == 0 || t.dim(0) != rows) {
      return invalid_argument("output '" + name + "' is " + (t.defined() ? t.description() : "missing") +
                              ", not one row per input row (" + std::to_string(rows) + ")");
    }
    if (t.dtype() != DataType::kString && !dtype_is_float(t.dtype()) && !dtype_is_integer(t.dtype()) &&
        t.dtype() != DataType::kBool) {
      return invalid_argument("output '" + name + "' is " + std::string(dtype_name(t.dtype())) +
                              ", which scoring cannot write");
    }
    l.outputs.push_back(name);
    l.dtypes.push_back(t.dtype());
    l.per_row.push_back(row_elements(t));
    const std::string base = column_base(name);
    for (int64_t e = 0; e < l.per_row.back(); ++e) {
      OutputColumn c{base + "_" + std::to_string(e), o, e};
      if (!names.insert(c.name).second) {
        return invalid_argument("outputs give two columns named '" + c.name + "'; rename an output");
      }
      l.columns.push_back(std::move(c));
    }
  }
  return l;
}

Status OutputLayout::check(const serving::Tensors& outputs, int64_t rows) const {
  if (outputs.size() != this->outputs.size()) return invalid_argument("the model's outputs changed during the job");
  for (size_t o = 0; o < outputs.size(); ++o) {
    const auto& [name, t] = outputs[o];
    if (name != this->outputs[o] || t.dtype() != dtypes[o] || t.rank() == 0 || t.dim(0) != rows ||
        row_elements(t) != per_row[o]) {
      return invalid_argument("output '" + name + "' is " + t.description() + " in this batch, unlike earlier ones (" +
                              std::to_string(per_row[o]) + " " + std::string(dtype_name(dtypes[o])) +
                              " values a row): scoring writes a fixed set of columns");
    }
  }
  return Status::Ok();
}

std::string OutputLayout::signature() const {
  std::string s = std::string("key:") + features::key_kind_name(key_kind);
  for (const auto& c : columns) s += " " + c.name + ":" + std::string(dtype_name(dtypes[c.output]));
  return s;
}

Result<serving::Tensors> concat_rows(std::vector<serving::Tensors> chunks) {
  if (chunks.empty()) return serving::Tensors{};
  if (chunks.size() == 1) return std::move(chunks[0]);
  serving::Tensors out;
  for (size_t o = 0; o < chunks[0].size(); ++o) {
    int64_t rows = 0;
    for (const auto& c : chunks) {
      if (c.size() != chunks[0].size() || c[o].first != chunks[0][o].first ||
          c[o].second.dtype() != chunks[0][o].second.dtype() || c[o].second.rank() == 0) {
        return internal_error("chunks of one batch gave different outputs");
      }
      rows += c[o].second.dim(0);
    }
    Shape shape = chunks[0][o].second.shape();
    shape[0] = rows;
    Tensor t(chunks[0][o].second.dtype(), shape);
    int64_t at = 0;
    for (const auto& c : chunks) {
      const Tensor& part = c[o].second;
      if (row_elements(part) != row_elements(t)) {
        return internal_error("chunks of one batch gave outputs of different row sizes");
      }
      if (t.dtype() == DataType::kString) {
        const auto* src = part.data<std::string>();
        auto* dst = t.data<std::string>();
        for (int64_t i = 0; i < part.numel(); ++i) dst[at + i] = src[i];
      } else {
        std::memcpy(static_cast<char*>(t.raw_data()) + static_cast<size_t>(at) * dtype_size(t.dtype()), part.raw_data(),
                    part.nbytes());
      }
      at += part.numel();
    }
    out.emplace_back(chunks[0][o].first, std::move(t));
  }
  return out;
}

void append_value(std::string& out, const Tensor& t, int64_t i, TextStyle style) {
  switch (t.dtype()) {
    case DataType::kFloat32:
      append_float(out, t.data<float>()[i], style);
      return;
    case DataType::kFloat64:
      append_float(out, t.data<double>()[i], style);
      return;
    case DataType::kFloat16:
    case DataType::kBFloat16:
      append_float(out, static_cast<float>(t.float_at(i)), style);
      return;
    case DataType::kBool:
      out += t.data<bool>()[i] ? (style == TextStyle::kCsv ? "true" : "t") : (style == TextStyle::kCsv ? "false" : "f");
      return;
    case DataType::kString: {
      const std::string& s = t.data<std::string>()[i];
      if (style == TextStyle::kCsv) {
        append_csv_field(out, s);
      } else {
        features::pg::append_copy_text(out, s);
      }
      return;
    }
    case DataType::kUInt64:
      out += std::to_string(t.data<uint64_t>()[i]);
      return;
    default:
      out += std::to_string(t.int_at(i));
      return;
  }
}

void append_csv_field(std::string& out, std::string_view text) {
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) {
    out += text;
    return;
  }
  out += '"';
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

}  // namespace deskml::scoring
