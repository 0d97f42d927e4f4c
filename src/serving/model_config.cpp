#include "serving/model_config.hpp"

#include <charconv>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "serving/request.hpp"

namespace deskml::serving {

namespace {

std::string where(const std::string& origin, const toml::node& node) {
  const auto& src = node.source();
  if (!src.begin) return origin;
  return origin + ":" + std::to_string(src.begin.line);
}

Status unknown_keys(const toml::table& table, const std::set<std::string_view>& known, const std::string& origin,
                    std::string_view section) {
  for (const auto& [key, node] : table) {
    if (!known.count(key.str())) {
      return invalid_argument(where(origin, node) + ": unknown key '" + std::string(key.str()) + "'" +
                              (section.empty() ? std::string() : " in [" + std::string(section) + "]"));
    }
  }
  return Status::Ok();
}

// Reads an integer key within [lo, hi] into `out`, leaving it unchanged when absent.
template <typename T>
Status read_int(const toml::table& t, std::string_view key, int64_t lo, int64_t hi, T& out, const std::string& origin) {
  const toml::node* node = t.get(key);
  if (!node) return Status::Ok();
  auto v = node->value<int64_t>();
  if (!node->is_integer() || !v || *v < lo || *v > hi) {
    return invalid_argument(where(origin, *node) + ": '" + std::string(key) + "' must be an integer in [" +
                            std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  out = static_cast<T>(*v);
  return Status::Ok();
}

Status read_bool(const toml::table& t, std::string_view key, bool& out, const std::string& origin) {
  const toml::node* node = t.get(key);
  if (!node) return Status::Ok();
  if (!node->is_boolean()) {
    return invalid_argument(where(origin, *node) + ": '" + std::string(key) + "' must be true or false");
  }
  out = *node->value<bool>();
  return Status::Ok();
}

Result<std::chrono::milliseconds> read_duration(const toml::node& node, const std::string& origin,
                                                std::string_view key) {
  if (node.is_integer()) {
    const int64_t s = *node.value<int64_t>();
    if (s == -1) return KeepAlive::kForever;
    if (s < 0 || s > 10'000'000) {
      return invalid_argument(where(origin, node) + ": '" + std::string(key) + "' out of range");
    }
    return std::chrono::milliseconds(s * 1000);
  }
  if (node.is_string()) {
    auto d = parse_duration(*node.value<std::string_view>());
    if (!d.ok()) return invalid_argument(where(origin, node) + ": '" + std::string(key) + "': " + d.status().message());
    return d;
  }
  return invalid_argument(where(origin, node) + ": '" + std::string(key) +
                          "' must be a duration such as \"30s\", \"5m\" or \"forever\"");
}

Status read_specs(const toml::table& root, std::string_view key, std::vector<TensorSpec>& out,
                  const std::string& origin) {
  const toml::node* node = root.get(key);
  if (!node) return Status::Ok();
  const toml::array* arr = node->as_array();
  if (!arr) return invalid_argument(where(origin, *node) + ": [[" + std::string(key) + "]] must be an array of tables");
  for (const auto& item : *arr) {
    const toml::table* t = item.as_table();
    if (!t) return invalid_argument(where(origin, item) + ": each [[" + std::string(key) + "]] must be a table");
    DESKML_RETURN_IF_ERROR(unknown_keys(*t, {"name", "dtype", "dims"}, origin, key));
    TensorSpec spec;
    auto name = (*t)["name"].value<std::string>();
    if (!name || name->empty())
      return invalid_argument(where(origin, item) + ": [[" + std::string(key) + "]] needs a name");
    spec.name = *name;
    if (auto dt = (*t)["dtype"].value<std::string>()) {
      auto parsed = dtype_from_name(*dt);
      if (!parsed.ok()) return invalid_argument(where(origin, item) + ": " + parsed.status().message());
      spec.dtype = *parsed;
    }
    if (const toml::array* dims = (*t)["dims"].as_array()) {
      std::vector<int64_t> d;
      for (const auto& e : *dims) {
        auto v = e.value<int64_t>();
        if (!e.is_integer() || !v || *v < -1) {
          return invalid_argument(where(origin, e) + ": dims hold integers >= -1 (-1 for a dynamic dim)");
        }
        d.push_back(*v);
      }
      spec.dims = std::move(d);
    }
    out.push_back(std::move(spec));
  }
  return Status::Ok();
}

}  // namespace

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  if (text == "forever" || text == "-1") return KeepAlive::kForever;
  double number = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, number);
  if (ec != std::errc() || !std::isfinite(number) || number < 0) {
    return invalid_argument("'" + std::string(text) +
                            "' is not a duration (\"250ms\", \"30s\", \"5m\", \"2h\", \"forever\")");
  }
  const std::string_view unit(ptr, static_cast<size_t>(end - ptr));
  double ms = 0;
  if (unit == "ms")
    ms = number;
  else if (unit == "s" || unit.empty())
    ms = number * 1e3;
  else if (unit == "m")
    ms = number * 60e3;
  else if (unit == "h")
    ms = number * 3600e3;
  else
    return invalid_argument("unknown duration unit '" + std::string(unit) + "' (use ms, s, m or h)");
  if (ms > 1e13) return invalid_argument("duration '" + std::string(text) + "' is too long");
  return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

Result<ModelConfig> parse_model_config(std::string_view text, const std::string& origin) {
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << origin << ":" << e.source().begin.line << ": " << e.description();
    return invalid_argument(msg.str());
  }
  DESKML_RETURN_IF_ERROR(unknown_keys(
      root,
      {"max_batch_size", "instances", "threads", "priority", "max_queue", "keep_alive", "pinned", "warmup",
       "plan_cache", "optimization_level", "input", "output", "dynamic_batching", "cache", "ensemble", "features"},
      origin, ""));
  ModelConfig c;
  DESKML_RETURN_IF_ERROR(read_int(root, "max_batch_size", 0, 1 << 20, c.max_batch_size, origin));
  DESKML_RETURN_IF_ERROR(read_int(root, "instances", 1, 64, c.instances, origin));
  DESKML_RETURN_IF_ERROR(read_int(root, "threads", 0, 1024, c.threads, origin));
  DESKML_RETURN_IF_ERROR(read_int(root, "priority", -1000, 1000, c.priority, origin));
  DESKML_RETURN_IF_ERROR(read_int(root, "max_queue", 1, 1 << 24, c.max_queue, origin));
  DESKML_RETURN_IF_ERROR(read_int(root, "optimization_level", 0, 2, c.optimization_level, origin));
  DESKML_RETURN_IF_ERROR(read_bool(root, "pinned", c.pinned, origin));
  DESKML_RETURN_IF_ERROR(read_bool(root, "warmup", c.warmup, origin));
  DESKML_RETURN_IF_ERROR(read_bool(root, "plan_cache", c.plan_cache, origin));
  if (const toml::node* ka = root.get("keep_alive")) {
    DESKML_ASSIGN_OR_RETURN(c.keep_alive, read_duration(*ka, origin, "keep_alive"));
  }
  DESKML_RETURN_IF_ERROR(read_specs(root, "input", c.inputs, origin));
  DESKML_RETURN_IF_ERROR(read_specs(root, "output", c.outputs, origin));

