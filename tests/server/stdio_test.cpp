// Drives `deskml serve --stdio` as a parent process would: spawns the real binary with
// pipes on stdin and stdout, writes JSON-RPC lines, reads the answers, closes stdin and
// checks that the process answered everything and exited 0.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
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

std::string b64(const std::string& bytes) {
  static const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = (uint32_t{static_cast<uint8_t>(bytes[i])} << 16) |
                       (uint32_t{static_cast<uint8_t>(bytes[i + 1])} << 8) | static_cast<uint8_t>(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += abc[(v >> s) & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = uint32_t{static_cast<uint8_t>(bytes[i])} << 16;
    if (i + 1 < bytes.size()) v |= uint32_t{static_cast<uint8_t>(bytes[i + 1])} << 8;
    out += abc[(v >> 18) & 63];
    out += abc[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? abc[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

class StdioProcess {
 public:
  StdioProcess(const fs::path& repo, const std::vector<std::string>& args = {}) {
    int in[2], out[2];
    EXPECT_EQ(::pipe(in), 0);
    EXPECT_EQ(::pipe(out), 0);
    log_ = fs::path(dir_.path()) / "stderr.log";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      for (int fd : {in[0], in[1], out[0], out[1]}) ::close(fd);
      std::FILE* err = std::fopen(log_.c_str(), "w");
      if (err) ::dup2(::fileno(err), 2);
      ::setenv("XDG_CACHE_HOME", dir_.path().c_str(), 1);
      ::setenv("DESKML_LOG_LEVEL", "info", 1);
      std::vector<std::string> all = {DESKML_BINARY, "serve", "--models", repo.string(), "--stdio"};
      all.insert(all.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    in_fd_ = in[1];
    out_fd_ = out[0];
  }
  ~StdioProcess() {
    if (in_fd_ >= 0) ::close(in_fd_);
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
  }

  void send(const std::string& line) {
    const std::string data = line + "\n";
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::write(in_fd_, data.data() + off, data.size() - off);
      ASSERT_GT(n, 0) << std::strerror(errno);
      off += static_cast<size_t>(n);
    }
  }
  void send(const json& j) { send(j.dump()); }
  void close_stdin() {
    ::close(in_fd_);
    in_fd_ = -1;
  }

  // Reads one line (empty at end of output or after `timeout`).
  std::string read_line(std::chrono::seconds timeout = std::chrono::seconds(60)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (buffer_.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{out_fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char c[65536];
      const ssize_t n = ::read(out_fd_, c, sizeof c);
      if (n <= 0) break;
      buffer_.append(c, static_cast<size_t>(n));
    }
    const size_t nl = buffer_.find('\n');
    if (nl == std::string::npos) return {};
    std::string line = buffer_.substr(0, nl);
    buffer_.erase(0, nl + 1);
    return line;
  }
  json read_json() {
    const std::string line = read_line();
    return json::parse(line, nullptr, false);
  }
  // Every remaining line until the process closes stdout.
  std::vector<json> read_all() {
    std::vector<json> out;
    for (std::string line = read_line(); !line.empty(); line = read_line()) out.push_back(json::parse(line));
    return out;
  }

  // The exit code, or -1 when it did not exit normally within 30 s.
  int wait_exit() {
    for (int i = 0; i < 3000; ++i) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }
  void signal(int sig) { ::kill(pid_, sig); }
  bool gone() const { return exited_ && ::kill(pid_, 0) != 0 && errno == ESRCH; }
  std::string log() const {
    std::ifstream in(log_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  TempDir dir_;
  fs::path log_;
  pid_t pid_ = -1;
  int in_fd_ = -1, out_fd_ = -1;
  bool exited_ = false;
  std::string buffer_;
};

json request(const json& id, const std::string& method, const json& params = nullptr) {
  json j = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
  if (!params.is_null()) j["params"] = params;
  return j;
}

json affine_infer(const json& id, float x) {
  return request(
      id, "infer",
      {{"model", "affine"},
       {"inputs", json::array({{{"name", "x"}, {"datatype", "FP32"}, {"shape", {1, 4}}, {"data", {x, x, x, x}}}})}});
}

class StdioTest : public ::testing::Test {
 protected:
  void SetUp() override { write_file(repo_.path() / "affine" / "1" / "model.onnx", models::affine_model(2.0f, 1.0f)); }
  TempDir repo_;
};

TEST_F(StdioTest, AnswersEveryMethodAndExitsZeroOnEndOfInput) {
  StdioProcess p(repo_.path());
  p.send(request(1, "health"));
  json r = p.read_json();
  EXPECT_EQ(r["jsonrpc"], "2.0");
  EXPECT_EQ(r["id"], 1);
  EXPECT_EQ(r["result"]["live"], true);
  EXPECT_EQ(r["result"]["ready"], true);

  std::map<std::string, json> answers;
  auto collect = [&](size_t n) {
    for (size_t i = 0; i < n; ++i) {
      json a = p.read_json();
      ASSERT_TRUE(a.is_object()) << p.log();
      const std::string key = a["id"].dump();
      EXPECT_FALSE(answers.count(key)) << "answered twice: " << key;
      answers[key] = a;
    }
  };

  // Concurrent requests, answered in whatever order they finish.
  for (int i = 0; i < 16; ++i) p.send(affine_infer("req-" + std::to_string(i), static_cast<float>(i)));
  collect(16);
  for (int i = 0; i < 16; ++i) {
    const json& a = answers["\"req-" + std::to_string(i) + "\""];
    ASSERT_TRUE(a.contains("result")) << a.dump();
    EXPECT_EQ(a["result"]["model_name"], "affine");
    EXPECT_EQ(a["result"]["outputs"][0]["data"][0].get<float>(), 2.0f * static_cast<float>(i) + 1.0f);
  }

  // Base64 in and out.
  const std::vector<float> x = {1, 2, 3, 4};
  const std::string bytes(reinterpret_cast<const char*>(x.data()), sizeof(float) * 4);
  p.send(request(
      "b64", "infer",
      {{"model", "affine"},
       {"version", "1"},
       {"parameters", {{"binary_data_output", true}}},
       {"inputs",
        json::array({{{"name", "x"}, {"datatype", "FP32"}, {"shape", {1, 4}}, {"data_base64", b64(bytes)}}})}}));
  r = p.read_json();
  ASSERT_TRUE(r.contains("result")) << r.dump();
  const std::vector<float> y = {3, 5, 7, 9};
  EXPECT_EQ(r["result"]["outputs"][0]["data_base64"],
            b64(std::string(reinterpret_cast<const char*>(y.data()), sizeof(float) * 4)));
  EXPECT_FALSE(r["result"]["outputs"][0].contains("data"));

  // Errors, each with its standard code.
  p.send(std::string("{\"jsonrpc\": \"2.0\", \"id\": 7, \"method\": "));
  r = p.read_json();
  EXPECT_EQ(r["error"]["code"], -32700);
  EXPECT_TRUE(r["id"].is_null());
  p.send(request(8, "no_such_method"));
  r = p.read_json();
  EXPECT_EQ(r["id"], 8);
  EXPECT_EQ(r["error"]["code"], -32601);
  p.send(json{{"id", 9}, {"method", "health"}});  // no "jsonrpc"
  r = p.read_json();
  EXPECT_EQ(r["error"]["code"], -32600);
  p.send(request(10, "infer", {{"model", "../etc"}, {"inputs", json::array()}}));
  r = p.read_json();
  EXPECT_EQ(r["error"]["code"], -32602);
  p.send(request(11, "infer", {{"model", "affine"}, {"inputs", "nope"}}));
  r = p.read_json();
  EXPECT_EQ(r["error"]["code"], -32602);
  EXPECT_EQ(r["error"]["data"]["status"], "InvalidArgument");
  p.send(request(12, "model_ready", {{"model", "missing"}}));
  r = p.read_json();
  EXPECT_EQ(r["error"]["code"], -32001);
  EXPECT_EQ(r["error"]["data"]["status"], "NotFound");
  p.send(request(
      13, "infer",
      {{"model", "affine"},
       {"inputs", json::array({{{"name", "x"}, {"datatype", "FP32"}, {"shape", {4}}, {"data_base64", "@@"}}})}}));
  r = p.read_json();
  EXPECT_EQ(r["error"]["code"], -32602);

  // A notification runs but is never answered: the next answer is for id 14.
  p.send(json{{"jsonrpc", "2.0"}, {"method", "health"}});
  p.send(json{{"jsonrpc", "2.0"}, {"method", "no_such_method"}});
  p.send(request(14, "server_metadata"));
  r = p.read_json();
  EXPECT_EQ(r["id"], 14);
  EXPECT_EQ(r["result"]["name"], "deskml");

  // The management and introspection methods.
  p.send(request(15, "model_metadata", {{"model", "affine"}}));
  r = p.read_json();
  EXPECT_EQ(r["result"]["inputs"][0]["name"], "x");
  p.send(request(16, "model_ready", {{"model", "affine"}}));
  r = p.read_json();
  EXPECT_EQ(r["result"]["ready"], true);
  p.send(request(17, "stats", {{"model", "affine"}}));
  r = p.read_json();
  EXPECT_GE(r["result"]["model_stats"][0]["inference_count"].get<int>(), 17);
  p.send(request(18, "repository_index", {{"ready", true}}));
  r = p.read_json();
  ASSERT_EQ(r["result"].size(), 1u);
  EXPECT_EQ(r["result"][0]["name"], "affine");
  p.send(request(19, "metrics"));
  r = p.read_json();
  EXPECT_NE(r["result"].get<std::string>().find("deskml_"), std::string::npos);
  p.send(request(20, "unload", {{"model", "affine"}}));
  r = p.read_json();
  EXPECT_TRUE(r.contains("result")) << r.dump();
  p.send(request(21, "model_ready", {{"model", "affine"}}));
  r = p.read_json();
  EXPECT_EQ(r["result"]["ready"], false);
  p.send(request(22, "load", {{"model", "affine"}}));
  r = p.read_json();
  EXPECT_TRUE(r.contains("result")) << r.dump();
  p.send(request(23, "load", {{"model", "missing"}}));
  r = p.read_json();
  EXPECT_EQ(r["error"]["code"], -32001);

  // End of input: the process answers what it was given and exits 0; stdout holds
  // nothing but answers.
  p.send(affine_infer("last", 1.0f));
  p.close_stdin();
  const auto rest = p.read_all();
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0]["id"], "last");
  EXPECT_EQ(p.wait_exit(), 0) << p.log();
  EXPECT_TRUE(p.gone());
  EXPECT_NE(p.log().find("runtime_started"), std::string::npos) << "logs go to stderr";
}

TEST_F(StdioTest, RefusesAnOverlongLineAndKeepsServing) {
  StdioProcess p(repo_.path(), {"--max-body-mb", "1"});
  p.send(std::string(3 << 20, 'x'));
  json r = p.read_json();
  EXPECT_EQ(r["error"]["code"], -32600);
  p.send(request(2, "health"));
  r = p.read_json();
  EXPECT_EQ(r["id"], 2);
  p.close_stdin();
  EXPECT_TRUE(p.read_all().empty());
  EXPECT_EQ(p.wait_exit(), 0) << p.log();
}

TEST_F(StdioTest, EndOfInputAnswersOrCancelsWorkInFlight) {
  write_file(repo_.path() / "slow" / "1" / "model.onnx", models::slow_model());
  StdioProcess p(repo_.path(), {"--threads", "1"});
  const json input = {
      {"name", "x"}, {"datatype", "FP32"}, {"shape", {1, 512, 512}}, {"data", std::vector<float>(512 * 512, 0.01f)}};
  constexpr int kRequests = 8;
  for (int i = 0; i < kRequests; ++i) p.send(request(i, "infer", {{"model", "slow"}, {"inputs", {input}}}));
  p.close_stdin();  // as if the parent crashed
  const auto answers = p.read_all();
  ASSERT_EQ(answers.size(), static_cast<size_t>(kRequests));
  for (const auto& a : answers) {
    if (a.contains("error")) {
      EXPECT_EQ(a["error"]["data"]["status"], "Cancelled") << a.dump();
    } else {
      EXPECT_EQ(a["result"]["outputs"][0]["shape"], json({1, 512, 512}));
    }
  }
  EXPECT_EQ(p.wait_exit(), 0) << p.log();
  EXPECT_TRUE(p.gone());
}

TEST_F(StdioTest, SigtermDrainsWorkInFlightAndExitsZero) {
  write_file(repo_.path() / "slow" / "1" / "model.onnx", models::slow_model());
  StdioProcess p(repo_.path(), {"--threads", "1"});
  const json input = {
      {"name", "x"}, {"datatype", "FP32"}, {"shape", {1, 512, 512}}, {"data", std::vector<float>(512 * 512, 0.01f)}};
  constexpr int kRequests = 4;
  for (int i = 0; i < kRequests; ++i) p.send(request(i, "infer", {{"model", "slow"}, {"inputs", {input}}}));
  p.send(request("ping", "health"));
  std::vector<json> answers;
  for (json a = p.read_json(); a["id"] != "ping"; a = p.read_json()) answers.push_back(a);  // all lines read
  p.signal(SIGTERM);
  for (auto& a : p.read_all()) answers.push_back(a);
  ASSERT_EQ(answers.size(), static_cast<size_t>(kRequests));
  for (const auto& a : answers) EXPECT_TRUE(a.contains("result")) << a.dump();
  EXPECT_EQ(p.wait_exit(), 0) << p.log();
  EXPECT_TRUE(p.gone());
}

}  // namespace
