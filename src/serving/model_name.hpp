// Model names travel from HTTP paths and config files into file-system paths, so
// they are checked before anything is opened (Ollama CVE-2024-37032 was a name
// with "../" in it).
#pragma once

#include <string_view>

#include "core/status.hpp"

namespace deskml::serving {

// A valid name is 1-128 characters of [A-Za-z0-9._-], starts with a letter or
// digit, and is not "." or "..". Anything else is InvalidArgument, with the reason.
Status validate_model_name(std::string_view name);

}  // namespace deskml::serving
