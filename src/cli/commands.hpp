// Each CLI subcommand registers itself on the app; main() only dispatches.
#pragma once

#include <CLI/CLI.hpp>

namespace deskml::cli {

void add_run_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_conformance_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_score_command(CLI::App& app);

// Exit codes shared by all commands.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;   // the operation failed (bad model, bad input)
inline constexpr int kExitUsage = 2;     // bad command line
inline constexpr int kExitUnavailable = 3;  // a service (a database) went away; rerunning may succeed

}  // namespace deskml::cli
