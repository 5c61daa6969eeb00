// The inside of hotswap::http::server: what the workers, the application
// handler, the admin handler and the metrics share. Not installed.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <hotswap/http/app_api.h>
#include <hotswap/http/server.hpp>
#include <hotswap/slot.hpp>
#include <hotswap/watch.hpp>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "carried_counters.hpp"
#include "connection.hpp"
#include "descriptors.hpp"
#include "upgrade.hpp"

namespace hotswap::http {

namespace detail {

using tcp = net::ip::tcp;
using app_pin = modules::module_pin<hotswap_http_app>;

/// A path prefix and the module behind it. The module_ref is resolved once,
/// when the route is made, so a request takes no registry lock and no name
/// lookup. A route unchanged by a saved settings file is the same entry
/// afterwards (its policy, retry set and connections' pins carry over).
struct route_entry {
  std::string prefix;
  std::string module;
  std::size_t index = 0;  // this route's number for its whole life: never reused, so pins and counts stay its own
  modules::module_ref<hotswap_http_app> ref;
  modules::canary* canary;  // the module's canary (idle unless one was started): every request goes through it
  std::atomic<call_policy> policy{call_policy::per_call};
  /// Methods (bits by beast verb) whose failure on a canary is re-run once on stable.
  std::atomic<std::uint64_t> retryable{default_retryable};
  static constexpr std::uint64_t default_retryable =
      (std::uint64_t{1} << static_cast<unsigned>(bhttp::verb::get)) | (std::uint64_t{1} << static_cast<unsigned>(bhttp::verb::head));

  route_entry(std::string p, std::string m, std::size_t i, modules::module_ref<hotswap_http_app> r, modules::canary& c,
              call_policy pol)
      : prefix(std::move(p)), module(std::move(m)), index(i), ref(r), canary(&c), policy(pol) {}
  bool retries(bhttp::verb v) const noexcept {
    // Relaxed: a set of flags read per request; no data is published with it.
    return ((retryable.load(std::memory_order_relaxed) >> static_cast<unsigned>(v)) & 1) != 0;
  }
  bool matches(std::string_view target) const noexcept {
    if (!target.starts_with(prefix)) return false;
    if (prefix.ends_with('/') || target.size() == prefix.size()) return true;
    const char next = target[prefix.size()];
    return next == '/' || next == '?';
  }
};

/// The routes serving, longest prefix first (the first match is the most specific).
using route_table = std::vector<std::shared_ptr<route_entry>>;
using route_slot = hotswap::slot<route_table>;

/// The response header naming the canary version whose failure a stable answer replaces.
inline constexpr std::string_view fallback_header = "X-Hotswap-Fallback";
/// How a canary version is named in X-Hotswap-Version, metrics and counts: its number in
/// the canary's own slot, marked so that it never reads as a stable version number.
inline constexpr std::uint64_t canary_version_bit = std::uint64_t{1} << 62;
inline std::string version_text(std::uint64_t key) {
  return (key & canary_version_bit) != 0 ? "canary-" + std::to_string(key & ~canary_version_bit) : std::to_string(key);
}

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

struct shadow_compare;  // server.cpp: a shadow run's answer against the serving version's
class connection_handoff;  // upgrade.hpp: where an upgrade sends the connections it passes on

/// The application side: routes a request to its module under its policy.
class app_service {
 public:
  struct state {
    std::vector<app_pin> pins;      // by route index: this connection's pinned versions
    std::vector<modules::side> sides;  // by route index: the canary side of each pinned version
    std::shared_ptr<void> counted;  // releases the open-connection count when the connection goes
    std::uint64_t key = 0;          // the connection's number: its canary key (a freed address would recur)
  };
  using connection_type = connection<beast::tcp_stream, app_service>;

  app_service(const route_slot& routes, worker_stats& stats, connection_handoff& handoff)
      : routes_(routes), stats_(stats), handoff_(handoff) {}

