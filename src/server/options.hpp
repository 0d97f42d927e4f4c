// What `deskml serve` is told on its command line, and the limits it enforces.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace deskml::server {

struct ServerOptions {
  std::string host = "127.0.0.1";            // the address to bind
  bool host_explicit = false;                // --host was given: its value is also an accepted Host header
  uint16_t port = 0;                         // 0: the OS picks one (reported in the ready line)
  std::string token;                         // the bearer token every endpoint but /v2/health/* requires
  std::vector<std::string> allowed_origins;  // --allow-origin, on top of the built-in webview origins
  // Inference, metadata and streaming without a token (the token is still required for
  // the repository, statistics and metrics). Host and Origin checks still apply.
  bool open_inference = false;
  bool allow_null_origin = false;  // accept `Origin: null` (sandboxed frames, file:// pages)
  std::string unix_path;           // --unix: also listen on this Unix domain socket (mode 0600)
  int io_threads = 2;              // threads running the sockets; inference runs on the runtime's
  // --ui: a folder (canonical, symlinks resolved) whose files are served at `/` without a token;
  // empty: no UI, and `/` is an unknown endpoint.
  std::string ui_dir;
  size_t max_ui_file_bytes = size_t{16} << 20;  // a larger UI file is answered 500

  // Bounds on what a client may send.
  size_t max_body_bytes = size_t{64} << 20;
  uint32_t max_header_bytes = 16 * 1024;
  int max_json_depth = 64;
  int64_t max_tensor_elements = int64_t{1} << 28;
  size_t max_stream_items = 4096;  // items in one NDJSON infer_stream request
  size_t max_ws_in_flight = 256;   // unanswered requests on one WebSocket connection

  std::chrono::seconds idle_timeout{60};   // a keep-alive connection with no request is closed
  std::chrono::seconds drain_timeout{10};  // SIGTERM: how long in-flight requests may take
  std::chrono::seconds retry_after{1};     // advertised with 503 when a queue is full
};

}  // namespace deskml::server
