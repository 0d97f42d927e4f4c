// Results into a PostgreSQL table, each batch sent with COPY inside the
// transaction that moves the checkpoint. Work runs through the source's pool, so
// a lost connection is retried on a new one; each attempt re-reads the
// checkpoint under a row lock, which tells a batch whose COMMIT reached the server
// (its acknowledgement lost with the connection) from one that never did.
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
    copy_sql_ += ") FROM STDIN";
    prepared_ = true;
    return Status::Ok();
  }

  Status write(const ScoredRows& rows) override {
    if (!prepared_) return internal_error("PgTableSink::write before prepare");
    if (rows.keys.empty()) return Status::Ok();
    const int64_t n = static_cast<int64_t>(rows.keys.size());
    std::string data;
    data.reserve(static_cast<size_t>(n) * 16 * (rows.outputs.size() + 1));
    std::vector<int64_t> per_row;
    for (const auto& [name, t] : rows.outputs) per_row.push_back(t.numel() / n);
    for (int64_t r = 0; r < n; ++r) {
      features::pg::append_copy_text(data, features::key_to_string(rows.keys[static_cast<size_t>(r)]));
      for (size_t o = 0; o < rows.outputs.size(); ++o) {
        const Tensor& t = rows.outputs[o].second;
        for (int64_t e = 0; e < per_row[o]; ++e) {
          data += '\t';
          append_value(data, t, r * per_row[o] + e, TextStyle::kPostgresCopy);
        }
      }
      data += '\n';
    }
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
