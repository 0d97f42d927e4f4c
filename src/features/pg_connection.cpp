#include "features/pg_connection.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace deskml::features::pg {

namespace {

std::string trimmed(const char* text) {
  std::string s = text ? text : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// SQLSTATEs that mean the session is over: connection exceptions (class 08) and
// the server shutting down or restarting (57P01 admin_shutdown, 57P02
// crash_shutdown, 57P03 cannot_connect_now).
bool session_ending(const char* state) {
  if (!state) return false;
  return std::strncmp(state, "08", 2) == 0 || std::strcmp(state, "57P01") == 0 || std::strcmp(state, "57P02") == 0 ||
         std::strcmp(state, "57P03") == 0;
}

std::string short_sql(std::string_view sql) {
  std::string s(sql.substr(0, 120));
  std::replace(s.begin(), s.end(), '\n', ' ');
  return sql.size() > 120 ? s + "..." : s;
}

}  // namespace

Result<std::unique_ptr<Connection>> Connection::connect(const std::string& conninfo, const std::string& description,
                                                        std::chrono::milliseconds timeout) {
  // libpq rounds connect_timeout below 2 s up to 2 s.
  const std::string seconds = std::to_string(std::max<int64_t>(2, (timeout.count() + 999) / 1000));
  // Later keywords win, and dbname (the URI, expanded) comes last, so the caller's
  // own parameters override these defaults.
  const char* keys[] = {"connect_timeout",     "application_name", "keepalives", "keepalives_idle",
                        "keepalives_interval", "keepalives_count", "dbname",     nullptr};
  const char* values[] = {seconds.c_str(), "deskml", "1", "30", "10", "3", conninfo.c_str(), nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn == nullptr) return Status(StatusCode::kResourceExhausted, "libpq could not allocate a connection");
  if (PQstatus(conn) != CONNECTION_OK) {
    Status st(StatusCode::kUnavailable,
              "cannot connect to PostgreSQL at " + description + ": " + trimmed(PQerrorMessage(conn)));
    PQfinish(conn);
    return st;
  }
  // Results as text: every type has a text form, and numbers parse exactly.
  PQsetClientEncoding(conn, "UTF8");
  return std::unique_ptr<Connection>(new Connection(conn, description));
}

Connection::~Connection() {
  if (copy_buffer_) PQfreemem(copy_buffer_);
  PQfinish(conn_);
}

Status Connection::error(const PGresult* result, std::string_view sql) {
  const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  std::string msg = trimmed(result ? PQresultErrorMessage(result) : PQerrorMessage(conn_));
  if (msg.empty()) msg = trimmed(PQerrorMessage(conn_));
  if (PQstatus(conn_) != CONNECTION_OK || session_ending(state) || (result == nullptr && !state)) {
    lost_ = true;
    return Status(StatusCode::kUnavailable, "PostgreSQL at " + description_ + " went away: " + msg);
  }
  const std::string where = msg + " (in: " + short_sql(sql) + ")";
  const std::string cls = state ? std::string(state, 2) : "";
  if (cls == "42" || cls == "22" || cls == "23" || cls == "0A") return invalid_argument(where);
  if (cls == "53") return Status(StatusCode::kResourceExhausted, where);
  if (state && std::strcmp(state, "57014") == 0) return Status(StatusCode::kCancelled, where);
  return io_error(where);
}

Status Connection::wait_ready(std::string_view sql, Clock::time_point deadline) {
  const int fd = PQsocket(conn_);
  while (PQisBusy(conn_)) {
    int timeout_ms = -1;
    if (deadline != Clock::time_point::max()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      timeout_ms = static_cast<int>(std::clamp<int64_t>(left, 0, 1 << 30));
    }
    pollfd p{fd, POLLIN, 0};
    const int rc = timeout_ms == 0 ? 0 : ::poll(&p, 1, timeout_ms);
    if (rc < 0 && errno == EINTR) continue;
    if (rc == 0) {
      // Ask the server to stop, and never reuse this connection: its results may still come.
      if (PGcancel* cancel = PQgetCancel(conn_)) {
        char buf[256];
        PQcancel(cancel, buf, sizeof buf);
        PQfreeCancel(cancel);
      }
      lost_ = true;
      return Status(StatusCode::kDeadlineExceeded, "PostgreSQL at " + description_ + " did not answer in time");
    }
    if (!PQconsumeInput(conn_)) return error(nullptr, sql);
  }
  return Status::Ok();
}

Result<ResultPtr> Connection::collect(std::string_view sql, Clock::time_point deadline) {
  ResultPtr first;
  for (;;) {
    DESKML_RETURN_IF_ERROR(wait_ready(sql, deadline));
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr) break;
    if (!first) {
      first.reset(r);
    } else {
      PQclear(r);
    }
  }
  if (!first) return error(nullptr, sql);
  const ExecStatusType st = PQresultStatus(first.get());
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) return error(first.get(), sql);
  return first;
}

