// deskml bench MODEL: load time, latency percentiles, throughput and peak memory;
// optionally a per-op profile (--profile) and the CPU used while idle (--idle-seconds).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "cli/bench_common.hpp"
#include "cli/commands.hpp"
#include "core/npy.hpp"
#include "runtime/session.hpp"

extern int g_exit_code;

namespace deskml::cli {
namespace {

// Process CPU time (user + system, all threads) in seconds.
double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto sec = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6; };
  return sec(usage.ru_utime) + sec(usage.ru_stime);
}

// The per-op summary of the timed runs' profiles, averaged per run.
struct OpRow {
  std::string op;
  double calls = 0;  // per run
  double ms = 0;     // per run
};
struct NodeRow {
  std::string name;
  std::string op;
  double ms = 0;  // mean per run
};
struct ProfileSummary {
  std::vector<OpRow> ops;      // sorted by time, slowest first
  std::vector<NodeRow> nodes;  // the slowest main-graph nodes, at most --profile-top
  double nodes_ms = 0;         // per run: sum over main-graph nodes
  double run_ms = 0;           // per run: mean wall time of a timed run
};

// Only main-graph (depth 0) entries count: a Loop's entry already includes its body.
ProfileSummary summarize(const runtime::Profile& profile, int runs, double run_ms, size_t top) {
  ProfileSummary sum;
  sum.run_ms = run_ms;
  std::map<std::string, OpRow> by_op;
  // Node names may repeat or be empty, so nodes are told apart by position in the run.
  std::vector<NodeRow> nodes;
  size_t position = 0, per_run = 0;
  for (const auto& e : profile.entries) {
    if (e.depth != 0) continue;
    ++per_run;
  }
  per_run = runs > 0 ? per_run / static_cast<size_t>(runs) : 0;
  for (const auto& e : profile.entries) {
    if (e.depth != 0) continue;
    auto& row = by_op[e.op_type];
    row.op = e.op_type;
    row.calls += 1;
    row.ms += e.ms;
    sum.nodes_ms += e.ms;
    if (per_run > 0) {
      const size_t i = position++ % per_run;
      if (nodes.size() <= i) nodes.resize(i + 1);
      nodes[i].name = e.node_name.empty() ? "(unnamed #" + std::to_string(i) + ")" : e.node_name;
      nodes[i].op = e.op_type;
      nodes[i].ms += e.ms;
    }
  }
  const double n = std::max(1, runs);
  for (auto& [op, row] : by_op) {
    row.calls /= n;
    row.ms /= n;
    sum.ops.push_back(row);
  }
  sum.nodes_ms /= n;
  std::sort(sum.ops.begin(), sum.ops.end(), [](const OpRow& a, const OpRow& b) { return a.ms > b.ms; });
  for (auto& node : nodes) node.ms /= n;
  std::stable_sort(nodes.begin(), nodes.end(), [](const NodeRow& a, const NodeRow& b) { return a.ms > b.ms; });
  if (nodes.size() > top) nodes.resize(top);
  sum.nodes = std::move(nodes);
  return sum;
}

void print_profile(const ProfileSummary& sum) {
  auto pct = [&](double ms) { return sum.run_ms > 0 ? 100.0 * ms / sum.run_ms : 0.0; };
  int op_width = 20, name_width = 20;
  for (const auto& r : sum.ops) op_width = std::max(op_width, static_cast<int>(r.op.size()));
  for (const auto& r : sum.nodes) name_width = std::max(name_width, static_cast<int>(r.name.size()));
  std::printf("\nper-op profile (mean per run; %% of the mean run, %.3f ms; nodes account for %.1f%%)\n", sum.run_ms,
              pct(sum.nodes_ms));
  std::printf("  %-*s %10s %12s %8s\n", op_width, "op", "calls/run", "ms/run", "%");
  for (const auto& r : sum.ops) {
    std::printf("  %-*s %10.1f %12.3f %7.1f%%\n", op_width, r.op.c_str(), r.calls, r.ms, pct(r.ms));
  }
  std::printf("\nslowest %zu nodes (mean per run)\n", sum.nodes.size());
  std::printf("  %-*s %-*s %10s %8s\n", name_width, "node", op_width, "op", "ms", "%");
  for (const auto& r : sum.nodes) {
    std::printf("  %-*s %-*s %10.3f %7.1f%%\n", name_width, r.name.c_str(), op_width, r.op.c_str(), r.ms, pct(r.ms));
  }
}

nlohmann::json profile_json(const ProfileSummary& sum) {
  auto pct = [&](double ms) { return sum.run_ms > 0 ? 100.0 * ms / sum.run_ms : 0.0; };
  nlohmann::json ops = nlohmann::json::array();
  for (const auto& r : sum.ops) {
    ops.push_back({{"op", r.op}, {"calls_per_run", r.calls}, {"ms_per_run", r.ms}, {"percent", pct(r.ms)}});
  }
  return ops;
}

