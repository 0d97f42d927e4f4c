#include "serving/result_cache.hpp"

#include <openssl/evp.h>
#include <sqlite3.h>

#include <algorithm>
#include <cstring>
#include <list>
#include <mutex>
#include <numeric>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/hex.hpp"
#include "serving/tensor_codec.hpp"

namespace deskml::serving {
namespace {

namespace fs = std::filesystem;

// Starts every key digest, so a change to the key's encoding can be made to change all keys.
constexpr char kKeyDomain[] = "deskml result cache key v1";

// PRAGMA application_id marks a file as this cache's ('DKRC'); user_version is its schema.
constexpr int64_t kApplicationId = 0x444B5243;
constexpr int64_t kSchemaVersion = 1;
constexpr int kBusyTimeoutMs = 1000;
// Memory hits waiting to refresh last_access on disk; beyond this, newer ones are dropped.
constexpr size_t kMaxPendingTouches = 4096;

constexpr const char* kSchema = R"sql(
CREATE TABLE entries(
  model TEXT NOT NULL,
  version INTEGER NOT NULL,
  digest BLOB NOT NULL,
  size INTEGER NOT NULL,
  last_access INTEGER NOT NULL,
  value BLOB NOT NULL);
CREATE UNIQUE INDEX entries_by_key ON entries(model, version, digest);
CREATE INDEX entries_by_access ON entries(last_access);
PRAGMA application_id = 1145786947;
PRAGMA user_version = 1;
)sql";
static_assert(kApplicationId == 1145786947 && kSchemaVersion == 1, "keep kSchema's pragmas in step");

// The memory tier's key: every field of CacheKey, as bytes.
std::string entry_key(const CacheKey& key) {
  std::string out;
  const auto length = static_cast<uint32_t>(key.model.size());
  out.reserve(sizeof length + key.model.size() + sizeof key.version + key.digest.size());
  out.append(reinterpret_cast<const char*>(&length), sizeof length);
  out += key.model;
  out.append(reinterpret_cast<const char*>(&key.version), sizeof key.version);
  out.append(reinterpret_cast<const char*>(key.digest.data()), key.digest.size());
  return out;
}

// A memory hit not yet written to the file's last_access.
struct Touch {
  CacheKey key;
  uint64_t tick = 0;
};

bool is_corruption(int rc) {
  const int primary = rc & 0xff;
  return primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB;
}

bool is_busy(int rc) {
  const int primary = rc & 0xff;
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

// A prepared statement, kept for reuse.
class Statement {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  int prepare(sqlite3* db, const char* sql) {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
  }
  void finalize() {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
  }
  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

// Resets a statement when leaving scope, so it never holds a read transaction open.
class Use {
 public:
  explicit Use(const Statement& s) : stmt_(s.get()) {}
  ~Use() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;
  sqlite3_stmt* operator*() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_;
};

// Binds ?1 model, ?2 version, ?3 digest.
void bind_key(sqlite3_stmt* s, const CacheKey& key) {
  sqlite3_bind_text(s, 1, key.model.data(), static_cast<int>(key.model.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(s, 2, key.version);
  sqlite3_bind_blob(s, 3, key.digest.data(), static_cast<int>(key.digest.size()), SQLITE_TRANSIENT);
}

std::string path_string(const fs::path& p) {
  const std::u8string u8 = p.u8string();
  return std::string(u8.begin(), u8.end());
}

}  // namespace

std::string CacheKey::hex() const { return to_hex(digest.data(), digest.size()); }

CacheKey make_cache_key(std::string_view model, int64_t version, const Tensors& inputs) {
  CacheKey key;
  key.model = std::string(model);
  key.version = version;

  std::vector<size_t> order(inputs.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return inputs[a].first < inputs[b].first; });

  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1;
  const ByteSink sink = [&](const void* data, size_t size) {
    if (ok && size > 0) ok = EVP_DigestUpdate(ctx.get(), data, size) == 1;
  };
  sink(kKeyDomain, sizeof kKeyDomain);
  const auto count = static_cast<uint64_t>(inputs.size());
  sink(&count, sizeof count);
  for (size_t i : order) write_named_tensor(inputs[i].first, inputs[i].second, sink);
  unsigned int length = 0;
  ok = ok && EVP_DigestFinal_ex(ctx.get(), key.digest.data(), &length) == 1 && length == key.digest.size();
  if (!ok) throw_status(internal_error("result cache: SHA-256 failed"));
  return key;
}

// ---------------------------------------------------------------------------
// Memory tier: encoded entries in LRU order, most recent first.

class ResultCache::MemoryTier {
 public:
  using Blob = std::shared_ptr<const std::string>;

  MemoryTier(size_t budget, bool track_touches) : budget_(budget), track_touches_(track_touches) {}

  size_t budget() const { return budget_; }
  size_t bytes_used() const { return used_.load(std::memory_order_relaxed); }
  uint64_t evictions() const { return evictions_.load(std::memory_order_relaxed); }

  Blob get(const std::string& ekey, const CacheKey& key, uint64_t now) {
    std::lock_guard lock(mu_);
    auto it = index_.find(ekey);
    if (it == index_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    if (track_touches_) {
      auto touch = touched_.find(ekey);
      if (touch != touched_.end()) {
        touch->second.tick = now;
      } else if (touched_.size() < kMaxPendingTouches) {
        touched_.emplace(ekey, Touch{key, now});
      }
    }
    return it->second->blob;
  }

  // The caller has checked that bytes <= budget().
  void put(const std::string& ekey, const CacheKey& key, Blob blob, size_t bytes) {
    std::lock_guard lock(mu_);
    remove_locked(ekey);
    lru_.push_front(Entry{ekey, key.model, key.version, std::move(blob), bytes});
    index_.emplace(lru_.front().ekey, lru_.begin());
    size_t used = used_.load(std::memory_order_relaxed) + bytes;
    uint64_t evicted = 0;
    while (used > budget_ && lru_.size() > 1) {
      Entry& victim = lru_.back();
      used -= victim.bytes;
      index_.erase(victim.ekey);
      lru_.pop_back();
      ++evicted;
    }
    used_.store(used, std::memory_order_relaxed);
    evictions_.fetch_add(evicted, std::memory_order_relaxed);
  }

  void erase(const std::string& ekey) {
    std::lock_guard lock(mu_);
    remove_locked(ekey);
  }

  void erase_model(std::string_view model, std::optional<int64_t> version) {
    std::lock_guard lock(mu_);
    const auto matches = [&](std::string_view m, int64_t v) { return m == model && (!version || v == *version); };
    for (auto it = lru_.begin(); it != lru_.end();) {
      auto next = std::next(it);
      if (matches(it->model, it->version)) remove_locked(it->ekey);
      it = next;
    }
    std::erase_if(touched_, [&](const auto& kv) { return matches(kv.second.key.model, kv.second.key.version); });
  }

  std::vector<Touch> take_touches() {
    std::vector<Touch> out;
    std::lock_guard lock(mu_);
    out.reserve(touched_.size());
    for (auto& [ekey, touch] : touched_) out.push_back(std::move(touch));
    touched_.clear();
    return out;
  }

 private:
  struct Entry {
    std::string ekey;
    std::string model;
    int64_t version;
    Blob blob;
    size_t bytes;
  };

  void remove_locked(const std::string& ekey) {
    auto it = index_.find(ekey);
    if (it == index_.end()) return;
    used_.fetch_sub(it->second->bytes, std::memory_order_relaxed);
    auto node = it->second;
    index_.erase(it);
    lru_.erase(node);
  }

  const size_t budget_;
  const bool track_touches_;  // a disk tier exists whose LRU order memory hits should refresh
  std::mutex mu_;
  std::list<Entry> lru_;
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index_;  // views of Entry::ekey
  std::unordered_map<std::string, Touch> touched_;
  std::atomic<size_t> used_{0};
  std::atomic<uint64_t> evictions_{0};
};

// ---------------------------------------------------------------------------
// Disk tier: one SQLite connection, guarded by mu_, holding the file's lock for
// as long as it is open (locking_mode=EXCLUSIVE), so the running byte total is
// never changed behind its back.

class ResultCache::DiskTier {
 public:
  DiskTier(fs::path file, size_t budget) : file_(std::move(file)), budget_(budget) {}
  ~DiskTier() { close(); }

  static Result<std::unique_ptr<DiskTier>> open(const fs::path& file, size_t budget) {
    auto tier = std::make_unique<DiskTier>(file, budget);
    std::lock_guard lock(tier->mu_);
    DESKML_RETURN_IF_ERROR(tier->check_path());
    DESKML_RETURN_IF_ERROR(tier->connect_or_rebuild());
    // The budget may have shrunk since the file was written.
    if (tier->total_ > budget) {
      Status status =
          tier->in_transaction([&](size_t& total, uint64_t& evicted) { return tier->evict(total, evicted); });
      if (!status.ok()) return status;
    }
    return tier;
  }

  size_t budget() const { return budget_; }
  size_t max_blob() const { return max_blob_.load(std::memory_order_relaxed); }
  uint64_t last_tick() const { return last_tick_; }
  size_t bytes_used() const { return used_.load(std::memory_order_relaxed); }
  uint64_t evictions() const { return evictions_.load(std::memory_order_relaxed); }

  // The stored value, after moving the row to the most recent end of the LRU order.
  std::optional<std::string> get(const CacheKey& key, uint64_t now) {
    std::lock_guard lock(mu_);
    if (db_ == nullptr) return std::nullopt;
    std::optional<std::string> value;
    int rc;
    {
      Use s(select_);
      bind_key(*s, key);
      rc = sqlite3_step(*s);
      if (rc == SQLITE_ROW) {
        const void* data = sqlite3_column_blob(*s, 0);
        const int size = sqlite3_column_bytes(*s, 0);
        value.emplace(static_cast<const char*>(data), static_cast<size_t>(size));
        rc = SQLITE_DONE;
      }
    }
    if (rc == SQLITE_DONE && value) {
      Use s(touch_);
      bind_key(*s, key);
      sqlite3_bind_int64(*s, 4, static_cast<int64_t>(now));
      rc = sqlite3_step(*s);
    }
    if (rc != SQLITE_DONE) {
      recover_locked(rc);
      return std::nullopt;
    }
    return value;
  }

  void erase(const CacheKey& key) {
    std::lock_guard lock(mu_);
    if (db_ == nullptr) return;
    size_t total = total_;
    int rc = delete_key(key, total);
    if (rc == SQLITE_DONE) {
      set_total(total);
    } else {
      recover_locked(rc);
    }
  }

  // Inserts or replaces one entry, writes pending last-access refreshes, and
  // evicts the least recently used rows until the total fits the budget.
  Status put(const CacheKey& key, std::string_view blob, size_t bytes, uint64_t now,
             const std::vector<Touch>& touches) {
    std::lock_guard lock(mu_);
    if (db_ == nullptr) return unavailable_status();
    return in_transaction([&](size_t& total, uint64_t& evicted) -> int {
      int rc = write_touches(touches);
      if (rc != SQLITE_DONE) return rc;
      rc = delete_key(key, total);
      if (rc != SQLITE_DONE) return rc;
      {
        Use s(insert_);
        bind_key(*s, key);
        sqlite3_bind_int64(*s, 4, static_cast<int64_t>(bytes));
        sqlite3_bind_int64(*s, 5, static_cast<int64_t>(now));
        sqlite3_bind_blob64(*s, 6, blob.data(), blob.size(), SQLITE_STATIC);
        rc = sqlite3_step(*s);
        if (rc != SQLITE_DONE) return rc;
      }
      total += bytes;
      return evict(total, evicted);
    });
  }

  Status flush_touches(const std::vector<Touch>& touches) {
    if (touches.empty()) return Status::Ok();
    std::lock_guard lock(mu_);
    if (db_ == nullptr) return unavailable_status();
    return in_transaction([&](size_t&, uint64_t&) { return write_touches(touches); });
  }

  Status erase_model(std::string_view model, std::optional<int64_t> version) {
    std::lock_guard lock(mu_);
    if (db_ == nullptr) return unavailable_status();
    return in_transaction([&](size_t& total, uint64_t&) {
      Use s(erase_model_);
      sqlite3_bind_text(*s, 1, model.data(), static_cast<int>(model.size()), SQLITE_TRANSIENT);
      if (version) sqlite3_bind_int64(*s, 2, *version);  // unbound is NULL: every version
      int rc;
      while ((rc = sqlite3_step(*s)) == SQLITE_ROW) total -= static_cast<size_t>(sqlite3_column_int64(*s, 0));
      return rc;
    });
  }

 private:
  Status unavailable_status() const {
    return Status(StatusCode::kUnavailable, "result cache file '" + path_string(file_) + "' could not be reopened");
  }

  Status sql_error(int rc, const std::string& what) const {
    std::string message = "result cache file '" + path_string(file_) + "': " + what + ": ";
    message += db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    if (is_busy(rc)) {
      return Status(StatusCode::kUnavailable, message + " (is another process using this cache file?)");
    }
    return io_error(message);
  }

  void set_total(size_t total) {
    total_ = total;
    used_.store(total, std::memory_order_relaxed);
  }

  // Runs body(total, evicted) inside BEGIN IMMEDIATE .. COMMIT; body returns an
  // SQLite result code, SQLITE_DONE or SQLITE_OK for success. Totals are kept only
  // when the transaction commits.
  template <typename Body>
  Status in_transaction(Body&& body) {
    size_t total = total_;
    uint64_t evicted = 0;
    int rc = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) {
      rc = body(total, evicted);
      if (rc == SQLITE_DONE || rc == SQLITE_OK) rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    }
    if (rc != SQLITE_OK) {
      Status status = sql_error(rc, "write failed");
      if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      recover_locked(rc);
      return status;
    }
    set_total(total);
    evictions_.fetch_add(evicted, std::memory_order_relaxed);
    return Status::Ok();
  }

  int write_touches(const std::vector<Touch>& touches) {
    for (const Touch& t : touches) {
      Use s(touch_);
      bind_key(*s, t.key);
      sqlite3_bind_int64(*s, 4, static_cast<int64_t>(t.tick));
      const int rc = sqlite3_step(*s);
      if (rc != SQLITE_DONE) return rc;
    }
    return SQLITE_DONE;
  }

  // Deletes one row, if present, subtracting its size from total.
  int delete_key(const CacheKey& key, size_t& total) {
    Use s(delete_);
    bind_key(*s, key);
    int rc;
    while ((rc = sqlite3_step(*s)) == SQLITE_ROW) total -= static_cast<size_t>(sqlite3_column_int64(*s, 0));
    return rc;
  }

  // Deletes the least recently used rows until total <= budget_.
  int evict(size_t& total, uint64_t& evicted) {
    while (total > budget_) {
      std::vector<std::pair<int64_t, int64_t>> victims;  // rowid, size
      {
        Use s(oldest_);
        int rc;
        while ((rc = sqlite3_step(*s)) == SQLITE_ROW) {
          victims.emplace_back(sqlite3_column_int64(*s, 0), sqlite3_column_int64(*s, 1));
        }
        if (rc != SQLITE_DONE) return rc;
      }
      if (victims.empty()) {
        total = 0;  // the running total had drifted from the rows; nothing is left
        break;
      }
      for (const auto& [rowid, size] : victims) {
        if (total <= budget_) break;
        Use s(delete_row_);
        sqlite3_bind_int64(*s, 1, rowid);
        const int rc = sqlite3_step(*s);
        if (rc != SQLITE_DONE) return rc;
        total -= std::min(total, static_cast<size_t>(size));
        ++evicted;
      }
    }
    return SQLITE_DONE;
  }

  // After a failed statement: a damaged file is rebuilt empty. Other errors leave it be.
  void recover_locked(int rc) {
    if (!is_corruption(rc)) return;
    close();
    if (!rebuild().ok()) close();
  }

  Status check_path() const {
    std::error_code ec;
    const fs::file_status link = fs::symlink_status(file_, ec);
    if (fs::exists(link)) {
      const fs::file_status target = fs::status(file_, ec);
      if (!fs::is_regular_file(target)) {
        return invalid_argument("result cache file '" + path_string(file_) + "' exists and is not a regular file");
      }
      return Status::Ok();
    }
    const fs::path parent = file_.parent_path();
    if (!parent.empty() && !fs::exists(parent, ec)) {
      fs::create_directories(parent, ec);
      if (ec)
        return io_error("cannot create the directory for result cache file '" + path_string(file_) +
                        "': " + ec.message());
    }
    return Status::Ok();
  }

  Status connect_or_rebuild() {
    bool rebuildable = false;
    Status status = connect(rebuildable);
    if (status.ok() || !rebuildable) {
      if (!status.ok()) close();
      return status;
    }
    close();
    return rebuild();
  }

  // Deletes the file and its WAL, then creates it afresh. Only regular files are deleted.
  Status rebuild() {
    std::error_code ec;
    if (!fs::is_regular_file(fs::symlink_status(file_, ec))) {
      return invalid_argument("result cache file '" + path_string(file_) +
                              "' is damaged and is not a regular file; not replacing it");
    }
    for (const char* suffix : {"-wal", "-shm", "-journal", ""}) {
      fs::path p = file_;
      p += suffix;
      const fs::file_status st = fs::symlink_status(p, ec);
      if (!fs::exists(st)) continue;
      if (!fs::is_regular_file(st)) {
        return invalid_argument("'" + path_string(p) + "' is not a regular file; not replacing the result cache");
      }
      if (!fs::remove(p, ec) && ec) {
        return io_error("cannot remove damaged result cache file '" + path_string(p) + "': " + ec.message());
      }
    }
    bool rebuildable = false;
    Status status = connect(rebuildable);
    if (!status.ok()) close();
    return status;
  }

  // Opens the file, takes its lock, creates or checks the schema and prepares the
  // statements. On failure, rebuildable says whether a fresh file would help.
  Status connect(bool& rebuildable) {
    rebuildable = false;
    const std::string path = path_string(file_);
    int rc =
        sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) return sql_error(rc, "cannot open");
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);

    const auto fail = [&](int code, const char* what) {
      rebuildable = is_corruption(code);
      return sql_error(code, what);
    };
    // Identify the file before writing anything to it: reading is where a file that
    // is not a database at all surfaces, and someone else's database is left as it
    // was. In exclusive locking mode the first read takes a shared lock and the
    // first write an exclusive one; both are kept until close.
    rc = sqlite3_exec(db_, "PRAGMA locking_mode=EXCLUSIVE", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return fail(rc, "cannot open");
    int64_t application_id = 0, user_version = 0, objects = 0;
    if ((rc = query_int("PRAGMA application_id", application_id)) != SQLITE_OK ||
        (rc = query_int("PRAGMA user_version", user_version)) != SQLITE_OK ||
        (rc = query_int("SELECT count(*) FROM sqlite_master", objects)) != SQLITE_OK) {
      return fail(rc, "cannot read the schema");
    }
    const bool fresh = application_id == 0 && user_version == 0 && objects == 0;
    if (!fresh && application_id != kApplicationId) {
      return invalid_argument("result cache file '" + path +
                              "' is a SQLite database that the result cache did not create; not replacing it");
    }
    if (!fresh && user_version != kSchemaVersion) {
      rebuildable = true;
      return invalid_argument("result cache file '" + path + "' has schema version " + std::to_string(user_version));
    }
    for (const char* sql : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "BEGIN IMMEDIATE"}) {
      rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
      if (rc != SQLITE_OK) return fail(rc, "cannot open");
    }
    if (fresh && (rc = sqlite3_exec(db_, kSchema, nullptr, nullptr, nullptr)) != SQLITE_OK) {
      return fail(rc, "cannot create the schema");
    }
    rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return fail(rc, "cannot open");

    const std::pair<Statement*, const char*> statements[] = {
        {&select_, "SELECT value FROM entries WHERE model = ?1 AND version = ?2 AND digest = ?3"},
        {&touch_, "UPDATE entries SET last_access = ?4 WHERE model = ?1 AND version = ?2 AND digest = ?3"},
        {&delete_, "DELETE FROM entries WHERE model = ?1 AND version = ?2 AND digest = ?3 RETURNING size"},
        {&insert_,
         "INSERT INTO entries(model, version, digest, size, last_access, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"},
        {&oldest_, "SELECT rowid, size FROM entries ORDER BY last_access LIMIT 64"},
        {&delete_row_, "DELETE FROM entries WHERE rowid = ?1"},
        {&erase_model_, "DELETE FROM entries WHERE model = ?1 AND (?2 IS NULL OR version = ?2) RETURNING size"},
    };
    for (const auto& [stmt, sql] : statements) {
      rc = stmt->prepare(db_, sql);
      if (rc != SQLITE_OK) {
        // Our application_id and schema version, but not our tables: damaged.
        rebuildable = true;
        return sql_error(rc, "unexpected schema");
      }
    }
    int64_t total = 0, tick = 0;
    if ((rc = query_int("SELECT coalesce(sum(size), 0) FROM entries", total)) != SQLITE_OK ||
        (rc = query_int("SELECT coalesce(max(last_access), 0) FROM entries", tick)) != SQLITE_OK) {
      return fail(rc, "cannot read the entries");
    }
    set_total(static_cast<size_t>(std::max<int64_t>(total, 0)));
    last_tick_ = static_cast<uint64_t>(std::max<int64_t>(tick, 0));
    // Leave room for the row's other columns under SQLite's length limit.
    max_blob_ = static_cast<size_t>(std::max(sqlite3_limit(db_, SQLITE_LIMIT_LENGTH, -1) - 4096, 0));
    return Status::Ok();
  }

  int query_int(const char* sql, int64_t& out) {
    Statement stmt;
    int rc = stmt.prepare(db_, sql);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_ROW) {
      out = sqlite3_column_int64(stmt.get(), 0);
      return SQLITE_OK;
    }
    return rc == SQLITE_DONE ? SQLITE_ERROR : rc;
  }

