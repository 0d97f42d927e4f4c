// The KServe v2 endpoints. Each handler answers through `done` (any thread);
// inference goes to Runtime::infer_async and is encoded on the connection's
// executor when it completes, management calls run on the blocking pool.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <memory>
#include <string>

#include "server/http_types.hpp"
#include "server/router.hpp"
#include "server/server_state.hpp"

namespace deskml::server {

// What the connection knows about a request beyond its message.
struct CallContext {
  std::string request_id;                        // passed to the runtime (its log lines carry it)
  std::shared_ptr<serving::CancelToken> cancel;  // the connection cancels through it when the client goes
};

void handle(ServerState& state, const Route& route, Request req, boost::asio::any_io_executor ex, Responder done,
            const CallContext& context = {});

}  // namespace deskml::server
