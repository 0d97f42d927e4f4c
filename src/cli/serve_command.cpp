// deskml serve --models DIR [--host 127.0.0.1] [--port N|0] [--token TOKEN] [--ui DIR] ...
// Serves a model repository over HTTP (KServe v2; docs/SERVER.md). Once listening,
// prints one JSON line on stdout ({"host", "port", "token", "token_file"}) for the
// parent process to read; logs go to stderr.
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "features/feature_service.hpp"
#include "server/security.hpp"
#include "server/server.hpp"
#include "server/stdio_server.hpp"
#include "serving/runtime.hpp"

extern int g_exit_code;

namespace deskml::cli {
namespace {

struct ServeOptions {
  std::string models;
  server::ServerOptions server;
  size_t max_body_mb = 64;
  int threads = 0;
  bool stdio = false;
};

Status serve(ServeOptions opts) {
  if (opts.server.token.empty()) {
    if (const char* env = std::getenv("DESKML_TOKEN"); env && *env) opts.server.token = env;
  }
  opts.server.max_body_bytes = opts.max_body_mb << 20;
  if (!opts.server.ui_dir.empty()) {
    // Canonical once: every file served must resolve to a path under this one.
    std::error_code ec;
    const auto ui = std::filesystem::canonical(opts.server.ui_dir, ec);
    if (ec || !std::filesystem::is_directory(ui))
      return invalid_argument("--ui " + opts.server.ui_dir + ": not a folder");
    if (opts.stdio) return invalid_argument("--ui serves files over HTTP; it cannot go with --stdio");
    opts.server.ui_dir = ui.string();
  }

  serving::RuntimeOptions ro;
  ro.repository = opts.models;
  ro.threads = opts.threads;
  DESKML_ASSIGN_OR_RETURN(auto runtime, serving::Runtime::create(ro));
  // Requests may name a feature source of the model's config.toml and keys instead of tensors.
  features::FeatureServiceOptions fo;
  fo.repository = opts.models;
  DESKML_ASSIGN_OR_RETURN(auto feature_service, features::FeatureService::create(*runtime, fo));
  if (opts.stdio) return server::serve_stdio(*runtime, opts.server, 0, 1, feature_service.get());

  std::filesystem::path token_file;
  const bool generated = opts.server.token.empty();
  if (generated) {
    DESKML_ASSIGN_OR_RETURN(opts.server.token, server::generate_token());
  }
  {
    server::Server srv(*runtime, opts.server);
    srv.set_feature_service(feature_service.get());
    DESKML_RETURN_IF_ERROR(srv.listen());
    if (generated) {
      DESKML_ASSIGN_OR_RETURN(token_file, server::write_token_file(opts.server.token, srv.port()));
    }
    nlohmann::json ready = {{"host", opts.server.host}, {"port", srv.port()}, {"token", opts.server.token}};
    ready["token_file"] = token_file.empty() ? nlohmann::json(nullptr) : nlohmann::json(token_file.string());
    if (!opts.server.unix_path.empty()) ready["unix"] = opts.server.unix_path;
    std::cout << ready.dump() << std::endl;  // endl flushes: the parent is waiting for this line
    srv.run();
  }
  feature_service.reset();  // answers lookups still queued, waits for those running
  runtime.reset();          // lets queued requests finish and unloads the models
  if (!token_file.empty()) {
    std::error_code ec;
    std::filesystem::remove(token_file, ec);
  }
  return Status::Ok();
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto opts = std::make_shared<ServeOptions>();
  auto* cmd = app.add_subcommand(
      "serve",
      "Serve a model repository over HTTP (KServe v2 protocol). Once listening, prints one JSON line on stdout: "
      "{\"host\", \"port\", \"token\", \"token_file\"}. Logs go to stderr. SIGTERM or SIGINT drains and exits.");
  cmd->add_option("--models", opts->models, "The model repository folder (DIR/<name>/<version>/model.onnx)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option_function<std::string>(
         "--host",
         [opts](const std::string& h) {
           opts->server.host = h;
           opts->server.host_explicit = true;
         },
         "IP address to bind (default 127.0.0.1). Another address is also accepted in the Host header")
      ->default_str("127.0.0.1");
  cmd->add_option("--port", opts->server.port, "TCP port; 0 (default) lets the OS pick one, reported in the ready line")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--unix", opts->server.unix_path,
                  "Also listen on this Unix domain socket (mode 0600, removed at exit; an existing non-socket file "
                  "is never replaced). Named in the ready line as \"unix\"");
  cmd->add_option("--token", opts->server.token,
                  "Bearer token clients must send (default: $DESKML_TOKEN, else a random one generated per launch "
                  "and written to a 0600 file named in the ready line)");
  cmd->add_option("--allow-origin", opts->server.allowed_origins,
                  "An extra allowed browser Origin, e.g. https://app.example (repeatable). Always allowed: "
                  "tauri://localhost, http(s)://tauri.localhost, http://localhost and http://127.0.0.1 on any port");
  cmd->add_flag("--open-inference", opts->server.open_inference,
                "Let inference, metadata, readiness and streaming through without the bearer token (Host and "
                "Origin are still checked); repository load/unload/index, statistics and /metrics always need it");
  cmd->add_option("--ui", opts->server.ui_dir,
                  "Serve this folder's files at / (GET and HEAD, / is index.html) without the token, for a page "
                  "that calls the API from the same origin, e.g. --ui web/demo. Hidden files and paths leaving "
                  "the folder (.., symlinks) are 404; Host and Origin are still checked")
      ->check(CLI::ExistingDirectory);
  cmd->add_flag("--allow-null-origin", opts->server.allow_null_origin,
                "Accept requests with 'Origin: null' (sandboxed iframes, file:// pages); refused by default");
  cmd->add_option("--max-body-mb", opts->max_body_mb, "Largest request body accepted, in MiB (default 64); larger: 413")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--threads", opts->threads, "Inference thread budget shared by all models (default: physical cores)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--io-threads", opts->server.io_threads,
                  "Threads running the sockets and the JSON/binary codecs (default 2); inference runs on the "
                  "runtime's own threads")
      ->check(CLI::Range(1, 64));
  cmd->add_flag("--stdio", opts->stdio,
                "Sidecar mode: JSON-RPC 2.0 on stdin/stdout, one message per line, instead of HTTP; no token; "
                "exits when stdin closes (docs/SERVER.md)");
  cmd->callback([opts] {
    Status st = serve(*opts);
    if (!st.ok()) {
      std::cerr << "deskml serve: " << st.to_string() << "\n";
      g_exit_code = kExitFailure;
    }
  });
}

}  // namespace deskml::cli
