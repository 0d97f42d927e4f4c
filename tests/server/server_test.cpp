// Starts the real `deskml serve` binary on a temporary model repository and talks to it
// over loopback sockets: every endpoint, the binary extension, the security checks,
// the limits, overload and shutdown.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "serving_models.hpp"

namespace {

using deskml::serving::testing::TempDir;
using deskml::serving::testing::write_file;
using nlohmann::json;
namespace fs = std::filesystem;
namespace models = deskml::serving::testing;

// ---- models -------------------------------------------------------------------------

// y = Identity(x) for a 1-D tensor of `elem_type` (an onnx::TensorProto::DataType).
std::string identity_model(int elem_type) {
  auto m = models::detail::new_model();
  auto* g = m.mutable_graph();
  models::detail::add_value(g->mutable_input(), "x", {-1});
  models::detail::add_value(g->mutable_output(), "y", {-1});
  g->mutable_input(0)->mutable_type()->mutable_tensor_type()->set_elem_type(elem_type);
  g->mutable_output(0)->mutable_type()->mutable_tensor_type()->set_elem_type(elem_type);
  models::detail::add_node(g, "Identity", {"x"}, {"y"});
  return m.SerializeAsString();
}

// ---- a minimal HTTP/1.1 client --------------------------------------------------------

struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
  json body_json() const { return json::parse(body); }
};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

