// Pieces shared by `deskml bench`'s two modes: timing bare runs of a session,
// and driving the serving runtime with concurrent callers (--clients).
#pragma once

#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "core/status.hpp"
#include "core/tensor.hpp"
#include "graph/graph.hpp"
#include "runtime/session.hpp"

namespace deskml::cli {

using Clock = std::chrono::steady_clock;

struct BenchOptions {
  std::string model;
  std::vector<std::string> inputs;
  int64_t batch = 1;
  int threads = 0;
  int iters = 20;
  int warmup = 3;
  bool json = false;
  bool profile = false;
  int profile_top = 15;  // slowest nodes listed with --profile
  double idle_seconds = 0;
  bool no_winograd = false;
  bool no_blocked_layout = false;
  bool plan_cache = false;
  int64_t batch_chunk = -1;
  std::string plan_cache_dir;
  // Runtime mode.
  int clients = 0;
  int64_t requests = 2000;
  bool no_batching = false;
  int64_t max_batch = 64;
  int64_t queue_delay_us = 0;
  int instances = 1;
};

inline double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}
double peak_rss_mb();
// Synthesises an input from its declared type: the first symbolic dim is the
// batch, other symbolic dims default to 1 (or 128 for a second, "sequence"-like dim).
Result<Tensor> synthesize(const graph::ValueInfo& info, int64_t batch, std::mt19937& rng);
// The inputs for timing `session`: the --input files, and synthesised tensors for
// every other input (initializer-backed inputs are left to their defaults).
Result<std::vector<std::pair<std::string, Tensor>>> bench_feeds(const runtime::Session& session,
                                                                const BenchOptions& opts);

// The value of percentile p (0..1) of sorted samples.
double percentile(const std::vector<double>& sorted, double p);

// deskml bench MODEL --clients C ... (bench_runtime.cpp).
Status bench_runtime(const BenchOptions& opts);

}  // namespace deskml::cli
