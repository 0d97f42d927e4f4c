#include "scoring/sink.hpp"

#include <nlohmann/json.hpp>

#include "features/pg_source.hpp"
#include "features/sqlite_source.hpp"
#include "scoring/sinks.hpp"

namespace deskml::scoring {

std::string JobSpec::to_json() const {
  // nlohmann::json objects keep keys sorted, so the text is canonical.
  return nlohmann::json{{"model", model}, {"version", version}, {"query", query}, {"key", key}}.dump();
}

std::string JobSpec::difference(const std::string& stored) const {
  const auto old = nlohmann::json::parse(stored, nullptr, false);
  if (!old.is_object()) return "its checkpoint is unreadable";
  const auto now = nlohmann::json::parse(to_json());
  std::string diff;
  for (const char* field : {"model", "version", "query", "key"}) {
    if (old.value(field, nlohmann::json()) != now[field]) {
      if (!diff.empty()) diff += "; ";
      diff += std::string(field) + " was " + old.value(field, nlohmann::json()).dump() + ", now " + now[field].dump();
    }
  }
  return diff;
}

bool is_csv_target(std::string_view into) {
  if (into.size() < 4) return false;
  std::string ext(into.substr(into.size() - 4));
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".csv";
}

Result<std::unique_ptr<ResultSink>> open_sink(std::string_view into, features::FeatureSource& source,
                                              const JobSpec& job, bool fresh) {
  if (into.empty()) return invalid_argument("--into needs a table name or a .csv file");
  if (is_csv_target(into)) return open_csv_sink(std::string(into), job, fresh);
  DESKML_RETURN_IF_ERROR(features::check_table_name(into, source.dialect()));
  if (auto* sqlite = dynamic_cast<features::SqliteSource*>(&source)) {
    return open_sqlite_table_sink(*sqlite, std::string(into), job, fresh);
  }
  if (auto* pg = dynamic_cast<features::PgSource*>(&source)) {
    return open_pg_table_sink(*pg, std::string(into), job, fresh);
  }
  return unsupported("cannot write results into " + source.description());
}

}  // namespace deskml::scoring
