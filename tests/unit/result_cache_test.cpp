// The result cache: keys, the tensor encoding, both tiers, eviction, persistence and damage.
#include "serving/result_cache.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "serving/tensor_codec.hpp"
#include "temp_dir.hpp"

namespace deskml::serving {
namespace {

namespace fs = std::filesystem;

using test_support::TempDir;

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Runs SQL on a cache file from outside, as damage or inspection.
int64_t sql(const fs::path& file, const std::string& statement) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, statement.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  int64_t result = 0;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) result = sqlite3_column_int64(stmt, 0);
  EXPECT_EQ(rc, SQLITE_DONE) << sqlite3_errmsg(db);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return result;
}

Tensor floats(std::vector<float> v, Shape s) { return Tensor::from_vector<float>(v, std::move(s)); }

// One float tensor of n elements, all equal to value.
Tensors outputs_of(float value, size_t n = 256) { return {{"y", floats(std::vector<float>(n, value), {int64_t(n)})}}; }

CacheKey key_of(int i, std::string model = "m", int64_t version = 1) {
  return make_cache_key(model, version, {{"x", Tensor::scalar<int64_t>(i)}});
}

// Bytes an entry counts against a budget: its encoding plus its key.
size_t entry_bytes(const CacheKey& key, const Tensors& outputs) {
  return encode_tensors(outputs).size() + 4 + key.model.size() + 8 + 32;
}

::testing::AssertionResult same(const Tensors& a, const Tensors& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << a.size() << " vs " << b.size() << " tensors";
  for (size_t i = 0; i < a.size(); ++i) {
    const Tensor& x = a[i].second;
    const Tensor& y = b[i].second;
    if (a[i].first != b[i].first) return ::testing::AssertionFailure() << a[i].first << " vs " << b[i].first;
    if (x.defined() != y.defined()) return ::testing::AssertionFailure() << a[i].first << ": definedness";
    if (!x.defined()) continue;
    if (x.dtype() != y.dtype() || x.shape() != y.shape()) {
      return ::testing::AssertionFailure() << a[i].first << ": " << x.description() << " vs " << y.description();
    }
    if (x.dtype() == DataType::kString) {
      for (int64_t j = 0; j < x.numel(); ++j) {
        if (x.data<std::string>()[j] != y.data<std::string>()[j]) {
          return ::testing::AssertionFailure() << a[i].first << ": string " << j;
        }
      }
    } else if (x.nbytes() > 0 && std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) != 0) {
      return ::testing::AssertionFailure() << a[i].first << ": contents differ";
    }
  }
  return ::testing::AssertionSuccess();
}

std::unique_ptr<ResultCache> open_cache(ResultCacheOptions options) {
  auto cache = ResultCache::open(options);
  EXPECT_TRUE(cache.ok()) << cache.status().to_string();
  return cache.ok() ? std::move(cache).value() : nullptr;
}

// A mixture of every kind of tensor the cache must carry.
Tensors varied_tensors() {
  return {
      {"strings",
       Tensor::from_vector<std::string>({"", "hello", std::string("a\0b", 3), std::string(300, 'z')}, {2, 2})},
      {"scalar", Tensor::scalar<double>(-2.5)},
      {"empty", Tensor(DataType::kFloat32, {0, 3})},
      {"flags", Tensor::from_vector<bool>({true, false, true}, {3})},
      {"half", Tensor::from_vector<Float16>({Float16(1.5f), Float16(-3.0f)}, {1, 2})},
      {"ids", Tensor::from_vector<int64_t>({1, -2, 3, 1LL << 40}, {2, 1, 2})},
      {"missing", Tensor()},
  };
}

// --- keys ---------------------------------------------------------------------------

TEST(ResultCacheKey, IndependentOfInputOrder) {
  const Tensor a = floats({1, 2, 3}, {3});
  const Tensor b = Tensor::from_vector<int64_t>({7}, {1});
  const CacheKey k1 = make_cache_key("m", 1, {{"a", a}, {"b", b}});
  const CacheKey k2 = make_cache_key("m", 1, {{"b", b}, {"a", a}});
  EXPECT_EQ(k1, k2);
  EXPECT_EQ(k1.hex(), k2.hex());
  EXPECT_EQ(k1.hex().size(), 64u);
  EXPECT_EQ(k1.hex().find_first_not_of("0123456789abcdef"), std::string::npos);
  // The model and version are separate fields, not part of the digest.
  const CacheKey other = make_cache_key("n", 2, {{"a", a}, {"b", b}});
  EXPECT_EQ(other.digest, k1.digest);
  EXPECT_NE(other, k1);
}

