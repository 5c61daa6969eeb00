// The admin listeners: TCP on loopback with a bearer token, and optionally a
// Unix socket that authorises its peer by uid (SO_PEERCRED). Requests are
// handled on a small thread pool, so a slow swap neither blocks the listener
// nor a concurrent request (which then gets its 409).
#pragma once

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/thread_pool.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "server_impl.hpp"

namespace hotswap::http::detail {

class admin_service {
 public:
  struct state {
    std::string principal;  // set once authorised (Unix socket: at accept)
    bool unix_peer = false;
    std::string peer;  // for the log
  };
  using unix_stream = beast::basic_stream<net::local::stream_protocol>;

  /// Reads the token (refuses to start on an unsafe token file) and binds.
  admin_service(server::impl& s, net::io_context& io);
  ~admin_service();

  void start();
  void stop();
  std::uint16_t port() const noexcept { return port_; }

  template <class Connection>
  void on_request(std::shared_ptr<Connection> c, request&& req);
  void on_refused(unsigned) {}

  std::uint64_t unauthorized() const noexcept { return unauthorized_.load(std::memory_order_relaxed); }  // statistic

 private:
  void accept_tcp();
  void accept_unix();
  response handle(const std::string& principal, const request& req);
  response swap(const std::string& principal, std::string_view body);
  response rollback(const std::string& principal, std::string_view body);
  response policy(std::string_view body);
  std::mutex* swap_lock(const std::string& module);

  server::impl& s_;
  net::io_context& io_;
  std::string token_;
  std::optional<tcp::acceptor> tcp_;
  std::optional<net::local::stream_protocol::acceptor> unix_;
  std::uint16_t port_ = 0;
  std::shared_ptr<connection_set> connections_ = std::make_shared<connection_set>();
  net::thread_pool pool_{2};
  std::map<std::string, std::unique_ptr<std::mutex>> swap_locks_;  // fixed at start: one per module
  std::atomic<std::uint64_t> unauthorized_{0};
};

}  // namespace hotswap::http::detail
