#include "cli/conformance_runner.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "onnx/model_loader.hpp"
#include "runtime/session.hpp"

namespace deskml::cli {
namespace {

namespace fs = std::filesystem;

// Cases whose expected outputs cannot be reproduced by any inference engine.
const std::map<std::string, std::string>& known_skips() {
  static const std::map<std::string, std::string> skips = {
      {"test_bernoulli", "output is random"},
      {"test_randomnormal", "output is random"},
      {"test_randomuniform", "output is random"},
      {"test_adagrad", "training-only op (ai.onnx.preview.training)"},
      {"test_adam", "training-only op (ai.onnx.preview.training)"},
      {"test_momentum", "training-only op (ai.onnx.preview.training)"},
      {"test_nesterov_momentum", "training-only op (ai.onnx.preview.training)"},
      {"test_gradient", "training-only op (ai.onnx.preview.training)"},
      {"test_training_dropout", "training-mode Dropout output is random"},
  };
  return skips;
}

std::string known_skip_reason(const std::string& name) {
  for (const auto& [prefix, reason] : known_skips()) {
    if (name.rfind(prefix, 0) == 0) return reason;
  }
  return {};
}

std::string compare_tensors(const Tensor& expected, const Tensor& actual, const ConformanceOptions& opts) {
  if (expected.dtype() != actual.dtype()) {
    return "dtype " + std::string(dtype_name(actual.dtype())) + ", expected " +
           std::string(dtype_name(expected.dtype()));
  }
  if (expected.shape() != actual.shape()) {
    return "shape " + shape_to_string(actual.shape()) + ", expected " + shape_to_string(expected.shape());
  }
  const int64_t n = expected.numel();
  if (expected.dtype() == DataType::kString) {
    for (int64_t i = 0; i < n; ++i) {
      if (expected.data<std::string>()[i] != actual.data<std::string>()[i]) {
        return "string " + std::to_string(i) + " is '" + actual.data<std::string>()[i] + "', expected '" +
               expected.data<std::string>()[i] + "'";
      }
    }
    return {};
  }
  if (!dtype_is_float(expected.dtype())) {
    for (int64_t i = 0; i < n; ++i) {
      if (expected.int_at(i) != actual.int_at(i)) {
        return "element " + std::to_string(i) + " is " + std::to_string(actual.int_at(i)) + ", expected " +
               std::to_string(expected.int_at(i));
      }
    }
    return {};
  }
  double worst = 0, worst_excess = 0;
  int64_t worst_i = -1, bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double e = expected.float_at(i), a = actual.float_at(i);
    if (std::isnan(e) || std::isnan(a)) {
      if (std::isnan(e) != std::isnan(a)) {
        ++bad;
        if (worst_i < 0) worst_i = i, worst = INFINITY;
      }
      continue;
    }
    if (std::isinf(e) || std::isinf(a)) {
      if (e != a) ++bad, worst_i = i, worst = INFINITY;
      continue;
    }
    const double err = std::fabs(a - e);
    const double excess = err - (opts.atol + opts.rtol * std::fabs(e));
    if (excess > 0) {
      ++bad;
      if (excess > worst_excess) worst_excess = excess, worst = err, worst_i = i;
    }
  }
  if (bad == 0) return {};
  std::ostringstream s;
  s << bad << " of " << n << " elements differ; worst abs error " << worst << " at element " << worst_i
    << " (got " << actual.float_at(worst_i) << ", expected " << expected.float_at(worst_i) << ")";
  return s.str();
}

std::string compare_values(const Value& expected, const Value& actual, const ConformanceOptions& opts) {
  if (expected.is_sequence()) {
    if (!actual.is_sequence()) return "expected a sequence";
    if (expected.sequence.size() != actual.sequence.size()) {
      return "sequence of " + std::to_string(actual.sequence.size()) + ", expected " +
             std::to_string(expected.sequence.size());
    }
    for (size_t i = 0; i < expected.sequence.size(); ++i) {
      std::string err = compare_tensors(expected.sequence[i], actual.sequence[i], opts);
      if (!err.empty()) return "sequence item " + std::to_string(i) + ": " + err;
    }
    return {};
  }
  if (expected.is_none()) return actual.is_none() ? "" : "expected an empty optional";
  if (!actual.is_tensor()) return "expected a tensor";
  return compare_tensors(expected.tensor, actual.tensor, opts);
}

// ONNX 1.12's test generator stores bfloat16 tensors as uint16 bit patterns
// (numpy has no bfloat16); read them back as what the model declares.
Value reinterpret_bfloat16(Value v, const graph::ValueType& declared) {
  if (declared.dtype != DataType::kBFloat16 || !v.is_tensor() || v.tensor.dtype() != DataType::kUInt16) return v;
  Tensor t(DataType::kBFloat16, v.tensor.shape());
  std::memcpy(t.raw_data(), v.tensor.raw_data(), v.tensor.nbytes());
  return Value::from_tensor(std::move(t));
}

CaseResult run_case_body(const ConformanceCase& c, const ConformanceOptions& opts) {
  CaseResult r{c.name, "passed", "", 0};
  if (!fs::exists(c.dir / "model.onnx")) {
    return {c.name, "skipped", "model not shipped in the package (data.json points to a download)", 0};
  }
  runtime::SessionOptions so;
  so.threads = 1;
  auto session = runtime::Session::load(c.dir / "model.onnx", so);
  if (!session.ok()) {
    const bool unsupported = session.status().code() == StatusCode::kUnsupported;
    return {c.name, unsupported ? "skipped" : "failed", session.status().to_string(), 0};
  }
  const auto& g = (*session)->model().graph;
  std::vector<const graph::ValueInfo*> feedable;
  for (const auto& vi : g.inputs) {
    if (!g.initializers.count(vi.name)) feedable.push_back(&vi);
  }
  std::vector<fs::path> sets;
  for (const auto& e : fs::directory_iterator(c.dir)) {
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) sets.push_back(e.path());
  }
  std::sort(sets.begin(), sets.end());
  if (sets.empty()) return {c.name, "skipped", "no test data sets", 0};
  for (const auto& set : sets) {
    runtime::NamedValues feeds;
    for (size_t i = 0;; ++i) {
      const fs::path file = set / ("input_" + std::to_string(i) + ".pb");
      if (!fs::exists(file)) break;
      if (i >= feedable.size()) return {c.name, "failed", "more input files than model inputs", 0};
      auto v = onnx_import::load_value_file(file, feedable[i]->type);
      if (!v.ok()) return {c.name, "failed", "reading " + file.filename().string() + ": " + v.status().to_string(), 0};
      feeds.emplace_back(feedable[i]->name, reinterpret_bfloat16(std::move(v).value(), feedable[i]->type));
    }
    auto outputs = (*session)->run(feeds);
    if (!outputs.ok()) {
      const bool unsupported = outputs.status().code() == StatusCode::kUnsupported;
      return {c.name, unsupported ? "skipped" : "failed", outputs.status().to_string(), 0};
    }
    for (size_t i = 0; i < outputs->size(); ++i) {
      const fs::path file = set / ("output_" + std::to_string(i) + ".pb");
      if (!fs::exists(file)) break;
      auto expected = onnx_import::load_value_file(file, g.outputs[i].type);
      if (!expected.ok()) {
        return {c.name, "failed", "reading " + file.filename().string() + ": " + expected.status().to_string(), 0};
      }
      std::string err =
          compare_values(reinterpret_bfloat16(std::move(expected).value(), g.outputs[i].type), (*outputs)[i].second, opts);
      if (!err.empty()) {
        return {c.name, "failed", set.filename().string() + " output '" + g.outputs[i].name + "': " + err, 0};
      }
    }
  }
  return r;
}

