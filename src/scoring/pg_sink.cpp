// Results into a PostgreSQL table, each batch sent with COPY (binary format) inside the
// transaction that moves the checkpoint. Work runs through the source's pool, so
// a lost connection is retried on a new one; each attempt re-reads the
// checkpoint under a row lock, which tells a batch whose COMMIT reached the server
// (its acknowledgement lost with the connection) from one that never did.
#include <cstdint>
#include <cstring>
#include <variant>

#include "features/pg_connection.hpp"
#include "scoring/sinks.hpp"

namespace deskml::scoring {

namespace {

using features::pg::Connection;
using features::pg::Params;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

const char* pg_type(DataType t) {
  switch (t) {
    case DataType::kString:
      return "TEXT";
    case DataType::kBool:
      return "BOOLEAN";
    case DataType::kFloat64:
      return "DOUBLE PRECISION";
    case DataType::kFloat32:
    case DataType::kFloat16:
    case DataType::kBFloat16:
      return "REAL";
    default:
      return "BIGINT";
  }
}

// COPY's binary format: big-endian integers and IEEE floats, each field
// preceded by its length. The server skips parsing decimal text, and values
// arrive exactly.
void put_be(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}
void put_field(std::string& out, const void* bytes, size_t n) {
  put_be(out, n, 4);
  out.append(static_cast<const char*>(bytes), n);
}
void put_float4(std::string& out, float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  put_be(out, 4, 4);
  put_be(out, bits, 4);
}
void put_float8(std::string& out, double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  put_be(out, 8, 4);
  put_be(out, bits, 8);
}
void put_int8(std::string& out, int64_t v) {
  put_be(out, 8, 4);
  put_be(out, static_cast<uint64_t>(v), 8);
}

// One value of output tensor `t`, as its column's type (pg_type) takes it.
Status put_value(std::string& out, const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DataType::kFloat32:
      put_float4(out, t.data<float>()[i]);
      return Status::Ok();
    case DataType::kFloat16:
    case DataType::kBFloat16:
      put_float4(out, static_cast<float>(t.float_at(i)));
      return Status::Ok();
    case DataType::kFloat64:
      put_float8(out, t.data<double>()[i]);
      return Status::Ok();
    case DataType::kBool: {
      const char b = t.data<bool>()[i] ? 1 : 0;
      put_field(out, &b, 1);
      return Status::Ok();
    }
    case DataType::kString: {
      const std::string& s = t.data<std::string>()[i];
      put_field(out, s.data(), s.size());
      return Status::Ok();
    }
    case DataType::kUInt64: {
      const uint64_t v = t.data<uint64_t>()[i];
      if (v > static_cast<uint64_t>(INT64_MAX)) {
        return invalid_argument("output value " + std::to_string(v) + " is out of range for a BIGINT column");
      }
      put_int8(out, static_cast<int64_t>(v));
      return Status::Ok();
    }
    default:
      put_int8(out, t.int_at(i));
      return Status::Ok();
  }
}

// A page's rows (key, then every output's values) as COPY binary data.
Result<std::string> binary_copy_data(const ScoredRows& rows) {
  const int64_t n = static_cast<int64_t>(rows.keys.size());
  std::vector<int64_t> per_row;
  int64_t fields = 1;
  for (const auto& [name, t] : rows.outputs) {
    per_row.push_back(t.numel() / n);
    fields += per_row.back();
  }
  if (fields > INT16_MAX) return invalid_argument("too many output columns for one PostgreSQL row");
  std::string data("PGCOPY\n\377\r\n\0", 11);
  put_be(data, 0, 4);  // flags
  put_be(data, 0, 4);  // header extension length
  data.reserve(data.size() + static_cast<size_t>(n) * (2 + 12 * static_cast<size_t>(fields)) + 2);
  for (int64_t r = 0; r < n; ++r) {
    put_be(data, static_cast<uint64_t>(fields), 2);
    const features::Key& key = rows.keys[static_cast<size_t>(r)];
    if (const auto* k = std::get_if<int64_t>(&key)) {
      put_int8(data, *k);
    } else {
      const std::string& text = std::get<std::string>(key);
      put_field(data, text.data(), text.size());
    }
    for (size_t o = 0; o < rows.outputs.size(); ++o) {
      const Tensor& t = rows.outputs[o].second;
      for (int64_t e = 0; e < per_row[o]; ++e) DESKML_RETURN_IF_ERROR(put_value(data, t, r * per_row[o] + e));
    }
  }
  put_be(data, static_cast<uint16_t>(-1), 2);  // trailer
  return data;
}

// Rolls back at scope exit unless committed (nothing to do on a lost connection:
// the server rolls back by itself).
class Transaction {
 public:
  explicit Transaction(Connection& conn) : conn_(conn) {}
  ~Transaction() {
    if (open_ && !conn_.lost()) (void)conn_.command("ROLLBACK");
  }
  Status begin() {
    DESKML_RETURN_IF_ERROR(conn_.command("BEGIN"));
    open_ = true;
    return Status::Ok();
  }
  Status commit() {
    open_ = false;
    return conn_.command("COMMIT");
  }

