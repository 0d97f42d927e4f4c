// The result cache: outputs of earlier requests, keyed by model, version and a
// SHA-256 digest of the inputs. Opt-in per model. Two tiers: an in-memory LRU
// bounded by bytes in front of a SQLite file bounded by bytes (LRU by last
// access) that survives restarts. See docs/RESULT_CACHE.md.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.hpp"
#include "serving/tensors.hpp"

namespace deskml::serving {

struct CacheKey {
  std::string model;
  int64_t version = 0;
  std::array<uint8_t, 32> digest{};  // SHA-256 over the canonical encoding of the inputs

  // The digest as 64 lower-case hex digits.
  std::string hex() const;
  bool operator==(const CacheKey&) const = default;
};

// Hashes each input's name, dtype, shape and contents, in order of name (ties keep
// their given order), so the same inputs fed in a different order give the same
// key. Contents are compared as bytes: 0.0 and -0.0, or two NaN payloads, differ.
CacheKey make_cache_key(std::string_view model, int64_t version, const Tensors& inputs);

struct ResultCacheOptions {
  std::filesystem::path file;              // empty: memory tier only
  size_t memory_bytes = size_t{64} << 20;  // 0 disables the memory tier
  size_t disk_bytes = size_t{1} << 30;     // 0 disables the disk tier
};

struct ResultCacheStats {
  uint64_t hits_memory = 0;
  uint64_t hits_disk = 0;
  uint64_t misses = 0;
  uint64_t inserts = 0;    // puts stored in at least one tier
  uint64_t evictions = 0;  // entries dropped to stay within a budget, both tiers
  size_t memory_bytes_used = 0;
  size_t disk_bytes_used = 0;
};

// Thread-safe: get, put, erase_model and stats may be called from any thread.
class ResultCache {
 public:
  // Opens (or creates) options.file. A file the cache cannot use is rebuilt when it
  // is a regular file that holds no SQLite database, a damaged one, or one written
  // by the cache with another schema version. A SQLite database written by anyone
  // else, a directory, a symlink that would need rebuilding, or a file held open by
  // another ResultCache (in any process) is an error, and is left alone.
  static Result<std::unique_ptr<ResultCache>> open(const ResultCacheOptions& options);
  ~ResultCache();
  ResultCache(const ResultCache&) = delete;
  ResultCache& operator=(const ResultCache&) = delete;

  // The outputs stored for key, as tensors of their own. A disk hit is copied into
  // the memory tier; a hit refreshes the entry's place in the LRU order. A stored
  // value that no longer decodes is deleted and reported as a miss.
  std::optional<Tensors> get(const CacheKey& key);
  // Stores outputs under key in each tier whose budget can hold the entry, evicting
  // least recently used entries as needed. An error means the disk tier failed.
  Status put(const CacheKey& key, const Tensors& outputs);
  // Drops every entry of a model, or of one version of it (after its file changed).
  Status erase_model(std::string_view model, std::optional<int64_t> version = std::nullopt);
  ResultCacheStats stats() const;

 private:
  class MemoryTier;
  class DiskTier;
  ResultCache();
  uint64_t tick() { return clock_.fetch_add(1, std::memory_order_relaxed) + 1; }

  std::unique_ptr<MemoryTier> memory_;
  std::unique_ptr<DiskTier> disk_;
  std::atomic<uint64_t> clock_{0};  // logical time for last access, continued from the file
  std::atomic<uint64_t> hits_memory_{0}, hits_disk_{0}, misses_{0}, inserts_{0};
};

}  // namespace deskml::serving