class Connection {
 public:
  explicit Connection(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  // A Unix domain socket at `path`.
  explicit Connection(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~Connection() { ::close(fd_); }
  bool connected() const { return connected_; }

  // One chunk of a chunked body; false at the last (empty) chunk or when the connection ends.
  bool read_chunk(std::string& data) {
    size_t eol;
    while ((eol = buf_.find("\r\n")) == std::string::npos) {
      if (!fill()) return false;
    }
    const size_t size = std::stoul(buf_.substr(0, eol), nullptr, 16);
    while (buf_.size() < eol + 2 + size + 2) {
      if (!fill()) return false;
    }
    data = buf_.substr(eol + 2, size);
    buf_.erase(0, eol + 2 + size + 2);
    return size > 0;
  }
  // The lines of a chunked NDJSON body, until its end.
  std::vector<json> read_ndjson() {
    std::vector<json> lines;
    std::string pending, chunk;
    while (read_chunk(chunk)) {
      pending += chunk;
      size_t nl;
      while ((nl = pending.find('\n')) != std::string::npos) {
        lines.push_back(json::parse(pending.substr(0, nl)));
        pending.erase(0, nl + 1);
      }
    }
    return lines;
  }

  void send_all(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;  // the server may close early (413, 403): read what it said
      off += static_cast<size_t>(n);
    }
  }

  // Reads one response (Content-Length framed); status 0 when the connection ended first.
  Reply read_reply() {
    Reply r;
    size_t header_end;
    while ((header_end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return r;
    }
    const std::string head = buf_.substr(0, header_end);
    buf_.erase(0, header_end + 4);
    size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    r.status = std::stoi(status_line.substr(9, 3));
    while (line_end != std::string::npos) {
      const size_t next = head.find("\r\n", line_end + 2);
      const std::string line =
          head.substr(line_end + 2, next == std::string::npos ? std::string::npos : next - line_end - 2);
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(0, 1);
        r.headers[lower(line.substr(0, colon))] = value;
      }
      line_end = next;
    }
    const size_t length = r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
    while (buf_.size() < length) {
      if (!fill()) break;
    }
    r.body = buf_.substr(0, length);
    buf_.erase(0, std::min(length, buf_.size()));
    return r;
  }

  Reply request(const std::string& method, const std::string& target, const std::string& body,
                const std::vector<std::string>& headers, uint16_t port) {
    std::string req = method + " " + target + " HTTP/1.1\r\n";
    bool has_host = false;
    for (const auto& h : headers) {
      if (lower(h.substr(0, 5)) == "host:") has_host = true;
      req += h + "\r\n";
    }
    if (!has_host) req += "Host: 127.0.0.1:" + std::to_string(port) + "\r\n";
    if (!body.empty() || method == "POST") req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    req += "\r\n";
    send_all(req + body);
    return read_reply();
  }

 private:
  bool fill() {
    char tmp[65536];
    const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

// ---- the server process ---------------------------------------------------------------

class ServerProcess {
 public:
  ServerProcess(const fs::path& repo, const std::vector<std::string>& args,
                const std::vector<std::pair<std::string, std::string>>& env = {}) {
    int out[2];
    EXPECT_EQ(::pipe(out), 0);
    log_ = fs::path(runtime_dir_.path()) / "stderr.log";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::close(out[0]);
      ::close(out[1]);
      std::FILE* err = std::fopen(log_.c_str(), "w");
      if (err) ::dup2(::fileno(err), 2);
      ::setenv("XDG_RUNTIME_DIR", runtime_dir_.path().c_str(), 1);
      ::setenv("DESKML_LOG_LEVEL", "warn", 1);
      ::unsetenv("DESKML_TOKEN");
      for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      std::vector<std::string> all = {DESKML_BINARY, "serve", "--models", repo.string()};
      all.insert(all.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    out_fd_ = out[0];
    // The ready line: one JSON object.
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{out_fd_, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      char c[256];
      const ssize_t n = ::read(out_fd_, c, sizeof c);
      if (n <= 0) break;
      line.append(c, static_cast<size_t>(n));
    }
    ready_line = line.substr(0, line.find('\n'));
    ready = json::parse(ready_line, nullptr, false);
    if (ready.is_object()) {
      port = ready.value("port", 0);
      token = ready.value("token", "");
    }
  }
  ~ServerProcess() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
  }

  // Sends SIGTERM and returns the exit code (-1 when it did not exit normally within 30 s).
  int terminate() {
    ::kill(pid_, SIGTERM);
    return wait_exit();
  }
  int wait_exit() {
    for (int i = 0; i < 3000; ++i) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        if (WIFSIGNALED(status)) ADD_FAILURE() << "the server died of signal " << WTERMSIG(status);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }
  std::string log() const {
    std::ifstream in(log_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  Reply call(const std::string& method, const std::string& target, const std::string& body = "",
             std::vector<std::string> headers = {}, bool auth = true) const {
    Connection c(static_cast<uint16_t>(port));
    if (auth) headers.push_back("Authorization: Bearer " + token);
    headers.push_back("Connection: close");
    return c.request(method, target, body, headers, static_cast<uint16_t>(port));
  }
  std::string auth_header() const { return "Authorization: Bearer " + token; }

  json ready;
  std::string ready_line;
  int port = 0;
  std::string token;
  TempDir runtime_dir_;

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  bool exited_ = false;
  fs::path log_;
};

// ---- tensors on the wire --------------------------------------------------------------

std::string floats_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

std::vector<float> bytes_floats(std::string_view b) {
  std::vector<float> v(b.size() / sizeof(float));
  std::memcpy(v.data(), b.data(), v.size() * sizeof(float));
  return v;
}

// A binary-extension body: the JSON header, then the bytes.
std::pair<std::string, std::vector<std::string>> binary_body(const json& header, const std::string& bytes,
                                                             const std::string& auth) {
  const std::string h = header.dump();
  return {
      h + bytes,
      {auth, "Content-Type: application/octet-stream", "Inference-Header-Content-Length: " + std::to_string(h.size())}};
}

// ---- the shared server ----------------------------------------------------------------

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    repo_ = new TempDir();
    write_file(repo_->path() / "affine" / "1" / "model.onnx", models::affine_model(2.f, 1.f));
    write_file(repo_->path() / "echo_str" / "1" / "model.onnx", identity_model(onnx::TensorProto::STRING));
    write_file(repo_->path() / "echo_half" / "1" / "model.onnx", identity_model(onnx::TensorProto::FLOAT16));
    server_ = new ServerProcess(repo_->path(), {"--port", "0", "--threads", "1", "--max-body-mb", "1"});
  }
  static void TearDownTestSuite() {
    delete server_;
    delete repo_;
  }
  static TempDir* repo_;
  static ServerProcess* server_;
};
TempDir* ServerTest::repo_ = nullptr;
ServerProcess* ServerTest::server_ = nullptr;

TEST_F(ServerTest, ReadyLineNamesPortAndATokenFileOnlyTheUserCanRead) {
  const auto& s = *server_;
  ASSERT_TRUE(s.ready.is_object()) << s.ready_line;
  EXPECT_GT(s.port, 0);
  EXPECT_EQ(s.token.size(), 64u);
  EXPECT_EQ(s.ready["host"], "127.0.0.1");
  const std::string file = s.ready["token_file"];
  EXPECT_EQ(fs::path(file).parent_path(), s.runtime_dir_.path() / "deskml");
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::ifstream in(file);
  std::string token;
  in >> token;
  EXPECT_EQ(token, s.token);
}

TEST_F(ServerTest, HealthAndServerMetadata) {
  EXPECT_EQ(server_->call("GET", "/v2/health/live", "", {}, false).status, 200);
  EXPECT_EQ(server_->call("GET", "/v2/health/ready", "", {}, false).status, 200);
  const Reply meta = server_->call("GET", "/v2");
  ASSERT_EQ(meta.status, 200);
  EXPECT_EQ(meta.body_json()["name"], "deskml");
  EXPECT_NE(meta.body.find("binary_tensor_data"), std::string::npos);
}

TEST_F(ServerTest, ModelMetadataAndReadiness) {
  for (const char* target : {"/v2/models/affine", "/v2/models/affine/versions/1"}) {
    const Reply r = server_->call("GET", target);
    ASSERT_EQ(r.status, 200) << r.body;
    const json j = r.body_json();
    EXPECT_EQ(j["name"], "affine");
    EXPECT_EQ(j["platform"], "onnx");
    EXPECT_EQ(j["versions"], json::array({"1"}));
    EXPECT_EQ(j["inputs"][0], json({{"name", "x"}, {"datatype", "FP32"}, {"shape", {-1, 4}}}));
    EXPECT_EQ(j["outputs"][0]["name"], "y");
  }
  const Reply ready = server_->call("GET", "/v2/models/affine/ready");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body_json()["ready"], true);
}

TEST_F(ServerTest, InferJsonNestedAndFlat) {
  const json nested = {
      {"id", "req-1"},
      {"inputs",
       {{{"name", "x"}, {"shape", {2, 4}}, {"datatype", "FP32"}, {"data", {{1, 2, 3, 4}, {0, -1, 0.5, 10}}}}}}};
  Reply r = server_->call("POST", "/v2/models/affine/infer", nested.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.body_json();
  EXPECT_EQ(j["id"], "req-1");
  EXPECT_EQ(j["model_name"], "affine");
  EXPECT_EQ(j["model_version"], "1");
  EXPECT_EQ(j["outputs"][0]["shape"], json({2, 4}));
  EXPECT_EQ(j["outputs"][0]["datatype"], "FP32");
  EXPECT_EQ(j["outputs"][0]["data"], json({3, 5, 7, 9, 1, -1, 2, 21}));

  const json flat = {{"inputs", {{{"name", "x"}, {"shape", {1, 4}}, {"datatype", "FP32"}, {"data", {1, 1, 1, 1}}}}}};
  r = server_->call("POST", "/v2/models/affine/versions/1/infer", flat.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body_json()["outputs"][0]["data"], json({3, 3, 3, 3}));
}

TEST_F(ServerTest, BinaryExtensionRoundTrip) {
  const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8};
  const json header = {
      {"inputs",
       {{{"name", "x"}, {"shape", {2, 4}}, {"datatype", "FP32"}, {"parameters", {{"binary_data_size", 32}}}}}},
      {"outputs", {{{"name", "y"}, {"parameters", {{"binary_data", true}}}}}}};
  auto [body, headers] = binary_body(header, floats_bytes(x), server_->auth_header());
  headers.push_back("Connection: close");
  Connection c(static_cast<uint16_t>(server_->port));
  const Reply r = c.request("POST", "/v2/models/affine/infer", body, headers, static_cast<uint16_t>(server_->port));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "application/octet-stream");
  const size_t json_size = std::stoul(r.header("inference-header-content-length"));
  const json j = json::parse(r.body.substr(0, json_size));
  EXPECT_EQ(j["outputs"][0]["parameters"]["binary_data_size"], 32);
  EXPECT_FALSE(j["outputs"][0].contains("data"));
  EXPECT_EQ(bytes_floats(std::string_view(r.body).substr(json_size)), std::vector<float>({3, 5, 7, 9, 11, 13, 15, 17}));

  // Request-level binary_data_output with JSON input.
  const json all = {{"parameters", {{"binary_data_output", true}}},
                    {"inputs", {{{"name", "x"}, {"shape", {1, 4}}, {"datatype", "FP32"}, {"data", {0, 0, 0, 0}}}}}};
  const Reply r2 = server_->call("POST", "/v2/models/affine/infer", all.dump());
  ASSERT_EQ(r2.status, 200) << r2.body;
  const size_t n2 = std::stoul(r2.header("inference-header-content-length"));
  EXPECT_EQ(bytes_floats(std::string_view(r2.body).substr(n2)), std::vector<float>({1, 1, 1, 1}));
}

TEST_F(ServerTest, BytesAndFp16Tensors) {
  // BYTES as JSON strings.
  json req = {{"inputs", {{{"name", "x"}, {"shape", {2}}, {"datatype", "BYTES"}, {"data", {"héllo", ""}}}}}};
  Reply r = server_->call("POST", "/v2/models/echo_str/infer", req.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body_json()["outputs"][0]["datatype"], "BYTES");
  EXPECT_EQ(r.body_json()["outputs"][0]["data"], json({"héllo", ""}));

  // BYTES in binary: a 4-byte little-endian length before each element, both ways.
  std::string bytes;
  for (const std::string& s : {std::string("ab"), std::string("\0\xff", 2)}) {
    const uint32_t n = static_cast<uint32_t>(s.size());
    bytes.append(reinterpret_cast<const char*>(&n), 4);
    bytes += s;
  }
  const json header = {
      {"parameters", {{"binary_data_output", true}}},
      {"inputs",
       {{{"name", "x"}, {"shape", {2}}, {"datatype", "BYTES"}, {"parameters", {{"binary_data_size", bytes.size()}}}}}}};
  auto [body, headers] = binary_body(header, bytes, server_->auth_header());
  headers.push_back("Connection: close");
  Connection c(static_cast<uint16_t>(server_->port));
  r = c.request("POST", "/v2/models/echo_str/infer", body, headers, static_cast<uint16_t>(server_->port));
  ASSERT_EQ(r.status, 200) << r.body;
  const size_t n = std::stoul(r.header("inference-header-content-length"));
  EXPECT_EQ(r.body.substr(n), bytes);

  // FP16 as JSON numbers (exactly representable values survive).
  req = {{"inputs", {{{"name", "x"}, {"shape", {3}}, {"datatype", "FP16"}, {"data", {0.5, -2, 1024}}}}}};
  r = server_->call("POST", "/v2/models/echo_half/infer", req.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body_json()["outputs"][0]["datatype"], "FP16");
  EXPECT_EQ(r.body_json()["outputs"][0]["data"], json({0.5, -2, 1024}));
}

TEST_F(ServerTest, BadRequestsAre400) {
  auto post = [&](const std::string& body) { return server_->call("POST", "/v2/models/affine/infer", body); };
  EXPECT_EQ(post("{not json").status, 400);
  EXPECT_EQ(post("[]").status, 400);
  const auto input = [](json shape, json data, std::string dt = "FP32") {
    return json({{"inputs", {{{"name", "x"}, {"shape", shape}, {"datatype", dt}, {"data", data}}}}}).dump();
  };
  EXPECT_EQ(post(input({1, 4}, {1, 2, 3})).status, 400);                              // too few elements
  EXPECT_EQ(post(input({1, 4}, {1, 2, 3, 4, 5})).status, 400);                        // too many
  EXPECT_EQ(post(input({1, 4}, {1, 2, 3, 4}, "FP99")).status, 400);                   // unknown datatype
  EXPECT_EQ(post(input({1, 4}, {1, 2, "x", 4})).status, 400);                         // not a number
  EXPECT_EQ(post(input({1, 5}, {1, 2, 3, 4, 5})).status, 400);                        // wrong shape for the model
  EXPECT_EQ(post(input({1099511627776, 1099511627776}, json::array())).status, 400);  // overflowing shape
  const Reply deep = post(std::string(200, '[') + std::string(200, ']'));
  EXPECT_EQ(deep.status, 400);
  EXPECT_NE(deep.body_json()["error"].get<std::string>().find("deeper"), std::string::npos);
  // A binary size that runs past the body.
  const json header = {
      {"inputs",
       {{{"name", "x"}, {"shape", {1, 4}}, {"datatype", "FP32"}, {"parameters", {{"binary_data_size", 64}}}}}}};
  auto [body, headers] = binary_body(header, floats_bytes({1, 2, 3, 4}), server_->auth_header());
  EXPECT_EQ(server_->call("POST", "/v2/models/affine/infer", body, headers, false).status, 400);
}

TEST_F(ServerTest, TokenRequiredExceptForHealth) {
  Reply r = server_->call("GET", "/v2/models/affine", "", {}, false);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.header("www-authenticate"), "Bearer");
  EXPECT_TRUE(r.body_json().contains("error"));
  EXPECT_EQ(server_->call("GET", "/v2/models/affine", "", {"Authorization: Bearer wrong"}, false).status, 401);
  EXPECT_EQ(server_->call("GET", "/metrics", "", {}, false).status, 401);
  EXPECT_EQ(server_->call("POST", "/v2/repository/models/affine/unload", "", {}, false).status, 401);
}

