// hotswap-httpd's settings: defaults, the command line and the config file.
//
// A config file holds one `key = value` per line with the long options' names
// (without the dashes); '#' starts a comment; repeatable keys (route,
// admin-uid) may repeat. The command line wins over the file:
//
//   listen = 127.0.0.1:8080
//   plugin-dir = /srv/plugins
//   route = /=greeting:greeting-1.so
//   route = /slow=slow:slow-1.so@pinned
//   admin-token-file = /etc/hotswap/admin.token
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

namespace hotswap::http {

/// Which version serves a request: the newest at the time the request starts,
/// or the one its connection first used on that route (kept while it lives).
enum class version_policy { per_request, pinned };

const char* to_string(version_policy p) noexcept;
std::optional<version_policy> parse_policy(std::string_view text) noexcept;

/// A path prefix served by a module. `file` loads the module at start (once per
/// module; later routes may name the module alone).
struct route_config {
  std::string prefix;
  std::string module;
  std::string file;
  std::optional<version_policy> policy;  ///< empty: the server-wide policy
};

/// "PREFIX=MODULE[:FILE][@pinned|@per-request]". Throws config_error.
route_config parse_route(std::string_view text);

struct server_config {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8080;  ///< 0: an ephemeral port (server::port() tells)
  unsigned threads = 0;       ///< worker threads, each with its own event loop; 0: one per core

  std::filesystem::path plugin_dir;  ///< the only directory modules load from (required)
  std::filesystem::path shadow_dir;  ///< private copies; empty: the loader's default
  std::vector<route_config> routes;
  version_policy policy = version_policy::per_request;

  std::size_t max_header_bytes = 8 * 1024;         ///< larger -> 431
  std::size_t max_body_bytes = 1024 * 1024;        ///< larger -> 413
  std::size_t max_connections = 10'000;            ///< more -> 503 and close
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
};

class config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The usage text of hotswap-httpd.
const char* usage() noexcept;

/// What the command line asked for: a config, or just the help text.
struct command_line {
  server_config config;
  bool help = false;
};

/// Parses argv (config file first, then the other options over it). Throws
/// config_error naming the option or file and line.
command_line parse_command_line(int argc, const char* const* argv);

/// Applies one `key`/`value` setting. Throws config_error.
void apply_setting(server_config& c, std::string_view key, std::string_view value);

/// Reads a config file into `c`. Throws config_error naming the file and line.
void load_config_file(server_config& c, const std::filesystem::path& file);

}  // namespace hotswap::http
