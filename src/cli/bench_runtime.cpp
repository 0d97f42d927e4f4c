// deskml bench MODEL --clients C: drives the serving runtime in-process with C
// concurrent callers, each submitting one request at a time, and reports
// throughput and latency percentiles. The bare session's own p50 is measured in
// the same run, so the runtime's per-request overhead can be read off.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/bench_common.hpp"
#include "core/npy.hpp"
#include "runtime/session.hpp"
#include "serving/runtime.hpp"

namespace deskml::cli {

namespace {

bool batchable(const runtime::Session& s) {
  auto dynamic_first = [](const graph::ValueInfo& vi) {
    return !vi.type.shape || (!vi.type.shape->empty() && !vi.type.shape->front().known());
  };
  return std::all_of(s.inputs().begin(), s.inputs().end(), dynamic_first) &&
         std::all_of(s.outputs().begin(), s.outputs().end(), dynamic_first);
}

}  // namespace

Status bench_runtime(const BenchOptions& opts) {
  // The bare session: its inputs, whether it can batch, and the baseline latency.
  runtime::SessionOptions so;
  so.threads = opts.threads;
  DESKML_ASSIGN_OR_RETURN(auto session, runtime::Session::load(opts.model, so));
  DESKML_ASSIGN_OR_RETURN(auto feeds, bench_feeds(*session, opts));
  const bool can_batch = batchable(*session);
  const int64_t baseline_runs = std::clamp<int64_t>(opts.requests, 20, 2000);
  std::vector<double> bare;
  for (int64_t i = 0; i < baseline_runs + 5; ++i) {
    const auto t0 = Clock::now();
    DESKML_ASSIGN_OR_RETURN(auto out, session->run(feeds));
    if (i >= 5) bare.push_back(ms_since(t0));
  }
  std::sort(bare.begin(), bare.end());
  session.reset();

  serving::RuntimeOptions ro;
  ro.threads = opts.threads;
  ro.poll_interval = std::chrono::milliseconds(0);
  ro.default_keep_alive = serving::KeepAlive::kForever;
  ro.load_pinned = false;
  DESKML_ASSIGN_OR_RETURN(auto rt, serving::Runtime::create(ro));
  serving::ModelConfig mc;
  mc.max_batch_size = (opts.no_batching || !can_batch) ? 0 : opts.max_batch;
  mc.max_queue_delay = std::chrono::microseconds(opts.queue_delay_us);
  mc.instances = opts.instances;
  mc.max_queue = static_cast<size_t>(std::max(1024, opts.clients * 4));
  if (mc.max_batch_size > 0 && opts.batch > mc.max_batch_size) {
    return invalid_argument("--batch is larger than --max-batch");
  }
  DESKML_RETURN_IF_ERROR(rt->add_model_file("bench", opts.model, mc));
  const auto load_start = Clock::now();
  DESKML_RETURN_IF_ERROR(rt->load("bench"));
  const double load_ms = ms_since(load_start);
  for (int i = 0; i < opts.warmup; ++i) {
    auto r = rt->infer_sync("bench", feeds);
    if (!r.ok()) return r.status();
  }

  // Each caller keeps one request in flight and submits its next one from the
  // previous one's completion, as an app's event loop or the server's I/O threads
  // do: callers never block a thread.
  // The callers' shared state; each completion callback captures only a pointer
  // to it and its caller's index, so the callback itself allocates nothing.
  struct Caller {
    alignas(64) Clock::time_point sent;
    int64_t left = 0;  // requests this caller still sends (its share of --requests)
    int64_t batched_rows = 0;
    std::vector<double> latencies_ms;
  };
  struct Callers {
    serving::Runtime* rt = nullptr;
    const serving::Tensors* feeds = nullptr;
    std::vector<Caller> callers;
    std::atomic<bool> stop{false};
    std::mutex mutex;
    std::condition_variable all_done;
    int active = 0;
    Status failure;

    // `now`: when the caller's previous request was answered, which is when it
    // sends the next one (one clock read serves both).
    void issue(size_t c, Clock::time_point now) {
      Caller& caller = callers[c];
      if (caller.left-- <= 0 || stop.load(std::memory_order_relaxed)) {
        std::lock_guard lock(mutex);
        if (--active == 0) all_done.notify_all();
        return;
      }
      caller.sent = now;
      rt->infer_async("bench", *feeds, {}, [this, c](Result<serving::InferResponse> r) { done(c, r); });
    }
    void done(size_t c, const Result<serving::InferResponse>& r) {
      const auto now = Clock::now();
      Caller& caller = callers[c];
      caller.latencies_ms.push_back(std::chrono::duration<double, std::milli>(now - caller.sent).count());
      if (!r.ok()) {
        {
          std::lock_guard lock(mutex);
          if (failure.ok()) failure = r.status();
        }
        stop = true;
      } else {
        caller.batched_rows += r->batch_size;
      }
      issue(c, now);
    }
  };
  Callers callers;
  callers.rt = rt.get();
  callers.feeds = &feeds;
  callers.callers.resize(static_cast<size_t>(opts.clients));
  callers.active = opts.clients;
  for (size_t c = 0; c < callers.callers.size(); ++c) {
    Caller& caller = callers.callers[c];
    caller.left = opts.requests / opts.clients + (static_cast<int64_t>(c) < opts.requests % opts.clients ? 1 : 0);
    caller.latencies_ms.reserve(static_cast<size_t>(caller.left + 1));
  }
  const auto start = Clock::now();
  for (size_t c = 0; c < callers.callers.size(); ++c) callers.issue(c, Clock::now());
  {
    std::unique_lock lock(callers.mutex);
    callers.all_done.wait(lock, [&] { return callers.active == 0; });
  }
  const double wall_ms = ms_since(start);
  std::vector<double> latencies;
  int64_t batched_rows = 0;
  for (const auto& caller : callers.callers) {
    latencies.insert(latencies.end(), caller.latencies_ms.begin(), caller.latencies_ms.end());
    batched_rows += caller.batched_rows;
  }
  DESKML_RETURN_IF_ERROR(callers.failure);
  std::sort(latencies.begin(), latencies.end());
  const double n = static_cast<double>(latencies.size());
  const double requests_per_s = n * 1000.0 / wall_ms;
  const double p50 = percentile(latencies, 0.5), p90 = percentile(latencies, 0.9), p99 = percentile(latencies, 0.99);
  const double bare_p50 = percentile(bare, 0.5);
  const double mean_batch = n > 0 ? static_cast<double>(batched_rows) / n : 0;

  if (opts.json) {
    nlohmann::json j{{"model", opts.model},
                     {"mode", "runtime"},
                     {"clients", opts.clients},
                     {"requests", latencies.size()},
                     {"batch", opts.batch},
                     {"batching", mc.max_batch_size > 0},
                     {"max_batch_size", mc.max_batch_size},
                     {"threads", rt->threads()},
                     {"requests_per_s", requests_per_s},
                     {"items_per_s", requests_per_s * static_cast<double>(opts.batch)},
                     {"p50_ms", p50},
                     {"p90_ms", p90},
                     {"p99_ms", p99},
                     {"median_ms", p50},
                     {"mean_batch_size", mean_batch},
                     {"session_p50_ms", bare_p50},
                     {"overhead_p50_us", (p50 - bare_p50) * 1000.0},
                     {"load_ms", load_ms},
                     {"peak_rss_mb", peak_rss_mb()}};
    std::cout << j.dump() << "\n";
  } else {
    std::printf("model        %s (runtime, %d clients, %zu requests)\n", opts.model.c_str(), opts.clients,
                latencies.size());
    std::printf("batching     %s (max_batch_size %lld; mean batch %.1f requests)\n",
                mc.max_batch_size > 0 ? "on" : "off", static_cast<long long>(mc.max_batch_size), mean_batch);
    std::printf("throughput   %.1f requests/s\n", requests_per_s);
    std::printf("latency      p50 %.3f ms   p90 %.3f ms   p99 %.3f ms\n", p50, p90, p99);
    std::printf("bare run     p50 %.3f ms (Session::run alone; runtime overhead at p50 %.1f us)\n", bare_p50,
                (p50 - bare_p50) * 1000.0);
    std::printf("load         %.1f ms   peak RSS %.1f MiB\n", load_ms, peak_rss_mb());
  }
  return Status::Ok();
}

}  // namespace deskml::cli