  if (const toml::node* node = root.get("dynamic_batching")) {
    const toml::table* db = node->as_table();
    if (!db) return invalid_argument(where(origin, *node) + ": [dynamic_batching] must be a table");
    DESKML_RETURN_IF_ERROR(
        unknown_keys(*db, {"max_queue_delay_us", "preferred_batch_sizes"}, origin, "dynamic_batching"));
    int64_t delay = 0;
    DESKML_RETURN_IF_ERROR(read_int(*db, "max_queue_delay_us", 0, 10'000'000, delay, origin));
    c.max_queue_delay = std::chrono::microseconds(delay);
    if (const toml::node* p = db->get("preferred_batch_sizes")) {
      const toml::array* arr = p->as_array();
      if (!arr) return invalid_argument(where(origin, *p) + ": preferred_batch_sizes must be an array");
      for (const auto& e : *arr) {
        auto v = e.value<int64_t>();
        if (!e.is_integer() || !v || *v < 1 || (c.max_batch_size > 0 && *v > c.max_batch_size)) {
          return invalid_argument(where(origin, e) + ": preferred batch sizes must be in [1, max_batch_size]");
        }
        c.preferred_batch_sizes.push_back(*v);
      }
    }
  }
  if (const toml::node* node = root.get("cache")) {
    const toml::table* t = node->as_table();
    if (!t) return invalid_argument(where(origin, *node) + ": [cache] must be a table");
    DESKML_RETURN_IF_ERROR(unknown_keys(*t, {"enabled", "memory_mb", "disk_mb"}, origin, "cache"));
    c.cache = true;
    DESKML_RETURN_IF_ERROR(read_bool(*t, "enabled", c.cache, origin));
    int64_t mem = static_cast<int64_t>(c.cache_memory_bytes >> 20),
            disk = static_cast<int64_t>(c.cache_disk_bytes >> 20);
    DESKML_RETURN_IF_ERROR(read_int(*t, "memory_mb", 0, 1 << 20, mem, origin));
    DESKML_RETURN_IF_ERROR(read_int(*t, "disk_mb", 0, 1 << 24, disk, origin));
    c.cache_memory_bytes = static_cast<size_t>(mem) << 20;
    c.cache_disk_bytes = static_cast<size_t>(disk) << 20;
  }
  if (const toml::node* node = root.get("ensemble")) {
    const toml::table* t = node->as_table();
    if (!t) return invalid_argument(where(origin, *node) + ": [ensemble] must be a table");
    c.ensemble = std::make_shared<const toml::table>(*t);
  }
  if (const toml::node* node = root.get("features")) {
    const toml::table* t = node->as_table();
    if (!t) return invalid_argument(where(origin, *node) + ": [features] must be a table");
    c.features = std::make_shared<const toml::table>(*t);
    c.origin = origin;
  }
  return c;
}

Result<ModelConfig> load_model_config(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) return ModelConfig{};
  if (!std::filesystem::is_regular_file(file, ec)) return invalid_argument(file.string() + " is not a regular file");
  if (std::filesystem::file_size(file, ec) > (1u << 20))
    return invalid_argument(file.string() + " is larger than 1 MiB");
  std::ifstream in(file, std::ios::binary);
  if (!in) return io_error("cannot read " + file.string());
  std::ostringstream text;
  text << in.rdbuf();
  return parse_model_config(text.str(), file.string());
}

}  // namespace deskml::serving
