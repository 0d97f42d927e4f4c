#include "serving/steps/params.hpp"

#include <cmath>

namespace deskml::serving {

Status Params::check_known(std::initializer_list<std::string_view> known) const {
  for (const auto& [key, value] : values_) {
    bool found = false;
    for (std::string_view k : known) found = found || k == key;
    if (found) continue;
    std::string list;
    for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
    return error(
        key, "unknown parameter" + (list.empty() ? std::string(" (this kind takes none)") : " (known: " + list + ")"));
  }
  return Status::Ok();
}

Status Params::error(std::string_view key, const std::string& what) const {
  std::string where;
  auto it = values_.find(key);
  if (it != values_.end() && it->second.line > 0) where = " (line " + std::to_string(it->second.line) + ")";
  return invalid_argument(kind_ + ": parameter '" + std::string(key) + "'" + where + ": " + what);
}

Result<const ParamValue*> Params::find(std::string_view key) const {
  auto it = values_.find(key);
  if (it == values_.end()) return invalid_argument(kind_ + ": missing parameter '" + std::string(key) + "'");
  return &it->second;
}

Result<int64_t> Params::get_int(std::string_view key) const {
  DESKML_ASSIGN_OR_RETURN(const ParamValue* v, find(key));
  if (v->type != ParamValue::Type::kInt) return error(key, "must be an integer");
  return v->i;
}

Result<int64_t> Params::get_int(std::string_view key, int64_t fallback) const {
  return has(key) ? get_int(key) : Result<int64_t>(fallback);
}

Result<double> Params::get_number(std::string_view key) const {
  DESKML_ASSIGN_OR_RETURN(const ParamValue* v, find(key));
  double d = 0.0;
  if (v->type == ParamValue::Type::kInt) {
    d = static_cast<double>(v->i);
  } else if (v->type == ParamValue::Type::kFloat) {
    d = v->f;
  } else {
    return error(key, "must be a number");
  }
  if (!std::isfinite(d)) return error(key, "must be finite");
  return d;
}

Result<double> Params::get_number(std::string_view key, double fallback) const {
  return has(key) ? get_number(key) : Result<double>(fallback);
}

Result<std::string> Params::get_string(std::string_view key) const {
  DESKML_ASSIGN_OR_RETURN(const ParamValue* v, find(key));
  if (v->type != ParamValue::Type::kString) return error(key, "must be a string");
  return v->s;
}

Result<std::vector<int64_t>> Params::get_int_list(std::string_view key) const {
  DESKML_ASSIGN_OR_RETURN(const ParamValue* v, find(key));
  if (v->type != ParamValue::Type::kList) return error(key, "must be a list of integers");
  std::vector<int64_t> out;
  for (const ParamValue& e : v->list) {
    if (e.type != ParamValue::Type::kInt) return error(key, "must be a list of integers");
    out.push_back(e.i);
  }
  return out;
}

Result<std::vector<double>> Params::get_number_list(std::string_view key) const {
  DESKML_ASSIGN_OR_RETURN(const ParamValue* v, find(key));
  if (v->type != ParamValue::Type::kList) return error(key, "must be a list of numbers");
  std::vector<double> out;
  for (const ParamValue& e : v->list) {
    if (e.type == ParamValue::Type::kInt) {
      out.push_back(static_cast<double>(e.i));
    } else if (e.type == ParamValue::Type::kFloat && std::isfinite(e.f)) {
      out.push_back(e.f);
    } else {
      return error(key, "must be a list of finite numbers");
    }
  }
  return out;
}

}  // namespace deskml::serving