TEST(ResultCacheKey, DiffersWhenAnyPartDiffers) {
  const Tensors base = {{"x", floats({1, 2, 3, 4}, {2, 2})}};
  const CacheKey k = make_cache_key("m", 1, base);
  const auto digest = [](const Tensors& t) { return make_cache_key("m", 1, t).digest; };
  EXPECT_NE(digest({{"z", floats({1, 2, 3, 4}, {2, 2})}}), k.digest) << "name";
  EXPECT_NE(digest({{"x", Tensor::from_vector<int32_t>({1, 2, 3, 4}, {2, 2})}}), k.digest) << "dtype";
  EXPECT_NE(digest({{"x", floats({1, 2, 3, 4}, {4})}}), k.digest) << "shape";
  EXPECT_NE(digest({{"x", floats({1, 2, 3, 4}, {4, 1})}}), k.digest) << "shape";
  EXPECT_NE(digest({{"x", floats({1, 2, 3, 5}, {2, 2})}}), k.digest) << "content";
  EXPECT_NE(digest({}), k.digest) << "no inputs";
  EXPECT_EQ(digest({{"x", floats({1, 2, 3, 4}, {2, 2})}}), k.digest) << "same again";

  // Strings: contents and the boundaries between them both count.
  const auto strings = [&](std::vector<std::string> v) {
    const Shape shape{int64_t(v.size())};
    return digest({{"s", Tensor::from_vector<std::string>(v, shape)}});
  };
  EXPECT_NE(strings({"ab", "c"}), strings({"a", "bc"}));
  EXPECT_NE(strings({"ab", "c"}), strings({"ab", "d"}));
  EXPECT_EQ(strings({"ab", "c"}), strings({"ab", "c"}));
  // Names are length-prefixed: moving bytes between a name and the next cannot collide.
  const Tensor s = Tensor::scalar<float>(1);
  EXPECT_NE(digest({{"ab", s}, {"c", s}}), digest({{"a", s}, {"bc", s}}));
}

// --- encoding -------------------------------------------------------------------------

TEST(ResultCacheCodec, RoundTripsEveryKind) {
  const Tensors tensors = varied_tensors();
  auto decoded = decode_tensors(encode_tensors(tensors));
  ASSERT_TRUE(decoded.ok()) << decoded.status().to_string();
  EXPECT_TRUE(same(*decoded, tensors));
  EXPECT_EQ((*decoded)[1].second.rank(), 0);
  EXPECT_EQ((*decoded)[2].second.numel(), 0);
  EXPECT_FALSE((*decoded)[6].second.defined());

  auto none = decode_tensors(encode_tensors({}));
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(ResultCacheCodec, RejectsEveryTruncationAndTrailingBytes) {
  const std::string bytes = encode_tensors(varied_tensors());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode_tensors(std::string_view(bytes).substr(0, n)).ok()) << n;
  }
  EXPECT_FALSE(decode_tensors(bytes + '\0').ok());
}

TEST(ResultCacheCodec, SurvivesDamage) {
  const std::string bytes = encode_tensors(varied_tensors());
  std::mt19937 rng(42);
  for (int trial = 0; trial < 3000; ++trial) {
    std::string damaged = bytes;
    const int flips = 1 + trial % 4;
    for (int f = 0; f < flips; ++f) damaged[rng() % damaged.size()] = static_cast<char>(rng());
    (void)decode_tensors(damaged);  // must not crash, hang or allocate wildly
  }
}

