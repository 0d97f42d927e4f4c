// The model repository: a folder laid out as
//   MODELS/<name>/config.toml              (optional)
//   MODELS/<name>/<version>/model.onnx     (versions are positive integers)
// An ensemble has a config.toml with an [ensemble] table and no version folders.
// Models can also be added from single files (the CLI's bench, embedders).
// Nothing outside the root is opened: names are validated and every resolved path,
// symlinks followed, must stay inside it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/status.hpp"
#include "serving/model_config.hpp"

namespace deskml::serving {

struct ModelVersionFiles {
  int64_t version = 0;
  std::filesystem::path model;  // the .onnx file
  uint64_t fingerprint = 0;     // changes when the file is replaced or rewritten
};

struct RepositoryModel {
  std::string name;
  std::filesystem::path dir;  // the model's folder; empty for an added file
  Result<ModelConfig> config = ModelConfig{};
  uint64_t config_fingerprint = 0;
  std::vector<ModelVersionFiles> versions;  // ascending; empty for an ensemble
  bool is_ensemble() const { return config.ok() && config->ensemble != nullptr; }
  const ModelVersionFiles* newest() const { return versions.empty() ? nullptr : &versions.back(); }
  const ModelVersionFiles* version(int64_t v) const;
};

class ModelRepository {
 public:
  // `root` may be empty: then only added files are served.
  static Result<std::unique_ptr<ModelRepository>> open(const std::filesystem::path& root);

  // Serves `model_file` as version 1 of `name`, with `config`.
  Status add_file(const std::string& name, const std::filesystem::path& model_file, ModelConfig config);

  // Every model name in the repository and the added files, sorted.
  std::vector<std::string> names() const;
  // A fresh look at one model's folder (so changes on disk are seen). NotFound for
  // an unknown model; InvalidArgument for an invalid name.
  Result<RepositoryModel> find(const std::string& name) const;

  const std::filesystem::path& root() const { return root_; }

 private:
  bool inside_root(const std::filesystem::path& p) const;

  std::filesystem::path root_;  // canonical; empty when none
  mutable std::mutex mutex_;
  std::map<std::string, RepositoryModel> added_;
};

// Modification time and size of a file folded into one number; 0 when it is absent.
uint64_t file_fingerprint(const std::filesystem::path& file);

}  // namespace deskml::serving
