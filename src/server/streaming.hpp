// What the two streaming endpoints share: the NDJSON request body, and submitting one
// item to the runtime with its answer as JSON fields on the connection's executor.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.hpp"
#include "server/infer_codec.hpp"
#include "server/server_state.hpp"

namespace deskml::server {

// `{"items": [<KServe infer request>, ...]}` (JSON only, at most options.max_stream_items
// items, at least one). Binary inputs are refused: there is no binary section to point into.
Result<std::vector<InferRequest>> parse_stream_items(std::string_view body, const ServerOptions& options);

// Called once on `ex`: ok with {"model_name", "model_version", "outputs"}, or not ok
// with {"error": message}.
using ItemDone = std::function<void(bool ok, nlohmann::json fields)>;

// Submits `item` to the runtime under `cancel` (shared by all of a connection's items
// when it likes) and keeps state.runtime_pending up to date.
void submit_item(ServerState& state, boost::asio::any_io_executor ex, const std::string& model,
                 std::optional<int64_t> version, std::shared_ptr<InferRequest> item,
                 std::shared_ptr<serving::CancelToken> cancel, std::string request_id, ItemDone done);

}  // namespace deskml::server
