// Online feature lookups: an inference request that names a feature source and
// keys instead of tensors. The service finds the rows of those keys in the source
// (a [features.sources.NAME] of the model's config.toml), turns them into the
// model's inputs with the same mapping rules as deskml score (features/mapping.hpp),
// and runs the model: one output row per key, in the order the keys were given.
//
// Lookups wait on a database, so they run on the service's own threads, never the
// caller's; PostgreSQL sources share a connection pool per URI; the request's
// deadline bounds the lookup (a statement past it is cancelled) and the inference
// after it, and its cancel token is honoured before each step. docs/SCORING.md.
#pragma once

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.hpp"
#include "features/feature_source.hpp"
#include "features/mapping.hpp"
#include "serving/runtime.hpp"

namespace deskml::features {

struct FeatureServiceOptions {
  std::filesystem::path repository;  // the runtime's model repository (for config.toml)
  SourceOptions source;              // pool size and timeouts of the sources it opens
  int threads = 4;                   // lookups waiting on a database at once
  size_t max_queue = 1024;           // lookups waiting for a thread; beyond: ResourceExhausted
};

class FeatureService {
 public:
  static Result<std::unique_ptr<FeatureService>> create(serving::Runtime& runtime, FeatureServiceOptions options);
  // Answers lookups still queued with Unavailable and waits for those running.
  ~FeatureService();
  FeatureService(const FeatureService&) = delete;
  FeatureService& operator=(const FeatureService&) = delete;

  // Looks up `keys` (at most kMaxLookupKeys; repeats allowed) in the model's source
  // `source` and runs the model on their rows. `done` is called exactly once, on a
  // service or runtime thread (or the caller's, when the request is refused at once).
  // NotFound names keys without a row, or a source the model's config does not declare.
  void infer_async(const std::string& model, const std::string& source, std::vector<Key> keys,
                   serving::InferOptions options, serving::Runtime::Callback done);
  std::future<Result<serving::InferResponse>> infer(const std::string& model, const std::string& source,
                                                    std::vector<Key> keys, serving::InferOptions options = {});

  // The same with a source and query of the caller's own (no config entry needed);
  // `mapping` decides the inputs (the model's [features] table is not read).
  void infer_async(const std::string& model, std::shared_ptr<FeatureSource> source, KeyedQuery query,
                   MappingConfig mapping, std::vector<Key> keys, serving::InferOptions options,
                   serving::Runtime::Callback done);

 private:
  FeatureService(serving::Runtime& runtime, FeatureServiceOptions options);
  struct Job;
  void submit(std::shared_ptr<Job> job);
  void work();
  void run(Job& job);
  Result<std::shared_ptr<FeatureSource>> source_for(const std::string& uri);
  Result<MappingConfig> config_for(const std::string& model, std::filesystem::path* model_dir);

  serving::Runtime& runtime_;
  const FeatureServiceOptions options_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
  // Opened sources by URI, and parsed [features] tables by model (with the config's fingerprint).
  std::mutex cache_mutex_;
  std::map<std::string, std::shared_ptr<FeatureSource>> sources_;
  struct CachedConfig {
    uint64_t fingerprint = 0;
    std::filesystem::path dir;
    MappingConfig mapping;
  };
  std::map<std::string, CachedConfig> configs_;
};

}  // namespace deskml::features