  std::optional<response> on_header(state&, const request&) { return std::nullopt; }  // the app sees whole requests
  void on_request(std::shared_ptr<connection_type> c, request&& req);
  void on_refused(unsigned status);
  /// An upgrade passes the connection (`fd`, a duplicate) and its unparsed bytes to the new process.
  void pass_on(state&, int fd, std::string unparsed);
  /// Counts a response of `route`'s module version (a canary's: `version_key` of it) and its latency.
  void record(const route_entry& route, const version_info& v, unsigned status, std::chrono::steady_clock::duration d);
  /// Runs `req` on `version` of `route`'s module; `fallback_of` names the canary version whose
  /// failure this re-runs; `shadow` pairs a shadow run with the serving version's run.
  void run(std::shared_ptr<connection_type> c, std::shared_ptr<route_entry> route, request&& req,
           const app_pin& version, modules::side on, std::string fallback_of,
           std::shared_ptr<shadow_compare> shadow = {});

 private:
  std::shared_ptr<route_entry> match(std::string_view target) const;

  const route_slot& routes_;
  worker_stats& stats_;
  connection_handoff& handoff_;
  std::uint64_t shadow_sequence_ = 0;  // this worker's requests, mixed into the shadow sample's key
};

/// A listening socket of the application port and its descriptor backoff.
struct listener {
  tcp::acceptor acceptor;
  accept_backoff backoff;
  listener(net::io_context& io, descriptor_exhaustion& e) : acceptor(io), backoff(io.get_executor(), e) {}
};

/// One worker: an event loop on its own thread with its own acceptor (after a
/// takeover, the listeners of the process it replaced: one or more each).
struct worker {
  net::io_context io{1};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> guard;
  std::vector<std::unique_ptr<listener>> listeners;  // bound at construction, listening from start()
  worker_stats stats;
  app_service service;
  std::shared_ptr<connection_set> connections = std::make_shared<connection_set>();
  std::thread thread;

  worker(const route_slot& routes, connection_handoff& handoff) : service(routes, stats, handoff) {}
};

/// Recent audit events, and a line on stderr for each (control characters escaped).
class audit_log {
 public:
  explicit audit_log(std::size_t keep) : keep_(keep) {}
  void add(const modules::module_event& e);
  /// The host's own audit line (an upgrade): on stderr and kept like the others.
  void note(const std::string& principal, const std::string& what, const std::string& message);
  /// Events of the process this one replaced: kept, not printed again.
  void restore(std::vector<modules::module_event> events);
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
  void bind_listener(detail::worker& w, const detail::tcp::endpoint& ep);
  static void close_listeners(detail::worker& w);
  void accept(detail::worker& w, detail::listener& l);
  void serve(detail::worker& w, detail::tcp::socket socket, std::uint64_t number, std::string_view unparsed);
  void check_drains_periodically();
  void judge_canaries_periodically();
  /// Any thread, after a canary started (the registry's log calls it): the verdict's tick runs again if it had stopped.
  void canary_started();
  void on_watched_change(const watch::file_change& change);
  std::string metrics_text() const;
  std::string status_json();  // the registry's status calls are not const
  /// Builds the route table of `wanted` from the routes serving now (an
  /// unchanged route keeps its entry), loading modules not loaded yet.
  /// Refusals (a module that failed to load) go to `refused`; such a route
  /// keeps its old module, or is left out. No `refused` (at start): the
  /// first refusal throws. routes_mutex held.
  server::apply_report apply(const server_config& next);
  bool set_policy(call_policy p, const std::string* route_prefix);
  void set_max_connections(std::size_t wanted);  // 0: what the descriptor limit leaves
  detail::route_table make_routes(const std::vector<route_config>& wanted, call_policy old_default, call_policy new_default,
                          std::vector<std::string>* refused);
  /// The route with this index, made at any time (for counts of removed routes).
  std::shared_ptr<detail::route_entry> route_by_index(std::size_t index) const;

