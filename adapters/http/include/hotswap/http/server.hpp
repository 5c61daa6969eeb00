// hotswap-httpd as a library: an HTTP/1.1 server (Boost.Beast) whose routes
// call application modules (app_api.h) through a hotswap::modules::registry.
//
//   hotswap::http::server_config c;
//   c.port = 0;  c.plugin_dir = "/srv/plugins";  c.admin_token_file = "/etc/hotswap/admin.token";
//   c.routes.push_back({.prefix = "/", .module = "greeting", .file = "greeting-1.so"});
//   hotswap::http::server s(c);   // loads the modules, binds; throws naming the cause
//   s.start();                    // worker threads, admin listener, watcher
//   ...                           // s.port(), s.admin_port(), s.modules().swap(...)
//   s.apply(changed);             // limits, timeouts, routes, policy, admin rules: live
//   s.stop();  s.wait();          // graceful: stop accepting, finish in flight
//
// hotswap-httpd itself reads its settings from a TOML file and applies each
// save through apply() (settings_file.hpp).
//
// The host part (listeners, connections, parsing, limits, timers, admin) is
// never swapped; only the modules are. Each worker thread runs its own
// io_context with its own SO_REUSEPORT acceptor, so the kernel spreads new
// connections and a connection lives on one thread for its whole life.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <hotswap/module/registry.hpp>

#include "config.hpp"

namespace hotswap::http {

/// Responses the server stamped with one module version, by status class.
struct version_count {
  std::string build;
  std::uint64_t by_class[6] = {};  ///< [1]..[5]: 1xx..5xx; [0]: other
  std::uint64_t total() const noexcept {
    std::uint64_t t = 0;
    for (const auto c : by_class) t += c;
    return t;
  }
};

/// Per (module, version) response counts, summed over the workers.
using version_counts = std::map<std::pair<std::string, std::uint64_t>, version_count>;

class server {
 public:
  /// Loads each route's module, reads the admin token, binds every listener.
  /// Throws config_error or module_error naming the file and cause.
  explicit server(server_config config);
  ~server();  ///< stop() and wait() if still running
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  void start();
  /// Graceful: stops accepting, lets in-flight requests finish (each with
  /// Connection: close), closes idle connections. Returns at once; safe from
  /// any thread and from a signal handler's io_context.
  void stop();
  /// Joins every thread; forces the remaining connections closed after
  /// shutdown_timeout.
  void wait();

  /// Called once this server has handed everything to the new binary of an
  /// upgrade (POST /admin/upgrade) and stopped: the process should wait() and exit.
  void on_upgraded(std::function<void()> f);

  std::uint16_t port() const noexcept;
  std::uint16_t admin_port() const noexcept;
  hotswap::modules::registry& modules() noexcept;

  /// Switches the version policy of every route, or of the route with this
  /// prefix (false: no such route). Applies from each connection's next request.
  bool set_policy(call_policy p, const std::string* route_prefix = nullptr);

  /// What apply() did not do.
  struct apply_report {
    std::vector<std::string> restart_needed;  ///< changed keys read only at start ("server.port")
    std::vector<std::string> refused;         ///< live changes not made, each with why
  };
  /// Takes `next`'s live settings: limits and timeouts from each connection's
  /// next request, routes (loading modules no route loaded yet) and version
  /// policies from the next request, admin principal and uids from the next
  /// admin request. A route whose module fails to load keeps its old module
  /// (or stays absent), named in `refused`. A route that stays keeps a policy
  /// set through the admin API until `next` changes that route's policy.
  apply_report apply(const server_config& next);
  /// Settings changed by the last apply() that wait for a restart.
  std::vector<std::string> restart_pending() const;

  version_counts counts() const;
  /// The Prometheus text exposition served at /metrics.
  std::string metrics_text() const;
  /// The JSON served at /admin/status.
  std::string status_json() const;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

/// A process started with --takeover that cannot take over tells the server
/// that started it why (the admin call's answer). Best effort; never throws.
void report_takeover_failure(const std::filesystem::path& socket, const std::string& why) noexcept;

}  // namespace hotswap::http
