// deskml conformance [--json] [DIR ...]: ONNX's official backend test cases.
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "cli/commands.hpp"
#include "cli/conformance_runner.hpp"

extern int g_exit_code;

namespace deskml::cli {
namespace {

constexpr const char* kDefaultRoot = "/usr/share/libonnx-testdata/data";

struct Options {
  std::vector<std::string> dirs;
  bool json = false;
  std::string filter;
  std::string expect_file;
  std::string write_passing;
  bool verbose = false;
  ConformanceOptions run;
};

std::set<std::string> read_case_list(const std::string& path) {
  std::set<std::string> names;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const size_t hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    size_t start = 0;
    while (start < line.size() && std::isspace(static_cast<unsigned char>(line[start]))) ++start;
    if (start < line.size()) names.insert(line.substr(start));
  }
  return names;
}

int run(const Options& opts) {
  std::vector<std::filesystem::path> roots;
  for (const auto& d : opts.dirs) roots.emplace_back(d);
  if (roots.empty()) roots.emplace_back(kDefaultRoot);
  for (const auto& r : roots) {
    if (!std::filesystem::is_directory(r)) {
      std::cerr << "deskml conformance: '" << r.string() << "' is not a directory"
                << (r == kDefaultRoot ? " (install Debian's libonnx-testdata)" : "") << "\n";
      return kExitFailure;
    }
  }
  auto cases = discover_cases(roots);
  if (!opts.filter.empty()) {
    std::regex re;
    try {
      re = std::regex(opts.filter);
    } catch (const std::regex_error& e) {
      std::cerr << "deskml conformance: bad --filter: " << e.what() << "\n";
      return kExitUsage;
    }
    std::erase_if(cases, [&](const ConformanceCase& c) { return !std::regex_search(c.name, re); });
  }
  const bool tty = isatty(STDERR_FILENO);
  auto progress = [&](const CaseResult& r, size_t done) {
    if (opts.verbose || (!opts.json && r.status == "failed")) {
      std::cerr << (tty ? "\r\033[K" : "") << r.status << "  " << r.name << (r.reason.empty() ? "" : ": ")
                << r.reason << "\n";
    }
    if (tty) std::cerr << "\r\033[K[" << done << "/" << cases.size() << "] " << r.name << std::flush;
  };
  auto results = run_cases(cases, opts.run, progress);
  if (tty) std::cerr << "\r\033[K";

  std::map<std::string, int> counts{{"passed", 0}, {"failed", 0}, {"skipped", 0}};
  for (const auto& r : results) ++counts[r.status];
  if (opts.json) {
    nlohmann::json j;
    j["passed"] = counts["passed"];
    j["failed"] = counts["failed"];
    j["skipped"] = counts["skipped"];
    j["cases"] = nlohmann::json::array();
    for (const auto& r : results) {
      j["cases"].push_back({{"name", r.name}, {"status", r.status}, {"reason", r.reason}});
    }
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    std::map<std::string, int> skip_reasons;
    for (const auto& r : results) {
      if (r.status == "skipped") ++skip_reasons[r.reason.substr(0, 120)];
    }
    if (!skip_reasons.empty()) std::cout << "skipped, by reason:\n";
    for (const auto& [reason, n] : skip_reasons) std::cout << "  " << n << "  " << reason << "\n";
    std::cout << counts["passed"] << " passed, " << counts["failed"] << " failed, " << counts["skipped"]
              << " skipped\n";
  }
  if (!opts.write_passing.empty()) {
    std::ofstream out(opts.write_passing);
    for (const auto& r : results) {
      if (r.status == "passed") out << r.name << "\n";
    }
  }
  if (!opts.expect_file.empty()) {
    const auto expected = read_case_list(opts.expect_file);
    if (expected.empty()) {
      std::cerr << "deskml conformance: --expect list '" << opts.expect_file << "' is empty or unreadable\n";
      return kExitFailure;
    }
    std::map<std::string, const CaseResult*> by_name;
    for (const auto& r : results) by_name[r.name] = &r;
    int regressions = 0;
    for (const auto& name : expected) {
      auto it = by_name.find(name);
      if (it == by_name.end()) {
        std::cerr << "REGRESSION " << name << ": case not found\n";
        ++regressions;
      } else if (it->second->status != "passed") {
        std::cerr << "REGRESSION " << name << ": " << it->second->status << ": " << it->second->reason << "\n";
        ++regressions;
      }
    }
    if (regressions) {
      std::cerr << regressions << " case(s) listed in " << opts.expect_file << " no longer pass\n";
      return kExitFailure;
    }
  }
  return kExitOk;
}

}  // namespace

void add_conformance_command(CLI::App& app) {
  auto opts = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "conformance",
      "Run ONNX's backend test cases (model.onnx + test_data_set_*); default: all of " + std::string(kDefaultRoot));
  cmd->add_option("dirs", opts->dirs, "Case folders, or folders containing them");
  cmd->add_flag("--json", opts->json, "Print one JSON object: passed, failed, skipped, cases[{name,status,reason}]");
  cmd->add_option("--filter", opts->filter, "Only cases whose name matches this regular expression");
  cmd->add_option("--jobs,-j", opts->run.jobs, "Cases run at once, each in its own process")
      ->check(CLI::Range(1, 64));
  cmd->add_option("--timeout", opts->run.timeout_s, "Seconds before a case is killed and failed")
      ->check(CLI::Range(1, 3600));
  cmd->add_option("--rtol", opts->run.rtol, "Relative tolerance for floating outputs (default 1e-3)");
  cmd->add_option("--atol", opts->run.atol, "Absolute tolerance for floating outputs (default 1e-7)");
  cmd->add_option("--expect", opts->expect_file,
                  "A list of case names that must pass; exit 1 naming each one that does not (the ratchet)");
  cmd->add_option("--write-passing", opts->write_passing, "Write the names of the passing cases to this file");
  cmd->add_flag("--verbose,-v", opts->verbose, "Print every case's result");
  cmd->callback([opts] { g_exit_code = run(*opts); });
}

}  // namespace deskml::cli
