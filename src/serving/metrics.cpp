#include "serving/metrics.hpp"

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <sstream>

namespace deskml::serving {

namespace {

const prometheus::Histogram::BucketBoundaries& latency_buckets() {
  static const prometheus::Histogram::BucketBoundaries b = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                            0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};
  return b;
}

const prometheus::Histogram::BucketBoundaries& batch_buckets() {
  static const prometheus::Histogram::BucketBoundaries b = {1, 2, 4, 8, 16, 32, 64, 128, 256};
  return b;
}

const prometheus::Histogram::BucketBoundaries& load_buckets() {
  static const prometheus::Histogram::BucketBoundaries b = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  return b;
}

}  // namespace

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  using namespace prometheus;
  requests_ = &BuildCounter().Name("deskml_requests_total").Help("Inference requests accepted").Register(*registry_);
  successes_ = &BuildCounter()
                    .Name("deskml_request_successes_total")
                    .Help("Requests answered with a result")
                    .Register(*registry_);
  failures_ = &BuildCounter()
                   .Name("deskml_request_failures_total")
                   .Help("Requests that failed, by reason (a status code name)")
                   .Register(*registry_);
  cache_hits_ = &BuildCounter()
                     .Name("deskml_cache_hits_total")
                     .Help("Requests served from the result cache")
                     .Register(*registry_);
  cache_misses_ = &BuildCounter()
                       .Name("deskml_cache_misses_total")
                       .Help("Requests that looked in the result cache and ran the model")
                       .Register(*registry_);
  loads_ = &BuildCounter().Name("deskml_model_loads_total").Help("Model versions loaded").Register(*registry_);
  unloads_ = &BuildCounter().Name("deskml_model_unloads_total").Help("Model versions unloaded").Register(*registry_);
  queue_ = &BuildHistogram()
                .Name("deskml_queue_seconds")
                .Help("Time from submit to the start of the request's batch")
                .Register(*registry_);
  compute_ =
      &BuildHistogram().Name("deskml_compute_seconds").Help("Time of each batch's model run").Register(*registry_);
  batch_ = &BuildHistogram().Name("deskml_batch_size").Help("Requests per executed batch").Register(*registry_);
  load_ = &BuildHistogram()
               .Name("deskml_load_seconds")
               .Help("Time to load a model version, warm-up included")
               .Register(*registry_);
  resident_ = &BuildGauge()
                   .Name("deskml_model_resident_bytes")
                   .Help("Estimated memory held by the model's loaded versions")
                   .Register(*registry_);
  queue_depth_ =
      &BuildGauge().Name("deskml_queue_depth").Help("Requests waiting in the model's queues").Register(*registry_);
}

const Metrics::Model& Metrics::model(const std::string& name) {
  std::lock_guard lock(mutex_);
  auto it = models_.find(name);
  if (it != models_.end()) return it->second;
  const prometheus::Labels labels{{"model", name}};
  Model m{};
  m.requests = &requests_->Add(labels);
  m.successes = &successes_->Add(labels);
  m.cache_hits = &cache_hits_->Add(labels);
  m.cache_misses = &cache_misses_->Add(labels);
  m.loads = &loads_->Add(labels);
  m.unloads = &unloads_->Add(labels);
  m.queue_seconds = &queue_->Add(labels, latency_buckets());
  m.compute_seconds = &compute_->Add(labels, latency_buckets());
  m.batch_size = &batch_->Add(labels, batch_buckets());
  m.load_seconds = &load_->Add(labels, load_buckets());
  m.resident_bytes = &resident_->Add(labels);
  m.queue_depth = &queue_depth_->Add(labels);
  return models_.emplace(name, m).first->second;
}

void Metrics::failure(const std::string& model, std::string_view reason) {
  failures_->Add({{"model", model}, {"reason", std::string(reason)}}).Increment();
}

void Metrics::observe_latencies(prometheus::Histogram& histogram, const std::vector<double>& seconds) {
  if (seconds.empty()) return;
  const auto& bounds = latency_buckets();
  std::vector<double> increments(bounds.size() + 1, 0.0);
  double sum = 0;
  for (double v : seconds) {
    // The first bucket whose upper bound holds v, as Histogram::Observe picks it.
    increments[static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), v) - bounds.begin())] += 1;
    sum += v;
  }
  histogram.ObserveMultiple(increments, sum);
}

std::string Metrics::text() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace deskml::serving
