// Where deskml score writes: a table in the source's database, or a CSV file.
// Every write appends one batch of rows and moves the job's checkpoint (last key
// written, rows written) atomically, so after a crash or kill the job resumes
// right after the last row written and each row ends up written exactly once.
//
//  - Tables: rows and checkpoint commit in one transaction; the checkpoint is a
//    row of deskml_score_checkpoints keyed by the output table's name. Each write
//    first reads the checkpoint (locking it) and compares it with what this job
//    believes: a batch whose commit was lost with the connection is recognised
//    and not written twice, and two jobs writing one table are refused.
//  - CSV files: rows are appended and fsync'd, then FILE.checkpoint (JSON: byte
//    offset, last key, rows) is replaced atomically (write, fsync, rename). On
//    resume the CSV is truncated back to the checkpoint's offset, dropping rows
//    appended after the last checkpoint.
//
// An output that exists without a checkpoint was not written by deskml score
// and is never touched. docs/SCORING.md.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.hpp"
#include "features/feature_source.hpp"
#include "scoring/output_layout.hpp"

namespace deskml::scoring {

// What a job has written so far.
struct Checkpoint {
  std::optional<features::Key> last_key;  // nullopt: no rows yet
  int64_t rows_done = 0;
};

// What identifies a job. Resuming with a different model, version, query or key
// is refused (the rows already written would not match the rest).
struct JobSpec {
  std::string model;
  int64_t version = 0;
  std::string query;
  std::string key;

  // Canonical JSON, stored with the checkpoint.
  std::string to_json() const;
  // Empty when `stored` (a to_json() text) describes the same job, else what differs.
  std::string difference(const std::string& stored) const;
};

class ResultSink {
 public:
  virtual ~ResultSink() = default;

  // "table preds in sqlite:features.db", "preds.csv".
  virtual const std::string& description() const = 0;
  // Where the job stands (read when the sink opened).
  virtual const Checkpoint& checkpoint() const = 0;
  // True when an earlier run's checkpoint was found (and matched this job).
  virtual bool resuming() const = 0;

  // Called once, before the first write: a new job creates the output (table or
  // file) and its checkpoint; a resumed one checks the layout matches the one it
  // started with.
  virtual Status prepare(const OutputLayout& layout) = 0;
  // Appends `rows` (keys after the checkpoint's, increasing) and moves the
  // checkpoint to the last of them, atomically.
  virtual Status write(const ScoredRows& rows) = 0;
};

// True when `into` names a CSV file (ends in .csv, any case); otherwise it names a table.
bool is_csv_target(std::string_view into);

// Opens the output named by `into`: a CSV file, or a table in `source`'s database
// (a plain name; SCHEMA.NAME on PostgreSQL). `fresh` discards an earlier run's
// output and checkpoint (only one deskml score wrote) and starts over.
Result<std::unique_ptr<ResultSink>> open_sink(std::string_view into, features::FeatureSource& source,
                                              const JobSpec& job, bool fresh);

}  // namespace deskml::scoring
