// Feature source URIs: `sqlite:PATH` (a database file that must exist) or a
// libpq connection URI, `postgresql://[user[:password]@][host][:port][/dbname][?param=value&...]`
// (`postgres://` too). libpq reads the URI itself, so every parameter it knows
// passes through untouched: sslmode, sslrootcert, sslcert, sslkey, host=/unix/socket/dir,
// connect_timeout, application_name, ...
#pragma once

#include <string>
#include <string_view>

#include "core/status.hpp"

namespace deskml::features {

enum class SourceKind { kSqlite, kPostgres };
const char* source_kind_name(SourceKind kind);  // "sqlite", "postgresql"

struct SourceUri {
  SourceKind kind = SourceKind::kSqlite;
  std::string path;      // kSqlite: the database file
  std::string conninfo;  // kPostgres: the URI as given
  std::string redacted;  // the URI with any password replaced by "***", for messages and logs
};

// InvalidArgument for anything else (a bare path, mysql://, an empty sqlite path).
Result<SourceUri> parse_source_uri(std::string_view uri);

// The URI with the password (user:PASSWORD@ and ?password=...) replaced by "***".
std::string redact_uri(std::string_view uri);

}  // namespace deskml::features
