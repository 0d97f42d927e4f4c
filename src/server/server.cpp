#include "server/server.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <csignal>
#include <thread>
#include <vector>

#include "server/http_session.hpp"
#include "serving/log.hpp"

namespace deskml::server {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

Server::Server(serving::Runtime& runtime, ServerOptions options)
    : runtime_(runtime), options_(std::move(options)), ioc_(options_.io_threads), acceptor_(ioc_) {}

Server::~Server() {
  if (state_) state_->blocking.join();
}

Status Server::listen() {
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(options_.host, ec);
  if (ec) return invalid_argument("--host '" + options_.host + "' is not an IP address");
  const tcp::endpoint endpoint(address, options_.port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status(StatusCode::kUnavailable,
                  "cannot listen on " + options_.host + ":" + std::to_string(options_.port) + ": " + ec.message());
  }
  port_ = acceptor_.local_endpoint().port();
  state_ = std::make_shared<ServerState>(runtime_, options_, port_);
  return Status::Ok();
}

void Server::accept() {
  acceptor_.async_accept(asio::make_strand(ioc_), [this](boost::system::error_code ec, tcp::socket socket) {
    if (ec) {
      if (!acceptor_.is_open()) return;  // closed by the shutdown
    } else {
      std::make_shared<HttpSession>(std::move(socket), state_)->start();
    }
    accept();
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
  boost::system::error_code ec;
  acceptor_.close(ec);
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
