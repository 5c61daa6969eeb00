// The admin listeners: TCP on loopback with a bearer token, and optionally a
// Unix socket that authorises its peer by uid (SO_PEERCRED). Requests are
// handled on a small thread pool, so a slow swap neither blocks the listener
// nor a concurrent request (which then gets its 409).
//
// Authorisation is judged from the header alone (on_header): a request
// without the right token gets its 401, or a peer not in admin.uids its 403,
// before any of its body is read. The Unix socket's path may hold only a
// stale socket of an earlier run (removed); anything else refuses the start.
// The socket file is removed when the listener closes, if it is still ours.
#pragma once

#include <sys/types.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/thread_pool.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <string>

#include "server_impl.hpp"

namespace hotswap::http::detail {

class admin_service {
 public:
  struct state {
    std::string principal;  // set once authorised (Unix socket: at accept; TCP: by on_header)
    bool unix_peer = false;
    std::string peer;  // for the log
  };
  using unix_stream = beast::basic_stream<net::local::stream_protocol>;

  /// Reads the token (refuses to start on an unsafe token file) and binds.
  admin_service(server::impl& s, net::io_context& io);
  ~admin_service();

  void start();  ///< listen and accept
  void stop();   ///< close_listeners(), and close the connections once their answers are out
  /// Closes the listeners and removes the socket file if it is still the one
  /// bound here. Idempotent; on the control thread, or once it has ended.
  void close_listeners();
  std::uint16_t port() const noexcept { return port_; }

  /// Upgrade, old side: the listeners' descriptors (-1: none), then closing
  /// them without removing the socket file (it is the new process's now).
  std::pair<int, int> listener_fds();
  void hand_over_listeners();
  /// Upgrade, new side (before start()): the old process's listeners (-1: none).
  void adopt(int tcp_fd, int unix_fd);

  /// 401 (no or wrong token) or 403 (uid not allowed) from the header alone.
  std::optional<response> on_header(state& st, const request& header);
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
  response upgrade(const std::string& principal, std::string_view body);
  response start_canary(const std::string& principal, std::string_view body);
  response steer_canary(const std::string& principal, std::string_view body, bool promote);
  std::mutex* swap_lock(const std::string& module);

  server::impl& s_;
  net::io_context& io_;
  std::string token_;
  std::optional<tcp::acceptor> tcp_;
  std::optional<net::local::stream_protocol::acceptor> unix_;
  std::optional<accept_backoff> tcp_backoff_, unix_backoff_;
  dev_t unix_dev_ = 0;  // the socket file bound here, to remove only that one
  ino_t unix_ino_ = 0;
  std::uint16_t port_ = 0;
  std::shared_ptr<connection_set> connections_ = std::make_shared<connection_set>();
  net::thread_pool pool_{2};
  std::mutex swap_locks_mutex_;
  std::map<std::string, std::unique_ptr<std::mutex>> swap_locks_;  // guarded by swap_locks_mutex_: one per module
  std::atomic<std::uint64_t> unauthorized_{0};
  bool handed_over_ = false;  // the listeners belong to a new process: leave the socket file
  std::atomic<bool> upgraded_{false};  // an upgrade succeeded: stop once its answer is out
};

}  // namespace hotswap::http::detail
