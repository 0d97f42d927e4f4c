// deskml bench MODEL: load time, latency percentiles, throughput and peak memory.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/commands.hpp"
#include "core/npy.hpp"
#include "runtime/session.hpp"

extern int g_exit_code;

namespace deskml::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchOptions {
  std::string model;
  std::vector<std::string> inputs;
  int64_t batch = 1;
  int threads = 0;
  int iters = 20;
  int warmup = 3;
  bool json = false;
};

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

// Synthesises an input from its declared type: the first symbolic dim is the
// batch, other symbolic dims default to 1 (or 128 for a second, "sequence"-like dim).
Result<Tensor> synthesize(const graph::ValueInfo& info, int64_t batch, std::mt19937& rng) {
  if (!info.type.shape) return invalid_argument("input '" + info.name + "' has no declared shape; pass --input");
  Shape shape;
  bool first = true;
  for (size_t i = 0; i < info.type.shape->size(); ++i) {
    const auto& d = (*info.type.shape)[i];
    if (d.known()) shape.push_back(d.value);
    else shape.push_back(first ? batch : (i == 1 ? 128 : 1));
    if (!d.known()) first = false;
  }
  const DataType dt = info.type.dtype;
  Tensor t(dt, shape);
  if (dt == DataType::kFloat32) {
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  } else if (dt == DataType::kInt64 || dt == DataType::kInt32) {
    std::uniform_int_distribution<int64_t> dist(0, 99);  // small ids are valid for any vocabulary
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (dt == DataType::kInt64) t.data<int64_t>()[i] = dist(rng);
      else t.data<int32_t>()[i] = static_cast<int32_t>(dist(rng));
    }
  } else {
    t = Tensor::zeros(dt, shape);
  }
  return t;
}

Status bench(const BenchOptions& opts) {
  runtime::SessionOptions so;
  so.threads = opts.threads;
  const auto load_start = Clock::now();
  DESKML_ASSIGN_OR_RETURN(auto session, runtime::Session::load(opts.model, so));
  std::vector<std::pair<std::string, Tensor>> feeds;
  for (const auto& spec : opts.inputs) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos) return invalid_argument("--input expects NAME=FILE.npy");
    DESKML_ASSIGN_OR_RETURN(Tensor t, read_npy(spec.substr(eq + 1)));
    feeds.emplace_back(spec.substr(0, eq), std::move(t));
  }
  std::mt19937 rng(42);
  const auto& g = session->model().graph;
  for (const auto& vi : session->inputs()) {
    if (g.initializers.count(vi.name)) continue;
    if (std::any_of(feeds.begin(), feeds.end(), [&](const auto& f) { return f.first == vi.name; })) continue;
    DESKML_ASSIGN_OR_RETURN(Tensor t, synthesize(vi, opts.batch, rng));
    feeds.emplace_back(vi.name, std::move(t));
  }
  // Load time is file to first result: what a user waits for before the first prediction.
  DESKML_ASSIGN_OR_RETURN(auto first, session->run(feeds));
  const double load_ms = ms_since(load_start);
  for (int i = 1; i < opts.warmup; ++i) {
    DESKML_ASSIGN_OR_RETURN(first, session->run(feeds));
  }
  std::vector<double> times;
  for (int i = 0; i < opts.iters; ++i) {
    const auto t0 = Clock::now();
    DESKML_ASSIGN_OR_RETURN(auto out, session->run(feeds));
    times.push_back(ms_since(t0));
  }
  std::sort(times.begin(), times.end());
  auto pct = [&](double p) { return times[std::min(times.size() - 1, static_cast<size_t>(p * (times.size() - 1) + 0.5))]; };
  const double median = pct(0.5), p90 = pct(0.9);
  const double items_per_s = static_cast<double>(opts.batch) * 1000.0 / median;
  if (opts.json) {
    nlohmann::json j{{"model", opts.model},       {"batch", opts.batch},   {"threads", session->threads()},
                     {"iters", opts.iters},       {"median_ms", median},   {"p90_ms", p90},
                     {"min_ms", times.front()},   {"items_per_s", items_per_s}, {"load_ms", load_ms},
                     {"peak_rss_mb", peak_rss_mb()}};
    std::cout << j.dump() << "\n";
  } else {
    std::printf("model        %s\nbatch        %lld   threads %d   iters %d\n", opts.model.c_str(),
                static_cast<long long>(opts.batch), session->threads(), opts.iters);
    std::printf("median       %.3f ms\np90          %.3f ms\nmin          %.3f ms\n", median, p90, times.front());
    std::printf("throughput   %.1f items/s\nload         %.1f ms (file to first result)\npeak RSS     %.1f MiB\n",
                items_per_s, load_ms, peak_rss_mb());
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
  cmd->callback([opts] {
    Status st = bench(*opts);
    if (!st.ok()) {
      std::cerr << "deskml bench: " << st.to_string() << "\n";
      g_exit_code = kExitFailure;
    }
  });
}

}  // namespace deskml::cli
