// The SQLite feature source and what every source shares: URIs, keyset pages,
// counts, lookups, cell types and errors.
#include "features/sqlite_source.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "features/feature_source.hpp"
#include "features_test_util.hpp"

namespace deskml::features {
namespace {

using testing::Sqlite;
using testing::TempDir;
namespace fs = std::filesystem;

TEST(SourceUri, ParsesAndRedacts) {
  auto s = parse_source_uri("sqlite:/tmp/x.db");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->kind, SourceKind::kSqlite);
  EXPECT_EQ(s->path, "/tmp/x.db");

  auto p =
      parse_source_uri("postgresql://scorer:s3cret@db.example:5433/features?sslmode=verify-full&sslrootcert=/ca.pem");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->kind, SourceKind::kPostgres);
  // libpq gets the URI untouched, TLS settings included; messages never show the password.
  EXPECT_EQ(p->conninfo, "postgresql://scorer:s3cret@db.example:5433/features?sslmode=verify-full&sslrootcert=/ca.pem");
  EXPECT_EQ(p->redacted, "postgresql://scorer:***@db.example:5433/features?sslmode=verify-full&sslrootcert=/ca.pem");
  EXPECT_EQ(redact_uri("postgres://h/db?user=u&password=pw&sslmode=require"),
            "postgres://h/db?user=u&password=***&sslmode=require");
  EXPECT_EQ(redact_uri("postgresql://u@h/db"), "postgresql://u@h/db");

  EXPECT_FALSE(parse_source_uri("sqlite:").ok());
  auto bare = parse_source_uri("features.db");
  ASSERT_FALSE(bare.ok());
  EXPECT_NE(bare.status().message().find("sqlite:PATH"), std::string::npos);
  EXPECT_FALSE(parse_source_uri("mysql://x/y").ok());
}

TEST(Sql, PagesWrapTheQuery) {
  EXPECT_EQ(page_sql(Dialect::kPostgres, "SELECT * FROM t", "id", true, 10),
            "SELECT * FROM (\nSELECT * FROM t\n) AS deskml_rows WHERE id > $1 ORDER BY id LIMIT 10");
  EXPECT_EQ(page_sql(Dialect::kSqlite, "SELECT * FROM t -- note", "id", false, 5),
            "SELECT * FROM (\nSELECT * FROM t -- note\n) AS deskml_rows WHERE id IS NOT NULL ORDER BY id LIMIT 5");
  EXPECT_EQ(*clean_query("  SELECT 1 ;; \n"), "SELECT 1");
  EXPECT_FALSE(clean_query(" ; ").ok());
  EXPECT_TRUE(is_plain_identifier("tumour_id"));
  EXPECT_FALSE(is_plain_identifier("id; DROP TABLE t"));
  EXPECT_FALSE(is_plain_identifier("1abc"));
  EXPECT_TRUE(check_table_name("scores.preds", Dialect::kPostgres).ok());
  EXPECT_FALSE(check_table_name("scores.preds", Dialect::kSqlite).ok());
  EXPECT_FALSE(KeyedQuery::make("SELECT 1", "\"id\"").ok());
}

class SqliteSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Sqlite db(dir_ / "f.db");
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, r REAL, i INTEGER, s TEXT, b BOOLEAN, n REAL)");
    for (int k = 1; k <= 10; ++k) {
      db.exec("INSERT INTO t VALUES (" + std::to_string(k * 10) + ", " + std::to_string(k) + ".5, " +
              std::to_string(-k) + ", 'row " + std::to_string(k) + "', " + std::to_string(k % 2) + ", " +
              (k == 4 ? "NULL" : "1.0") + ")");
    }
    auto src = FeatureSource::open("sqlite:" + (dir_ / "f.db").string());
    ASSERT_TRUE(src.ok()) << src.status().to_string();
    source_ = *src;
    query_ = *KeyedQuery::make("SELECT id, r, i, s, b, n FROM t;", "id");
  }

  TempDir dir_;
  std::shared_ptr<FeatureSource> source_;
  KeyedQuery query_;
};

