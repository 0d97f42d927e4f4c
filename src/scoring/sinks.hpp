// The three kinds of ResultSink (scoring/sink.hpp); open_sink() picks one.
#pragma once

#include <memory>
#include <string>

#include "features/pg_source.hpp"
#include "features/sqlite_source.hpp"
#include "scoring/sink.hpp"

namespace deskml::scoring {

// The name of the table holding checkpoints, one row per output table.
inline constexpr const char* kCheckpointTable = "deskml_score_checkpoints";

Result<std::unique_ptr<ResultSink>> open_csv_sink(const std::string& path, const JobSpec& job, bool fresh);
Result<std::unique_ptr<ResultSink>> open_sqlite_table_sink(features::SqliteSource& source, const std::string& table,
                                                           const JobSpec& job, bool fresh);
Result<std::unique_ptr<ResultSink>> open_pg_table_sink(features::PgSource& source, const std::string& table,
                                                       const JobSpec& job, bool fresh);

// "the output 'x' was written by another job (...): ..." for a mismatched resume.
Status job_mismatch(const std::string& output, const std::string& difference);

}  // namespace deskml::scoring
