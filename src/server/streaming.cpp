#include "server/streaming.hpp"

#include <boost/asio/post.hpp>

namespace deskml::server {

using nlohmann::json;

Result<std::vector<InferRequest>> parse_stream_items(std::string_view body, const ServerOptions& options) {
  DESKML_ASSIGN_OR_RETURN(json j, parse_json(body, options.max_json_depth));
  if (!j.is_object()) return invalid_argument("the body must be a JSON object {\"items\": [...]}");
  const auto items = j.find("items");
  if (items == j.end() || !items->is_array() || items->empty()) {
    return invalid_argument("the body has no \"items\" array of inference requests");
  }
  if (items->size() > options.max_stream_items) {
    return invalid_argument("more than " + std::to_string(options.max_stream_items) + " items");
  }
  const TensorLimits limits{options.max_tensor_elements};
  std::vector<InferRequest> out;
  out.reserve(items->size());
  for (size_t i = 0; i < items->size(); ++i) {
    auto item = parse_infer_request((*items)[i], {}, limits);
    if (!item.ok()) return Status(item.status().code(), "item " + std::to_string(i) + ": " + item.status().message());
    out.push_back(std::move(item).value());
  }
  return out;
}

void submit_item(ServerState& state, boost::asio::any_io_executor ex, const std::string& model,
                 std::optional<int64_t> version, std::shared_ptr<InferRequest> item,
                 std::shared_ptr<serving::CancelToken> cancel, std::string request_id, ItemDone done) {
  serving::InferOptions options;
  options.version = version;
  if (item->priority) options.priority = *item->priority;
  if (item->timeout_us) options.deadline = serving::Clock::now() + std::chrono::microseconds(*item->timeout_us);
  options.cancel = std::move(cancel);
  options.request_id = std::move(request_id);
  state.runtime_pending.fetch_add(1);
  state.infer_async(model, *item, std::move(options),
                    [&state, ex, item, done = std::move(done)](Result<serving::InferResponse> result) {
                      boost::asio::post(ex, [item, done, result = std::move(result)]() {
                        if (!result.ok()) return done(false, json{{"error", result.status().message()}});
                        auto outputs = infer_outputs_json(result.value(), *item);
                        if (!outputs.ok()) return done(false, json{{"error", outputs.status().message()}});
                        done(true, json{{"model_name", result->model},
                                        {"model_version", std::to_string(result->version)},
                                        {"outputs", std::move(outputs).value()}});
                      });
                      state.runtime_pending.fetch_sub(1);
                    });
}

}  // namespace deskml::server
