// A step's parameters, read from its config table. Kept free of the TOML library so
// the step files depend only on this small interface; every getter names the step kind
// and the parameter in its error, and check_known() catches misspelt keys.
#pragma once

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.hpp"

namespace deskml::serving {

struct ParamValue {
  enum class Type { kInt, kFloat, kBool, kString, kList, kOther };
  Type type = Type::kOther;
  int64_t i = 0;
  double f = 0.0;
  bool b = false;
  std::string s;
  std::vector<ParamValue> list;
  int64_t line = 0;  // in the config file, 0 when unknown
};

class Params {
 public:
  Params(std::string kind, std::map<std::string, ParamValue, std::less<>> values, std::filesystem::path base_dir)
      : kind_(std::move(kind)), values_(std::move(values)), base_dir_(std::move(base_dir)) {}

  const std::string& kind() const { return kind_; }
  const std::filesystem::path& base_dir() const { return base_dir_; }
  bool has(std::string_view key) const { return values_.find(key) != values_.end(); }

  // InvalidArgument naming the first key not in `known`.
  Status check_known(std::initializer_list<std::string_view> known) const;

  Result<int64_t> get_int(std::string_view key) const;
  Result<int64_t> get_int(std::string_view key, int64_t fallback) const;
  // Integers are accepted where a number is expected.
  Result<double> get_number(std::string_view key) const;
  Result<double> get_number(std::string_view key, double fallback) const;
  Result<std::string> get_string(std::string_view key) const;
  Result<std::vector<int64_t>> get_int_list(std::string_view key) const;
  Result<std::vector<double>> get_number_list(std::string_view key) const;

  // "resize: parameter 'size' (line 12): <what>"
  Status error(std::string_view key, const std::string& what) const;

 private:
  Result<const ParamValue*> find(std::string_view key) const;

  std::string kind_;
  std::map<std::string, ParamValue, std::less<>> values_;
  std::filesystem::path base_dir_;
};

}  // namespace deskml::serving
