#include "features/pg_copy_stream.hpp"

#include <charconv>
#include <cmath>
#include <cstring>

namespace deskml::features::pg {

namespace {

// COPY BINARY's 11-byte signature, then a 32-bit flags field and a 32-bit
// header-extension length.
constexpr char kSignature[] = "PGCOPY\n\377\r\n";
constexpr size_t kSignatureSize = 11;

uint64_t read_be(const char* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

Status bad_value(const std::string& column, const char* what) {
  return invalid_argument("column '" + column + "': " + what + " in PostgreSQL's binary COPY data");
}

Status bad_stream(const char* what) { return io_error(std::string("PostgreSQL's binary COPY data has ") + what); }

// numeric's binary form: ndigits, weight, sign, dscale (16 bits each), then
// ndigits base-10000 digits, the first worth 10000^weight. Written out as
// decimal text and parsed, so the double is the correctly rounded one, as from
// the text form.
Result<double> numeric_value(std::string_view v, const std::string& column) {
  if (v.size() < 8) return bad_value(column, "a short numeric");
  const auto ndigits = static_cast<int16_t>(read_be(v.data(), 2));
  const auto weight = static_cast<int16_t>(read_be(v.data() + 2, 2));
  const auto sign = static_cast<uint16_t>(read_be(v.data() + 4, 2));
  if (ndigits < 0 || v.size() != 8 + 2 * static_cast<size_t>(ndigits)) return bad_value(column, "a malformed numeric");
  switch (sign) {
    case 0xC000:
      return std::nan("");
    case 0xD000:
      return HUGE_VAL;
    case 0xF000:
      return -HUGE_VAL;
    case 0x0000:
    case 0x4000:
      break;
    default:
      return bad_value(column, "a numeric with an unknown sign");
  }
  if (ndigits == 0) return sign == 0x4000 ? -0.0 : 0.0;
  std::string text = sign == 0x4000 ? "-" : "";
  text.reserve(text.size() + 4 * static_cast<size_t>(ndigits) + 8);
  for (int i = 0; i < ndigits; ++i) {
    const auto d = static_cast<unsigned>(read_be(v.data() + 8 + 2 * i, 2));
    if (d > 9999) return bad_value(column, "a numeric digit above 9999");
    char four[4] = {static_cast<char>('0' + d / 1000), static_cast<char>('0' + d / 100 % 10),
                    static_cast<char>('0' + d / 10 % 10), static_cast<char>('0' + d % 10)};
    text.append(four, 4);
  }
  text += 'e';
  text += std::to_string((static_cast<int>(weight) - (ndigits - 1)) * 4);
  double x = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), x);
  if (ec == std::errc::result_out_of_range) {
    // Too large: ±inf, as the text path gives; too small: the sign's zero.
    const bool huge = static_cast<int>(weight) >= 0;
    x = huge ? (sign == 0x4000 ? -HUGE_VAL : HUGE_VAL) : (sign == 0x4000 ? -0.0 : 0.0);
  } else if (ec != std::errc() || end != text.data() + text.size()) {
    return bad_value(column, "an unreadable numeric");
  }
  return x;
}

}  // namespace

bool binary_decodable(Oid type) {
  switch (type) {
    case oid::kBool:
    case oid::kInt2:
    case oid::kInt4:
    case oid::kInt8:
    case oid::kOid:
    case oid::kFloat4:
    case oid::kFloat8:
    case oid::kNumeric:
    case oid::kText:
    case oid::kVarchar:
    case oid::kBpchar:
    case oid::kName:
      return true;
    default:
      return false;
  }
}