TEST_F(ServerTest, HostAndOriginChecks) {
  const std::string port = std::to_string(server_->port);
  EXPECT_EQ(server_->call("GET", "/v2", "", {"Host: evil.example"}).status, 403);
  EXPECT_EQ(server_->call("GET", "/v2/health/live", "", {"Host: evil.example:" + port}, false).status, 403);
  EXPECT_EQ(server_->call("GET", "/v2", "", {"Host: localhost:1"}).status, 403);
  EXPECT_EQ(server_->call("GET", "/v2", "", {"Host: localhost:" + port}).status, 200);
  EXPECT_EQ(server_->call("GET", "/v2", "", {"Host: localhost"}).status, 200);
  EXPECT_EQ(server_->call("GET", "/v2", "", {"Host: [::1]:" + port}).status, 200);

  EXPECT_EQ(server_->call("GET", "/v2", "", {"Origin: https://evil.example"}).status, 403);
  EXPECT_EQ(server_->call("GET", "/v2", "", {"Origin: null"}).status, 403);
  EXPECT_EQ(server_->call("GET", "/v2", "", {"Origin: http://localhost.evil.example"}).status, 403);
  const Reply ok = server_->call("GET", "/v2", "", {"Origin: tauri://localhost"});
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.header("access-control-allow-origin"), "tauri://localhost");
  EXPECT_EQ(ok.header("vary"), "Origin");

  // A preflight needs no token and names what may be sent.
  const Reply pre = server_->call("OPTIONS", "/v2/models/affine/infer", "",
                                  {"Origin: http://localhost:5173", "Access-Control-Request-Method: POST",
                                   "Access-Control-Request-Headers: authorization, content-type"},
                                  false);
  EXPECT_EQ(pre.status, 204);
  EXPECT_EQ(pre.header("access-control-allow-origin"), "http://localhost:5173");
  EXPECT_NE(pre.header("access-control-allow-methods").find("POST"), std::string::npos);
  EXPECT_NE(pre.header("access-control-allow-headers").find("Authorization"), std::string::npos);
  EXPECT_NE(pre.header("access-control-allow-headers").find("Inference-Header-Content-Length"), std::string::npos);
  EXPECT_EQ(server_
                ->call("OPTIONS", "/v2/models/affine/infer", "",
                       {"Origin: https://evil.example", "Access-Control-Request-Method: POST"}, false)
                .status,
            403);
}

TEST_F(ServerTest, UnknownRoutesModelsAndTraversal) {
  EXPECT_EQ(server_->call("GET", "/v2/models/nope").status, 404);
  EXPECT_EQ(server_->call("GET", "/v2/models/nope/ready").status, 404);
  EXPECT_EQ(server_->call("GET", "/v2/nothing").status, 404);
  EXPECT_EQ(server_->call("GET", "/etc/passwd").status, 404);
  EXPECT_EQ(server_->call("GET", "/v2/models/affine/infer").status, 405);
  EXPECT_EQ(server_->call("GET", "/v2/models/affine/versions/x").status, 400);
  for (const std::string& bad :
       std::vector<std::string>{"/v2/models/..%2F..%2Fetc/infer", "/v2/models/%2e%2e/ready", "/v2/models/../ready",
                                "/v2/models/a%00b", "/v2/repository/models/..%2Fx/load"}) {
    const Reply r = server_->call(
        bad.find("infer") != std::string::npos || bad.find("load") != std::string::npos ? "POST" : "GET", bad, "{}");
    EXPECT_TRUE(r.status == 400 || r.status == 404) << bad << " -> " << r.status;
  }
}