TEST(ResultCacheCodec, RejectsHostileHeaders) {
  const auto with_header = [](int32_t dtype, std::vector<int64_t> dims, std::string contents = {}) {
    std::string s = "DKT1";
    const auto put = [&s](const auto& v) { s.append(reinterpret_cast<const char*>(&v), sizeof v); };
    put(uint32_t{1});
    put(uint32_t{1});
    s += "x";
    put(dtype);
    put(static_cast<uint32_t>(dims.size()));
    for (int64_t d : dims) put(d);
    return s + contents;
  };
  EXPECT_TRUE(decode_tensors(with_header(1, {2}, std::string(8, '\0'))).ok());
  EXPECT_FALSE(decode_tensors(with_header(1, {1LL << 40, 1LL << 40})).ok()) << "too many elements";
  EXPECT_FALSE(decode_tensors(with_header(1, {-1})).ok()) << "negative dim";
  EXPECT_FALSE(decode_tensors(with_header(1, {1000})).ok()) << "contents missing";
  EXPECT_FALSE(decode_tensors(with_header(8, {1LL << 30})).ok()) << "strings missing";
  EXPECT_FALSE(decode_tensors(with_header(99, {1}, "xxxx")).ok()) << "unknown dtype";
  EXPECT_FALSE(decode_tensors(with_header(9, {1}, "\x02")).ok()) << "bool that is not 0 or 1";
  EXPECT_FALSE(decode_tensors(with_header(0, {1})).ok()) << "undefined tensor with dims";
  EXPECT_FALSE(decode_tensors(with_header(1, std::vector<int64_t>(65, 1), "abcd")).ok()) << "rank";
  // An empty tensor may have huge other dims; it holds nothing.
  auto empty = decode_tensors(with_header(1, {0, 1LL << 40}));
  ASSERT_TRUE(empty.ok()) << empty.status().to_string();
  EXPECT_EQ((*empty)[0].second.numel(), 0);
  std::string bad_count = encode_tensors({});
  bad_count[4] = '\x7f';
  EXPECT_FALSE(decode_tensors(bad_count).ok());
  EXPECT_FALSE(decode_tensors(std::string("DKT2\0\0\0\0", 8)).ok());
}

// --- the cache ------------------------------------------------------------------------

TEST(ResultCache, MemoryHitAndMiss) {
  auto cache = open_cache({});
  ASSERT_TRUE(cache);
  EXPECT_FALSE(cache->get(key_of(1)));
  ASSERT_TRUE(cache->put(key_of(1), outputs_of(1.0f)).ok());
  auto hit = cache->get(key_of(1));
  ASSERT_TRUE(hit);
  EXPECT_TRUE(same(*hit, outputs_of(1.0f)));
  EXPECT_FALSE(cache->get(key_of(2)));
  EXPECT_FALSE(cache->get(key_of(1, "other")));
  EXPECT_FALSE(cache->get(key_of(1, "m", 2)));

  // A hit is a copy: writing into it leaves the cache's value alone.
  hit->front().second.data<float>()[0] = 99.0f;
  EXPECT_TRUE(same(*cache->get(key_of(1)), outputs_of(1.0f)));

  const ResultCacheStats s = cache->stats();
  EXPECT_EQ(s.hits_memory, 2u);
  EXPECT_EQ(s.hits_disk, 0u);
  EXPECT_EQ(s.misses, 4u);
  EXPECT_EQ(s.inserts, 1u);
  EXPECT_EQ(s.memory_bytes_used, entry_bytes(key_of(1), outputs_of(1.0f)));
  EXPECT_EQ(s.disk_bytes_used, 0u);
}

TEST(ResultCache, NoTiersStoresNothing) {
  auto cache = open_cache({.file = {}, .memory_bytes = 0});
  ASSERT_TRUE(cache);
  ASSERT_TRUE(cache->put(key_of(1), outputs_of(1.0f)).ok());
  EXPECT_FALSE(cache->get(key_of(1)));
  EXPECT_EQ(cache->stats().inserts, 0u);
}

TEST(ResultCache, DiskHitIsPromotedToMemory) {
  TempDir dir;
  auto cache = open_cache({.file = dir / "cache.db"});
  ASSERT_TRUE(cache);
  ASSERT_TRUE(cache->put(key_of(1), outputs_of(1.0f)).ok());
  EXPECT_EQ(cache->stats().disk_bytes_used, entry_bytes(key_of(1), outputs_of(1.0f)));
  cache.reset();

  cache = open_cache({.file = dir / "cache.db"});
  ASSERT_TRUE(cache);
  EXPECT_EQ(cache->stats().memory_bytes_used, 0u);
  auto first = cache->get(key_of(1));
  auto second = cache->get(key_of(1));
  ASSERT_TRUE(first && second);
  EXPECT_TRUE(same(*first, outputs_of(1.0f)));
  EXPECT_TRUE(same(*second, outputs_of(1.0f)));
  const ResultCacheStats s = cache->stats();
  EXPECT_EQ(s.hits_disk, 1u);
  EXPECT_EQ(s.hits_memory, 1u);
  EXPECT_EQ(s.memory_bytes_used, s.disk_bytes_used);
}