  // Upgrade (upgrade.cpp). The old side: the admin call (JSON outcome, or
  // throws upgrade_refusal), then, once its answer is out, upgrade_finished().
  std::string upgrade(const std::string& principal, const std::string& binary);
  void upgrade_finished();
  std::string carried_state();  // what the new process continues from
  // The new side: in start(), the handshake up to the listeners; accepting()
  // once they accept; then the old process's connections arrive.
  void take_over();
  void adopt_state(const std::string& state);
  void adopt_listeners(detail::takeover_message&& m);
  void accepting();
  void adopt_connection(int fd, std::string unparsed);
  // The upgrade's times as the settings say now (timeouts.upgrade_*_ms, applied live).
  std::chrono::milliseconds upgrade_drain() const noexcept {
    return std::chrono::milliseconds(upgrade_drain_ms.load(std::memory_order_relaxed));  // a number; no partner
  }
  std::chrono::milliseconds upgrade_timeout() const noexcept {
    return std::chrono::milliseconds(upgrade_timeout_ms.load(std::memory_order_relaxed));  // a number; no partner
  }
  server_config config;  // as it was at start; the live settings below follow apply()
  std::shared_ptr<detail::audit_log> audit;
  /// What the registry's log calls on a canary event: this server until ~impl()
  /// detaches it (the registry outlives the control loop canary_started() posts to).
  struct canary_listener {
    std::mutex mutex;
    impl* server = nullptr;  // guarded by mutex
  };
  std::shared_ptr<canary_listener> canaries = std::make_shared<canary_listener>();
  hotswap::domain domain;
  std::optional<hotswap::modules::registry> registry;
  detail::route_slot routes{domain, detail::route_table{}};
  mutable std::mutex routes_mutex;  // serialises apply(); guards the members below
  server_config applied;            // guarded by routes_mutex: the settings last applied
  std::vector<std::string> pending_restart;                   // guarded by routes_mutex
  std::vector<std::shared_ptr<detail::route_entry>> every_route;  // guarded by routes_mutex: by index
  detail::live_limits limits{detail::connection_limits{}};
  // Relaxed, all of them: numbers read where they are used; no data is published with them.
  std::atomic<std::size_t> max_connections{0};  // config's max_connections, or what the descriptor limit leaves
  std::atomic<std::chrono::milliseconds::rep> shutdown_ms{0}, canary_tick_ms{0}, upgrade_drain_ms{0},
      upgrade_timeout_ms{0};
  std::size_t connection_fit = 0;  // what the descriptor limit leaves for connections
  std::size_t descriptor_limit = 0;
  detail::descriptor_exhaustion exhaustion;
  std::atomic<std::size_t> open_connections{0};
  std::atomic<std::uint64_t> accepted{0}, rejected{0};
  detail::connection_handoff handoff;  // where an upgrade passes connections (old side)
  // After what their connections use (routes, the registry's pins, the count
  // above): a worker's io_context destroys connections whose reads were still
  // pending at shutdown.
  std::vector<std::unique_ptr<detail::worker>> workers;

  // Control: the admin listeners, the drain checks and the watcher's swaps.
  detail::net::io_context control{1};
  std::optional<detail::net::executor_work_guard<detail::net::io_context::executor_type>> control_guard;
  std::optional<detail::net::steady_timer> drain_timer;
  std::optional<detail::net::steady_timer> canary_timer;  // the canaries' verdict tick
  bool canary_ticking = false;                            // control thread only: canary_timer is armed
  std::unique_ptr<detail::admin_service> admin;
  std::thread control_thread;
  std::unique_ptr<hotswap::watch::watcher> watch;

  /// Who may use the admin side, as the settings say now.
  struct admin_rules {
    std::string principal;  // the bearer token's holder
    std::vector<uid_t> uids;  // peers allowed on the Unix socket
  };
  hotswap::slot<admin_rules> admin_access{domain, admin_rules{}};

  // Upgrade. Old side: one at a time (upgrade_mutex), its outcome counted;
  // on_upgraded tells main to exit. New side: the channel to the old process,
  // the thread that receives its connections, the counters it carried.
  std::mutex upgrade_mutex;
  std::atomic<bool> handing_over{false};  // an upgrade closed the listeners: pass every connection on
  std::atomic<std::uint64_t> upgrades{0}, upgrades_failed{0}, handed_over{0}, closed_at_deadline{0}, adopted{0};
  std::function<void()> on_upgraded;
  std::unique_ptr<detail::takeover_channel> takeover;
  std::thread takeover_thread;
  detail::carried_counters carried;
  std::atomic<std::size_t> next_adopter{0};

  std::atomic<bool> stopping{false};
  bool started = false, joined = false;
  std::uint16_t bound_port = 0;
};

}  // namespace hotswap::http
