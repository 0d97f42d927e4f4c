#include "serving/steps/step_registry.hpp"

#include <algorithm>
#include <map>

#include "serving/steps/builtin.hpp"

namespace deskml::serving {
namespace {

using Factory = Result<std::unique_ptr<Step>> (*)(const Params&);

const std::map<std::string_view, Factory>& factories() {
  static const std::map<std::string_view, Factory> kFactories = {
      {"image_decode", steps::make_image_decode},
      {"resize", steps::make_resize},
      {"center_crop", steps::make_center_crop},
      {"normalize", steps::make_normalize},
      {"layout", steps::make_layout},
      {"softmax", steps::make_softmax},
      {"argmax", steps::make_argmax},
      {"topk", steps::make_topk},
      {"threshold", steps::make_threshold},
      {"nms", steps::make_nms},
      {"mean", steps::make_mean},
      {"weighted_mean", steps::make_weighted_mean},
      {"vote", steps::make_vote},
      {"concat", steps::make_concat},
  };
  return kFactories;
}

ParamValue convert(const toml::node& node) {
  ParamValue v;
  v.line = static_cast<int64_t>(node.source().begin.line);
  if (const auto* i = node.as_integer()) {
    v.type = ParamValue::Type::kInt;
    v.i = i->get();
  } else if (const auto* f = node.as_floating_point()) {
    v.type = ParamValue::Type::kFloat;
    v.f = f->get();
  } else if (const auto* b = node.as_boolean()) {
    v.type = ParamValue::Type::kBool;
    v.b = b->get();
  } else if (const auto* s = node.as_string()) {
    v.type = ParamValue::Type::kString;
    v.s = s->get();
  } else if (const auto* a = node.as_array()) {
    v.type = ParamValue::Type::kList;
    for (const toml::node& e : *a) v.list.push_back(convert(e));
  }
  return v;
}

}  // namespace

Result<std::unique_ptr<Step>> make_step(std::string_view kind, const toml::table& params,
                                        const std::filesystem::path& base_dir,
                                        const std::vector<std::string_view>& reserved) {
  auto it = factories().find(kind);
  if (it == factories().end()) {
    std::string known;
    for (std::string_view k : builtin_step_kinds()) known += (known.empty() ? "" : ", ") + std::string(k);
    return invalid_argument("unknown step kind '" + std::string(kind) + "' (built-in kinds: " + known + ")");
  }
  std::map<std::string, ParamValue, std::less<>> values;
  for (const auto& [key, node] : params) {
    if (std::find(reserved.begin(), reserved.end(), key.str()) != reserved.end()) continue;
    values.emplace(std::string(key.str()), convert(node));
  }
  return it->second(Params(std::string(kind), std::move(values), base_dir));
}

std::vector<std::string_view> builtin_step_kinds() {
  std::vector<std::string_view> kinds;
  for (const auto& [k, f] : factories()) kinds.push_back(k);
  return kinds;
}

}  // namespace deskml::serving