TEST_F(ServerTest, BodyLargerThanTheLimitIs413) {
  const std::string big(2 << 20, ' ');  // --max-body-mb 1
  const Reply r = server_->call("POST", "/v2/models/affine/infer", big);
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(r.body_json().contains("error"));
}

TEST_F(ServerTest, KeepAliveCarriesSeveralRequests) {
  Connection c(static_cast<uint16_t>(server_->port));
  const auto port = static_cast<uint16_t>(server_->port);
  for (int i = 0; i < 3; ++i) {
    const Reply r = c.request("GET", "/v2/health/live", "", {}, port);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("connection"), "");  // HTTP/1.1 default: stays open
  }
  const json req = {{"inputs", {{{"name", "x"}, {"shape", {1, 4}}, {"datatype", "FP32"}, {"data", {0, 0, 0, 0}}}}}};
  const Reply r = c.request("POST", "/v2/models/affine/infer", req.dump(), {server_->auth_header()}, port);
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST_F(ServerTest, RepositoryIndexLoadUnload) {
  Reply r = server_->call("POST", "/v2/repository/models/affine/load");
  ASSERT_EQ(r.status, 200) << r.body;
  r = server_->call("POST", "/v2/repository/index");
  ASSERT_EQ(r.status, 200);
  std::map<std::string, json> rows;
  for (const auto& row : r.body_json()) rows[row["name"]] = row;
  ASSERT_EQ(rows.count("affine"), 1u);
  EXPECT_EQ(rows["affine"]["state"], "READY");
  EXPECT_EQ(rows["affine"]["version"], "1");
  EXPECT_EQ(rows.count("echo_str"), 1u);

  ASSERT_EQ(server_->call("POST", "/v2/repository/models/affine/unload").status, 200);
  r = server_->call("POST", "/v2/repository/index", json({{"ready", true}}).dump());
  for (const auto& row : r.body_json()) EXPECT_NE(row["name"], "affine");
  EXPECT_EQ(server_->call("GET", "/v2/models/affine/ready").status, 400);
  EXPECT_EQ(server_->call("POST", "/v2/repository/models/affine/load").status, 200);
  EXPECT_EQ(server_->call("GET", "/v2/models/affine/ready").status, 200);
  EXPECT_EQ(server_->call("POST", "/v2/repository/models/nope/load").status, 404);
}

