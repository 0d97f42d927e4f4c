// Feature sources and deskml score against a real PostgreSQL server. The suite
// starts its own server: initdb and pg_ctl from Debian's postgresql package on a
// temporary folder, as the unprivileged user `nobody` when the tests run as root
// (initdb refuses root), listening only on a Unix socket in that folder. The
// server also listens on a free loopback port with TLS on (a throwaway
// self-signed certificate made with the openssl tool), for the TLS tests. The
// server is stopped and the folder removed at the end, and also when the test
// process dies: a watchdog process waits on a pipe only the test process holds.
// Without the server binaries every test skips, saying so.
#include <arpa/inet.h>
#include <dirent.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <thread>

#include "features/feature_service.hpp"
#include "features/feature_source.hpp"
#include "features/pg_connection.hpp"
#include "features/pg_source.hpp"
#include "features/sql.hpp"
#include "kill_resume.hpp"
#include "serve_client.hpp"

namespace deskml::features::testing {
namespace {

// ---- the server --------------------------------------------------------------------------

// The newest /usr/lib/postgresql/<version>/bin holding initdb and pg_ctl.
std::optional<fs::path> find_bindir() {
  std::optional<fs::path> best;
  int best_version = -1;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const fs::path bin = e.path() / "bin";
    int v = 0;
    try {
      v = std::stoi(e.path().filename().string());
    } catch (...) {
      continue;
    }
    if (fs::exists(bin / "initdb") && fs::exists(bin / "pg_ctl") && v > best_version) {
      best = bin;
      best_version = v;
    }
  }
  return best;
}

class PostgresServer {
 public:
  explicit PostgresServer(fs::path bindir) : bindir_(std::move(bindir)) {}
  ~PostgresServer() {
    if (!root_.empty()) {
      stop("immediate");
      std::error_code ec;
      fs::remove_all(root_, ec);
    }
    if (watchdog_pipe_ >= 0) ::close(watchdog_pipe_);
    if (watchdog_ > 0) ::waitpid(watchdog_, nullptr, 0);
  }

  // initdb on a new folder, then start. Returns what went wrong, or "".
  std::string init_and_start() {
    std::string tmpl = (fs::temp_directory_path() / "deskml-pg-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) return "mkdtemp failed";
    root_ = tmpl;
    if (::geteuid() == 0) {
      const passwd* pw = ::getpwnam("nobody");
      if (!pw) return "running as root and there is no user 'nobody' to run PostgreSQL as";
      uid_ = pw->pw_uid;
      gid_ = pw->pw_gid;
      if (::chown(root_.c_str(), uid_, gid_) != 0) return "cannot chown " + root_.string();
    }
    ::chmod(root_.c_str(), 0755);
    start_watchdog();
    tcp_port_ = free_port();
    make_certificate();
    if (run({(bindir_ / "initdb").string(), "-D", (root_ / "data").string(), "-U", "postgres", "-A", "trust", "-E",
             "UTF8", "--locale=C", "--no-sync"}) != 0) {
      return "initdb failed:\n" + read_file(root_ / "commands.log");
    }
    if (!start()) return "pg_ctl start failed:\n" + read_file(root_ / "commands.log") + read_file(root_ / "server.log");
    return "";
  }

  bool start() {
    std::string opts = "-c unix_socket_directories='" + root_.string() + "' -p " + std::to_string(tcp_port_) +
                       " -c fsync=off -c full_page_writes=off -c max_connections=60";
    if (tls()) {
      opts += " -c listen_addresses='127.0.0.1' -c ssl=on -c ssl_cert_file='" + (root_ / "server.crt").string() +
              "' -c ssl_key_file='" + (root_ / "server.key").string() + "'";
    } else {
      opts += " -c listen_addresses=''";
    }
    return run({(bindir_ / "pg_ctl").string(), "-D", (root_ / "data").string(), "-l", (root_ / "server.log").string(),
                "-w", "-t", "60", "-o", opts, "start"}) == 0;
  }
  // mode: smart, fast (disconnects clients) or immediate (a crash, recovery at the next start).
  bool stop(const char* mode = "fast") {
    return run({(bindir_ / "pg_ctl").string(), "-D", (root_ / "data").string(), "-m", mode, "-w", "-t", "60",
                "stop"}) == 0;
  }

  std::string uri(const std::string& db = "postgres") const {
    return "postgresql:///" + db + "?host=" + root_.string() + "&port=" + std::to_string(tcp_port_) + "&user=postgres";
  }
  // Over TCP to localhost (127.0.0.1), where TLS is on; `params` are appended.
  std::string tcp_uri(const std::string& db, const std::string& params) const {
    return "postgresql://postgres@localhost:" + std::to_string(tcp_port_) + "/" + db + "?hostaddr=127.0.0.1&" + params;
  }
  bool tls() const { return fs::exists(root_ / "server.key"); }
  fs::path certificate() const { return root_ / "server.crt"; }
  std::string log() const { return read_file(root_ / "server.log"); }

 private:
  static int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int port = 55432;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    ::close(fd);
    return port;
  }