nlohmann::json profile_nodes_json(const ProfileSummary& sum) {
  auto pct = [&](double ms) { return sum.run_ms > 0 ? 100.0 * ms / sum.run_ms : 0.0; };
  nlohmann::json nodes = nlohmann::json::array();
  for (const auto& r : sum.nodes) {
    nodes.push_back({{"node", r.name}, {"op", r.op}, {"ms", r.ms}, {"percent", pct(r.ms)}});
  }
  return nodes;
}

Status bench(const BenchOptions& opts) {
  if (opts.clients > 0) return bench_runtime(opts);
  runtime::SessionOptions so;
  so.threads = opts.threads;
  so.winograd = !opts.no_winograd;
  so.blocked_layout = !opts.no_blocked_layout;
  so.batch_chunk = opts.batch_chunk;
  so.plan_cache = opts.plan_cache || !opts.plan_cache_dir.empty();
  so.plan_cache_dir = opts.plan_cache_dir;
  const auto load_start = Clock::now();
  DESKML_ASSIGN_OR_RETURN(auto session, runtime::Session::load(opts.model, so));
  DESKML_ASSIGN_OR_RETURN(auto feeds, bench_feeds(*session, opts));
  const auto& g = session->model().graph;
  // Load time is file to first result: what a user waits for before the first prediction.
  DESKML_ASSIGN_OR_RETURN(auto first, session->run(feeds));
  const double load_ms = ms_since(load_start);
  // Waits for a plan cache file being written, so that it does not share the CPU with the timed runs.
  const runtime::PlanCacheReport plan_cache = session->plan_cache_report();
  for (int i = 1; i < opts.warmup; ++i) {
    DESKML_ASSIGN_OR_RETURN(first, session->run(feeds));
  }
  runtime::Profile profile;
  runtime::RunOptions run_options;
  if (opts.profile) {
    profile.entries.reserve(static_cast<size_t>(opts.iters) * g.nodes.size());
    run_options.profile = &profile;
  }
  std::vector<std::pair<std::string, Value>> value_feeds;
  for (const auto& [name, t] : feeds) value_feeds.emplace_back(name, Value::from_tensor(t));
  std::vector<double> times;
  for (int i = 0; i < opts.iters; ++i) {
    const auto t0 = Clock::now();
    DESKML_ASSIGN_OR_RETURN(auto out, session->run(value_feeds, run_options));
    times.push_back(ms_since(t0));
  }
  double mean_ms = 0;
  for (double t : times) mean_ms += t / static_cast<double>(times.size());
  // Idle: the loaded session sits unused; a well-behaved library uses no CPU now.
  double idle_cpu_percent = -1;
  if (opts.idle_seconds > 0) {
    const double cpu0 = cpu_seconds();
    const auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(opts.idle_seconds));
    const double wall_s = ms_since(t0) / 1000.0;
    idle_cpu_percent = 100.0 * (cpu_seconds() - cpu0) / wall_s;
  }
  std::sort(times.begin(), times.end());
  auto pct = [&](double p) {
    return times[std::min(times.size() - 1, static_cast<size_t>(p * (times.size() - 1) + 0.5))];
  };
  const double median = pct(0.5), p90 = pct(0.9);
  const double items_per_s = static_cast<double>(opts.batch) * 1000.0 / median;
  if (opts.json) {
    nlohmann::json j{{"model", opts.model},         {"batch", opts.batch},        {"threads", session->threads()},
                     {"iters", opts.iters},         {"median_ms", median},        {"p90_ms", p90},
                     {"min_ms", times.front()},     {"items_per_s", items_per_s}, {"load_ms", load_ms},
                     {"peak_rss_mb", peak_rss_mb()}};
    j["batch_chunk"] = session->batch_chunk();
    j["plan_cache"] = plan_cache.use_name();
    if (!plan_cache.detail.empty()) j["plan_cache_detail"] = plan_cache.detail;
    if (opts.idle_seconds > 0) j["idle_cpu_percent"] = idle_cpu_percent;
    if (opts.profile) {
      const ProfileSummary sum = summarize(profile, opts.iters, mean_ms, static_cast<size_t>(opts.profile_top));
      j["profile"] = profile_json(sum);
      j["profile_top_nodes"] = profile_nodes_json(sum);
      j["profile_mean_run_ms"] = mean_ms;
    }
    std::cout << j.dump() << "\n";
  } else {
    std::printf("model        %s\nbatch        %lld   threads %d   iters %d\n", opts.model.c_str(),
                static_cast<long long>(opts.batch), session->threads(), opts.iters);
    std::printf("median       %.3f ms\np90          %.3f ms\nmin          %.3f ms\n", median, p90, times.front());
    std::printf("throughput   %.1f items/s\nload         %.1f ms (file to first result)\npeak RSS     %.1f MiB\n",
                items_per_s, load_ms, peak_rss_mb());
    if (so.plan_cache) {
      std::printf("plan cache   %s (%s)%s%s\n", plan_cache.use_name(), plan_cache.file.c_str(),
                  plan_cache.detail.empty() ? "" : ": ", plan_cache.detail.c_str());
    }
    if (opts.idle_seconds > 0) {
      std::printf("idle CPU     %.2f%% of one core (%.0f s idle after the runs, session loaded)\n", idle_cpu_percent,
                  opts.idle_seconds);
    }
    if (opts.profile) print_profile(summarize(profile, opts.iters, mean_ms, static_cast<size_t>(opts.profile_top)));
  }
  return Status::Ok();
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto opts = std::make_shared<BenchOptions>();
  auto* cmd = app.add_subcommand("bench", "Measure a model's latency, throughput, load time and peak memory");
  cmd->add_option("model", opts->model, "Path to the .onnx model")->required()->check(CLI::ExistingFile);
  cmd->add_option("--input,-i", opts->inputs, "Use NAME=FILE.npy instead of synthesised data for an input");
  cmd->add_option("--batch", opts->batch, "Batch size for the synthesised inputs' first dynamic dim")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--threads", opts->threads, "Threads (default: physical cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("--iters", opts->iters, "Timed runs")->check(CLI::Range(1, 1000000));
  cmd->add_option("--warmup", opts->warmup, "Untimed runs first (the first also measures load)")
      ->check(CLI::Range(1, 100000));
  cmd->add_flag("--json", opts->json, "Print one JSON object (median_ms, p90_ms, items_per_s, load_ms, peak_rss_mb)");
  cmd->add_flag("--profile", opts->profile,
                "Time every node during the timed runs; print per-op-type totals and the slowest nodes (--profile-top) "
                "(with --json: \"profile\" and \"profile_top_nodes\" arrays)");
  cmd->add_option("--profile-top", opts->profile_top,
                  "With --profile: how many of the slowest nodes to list (default 15)")
      ->check(CLI::Range(1, 1000000));
  cmd->add_flag("--no-winograd", opts->no_winograd,
                "Run 3x3 convolutions by the direct algorithm only (Winograd's is used where it is faster)");
  cmd->add_flag("--plan-cache", opts->plan_cache,
                "Load through the on-disk plan cache (<model>.deskml-plan): the first load writes it, later "
                "loads of the same file map it and skip parsing, optimization and weight packing");
  cmd->add_option("--plan-cache-dir", opts->plan_cache_dir,
                  "With the plan cache: keep its files in DIR (named after the model's path) instead of beside "
                  "the model; implies --plan-cache")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--batch-chunk", opts->batch_chunk,
                  "Samples per run when a batch is split (models that keep samples apart): 0 = never split; "
                  "default: sized to the CPU's last-level cache (reported as batch_chunk)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  cmd->add_flag("--no-blocked-layout", opts->no_blocked_layout,
                "Keep convolution regions that concatenate channels in NHWC (they run in oneDNN's nChw16c "
                "otherwise)");
  cmd->add_option("--idle-seconds", opts->idle_seconds,
                  "After the timed runs, sleep this long with the session loaded and report the process CPU "
                  "used meanwhile as % of one core (idle_cpu_percent); 0 = skip")
      ->check(CLI::Range(0.0, 86400.0));
  cmd->add_option("--clients", opts->clients,
                  "Drive the serving runtime in-process with this many concurrent callers instead of timing "
                  "bare runs; reports requests/s and p50/p99 latency (requests_per_s, p50_ms, p99_ms)")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--requests", opts->requests, "Requests in all with --clients (default 2000)")
      ->check(CLI::Range(1, 100000000));
  cmd->add_flag("--no-batching", opts->no_batching, "With --clients: run every request alone (max_batch_size 0)");
  cmd->add_option("--max-batch", opts->max_batch, "With --clients: the dynamic batcher's max_batch_size (default 64)")
      ->check(CLI::Range(1, 65536));
  cmd->add_option("--queue-delay-us", opts->queue_delay_us,
                  "With --clients: the batcher's max_queue_delay in microseconds (default 0: batch what is queued)")
      ->check(CLI::Range(0, 10000000));
  cmd->add_option("--instances", opts->instances, "With --clients: sessions serving the model (default 1)")
      ->check(CLI::Range(1, 64));
  cmd->callback([opts] {
    Status st = bench(*opts);
    if (!st.ok()) {
      std::cerr << "deskml bench: " << st.to_string() << "\n";
      g_exit_code = kExitFailure;
    }
  });
}

}  // namespace deskml::cli