TEST_F(SqliteSourceTest, CellsKeepTheirTypes) {
  auto page = source_->fetch_page(query_, std::nullopt, 100);
  ASSERT_TRUE(page.ok()) << page.status().to_string();
  ASSERT_EQ(page->rows(), 10u);
  EXPECT_EQ(page->columns, (std::vector<std::string>{"id", "r", "i", "s", "b", "n"}));
  EXPECT_EQ(page->at(0, 0).type, CellType::kInt);
  EXPECT_EQ(page->at(0, 0).i, 10);
  EXPECT_EQ(page->at(0, 1).type, CellType::kReal);
  EXPECT_DOUBLE_EQ(page->at(0, 1).d, 1.5);
  EXPECT_EQ(page->at(0, 2).i, -1);
  EXPECT_EQ(page->at(0, 3).type, CellType::kText);
  EXPECT_EQ(page->text(page->at(0, 3)), "row 1");
  EXPECT_EQ(page->at(0, 4).type, CellType::kInt);  // SQLite keeps booleans as 0/1 integers
  EXPECT_EQ(page->at(3, 5).type, CellType::kNull);
  EXPECT_EQ(page->describe(page->at(3, 5)), "NULL");
}

TEST_F(SqliteSourceTest, KeysetPagesWalkInKeyOrder) {
  std::vector<int64_t> seen;
  std::optional<Key> after;
  int pages = 0;
  for (;;) {
    auto page = source_->fetch_page(query_, after, 3);
    ASSERT_TRUE(page.ok()) << page.status().to_string();
    ++pages;
    for (size_t r = 0; r < page->rows(); ++r) seen.push_back(page->at(r, 0).i);
    if (page->rows() < 3) break;
    after = *page->key_at(page->rows() - 1, 0);
  }
  EXPECT_EQ(pages, 4);
  EXPECT_EQ(seen, (std::vector<int64_t>{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}));

  // Resuming after a key continues right after it.
  auto rest = source_->fetch_page(query_, Key(int64_t{70}), 100);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->rows(), 3u);
  EXPECT_EQ(rest->at(0, 0).i, 80);
}

TEST_F(SqliteSourceTest, CountsAndNullKeys) {
  Sqlite db(dir_ / "f.db");
  db.exec("CREATE TABLE u (k TEXT, v REAL)");
  db.exec("INSERT INTO u VALUES ('b', 1), ('a', 2), (NULL, 3), ('c', 4)");
  auto q = *KeyedQuery::make("SELECT k, v FROM u", "k");
  auto c = source_->count(q, std::nullopt);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->rows, 3);
  EXPECT_EQ(c->null_keys, 1);
  auto after_a = source_->count(q, Key(std::string("a")));
  EXPECT_EQ(after_a->rows, 2);
  // Pages never return the NULL key, and text keys come in the database's order.
  auto page = source_->fetch_page(q, std::nullopt, 10);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->rows(), 3u);
  EXPECT_EQ(std::get<std::string>(*page->key_at(0, 0)), "a");
  EXPECT_EQ(std::get<std::string>(*page->key_at(2, 0)), "c");
}

TEST_F(SqliteSourceTest, LookupsByKey) {
  auto rows = source_->fetch_keys(query_, {Key(int64_t{30}), Key(int64_t{90}), Key(int64_t{12345})});
  ASSERT_TRUE(rows.ok()) << rows.status().to_string();
  ASSERT_EQ(rows->rows(), 2u);
  std::vector<Key> many(kMaxLookupKeys + 1, Key(int64_t{1}));
  EXPECT_FALSE(source_->fetch_keys(query_, many).ok());
  EXPECT_FALSE(source_->fetch_keys(query_, {}).ok());
}

