// deskml command line: run, inspect, conformance, bench, serve, score.
#include <iostream>

#include "cli/commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"deskml: a native ONNX inference engine for desktop applications"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("deskml 0.1.0"));
  deskml::cli::add_run_command(app);
  deskml::cli::add_inspect_command(app);
  deskml::cli::add_conformance_command(app);
  deskml::cli::add_bench_command(app);
  deskml::cli::add_serve_command(app);
  deskml::cli::add_score_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return deskml::cli::kExitUsage;
  }
  // Subcommand callbacks set the exit code through this static.
  extern int g_exit_code;
  return g_exit_code;
}

int g_exit_code = 0;
