#include "scoring/scorer.hpp"

#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

#include "scoring/sink.hpp"
#include "serving/log.hpp"

namespace deskml::scoring {

namespace {

using features::Key;
using features::RowBatch;

// Pages of a query fetched ahead, in key order, on a thread of its own.
class Prefetcher {
 public:
  Prefetcher(features::FeatureSource& source, features::KeyedQuery query, std::optional<Key> after, size_t limit,
             size_t depth)
      : source_(source), query_(std::move(query)), after_(std::move(after)), limit_(limit), depth_(depth) {
    thread_ = std::thread([this] { run(); });
  }
  ~Prefetcher() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // The next page, or nullopt after the last.
  Result<std::optional<RowBatch>> next() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !queue_.empty(); });
    Item item = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    changed_.notify_all();
    if (!item.status.ok()) return item.status;
    return std::move(item.rows);
  }

 private:
  struct Item {
    Status status;
    std::optional<RowBatch> rows;  // nullopt: the end
  };

  void push(Item item) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(item));
    }
    changed_.notify_all();
  }

  void run() {
    std::optional<size_t> key_col;
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return stop_ || queue_.size() < depth_; });
        if (stop_) return;
      }
      auto page = source_.fetch_page(query_, after_, limit_);
      if (!page.ok()) return push({page.status(), std::nullopt});
      RowBatch rows = std::move(page).value();
      const size_t n = rows.rows();
      if (n == 0) return push({});
      if (!key_col) {
        auto idx = rows.column_index(query_.key);
        if (!idx.ok()) return push({idx.status(), std::nullopt});
        key_col = *idx;
      }
      auto last = rows.key_at(n - 1, *key_col);
      if (!last.ok()) return push({last.status(), std::nullopt});
      after_ = std::move(last).value();
      push({Status::Ok(), std::move(rows)});
      if (n < limit_) return push({});  // a short page is the last
    }
  }

  features::FeatureSource& source_;
  const features::KeyedQuery query_;
  std::optional<Key> after_;
  const size_t limit_, depth_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Item> queue_;
  bool stop_ = false;
  std::thread thread_;
};

// The page's keys, checked to increase (text keys: to differ, since the
// database's collation decides their order) and to continue after `prev`.
Status collect_keys(const RowBatch& rows, size_t key_col, const std::optional<Key>& prev, std::vector<Key>& keys) {
  keys.clear();
  keys.reserve(rows.rows());
  const Key* last = prev ? &*prev : nullptr;
  for (size_t r = 0; r < rows.rows(); ++r) {
    DESKML_ASSIGN_OR_RETURN(Key k, rows.key_at(r, key_col));
    if (last) {
      if (k.index() != last->index()) {
        return invalid_argument("key column '" + rows.columns[key_col] + "' mixes integers and text (" +
                                features::key_to_string(*last) + ", then " + features::key_to_string(k) +
                                "); CAST it to one type in the query");
      }
      const bool ok = std::holds_alternative<int64_t>(k) ? std::get<int64_t>(k) > std::get<int64_t>(*last) : k != *last;
      if (!ok) {
        return invalid_argument("key column '" + rows.columns[key_col] + "' is not unique: key " +
                                features::key_to_string(k) + " comes after key " + features::key_to_string(*last) +
                                "; scoring needs a unique key (a primary key, or one made unique in the query)");
      }
    }
    keys.push_back(std::move(k));
    last = &keys.back();
  }
  return Status::Ok();
}

struct InFlight {
  std::vector<Key> keys;
  std::vector<std::future<Result<serving::InferResponse>>> chunks;
};

}  // namespace

Result<features::MappingConfig> mapping_from_config(const serving::ModelConfig& config) {
  if (!config.features) return features::MappingConfig{};
  return features::MappingConfig::from_toml(*config.features, config.origin);
}

features::MappingConfig merge_mapping(features::MappingConfig base, const features::MappingConfig& over) {
  for (const auto& [input, cols] : over.inputs) base.inputs[input] = cols;
  if (over.fill) base.fill = over.fill;
  for (const auto& [col, v] : over.column_fill) base.column_fill[col] = v;
  for (const auto& [name, s] : over.sources) base.sources[name] = s;
  return base;
}

