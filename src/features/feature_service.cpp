#include "features/feature_service.hpp"

#include <unordered_map>

#include "serving/model_name.hpp"
#include "serving/model_repository.hpp"

namespace deskml::features {

namespace fs = std::filesystem;

struct FeatureService::Job {
  std::string model;
  std::string source_name;                // a [features.sources.NAME], or empty when `source` is given
  std::shared_ptr<FeatureSource> source;  // the caller's own
  std::optional<KeyedQuery> query;
  MappingConfig mapping;
  std::vector<Key> keys;
  serving::InferOptions options;
  serving::Runtime::Callback done;
};

Result<std::unique_ptr<FeatureService>> FeatureService::create(serving::Runtime& runtime,
                                                               FeatureServiceOptions options) {
  if (options.threads < 1) options.threads = 1;
  std::unique_ptr<FeatureService> s(new FeatureService(runtime, std::move(options)));
  return s;
}

FeatureService::FeatureService(serving::Runtime& runtime, FeatureServiceOptions options)
    : runtime_(runtime), options_(std::move(options)) {
  for (int i = 0; i < options_.threads; ++i) threads_.emplace_back([this] { work(); });
}

FeatureService::~FeatureService() {
  std::deque<std::shared_ptr<Job>> left;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    left.swap(queue_);
  }
  wake_.notify_all();
  for (auto& job : left) job->done(Status(StatusCode::kUnavailable, "the feature service is shutting down"));
  for (auto& t : threads_) t.join();
}

void FeatureService::infer_async(const std::string& model, const std::string& source, std::vector<Key> keys,
                                 serving::InferOptions options, serving::Runtime::Callback done) {
  auto job = std::make_shared<Job>();
  job->model = model;
  job->source_name = source;
  job->keys = std::move(keys);
  job->options = std::move(options);
  job->done = std::move(done);
  submit(std::move(job));
}

void FeatureService::infer_async(const std::string& model, std::shared_ptr<FeatureSource> source, KeyedQuery query,
                                 MappingConfig mapping, std::vector<Key> keys, serving::InferOptions options,
                                 serving::Runtime::Callback done) {
  auto job = std::make_shared<Job>();
  job->model = model;
  job->source = std::move(source);
  job->query = std::move(query);
  job->mapping = std::move(mapping);
  job->keys = std::move(keys);
  job->options = std::move(options);
  job->done = std::move(done);
  submit(std::move(job));
}

std::future<Result<serving::InferResponse>> FeatureService::infer(const std::string& model, const std::string& source,
                                                                  std::vector<Key> keys,
                                                                  serving::InferOptions options) {
  auto promise = std::make_shared<std::promise<Result<serving::InferResponse>>>();
  auto future = promise->get_future();
  infer_async(model, source, std::move(keys), std::move(options),
              [promise](Result<serving::InferResponse> r) { promise->set_value(std::move(r)); });
  return future;
}

void FeatureService::submit(std::shared_ptr<Job> job) {
  if (job->keys.empty()) return job->done(invalid_argument("a feature lookup needs at least one key"));
  if (job->keys.size() > kMaxLookupKeys) {
    return job->done(invalid_argument(std::to_string(job->keys.size()) + " keys in one request; at most " +
                                      std::to_string(kMaxLookupKeys)));
  }
  {
    std::lock_guard lock(mutex_);
    if (stopping_) {
      return job->done(Status(StatusCode::kUnavailable, "the feature service is shutting down"));
    }
    if (queue_.size() >= options_.max_queue) {
      return job->done(Status(StatusCode::kResourceExhausted,
                              "too many feature lookups waiting (" + std::to_string(options_.max_queue) + ")"));
    }
    queue_.push_back(std::move(job));
  }
  wake_.notify_one();
}

void FeatureService::work() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    run(*job);
  }
}

Result<MappingConfig> FeatureService::config_for(const std::string& model, fs::path* model_dir) {
  DESKML_RETURN_IF_ERROR(serving::validate_model_name(model));
  if (options_.repository.empty()) {
    return not_found("model '" + model + "' has no config.toml to declare feature sources (no repository)");
  }
  // A stat per request; the file is read and parsed again only when it changed.
  const uint64_t fingerprint = serving::file_fingerprint(options_.repository / model / "config.toml");
  {
    std::lock_guard lock(cache_mutex_);
    if (auto it = configs_.find(model); it != configs_.end() && it->second.fingerprint == fingerprint) {
      *model_dir = it->second.dir;
      return it->second.mapping;
    }
  }
  DESKML_ASSIGN_OR_RETURN(auto repo, serving::ModelRepository::open(options_.repository));
  DESKML_ASSIGN_OR_RETURN(auto entry, repo->find(model));
  if (!entry.config.ok()) return entry.config.status();
  MappingConfig mapping;
  if (entry.config->features) {
    DESKML_ASSIGN_OR_RETURN(mapping, MappingConfig::from_toml(*entry.config->features, entry.config->origin));
  }
  std::lock_guard lock(cache_mutex_);
  configs_[model] = CachedConfig{fingerprint, entry.dir, mapping};
  *model_dir = entry.dir;
  return mapping;
}

