// hotswap-httpd's settings as the server runs with them, converted from a
// snapshot of its TOML settings file (hotswap::config::httpd_schema(); the
// file's layout is in adapters/http/README.md). A program that embeds the
// server may also fill server_config itself:
//
//   hotswap::http::server_config c;
//   c.plugin_dir = "/srv/plugins";
//   c.routes.push_back({.prefix = "/", .module = "greeting", .file = "greeting-1.so"});
//   c.routes.push_back({.prefix = "/slow", .module = "slow", .file = "slow-1.so", .policy = hotswap::call_policy::pinned});
//
// The version policy is the kernel's hotswap::call_policy, spelled "per-call"
// or "pinned" in the file, in admin requests and in /admin/status.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <hotswap/config/value.hpp>
#include <hotswap/options.hpp>

namespace hotswap::http {

using hotswap::call_policy;

/// "per-call" or "pinned".
const char* to_string(call_policy p) noexcept;
/// The inverse of to_string(). Anything else is refused with `error` (if
/// given) saying why; the server's old spelling "per-request" is named as
/// renamed to "per-call".
std::optional<call_policy> parse_call_policy(std::string_view text, std::string* error = nullptr);

/// A path prefix served by a module. `file` loads the module (once per module;
/// other routes may name the module alone).
struct route_config {
  std::string prefix;
  std::string module;
  std::string file;
  std::optional<call_policy> policy;  ///< empty: the server-wide policy
  bool operator==(const route_config&) const = default;
};

struct server_config {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8080;  ///< 0: an ephemeral port (server::port() tells)
  unsigned threads = 0;       ///< worker threads, each with its own event loop; 0: one per core

  std::filesystem::path plugin_dir;  ///< the only directory modules load from (required)
  std::filesystem::path shadow_dir;  ///< private copies; empty: the loader's default
  std::vector<route_config> routes;
  call_policy policy = call_policy::per_call;

  std::size_t max_header_bytes = 8 * 1024;         ///< larger -> 431
  std::size_t max_body_bytes = 1024 * 1024;        ///< larger -> 413
  /// More -> 503 and close. 0: what RLIMIT_NOFILE leaves after the descriptors
  /// open at start and a reserve of max(64, limit / 8) for plugins, the admin
  /// side and logs (1024 -> about 880).
  std::size_t max_connections = 0;
  std::chrono::milliseconds idle_timeout{30'000};  ///< keep-alive wait for the next request's first byte
  std::chrono::milliseconds read_timeout{10'000};  ///< first byte -> whole header, and whole body (slowloris)
  std::chrono::milliseconds write_timeout{10'000};
  std::chrono::milliseconds shutdown_timeout{30'000};  ///< in-flight requests get this long after SIGTERM

  bool admin_enabled = true;
  std::string admin_address = "127.0.0.1";
  std::uint16_t admin_port = 8081;
  std::filesystem::path admin_token_file;  ///< required when the TCP admin listener is on
  std::string admin_principal = "admin";   ///< who a valid bearer token is, in the audit log
  std::filesystem::path admin_socket;      ///< optional Unix-socket admin listener
  std::vector<uid_t> admin_uids;           ///< peers allowed on admin_socket (SO_PEERCRED)

  std::filesystem::path watch_dir;  ///< swap automatically when a new build lands here
  std::size_t audit_events = 64;    ///< recent audit events kept for /admin/status
  /// How often a running canary's verdict is taken (its reaction time to strong evidence).
  std::chrono::milliseconds canary_tick{20};

  /// Set: start by taking over the listeners and connections of the running
  /// server that listens here (it started us: POST /admin/upgrade). From the
  /// command line's --takeover only, never from the settings file.
  std::filesystem::path takeover_socket;
  /// The command line this server was started with (without --takeover): an
  /// upgrade starts the new binary with it (`-c FILE`). Set by hotswap-httpd's main.
  std::vector<std::string> arguments;
  /// Upgrade (timeouts.upgrade_drain_ms): how long a connection may stay busy
  /// before it is answered with Connection: close instead of being handed over.
  std::chrono::milliseconds upgrade_drain{10'000};
  /// Upgrade (timeouts.upgrade_timeout_ms): how long the new process may take
  /// from its start to accepting.
  std::chrono::milliseconds upgrade_timeout{60'000};
};

class config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Converts a snapshot that httpd_schema() accepted.
server_config server_config_from(const config::snapshot& s);

/// The settings that differ between `running` and `next` and are read only at
/// start, by their key in the settings file ("server.port", ...).
std::vector<std::string> restart_needed(const server_config& running, const server_config& next);

}  // namespace hotswap::http
