// Results into a table of the SQLite database the features come from, through
// a read-write connection of its own (the source reads through query-only ones).
#include <cmath>

#include "features/sqlite_db.hpp"
#include "scoring/sinks.hpp"

namespace deskml::scoring {

namespace {

using features::sqlite::Database;
using features::sqlite::Statement;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

const char* sqlite_type(DataType t) {
  if (t == DataType::kString) return "TEXT";
  if (dtype_is_float(t)) return "REAL";
  return "INTEGER";
}

// Rolls back at scope exit unless committed.
class Transaction {
 public:
  explicit Transaction(Database& db) : db_(db) {}
  ~Transaction() {
    if (open_) (void)db_.exec("ROLLBACK");
  }
  Status begin() {
    DESKML_RETURN_IF_ERROR(db_.exec("BEGIN IMMEDIATE"));
    open_ = true;
    return Status::Ok();
  }
  Status commit() {
    DESKML_RETURN_IF_ERROR(db_.exec("COMMIT"));
    open_ = false;
    return Status::Ok();
  }

 private:
  Database& db_;
  bool open_ = false;
};

class SqliteTableSink final : public ResultSink {
 public:
  SqliteTableSink(std::unique_ptr<Database> db, std::string table, const JobSpec& job, std::string source)
      : db_(std::move(db)),
        table_(lower(std::move(table))),
        job_(job.to_json()),
        description_("table " + table_ + " in " + source) {}

  const std::string& description() const override { return description_; }
  const Checkpoint& checkpoint() const override { return checkpoint_; }
  bool resuming() const override { return resuming_; }

  Status open(const JobSpec& job, bool fresh) {
    DESKML_ASSIGN_OR_RETURN(const bool have_table, table_exists(table_));
    DESKML_ASSIGN_OR_RETURN(const bool have_checkpoints, table_exists(kCheckpointTable));
    bool have_checkpoint = false;
    std::string stored_job;
    if (have_checkpoints) {
      DESKML_ASSIGN_OR_RETURN(auto stmt, Statement::prepare(*db_, std::string("SELECT job, layout, key_kind, last_key, "
                                                                              "rows_done FROM ") +
                                                                      kCheckpointTable + " WHERE output_table = ?"));
      stmt.bind_text(1, table_);
      features::RowBatch row;
      DESKML_RETURN_IF_ERROR(features::sqlite::read_rows(*db_, stmt, row));
      if (row.rows() == 1) {
        have_checkpoint = true;
        stored_job = std::string(row.text(row.at(0, 0)));
        layout_ = row.at(0, 1).type == features::CellType::kText ? std::string(row.text(row.at(0, 1))) : "";
        checkpoint_.rows_done = row.at(0, 4).i;
        if (row.at(0, 3).type != features::CellType::kNull) {
          DESKML_ASSIGN_OR_RETURN(auto kind, features::key_kind_from_name(row.text(row.at(0, 2))));
          const auto& k = row.at(0, 3);
          const std::string text = k.type == features::CellType::kText ? std::string(row.text(k)) : row.describe(k);
          DESKML_ASSIGN_OR_RETURN(checkpoint_.last_key, features::key_from_string(text, kind));
        }
      }
    }
    if (!have_checkpoint) {
      if (have_table) return not_ours();
      return Status::Ok();
    }
    if (fresh) {
      Transaction tx(*db_);
      DESKML_RETURN_IF_ERROR(tx.begin());
      DESKML_RETURN_IF_ERROR(db_->exec("DROP TABLE IF EXISTS " + table_));
      DESKML_RETURN_IF_ERROR(
          db_->exec(std::string("DELETE FROM ") + kCheckpointTable + " WHERE output_table = '" + table_ + "'"));
      DESKML_RETURN_IF_ERROR(tx.commit());
      checkpoint_ = {};
      layout_.clear();
      return Status::Ok();
    }
    const std::string diff = job.difference(stored_job);
    if (!diff.empty()) return job_mismatch(table_, diff);
    resuming_ = true;
    return Status::Ok();
  }

