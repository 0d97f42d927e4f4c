#include "server/security.hpp"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "core/hex.hpp"

namespace deskml::server {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool all_digits(std::string_view s) {
  return !s.empty() && s.size() <= 5 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "http://localhost:5173" matches prefix "http://localhost" with any port (or none).
bool matches_with_any_port(std::string_view origin, std::string_view prefix) {
  if (origin.substr(0, prefix.size()) != prefix) return false;
  const std::string_view rest = origin.substr(prefix.size());
  return rest.empty() || (rest[0] == ':' && all_digits(rest.substr(1)));
}

}  // namespace

SecurityPolicy::SecurityPolicy(const ServerOptions& options, uint16_t port)
    : token_(options.token), allow_null_origin_(options.allow_null_origin), port_(port) {
  hosts_ = {"localhost", "127.0.0.1", "[::1]"};
  if (options.host_explicit) {
    std::string h = lower(options.host);
    if (h.find(':') != std::string::npos && h.front() != '[') h = "[" + h + "]";  // a bare IPv6 address
    if (std::find(hosts_.begin(), hosts_.end(), h) == hosts_.end()) hosts_.push_back(h);
  }
  origins_ = {"tauri://localhost", "http://tauri.localhost", "https://tauri.localhost"};
  for (const auto& o : options.allowed_origins) origins_.push_back(lower(o));
}

bool SecurityPolicy::authorized(std::string_view header) const {
  constexpr std::string_view kScheme = "Bearer ";
  if (header.size() < kScheme.size() || lower(header.substr(0, kScheme.size())) != "bearer ") return false;
  return !token_.empty() && constant_time_equal(header.substr(kScheme.size()), token_);
}

bool SecurityPolicy::host_allowed(std::string_view header) const {
  const std::string host = lower(header);
  std::string_view name = host, port;
  if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    if (close == std::string::npos) return false;
    name = std::string_view(host).substr(0, close + 1);
    const std::string_view rest = std::string_view(host).substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return false;
      port = rest.substr(1);
    }
  } else if (const size_t colon = host.find(':'); colon != std::string::npos) {
    name = std::string_view(host).substr(0, colon);
    port = std::string_view(host).substr(colon + 1);
    if (port.empty()) return false;
  }
  if (!port.empty() && (!all_digits(port) || std::stoul(std::string(port)) != port_)) return false;
  return std::find(hosts_.begin(), hosts_.end(), name) != hosts_.end();
}

bool SecurityPolicy::origin_allowed(std::string_view header) const {
  const std::string origin = lower(header);
  if (origin == "null") return allow_null_origin_;
  if (std::find(origins_.begin(), origins_.end(), origin) != origins_.end()) return true;
  for (std::string_view prefix : {"http://localhost", "http://127.0.0.1", "http://[::1]"}) {
    if (matches_with_any_port(origin, prefix)) return true;
  }
  return false;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  // The length is not secret (tokens have a fixed size); the contents are.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

Result<std::string> generate_token() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return internal_error("the OS random generator failed");
  return to_hex(bytes, sizeof bytes);
}

Result<std::filesystem::path> write_token_file(const std::string& token, uint16_t port) {
  namespace fs = std::filesystem;
  fs::path dir;
  if (const char* run = std::getenv("XDG_RUNTIME_DIR"); run && *run) {
    dir = fs::path(run) / "deskml";
  } else if (const char* cache = std::getenv("XDG_CACHE_HOME"); cache && *cache) {
    dir = fs::path(cache) / "deskml";
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    dir = fs::path(home) / ".cache" / "deskml";
  } else {
    return io_error("no folder for the token file: set XDG_RUNTIME_DIR, XDG_CACHE_HOME or HOME");
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return io_error("cannot create '" + dir.string() + "': " + ec.message());
  ::chmod(dir.c_str(), 0700);
  const fs::path file = dir / ("serve-" + std::to_string(port) + ".token");
  ::unlink(file.c_str());  // a stale file from an earlier run, perhaps with looser permissions
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return io_error("cannot create '" + file.string() + "'");
  const std::string line = token + "\n";
  const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ::close(fd);
  if (!written) return io_error("cannot write '" + file.string() + "'");
  return file;
}

}  // namespace deskml::server