 private:
  Connection& conn_;
  bool open_ = false;
};

struct StoredCheckpoint {
  std::string job, layout;
  Checkpoint checkpoint;
};

class PgTableSink final : public ResultSink {
 public:
  PgTableSink(std::shared_ptr<features::pg::Pool> pool, std::string table, const JobSpec& job)
      : pool_(std::move(pool)),
        table_(lower(std::move(table))),
        job_(job.to_json()),
        description_("table " + table_ + " in " + pool_->description()) {}

  const std::string& description() const override { return description_; }
  const Checkpoint& checkpoint() const override { return checkpoint_; }
  bool resuming() const override { return resuming_; }

  Status open(const JobSpec& job, bool fresh) {
    bool have_table = false;
    std::optional<StoredCheckpoint> stored;
    DESKML_RETURN_IF_ERROR(pool_->run([&](Connection& conn) -> Status {
      DESKML_ASSIGN_OR_RETURN(have_table, exists(conn, table_));
      DESKML_ASSIGN_OR_RETURN(const bool have_checkpoints, exists(conn, kCheckpointTable));
      stored.reset();
      if (have_checkpoints) {
        DESKML_ASSIGN_OR_RETURN(stored, read_checkpoint(conn, /*lock=*/false));
      }
      return Status::Ok();
    }));
    if (!stored) {
      if (have_table) return not_ours();
      return Status::Ok();
    }
    if (fresh) {
      return pool_->run([&](Connection& conn) -> Status {
        Transaction tx(conn);
        DESKML_RETURN_IF_ERROR(tx.begin());
        DESKML_RETURN_IF_ERROR(conn.command("DROP TABLE IF EXISTS " + table_));
        DESKML_RETURN_IF_ERROR(
            conn.command(std::string("DELETE FROM ") + kCheckpointTable + " WHERE output_table = $1", {table_}));
        return tx.commit();
      });
    }
    const std::string diff = job.difference(stored->job);
    if (!diff.empty()) return job_mismatch(table_, diff);
    layout_ = stored->layout;
    checkpoint_ = stored->checkpoint;
    resuming_ = true;
    return Status::Ok();
  }

  Status prepare(const OutputLayout& layout) override {
    const std::string sig = layout.signature();
    if (resuming_) {
      if (!layout_.empty() && layout_ != sig)
        return job_mismatch(table_, "its columns were " + layout_ + ", now " + sig);
    } else {
      std::string ddl = "CREATE TABLE " + table_ + " (\"key\" " +
                        (layout.key_kind == features::KeyKind::kInteger ? "BIGINT" : "TEXT") + " PRIMARY KEY";
      for (const auto& c : layout.columns) ddl += ", " + c.name + " " + pg_type(layout.dtypes[c.output]);
      ddl += ")";
      DESKML_RETURN_IF_ERROR(pool_->run([&](Connection& conn) -> Status {
        Transaction tx(conn);
        DESKML_RETURN_IF_ERROR(tx.begin());
        DESKML_RETURN_IF_ERROR(conn.command(std::string("CREATE TABLE IF NOT EXISTS ") + kCheckpointTable +
                                            " (output_table TEXT PRIMARY KEY, job TEXT NOT NULL, layout TEXT NOT "
                                            "NULL, key_kind TEXT, last_key TEXT, rows_done BIGINT NOT NULL, "
                                            "updated_at TIMESTAMPTZ NOT NULL)"));
        // A retry after a lost COMMIT finds its own work done.
        DESKML_ASSIGN_OR_RETURN(auto mine, read_checkpoint(conn, /*lock=*/true));
        if (mine && mine->job == job_ && mine->checkpoint.rows_done == 0) return Status::Ok();
        DESKML_ASSIGN_OR_RETURN(const bool taken, exists(conn, table_));
        if (taken || mine) return not_ours();
        DESKML_RETURN_IF_ERROR(conn.command(ddl));
        DESKML_RETURN_IF_ERROR(conn.command(std::string("INSERT INTO ") + kCheckpointTable +
                                                " (output_table, job, layout, rows_done, updated_at) VALUES ($1, $2, "
                                                "$3, 0, now())",
                                            {table_, job_, sig}));
        return tx.commit();
      }));
    }
    layout_ = sig;
    copy_sql_ = "COPY " + table_ + " (\"key\"";
    for (const auto& c : layout.columns) copy_sql_ += ", " + c.name;
    copy_sql_ += ") FROM STDIN (FORMAT binary)";
    prepared_ = true;
    return Status::Ok();
  }