TEST(ResultCache, PersistsAcrossRestarts) {
  TempDir dir;
  const Tensors outputs = varied_tensors();
  {
    auto cache = open_cache({.file = dir / "sub" / "dir" / "cache.db"});  // parents are created
    ASSERT_TRUE(cache);
    ASSERT_TRUE(cache->put(key_of(7, "model-a", 3), outputs).ok());
  }
  auto cache = open_cache({.file = dir / "sub" / "dir" / "cache.db"});
  ASSERT_TRUE(cache);
  EXPECT_EQ(cache->stats().disk_bytes_used, entry_bytes(key_of(7, "model-a", 3), outputs));
  auto hit = cache->get(key_of(7, "model-a", 3));
  ASSERT_TRUE(hit);
  EXPECT_TRUE(same(*hit, outputs));
  EXPECT_EQ(cache->stats().hits_disk, 1u);
}

TEST(ResultCache, StringScalarAndEmptyTensorsInBothTiers) {
  TempDir dir;
  const Tensors outputs = varied_tensors();
  {
    auto cache = open_cache({.file = dir / "cache.db"});
    ASSERT_TRUE(cache);
    ASSERT_TRUE(cache->put(key_of(1), outputs).ok());
    auto from_memory = cache->get(key_of(1));
    ASSERT_TRUE(from_memory);
    EXPECT_TRUE(same(*from_memory, outputs));
    EXPECT_EQ(cache->stats().hits_memory, 1u);
  }
  auto cache = open_cache({.file = dir / "cache.db", .memory_bytes = 0});
  ASSERT_TRUE(cache);
  auto from_disk = cache->get(key_of(1));
  ASSERT_TRUE(from_disk);
  EXPECT_TRUE(same(*from_disk, outputs));
  EXPECT_EQ(cache->stats().hits_disk, 1u);
}

TEST(ResultCache, MemoryEvictsLeastRecentlyUsedByBytes) {
  const size_t entry = entry_bytes(key_of(0), outputs_of(0.0f));
  auto cache = open_cache({.file = {}, .memory_bytes = 3 * entry + entry / 2});
  ASSERT_TRUE(cache);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(cache->put(key_of(i), outputs_of(float(i))).ok());
  EXPECT_EQ(cache->stats().evictions, 0u);
  ASSERT_TRUE(cache->get(key_of(0)));  // 1 is now the least recently used
  ASSERT_TRUE(cache->put(key_of(3), outputs_of(3.0f)).ok());
  EXPECT_FALSE(cache->get(key_of(1)));
  for (int i : {0, 2, 3}) {
    auto hit = cache->get(key_of(i));
    ASSERT_TRUE(hit) << i;
    EXPECT_TRUE(same(*hit, outputs_of(float(i))));
  }
  EXPECT_EQ(cache->stats().evictions, 1u);
  EXPECT_EQ(cache->stats().memory_bytes_used, 3 * entry);

  // A larger entry pushes out as many as it needs to.
  const Tensors big = outputs_of(9.0f, 512);
  ASSERT_LE(entry_bytes(key_of(9), big), 3 * entry + entry / 2);
  ASSERT_TRUE(cache->put(key_of(9), big).ok());
  EXPECT_TRUE(cache->get(key_of(9)));
  EXPECT_TRUE(cache->get(key_of(3)));  // the most recent of the old ones stays
  EXPECT_FALSE(cache->get(key_of(0)));
  EXPECT_FALSE(cache->get(key_of(2)));
  EXPECT_LE(cache->stats().memory_bytes_used, 3 * entry + entry / 2);
}

