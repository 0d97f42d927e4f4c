#include "kernels/registry.hpp"

#include <algorithm>

namespace deskml::kernels {
namespace {
std::string normalize_domain(const std::string& d) { return d == "ai.onnx" ? std::string() : d; }
}  // namespace

void KernelRegistry::add(KernelDef def) {
  def.domain = normalize_domain(def.domain);
  defs_[{def.domain, def.op}].push_back(std::move(def));
}

void KernelRegistry::add(const std::string& op, int since, int until, std::vector<DataType> types, KernelFn fn,
                         const std::string& domain) {
  KernelDef def;
  def.op = op;
  def.domain = domain;
  def.since = since;
  def.until = until;
  def.types = std::move(types);
  def.factory = [fn = std::move(fn)](const graph::Node&) { return std::make_unique<FunctionKernel>(fn); };
  add(std::move(def));
}

const KernelDef* KernelRegistry::find(const std::string& op, const std::string& domain, int opset,
                                      const std::function<DataType(int)>& input_dtype) const {
  auto it = defs_.find({normalize_domain(domain), op});
  if (it == defs_.end()) return nullptr;
  const KernelDef* best = nullptr;
  for (const auto& def : it->second) {
    if (opset < def.since || opset > def.until) continue;
    if (!def.types.empty() && def.type_input >= 0) {
      const DataType dtype = input_dtype(def.type_input);
      if (std::find(def.types.begin(), def.types.end(), dtype) == def.types.end()) continue;
    }
    if (best == nullptr || def.since > best->since) best = &def;
  }
  return best;
}

bool KernelRegistry::supports(const std::string& op, const std::string& domain, int opset) const {
  auto it = defs_.find({normalize_domain(domain), op});
  if (it == defs_.end()) return false;
  return std::any_of(it->second.begin(), it->second.end(),
                     [&](const KernelDef& d) { return opset >= d.since && opset <= d.until; });
}

std::vector<std::pair<std::string, std::string>> KernelRegistry::ops() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [key, _] : defs_) out.push_back(key);
  return out;
}

}  // namespace deskml::kernels
