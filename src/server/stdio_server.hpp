// `deskml serve --stdio`: the sidecar mode. JSON-RPC 2.0 with one message per line on
// stdin and stdout, for a parent process (a Tauri or Electron shell) that spawned
// deskml and owns its pipes; logs stay on stderr. Requests run concurrently and are
// answered as they complete, each answer one whole line. End of input (the parent
// closed the pipe or died) drains what is in flight and returns, so deskml never
// outlives its parent. The methods, the base64 tensor form and the error codes are
// in docs/SERVER.md.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/status.hpp"
#include "server/options.hpp"
#include "serving/runtime.hpp"

namespace deskml::features {
class FeatureService;
}

namespace deskml::server {

// JSON-RPC error codes: the standard ones, then the server's for runtime failures.
namespace rpc {
constexpr int kParseError = -32700;
constexpr int kInvalidRequest = -32600;
constexpr int kMethodNotFound = -32601;
constexpr int kInvalidParams = -32602;
constexpr int kInternalError = -32603;
constexpr int kServerError = -32000;       // InvalidModel, IoError, Internal
constexpr int kNotFound = -32001;          // no such model or version
constexpr int kUnavailable = -32002;       // queue full (ResourceExhausted), not ready, shutting down
constexpr int kDeadlineExceeded = -32003;  // parameters.timeout passed
constexpr int kCancelled = -32004;         // cancelled at shutdown
}  // namespace rpc

// The JSON-RPC code a runtime failure is reported with. InvalidArgument, OutOfRange and
// Unsupported are the caller's fault: invalid params.
int rpc_code_for(StatusCode code);

// Standard base64 (RFC 4648, with padding); decoding refuses anything else.
std::string base64_encode(std::string_view bytes);
Result<std::string> base64_decode(std::string_view text);

// Serves JSON-RPC on `in_fd`/`out_fd` until `in_fd` reaches end of file, then waits up to
// options.drain_timeout for requests in flight, cancels the rest, and returns once every
// request has been answered. Lines longer than options.max_body_bytes are refused.
// `features`, when given, answers requests naming a feature source and keys.
Status serve_stdio(serving::Runtime& runtime, const ServerOptions& options, int in_fd = 0, int out_fd = 1,
                   features::FeatureService* features = nullptr);

}  // namespace deskml::server