Status append_binary_cell(RowBatch& out, Oid type, std::string_view v, const std::string& column) {
  auto sized = [&](size_t n) { return v.size() == n ? Status::Ok() : bad_value(column, "a value of the wrong size"); };
  switch (type) {
    case oid::kBool:
      DESKML_RETURN_IF_ERROR(sized(1));
      out.cells.push_back(Cell::boolean(v[0] != 0));
      return Status::Ok();
    case oid::kInt2:
      DESKML_RETURN_IF_ERROR(sized(2));
      out.cells.push_back(Cell::integer(static_cast<int16_t>(read_be(v.data(), 2))));
      return Status::Ok();
    case oid::kInt4:
      DESKML_RETURN_IF_ERROR(sized(4));
      out.cells.push_back(Cell::integer(static_cast<int32_t>(read_be(v.data(), 4))));
      return Status::Ok();
    case oid::kOid:
      DESKML_RETURN_IF_ERROR(sized(4));
      out.cells.push_back(Cell::integer(static_cast<int64_t>(read_be(v.data(), 4))));
      return Status::Ok();
    case oid::kInt8:
      DESKML_RETURN_IF_ERROR(sized(8));
      out.cells.push_back(Cell::integer(static_cast<int64_t>(read_be(v.data(), 8))));
      return Status::Ok();
    case oid::kFloat4: {
      DESKML_RETURN_IF_ERROR(sized(4));
      const auto bits = static_cast<uint32_t>(read_be(v.data(), 4));
      float f;
      std::memcpy(&f, &bits, sizeof f);
      out.cells.push_back(Cell::real(f));
      return Status::Ok();
    }
    case oid::kFloat8: {
      DESKML_RETURN_IF_ERROR(sized(8));
      const uint64_t bits = read_be(v.data(), 8);
      double d;
      std::memcpy(&d, &bits, sizeof d);
      out.cells.push_back(Cell::real(d));
      return Status::Ok();
    }
    case oid::kNumeric: {
      DESKML_ASSIGN_OR_RETURN(double d, numeric_value(v, column));
      out.cells.push_back(Cell::real(d));
      return Status::Ok();
    }
    case oid::kText:
    case oid::kVarchar:
    case oid::kBpchar:
    case oid::kName:
      out.add_text(v);
      return Status::Ok();
    default:
      return internal_error("column '" + column + "': type " + std::to_string(type) + " has no binary decoder");
  }
}

Result<std::unique_ptr<CopyStream>> CopyStream::open(Pool::Lease lease, std::string copy_sql,
                                                     std::vector<std::string> columns, std::vector<Oid> types) {
  for (Oid t : types) {
    if (!binary_decodable(t)) return internal_error("a column type without a binary decoder");
  }
  DESKML_RETURN_IF_ERROR(lease->copy_out_begin(copy_sql));
  return std::unique_ptr<CopyStream>(
      new CopyStream(std::move(lease), std::move(copy_sql), std::move(columns), std::move(types)));
}

CopyStream::~CopyStream() {
  if (!finished_) lease_->abandon();
}

Result<RowBatch> CopyStream::next(size_t limit) {
  RowBatch out;
  out.columns = columns_;
  out.cells.reserve(limit * columns_.size());
  while (!finished_ && out.rows() < limit) {
    DESKML_ASSIGN_OR_RETURN(const std::string_view* message, lease_->copy_out_next(sql_));
    if (message == nullptr) {
      finished_ = true;
      if (!ended_) return io_error("PostgreSQL's COPY ended without its trailer");
      break;
    }
    DESKML_RETURN_IF_ERROR(parse(*message, out));
  }
  return out;
}

Status CopyStream::parse(std::string_view m, RowBatch& out) {
  if (!header_seen_) {
    if (m.size() < kSignatureSize + 8 || std::memcmp(m.data(), kSignature, kSignatureSize) != 0) {
      return bad_stream("no header");
    }
    const size_t extension = read_be(m.data() + kSignatureSize + 4, 4);
    if (m.size() < kSignatureSize + 8 + extension) return bad_stream("a short header");
    m.remove_prefix(kSignatureSize + 8 + extension);
    header_seen_ = true;
  }
  while (!m.empty()) {
    if (ended_ || m.size() < 2) return bad_stream("data after its end");
    const auto fields = static_cast<int16_t>(read_be(m.data(), 2));
    m.remove_prefix(2);
    if (fields == -1) {
      ended_ = true;
      continue;
    }
    if (static_cast<size_t>(fields) != columns_.size()) return bad_stream("a row of the wrong width");
    for (size_t c = 0; c < columns_.size(); ++c) {
      if (m.size() < 4) return bad_value(columns_[c], "a cut row");
      const auto len = static_cast<int32_t>(read_be(m.data(), 4));
      m.remove_prefix(4);
      if (len == -1) {
        out.cells.push_back(Cell::null());
        continue;
      }
      if (len < 0 || static_cast<size_t>(len) > m.size()) return bad_value(columns_[c], "a cut value");
      DESKML_RETURN_IF_ERROR(append_binary_cell(out, types_[c], m.substr(0, static_cast<size_t>(len)), columns_[c]));
      m.remove_prefix(static_cast<size_t>(len));
    }
  }
  return Status::Ok();
}

}  // namespace deskml::features::pg