TEST_F(SqliteSourceTest, ClearErrors) {
  auto missing = FeatureSource::open("sqlite:" + (dir_ / "nope.db").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope.db"), std::string::npos);

  std::ofstream(dir_ / "junk.db") << "this is not a database, not at all, not even a little bit";
  auto junk = FeatureSource::open("sqlite:" + (dir_ / "junk.db").string());
  ASSERT_FALSE(junk.ok());

  auto bad_sql = source_->fetch_page(*KeyedQuery::make("SELECT id, nope FROM t", "id"), std::nullopt, 10);
  ASSERT_FALSE(bad_sql.ok());
  EXPECT_EQ(bad_sql.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_sql.status().message().find("no such column: nope"), std::string::npos) << bad_sql.status().message();

  // The source's connections are query-only: the query cannot change the database.
  auto write = source_->fetch_page(*KeyedQuery::make("DELETE FROM t RETURNING id", "id"), std::nullopt, 10);
  EXPECT_FALSE(write.ok());
}

// A writer killed mid-commit leaves a hot journal; the next reader must roll it
// back (a connection opened read-only cannot, and fails).
TEST_F(SqliteSourceTest, ReadsAfterAWriterDiedMidTransaction) {
  {
    Sqlite db(dir_ / "f.db");
    db.exec("CREATE TABLE big (id INTEGER PRIMARY KEY, pad TEXT)");
    db.exec(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) "
        "INSERT INTO big SELECT i, printf('%0100d', i) FROM n");
  }
  source_.reset();
  const pid_t pid = ::fork();
  if (pid == 0) {
    sqlite3* db = nullptr;
    sqlite3_open((dir_ / "f.db").c_str(), &db);
    // A tiny cache makes SQLite write changed pages into the file before the commit.
    sqlite3_exec(db, "PRAGMA cache_size = 2; BEGIN; UPDATE big SET pad = 'x'; UPDATE t SET r = -1;", nullptr, nullptr,
                 nullptr);
    ::_exit(0);  // no COMMIT, no close: as if killed
  }
  ::waitpid(pid, nullptr, 0);
  ASSERT_TRUE(fs::exists(dir_ / "f.db-journal"));
  auto src = FeatureSource::open("sqlite:" + (dir_ / "f.db").string());
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  auto page = (*src)->fetch_page(query_, std::nullopt, 100);
  ASSERT_TRUE(page.ok()) << page.status().to_string();
  EXPECT_DOUBLE_EQ(page->at(0, 1).d, 1.5);  // the dead transaction is gone
  Sqlite check(dir_ / "f.db");
  EXPECT_EQ(check.scalar("SELECT count(*) FROM big WHERE pad = 'x'"), "0");
}

// A writer holding the file's lock: a read waits for it (in short sleeps, not
// SQLite's default milliseconds) and goes on once it is released; past the busy
// timeout it fails as Unavailable.
TEST_F(SqliteSourceTest, ALockedDatabaseIsWaitedForWithinTheBusyTimeout) {
  using namespace std::chrono_literals;
  const std::string path = (dir_ / "f.db").string();
  SourceOptions options;
  options.busy_timeout = 400ms;
  auto src = FeatureSource::open("sqlite:" + path, options);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  sqlite3* writer = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &writer), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(writer, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  std::thread release([writer] {
    std::this_thread::sleep_for(50ms);
    sqlite3_exec(writer, "COMMIT", nullptr, nullptr, nullptr);
  });
  auto t0 = std::chrono::steady_clock::now();
  auto page = (*src)->fetch_page(query_, std::nullopt, 100);
  const auto waited = std::chrono::steady_clock::now() - t0;
  release.join();
  ASSERT_TRUE(page.ok()) << page.status().to_string();
  EXPECT_EQ(page->rows(), 10u);
  EXPECT_GE(waited, 40ms);

  ASSERT_EQ(sqlite3_exec(writer, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  t0 = std::chrono::steady_clock::now();
  auto locked = (*src)->fetch_page(query_, std::nullopt, 100);
  const auto gave_up = std::chrono::steady_clock::now() - t0;
  sqlite3_exec(writer, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_close(writer);
  ASSERT_FALSE(locked.ok());
  EXPECT_EQ(locked.status().code(), StatusCode::kUnavailable) << locked.status().to_string();
  EXPECT_GE(gave_up, 400ms);
}

TEST_F(SqliteSourceTest, ConcurrentReaders) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        auto page = source_->fetch_page(query_, std::nullopt, 5);
        if (page.ok() && page->rows() == 5) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 80);
}

}  // namespace
}  // namespace deskml::features