  // A self-signed certificate for localhost and 127.0.0.1, when the openssl tool is there.
  void make_certificate() {
    if (!fs::exists("/usr/bin/openssl")) return;
    const fs::path key = root_ / "server.key", crt = root_ / "server.crt";
    const int rc = run({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key.string(), "-out", crt.string()});
    ::chmod(key.c_str(), 0600);
    if (rc != 0) fs::remove(key);
  }

  // Runs a server command as the server's user; its output goes to commands.log.
  int run(const std::vector<std::string>& args) const {
    const pid_t pid = ::fork();
    if (pid == 0) {
      const int log = ::open((root_ / "commands.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (log >= 0) {
        ::dup2(log, 1);
        ::dup2(log, 2);
      }
      if (::geteuid() == 0 && uid_ != 0) {
        if (::setgroups(0, nullptr) != 0 || ::setgid(gid_) != 0 || ::setuid(uid_) != 0) ::_exit(126);
      }
      ::chdir(root_.c_str());
      std::vector<std::string> all = args;
      std::vector<char*> argv;
      for (auto& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      const char* env[] = {"PATH=/usr/bin:/bin", "LC_ALL=C", nullptr};
      ::execve(argv[0], argv.data(), const_cast<char* const*>(env));
      ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  // A child that stops the server and removes the folder once this process is gone,
  // however it ends (the pipe's write end closes with it).
  void start_watchdog() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return;
    watchdog_ = ::fork();
    if (watchdog_ == 0) {
      ::close(fds[1]);
      char c;
      while (::read(fds[0], &c, 1) != 0) {
      }
      if (fs::exists(root_ / "data" / "postmaster.pid")) {
        run({(bindir_ / "pg_ctl").string(), "-D", (root_ / "data").string(), "-m", "immediate", "-w", "stop"});
      }
      std::error_code ec;
      fs::remove_all(root_, ec);
      ::_exit(0);
    }
    ::close(fds[0]);
    watchdog_pipe_ = fds[1];
  }

  fs::path bindir_;
  fs::path root_;
  int tcp_port_ = 55432;  // also names the Unix socket's file
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  pid_t watchdog_ = -1;
  int watchdog_pipe_ = -1;
};

// ---- the suite -------------------------------------------------------------------------------

class PostgresTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto bindir = find_bindir();
    if (!bindir) {
      skip_reason_ = new std::string(
          "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/<version>/bin; install "
          "Debian's postgresql package (scripts/setup does)");
      return;
    }
    server_ = new PostgresServer(*bindir);
    setup_error_ = new std::string(server_->init_and_start());
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    if (skip_reason_) GTEST_SKIP() << *skip_reason_;
    ASSERT_TRUE(setup_error_->empty()) << *setup_error_;
    DESKML_REQUIRE_TABULAR();
    // Each test gets its own database.
    db_ = "t_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name());
    for (char& c : db_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    admin("DROP DATABASE IF EXISTS " + db_);
    admin("CREATE DATABASE " + db_);
  }

  std::string uri() const { return server_->uri(db_); }

  void admin(const std::string& sql) {
    auto c = pg::Connection::connect(server_->uri("postgres"), "test server", std::chrono::seconds(10));
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    Status st = (*c)->command(sql);
    ASSERT_TRUE(st.ok()) << st.to_string();
  }
  void exec(const std::string& sql) {
    auto c = pg::Connection::connect(uri(), "test server", std::chrono::seconds(10));
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    Status st = (*c)->command(sql);
    ASSERT_TRUE(st.ok()) << st.to_string();
  }
  // Rows of text values (NULL as "NULL"); nullopt when the statement fails.
  std::optional<std::vector<std::vector<std::string>>> try_query(const std::string& sql) {
    auto c = pg::Connection::connect(uri(), "test server", std::chrono::seconds(10));
    if (!c.ok()) return std::nullopt;
    auto r = (*c)->exec(sql);
    if (!r.ok()) return std::nullopt;
    std::vector<std::vector<std::string>> out;
    for (int i = 0; i < PQntuples(r->get()); ++i) {
      std::vector<std::string> row;
      for (int j = 0; j < PQnfields(r->get()); ++j) {
        row.emplace_back(PQgetisnull(r->get(), i, j) ? "NULL" : PQgetvalue(r->get(), i, j));
      }
      out.push_back(std::move(row));
    }
    return out;
  }
  std::vector<std::vector<std::string>> query(const std::string& sql) {
    auto r = try_query(sql);
    EXPECT_TRUE(r.has_value()) << sql;
    return r.value_or(std::vector<std::vector<std::string>>{});
  }
  int64_t rows_done(const std::string& table) {
    auto r = try_query("SELECT rows_done FROM deskml_score_checkpoints WHERE output_table = '" + table + "'");
    return r && !r->empty() ? std::stoll((*r)[0][0]) : 0;
  }

  // A make_tabular_model.py CSV as a table: id bigint primary key, the features
  // double precision, target integer; loaded with COPY.
  void load_csv(const std::string& table, const fs::path& csv_path) {
    const Csv csv = Csv::read(csv_path);
    std::string ddl = "CREATE TABLE " + table + " (id BIGINT PRIMARY KEY";
    for (size_t i = 1; i + 1 < csv.header.size(); ++i) ddl += ", " + csv.header[i] + " DOUBLE PRECISION";
    exec(ddl + ", target INTEGER)");
    auto c = pg::Connection::connect(uri(), "test server", std::chrono::seconds(10));
    ASSERT_TRUE(c.ok());
    Status st = (*c)->copy_in("COPY " + table + " FROM STDIN WITH (FORMAT csv, HEADER true)", read_file(csv_path));
    ASSERT_TRUE(st.ok()) << st.to_string();
  }

  std::vector<std::string> score_args(const std::string& query, const std::string& into,
                                      std::vector<std::string> extra = {}) const {
    std::vector<std::string> a = {"score",
                                  "--models",
                                  tabular_models().string(),
                                  "--model",
                                  "breast_cancer",
                                  "--source",
                                  uri(),
                                  "--query",
                                  query,
                                  "--key",
                                  "id",
                                  "--into",
                                  into,
                                  "--threads",
                                  "1",
                                  "--progress",
                                  "off"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  // Every key 1..n once, in order; each row equal to `reference` when given.
  void expect_exactly_once(const std::string& table, int64_t n,
                           const std::vector<std::vector<std::string>>* reference = nullptr) {
    const auto rows = query("SELECT * FROM " + table + " ORDER BY key");
    ASSERT_EQ(rows.size(), static_cast<size_t>(n)) << table;
    for (size_t i = 0; i < rows.size(); ++i) {
      ASSERT_EQ(rows[i][0], std::to_string(i + 1)) << table << ": keys are not 1.." << n << " once each";
      if (!reference) continue;
      for (size_t c = 1; c < rows[i].size(); ++c) {
        ASSERT_TRUE(close(std::stod(rows[i][c]), std::stod((*reference)[i][c]), 1e-6, 1e-9))
            << table << " key " << rows[i][0] << " column " << c;
      }
    }
  }

  TempDir dir_;
  std::string db_;
  static PostgresServer* server_;
  static std::string* skip_reason_;
  static std::string* setup_error_;
};

PostgresServer* PostgresTest::server_ = nullptr;
std::string* PostgresTest::skip_reason_ = nullptr;
std::string* PostgresTest::setup_error_ = nullptr;

TEST_F(PostgresTest, CellsArriveTyped) {
  exec(
      "CREATE TABLE t (id BIGINT PRIMARY KEY, s SMALLINT, i INTEGER, f REAL, d DOUBLE PRECISION, n NUMERIC(12,4), "
      "b BOOLEAN, txt TEXT, v VARCHAR(8), ts TIMESTAMP, nul DOUBLE PRECISION)");
  exec(
      "INSERT INTO t VALUES (1, -2, 300000, 1.5, 2.25, 12345678.1234, true, 'héllo', 'v1', '2024-01-02 03:04:05', "
      "NULL), (2, 0, 0, 'Infinity', 'NaN', -0.5, false, '', 'v2', NULL, 1)");
  auto src = FeatureSource::open(uri());
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  EXPECT_EQ((*src)->kind(), SourceKind::kPostgres);
  auto page = (*src)->fetch_page(*KeyedQuery::make("SELECT * FROM t", "id"), std::nullopt, 10);
  ASSERT_TRUE(page.ok()) << page.status().to_string();
  ASSERT_EQ(page->rows(), 2u);
  const RowBatch& b = *page;
  EXPECT_EQ(b.at(0, 0).type, CellType::kInt);
  EXPECT_EQ(b.at(0, 1).i, -2);
  EXPECT_EQ(b.at(0, 2).i, 300000);
  EXPECT_EQ(b.at(0, 3).type, CellType::kReal);
  EXPECT_DOUBLE_EQ(b.at(0, 3).d, 1.5);
  EXPECT_DOUBLE_EQ(b.at(0, 4).d, 2.25);
  EXPECT_DOUBLE_EQ(b.at(0, 5).d, 12345678.1234);
  EXPECT_EQ(b.at(0, 6).type, CellType::kBool);
  EXPECT_EQ(b.at(0, 6).i, 1);
  EXPECT_EQ(b.text(b.at(0, 7)), "héllo");
  EXPECT_EQ(b.text(b.at(0, 8)), "v1");
  EXPECT_EQ(b.at(0, 9).type, CellType::kText);  // other types come as their text
  EXPECT_EQ(b.text(b.at(0, 9)), "2024-01-02 03:04:05");
  EXPECT_EQ(b.at(0, 10).type, CellType::kNull);
  EXPECT_TRUE(std::isinf(b.at(1, 3).d));
  EXPECT_TRUE(std::isnan(b.at(1, 4).d));
  EXPECT_EQ(b.at(1, 6).i, 0);
  EXPECT_EQ(b.text(b.at(1, 7)), "");
}

// Bulk reads stream through one binary COPY (pg_copy_stream.cpp); the cells must
// be exactly those the text form gives, page after page, text keys included.
TEST_F(PostgresTest, BinaryCopyStreamMatchesTheTextForm) {
  exec(
      "CREATE TABLE b (k TEXT PRIMARY KEY, s SMALLINT, i INTEGER, o OID, f REAL, d DOUBLE PRECISION, n NUMERIC, "
      "flag BOOLEAN, v VARCHAR(8), c CHAR(3))");
  exec(
      "INSERT INTO b SELECT 'k' || lpad(g::text, 4, '0') || CASE WHEN g % 7 = 0 THEN '''q' ELSE '' END, "
      "(g % 300) - 150, g * 1000 - 7, g, g / 3.0, g * 1e-3 - 0.5, "
      "CASE g % 6 WHEN 0 THEN NULL WHEN 1 THEN 12345678.1234 WHEN 2 THEN -0.000000000000000000001234 "
      "WHEN 3 THEN 'NaN' WHEN 4 THEN 1e300 * g ELSE -g * 0.5 END, g % 2 = 0, "
      "CASE WHEN g % 5 = 0 THEN NULL ELSE 'v' || g END, 'c' || (g % 10) FROM generate_series(1, 2500) g");
  exec("INSERT INTO b VALUES ('zinf', NULL, NULL, NULL, '-Infinity', 'Infinity', 'Infinity', NULL, NULL, NULL)");
  auto src = FeatureSource::open(uri());
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  auto q = *KeyedQuery::make("SELECT * FROM b", "k");
  // What the text form gives: the whole result in one query.
  auto& pool = *static_cast<PgSource&>(**src).pool();
  auto expected = pool.run([&](pg::Connection& c) -> Result<RowBatch> {
    DESKML_ASSIGN_OR_RETURN(auto r, c.exec(page_sql(Dialect::kPostgres, q.sql, q.key, false, 100000)));
    return pg::to_row_batch(r.get());
  });
  ASSERT_TRUE(expected.ok()) << expected.status().to_string();
  ASSERT_EQ(expected->rows(), 2501u);

  // REAL arrives as the float's exact value in binary and as its shortest
  // decimal in text: the same float, not the same double.
  auto same_cell = [](const RowBatch& a, const Cell& x, const RowBatch& b, const Cell& y, bool real4) {
    if (x.type != y.type) return false;
    if (real4 && x.type == CellType::kReal && !std::isnan(x.d))
      return static_cast<float>(x.d) == static_cast<float>(y.d);
    switch (x.type) {
      case CellType::kNull:
        return true;
      case CellType::kReal:
        return (std::isnan(x.d) && std::isnan(y.d)) || std::memcmp(&x.d, &y.d, sizeof x.d) == 0;
      case CellType::kText:
        return a.text(x) == b.text(y);
      default:
        return x.i == y.i;
    }
  };
  // Pages of 1000 continue one stream; a page asked for out of order starts another.
  std::optional<Key> after;
  size_t row = 0;
  for (;;) {
    auto page = (*src)->fetch_page(q, after, 1000);
    ASSERT_TRUE(page.ok()) << page.status().to_string();
    ASSERT_EQ(page->columns, expected->columns);
    for (size_t r = 0; r < page->rows(); ++r, ++row) {
      for (size_t c = 0; c < page->width(); ++c) {
        ASSERT_TRUE(same_cell(*page, page->at(r, c), *expected, expected->at(row, c), page->columns[c] == "f"))
            << "row " << row << " column " << page->columns[c] << ": " << page->describe(page->at(r, c)) << " vs "
            << expected->describe(expected->at(row, c));
      }
    }
    if (page->rows() < 1000) break;
    after = *page->key_at(page->rows() - 1, 0);
  }
  EXPECT_EQ(row, 2501u);
  auto restart = (*src)->fetch_page(q, Key(std::string("k0007'q")), 2);  // a quote in the key literal
  ASSERT_TRUE(restart.ok()) << restart.status().to_string();
  ASSERT_EQ(restart->rows(), 2u);
  EXPECT_EQ(restart->text(restart->at(0, 0)), "k0008");
  // The stream left in the middle closes its connection rather than returning it busy.
  auto again = (*src)->fetch_page(q, std::nullopt, 3);
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(again->text(again->at(2, 0)), "k0003");
}

TEST_F(PostgresTest, PagesCountsLookupsAndErrors) {
  exec(
      "CREATE TABLE t AS SELECT g AS id, g * 0.5 AS x, 'k' || lpad(g::text, 3, '0') AS code FROM "
      "generate_series(1, 25) g");
  exec("INSERT INTO t VALUES (NULL, 1, NULL)");
  auto src = FeatureSource::open(uri());
  ASSERT_TRUE(src.ok());
  auto q = *KeyedQuery::make("SELECT id, x FROM t", "id");
  std::vector<int64_t> seen;
  std::optional<Key> after;
  for (;;) {
    auto page = (*src)->fetch_page(q, after, 10);
    ASSERT_TRUE(page.ok()) << page.status().to_string();
    for (size_t r = 0; r < page->rows(); ++r) seen.push_back(page->at(r, 0).i);
    if (page->rows() < 10) break;
    after = *page->key_at(page->rows() - 1, 0);
  }
  ASSERT_EQ(seen.size(), 25u);  // the NULL key is never read
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], static_cast<int64_t>(i + 1));
  auto n = (*src)->count(q, std::nullopt);
  ASSERT_TRUE(n.ok()) << n.status().to_string();
  EXPECT_EQ(n->rows, 25);
  EXPECT_EQ(n->null_keys, 1);
  EXPECT_EQ((*src)->count(q, Key(int64_t{20}))->rows, 5);

  auto text_keys = *KeyedQuery::make("SELECT code, x FROM t", "code");
  auto tail = (*src)->fetch_page(text_keys, Key(std::string("k022")), 10);
  ASSERT_TRUE(tail.ok()) << tail.status().to_string();
  ASSERT_EQ(tail->rows(), 3u);
  EXPECT_EQ(tail->text(tail->at(0, 0)), "k023");

  auto found = (*src)->fetch_keys(q, {Key(int64_t{3}), Key(int64_t{7}), Key(int64_t{99})});
  ASSERT_TRUE(found.ok()) << found.status().to_string();
  EXPECT_EQ(found->rows(), 2u);

  auto bad = (*src)->fetch_page(*KeyedQuery::make("SELECT id, nope FROM t", "id"), std::nullopt, 10);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("column \"nope\" does not exist"), std::string::npos) << bad.status().message();
}

TEST_F(PostgresTest, ConnectionParametersPassThrough) {
  auto plain = FeatureSource::open(uri() + "&application_name=scoring-test");
  ASSERT_TRUE(plain.ok()) << plain.status().to_string();
  auto who = (*plain)->fetch_page(*KeyedQuery::make("SELECT 1 AS id, current_setting('application_name') AS app", "id"),
                                  std::nullopt, 1);
  ASSERT_TRUE(who.ok()) << who.status().to_string();
  EXPECT_EQ(who->text(who->at(0, 1)), "scoring-test");
  auto nodb = FeatureSource::open(server_->uri("no_such_db"));
  ASSERT_FALSE(nodb.ok());
  EXPECT_EQ(nodb.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(nodb.status().message().find("no_such_db"), std::string::npos) << nodb.status().message();
}

TEST_F(PostgresTest, TlsSettingsPassThrough) {
  if (!server_->tls()) GTEST_SKIP() << "no openssl tool to make the server's certificate";
  const auto q = *KeyedQuery::make(
      "SELECT 1 AS id, coalesce((SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()), 'none') AS ssl",
      "id");
  const auto ssl_of = [&](const std::string& params) -> std::string {
    auto src = FeatureSource::open(server_->tcp_uri(db_, params));
    if (!src.ok()) return "error: " + src.status().to_string();
    auto page = (*src)->fetch_page(q, std::nullopt, 1);
    if (!page.ok()) return "error: " + page.status().to_string();
    return std::string(page->text(page->at(0, 1)));
  };
  EXPECT_EQ(ssl_of("sslmode=disable"), "false");
  EXPECT_EQ(ssl_of("sslmode=require"), "true");
  // verify-full checks the chain against sslrootcert and the name against the host.
  EXPECT_EQ(ssl_of("sslmode=verify-full&sslrootcert=" + server_->certificate().string()), "true");
  const std::string wrong_root = ssl_of("sslmode=verify-full&sslrootcert=" + (dir_ / "missing.crt").string());
  EXPECT_NE(wrong_root.find("error: Unavailable: cannot connect to PostgreSQL"), std::string::npos) << wrong_root;
  EXPECT_NE(wrong_root.find("root certificate file"), std::string::npos) << wrong_root;
  // deskml score takes the same URI.
  load_csv("rows", tabular_dir() / "breast_cancer.csv");
  std::vector<std::string> args = score_args("SELECT * FROM rows", "preds");
  args[6] = server_->tcp_uri(db_, "sslmode=verify-full&sslrootcert=" + server_->certificate().string());
  const Outcome o = run_deskml(args, dir_.path());
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(summary_of(o).value("rows_written", 0), 569);
}

TEST_F(PostgresTest, PoolRidesOutARestartAndGivesUpAfterItsTimeout) {
  exec("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 5) g");
  SourceOptions so;
  so.reconnect_timeout = std::chrono::seconds(30);
  auto opened = PgSource::open(*parse_source_uri(uri()), so);
  ASSERT_TRUE(opened.ok());
  auto src = *opened;
  auto q = *KeyedQuery::make("SELECT id FROM t", "id");
  ASSERT_TRUE(src->fetch_page(q, std::nullopt, 10).ok());

  ASSERT_TRUE(server_->stop("fast"));
  std::thread restart([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    server_->start();
  });
  const auto t0 = std::chrono::steady_clock::now();
  auto page = src->fetch_page(q, std::nullopt, 10);  // retried with backoff until the server is back
  restart.join();
  ASSERT_TRUE(page.ok()) << page.status().to_string();
  EXPECT_EQ(page->rows(), 5u);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1000));
  EXPECT_GE(src->pool()->reconnects(), 1u);