TEST(ResultCache, DiskEvictsLeastRecentlyUsedByBytes) {
  TempDir dir;
  const size_t entry = entry_bytes(key_of(0), outputs_of(0.0f));
  const ResultCacheOptions options{.file = dir / "cache.db", .memory_bytes = 0, .disk_bytes = 3 * entry + entry / 2};
  {
    auto cache = open_cache(options);
    ASSERT_TRUE(cache);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(cache->put(key_of(i), outputs_of(float(i))).ok());
    ASSERT_TRUE(cache->get(key_of(0)));  // 1 is now the least recently used
    ASSERT_TRUE(cache->put(key_of(3), outputs_of(3.0f)).ok());
    EXPECT_FALSE(cache->get(key_of(1)));
    EXPECT_EQ(cache->stats().evictions, 1u);
    EXPECT_EQ(cache->stats().disk_bytes_used, 3 * entry);
    ASSERT_TRUE(cache->get(key_of(2)));  // order now 0, 3, 2 (oldest first)
  }
  EXPECT_EQ(sql(options.file, "SELECT count(*) FROM entries"), 3);
  EXPECT_EQ(sql(options.file, "SELECT sum(size) FROM entries"), int64_t(3 * entry));
  // The order survives a restart: the next put evicts 0.
  auto cache = open_cache(options);
  ASSERT_TRUE(cache);
  EXPECT_EQ(cache->stats().disk_bytes_used, 3 * entry);
  ASSERT_TRUE(cache->put(key_of(4), outputs_of(4.0f)).ok());
  EXPECT_FALSE(cache->get(key_of(0)));
  for (int i : {2, 3, 4}) {
    auto hit = cache->get(key_of(i));
    ASSERT_TRUE(hit) << i;
    EXPECT_TRUE(same(*hit, outputs_of(float(i))));
  }
  // Replacing an entry does not count it twice.
  ASSERT_TRUE(cache->put(key_of(4), outputs_of(4.0f)).ok());
  EXPECT_EQ(cache->stats().disk_bytes_used, 3 * entry);
  cache.reset();  // the cache holds the file's lock while open
  EXPECT_EQ(sql(options.file, "SELECT sum(size) FROM entries"), int64_t(3 * entry));
}

TEST(ResultCache, MemoryHitsRefreshTheDiskOrder) {
  TempDir dir;
  const size_t entry = entry_bytes(key_of(0), outputs_of(0.0f));
  const fs::path file = dir / "cache.db";
  {
    auto cache = open_cache({.file = file, .disk_bytes = 2 * entry + entry / 2});
    ASSERT_TRUE(cache);
    ASSERT_TRUE(cache->put(key_of(0), outputs_of(0.0f)).ok());
    ASSERT_TRUE(cache->put(key_of(1), outputs_of(1.0f)).ok());
    ASSERT_TRUE(cache->get(key_of(0)));  // from memory; the file learns of it later
    EXPECT_EQ(cache->stats().hits_memory, 1u);
  }
  auto cache = open_cache({.file = file, .memory_bytes = 0, .disk_bytes = 2 * entry + entry / 2});
  ASSERT_TRUE(cache);
  ASSERT_TRUE(cache->put(key_of(2), outputs_of(2.0f)).ok());
  EXPECT_TRUE(cache->get(key_of(0)));
  EXPECT_FALSE(cache->get(key_of(1)));
  EXPECT_TRUE(cache->get(key_of(2)));
}

TEST(ResultCache, ShrunkDiskBudgetEvictsOnOpen) {
  TempDir dir;
  const size_t entry = entry_bytes(key_of(0), outputs_of(0.0f));
  const fs::path file = dir / "cache.db";
  {
    auto cache = open_cache({.file = file, .memory_bytes = 0});
    ASSERT_TRUE(cache);
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(cache->put(key_of(i), outputs_of(float(i))).ok());
  }
  auto cache = open_cache({.file = file, .memory_bytes = 0, .disk_bytes = 2 * entry});
  ASSERT_TRUE(cache);
  EXPECT_EQ(cache->stats().disk_bytes_used, 2 * entry);
  EXPECT_FALSE(cache->get(key_of(0)));
  EXPECT_FALSE(cache->get(key_of(1)));
  EXPECT_TRUE(cache->get(key_of(2)));
  EXPECT_TRUE(cache->get(key_of(3)));
}