  void close() {
    for (Statement* s : {&select_, &touch_, &delete_, &insert_, &oldest_, &delete_row_, &erase_model_}) s->finalize();
    if (db_ != nullptr) sqlite3_close_v2(db_);
    db_ = nullptr;
  }

  const fs::path file_;
  const size_t budget_;
  std::mutex mu_;
  sqlite3* db_ = nullptr;
  Statement select_, touch_, delete_, insert_, oldest_, delete_row_, erase_model_;
  size_t total_ = 0;                 // sum of the rows' size column, kept as rows come and go
  std::atomic<size_t> max_blob_{0};  // read without the lock
  uint64_t last_tick_ = 0;
  std::atomic<size_t> used_{0};  // total_, readable without the lock
  std::atomic<uint64_t> evictions_{0};
};

// ---------------------------------------------------------------------------

ResultCache::ResultCache() = default;

ResultCache::~ResultCache() {
  // Memory hits since the last put refresh the file's LRU order for the next run.
  if (memory_ && disk_) (void)disk_->flush_touches(memory_->take_touches());
}

Result<std::unique_ptr<ResultCache>> ResultCache::open(const ResultCacheOptions& options) {
  std::unique_ptr<ResultCache> cache(new ResultCache());
  if (!options.file.empty() && options.disk_bytes > 0) {
    DESKML_ASSIGN_OR_RETURN(cache->disk_, DiskTier::open(options.file, options.disk_bytes));
    cache->clock_.store(cache->disk_->last_tick());
  }
  if (options.memory_bytes > 0)
    cache->memory_ = std::make_unique<MemoryTier>(options.memory_bytes, cache->disk_ != nullptr);
  return cache;
}

