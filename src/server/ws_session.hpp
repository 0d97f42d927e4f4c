// One WebSocket connection on GET /v2/stream, after HttpSession checked its upgrade
// request (Host, Origin, token). Each text message is one inference request; answers
// are written as they complete, in any order. A message {"type": "cancel", "id": ...}
// cancels that id; closing the connection cancels everything it has in flight.
#pragma once

#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include "server/http_session.hpp"
#include "server/http_types.hpp"
#include "server/server_state.hpp"

namespace deskml::server {

class WsSession : public std::enable_shared_from_this<WsSession> {
 public:
  // `subprotocol` is echoed in the handshake answer when not empty (`bearer.<token>`).
  WsSession(Stream stream, std::shared_ptr<ServerState> state, std::string subprotocol);
  void start(Request upgrade);

 private:
  struct Pending {
    nlohmann::json id;
    std::shared_ptr<serving::CancelToken> cancel;
    uint64_t tracked = 0;
    std::string model;
    std::string request_id;
    std::chrono::steady_clock::time_point started;
  };
  void read();
  void on_read(boost::beast::error_code ec);
  void on_message(std::string_view text);
  void answer(nlohmann::json message);
  void write_next();
  void gone();  // the connection ended: cancel everything in flight
  // One structured access-log line per answered message, like HttpSession's per request.
  void log_message(const Pending& p, const nlohmann::json& answer) const;

  boost::beast::websocket::stream<Stream> ws_;
  std::shared_ptr<ServerState> state_;
  std::string subprotocol_;
  boost::beast::flat_buffer buffer_;
  std::map<uint64_t, Pending> pending_;  // by sequence number
  uint64_t next_seq_ = 1;
  std::deque<std::string> out_;
  bool writing_ = false;
  bool gone_ = false;
};

}  // namespace deskml::server
