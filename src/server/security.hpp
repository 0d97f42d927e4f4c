// The checks that keep a loopback server private to the user who started it: a
// bearer token, a Host allowlist (DNS rebinding), an Origin allowlist (other web
// pages in the user's browser), and the token's generation and storage.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.hpp"
#include "server/options.hpp"

namespace deskml::server {

class SecurityPolicy {
 public:
  // `port` is the port actually bound (after --port 0 was resolved).
  SecurityPolicy(const ServerOptions& options, uint16_t port);

  // `Authorization: Bearer <token>`, compared in constant time.
  bool authorized(std::string_view authorization_header) const;
  // The Host header names a loopback host (localhost, 127.0.0.1, [::1]) or the
  // explicitly bound --host, with no port or the bound one.
  bool host_allowed(std::string_view host_header) const;
  // The webview origins (tauri://localhost, http(s)://tauri.localhost), http://localhost,
  // http://127.0.0.1 and http://[::1] on any port, --allow-origin values, and "null" only
  // with --allow-null-origin.
  bool origin_allowed(std::string_view origin) const;

 private:
  std::string token_;
  std::vector<std::string> hosts_;    // lower case, without port
  std::vector<std::string> origins_;  // exact, lower case
  bool allow_null_origin_;
  uint16_t port_;
};

// Compares without an early exit, so timing reveals nothing about where they differ.
bool constant_time_equal(std::string_view a, std::string_view b);
// 32 random bytes from the OS CSPRNG (OpenSSL RAND_bytes), hex encoded.
Result<std::string> generate_token();
// Writes the token to `<dir>/serve-<port>.token` with mode 0600 (the folder 0700), where
// dir is $XDG_RUNTIME_DIR/deskml, else $XDG_CACHE_HOME/deskml or ~/.cache/deskml.
Result<std::filesystem::path> write_token_file(const std::string& token, uint16_t port);

}  // namespace deskml::server