Result<std::shared_ptr<FeatureSource>> FeatureService::source_for(const std::string& uri) {
  std::lock_guard lock(cache_mutex_);
  if (auto it = sources_.find(uri); it != sources_.end()) return it->second;
  DESKML_ASSIGN_OR_RETURN(auto source, FeatureSource::open(uri, options_.source));
  sources_[uri] = source;
  return source;
}

void FeatureService::run(Job& job) {
  const auto fail = [&](const Status& st) { job.done(st); };
  const auto stopped = [&]() -> Status {
    if (job.options.cancel && job.options.cancel->cancelled()) return Status(StatusCode::kCancelled, "cancelled");
    if (serving::Clock::now() >= job.options.deadline) {
      return Status(StatusCode::kDeadlineExceeded, "the request's deadline passed during its feature lookup");
    }
    return Status::Ok();
  };
  if (Status st = stopped(); !st.ok()) return fail(st);

  // The source, its query and the mapping.
  std::shared_ptr<FeatureSource> source = job.source;
  std::optional<KeyedQuery> query = job.query;
  MappingConfig mapping = job.mapping;
  std::string where = "the caller's source";
  if (!source) {
    fs::path dir;
    auto config = config_for(job.model, &dir);
    if (!config.ok()) return fail(config.status());
    auto it = config->sources.find(job.source_name);
    if (it == config->sources.end()) {
      std::string known;
      for (const auto& [name, spec] : config->sources) known += (known.empty() ? "" : ", ") + name;
      return fail(not_found("model '" + job.model + "' declares no feature source '" + job.source_name + "' (" +
                            (known.empty() ? "it declares none: add [features.sources.NAME] to its config.toml"
                                           : "its sources: " + known) +
                            ")"));
    }
    std::string uri = it->second.uri;
    if (uri.rfind("sqlite:", 0) == 0 && fs::path(uri.substr(7)).is_relative()) {
      uri = "sqlite:" + (dir / uri.substr(7)).string();  // relative to the model's folder
    }
    auto opened = source_for(uri);
    if (!opened.ok()) return fail(opened.status());
    source = *opened;
    auto q = KeyedQuery::make(it->second.query, it->second.key);
    if (!q.ok()) return fail(q.status());
    query = std::move(q).value();
    mapping = *config;
    where = "source '" + job.source_name + "'";
  }

  // Each key once in the lookup; rows come back in any order.
  std::vector<Key> unique;
  std::unordered_map<std::string, size_t> wanted;
  for (const auto& k : job.keys) {
    if (wanted.emplace(key_to_string(k), unique.size()).second) unique.push_back(k);
  }
  auto rows = source->fetch_keys(*query, unique, job.options.deadline);
  if (!rows.ok()) return fail(rows.status().with_context("feature lookup in " + where));
  if (Status st = stopped(); !st.ok()) return fail(st);

  auto md = runtime_.metadata(job.model, job.options.version);
  if (!md.ok()) return fail(md.status());
  auto fm = FeatureMapping::create(md->inputs, rows->columns, query->key, mapping);
  if (!fm.ok()) return fail(fm.status());

  std::unordered_map<std::string, size_t> row_of;
  for (size_t r = 0; r < rows->rows(); ++r) {
    auto k = rows->key_at(r, fm->key_column());
    if (!k.ok()) return fail(k.status());
    if (!row_of.emplace(key_to_string(*k), r).second) {
      return fail(
          invalid_argument(where + " has several rows for key " + key_to_string(*k) + "; lookups need a unique key"));
    }
  }
  std::string missing;
  size_t n_missing = 0;
  for (const auto& k : unique) {
    if (row_of.count(key_to_string(k)) == 0 && n_missing++ < 10) {
      missing += (missing.empty() ? "" : ", ") + key_to_string(k);
    }
  }
  if (n_missing > 0) {
    return fail(not_found(where + " has no row for key" + (n_missing > 1 ? "s " : " ") + missing +
                          (n_missing > 10 ? ", ... (" + std::to_string(n_missing) + " in all)" : "")));
  }

  // The rows in the order of the request's keys.
  RowBatch ordered;
  ordered.columns = rows->columns;
  ordered.cells.reserve(job.keys.size() * rows->width());
  for (const auto& k : job.keys) {
    const size_t r = row_of.at(key_to_string(k));
    for (size_t c = 0; c < rows->width(); ++c) {
      const Cell& cell = rows->at(r, c);
      if (cell.type == CellType::kText) {
        ordered.add_text(rows->text(cell));
      } else {
        ordered.cells.push_back(cell);
      }
    }
  }
  auto inputs = fm->tensors(ordered, 0, ordered.rows());
  if (!inputs.ok()) return fail(inputs.status());
  if (Status st = stopped(); !st.ok()) return fail(st);
  runtime_.infer_async(job.model, std::move(inputs).value(), std::move(job.options), std::move(job.done));
}

}  // namespace deskml::features