Result<ResultPtr> Connection::exec(std::string_view sql, const Params& params, Clock::time_point deadline) {
  if (lost()) return Status(StatusCode::kUnavailable, "PostgreSQL at " + description_ + " went away");
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  const std::string text(sql);
  if (!PQsendQueryParams(conn_, text.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr,
                         0)) {
    return error(nullptr, sql);
  }
  return collect(sql, deadline);
}

Status Connection::command(std::string_view sql, const Params& params) {
  auto r = exec(sql, params);
  return r.ok() ? Status::Ok() : r.status();
}

Status Connection::copy_in(std::string_view copy_sql, std::string_view data) {
  if (lost()) return Status(StatusCode::kUnavailable, "PostgreSQL at " + description_ + " went away");
  const std::string text(copy_sql);
  if (!PQsendQuery(conn_, text.c_str())) return error(nullptr, copy_sql);
  ResultPtr start(PQgetResult(conn_));
  if (!start || PQresultStatus(start.get()) != PGRES_COPY_IN) {
    Status st = error(start.get(), copy_sql);
    while (PGresult* r = PQgetResult(conn_)) PQclear(r);
    return st;
  }
  constexpr size_t kChunk = size_t{1} << 20;
  for (size_t off = 0; off < data.size(); off += kChunk) {
    const size_t n = std::min(kChunk, data.size() - off);
    if (PQputCopyData(conn_, data.data() + off, static_cast<int>(n)) != 1) return error(nullptr, copy_sql);
  }
  if (PQputCopyEnd(conn_, nullptr) != 1) return error(nullptr, copy_sql);
  auto done = collect(copy_sql, Clock::time_point::max());
  return done.ok() ? Status::Ok() : done.status();
}

Status Connection::copy_out_begin(std::string_view copy_sql) {
  if (lost()) return Status(StatusCode::kUnavailable, "PostgreSQL at " + description_ + " went away");
  const std::string text(copy_sql);
  if (!PQsendQuery(conn_, text.c_str())) return error(nullptr, copy_sql);
  DESKML_RETURN_IF_ERROR(wait_ready(copy_sql, Clock::time_point::max()));
  ResultPtr start(PQgetResult(conn_));
  if (!start || PQresultStatus(start.get()) != PGRES_COPY_OUT) {
    Status st = error(start.get(), copy_sql);
    while (PGresult* r = PQgetResult(conn_)) PQclear(r);
    return st;
  }
  return Status::Ok();
}

Result<const std::string_view*> Connection::copy_out_next(std::string_view copy_sql) {
  if (copy_buffer_) {
    PQfreemem(copy_buffer_);
    copy_buffer_ = nullptr;
  }
  const int n = PQgetCopyData(conn_, &copy_buffer_, 0);
  if (n > 0) {
    copy_message_ = std::string_view(copy_buffer_, static_cast<size_t>(n));
    return &copy_message_;
  }
  if (n == -2) return error(nullptr, copy_sql);
  auto done = collect(copy_sql, Clock::time_point::max());  // the COPY's own status
  if (!done.ok()) return done.status();
  return nullptr;
}

void append_copy_text(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out += c;
    }
  }
}

}  // namespace deskml::features::pg