  Status prepare(const OutputLayout& layout) override {
    const std::string sig = layout.signature();
    if (resuming_) {
      if (!layout_.empty() && layout_ != sig) {
        return job_mismatch(table_, "its columns were " + layout_ + ", now " + sig);
      }
    } else {
      Transaction tx(*db_);
      DESKML_RETURN_IF_ERROR(tx.begin());
      DESKML_RETURN_IF_ERROR(
          db_->exec(std::string("CREATE TABLE IF NOT EXISTS ") + kCheckpointTable +
                    "(output_table TEXT PRIMARY KEY, job TEXT NOT NULL, layout TEXT NOT NULL, "
                    "key_kind TEXT, last_key, rows_done INTEGER NOT NULL, updated_at TEXT NOT NULL)"));
      DESKML_ASSIGN_OR_RETURN(const bool exists, table_exists(table_));
      if (exists) return not_ours();
      std::string ddl = "CREATE TABLE " + table_ + "(\"key\" " +
                        (layout.key_kind == features::KeyKind::kInteger ? "INTEGER" : "TEXT") + " PRIMARY KEY";
      for (const auto& c : layout.columns) ddl += ", " + c.name + " " + sqlite_type(layout.dtypes[c.output]);
      DESKML_RETURN_IF_ERROR(db_->exec(ddl + ")"));
      DESKML_ASSIGN_OR_RETURN(auto ins, Statement::prepare(*db_, std::string("INSERT INTO ") + kCheckpointTable +
                                                                     "(output_table, job, layout, rows_done, "
                                                                     "updated_at) VALUES (?, ?, ?, 0, " +
                                                                     kNow + ")"));
      ins.bind_text(1, table_);
      ins.bind_text(2, job_);
      ins.bind_text(3, sig);
      if (const int rc = ins.step(); rc != SQLITE_DONE) {
        return features::sqlite::error_status(db_->get(), rc, "cannot write the checkpoint");
      }
      DESKML_RETURN_IF_ERROR(tx.commit());
    }
    layout_ = sig;
    std::string sql = "INSERT INTO " + table_ + " VALUES (?";
    for (size_t i = 0; i < layout.columns.size(); ++i) sql += ", ?";
    DESKML_ASSIGN_OR_RETURN(auto insert, Statement::prepare(*db_, sql + ")"));
    DESKML_ASSIGN_OR_RETURN(auto read, Statement::prepare(*db_, std::string("SELECT rows_done, last_key FROM ") +
                                                                    kCheckpointTable + " WHERE output_table = ?"));
    DESKML_ASSIGN_OR_RETURN(auto update, Statement::prepare(*db_, std::string("UPDATE ") + kCheckpointTable +
                                                                      " SET rows_done = ?, last_key = ?, key_kind = "
                                                                      "?, updated_at = " +
                                                                      kNow + " WHERE output_table = ?"));
    insert_.emplace(std::move(insert));
    read_checkpoint_.emplace(std::move(read));
    update_checkpoint_.emplace(std::move(update));
    return Status::Ok();
  }

