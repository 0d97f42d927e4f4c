// Runs ONNX backend test cases (model.onnx + test_data_set_*/) in isolated
// child processes so that no case can take the runner down.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace deskml::cli {

struct ConformanceCase {
  std::string name;               // the case folder's name, e.g. "test_abs"
  std::filesystem::path dir;
};

struct CaseResult {
  std::string name;
  std::string status;  // "passed", "failed", "skipped"
  std::string reason;  // why it failed or was skipped; empty when passed
  double seconds = 0;
};

struct ConformanceOptions {
  double rtol = 1e-3;
  double atol = 1e-7;
  int timeout_s = 120;
  int jobs = 1;
};

// Finds cases under each root: a folder with model.onnx (or data.json) is a
// case; otherwise its subfolders are searched (two levels deep).
std::vector<ConformanceCase> discover_cases(const std::vector<std::filesystem::path>& roots);
// Runs one case in the current process (used inside the child).
CaseResult run_case_inline(const ConformanceCase& c, const ConformanceOptions& options);
// Runs all cases, each in a forked child with a time limit; `progress` is called after each.
std::vector<CaseResult> run_cases(const std::vector<ConformanceCase>& cases, const ConformanceOptions& options,
                                  const std::function<void(const CaseResult&, size_t done)>& progress);

}  // namespace deskml::cli
