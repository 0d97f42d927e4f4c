// The HTTP server: a listener on the I/O threads, one HttpSession per connection,
// and an orderly shutdown (stop accepting, drain, cancel what is left).
#pragma once

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <memory>

#include "core/status.hpp"
#include "server/options.hpp"
#include "server/server_state.hpp"
#include "serving/runtime.hpp"

namespace deskml::features {
class FeatureService;
}

namespace deskml::server {

class Server {
 public:
  // The runtime must outlive the server.
  Server(serving::Runtime& runtime, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Requests naming a feature source and keys instead of tensors go to `service`
  // (which must outlive the server). Call before listen().
  void set_feature_service(features::FeatureService* service) { features_ = service; }

  // Binds and listens (TCP, and options.unix_path when set); afterwards port() is the
  // port actually bound. The Unix socket file gets mode 0600; an existing file there is
  // replaced only when it is a socket nobody listens on.
  Status listen();
  uint16_t port() const { return port_; }

  // Serves until SIGTERM/SIGINT (when `handle_signals`) or stop(): then stops accepting,
  // waits up to drain_timeout for in-flight requests to be answered, cancels the rest,
  // and returns once no runtime callback is outstanding.
  void run(bool handle_signals = true);
  // Starts the shutdown; callable from any thread.
  void stop();

 private:
  void accept();
  void accept_unix();
  Status listen_unix();
  void begin_shutdown();
  void drain_step(std::chrono::steady_clock::time_point deadline, bool cancelled);

  serving::Runtime& runtime_;
  ServerOptions options_;
  boost::asio::io_context ioc_;
  // Both listen through the protocol-independent type, so accepted connections are
  // already what HttpSession takes (no handing a descriptor from one socket type to
  // another). Each runs on its own strand: accepting and closing never overlap.
  boost::asio::basic_socket_acceptor<boost::asio::generic::stream_protocol> acceptor_;
  boost::asio::basic_socket_acceptor<boost::asio::generic::stream_protocol> unix_acceptor_;
  bool unix_bound_ = false;  // we created options_.unix_path: removed by the destructor
  std::shared_ptr<ServerState> state_;
  features::FeatureService* features_ = nullptr;
  uint16_t port_ = 0;
};

}  // namespace deskml::server