  Status write(const ScoredRows& rows) override {
    if (!prepared_) return internal_error("PgTableSink::write before prepare");
    if (rows.keys.empty()) return Status::Ok();
    const int64_t n = static_cast<int64_t>(rows.keys.size());
    DESKML_ASSIGN_OR_RETURN(const std::string data, binary_copy_data(rows));
    const std::string last = features::key_to_string(rows.keys.back());
    const int64_t before = checkpoint_.rows_done, after = before + n;
    DESKML_RETURN_IF_ERROR(pool_->run([&](Connection& conn) -> Status {
      Transaction tx(conn);
      DESKML_RETURN_IF_ERROR(tx.begin());
      DESKML_ASSIGN_OR_RETURN(auto now, read_checkpoint(conn, /*lock=*/true));
      if (!now) return io_error("the checkpoint of " + table_ + " disappeared during the job");
      const Checkpoint& c = now->checkpoint;
      if (c.rows_done == after && c.last_key && features::key_to_string(*c.last_key) == last) {
        return Status::Ok();  // committed by an attempt whose acknowledgement was lost
      }
      if (c.rows_done != before) {
        return invalid_argument("the checkpoint of " + table_ + " moved from " + std::to_string(before) + " to " +
                                std::to_string(c.rows_done) +
                                " rows while this job ran: is another deskml score writing it?");
      }
      DESKML_RETURN_IF_ERROR(conn.copy_in(copy_sql_, data));
      DESKML_RETURN_IF_ERROR(
          conn.command(std::string("UPDATE ") + kCheckpointTable +
                           " SET rows_done = $1, last_key = $2, key_kind = $3, updated_at = now() "
                           "WHERE output_table = $4",
                       {std::to_string(after), last,
                        std::string(features::key_kind_name(features::key_kind(rows.keys.back()))), table_}));
      return tx.commit();
    }));
    checkpoint_.rows_done = after;
    checkpoint_.last_key = rows.keys.back();
    return Status::Ok();
  }

 private:
  static Result<bool> exists(Connection& conn, const std::string& name) {
    DESKML_ASSIGN_OR_RETURN(auto r, conn.exec("SELECT to_regclass($1) IS NOT NULL", {name}));
    return PQntuples(r.get()) == 1 && std::string_view(PQgetvalue(r.get(), 0, 0)) == "t";
  }

  Result<std::optional<StoredCheckpoint>> read_checkpoint(Connection& conn, bool lock) {
    DESKML_ASSIGN_OR_RETURN(
        auto r, conn.exec(std::string("SELECT job, layout, key_kind, last_key, rows_done FROM ") + kCheckpointTable +
                              " WHERE output_table = $1" + (lock ? " FOR UPDATE" : ""),
                          {table_}));
    if (PQntuples(r.get()) != 1) return std::optional<StoredCheckpoint>();
    StoredCheckpoint s;
    s.job = PQgetvalue(r.get(), 0, 0);
    s.layout = PQgetvalue(r.get(), 0, 1);
    s.checkpoint.rows_done = std::stoll(PQgetvalue(r.get(), 0, 4));
    if (!PQgetisnull(r.get(), 0, 3)) {
      DESKML_ASSIGN_OR_RETURN(auto kind, features::key_kind_from_name(PQgetvalue(r.get(), 0, 2)));
      DESKML_ASSIGN_OR_RETURN(s.checkpoint.last_key, features::key_from_string(PQgetvalue(r.get(), 0, 3), kind));
    }
    return std::optional<StoredCheckpoint>(std::move(s));
  }

  Status not_ours() const {
    return invalid_argument("table '" + table_ + "' exists and has no deskml score checkpoint (in " + kCheckpointTable +
                            "), so deskml score did not create it; drop it or choose another --into");
  }

  std::shared_ptr<features::pg::Pool> pool_;
  std::string table_;
  std::string job_;
  std::string description_;
  std::string layout_;
  std::string copy_sql_;
  Checkpoint checkpoint_;
  bool resuming_ = false;
  bool prepared_ = false;
};

}  // namespace

Result<std::unique_ptr<ResultSink>> open_pg_table_sink(features::PgSource& source, const std::string& table,
                                                       const JobSpec& job, bool fresh) {
  auto sink = std::make_unique<PgTableSink>(source.pool(), table, job);
  DESKML_RETURN_IF_ERROR(sink->open(job, fresh));
  return std::unique_ptr<ResultSink>(std::move(sink));
}

}  // namespace deskml::scoring