std::optional<Tensors> ResultCache::get(const CacheKey& key) {
  if (!memory_ && !disk_) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  const std::string ekey = entry_key(key);
  if (memory_) {
    if (auto blob = memory_->get(ekey, key, tick())) {
      auto tensors = decode_tensors(*blob);
      if (tensors.ok()) {
        hits_memory_.fetch_add(1, std::memory_order_relaxed);
        return std::move(tensors).value();
      }
      memory_->erase(ekey);
    }
  }
  if (disk_) {
    if (auto blob = disk_->get(key, tick())) {
      auto tensors = decode_tensors(*blob);
      if (tensors.ok()) {
        const size_t bytes = blob->size() + ekey.size();
        if (memory_ && bytes <= memory_->budget()) {
          memory_->put(ekey, key, std::make_shared<const std::string>(std::move(*blob)), bytes);
        }
        hits_disk_.fetch_add(1, std::memory_order_relaxed);
        return std::move(tensors).value();
      }
      disk_->erase(key);
    }
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  return std::nullopt;
}

Status ResultCache::put(const CacheKey& key, const Tensors& outputs) {
  if (!memory_ && !disk_) return Status::Ok();
  const std::string ekey = entry_key(key);
  auto blob = std::make_shared<const std::string>(encode_tensors(outputs));
  const size_t bytes = blob->size() + ekey.size();
  const uint64_t now = tick();
  bool stored = false;
  if (memory_ && bytes <= memory_->budget()) {
    memory_->put(ekey, key, blob, bytes);
    stored = true;
  }
  Status status;
  if (disk_ && bytes <= disk_->budget() && blob->size() <= disk_->max_blob()) {
    status = disk_->put(key, *blob, bytes, now, memory_ ? memory_->take_touches() : std::vector<Touch>{});
    stored = stored || status.ok();
  }
  if (stored) inserts_.fetch_add(1, std::memory_order_relaxed);
  return status;
}

Status ResultCache::erase_model(std::string_view model, std::optional<int64_t> version) {
  if (memory_) memory_->erase_model(model, version);
  if (disk_) return disk_->erase_model(model, version);
  return Status::Ok();
}

ResultCacheStats ResultCache::stats() const {
  ResultCacheStats s;
  s.hits_memory = hits_memory_.load(std::memory_order_relaxed);
  s.hits_disk = hits_disk_.load(std::memory_order_relaxed);
  s.misses = misses_.load(std::memory_order_relaxed);
  s.inserts = inserts_.load(std::memory_order_relaxed);
  if (memory_) {
    s.evictions += memory_->evictions();
    s.memory_bytes_used = memory_->bytes_used();
  }
  if (disk_) {
    s.evictions += disk_->evictions();
    s.disk_bytes_used = disk_->bytes_used();
  }
  return s;
}

}  // namespace deskml::serving
