// deskml run MODEL --input NAME=FILE.npy ... --output-dir DIR
#include <filesystem>
#include <iostream>

#include "cli/commands.hpp"
#include "core/npy.hpp"
#include "runtime/session.hpp"

extern int g_exit_code;

namespace deskml::cli {
namespace {

namespace fs = std::filesystem;

struct RunOptions {
  std::string model;
  std::vector<std::string> inputs;
  std::string output_dir;
  int threads = 0;
  bool plan_cache = false;
};

// Output names become file names: anything outside [A-Za-z0-9_.-] turns into '_'.
std::string sanitize(const std::string& name) {
  std::string out = name;
  for (char& c : out) {
    const bool ok =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (!ok) c = '_';
  }
  if (out.empty() || out == "." || out == "..") out = "_" + out;
  return out;
}

Status run(const RunOptions& opts) {
  runtime::SessionOptions session_options;
  session_options.threads = opts.threads;
  session_options.plan_cache = opts.plan_cache;
  std::vector<std::pair<std::string, Tensor>> feeds;
  for (const auto& spec : opts.inputs) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
      return invalid_argument("--input expects NAME=FILE.npy, got '" + spec + "'");
    }
    DESKML_ASSIGN_OR_RETURN(Tensor t, read_npy(spec.substr(eq + 1)));
    feeds.emplace_back(spec.substr(0, eq), std::move(t));
  }
  DESKML_ASSIGN_OR_RETURN(auto session, runtime::Session::load(opts.model, session_options));
  DESKML_ASSIGN_OR_RETURN(auto outputs, session->run(feeds));
  std::error_code ec;
  fs::create_directories(opts.output_dir, ec);
  if (ec) return io_error("cannot create output directory '" + opts.output_dir + "': " + ec.message());
  for (const auto& [name, tensor] : outputs) {
    const fs::path file = fs::path(opts.output_dir) / (sanitize(name) + ".npy");
    if (!tensor.defined()) return internal_error("output '" + name + "' was not produced");
    DESKML_RETURN_IF_ERROR(write_npy(file, tensor));
    std::cout << name << ": " << tensor.description() << " -> " << file.string() << "\n";
  }
  return Status::Ok();
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto opts = std::make_shared<RunOptions>();
  auto* cmd = app.add_subcommand("run", "Run a model once on .npy inputs and write each output as DIR/<name>.npy");
  cmd->add_option("model", opts->model, "Path to the .onnx model")->required()->check(CLI::ExistingFile);
  cmd->add_option("--input,-i", opts->inputs, "An input as NAME=FILE.npy (repeat for each input)");
  cmd->add_option("--output-dir,-o", opts->output_dir, "Directory for the outputs (created if missing)")->required();
  cmd->add_option("--threads", opts->threads, "Threads for the run (default: physical cores)")
      ->check(CLI::Range(0, 1024));
  cmd->add_flag("--plan-cache", opts->plan_cache,
                "Load through the on-disk plan cache (<model>.deskml-plan beside the model), writing it when "
                "missing or stale");
  cmd->callback([opts] {
    Status st = run(*opts);
    if (!st.ok()) {
      std::cerr << "deskml run: " << st.to_string() << "\n";
      g_exit_code = kExitFailure;
    }
  });
}

}  // namespace deskml::cli
