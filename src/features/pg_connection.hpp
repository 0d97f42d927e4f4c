// RAII over libpq: a connection, its results, statements with text parameters
// and a deadline, and COPY ... FROM STDIN. Errors come back as Status:
// Unavailable when the connection is lost (the server stopped, restarted or the
// network dropped it), InvalidArgument for SQL and data errors (with the
// server's message), DeadlineExceeded when a deadline passed.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.hpp"

namespace deskml::features::pg {

using Clock = std::chrono::steady_clock;

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

// Type OIDs of the columns deskml decodes, from PostgreSQL's pg_type.dat; stable
// across versions.
namespace oid {
constexpr Oid kBool = 16, kName = 19, kInt8 = 20, kInt2 = 21, kInt4 = 23, kText = 25, kOid = 26, kFloat4 = 700,
              kFloat8 = 701, kBpchar = 1042, kVarchar = 1043, kNumeric = 1700;
}  // namespace oid

// Statement parameters in text form; nullopt is NULL. The server infers their types.
using Params = std::vector<std::optional<std::string>>;

class Connection {
 public:
  // Connects to `conninfo` (a postgresql:// URI; its own parameters win over
  // deskml's defaults: connect_timeout from `timeout`, application_name=deskml,
  // TCP keepalives). `description` (the URI without its password) names the
  // server in messages.
  static Result<std::unique_ptr<Connection>> connect(const std::string& conninfo, const std::string& description,
                                                     std::chrono::milliseconds timeout);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  PGconn* get() const { return conn_; }
  // True once the connection cannot be used again (the server went away, or a
  // deadline left a statement running on it).
  bool lost() const { return lost_ || PQstatus(conn_) != CONNECTION_OK; }

  // Runs one statement and returns its result (rows or a command's status).
  Result<ResultPtr> exec(std::string_view sql, const Params& params = {},
                         Clock::time_point deadline = Clock::time_point::max());
  // exec() for statements whose result does not matter.
  Status command(std::string_view sql, const Params& params = {});
  // Runs `copy_sql` (COPY ... FROM STDIN) and sends `data`, in the format copy_sql names.
  Status copy_in(std::string_view copy_sql, std::string_view data);
  // Starts `copy_sql` (COPY ... TO STDOUT); then copy_out_next() until it gives
  // no message. While a COPY is running the connection serves nothing else.
  Status copy_out_begin(std::string_view copy_sql);
  // The next CopyData message (one row of COPY's output; the binary format's
  // header comes with the first), or nullptr at the end, once the statement has
  // completed. The message stays valid until the next call.
  Result<const std::string_view*> copy_out_next(std::string_view copy_sql);
  // Marks the connection unusable, so the pool closes it: for one left in the
  // middle of a COPY.
  void abandon() { lost_ = true; }

 private:
  Connection(PGconn* conn, std::string description) : conn_(conn), description_(std::move(description)) {}
  // Waits until a result can be read without blocking.
  Status wait_ready(std::string_view sql, Clock::time_point deadline);
  // Reads every result of the statement sent; keeps the first.
  Result<ResultPtr> collect(std::string_view sql, Clock::time_point deadline);
  Status error(const PGresult* result, std::string_view sql);

  PGconn* conn_;
  std::string description_;
  bool lost_ = false;
  char* copy_buffer_ = nullptr;  // the last copy_out_next() message (libpq's memory)
  std::string_view copy_message_;
};

// Escapes a value for COPY's text format (backslash, tab, newline, carriage return).
void append_copy_text(std::string& out, std::string_view value);

}  // namespace deskml::features::pg
