// The inside of hotswap::http::server: what the workers, the application
// handler, the admin handler and the metrics share. Not installed.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <hotswap/http/app_api.h>
#include <hotswap/http/server.hpp>
#include <hotswap/watch.hpp>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "connection.hpp"

namespace hotswap::http {

namespace detail {

using tcp = net::ip::tcp;
using app_pin = modules::module_pin<hotswap_http_app>;

/// A path prefix and the module behind it. The module_ref is resolved once at
/// start, so a request takes no registry lock and no name lookup.
struct route_entry {
  std::string prefix;
  std::string module;
  std::size_t index = 0;
  modules::module_ref<hotswap_http_app> ref;
  std::atomic<version_policy> policy{version_policy::per_request};

  route_entry(std::string p, std::string m, std::size_t i, modules::module_ref<hotswap_http_app> r, version_policy pol)
      : prefix(std::move(p)), module(std::move(m)), index(i), ref(r), policy(pol) {}
  bool matches(std::string_view target) const noexcept {
    if (!target.starts_with(prefix)) return false;
    if (prefix.ends_with('/') || target.size() == prefix.size()) return true;
    const char next = target[prefix.size()];
    return next == '/' || next == '?';
  }
};

/// Request latency buckets (upper bounds, seconds) of /metrics.
inline constexpr std::array<double, 14> latency_bounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                          0.025,  0.05,    0.1,    0.25,  0.5,    1.0,  5.0};

/// One worker's counters. Written by that worker only; read by /metrics and
/// /admin/status under the (then rarely contended) mutex.
struct worker_stats {
  mutable std::mutex mutex;
  std::map<std::pair<std::size_t, std::uint64_t>, version_count> versions;  // (route index, version)
  std::array<std::uint64_t, latency_bounds.size() + 1> latency{};           // last: +Inf
  double latency_sum = 0;
  std::map<unsigned, std::uint64_t> refused;  // host answers by status (400, 413, 431, 501, 503)
};

/// The application side: routes a request to its module under its policy.
class app_service {
 public:
  struct state {
    std::vector<app_pin> pins;      // by route index: this connection's pinned versions
    std::shared_ptr<void> counted;  // releases the open-connection count when the connection goes
  };
  using connection_type = connection<beast::tcp_stream, app_service>;

  app_service(const std::vector<std::unique_ptr<route_entry>>& routes, worker_stats& stats)
      : routes_(routes), stats_(stats) {}

  void on_request(std::shared_ptr<connection_type> c, request&& req);
  void on_refused(unsigned status);
  /// Counts a response of `route`'s module version and its latency.
  void record(std::size_t route, const version_info& v, unsigned status, std::chrono::steady_clock::duration d);

 private:
  const route_entry* match(std::string_view target) const noexcept;

  const std::vector<std::unique_ptr<route_entry>>& routes_;
  worker_stats& stats_;
};

/// One worker: an event loop on its own thread with its own acceptor.
struct worker {
  net::io_context io{1};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> guard;
  std::optional<tcp::acceptor> acceptor;
  worker_stats stats;
  app_service service;
  std::shared_ptr<connection_set> connections = std::make_shared<connection_set>();
  std::thread thread;

  explicit worker(const std::vector<std::unique_ptr<route_entry>>& routes) : service(routes, stats) {}
};

/// Recent audit events, and a line on stderr for each (control characters escaped).
class audit_log {
 public:
  explicit audit_log(std::size_t keep) : keep_(keep) {}
  void add(const modules::module_event& e);
  std::vector<modules::module_event> recent() const;

 private:
  std::size_t keep_;
  mutable std::mutex mutex_;
  std::deque<modules::module_event> events_;
};

/// Text with control characters, quotes and backslashes escaped (\n, \x01...).
std::string escape_text(std::string_view s);

class admin_service;

}  // namespace detail

struct server::impl {
  explicit impl(server_config c);
  ~impl();

  void start();
  void stop();
  void wait();
  void accept(detail::worker& w);
  void check_drains_periodically();
  void on_watched_change(const watch::file_change& change);
  std::string metrics_text() const;
  std::string status_json();  // the registry's status calls are not const

  server_config config;
  std::shared_ptr<detail::audit_log> audit;
  hotswap::domain domain;
  std::optional<hotswap::modules::registry> registry;
  std::vector<std::unique_ptr<detail::route_entry>> routes;
  detail::connection_limits limits;
  std::atomic<std::size_t> open_connections{0};
  std::atomic<std::uint64_t> accepted{0}, rejected{0};
  // After what their connections use (routes, the registry's pins, the count
  // above): a worker's io_context destroys connections whose reads were still
  // pending at shutdown.
  std::vector<std::unique_ptr<detail::worker>> workers;

  // Control: the admin listeners, the drain checks and the watcher's swaps.
  detail::net::io_context control{1};
  std::optional<detail::net::executor_work_guard<detail::net::io_context::executor_type>> control_guard;
  std::optional<detail::net::steady_timer> drain_timer;
  std::unique_ptr<detail::admin_service> admin;
  std::thread control_thread;
  std::unique_ptr<hotswap::watch::watcher> watch;

  std::atomic<bool> stopping{false};
  bool started = false, joined = false;
  std::uint16_t bound_port = 0;
};

}  // namespace hotswap::http
