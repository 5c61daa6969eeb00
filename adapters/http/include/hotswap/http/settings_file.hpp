// hotswap-httpd's settings file, followed while the server runs: a config
// store on the TOML file (hotswap::config::httpd_schema(), plus a check that
// each route's file is inside server.plugin_dir), the server built from it, and
// every save applied to that server.
//
//   hotswap::http::settings_file httpd("/etc/hotswap/httpd.toml");  // throws file:line:col
//   httpd.start();
//   // an operator saves the file: limits, timeouts, routes, policies and admin
//   // rules apply at once; other changes are logged as needing a restart.
//
// A save the schema refuses is kept as NAME.error.<n>.toml, logged with its
// file:line:column, and the settings serving keep serving; an accepted save is
// recorded as history NAME.<major>.<minor>.toml (adapters/config/README.md).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <hotswap/config/store.hpp>

#include "server.hpp"

namespace hotswap::http {

/// How the process was started, beyond the file: command-line only, never in
/// it (hotswap-httpd's main sets it; an embedding program may leave it empty).
struct process_start {
  std::filesystem::path takeover_socket;  ///< --takeover: take over from the server that started us
  std::vector<std::string> arguments;     ///< the command line without --takeover, for a later upgrade
};

class settings_file {
 public:
  /// Loads the file (or, if it is invalid, its newest valid history file) and
  /// builds the server. Throws config::config_exception for a file the schema
  /// refuses (and no valid history), config_error or module_error from the server.
  explicit settings_file(std::filesystem::path file, config::store_options options = {}, process_start how = {});
  ~settings_file();  ///< stops following the file, then stops the server
  settings_file(const settings_file&) = delete;
  settings_file& operator=(const settings_file&) = delete;

  /// The server, then the watch on the file.
  void start();
  /// Stops following the file and stops the server gracefully (server::stop()).
  void stop();
  void wait() { server_->wait(); }

  http::server& server() noexcept { return *server_; }
  config::store& settings() noexcept { return *store_; }

  /// The schema hotswap-httpd validates its file with.
  static config::schema schema();

 private:
  void on_change(const config::snapshot& now);

  hotswap::domain domain_;  // the store's: the server has a domain of its own
  std::unique_ptr<config::store> store_;
  std::unique_ptr<http::server> server_;
  std::uint64_t subscription_ = 0;
};

}  // namespace hotswap::http