TEST_F(ServerTest, StatisticsAndMetrics) {
  const json req = {{"inputs", {{{"name", "x"}, {"shape", {1, 4}}, {"datatype", "FP32"}, {"data", {0, 0, 0, 0}}}}}};
  ASSERT_EQ(server_->call("POST", "/v2/models/affine/infer", req.dump()).status, 200);
  const Reply r = server_->call("GET", "/v2/models/affine/stats");
  ASSERT_EQ(r.status, 200) << r.body;
  const json s = r.body_json()["model_stats"][0];
  EXPECT_EQ(s["name"], "affine");
  EXPECT_GE(s["inference_count"].get<int>(), 1);
  EXPECT_GE(s["inference_stats"]["success"]["count"].get<int>(), 1);
  EXPECT_GE(s["inference_stats"]["compute_infer"]["count"].get<int>(), 1);
  EXPECT_EQ(server_->call("GET", "/v2/models/nope/stats").status, 404);

  const Reply m = server_->call("GET", "/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.header("content-type").find("text/plain"), std::string::npos);
  EXPECT_NE(m.body.find("deskml_requests_total{model=\"affine\"}"), std::string::npos);
}

// ---- streaming ------------------------------------------------------------------------

json affine_item(float v) {
  return {{"inputs", {{{"name", "x"}, {"shape", {1, 4}}, {"datatype", "FP32"}, {"data", {v, v, v, v}}}}}};
}

// Sends a POST without reading the answer.
void post(Connection& c, const ServerProcess& s, const std::string& target, const std::string& body) {
  c.send_all("POST " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(s.port) + "\r\n" + s.auth_header() +
             "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
}

TEST_F(ServerTest, InferStreamAnswersEachItemThenASummary) {
  constexpr int kItems = 6;
  json items = json::array();
  for (int i = 0; i < kItems; ++i) items.push_back(affine_item(static_cast<float>(i)));
  items[2]["id"] = "item-2";  // echoed on its line; items without an id get none
  // One item names an input the model does not have: its line is an error, the rest succeed.
  items.push_back({{"id", "bad"},
                   {"inputs", {{{"name", "nope"}, {"shape", {1, 4}}, {"datatype", "FP32"}, {"data", {0, 0, 0, 0}}}}}});
  Connection c(static_cast<uint16_t>(server_->port));
  post(c, *server_, "/v2/models/affine/infer_stream", json({{"items", items}}).dump());
  const Reply head = c.read_reply();
  ASSERT_EQ(head.status, 200) << head.body;
  EXPECT_EQ(head.header("content-type"), "application/x-ndjson");
  EXPECT_EQ(head.header("transfer-encoding"), "chunked");
  const std::vector<json> lines = c.read_ndjson();
  ASSERT_EQ(lines.size(), kItems + 2u);
  std::vector<bool> seen(kItems + 1, false);
  for (size_t k = 0; k + 1 < lines.size(); ++k) {
    const json& l = lines[k];
    const size_t i = l["index"];
    ASSERT_LT(i, seen.size());
    EXPECT_FALSE(seen[i]);
    seen[i] = true;
    EXPECT_EQ(l["progress"]["done"], k + 1);
    EXPECT_EQ(l["progress"]["total"], kItems + 1);
    if (i == kItems) {
      EXPECT_TRUE(l.contains("error")) << l.dump();
      EXPECT_EQ(l.value("id", ""), "bad");
      continue;
    }
    if (i == 2) {
      EXPECT_EQ(l.value("id", ""), "item-2");
    } else {
      EXPECT_FALSE(l.contains("id")) << l.dump();
    }
    ASSERT_TRUE(l.contains("outputs")) << l.dump();
    const std::vector<float> y = l["outputs"][0]["data"];
    EXPECT_EQ(y, std::vector<float>(4, 2.f * static_cast<float>(i) + 1.f));
  }
  EXPECT_EQ(lines.back(), json({{"done", true}, {"total", kItems + 1}, {"failed", 1}}));
  // The connection is still good for the next request.
  EXPECT_EQ(c.request("GET", "/v2/health/live", "", {}, static_cast<uint16_t>(server_->port)).status, 200);

  // A malformed body is refused as a whole, before anything runs.
  EXPECT_EQ(server_->call("POST", "/v2/models/affine/infer_stream", R"({"items": [{"inputs": 3}]})").status, 400);
  EXPECT_EQ(server_->call("POST", "/v2/models/affine/infer_stream", R"({"items": []})").status, 400);
  EXPECT_EQ(server_->call("POST", "/v2/models/affine/infer_stream", "{}", {}, false).status, 401);
}

// ---- overload and shutdown (their own servers) ------------------------------------------

// POSTs an x float[1, rows, 512] to the slow model (binary both ways); the status.
int infer_slow(const ServerProcess& s, int rows) {
  const std::vector<float> x(static_cast<size_t>(rows) * 512, 0.01f);
  const json header = {{"parameters", {{"binary_data_output", true}}},
                       {"inputs",
                        {{{"name", "x"},
                          {"shape", {1, rows, 512}},
                          {"datatype", "FP32"},
                          {"parameters", {{"binary_data_size", x.size() * 4}}}}}}};
  auto [body, headers] = binary_body(header, floats_bytes(x), s.auth_header());
  return s.call("POST", "/v2/models/slow/infer", body, headers, false).status;
}

json slow_stats(const ServerProcess& s) {
  const Reply r = s.call("GET", "/v2/models/slow/stats");
  return r.status == 200 ? r.body_json()["model_stats"][0] : json::object();
}

// Polls the slow model's statistics until `pred` holds (10 s at most).
template <typename Pred>
bool wait_for(const ServerProcess& s, Pred pred) {
  for (int i = 0; i < 1000; ++i) {
    if (pred(slow_stats(s))) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(ServerOpenInference, InferenceWithoutTokenButManagementStillNeedsIt) {
  TempDir repo;
  write_file(repo.path() / "affine" / "1" / "model.onnx", models::affine_model(2.0f, 1.0f));
  ServerProcess s(repo.path(), {"--port", "0", "--threads", "1", "--open-inference"});
  const json body = {{"inputs", {{{"name", "x"}, {"shape", {1, 4}}, {"datatype", "FP32"}, {"data", {1, 2, 3, 4}}}}}};
  Reply r = s.call("POST", "/v2/models/affine/infer", body.dump(), {}, false);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_FLOAT_EQ(r.body_json()["outputs"][0]["data"][0].get<float>(), 3.f);
  EXPECT_EQ(s.call("GET", "/v2/models/affine", "", {}, false).status, 200);
  EXPECT_EQ(s.call("POST", "/v2/repository/index", "", {}, false).status, 401);
  EXPECT_EQ(s.call("POST", "/v2/repository/models/affine/unload", "", {}, false).status, 401);
  EXPECT_EQ(s.call("POST", "/v2/repository/models/affine/load", "", {}, false).status, 401);
  EXPECT_EQ(s.call("GET", "/v2/models/affine/stats", "", {}, false).status, 401);
  EXPECT_EQ(s.call("GET", "/metrics", "", {}, false).status, 401);
  // Host and Origin are still checked.
  EXPECT_EQ(s.call("POST", "/v2/models/affine/infer", body.dump(), {"Origin: https://evil.example"}, false).status,
            403);
  EXPECT_EQ(s.call("POST", "/v2/repository/index").status, 200);
}

TEST(ServerOverload, FullQueueAnswers503WithRetryAfterForExactlyTheExcess) {
  TempDir repo;
  write_file(repo.path() / "slow" / "1" / "model.onnx", models::slow_model());
  write_file(repo.path() / "slow" / "config.toml", "max_queue = 2\ninstances = 1\n");
  ServerProcess s(repo.path(), {"--port", "0", "--threads", "1"}, {{"DESKML_TOKEN", "secret-from-env"}});
  ASSERT_EQ(s.token, "secret-from-env") << s.ready_line;
  EXPECT_TRUE(s.ready["token_file"].is_null());
  ASSERT_EQ(s.call("POST", "/v2/repository/models/slow/load").status, 200);

  // One long request runs (16384 rows through four 512x512 MatMuls on one thread)...
  int running_status = 0;
  std::jthread running([&] { running_status = infer_slow(s, 16384); });
  ASSERT_TRUE(
      wait_for(s, [](const json& st) { return st.value("outstanding", 0) == 1 && st.value("queued", 1) == 0; }));
  // ...two small ones fill the queue (max_queue = 2)...
  std::vector<int> queued_status(2, 0);
  std::vector<std::jthread> queued;
  for (int i = 0; i < 2; ++i) queued.emplace_back([&, i] { queued_status[i] = infer_slow(s, 1); });
  ASSERT_TRUE(wait_for(s, [](const json& st) { return st.value("queued", 0) == 2; }));
  // ...so every further request is refused at once, with Retry-After.
  int refused = 0;
  for (int i = 0; i < 3; ++i) {
    const std::vector<float> x(512, 0.f);
    const json req = {{"inputs", {{{"name", "x"}, {"shape", {1, 1, 512}}, {"datatype", "FP32"}, {"data", x}}}}};
    const Reply r = s.call("POST", "/v2/models/slow/infer", req.dump());
    if (r.status == 503) {
      ++refused;
      EXPECT_EQ(r.header("retry-after"), "1");
      EXPECT_NE(r.body_json()["error"].get<std::string>().find("full"), std::string::npos);
    }
  }
  running.join();
  for (auto& t : queued) t.join();
  EXPECT_EQ(refused, 3);
  EXPECT_EQ(running_status, 200);
  EXPECT_EQ(queued_status, std::vector<int>({200, 200}));
  EXPECT_EQ(s.terminate(), 0) << s.log();
}

TEST(ServerShutdown, SigtermAnswersEveryAcceptedRequestAndExitsZero) {
  TempDir repo;
  write_file(repo.path() / "slow" / "1" / "model.onnx", models::slow_model());
  ServerProcess s(repo.path(), {"--port", "0", "--threads", "1"});
  ASSERT_GT(s.port, 0) << s.ready_line;
  ASSERT_EQ(s.call("POST", "/v2/repository/models/slow/load").status, 200);

  constexpr int kRequests = 4;
  std::vector<int> status(kRequests, 0);
  std::vector<std::jthread> clients;
  // Each takes a few hundred milliseconds on one thread: most are still queued or running
  // when the signal arrives.
  for (int i = 0; i < kRequests; ++i) clients.emplace_back([&, i] { status[i] = infer_slow(s, 8192); });
  ASSERT_TRUE(wait_for(s, [](const json& st) { return st.value("inference_count", 0) == kRequests; }));
  EXPECT_GT(slow_stats(s).value("outstanding", 0), 0);
  const std::string token_file = s.ready["token_file"];
  EXPECT_EQ(s.terminate(), 0) << s.log();
  for (auto& t : clients) t.join();
  EXPECT_EQ(status, std::vector<int>(kRequests, 200));
  EXPECT_FALSE(fs::exists(token_file));
  EXPECT_FALSE(Connection(static_cast<uint16_t>(s.port)).connected());
}

// ---- a client that goes away cancels its work ------------------------------------------

int cancelled(const ServerProcess& s) {
  const json st = slow_stats(s);
  if (!st.contains("inference_stats")) return 0;
  return st["inference_stats"]["fail"]["by_reason"].value("Cancelled", 0);
}

// An x float[1, rows, 512] of zeros as a JSON tensor.
json slow_input(int rows) {
  return {{{"name", "x"},
           {"shape", {1, rows, 512}},
           {"datatype", "FP32"},
           {"data", std::vector<float>(static_cast<size_t>(rows) * 512, 0.f)}}};
}

// x float[N, M, 512] through `layers` MatMuls with one 512x512 weight of 1/512 (values keep
// their scale, so no denormals): slow enough that a blocker outlasts what the test does meanwhile.
std::string deep_model(int layers) {
  auto m = models::detail::new_model();
  auto* g = m.mutable_graph();
  models::detail::add_value(g->mutable_input(), "x", {-1, -1, 512});
  models::detail::add_value(g->mutable_output(), "y", {-1, -1, 512});
  models::detail::add_initializer(g, "w", {512, 512}, std::vector<float>(512 * 512, 1.f / 512));
  std::string prev = "x";
  for (int i = 0; i < layers; ++i) {
    const std::string out = i + 1 == layers ? "y" : "h" + std::to_string(i);
    models::detail::add_node(g, "MatMul", {prev, "w"}, {out});
    prev = out;
  }
  return m.SerializeAsString();
}

class SlowServer : public ::testing::Test {
 protected:
  void SetUp() override {
    write_file(repo_.path() / "slow" / "1" / "model.onnx", deep_model(48));
    write_file(repo_.path() / "slow" / "config.toml", "instances = 1\n");
    write_file(repo_.path() / "affine" / "1" / "model.onnx", models::affine_model(2.f, 1.f));
    s_.emplace(
        repo_.path(), std::vector<std::string>{"--port", "0", "--threads", "1"},
        std::vector<std::pair<std::string, std::string>>{{"DESKML_LOG_LEVEL", "info"}});  // access logs are read back
    ASSERT_GT(s_->port, 0) << s_->ready_line;
    ASSERT_EQ(s_->call("POST", "/v2/repository/models/slow/load").status, 200);
  }
  // Starts a long request (a few seconds on one thread) and waits until it runs.
  std::jthread blocker(int& status) {
    std::jthread t([this, &status] { status = infer_slow(*s_, 8192); });
    EXPECT_TRUE(
        wait_for(*s_, [](const json& st) { return st.value("outstanding", 0) == 1 && st.value("queued", 1) == 0; }));
    return t;
  }
  TempDir repo_;
  std::optional<ServerProcess> s_;
};

TEST_F(SlowServer, ClosingTheConnectionCancelsAQueuedInfer) {
  int blocker_status = 0;
  auto running = blocker(blocker_status);
  {
    Connection c(static_cast<uint16_t>(s_->port));
    post(c, *s_, "/v2/models/slow/infer", json({{"inputs", slow_input(1)}}).dump());
    ASSERT_TRUE(wait_for(*s_, [](const json& st) { return st.value("queued", 0) == 1; }));
  }  // closed while queued
  EXPECT_TRUE(wait_for(*s_, [](const json& st) { return st.value("queued", 1) == 0; }));
  EXPECT_TRUE(wait_for(*s_, [this](const json&) { return cancelled(*s_) == 1; })) << slow_stats(*s_).dump();
  running.join();
  EXPECT_EQ(blocker_status, 200);
  EXPECT_EQ(s_->call("GET", "/v2/health/ready").status, 200);
  const Reply m = s_->call("GET", "/metrics");
  EXPECT_NE(m.body.find("deskml_request_failures_total{model=\"slow\",reason=\"Cancelled\"} 1"), std::string::npos)
      << m.body;
}

TEST_F(SlowServer, ClosingAnInferStreamMidwayCancelsTheRest) {
  constexpr int kItems = 40;
  json items = json::array();
  for (int i = 0; i < kItems; ++i) items.push_back({{"inputs", slow_input(64)}});
  {
    Connection c(static_cast<uint16_t>(s_->port));
    post(c, *s_, "/v2/models/slow/infer_stream", json({{"items", items}}).dump());
    ASSERT_EQ(c.read_reply().status, 200);
    std::string first;
    ASSERT_TRUE(c.read_chunk(first));
    EXPECT_TRUE(json::parse(first).contains("outputs")) << first;
  }  // closed after the first line
  EXPECT_TRUE(wait_for(*s_, [](const json& st) { return st.value("outstanding", 1) == 0; }));
  const json st = slow_stats(*s_);
  EXPECT_GT(cancelled(*s_), 0) << st.dump();
  EXPECT_LT(st["inference_stats"]["success"]["count"].get<int>(), kItems) << st.dump();
  EXPECT_EQ(s_->call("GET", "/v2/health/ready").status, 200);
}

// ---- WebSocket ------------------------------------------------------------------------------

namespace beast = boost::beast;
namespace websocket = beast::websocket;
using boost::asio::ip::tcp;

struct WsClient {
  boost::asio::io_context ioc;
  websocket::stream<tcp::socket> ws{ioc};
  websocket::response_type response;

  // Connects and performs the handshake; the error (upgrade_declined with `response` when refused).
  beast::error_code open(int port, const std::string& target, const std::string& protocol = "",
                         const std::string& authorization = "") {
    ws.next_layer().connect(tcp::endpoint(boost::asio::ip::address_v4::loopback(), static_cast<uint16_t>(port)));
    ws.set_option(websocket::stream_base::decorator([=](websocket::request_type& req) {
      if (!protocol.empty()) req.set(beast::http::field::sec_websocket_protocol, protocol);
      if (!authorization.empty()) req.set(beast::http::field::authorization, authorization);
    }));
    beast::error_code ec;
    ws.handshake(response, "127.0.0.1:" + std::to_string(port), target, ec);
    return ec;
  }
  void send(const json& j) { ws.write(boost::asio::buffer(j.dump())); }
  json receive() {
    beast::flat_buffer b;
    ws.read(b);
    return json::parse(beast::buffers_to_string(b.data()));
  }
};

TEST_F(SlowServer, WebSocketNeedsTheToken) {
  const std::string target = "/v2/stream";
  EXPECT_EQ(WsClient().open(s_->port, target), websocket::error::upgrade_declined);
  WsClient wrong;
  EXPECT_EQ(wrong.open(s_->port, target, "bearer.wrong"), websocket::error::upgrade_declined);
  EXPECT_EQ(wrong.response.result_int(), 401);
  EXPECT_EQ(WsClient().open(s_->port, target + "?token=wrong"), websocket::error::upgrade_declined);
  WsClient evil;
  evil.ws.set_option(websocket::stream_base::decorator(
      [](websocket::request_type& req) { req.set(beast::http::field::origin, "https://evil.example"); }));
  evil.ws.next_layer().connect(tcp::endpoint(boost::asio::ip::address_v4::loopback(), static_cast<uint16_t>(s_->port)));
  beast::error_code ec;
  evil.ws.handshake(evil.response, "127.0.0.1:" + std::to_string(s_->port), target + "?token=" + s_->token, ec);
  EXPECT_EQ(evil.response.result_int(), 403);

  EXPECT_FALSE(WsClient().open(s_->port, target + "?token=" + s_->token));
  EXPECT_FALSE(WsClient().open(s_->port, target, "", s_->auth_header().substr(15)));
  WsClient browser;
  ASSERT_FALSE(browser.open(s_->port, target, "bearer." + s_->token));
  EXPECT_EQ(browser.response[beast::http::field::sec_websocket_protocol], "bearer." + s_->token);
  // Without the Upgrade header the endpoint says so.
  EXPECT_EQ(s_->call("GET", "/v2/stream").status, 426);
}

TEST_F(SlowServer, WebSocketAnswersEachMessageAndCancels) {
  WsClient c;
  ASSERT_FALSE(c.open(s_->port, "/v2/stream", "bearer." + s_->token));
  for (int i = 0; i < 3; ++i) {
    json m = affine_item(static_cast<float>(i));
    m["id"] = "r" + std::to_string(i);
    m["model"] = "affine";
    c.send(m);
  }
  c.send({{"id", "bad"}, {"model", "../etc"}, {"inputs", json::array()}});
  std::map<std::string, json> answers;
  for (int i = 0; i < 4; ++i) {
    json a = c.receive();
    answers[a["id"]] = a;
  }
  for (int i = 0; i < 3; ++i) {
    const json& a = answers["r" + std::to_string(i)];
    EXPECT_EQ(a["model_name"], "affine");
    const std::vector<float> y = a["outputs"][0]["data"];
    EXPECT_EQ(y, std::vector<float>(4, 2.f * static_cast<float>(i) + 1.f));
  }
  EXPECT_TRUE(answers["bad"].contains("error"));
  c.ws.write(boost::asio::buffer(std::string("not json")));
  EXPECT_TRUE(c.receive().contains("error"));

  // A queued request is cancelled by its id.
  int blocker_status = 0;
  auto running = blocker(blocker_status);
  c.send({{"id", "q"}, {"model", "slow"}, {"version", "1"}, {"inputs", slow_input(1)}});
  ASSERT_TRUE(wait_for(*s_, [](const json& st) { return st.value("queued", 0) == 1; }));
  c.send({{"type", "cancel"}, {"id", "q"}});
  const json a = c.receive();
  EXPECT_EQ(a["id"], "q");
  EXPECT_NE(a.value("error", "").find("cancel"), std::string::npos) << a.dump();
  EXPECT_EQ(cancelled(*s_), 1);
  running.join();
  EXPECT_EQ(blocker_status, 200);

  // Every answered message has its access-log line (written before the answer).
  int ok_lines = 0, cancelled_lines = 0;
  std::istringstream lines(s_->log());
  for (std::string line; std::getline(lines, line);) {
    const json j = json::parse(line, nullptr, false);
    if (!j.is_object() || j.value("event", "") != "ws_access") continue;
    EXPECT_EQ(j["path"], "/v2/stream");
    EXPECT_TRUE(j["ms"].is_number());
    EXPECT_FALSE(j.value("request_id", "").empty());
    if (j["model"] == "affine" && j["ok"] == true) ++ok_lines;
    if (j["model"] == "slow" && j["ok"] == false && j["error"].get<std::string>().find("cancel") != std::string::npos) {
      ++cancelled_lines;
    }
  }
  EXPECT_EQ(ok_lines, 3) << s_->log();
  EXPECT_EQ(cancelled_lines, 1) << s_->log();
}

TEST_F(SlowServer, ClosingAWebSocketCancelsWhatItHasInFlight) {
  int blocker_status = 0;
  auto running = blocker(blocker_status);
  {
    WsClient c;
    ASSERT_FALSE(c.open(s_->port, "/v2/stream?token=" + s_->token));
    for (int i = 0; i < 3; ++i) c.send({{"id", std::to_string(i)}, {"model", "slow"}, {"inputs", slow_input(1)}});
    ASSERT_TRUE(wait_for(*s_, [](const json& st) { return st.value("queued", 0) == 3; })) << slow_stats(*s_).dump();
    beast::error_code ec;
    c.ws.next_layer().close(ec);  // no closing handshake: the client just goes
  }
  EXPECT_TRUE(wait_for(*s_, [this](const json&) { return cancelled(*s_) == 3; })) << slow_stats(*s_).dump();
  running.join();
  EXPECT_EQ(blocker_status, 200);
  EXPECT_EQ(s_->call("GET", "/v2/health/ready").status, 200);
}

// ---- Unix socket and access logs -----------------------------------------------------------

TEST(ServerUnixSocket, ServesLocallyWithMode0600AndLogsAccess) {
  TempDir repo, dir;
  write_file(repo.path() / "affine" / "1" / "model.onnx", models::affine_model(2.f, 1.f));
  const std::string path = (dir.path() / "deskml.sock").string();
  ServerProcess s(repo.path(), {"--port", "0", "--unix", path}, {{"DESKML_LOG_LEVEL", "info"}});
  ASSERT_GT(s.port, 0) << s.ready_line;
  EXPECT_EQ(s.ready["unix"], path);
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  Connection c(path);
  ASSERT_TRUE(c.connected());
  const Reply r = c.request("POST", "/v2/models/affine/infer", affine_item(1.f).dump(),
                            {"Host: localhost", s.auth_header(), "X-Request-Id: unix-call-1"}, 0);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-request-id"), "unix-call-1");
  EXPECT_EQ(c.request("GET", "/v2/health/ready", "", {"Host: evil.example"}, 0).status, 403);
  EXPECT_EQ(s.call("GET", "/v2/health/live").status, 200);  // TCP as well

  // A second server refuses to take over a live socket.
  ServerProcess second(repo.path(), {"--port", "0", "--unix", path});
  EXPECT_EQ(second.port, 0);
  EXPECT_NE(second.wait_exit(), 0);

  EXPECT_EQ(s.terminate(), 0) << s.log();
  EXPECT_FALSE(fs::exists(path));
  const std::string log = s.log();
  bool found = false;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    const json j = json::parse(line, nullptr, false);
    if (!j.is_object() || j.value("event", "") != "http_access" || j.value("request_id", "") != "unix-call-1") continue;
    found = true;
    EXPECT_EQ(j["method"], "POST");
    EXPECT_EQ(j["path"], "/v2/models/affine/infer");
    EXPECT_EQ(j["status"], 200);
    EXPECT_EQ(j["remote"], "unix");
    EXPECT_GT(j["bytes_in"].get<int>(), 0);
    EXPECT_GT(j["bytes_out"].get<int>(), 0);
    EXPECT_TRUE(j["ms"].is_number());
  }
  EXPECT_TRUE(found) << log;
}

TEST(ServerUnixSocket, RefusesToReplaceAFileThatIsNotASocket) {
  TempDir repo, dir;
  const fs::path path = dir.path() / "not-a-socket";
  write_file(path, "precious");
  ServerProcess s(repo.path(), {"--port", "0", "--unix", path.string()});
  EXPECT_EQ(s.port, 0);
  EXPECT_NE(s.wait_exit(), 0);
  std::ifstream in(path);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "precious");
  EXPECT_NE(s.log().find("not a socket"), std::string::npos) << s.log();
}

}  // namespace

// ---- --ui: the folder of a page served at / ---------------------------------------------

class ServerUi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    repo_ = new TempDir();
    ui_ = new TempDir();
    outside_ = new TempDir();
    write_file(repo_->path() / "affine" / "1" / "model.onnx", models::affine_model(2.f, 1.f));
    const fs::path ui = ui_->path() / "ui";
    write_file(ui / "index.html", kIndex);
    write_file(ui / "app.js", "console.log('demo');\n");
    write_file(ui / "style.css", "body { margin: 0; }\n");
    write_file(ui / "sub" / "index.html", "<p>sub</p>");
    write_file(ui / ".hidden", "hidden");
    write_file(ui / ".git" / "config", "hidden");
    write_file(ui / "big.bin", std::string((size_t{16} << 20) + 1, 'x'));
    write_file(ui_->path() / "secret.txt", kSecret);  // beside the folder, not in it
    write_file(outside_->path() / "secret.txt", kSecret);
    fs::create_symlink(outside_->path() / "secret.txt", ui / "link-out.txt");
    fs::create_symlink(outside_->path(), ui / "dir-out");
    fs::create_symlink(ui / "app.js", ui / "link-in.js");  // stays inside: served
    server_ = new ServerProcess(repo_->path(), {"--port", "0", "--threads", "1", "--ui", ui.string()});
  }
  static void TearDownTestSuite() {
    delete server_;
    delete outside_;
    delete ui_;
    delete repo_;
  }
  // No token: the page's files need none.
  static Reply get(const std::string& target, std::vector<std::string> headers = {}) {
    return server_->call("GET", target, "", std::move(headers), false);
  }
  static constexpr const char* kIndex = "<!doctype html><title>demo</title>";
  static constexpr const char* kSecret = "the secret stays home";
  static TempDir *repo_, *ui_, *outside_;
  static ServerProcess* server_;
};
TempDir* ServerUi::repo_ = nullptr;
TempDir* ServerUi::ui_ = nullptr;
TempDir* ServerUi::outside_ = nullptr;
ServerProcess* ServerUi::server_ = nullptr;