  SourceOptions quick;
  quick.reconnect_timeout = std::chrono::milliseconds(800);
  auto impatient = PgSource::open(*parse_source_uri(uri()), quick);
  ASSERT_TRUE(impatient.ok());
  ASSERT_TRUE(server_->stop("fast"));
  const auto t1 = std::chrono::steady_clock::now();
  auto lost = (*impatient)->fetch_page(q, std::nullopt, 10);
  const auto waited = std::chrono::steady_clock::now() - t1;
  ASSERT_TRUE(server_->start());
  ASSERT_FALSE(lost.ok());
  EXPECT_EQ(lost.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(lost.status().message().find("gave up after"), std::string::npos) << lost.status().message();
  EXPECT_LT(waited, std::chrono::seconds(10));
  // And it works again once the server is back.
  EXPECT_TRUE((*impatient)->fetch_page(q, std::nullopt, 10).ok());
}

TEST_F(PostgresTest, LookupsRespectTheirDeadline) {
  exec("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 5) g");
  auto src = FeatureSource::open(uri());
  ASSERT_TRUE(src.ok());
  auto slow = *KeyedQuery::make("SELECT id, pg_sleep(2)::text AS z FROM t", "id");
  const auto t0 = std::chrono::steady_clock::now();
  auto r = (*src)->fetch_keys(slow, {Key(int64_t{1})}, t0 + std::chrono::milliseconds(200));
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status().to_string();
  EXPECT_LT(took, std::chrono::milliseconds(1500));
  auto fast = *KeyedQuery::make("SELECT id FROM t", "id");
  EXPECT_TRUE(
      (*src)->fetch_keys(fast, {Key(int64_t{2})}, std::chrono::steady_clock::now() + std::chrono::seconds(5)).ok());
}

TEST_F(PostgresTest, ScoresLikePyTorchIntoATableAndACsvFile) {
  load_csv("tumours", tabular_dir() / "breast_cancer.csv");
  const Outcome o = run_deskml(score_args("SELECT * FROM tumours", "preds", {"--batch", "100"}), dir_.path());
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(summary_of(o).value("rows_written", 0), 569);
  const auto want = expected_outputs();
  const auto rows = query("SELECT key, logits_0, logits_1, probability_0 FROM preds ORDER BY key");
  ASSERT_EQ(rows.size(), want.size());
  for (const auto& row : rows) {
    const auto& w = want.at(std::stoll(row[0]));
    for (size_t i = 0; i < 3; ++i) {
      ASSERT_TRUE(close(std::stod(row[i + 1]), w[i], 1e-4, 1e-5)) << "id " << row[0] << " output " << i;
    }
  }
  const auto types = query(
      "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'preds' ORDER BY "
      "ordinal_position");
  ASSERT_EQ(types.size(), 4u);
  EXPECT_EQ(types[0], (std::vector<std::string>{"key", "bigint"}));
  EXPECT_EQ(types[1], (std::vector<std::string>{"logits_0", "real"}));

  const auto csv_path = dir_ / "preds.csv";
  const Outcome c = run_deskml(score_args("SELECT * FROM tumours", csv_path.string()), dir_.path());
  ASSERT_EQ(c.exit_code, 0) << c.err;
  const Csv csv = Csv::read(csv_path);
  ASSERT_EQ(csv.rows.size(), 569u);
  for (size_t i = 0; i < csv.rows.size(); ++i) {
    EXPECT_EQ(csv.rows[i][0], rows[i][0]);
    for (size_t k = 1; k < 4; ++k) EXPECT_TRUE(close(std::stod(csv.rows[i][k]), std::stod(rows[i][k]), 1e-6, 1e-9));
  }
}

TEST_F(PostgresTest, KilledRunsResumeExactlyOnce) {
  load_csv("rows", tabular_dir() / "synthetic_20000.csv");
  const int64_t n = 20000;
  const auto t0 = std::chrono::steady_clock::now();
  const Outcome ref = run_deskml(score_args("SELECT * FROM rows", "reference", {"--batch", "128"}), dir_.path());
  const double full = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(ref.exit_code, 0) << ref.err;
  const auto reference = query("SELECT * FROM reference ORDER BY key");
  ASSERT_EQ(reference.size(), static_cast<size_t>(n));

  KillPlan plan;
  plan.total_rows = n;
  plan.full_run_seconds = full;
  plan.args = [&](int t) { return score_args("SELECT * FROM rows", "preds_" + std::to_string(t), {"--batch", "128"}); };
  plan.rows_done = [&](int t) { return rows_done("preds_" + std::to_string(t)); };
  plan.verify = [&](int t) { expect_exactly_once("preds_" + std::to_string(t), n, &reference); };
  const KillStats stats = kill_and_resume(plan, dir_.path(), 4242);
  expect_kills_landed("postgres", stats, full);
}

TEST_F(PostgresTest, ServerStoppedMidRunGivesAClearErrorAndAResumableState) {
  load_csv("rows", tabular_dir() / "synthetic_20000.csv");
  const auto args = score_args("SELECT * FROM rows", "preds", {"--batch", "64", "--reconnect-seconds", "2"});
  std::vector<std::string> argv = {DESKML_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  Child child(argv, dir_.path(), "stopped");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (rows_done("preds") == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(server_->stop("fast"));
  const auto stopped_at = std::chrono::steady_clock::now();
  const Outcome o = child.wait(std::chrono::seconds(60));
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - stopped_at).count();
  ASSERT_TRUE(server_->start());
  ASSERT_TRUE(o.exited) << "deskml score died of signal " << o.signal << "\n" << o.err;
  if (o.exit_code == 0) {
    GTEST_SKIP() << "the job finished before the server stopped; nothing to check";
  }
  EXPECT_EQ(o.exit_code, 3) << o.err;
  EXPECT_LT(took, 15.0) << "it should give up about --reconnect-seconds after the server went away";
  EXPECT_NE(o.err.find("deskml score: Unavailable: "), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("PostgreSQL at postgresql:///"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("gave up after"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("run the same command again"), std::string::npos) << o.err;
  const auto summary = summary_of(o);
  EXPECT_FALSE(summary.value("complete", true));

  // The checkpoint and the table agree, and the rerun finishes the job.
  // The batch being committed when the server went away may have landed
  // without its acknowledgement: the summary counts it as in doubt.
  const int64_t done = rows_done("preds");
  const int64_t total = summary.value("rows_total", int64_t{-1});
  const int64_t in_doubt = summary.value("rows_in_doubt", int64_t{0});
  EXPECT_TRUE(done == total || (in_doubt > 0 && done == total + in_doubt))
      << "checkpoint " << done << ", summary rows_total " << total << ", rows_in_doubt " << in_doubt;
  EXPECT_EQ(query("SELECT count(*) FROM preds")[0][0], std::to_string(done));
  const Outcome rest = run_deskml(args, dir_.path(), "rest");
  ASSERT_EQ(rest.exit_code, 0) << rest.err;
  EXPECT_EQ(summary_of(rest).value("rows_before", int64_t{-1}), done);
  expect_exactly_once("preds", 20000);
}

TEST_F(PostgresTest, ARestartWithinTheReconnectWindowIsRiddenOut) {
  load_csv("rows", tabular_dir() / "synthetic_20000.csv");
  const auto args = score_args("SELECT * FROM rows", "preds", {"--batch", "64", "--reconnect-seconds", "60"});
  std::vector<std::string> argv = {DESKML_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  Child child(argv, dir_.path(), "restart");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (rows_done("preds") == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(server_->stop("fast"));
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  ASSERT_TRUE(server_->start());
  const Outcome o = child.wait(std::chrono::seconds(120));
  ASSERT_EQ(o.exit_code, 0) << o.err;
  if (summary_of(o).value("rows_before", int64_t{0}) == 0 &&
      o.err.find("postgres_connection_lost") != std::string::npos) {
    EXPECT_NE(o.err.find("postgres_reconnected"), std::string::npos) << o.err;
  }
  expect_exactly_once("preds", 20000);
}

TEST_F(PostgresTest, OnlineLookupsOverTheCppApiAndHttp) {
  load_csv("tumours", tabular_dir() / "breast_cancer.csv");
  const fs::path repo = dir_ / "models";
  write_repository_with_source(repo, "clinic", uri(), "SELECT * FROM tumours");
  std::ofstream(repo / "breast_cancer" / "config.toml", std::ios::app)
      << "\n[features.sources.slow]\nuri = \"" << uri()
      << "\"\nquery = \"SELECT t.*, pg_sleep(2)::text AS z FROM tumours t\"\nkey = \"id\"\n";
  const auto want = expected_outputs();
  {
    serving::RuntimeOptions ro;
    ro.repository = repo;
    ro.threads = 1;
    ro.poll_interval = std::chrono::milliseconds(0);
    auto runtime = std::move(serving::Runtime::create(ro)).value();
    FeatureServiceOptions fo;
    fo.repository = repo;
    auto service = std::move(FeatureService::create(*runtime, fo)).value();
    auto r = service->infer("breast_cancer", "clinic", {Key(int64_t{5}), Key(int64_t{2})}).get();
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_TRUE(close(r->outputs[0].second.data<float>()[0], want.at(5)[0], 1e-4, 1e-5));
    EXPECT_TRUE(close(r->outputs[1].second.data<float>()[1], want.at(2)[2], 1e-4, 1e-5));
    ASSERT_NO_FATAL_FAILURE(time_cpp_lookups(*service, "PostgreSQL"));
  }

  ServeProcess serve(repo, dir_.path());
  ASSERT_GT(serve.port, 0);
  HttpClient http(serve.port);
  const auto ok =
      http.post("/v2/models/breast_cancer/infer", R"({"features": {"source": "clinic", "keys": [7, 8]}})", serve.token);
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_TRUE(close(ok.json()["outputs"][0]["data"][2].get<double>(), want.at(8)[0], 1e-4, 1e-5)) << ok.body;
  ASSERT_NO_FATAL_FAILURE(time_http_lookups(http, serve.token, "PostgreSQL"));

  // The request's deadline (parameters.timeout, in microseconds) bounds the lookup.
  const auto t0 = std::chrono::steady_clock::now();
  const auto late =
      http.post("/v2/models/breast_cancer/infer",
                R"({"parameters": {"timeout": 200000}, "features": {"source": "slow", "keys": [1]}})", serve.token);
  EXPECT_EQ(late.status, 504) << late.body;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1500));
}

}  // namespace
}  // namespace deskml::features::testing
