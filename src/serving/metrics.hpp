// Per-model counters and histograms in a prometheus-cpp registry, which the
// server exposes at /metrics. Metric names are documented in docs/SERVING.md.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace deskml::serving {

class Metrics {
 public:
  struct Model {
    prometheus::Counter* requests;  // accepted requests
    prometheus::Counter* successes;
    prometheus::Counter* cache_hits;
    prometheus::Counter* cache_misses;
    prometheus::Counter* loads;
    prometheus::Counter* unloads;
    prometheus::Histogram* queue_seconds;
    prometheus::Histogram* compute_seconds;
    prometheus::Histogram* batch_size;
    prometheus::Histogram* load_seconds;
    prometheus::Gauge* resident_bytes;
    prometheus::Gauge* queue_depth;
  };

  Metrics();
  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }
  // The model's metrics, created on first use. The pointers stay valid for the
  // Metrics' lifetime.
  const Model& model(const std::string& name);
  // Counts a failed request under deskml_request_failures_total{model, reason}.
  void failure(const std::string& model, std::string_view reason);
  // Observes many latencies (in seconds) at once in a histogram made with the
  // latency buckets (queue_seconds, compute_seconds): one update per bucket.
  static void observe_latencies(prometheus::Histogram& histogram, const std::vector<double>& seconds);
  // Prometheus text exposition format.
  std::string text() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Counter>* successes_;
  prometheus::Family<prometheus::Counter>* failures_;
  prometheus::Family<prometheus::Counter>* cache_hits_;
  prometheus::Family<prometheus::Counter>* cache_misses_;
  prometheus::Family<prometheus::Counter>* loads_;
  prometheus::Family<prometheus::Counter>* unloads_;
  prometheus::Family<prometheus::Histogram>* queue_;
  prometheus::Family<prometheus::Histogram>* compute_;
  prometheus::Family<prometheus::Histogram>* batch_;
  prometheus::Family<prometheus::Histogram>* load_;
  prometheus::Family<prometheus::Gauge>* resident_;
  prometheus::Family<prometheus::Gauge>* queue_depth_;
  std::mutex mutex_;
  std::map<std::string, Model, std::less<>> models_;
};

}  // namespace deskml::serving
