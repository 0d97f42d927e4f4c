#include "server/server.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <csignal>
#include <cstring>
#include <optional>
#include <thread>
#include <vector>

#include "server/http_session.hpp"
#include "serving/log.hpp"

namespace deskml::server {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using local = asio::local::stream_protocol;
using generic = asio::generic::stream_protocol;

namespace {

// "ip:port" of a TCP peer held in a generic endpoint.
std::string describe_peer(const generic::endpoint& peer) {
  if (peer.protocol().family() != AF_INET && peer.protocol().family() != AF_INET6) return "?";
  tcp::endpoint ep;
  if (peer.size() > ep.capacity()) return "?";
  std::memcpy(ep.data(), peer.data(), peer.size());
  ep.resize(peer.size());
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

}  // namespace

Server::Server(serving::Runtime& runtime, ServerOptions options)
    : runtime_(runtime),
      options_(std::move(options)),
      ioc_(options_.io_threads),
      acceptor_(asio::make_strand(ioc_)),
      unix_acceptor_(asio::make_strand(ioc_)) {}

Server::~Server() {
  if (state_) state_->blocking.join();
  if (unix_bound_) ::unlink(options_.unix_path.c_str());
}

Status Server::listen() {
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(options_.host, ec);
  if (ec) return invalid_argument("--host '" + options_.host + "' is not an IP address");
  const tcp::endpoint endpoint(address, options_.port);
  const generic::endpoint where(endpoint);
  acceptor_.open(where.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(where, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status(StatusCode::kUnavailable,
                  "cannot listen on " + options_.host + ":" + std::to_string(options_.port) + ": " + ec.message());
  }
  {
    tcp::endpoint bound;
    const generic::endpoint local_ep = acceptor_.local_endpoint(ec);
    if (ec || local_ep.size() > bound.capacity()) return Status(StatusCode::kUnavailable, "cannot read the bound port");
    std::memcpy(bound.data(), local_ep.data(), local_ep.size());
    bound.resize(local_ep.size());
    port_ = bound.port();
  }
  if (!options_.unix_path.empty()) DESKML_RETURN_IF_ERROR(listen_unix());
  state_ = std::make_shared<ServerState>(runtime_, options_, port_);
  state_->features = features_;
  return Status::Ok();
}

Status Server::listen_unix() {
  const std::string& path = options_.unix_path;
  auto fail = [&](const std::string& why) {
    return Status(StatusCode::kUnavailable, "cannot listen on unix socket " + path + ": " + why);
  };
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return fail("the file exists and is not a socket");
    // A socket file: left by a crashed server, or one that still serves.
    local::socket probe(ioc_);
    boost::system::error_code ec;
    probe.connect(local::endpoint(path), ec);
    if (!ec) return fail("another server is listening there");
    ::unlink(path.c_str());
  }
  boost::system::error_code ec;
  const generic::endpoint where{local::endpoint(path)};
  unix_acceptor_.open(where.protocol(), ec);
  if (!ec) unix_acceptor_.bind(where, ec);
  if (ec) return fail(ec.message());
  unix_bound_ = true;
  // Nobody can connect before listen(), so the looser mode bind() gave is never used.
  if (::chmod(path.c_str(), 0600) != 0) return fail("chmod failed");
  unix_acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail(ec.message());
  return Status::Ok();
}

void Server::accept() {
  acceptor_.async_accept(asio::make_strand(ioc_), [this](boost::system::error_code ec, generic::socket socket) {
    if (ec) {
      if (!acceptor_.is_open()) return;  // closed by the shutdown
    } else {
      boost::system::error_code e;
      const auto peer = socket.remote_endpoint(e);
      std::make_shared<HttpSession>(std::move(socket), state_, e ? std::string("?") : describe_peer(peer))->start();
    }
    accept();
  });
}

void Server::accept_unix() {
  unix_acceptor_.async_accept(asio::make_strand(ioc_), [this](boost::system::error_code ec, generic::socket socket) {
    if (ec) {
      if (!unix_acceptor_.is_open()) return;
    } else {
      std::make_shared<HttpSession>(std::move(socket), state_, "unix")->start();
    }
    accept_unix();
  });
}

void Server::run(bool handle_signals) {
  if (!state_) return;
  asio::signal_set signals(ioc_);
  if (handle_signals) {
    signals.add(SIGTERM);
    signals.add(SIGINT);
    signals.async_wait([this](boost::system::error_code ec, int signo) {
      if (ec) return;
      serving::log::event(spdlog::level::info, "server_stopping", {{"signal", signo}});
      begin_shutdown();
    });
  }
  accept();
  if (unix_acceptor_.is_open()) accept_unix();
  std::vector<std::thread> threads;
  for (int i = 1; i < std::max(1, options_.io_threads); ++i) threads.emplace_back([this] { ioc_.run(); });
  ioc_.run();
  for (auto& t : threads) t.join();
  // Callbacks the runtime still owes post into ioc_; it must outlive them. Cancelled
  // requests are answered at once, so this ends quickly.
  while (state_->runtime_pending.load() > 0) {
    state_->cancel_all();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void Server::stop() {
  asio::post(ioc_, [this] { begin_shutdown(); });
}

void Server::begin_shutdown() {
  if (state_->stopping.exchange(true)) return;
  // On the acceptors' strands, where their accept handlers run.
  asio::post(acceptor_.get_executor(), [this] {
    boost::system::error_code ec;
    acceptor_.close(ec);
  });
  asio::post(unix_acceptor_.get_executor(), [this] {
    boost::system::error_code ec;
    unix_acceptor_.close(ec);
  });
  drain_step(std::chrono::steady_clock::now() + options_.drain_timeout, false);
}

// Polls until every request read is answered; past the deadline, cancels what the
// runtime still holds and allows a short grace for those answers to be written.
void Server::drain_step(std::chrono::steady_clock::time_point deadline, bool cancelled) {
  const auto now = std::chrono::steady_clock::now();
  if (state_->in_flight.load() == 0) {
    serving::log::event(spdlog::level::info, "server_stopped", {{"drained", !cancelled}});
    ioc_.stop();
    return;
  }
  if (now >= deadline) {
    if (cancelled) {
      serving::log::event(spdlog::level::warn, "server_stopped",
                          {{"drained", false}, {"unanswered", state_->in_flight.load()}});
      ioc_.stop();
      return;
    }
    serving::log::event(spdlog::level::warn, "server_drain_timeout", {{"in_flight", state_->in_flight.load()}});
    state_->cancel_all();
    cancelled = true;
    deadline = now + std::chrono::seconds(2);
  }
  auto timer = std::make_shared<asio::steady_timer>(ioc_, std::chrono::milliseconds(10));
  timer->async_wait([this, timer, deadline, cancelled](boost::system::error_code) { drain_step(deadline, cancelled); });
}

}  // namespace deskml::server
