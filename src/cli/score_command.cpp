// deskml score --models DIR --model NAME[:VERSION] --source URI --query SQL --key COL
//              --into TABLE|FILE.csv [--batch N] [--fresh] [--map ...] [--fill ...]
// Bulk scoring from a database (docs/SCORING.md): every row of the query, in key
// order, through the model, into a table of the same database or a CSV file,
// resumable from its checkpoint. A JSON summary goes to stdout; logs and the
// progress bar to stderr.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/bench_common.hpp"
#include "cli/commands.hpp"
#include "features/feature_source.hpp"
#include "scoring/scorer.hpp"
#include "serving/model_repository.hpp"
#include "serving/runtime.hpp"

extern int g_exit_code;

namespace deskml::cli {
namespace {

struct ScoreCliOptions {
  std::string models;
  std::string model;
  std::string source;
  std::string query;
  std::string key;
  std::string into;
  size_t batch = 1024;
  bool fresh = false;
  std::vector<std::string> maps;
  std::vector<std::string> fills;
  int threads = 0;
  double reconnect_seconds = 30;
  bool no_count = false;
  std::string progress = "auto";
};

std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};

void on_signal(int sig) {
  g_signal.store(sig);
  g_stop.store(true);
}

// NAME or NAME:VERSION.
Status parse_model_spec(const std::string& spec, std::string& name, std::optional<int64_t>& version) {
  const size_t colon = spec.rfind(':');
  name = spec.substr(0, colon);
  if (colon == std::string::npos) return Status::Ok();
  const std::string v = spec.substr(colon + 1);
  int64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || n < 1) {
    return invalid_argument("--model expects NAME or NAME:VERSION (a positive integer), got '" + spec + "'");
  }
  version = n;
  return Status::Ok();
}

int exit_code_for(const Status& st) { return st.code() == StatusCode::kUnavailable ? kExitUnavailable : kExitFailure; }

int score(const ScoreCliOptions& cli) {
  scoring::ScoreOptions opts;
  Status st = parse_model_spec(cli.model, opts.model, opts.version);
  if (!st.ok()) {
    std::cerr << "deskml score: " << st.to_string() << "\n";
    return kExitUsage;
  }
  opts.query = cli.query;
  opts.key = cli.key;
  opts.into = cli.into;
  opts.batch = cli.batch;
  opts.fresh = cli.fresh;
  opts.count_rows = !cli.no_count;

  const auto report_error = [](const Status& s) {
    std::cerr << "deskml score: " << s.to_string() << "\n";
    return exit_code_for(s);
  };

  // The mapping: the model's config.toml [features], then --map and --fill over it.
  auto repo = serving::ModelRepository::open(cli.models);
  if (!repo.ok()) return report_error(repo.status());
  auto entry = (*repo)->find(opts.model);
  if (!entry.ok()) return report_error(entry.status());
  if (!entry->config.ok()) return report_error(entry->config.status());
  auto base = scoring::mapping_from_config(*entry->config);
  if (!base.ok()) return report_error(base.status());
  features::MappingConfig over;
  for (const auto& m : cli.maps) {
    if (Status s = over.add_map_spec(m); !s.ok()) return report_error(s);
  }
  for (const auto& f : cli.fills) {
    if (Status s = over.add_fill_spec(f); !s.ok()) return report_error(s);
  }
  opts.mapping = scoring::merge_mapping(std::move(base).value(), over);

  features::SourceOptions so;
  so.pool_size = 3;  // the page reader, the writer, and one spare for counting
  so.reconnect_timeout = std::chrono::milliseconds(static_cast<int64_t>(cli.reconnect_seconds * 1000));
  auto source = features::FeatureSource::open(cli.source, so);
  if (!source.ok()) return report_error(source.status());

  serving::RuntimeOptions ro;
  ro.repository = cli.models;
  ro.threads = cli.threads;
  ro.poll_interval = std::chrono::milliseconds(0);  // the job's version stays fixed
  ro.load_pinned = false;
  auto runtime = serving::Runtime::create(ro);
  if (!runtime.ok()) return report_error(runtime.status());

  const bool terminal = ::isatty(STDERR_FILENO) == 1;
  std::optional<scoring::Progress> progress;
  if (cli.progress == "bar" || (cli.progress == "auto" && terminal)) {
    progress.emplace(true);
  } else if (cli.progress == "log" || cli.progress == "auto") {
    progress.emplace(false);
  }
  opts.progress = progress ? &*progress : nullptr;

  // SIGINT / SIGTERM: finish the page being written, keep the checkpoint, exit.
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  opts.stop = &g_stop;

  scoring::ScoreReport rep = scoring::score(**runtime, **source, opts);

  nlohmann::json summary = {{"model", opts.model},
                            {"version", rep.version},
                            {"output", rep.output},
                            {"resumed", rep.resumed},
                            {"rows_before", rep.rows_before},
                            {"rows_written", rep.rows_written},
                            {"rows_total", rep.rows_before + rep.rows_written},
                            {"seconds", rep.seconds},
                            {"rows_per_s", rep.rows_per_second()},
                            {"peak_rss_mb", peak_rss_mb()},
                            {"complete", rep.status.ok() && !rep.stopped}};
  summary["last_key"] = rep.last_key ? nlohmann::json(features::key_to_string(*rep.last_key)) : nlohmann::json();
  if (rep.null_keys > 0) summary["null_keys_skipped"] = rep.null_keys;
  if (rep.rows_in_doubt > 0) summary["rows_in_doubt"] = rep.rows_in_doubt;
  if (!rep.status.ok()) summary["error"] = rep.status.to_string();
  std::cout << summary.dump() << std::endl;

  if (!rep.status.ok()) {
    std::cerr << "deskml score: " << rep.status.to_string() << "\n";
    const int64_t total = rep.rows_before + rep.rows_written;
    if (!rep.output.empty() && total > 0) {
      std::cerr << "deskml score: " << total << " rows are written to " << rep.output;
      if (rep.last_key) std::cerr << " (checkpoint after key " << features::key_to_string(*rep.last_key) << ")";
      std::cerr << "; run the same command again to continue from there\n";
    }
    if (rep.rows_in_doubt > 0) {
      std::cerr << "deskml score: the write of the next " << rep.rows_in_doubt
                << " rows failed part-way and may have landed; the output's checkpoint says which, and the rerun "
                   "continues from it\n";
    }
    return exit_code_for(rep.status);
  }
  if (rep.stopped) {
    std::cerr << "deskml score: stopped; " << rep.rows_before + rep.rows_written
              << " rows are written; run the same command again to continue\n";
    return 128 + g_signal.load();
  }
  return kExitOk;
}

}  // namespace