struct Child {
  pid_t pid;
  int fd;
  size_t index;
  std::chrono::steady_clock::time_point start;
  std::string buffer;
};

}  // namespace

std::vector<ConformanceCase> discover_cases(const std::vector<fs::path>& roots) {
  std::vector<ConformanceCase> cases;
  std::function<void(const fs::path&, int)> walk = [&](const fs::path& dir, int depth) {
    if (fs::exists(dir / "model.onnx") || fs::exists(dir / "data.json")) {
      cases.push_back({dir.filename().string(), dir});
      return;
    }
    if (depth >= 2) return;
    std::vector<fs::path> children;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (e.is_directory()) children.push_back(e.path());
    }
    std::sort(children.begin(), children.end());
    for (const auto& child : children) walk(child, depth + 1);
  };
  for (const auto& root : roots) walk(root, 0);
  return cases;
}

CaseResult run_case_inline(const ConformanceCase& c, const ConformanceOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  CaseResult r;
  const std::string skip = known_skip_reason(c.name);
  if (!skip.empty()) {
    r = {c.name, "skipped", skip, 0};
  } else {
    try {
      r = run_case_body(c, options);
    } catch (const std::exception& e) {
      r = {c.name, "failed", std::string("exception: ") + e.what(), 0};
    }
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

std::vector<CaseResult> run_cases(const std::vector<ConformanceCase>& cases, const ConformanceOptions& options,
                                  const std::function<void(const CaseResult&, size_t)>& progress) {
  std::vector<CaseResult> results(cases.size());
  std::vector<Child> running;
  size_t next = 0, done = 0;
  const int jobs = std::max(1, options.jobs);
  auto finish = [&](Child& ch, CaseResult r) {
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - ch.start).count();
    results[ch.index] = r;
    ++done;
    if (progress) progress(results[ch.index], done);
  };
  while (next < cases.size() || !running.empty()) {
    while (next < cases.size() && static_cast<int>(running.size()) < jobs) {
      int fds[2];
      if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
      const pid_t pid = fork();
      if (pid < 0) throw std::runtime_error("fork failed");
      if (pid == 0) {
        close(fds[0]);
        CaseResult r = run_case_inline(cases[next], options);
        const std::string line =
            nlohmann::json{{"status", r.status}, {"reason", r.reason}}.dump(-1, ' ', false,
                                                                            nlohmann::json::error_handler_t::replace);
        size_t off = 0;
        while (off < line.size()) {
          const ssize_t w = write(fds[1], line.data() + off, line.size() - off);
          if (w <= 0) break;
          off += static_cast<size_t>(w);
        }
        _exit(0);
      }
      close(fds[1]);
      running.push_back({pid, fds[0], next, std::chrono::steady_clock::now(), {}});
      ++next;
    }
    std::vector<pollfd> pfds;
    for (const auto& ch : running) pfds.push_back({ch.fd, POLLIN, 0});
    poll(pfds.data(), pfds.size(), 200);
    for (size_t i = 0; i < running.size();) {
      Child& ch = running[i];
      bool closed = false;
      if (pfds.size() > i && (pfds[i].revents & (POLLIN | POLLHUP))) {
        char buf[4096];
        const ssize_t n = read(ch.fd, buf, sizeof buf);
        if (n > 0) ch.buffer.append(buf, static_cast<size_t>(n));
        else closed = true;
      }
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - ch.start).count();
      if (!closed && elapsed > options.timeout_s) {
        kill(ch.pid, SIGKILL);
        waitpid(ch.pid, nullptr, 0);
        close(ch.fd);
        finish(ch, {cases[ch.index].name, "failed", "timed out after " + std::to_string(options.timeout_s) + " s", 0});
        running.erase(running.begin() + static_cast<long>(i));
        pfds.erase(pfds.begin() + static_cast<long>(i));
        continue;
      }
      if (!closed) {
        ++i;
        continue;
      }
      int wstatus = 0;
      waitpid(ch.pid, &wstatus, 0);
      close(ch.fd);
      CaseResult r{cases[ch.index].name, "failed", "", 0};
      if (WIFSIGNALED(wstatus)) {
        r.reason = std::string("crashed: ") + strsignal(WTERMSIG(wstatus));
      } else {
        try {
          auto j = nlohmann::json::parse(ch.buffer);
          r.status = j.at("status").get<std::string>();
          r.reason = j.at("reason").get<std::string>();
        } catch (const std::exception&) {
          r.reason = "the case process exited without a result (exit code " +
                     std::to_string(WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1) + ")";
        }
      }
      finish(ch, r);
      running.erase(running.begin() + static_cast<long>(i));
      pfds.erase(pfds.begin() + static_cast<long>(i));
    }
  }
  return results;
}

}  // namespace deskml::cli
