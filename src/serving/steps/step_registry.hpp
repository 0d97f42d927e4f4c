// Builds built-in steps from the TOML parameters of an ensemble step.
#pragma once

#include <toml++/toml.h>

#include <filesystem>
#include <memory>
#include <string_view>
#include <vector>

#include "serving/steps/step.hpp"

namespace deskml::serving {

// Builds a step of `kind` from its TOML table of parameters (the step's keys other than
// name, kind and inputs). Unknown kinds, unknown parameters and bad values are
// InvalidArgument. base_dir is the ensemble's folder: files a step reads (topk's labels)
// are resolved inside it, and paths that leave it (absolute, "..", a symlink pointing
// outside) are refused. Keys listed in `reserved` belong to the caller and are skipped
// (an ensemble passes its step table as is, reserving name, kind and inputs, so errors
// keep the config's line numbers).
Result<std::unique_ptr<Step>> make_step(std::string_view kind, const toml::table& params,
                                        const std::filesystem::path& base_dir,
                                        const std::vector<std::string_view>& reserved = {});

// The kinds make_step knows, sorted.
std::vector<std::string_view> builtin_step_kinds();

}  // namespace deskml::serving
