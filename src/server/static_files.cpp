#include "server/static_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <utility>
#include <vector>

#include "server/router.hpp"

namespace deskml::server {
namespace fs = std::filesystem;

namespace {

Status hidden() { return not_found("no such file"); }

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

bool is_static_target(std::string_view target) {
  const std::string_view path = target.substr(0, target.find_first_of("?#"));
  if (path == "/metrics" || path == "/v2") return false;
  return path.substr(0, 4) != "/v2/";
}

std::string_view content_type_for(std::string_view name) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 17> kTypes{{
      {".html", "text/html; charset=utf-8"},
      {".htm", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},
      {".webp", "image/webp"},
      {".ico", "image/x-icon"},
      {".wasm", "application/wasm"},
      {".woff2", "font/woff2"},
  }};
  for (const auto& [ext, type] : kTypes) {
    if (ends_with(name, ext)) return type;
  }
  return "application/octet-stream";
}

Result<StaticFile> read_static_file(const fs::path& root, std::string_view target, size_t max_bytes) {
  const std::string_view raw = target.substr(0, target.find_first_of("?#"));
  if (raw.empty() || raw[0] != '/') return hidden();
  // Decoded as a whole, then split: an encoded `%2F` becomes a separator and its segments are
  // checked like any other, so `..%2F` is a `..` segment.
  DESKML_ASSIGN_OR_RETURN(const std::string path, percent_decode(raw));
  std::vector<std::string_view> segments;
  std::string_view rest = std::string_view(path).substr(1);
  while (true) {
    const size_t slash = rest.find('/');
    const std::string_view seg = rest.substr(0, slash);
    if (slash == std::string_view::npos) {
      if (!seg.empty()) segments.push_back(seg);  // empty: the path ended in `/`
      break;
    }
    if (seg.empty()) return hidden();  // `//`
    segments.push_back(seg);
    rest.remove_prefix(slash + 1);
  }
  fs::path file = root;
  for (const std::string_view seg : segments) {
    if (seg.front() == '.' || seg.find('\0') != std::string_view::npos || seg.find('\\') != std::string_view::npos) {
      return hidden();
    }
    file /= seg;
  }
  std::error_code ec;
  if (fs::is_directory(file, ec)) file /= "index.html";
  // Symlinks are followed, then the result must still be inside root.
  const fs::path real = fs::canonical(file, ec);
  if (ec) return hidden();
  const std::string& r = real.native();
  const std::string& base = root.native();
  if (r.size() <= base.size() || r.compare(0, base.size(), base) != 0 || (base != "/" && r[base.size()] != '/')) {
    return hidden();
  }
  // O_NOFOLLOW: the resolved name is opened as it is, not through a link swapped in since.
  const int fd = ::open(real.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return hidden();
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return hidden();
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    ::close(fd);
    return io_error("the file is larger than the " + std::to_string(max_bytes) + "-byte limit for UI files");
  }
  StaticFile out;
  out.body.resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out.body.size()) {
    const ssize_t n = ::read(fd, out.body.data() + done, out.body.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  out.body.resize(done);
  out.content_type = content_type_for(real.filename().native());
  return out;
}

}  // namespace deskml::server