TEST(ResultCache, OversizeEntriesSkipTiersTheyDoNotFit) {
  TempDir dir;
  const Tensors small = outputs_of(1.0f, 16);
  const Tensors medium = outputs_of(2.0f, 1024);
  const Tensors huge = outputs_of(3.0f, 8192);
  const size_t small_bytes = entry_bytes(key_of(1), small);
  const size_t medium_bytes = entry_bytes(key_of(2), medium);
  const fs::path file = dir / "cache.db";
  {
    auto cache = open_cache({.file = file, .memory_bytes = 2048, .disk_bytes = 16384});
    ASSERT_TRUE(cache);
    ASSERT_TRUE(cache->put(key_of(1), small).ok());
    ASSERT_TRUE(cache->put(key_of(2), medium).ok());  // too big for memory, fits the file
    ASSERT_TRUE(cache->put(key_of(3), huge).ok());    // too big for both
    ResultCacheStats s = cache->stats();
    EXPECT_EQ(s.inserts, 2u);
    EXPECT_EQ(s.evictions, 0u);
    EXPECT_EQ(s.memory_bytes_used, small_bytes);
    EXPECT_EQ(s.disk_bytes_used, small_bytes + medium_bytes);

    EXPECT_TRUE(cache->get(key_of(1)));
    auto medium_hit = cache->get(key_of(2));
    ASSERT_TRUE(medium_hit);
    EXPECT_TRUE(same(*medium_hit, medium));
    EXPECT_FALSE(cache->get(key_of(3)));
    s = cache->stats();
    EXPECT_EQ(s.hits_memory, 1u);
    EXPECT_EQ(s.hits_disk, 1u);  // and not promoted: it does not fit
    EXPECT_EQ(s.memory_bytes_used, small_bytes);
    EXPECT_EQ(s.misses, 1u);
  }
  EXPECT_EQ(sql(file, "SELECT count(*) FROM entries"), 2);
}

TEST(ResultCache, CorruptBlobIsAMissAndIsDeleted) {
  TempDir dir;
  const fs::path file = dir / "cache.db";
  {
    auto cache = open_cache({.file = file, .memory_bytes = 0});
    ASSERT_TRUE(cache);
    ASSERT_TRUE(cache->put(key_of(1), varied_tensors()).ok());
    ASSERT_TRUE(cache->put(key_of(2), outputs_of(2.0f)).ok());
    ASSERT_TRUE(cache->put(key_of(3), outputs_of(3.0f)).ok());
  }
  // One value truncated, one with a wild dimension.
  sql(file, "UPDATE entries SET value = substr(value, 1, length(value) - 3) WHERE rowid = 1");
  sql(file,
      "UPDATE entries SET value = x'444B5431010000000100000079010000000100000000FFFFFFFFFFFFFF7F' WHERE rowid = 2");
  auto cache = open_cache({.file = file});
  ASSERT_TRUE(cache);
  EXPECT_FALSE(cache->get(key_of(1)));
  EXPECT_FALSE(cache->get(key_of(2)));
  auto good = cache->get(key_of(3));
  ASSERT_TRUE(good);
  EXPECT_TRUE(same(*good, outputs_of(3.0f)));
  const ResultCacheStats s = cache->stats();
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.disk_bytes_used, entry_bytes(key_of(3), outputs_of(3.0f)));
  cache.reset();
  EXPECT_EQ(sql(file, "SELECT count(*) FROM entries"), 1);
}

TEST(ResultCache, FileThatIsNotADatabaseIsRebuilt) {
  TempDir dir;
  for (const std::string& garbage : {std::string("not a database"), std::string(8192, '\x5a'),
                                     std::string("SQLite format 3\0", 16) + std::string(4000, '\x01')}) {
    const fs::path file = dir / "cache.db";
    write_file(file, garbage);
    auto cache = open_cache({.file = file});
    ASSERT_TRUE(cache) << garbage.size();
    EXPECT_FALSE(cache->get(key_of(1)));
    ASSERT_TRUE(cache->put(key_of(1), outputs_of(1.0f)).ok());
    cache.reset();
    cache = open_cache({.file = file, .memory_bytes = 0});
    ASSERT_TRUE(cache);
    EXPECT_TRUE(cache->get(key_of(1)));
  }
}

