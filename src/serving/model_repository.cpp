#include "serving/model_repository.hpp"

#include <algorithm>
#include <charconv>

#include "serving/model_name.hpp"

namespace deskml::serving {

namespace fs = std::filesystem;

const ModelVersionFiles* RepositoryModel::version(int64_t v) const {
  for (const auto& f : versions) {
    if (f.version == v) return &f;
  }
  return nullptr;
}

uint64_t file_fingerprint(const fs::path& file) {
  std::error_code ec;
  const auto size = fs::file_size(file, ec);
  if (ec) return 0;
  const auto mtime = fs::last_write_time(file, ec);
  if (ec) return 0;
  const auto ticks = static_cast<uint64_t>(mtime.time_since_epoch().count());
  return (ticks * 0x9E3779B97F4A7C15ull) ^ (static_cast<uint64_t>(size) + 1);
}

Result<std::unique_ptr<ModelRepository>> ModelRepository::open(const fs::path& root) {
  auto repo = std::unique_ptr<ModelRepository>(new ModelRepository());
  if (!root.empty()) {
    std::error_code ec;
    if (!fs::is_directory(root, ec)) return not_found("model repository '" + root.string() + "' is not a folder");
    repo->root_ = fs::canonical(root, ec);
    if (ec) return io_error("cannot resolve '" + root.string() + "': " + ec.message());
  }
  return repo;
}

bool ModelRepository::inside_root(const fs::path& p) const {
  std::error_code ec;
  const fs::path resolved = fs::weakly_canonical(p, ec);
  if (ec) return false;
  auto r = root_.begin();
  auto q = resolved.begin();
  for (; r != root_.end(); ++r, ++q) {
    if (q == resolved.end() || *q != *r) return false;
  }
  return true;
}

Status ModelRepository::add_file(const std::string& name, const fs::path& model_file, ModelConfig config) {
  DESKML_RETURN_IF_ERROR(validate_model_name(name));
  std::error_code ec;
  if (!fs::is_regular_file(model_file, ec)) return not_found("model file '" + model_file.string() + "' not found");
  RepositoryModel m;
  m.name = name;
  m.config = std::move(config);
  m.versions.push_back({1, fs::absolute(model_file), file_fingerprint(model_file)});
  std::lock_guard lock(mutex_);
  added_[name] = std::move(m);
  return Status::Ok();
}

std::vector<std::string> ModelRepository::names() const {
  std::vector<std::string> out;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [n, _] : added_) out.push_back(n);
  }
  if (!root_.empty()) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(root_, ec)) {
      const std::string n = entry.path().filename().string();
      if (!validate_model_name(n).ok() || !entry.is_directory(ec)) continue;
      if (!inside_root(entry.path())) continue;
      if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<RepositoryModel> ModelRepository::find(const std::string& name) const {
  DESKML_RETURN_IF_ERROR(validate_model_name(name));
  {
    std::lock_guard lock(mutex_);
    auto it = added_.find(name);
    if (it != added_.end()) {
      RepositoryModel copy = it->second;
      for (auto& v : copy.versions) v.fingerprint = file_fingerprint(v.model);
      return copy;
    }
  }
  if (root_.empty()) return not_found("unknown model '" + name + "'");
  const fs::path dir = root_ / name;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return not_found("unknown model '" + name + "'");
  if (!inside_root(dir)) return invalid_argument("model '" + name + "' resolves outside the model repository");

  RepositoryModel m;
  m.name = name;
  m.dir = dir;
  const fs::path config = dir / "config.toml";
  if (fs::exists(config, ec) && !inside_root(config)) {
    m.config = invalid_argument("config.toml of '" + name + "' resolves outside the model repository");
  } else {
    m.config = load_model_config(config);
    m.config_fingerprint = file_fingerprint(config);
  }
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string v = entry.path().filename().string();
    int64_t number = 0;
    auto [ptr, err] = std::from_chars(v.data(), v.data() + v.size(), number);
    if (err != std::errc() || ptr != v.data() + v.size() || number <= 0 || v.size() > 18) continue;
    const fs::path model = entry.path() / "model.onnx";
    if (!fs::is_regular_file(model, ec) || !inside_root(model)) continue;
    m.versions.push_back({number, model, file_fingerprint(model)});
  }
  std::sort(m.versions.begin(), m.versions.end(), [](const auto& a, const auto& b) { return a.version < b.version; });
  return m;
}

}  // namespace deskml::serving