  Status write(const ScoredRows& rows) override {
    if (!insert_) return internal_error("SqliteTableSink::write before prepare");
    if (rows.keys.empty()) return Status::Ok();
    const int64_t n = static_cast<int64_t>(rows.keys.size());
    Transaction tx(*db_);
    DESKML_RETURN_IF_ERROR(tx.begin());
    // Where the checkpoint really is: this job's view, or someone else moved it.
    read_checkpoint_->bind_text(1, table_);
    features::RowBatch now;
    DESKML_RETURN_IF_ERROR(features::sqlite::read_rows(*db_, *read_checkpoint_, now));
    if (now.rows() != 1) return io_error("the checkpoint of " + table_ + " disappeared during the job");
    if (now.at(0, 0).i != checkpoint_.rows_done) {
      return Status(StatusCode::kInvalidArgument, "the checkpoint of " + table_ + " moved from " +
                                                      std::to_string(checkpoint_.rows_done) + " to " +
                                                      std::to_string(now.at(0, 0).i) +
                                                      " rows while this job ran: is another deskml score writing it?");
    }
    std::vector<int64_t> per_row;
    for (const auto& [name, t] : rows.outputs) per_row.push_back(t.numel() / n);
    sqlite3_stmt* s = insert_->get();
    for (int64_t r = 0; r < n; ++r) {
      insert_->bind_key(1, rows.keys[static_cast<size_t>(r)]);
      int col = 2;
      for (size_t o = 0; o < rows.outputs.size(); ++o) {
        const Tensor& t = rows.outputs[o].second;
        for (int64_t e = 0; e < per_row[o]; ++e, ++col) {
          const int64_t i = r * per_row[o] + e;
          switch (t.dtype()) {
            case DataType::kFloat32:
              sqlite3_bind_double(s, col, t.data<float>()[i]);
              break;
            case DataType::kFloat64:
              sqlite3_bind_double(s, col, t.data<double>()[i]);
              break;
            case DataType::kFloat16:
            case DataType::kBFloat16:
              sqlite3_bind_double(s, col, t.float_at(i));
              break;
            case DataType::kString:
              insert_->bind_text(col, t.data<std::string>()[i]);
              break;
            case DataType::kBool:
              sqlite3_bind_int64(s, col, t.data<bool>()[i] ? 1 : 0);
              break;
            default:
              sqlite3_bind_int64(s, col, t.int_at(i));
          }
        }
      }
      const int rc = insert_->step();
      insert_->reset();
      if (rc != SQLITE_DONE) {
        return features::sqlite::error_status(
            db_->get(), rc, "cannot insert key " + features::key_to_string(rows.keys[r]) + " into " + table_);
      }
    }
    update_checkpoint_->bind_key(2, rows.keys.back());
    sqlite3_bind_int64(update_checkpoint_->get(), 1, checkpoint_.rows_done + n);
    update_checkpoint_->bind_text(3, features::key_kind_name(features::key_kind(rows.keys.back())));
    update_checkpoint_->bind_text(4, table_);
    const int rc = update_checkpoint_->step();
    update_checkpoint_->reset();
    if (rc != SQLITE_DONE) return features::sqlite::error_status(db_->get(), rc, "cannot move the checkpoint");
    DESKML_RETURN_IF_ERROR(tx.commit());
    checkpoint_.rows_done += n;
    checkpoint_.last_key = rows.keys.back();
    return Status::Ok();
  }

 private:
  static constexpr const char* kNow = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

  Result<bool> table_exists(const std::string& name) {
    DESKML_ASSIGN_OR_RETURN(auto stmt,
                            Statement::prepare(*db_,
                                               "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND "
                                               "lower(name) = lower(?)"));
    stmt.bind_text(1, name);
    features::RowBatch rows;
    DESKML_RETURN_IF_ERROR(features::sqlite::read_rows(*db_, stmt, rows));
    return rows.rows() > 0;
  }

  Status not_ours() const {
    return invalid_argument("table '" + table_ + "' exists and has no deskml score checkpoint (in " + kCheckpointTable +
                            "), so deskml score did not create it; drop it or choose another --into");
  }

  std::unique_ptr<Database> db_;
  std::string table_;
  std::string job_;
  std::string description_;
  std::string layout_;
  Checkpoint checkpoint_;
  bool resuming_ = false;
  std::optional<Statement> insert_, read_checkpoint_, update_checkpoint_;
};

}  // namespace

Result<std::unique_ptr<ResultSink>> open_sqlite_table_sink(features::SqliteSource& source, const std::string& table,
                                                           const JobSpec& job, bool fresh) {
  DESKML_ASSIGN_OR_RETURN(auto db, Database::open(source.path(), Database::Mode::kReadWrite, source.busy_timeout()));
  auto sink = std::make_unique<SqliteTableSink>(std::move(db), table, job, source.description());
  DESKML_RETURN_IF_ERROR(sink->open(job, fresh));
  return std::unique_ptr<ResultSink>(std::move(sink));
}

}  // namespace deskml::scoring