TEST_F(ServerUi, IndexIsServedAtTheRootWithoutAToken) {
  ASSERT_GT(server_->port, 0) << server_->ready_line;
  for (const std::string target : {"/", "/index.html", "/?x=1", "/#frag"}) {
    const Reply r = get(target);
    EXPECT_EQ(r.status, 200) << target;
    EXPECT_EQ(r.body, kIndex) << target;
    EXPECT_EQ(r.header("content-type"), "text/html; charset=utf-8");
    EXPECT_EQ(r.header("x-content-type-options"), "nosniff");
    EXPECT_EQ(r.header("referrer-policy"), "no-referrer");
    EXPECT_NE(r.header("content-security-policy").find("connect-src 'self'"), std::string::npos);
  }
  const Reply sub = get("/sub/");
  EXPECT_EQ(sub.status, 200);
  EXPECT_EQ(sub.body, "<p>sub</p>");
  EXPECT_EQ(get("/sub").body, "<p>sub</p>");
  EXPECT_EQ(get("/nothing.html").status, 404);
}

TEST_F(ServerUi, ContentTypeFollowsTheExtension) {
  const Reply js = get("/app.js");
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(js.header("content-type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(js.body, "console.log('demo');\n");
  EXPECT_TRUE(js.header("content-security-policy").empty());
  EXPECT_EQ(get("/style.css").header("content-type"), "text/css; charset=utf-8");
  EXPECT_EQ(get("/%61pp.js").body, js.body);  // percent-decoded
  // A symlink that stays inside the folder is followed.
  EXPECT_EQ(get("/link-in.js").body, js.body);
}

TEST_F(ServerUi, HeadGivesTheHeadersWithoutTheBodyAndOtherMethodsAre405) {
  const Reply head = server_->call("HEAD", "/", "", {}, false);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-length"), std::to_string(std::string(kIndex).size()));
  EXPECT_EQ(head.header("content-type"), "text/html; charset=utf-8");
  EXPECT_TRUE(head.body.empty());
  const Reply post = server_->call("POST", "/index.html", "x", {}, false);
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.header("allow"), "GET, HEAD");
}

TEST_F(ServerUi, TraversalHiddenFilesAndSymlinksOutAreRefused) {
  for (const std::string bad : {"/..%2f..%2fetc/passwd",
                                "/%2e%2e/",
                                "/%2e%2e/secret.txt",
                                "/../secret.txt",
                                "/..%2fsecret.txt",
                                "/sub/..%2f..%2fsecret.txt",
                                "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                                "/%2fetc%2fpasswd",
                                "//etc/passwd",
                                "/.hidden",
                                "/%2ehidden",
                                "/.git/config",
                                "/sub/../.hidden",
                                "/link-out.txt",
                                "/dir-out/secret.txt",
                                "/dir-out/",
                                "/a%00b",
                                "/app.js%00.html",
                                "/sub\\..\\..\\secret.txt",
                                "/%5c..%5csecret.txt"}) {
    const Reply r = get(bad);
    EXPECT_TRUE(r.status == 404 || r.status == 400) << bad << " -> " << r.status;
    EXPECT_EQ(r.body.find(kSecret), std::string::npos) << bad;
    EXPECT_EQ(r.body.find("root:"), std::string::npos) << bad;
  }
  EXPECT_EQ(get("/%zz").status, 400);
}

TEST_F(ServerUi, FilesOverTheSizeLimitAreNotServed) { EXPECT_EQ(get("/big.bin").status, 500); }

TEST_F(ServerUi, TheApiStillNeedsTheTokenAndHostAndOriginAreChecked) {
  EXPECT_EQ(get("/v2").status, 401);
  EXPECT_EQ(get("/v2/").status, 401);
  EXPECT_EQ(get("/v2/models/affine").status, 401);
  EXPECT_EQ(get("/metrics").status, 401);
  EXPECT_EQ(server_->call("POST", "/v2/repository/index", "", {}, false).status, 401);
  EXPECT_EQ(server_->call("GET", "/v2/models/affine").status, 200);
  EXPECT_EQ(get("/v2/health/ready").status, 200);
  // A page elsewhere, or a rebound DNS name, gets nothing, not even the UI's files.
  EXPECT_EQ(get("/", {"Host: evil.example"}).status, 403);
  EXPECT_EQ(get("/", {"Origin: https://evil.example"}).status, 403);
  const Reply same = get("/", {"Origin: http://127.0.0.1:" + std::to_string(server_->port)});
  EXPECT_EQ(same.status, 200);
}

TEST_F(ServerTest, WithoutUiTheRootIsAnUnknownEndpoint) {
  EXPECT_EQ(server_->call("GET", "/").status, 404);
  EXPECT_EQ(server_->call("GET", "/index.html").status, 404);
  EXPECT_EQ(server_->call("GET", "/", "", {}, false).status, 401);
}

TEST(ServerUiOptions, RefusesAUiFolderThatDoesNotExist) {
  TempDir repo;
  ServerProcess s(repo.path(), {"--port", "0", "--ui", (repo.path() / "missing").string()});
  EXPECT_EQ(s.port, 0);
  EXPECT_NE(s.wait_exit(), 0);
}