void add_score_command(CLI::App& app) {
  auto opts = std::make_shared<ScoreCliOptions>();
  auto* cmd = app.add_subcommand(
      "score",
      "Score every row of a database query with a model, in key order, into a table of the same database or a CSV "
      "file. Resumable: each batch commits its results with a checkpoint, and rerunning the same command continues "
      "after the last key written, so every row is written exactly once. Prints a JSON summary on stdout. Exit "
      "status: 0 done, 1 failed, 2 bad usage, 3 the database went away (rerun to resume), 128+N stopped by signal "
      "N. docs/SCORING.md");
  cmd->add_option("--models", opts->models, "The model repository folder (DIR/<name>/<version>/model.onnx)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--model", opts->model, "NAME or NAME:VERSION (default: the newest version)")->required();
  cmd->add_option("--source", opts->source,
                  "Where the features are: sqlite:PATH, or a postgresql:// (postgres://) connection URI; libpq "
                  "parameters such as sslmode, sslrootcert, sslcert and host=/socket/dir pass through")
      ->required();
  cmd->add_option("--query", opts->query,
                  "A SELECT returning the key column and the features (no ORDER BY or LIMIT: deskml pages through "
                  "it in key order)")
      ->required();
  cmd->add_option("--key", opts->key,
                  "The key column: unique, not NULL, integer or text, a plain SQL name (alias it in the query "
                  "otherwise); indexed, for speed")
      ->required();
  cmd->add_option("--into", opts->into,
                  "TABLE (in the source database, created with columns key, <output>_<i>, ...) or FILE.csv (with a "
                  "FILE.csv.checkpoint beside it)")
      ->required();
  cmd->add_option("--batch", opts->batch, "Rows per page, per inference and per transaction (default 1024)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_flag("--fresh", opts->fresh,
                "Discard the results and checkpoint of an earlier run of this output and start over (outputs "
                "deskml score did not write are never touched)");
  cmd->add_option("--map", opts->maps,
                  "INPUT=COLUMN[,COLUMN...] or INPUT=*: the columns feeding a model input, in order (repeatable; "
                  "overrides [features.inputs] in the model's config.toml). Default: a column named after each "
                  "input, and every other column for the one input left, as an [N, F] tensor");
  cmd->add_option("--fill", opts->fills,
                  "VALUE or COLUMN=VALUE: what a NULL becomes, in every column or in one (repeatable; overrides "
                  "[features] fill and fill_values). Default: a NULL is an error naming the row's key");
  cmd->add_option("--threads", opts->threads, "Inference thread budget (default: physical cores)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--reconnect-seconds", opts->reconnect_seconds,
                  "How long to keep reconnecting, with exponential backoff, when PostgreSQL goes away (default 30); "
                  "then exit with status 3, the checkpoint intact")
      ->check(CLI::Range(0.0, 86400.0));
  cmd->add_flag("--no-count", opts->no_count,
                "Skip counting the rows first (a full scan of the query); progress then shows no percentage or ETA");
  cmd->add_option("--progress", opts->progress,
                  "auto (a bar when stderr is a terminal, else a JSON log line every 5 s), bar, log or off")
      ->check(CLI::IsMember({"auto", "bar", "log", "off"}));
  cmd->callback([opts] { g_exit_code = score(*opts); });
}

}  // namespace deskml::cli
