#include "serving/model_name.hpp"

#include <string>

namespace deskml::serving {

namespace {
bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}
bool leading_char(char c) { return name_char(c) && c != '.' && c != '_' && c != '-'; }
}  // namespace

Status validate_model_name(std::string_view name) {
  if (name.empty()) return invalid_argument("model name is empty");
  if (name.size() > 128) return invalid_argument("model name is longer than 128 characters");
  if (!leading_char(name.front())) {
    return invalid_argument("model name '" + std::string(name) + "' must start with a letter or digit");
  }
  for (char c : name) {
    if (!name_char(c)) {
      return invalid_argument("model name '" + std::string(name) + "' may hold only letters, digits, '.', '_' and '-'");
    }
  }
  return Status::Ok();
}

}  // namespace deskml::serving