ScoreReport score(serving::Runtime& rt, features::FeatureSource& source, const ScoreOptions& opts) {
  ScoreReport rep;
  const auto fail = [&](Status st) {
    rep.status = std::move(st);
    return rep;
  };
  if (opts.batch == 0) return fail(invalid_argument("the batch size must be at least 1"));
  auto query = features::KeyedQuery::make(opts.query, opts.key);
  if (!query.ok()) return fail(query.status());

  auto md = rt.metadata(opts.model, opts.version);
  if (!md.ok()) return fail(md.status());
  auto status = rt.model_status(opts.model, opts.version);
  if (!status.ok()) return fail(status.status());
  rep.version = status->version;

  const JobSpec job{opts.model, rep.version, query->sql, query->key};
  auto sink_or = open_sink(opts.into, source, job, opts.fresh);
  if (!sink_or.ok()) return fail(sink_or.status());
  ResultSink& sink = **sink_or;
  const Checkpoint start = sink.checkpoint();
  rep.output = sink.description();
  rep.resumed = sink.resuming();
  rep.rows_before = start.rows_done;
  rep.last_key = start.last_key;

  std::optional<int64_t> total;
  if (opts.count_rows) {
    auto count = source.count(*query, start.last_key);
    if (!count.ok()) return fail(count.status());
    total = start.rows_done + count->rows;
    if (!start.last_key) rep.null_keys = count->null_keys;
  }
  nlohmann::json started = {{"model", opts.model},  {"version", rep.version}, {"source", source.description()},
                            {"output", rep.output}, {"resumed", rep.resumed}, {"rows_before", rep.rows_before},
                            {"batch", opts.batch}};
  if (total) started["rows_to_score"] = *total - start.rows_done;
  if (start.last_key) started["after_key"] = features::key_to_string(*start.last_key);
  serving::log::event(spdlog::level::info, "score_started", started);
  if (rep.null_keys > 0) {
    serving::log::event(spdlog::level::warn, "score_null_keys",
                        {{"rows", rep.null_keys},
                         {"key", query->key},
                         {"message", "rows whose key is NULL have no place in key order and are not scored"}});
  }
  if (opts.progress) opts.progress->start(rep.rows_before, total);

  serving::InferOptions io;
  io.version = rep.version;
  io.keep_alive = serving::KeepAlive::kForever;
  io.use_cache = false;
  const size_t max_batch = md->max_batch_size > 0 ? static_cast<size_t>(md->max_batch_size) : 0;

  std::optional<features::FeatureMapping> mapping;
  std::optional<OutputLayout> layout;
  std::optional<Key> prev = start.last_key;
  std::optional<InFlight> inflight;
  const auto t0 = serving::Clock::now();

  const auto write = [&](InFlight& f) -> Status {
    std::vector<serving::Tensors> chunks;
    for (auto& c : f.chunks) {
      auto r = c.get();
      if (!r.ok()) return r.status().with_context("model '" + opts.model + "'");
      chunks.push_back(std::move(r->outputs));
    }
    ScoredRows rows;
    rows.keys = std::move(f.keys);
    DESKML_ASSIGN_OR_RETURN(rows.outputs, concat_rows(std::move(chunks)));
    const auto n = static_cast<int64_t>(rows.keys.size());
    if (!layout) {
      DESKML_ASSIGN_OR_RETURN(layout, OutputLayout::from_outputs(rows.outputs, n, features::key_kind(rows.keys[0])));
      DESKML_RETURN_IF_ERROR(sink.prepare(*layout));
    } else {
      DESKML_RETURN_IF_ERROR(layout->check(rows.outputs, n));
    }
    if (Status st = sink.write(rows); !st.ok()) {
      rep.rows_in_doubt = n;
      return st;
    }
    rep.rows_written += n;
    rep.last_key = rows.keys.back();
    if (opts.progress) opts.progress->update(rep.rows_written);
    return Status::Ok();
  };

  Status failure;
  {
    Prefetcher pages(source, *query, start.last_key, opts.batch, /*depth=*/2);
    for (;;) {
      if (opts.stop && opts.stop->load(std::memory_order_relaxed)) {
        rep.stopped = true;
        break;
      }
      auto page = pages.next();
      if (!page.ok()) {
        failure = page.status();
        break;
      }
      if (!page->has_value()) break;
      const RowBatch& rows = **page;
      if (!mapping) {
        auto m = features::FeatureMapping::create(md->inputs, rows.columns, query->key, opts.mapping);
        if (!m.ok()) {
          failure = m.status();
          break;
        }
        mapping = std::move(m).value();
        rep.mapping = mapping->describe();
        serving::log::event(spdlog::level::info, "score_mapping", {{"inputs", rep.mapping}});
      }
      InFlight next;
      failure = collect_keys(rows, mapping->key_column(), prev, next.keys);
      if (!failure.ok()) break;
      prev = next.keys.back();
      const size_t n = rows.rows();
      const size_t chunk = max_batch > 0 ? std::min(max_batch, n) : n;
      for (size_t begin = 0; begin < n && failure.ok(); begin += chunk) {
        auto inputs = mapping->tensors(rows, begin, std::min(n, begin + chunk));
        if (!inputs.ok()) {
          failure = inputs.status();
        } else {
          next.chunks.push_back(rt.infer(opts.model, std::move(inputs).value(), io));
        }
      }
      if (!failure.ok()) break;
      // Page k is written while page k+1 runs and page k+2 is fetched.
      if (inflight) {
        failure = write(*inflight);
        inflight.reset();
        if (!failure.ok()) break;
      }
      inflight = std::move(next);
    }
    // The page already run is written even when a later step failed: the
    // checkpoint gets as far as it can.
    if (inflight) {
      Status st = write(*inflight);
      if (failure.ok()) failure = st;
    }
  }
  rep.seconds = std::chrono::duration<double>(serving::Clock::now() - t0).count();
  if (opts.progress) opts.progress->finish();
  rep.status = failure;

  nlohmann::json done = {{"model", opts.model},
                         {"output", rep.output},
                         {"rows_written", rep.rows_written},
                         {"rows_total", rep.rows_before + rep.rows_written},
                         {"seconds", rep.seconds},
                         {"rows_per_s", rep.rows_per_second()}};
  if (rep.last_key) done["last_key"] = features::key_to_string(*rep.last_key);
  if (!failure.ok()) {
    done["error"] = failure.to_string();
    serving::log::event(spdlog::level::err, "score_failed", done);
  } else {
    serving::log::event(spdlog::level::info, rep.stopped ? "score_stopped" : "score_finished", done);
  }
  return rep;
}

}  // namespace deskml::scoring