TEST(ResultCache, DamageFoundWhileRunningRebuildsTheFile) {
  TempDir dir;
  const fs::path file = dir / "cache.db";
  // A value spread over many overflow pages, with a pattern to find them by.
  float marker;
  std::memcpy(&marker, "\x11\x22\x33\x44", 4);
  const Tensors big = outputs_of(marker, 16384);
  {
    auto cache = open_cache({.file = file, .memory_bytes = 0});
    ASSERT_TRUE(cache);
    ASSERT_TRUE(cache->put(key_of(1), big).ok());
    ASSERT_TRUE(cache->put(key_of(2), outputs_of(2.0f)).ok());
  }
  // Point one overflow page's next-page link past the end of the file.
  std::string bytes = read_file(file);
  const size_t page = static_cast<size_t>(sql(file, "PRAGMA page_size"));
  const auto inside_value = [&](size_t from) {
    for (size_t i = from; i < from + 64; ++i) {
      if (bytes[i] != '\x11' && bytes[i] != '\x22' && bytes[i] != '\x33' && bytes[i] != '\x44') return false;
    }
    return true;
  };
  size_t damaged = 0;
  for (size_t p = page; p + page <= bytes.size() && damaged == 0; p += page) {
    if (inside_value(p + 4) && inside_value(p + page - 64)) {
      std::memset(bytes.data() + p, 0x7f, 4);
      damaged = p;
    }
  }
  ASSERT_NE(damaged, 0u);
  write_file(file, bytes);

  auto cache = open_cache({.file = file, .memory_bytes = 0});
  ASSERT_TRUE(cache);
  EXPECT_GT(cache->stats().disk_bytes_used, 0u);  // opening does not read the damaged page
  EXPECT_FALSE(cache->get(key_of(1)));
  EXPECT_EQ(cache->stats().disk_bytes_used, 0u);
  EXPECT_FALSE(cache->get(key_of(2)));  // rebuilt empty
  ASSERT_TRUE(cache->put(key_of(3), outputs_of(3.0f)).ok());
  EXPECT_TRUE(cache->get(key_of(3)));
  cache.reset();
  EXPECT_EQ(sql(file, "SELECT count(*) FROM entries"), 1);
}

TEST(ResultCache, OtherSchemaVersionIsRebuilt) {
  TempDir dir;
  const fs::path file = dir / "cache.db";
  {
    auto cache = open_cache({.file = file});
    ASSERT_TRUE(cache);
    ASSERT_TRUE(cache->put(key_of(1), outputs_of(1.0f)).ok());
  }
  sql(file, "PRAGMA user_version = 99");
  auto cache = open_cache({.file = file});
  ASSERT_TRUE(cache);
  EXPECT_FALSE(cache->get(key_of(1)));
  EXPECT_EQ(cache->stats().disk_bytes_used, 0u);
  cache.reset();
  EXPECT_EQ(sql(file, "PRAGMA user_version"), 1);
}

TEST(ResultCache, DatabaseOfSomeoneElseIsLeftAlone) {
  TempDir dir;
  const fs::path file = dir / "notes.db";
  sql(file, "CREATE TABLE notes(text TEXT)");
  sql(file, "INSERT INTO notes VALUES ('keep me')");
  const std::string before = read_file(file);
  auto cache = ResultCache::open({.file = file});
  ASSERT_FALSE(cache.ok());
  EXPECT_NE(cache.status().message().find("did not create"), std::string::npos) << cache.status().to_string();
  EXPECT_EQ(read_file(file), before);
  EXPECT_EQ(sql(file, "SELECT count(*) FROM notes"), 1);
}

TEST(ResultCache, PathThatIsNotARegularFileIsAnError) {
  TempDir dir;
  fs::create_directory(dir / "adir");
  auto cache = ResultCache::open({.file = dir / "adir"});
  ASSERT_FALSE(cache.ok());
  EXPECT_NE(cache.status().message().find("not a regular file"), std::string::npos) << cache.status().to_string();
  EXPECT_TRUE(fs::is_directory(dir / "adir"));

  // A symlink to a damaged file is not replaced either.
  write_file(dir / "garbage", "not a database");
  fs::create_symlink(dir / "garbage", dir / "link.db");
  cache = ResultCache::open({.file = dir / "link.db"});
  ASSERT_FALSE(cache.ok());
  EXPECT_TRUE(fs::is_symlink(dir / "link.db"));
  EXPECT_EQ(read_file(dir / "garbage"), "not a database");
}

TEST(ResultCache, FileInUseIsUnavailable) {
  TempDir dir;
  const fs::path file = dir / "cache.db";
  auto first = open_cache({.file = file});
  ASSERT_TRUE(first);
  ASSERT_TRUE(first->put(key_of(1), outputs_of(1.0f)).ok());
  auto second = ResultCache::open({.file = file});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable) << second.status().to_string();
  // The first is unharmed, and the file opens once it is closed.
  EXPECT_TRUE(first->get(key_of(1)));
  first.reset();
  auto third = open_cache({.file = file});
  ASSERT_TRUE(third);
  EXPECT_TRUE(third->get(key_of(1)));
}

