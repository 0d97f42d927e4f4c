// Bulk scoring: runs a model over every row of a query, in key order, and writes
// one output row per input row into a table or a CSV file (docs/SCORING.md).
//
//   fetch page k+2  ─►  run page k+1 on the runtime  ─►  write page k + checkpoint
//   (a thread)           (the runtime's workers)          (the calling thread)
//
// The three stages overlap, and at most four pages are held at once, so memory
// is bounded by the page size whatever the table's size. Every write commits its
// rows with the checkpoint; a rerun of the same job resumes after the last key
// written, so each row is written exactly once however often the job is stopped.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "core/status.hpp"
#include "features/feature_source.hpp"
#include "features/mapping.hpp"
#include "scoring/progress.hpp"
#include "serving/model_config.hpp"
#include "serving/runtime.hpp"

namespace deskml::scoring {

struct ScoreOptions {
  std::string model;
  std::optional<int64_t> version;  // newest when unset
  std::string query;               // a SELECT returning the key and the features
  std::string key;                 // the key column: unique, integer or text, a plain SQL name
  std::string into;                // a table in the source's database, or FILE.csv
  size_t batch = 1024;             // rows per page, per inference and per transaction
  bool fresh = false;              // discard an earlier run's output and checkpoint
  bool count_rows = true;          // count the rows first (for the progress's percentage and ETA)
  features::MappingConfig mapping;
  Progress* progress = nullptr;             // optional
  const std::atomic<bool>* stop = nullptr;  // when set, stop after the page being written
};

struct ScoreReport {
  Status status;             // Ok, or why the job stopped early (its checkpoint stays valid)
  std::string output;        // the sink's description
  std::string mapping;       // FeatureMapping::describe()
  int64_t version = 0;       // the model version used
  bool resumed = false;      // continued an earlier run's checkpoint
  bool stopped = false;      // ended early because ScoreOptions::stop was set
  int64_t rows_before = 0;   // written by earlier runs
  int64_t rows_written = 0;  // written by this run
  // Rows of a write that failed part-way (a lost connection during COMMIT):
  // the output may or may not hold them; its checkpoint says which, and a
  // rerun continues from there. 0 when no write failed.
  int64_t rows_in_doubt = 0;
  int64_t null_keys = 0;                  // rows skipped for a NULL key (when counted)
  std::optional<features::Key> last_key;  // the checkpoint's key at the end
  double seconds = 0;                     // this run, model load excluded
  double rows_per_second() const { return seconds > 0 ? static_cast<double>(rows_written) / seconds : 0; }
};

// Runs the job. The model is loaded (and kept loaded) through `runtime`.
// options.mapping is used as given: build it with mapping_from_config() from the
// model's config.toml and merge_mapping() any overrides.
ScoreReport score(serving::Runtime& runtime, features::FeatureSource& source, const ScoreOptions& options);

// The [features] table of a model's config as a MappingConfig (empty when absent).
Result<features::MappingConfig> mapping_from_config(const serving::ModelConfig& config);
// `over` wins: its inputs replace `base`'s, its fill values override.
features::MappingConfig merge_mapping(features::MappingConfig base, const features::MappingConfig& over);

}  // namespace deskml::scoring
