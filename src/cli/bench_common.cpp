#include "cli/bench_common.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <fstream>
#include <string>

#include "core/npy.hpp"

namespace deskml::cli {

double peak_rss_mb() {
  // VmHWM, this address space's resident high-water mark. Not getrusage's
  // ru_maxrss: that survives exec, so a process started by a big parent (a
  // Python benchmark driver holding a million rows) would report the parent's
  // pages, which fork mapped into it before exec, as its own peak.
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // in kB
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5))];
}

// Synthesises an input from its declared type: the first symbolic dim is the
// batch, other symbolic dims default to 1 (or 128 for a second, "sequence"-like dim).
Result<Tensor> synthesize(const graph::ValueInfo& info, int64_t batch, std::mt19937& rng) {
  if (!info.type.shape) return invalid_argument("input '" + info.name + "' has no declared shape; pass --input");
  Shape shape;
  bool first = true;
  for (size_t i = 0; i < info.type.shape->size(); ++i) {
    const auto& d = (*info.type.shape)[i];
    if (d.known())
      shape.push_back(d.value);
    else
      shape.push_back(first ? batch : (i == 1 ? 128 : 1));
    if (!d.known()) first = false;
  }
  const DataType dt = info.type.dtype;
  Tensor t(dt, shape);
  if (dt == DataType::kFloat32) {
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  } else if (dt == DataType::kInt64 || dt == DataType::kInt32) {
    std::uniform_int_distribution<int64_t> dist(0, 99);  // small ids are valid for any vocabulary
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (dt == DataType::kInt64)
        t.data<int64_t>()[i] = dist(rng);
      else
        t.data<int32_t>()[i] = static_cast<int32_t>(dist(rng));
    }
  } else {
    t = Tensor::zeros(dt, shape);
  }
  return t;
}

Result<std::vector<std::pair<std::string, Tensor>>> bench_feeds(const runtime::Session& session,
                                                                const BenchOptions& opts) {
  std::vector<std::pair<std::string, Tensor>> feeds;
  for (const auto& spec : opts.inputs) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos) return invalid_argument("--input expects NAME=FILE.npy");
    DESKML_ASSIGN_OR_RETURN(Tensor t, read_npy(spec.substr(eq + 1)));
    feeds.emplace_back(spec.substr(0, eq), std::move(t));
  }
  std::mt19937 rng(42);
  const auto& g = session.model().graph;
  for (const auto& vi : session.inputs()) {
    if (g.initializers.count(vi.name)) continue;
    if (std::any_of(feeds.begin(), feeds.end(), [&](const auto& f) { return f.first == vi.name; })) continue;
    DESKML_ASSIGN_OR_RETURN(Tensor t, synthesize(vi, opts.batch, rng));
    feeds.emplace_back(vi.name, std::move(t));
  }
  return feeds;
}

}  // namespace deskml::cli
