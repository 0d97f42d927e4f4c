#include "features/uri.hpp"

namespace deskml::features {

namespace {

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

}  // namespace

const char* source_kind_name(SourceKind kind) { return kind == SourceKind::kSqlite ? "sqlite" : "postgresql"; }

std::string redact_uri(std::string_view uri) {
  std::string out(uri);
  const size_t scheme = out.find("://");
  if (scheme == std::string::npos) return out;
  // user:password@ in the authority (before the first '/', '?' or end).
  const size_t auth_begin = scheme + 3;
  size_t auth_end = out.find_first_of("/?", auth_begin);
  if (auth_end == std::string::npos) auth_end = out.size();
  const size_t at = out.rfind('@', auth_end);
  if (at != std::string::npos && at >= auth_begin) {
    const size_t colon = out.find(':', auth_begin);
    if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
  }
  // password=... among the query parameters.
  const size_t query = out.find('?');
  if (query != std::string::npos) {
    size_t pos = query + 1;
    while (pos < out.size()) {
      size_t end = out.find('&', pos);
      if (end == std::string::npos) end = out.size();
      if (starts_with(std::string_view(out).substr(pos, end - pos), "password=")) {
        out.replace(pos + 9, end - pos - 9, "***");
        end = pos + 9 + 3;
      }
      pos = end + 1;
    }
  }
  return out;
}

Result<SourceUri> parse_source_uri(std::string_view uri) {
  SourceUri out;
  if (starts_with(uri, "sqlite:")) {
    out.kind = SourceKind::kSqlite;
    out.path = std::string(uri.substr(7));
    if (out.path.empty()) return invalid_argument("sqlite: needs a database file, e.g. sqlite:features.db");
    out.redacted = std::string(uri);
    return out;
  }
  if (starts_with(uri, "postgresql://") || starts_with(uri, "postgres://")) {
    out.kind = SourceKind::kPostgres;
    out.conninfo = std::string(uri);
    out.redacted = redact_uri(uri);
    return out;
  }
  return invalid_argument("unknown feature source '" + redact_uri(uri) +
                          "': use sqlite:PATH or a postgresql:// connection URI");
}

}  // namespace deskml::features
