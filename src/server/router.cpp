#include "server/router.hpp"

#include <vector>

#include "serving/model_name.hpp"

namespace deskml::server {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::vector<std::string>> split_path(std::string_view path) {
  std::vector<std::string> parts;
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    DESKML_ASSIGN_OR_RETURN(std::string seg, percent_decode(path.substr(start, end - start)));
    parts.push_back(std::move(seg));
    start = end + 1;
  }
  return parts;
}

Result<int64_t> parse_version(const std::string& s) {
  if (s.empty() || s.size() > 18) return invalid_argument("model version '" + s + "' is not a positive integer");
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return invalid_argument("model version '" + s + "' is not a positive integer");
    v = v * 10 + (c - '0');
  }
  if (v <= 0) return invalid_argument("model version '" + s + "' is not a positive integer");
  return v;
}

}  // namespace

Result<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return invalid_argument("bad percent-encoding in the path");
    const int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) return invalid_argument("bad percent-encoding in the path");
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

Result<Route> route(std::string_view target) {
  std::string_view path = target.substr(0, target.find('?'));
  if (path.empty() || path[0] != '/') return not_found("no such endpoint");
  if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  DESKML_ASSIGN_OR_RETURN(const std::vector<std::string> p, split_path(path));
  const auto n = p.size();
  auto fixed = [](Endpoint e, http::verb m, bool pub = false) { return Route{e, {}, std::nullopt, m, pub}; };

  if (n == 1 && p[0] == "metrics") return fixed(Endpoint::kMetrics, http::verb::get);
  if (n == 0 || p[0] != "v2") return not_found("no such endpoint");
  if (n == 1) return fixed(Endpoint::kServerMetadata, http::verb::get);
  if (n == 2 && p[1] == "stream") return fixed(Endpoint::kStream, http::verb::get);
  if (n == 3 && p[1] == "health" && p[2] == "live") return fixed(Endpoint::kHealthLive, http::verb::get, true);
  if (n == 3 && p[1] == "health" && p[2] == "ready") return fixed(Endpoint::kHealthReady, http::verb::get, true);
  if (n == 3 && p[1] == "repository" && p[2] == "index") return fixed(Endpoint::kRepositoryIndex, http::verb::post);
  if (n == 5 && p[1] == "repository" && p[2] == "models" && (p[4] == "load" || p[4] == "unload")) {
    DESKML_RETURN_IF_ERROR(serving::validate_model_name(p[3]));
    Route r = fixed(p[4] == "load" ? Endpoint::kRepositoryLoad : Endpoint::kRepositoryUnload, http::verb::post);
    r.model = p[3];
    return r;
  }
  if (n >= 3 && p[1] == "models") {
    DESKML_RETURN_IF_ERROR(serving::validate_model_name(p[2]));
    Route r = fixed(Endpoint::kModelMetadata, http::verb::get);
    r.model = p[2];
    size_t i = 3;
    if (n >= 5 && p[3] == "versions") {
      DESKML_ASSIGN_OR_RETURN(r.version, parse_version(p[4]));
      i = 5;
    }
    if (i == n) return r;
    if (i + 1 == n) {
      if (p[i] == "ready") {
        r.endpoint = Endpoint::kModelReady;
        return r;
      }
      if (p[i] == "infer") {
        r.endpoint = Endpoint::kModelInfer;
        r.method = http::verb::post;
        return r;
      }
      if (p[i] == "infer_stream") {
        r.endpoint = Endpoint::kModelInferStream;
        r.method = http::verb::post;
        return r;
      }
      if (p[i] == "stats") {
        r.endpoint = Endpoint::kModelStats;
        return r;
      }
    }
  }
  return not_found("no such endpoint");
}

bool is_management(Endpoint e) {
  switch (e) {
    case Endpoint::kRepositoryIndex:
    case Endpoint::kRepositoryLoad:
    case Endpoint::kRepositoryUnload:
    case Endpoint::kModelStats:
    case Endpoint::kMetrics:
      return true;
    default:
      return false;
  }
}

}  // namespace deskml::server
