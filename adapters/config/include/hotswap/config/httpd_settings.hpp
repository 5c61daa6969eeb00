// hotswap-httpd's own settings: the schema of its configuration file and the
// typed struct a server reads on its hot path. An operator changes limits,
// routes, the version policy or the log level by saving the file; the server
// sees the new struct at its next request, with no restart.
//
//   hotswap::config::store cfg(dom, "/etc/hotswap/httpd.toml", hotswap::config::httpd_schema());
//   hotswap::config::typed_view<hotswap::config::httpd_settings> settings(cfg, dom, hotswap::config::httpd_settings::from);
//   cfg.start();
//   // per request:
//   settings.call([&](const hotswap::config::httpd_settings& s) {
//     if (request.size() > s.max_request_bytes) return reply_413();
//     if (const auto* r = s.route_for(request.path)) return dispatch(r->module, request);
//     return reply_404();
//   });
//
// The file:
//   [limits]
//   max_connections = 1024        # concurrent connections
//   max_request_bytes = 1048576   # header + body; larger: 413
//   max_header_bytes = 16384      # larger: 431
//   request_timeout_ms = 30000    # reading one request
//   keepalive_timeout_ms = 5000   # idle keep-alive connection
//   [routes]                      # longest matching prefix wins
//   "/" = "app"
//   "/api" = "api"
//   [version]
//   policy = "per-call"           # or "pinned": a connection keeps the version it connected to
//   [log]
//   level = "info"                # debug, info, warn, error
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "schema.hpp"
#include "value.hpp"

namespace hotswap::config {

/// The schema of hotswap-httpd's settings file (also the CLI's `--schema httpd`).
schema httpd_schema();

struct httpd_settings {
  enum class version_policy { per_call, pinned };
  enum class log_level { debug, info, warn, error };
  struct route {
    std::string prefix;  ///< starts with '/'
    std::string module;  ///< the module name registered with the server
  };

  std::int64_t max_connections = 1024;
  std::int64_t max_request_bytes = 1 << 20;
  std::int64_t max_header_bytes = 16384;
  std::int64_t request_timeout_ms = 30000;
  std::int64_t keepalive_timeout_ms = 5000;
  std::vector<route> routes;  ///< longest prefix first
  version_policy policy = version_policy::per_call;
  log_level log = log_level::info;

  /// Converts a snapshot that httpd_schema() accepted.
  static httpd_settings from(const snapshot& s);
  /// The route with the longest prefix of `path`, or nullptr.
  const route* route_for(std::string_view path) const noexcept;
};

}  // namespace hotswap::config
