// A `deskml serve` child process and a keep-alive HTTP/1.1 client for it, for the
// online feature lookup tests.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <nlohmann/json.hpp>

#include "features/feature_service.hpp"
#include "features_test_util.hpp"

namespace deskml::features::testing {

class ServeProcess {
 public:
  ServeProcess(const fs::path& models, const fs::path& dir)
      : child_({DESKML_BINARY, "serve", "--models", models.string(), "--port", "0", "--threads", "1"}, dir, "serve"),
        out_(dir / "serve.out") {
    // The ready line: {"host", "port", "token", ...}.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string text = read_file(out_);
      if (const size_t nl = text.find('\n'); nl != std::string::npos) {
        const auto ready = nlohmann::json::parse(text.substr(0, nl), nullptr, false);
        if (ready.is_object()) {
          port = ready.value("port", 0);
          token = ready.value("token", "");
        }
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "deskml serve printed no ready line";
  }
  ~ServeProcess() {
    child_.signal(SIGTERM);
    child_.wait(std::chrono::seconds(30));
  }

  int port = 0;
  std::string token;

 private:
  Child child_;
  fs::path out_;
};

struct HttpReply {
  int status = 0;
  std::string body;
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};

// One keep-alive connection to 127.0.0.1:port.
class HttpClient {
 public:
  explicit HttpClient(int port) : port_(port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  }
  ~HttpClient() { ::close(fd_); }

  HttpReply post(const std::string& path, const std::string& body, const std::string& token) {
    std::string req = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port_) +
                      "\r\nAuthorization: Bearer " + token +
                      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                      "\r\n\r\n" + body;
    for (size_t off = 0; off < req.size();) {
      const ssize_t n = ::send(fd_, req.data() + off, req.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return {};
      off += static_cast<size_t>(n);
    }
    HttpReply r;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return r;
    }
    const std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    r.status = std::stoi(head.substr(9, 3));
    size_t length = 0;
    for (size_t pos = head.find("\r\n"); pos != std::string::npos; pos = head.find("\r\n", pos + 2)) {
      std::string line = head.substr(pos + 2, head.find("\r\n", pos + 2) - pos - 2);
      for (auto& c : line) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (line.rfind("content-length:", 0) == 0) length = std::stoul(line.substr(15));
    }
    while (buf_.size() < length) {
      if (!fill()) return r;
    }
    r.body = buf_.substr(0, length);
    buf_.erase(0, length);
    return r;
  }

 private:
  bool fill() {
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buf_.append(chunk, static_cast<size_t>(n));
    return true;
  }
  int port_;
  int fd_ = -1;
  std::string buf_;
};

// A copy of the tabular model repository whose config.toml also declares
// [features.sources.<name>] with `uri`, `query` and key `id`.
inline void write_repository_with_source(const fs::path& repo, const std::string& name, const std::string& uri,
                                         const std::string& query) {
  fs::create_directories(repo);
  fs::copy(tabular_models() / "breast_cancer", repo / "breast_cancer", fs::copy_options::recursive);
  std::ofstream(repo / "breast_cancer" / "config.toml", std::ios::app)
      << "\n[features.sources." << name << "]\nuri = \"" << uri << "\"\nquery = \"" << query << "\"\nkey = \"id\"\n";
}

// p-th percentile of samples (sorted here).
inline double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// The online-lookup latency the tests report: 300 one-key requests for the
// breast-cancer model (keys 1..569 in turn) from source "clinic", each checked,
// then p50/p99 printed under `backend`. Call through ASSERT_NO_FATAL_FAILURE.
constexpr int kLatencyRequests = 300;

inline void time_cpp_lookups(FeatureService& service, const char* backend) {
  std::vector<double> ms;
  for (int i = 0; i < kLatencyRequests; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = service.infer("breast_cancer", "clinic", {Key(int64_t{1 + i % 569})}).get();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    ASSERT_TRUE(r.ok()) << r.status().to_string();
  }
  std::printf("C++ API, %s, one key: p50 %.3f ms, p99 %.3f ms (%d requests)\n", backend, percentile(ms, 0.5),
              percentile(ms, 0.99), kLatencyRequests);
  EXPECT_LT(percentile(ms, 0.5), 50.0);
}

inline void time_http_lookups(HttpClient& http, const std::string& token, const char* backend) {
  std::vector<double> ms;
  for (int i = 0; i < kLatencyRequests; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto r =
        http.post("/v2/models/breast_cancer/infer",
                  R"({"features": {"source": "clinic", "keys": [)" + std::to_string(1 + i % 569) + "]}}", token);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    ASSERT_EQ(r.status, 200) << r.body;
  }
  std::printf("HTTP, %s, one key: p50 %.3f ms, p99 %.3f ms (%d requests, one keep-alive connection)\n", backend,
              percentile(ms, 0.5), percentile(ms, 0.99), kLatencyRequests);
  EXPECT_LT(percentile(ms, 0.5), 50.0);
}

}  // namespace deskml::features::testing
