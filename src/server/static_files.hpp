// `deskml serve --ui DIR`: the files of one folder served at `/`, for a page (the demo in
// web/demo/) that talks to the API from the same origin. These files need no token (the page
// holds no secret; it gets the token from its URL fragment); Host and Origin are still checked.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/status.hpp"

namespace deskml::server {

struct StaticFile {
  std::string body;
  std::string_view content_type;
};

// Whether a request target is for the UI folder: anything but `/v2`, `/v2/...` and `/metrics`.
bool is_static_target(std::string_view target);

// The Content-Type for a file name, by extension; application/octet-stream when unknown.
std::string_view content_type_for(std::string_view file_name);

// Reads the file `target` names under `root` (which must be canonical: symlinks resolved).
// The path is percent-decoded, then refused (NotFound, so nothing is revealed) when a segment is
// empty, `.`, `..` or hidden (starts with a dot), when it holds a NUL or a backslash, when it
// resolves (symlinks followed) outside root, or when it is not a regular file. `/` and any path
// ending in `/` or naming a folder mean that folder's index.html. A file over max_bytes is
// IoError (500); a bad percent-encoding InvalidArgument.
Result<StaticFile> read_static_file(const std::filesystem::path& root, std::string_view target, size_t max_bytes);

}  // namespace deskml::server