TEST(ResultCache, EraseModel) {
  TempDir dir;
  const fs::path file = dir / "cache.db";
  const size_t entry = entry_bytes(key_of(0, "m"), outputs_of(0.0f));
  auto cache = open_cache({.file = file});
  ASSERT_TRUE(cache);
  ASSERT_TRUE(cache->put(key_of(0, "m", 1), outputs_of(0.0f)).ok());
  ASSERT_TRUE(cache->put(key_of(1, "m", 1), outputs_of(1.0f)).ok());
  ASSERT_TRUE(cache->put(key_of(0, "m", 2), outputs_of(2.0f)).ok());
  ASSERT_TRUE(cache->put(key_of(0, "n", 1), outputs_of(3.0f)).ok());
  // A model whose name begins with another's is a different model.
  ASSERT_TRUE(cache->put(key_of(0, "mm", 1), outputs_of(4.0f)).ok());

  ASSERT_TRUE(cache->erase_model("m", 1).ok());
  EXPECT_FALSE(cache->get(key_of(0, "m", 1)));
  EXPECT_FALSE(cache->get(key_of(1, "m", 1)));
  EXPECT_TRUE(cache->get(key_of(0, "m", 2)));
  EXPECT_TRUE(cache->get(key_of(0, "n", 1)));
  EXPECT_EQ(cache->stats().disk_bytes_used, 2 * entry + entry_bytes(key_of(0, "mm"), outputs_of(4.0f)));

  ASSERT_TRUE(cache->erase_model("m").ok());
  EXPECT_FALSE(cache->get(key_of(0, "m", 2)));
  EXPECT_TRUE(cache->get(key_of(0, "mm", 1)));
  ASSERT_TRUE(cache->erase_model("absent").ok());
  const ResultCacheStats s = cache->stats();
  EXPECT_EQ(s.memory_bytes_used, s.disk_bytes_used);
  cache.reset();

  // Gone from the file too.
  cache = open_cache({.file = file, .memory_bytes = 0});
  ASSERT_TRUE(cache);
  EXPECT_FALSE(cache->get(key_of(0, "m", 1)));
  EXPECT_FALSE(cache->get(key_of(0, "m", 2)));
  EXPECT_TRUE(cache->get(key_of(0, "n", 1)));
  EXPECT_TRUE(cache->get(key_of(0, "mm", 1)));
  cache.reset();
  EXPECT_EQ(sql(file, "SELECT count(*) FROM entries"), 2);
}

TEST(ResultCache, ConcurrentGetAndPut) {
  TempDir dir;
  const size_t entry = entry_bytes(key_of(0), outputs_of(0.0f, 64));
  // Both tiers hold fewer entries than there are keys, so threads evict each other's.
  auto cache = open_cache({.file = dir / "cache.db", .memory_bytes = 8 * entry, .disk_bytes = 24 * entry});
  ASSERT_TRUE(cache);
  constexpr int kThreads = 8;
  constexpr int kKeys = 48;
  std::vector<CacheKey> keys;
  for (int i = 0; i < kKeys; ++i) keys.push_back(key_of(i));

  std::atomic<int> wrong{0}, failed_puts{0}, hits{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int op = 0; op < 600; ++op) {
        const int i = static_cast<int>(rng() % kKeys);
        if (rng() % 3 == 0) {
          if (!cache->put(keys[i], outputs_of(float(i), 64)).ok()) ++failed_puts;
        } else if (auto hit = cache->get(keys[i])) {
          ++hits;
          if (!same(*hit, outputs_of(float(i), 64))) ++wrong;
        }
        if (op % 200 == 199 && t == 0) (void)cache->erase_model("m", 2);  // touches nothing, takes the locks
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(failed_puts.load(), 0);
  const ResultCacheStats s = cache->stats();
  EXPECT_EQ(s.hits_memory + s.hits_disk, uint64_t(hits.load()));
  EXPECT_GT(s.hits_disk, 0u);
  EXPECT_GT(s.evictions, 0u);
  EXPECT_LE(s.memory_bytes_used, 8 * entry);
  EXPECT_LE(s.disk_bytes_used, 24 * entry);
  cache.reset();
  EXPECT_EQ(sql(dir / "cache.db", "SELECT coalesce(sum(size), 0) FROM entries"), int64_t(s.disk_bytes_used));
}

}  // namespace
}  // namespace deskml::serving
