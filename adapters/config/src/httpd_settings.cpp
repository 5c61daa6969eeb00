// hotswap-httpd's settings schema and its typed struct.
#include "hotswap/config/httpd_settings.hpp"

#include <algorithm>

namespace hotswap::config {

schema httpd_schema() {
  schema s;
  s.integer("limits.max_connections").range(1, 1'000'000).default_to(std::int64_t{1024}).doc("concurrent connections");
  s.integer("limits.max_request_bytes")
      .range(1024, 1LL << 30)
      .default_to(std::int64_t{1} << 20)
      .doc("header and body; larger requests get 413");
  s.integer("limits.max_header_bytes").range(256, 1 << 20).default_to(std::int64_t{16384}).doc("larger headers get 431");
  s.integer("limits.request_timeout_ms").range(1, 3'600'000).default_to(std::int64_t{30000}).doc("reading one request");
  s.integer("limits.keepalive_timeout_ms").range(0, 3'600'000).default_to(std::int64_t{5000}).doc("idle keep-alive");
  s.string_map("routes").pattern("[A-Za-z0-9_.-]+").doc("path prefix -> module name; longest prefix wins");
  s.string("version.policy").one_of({"per-call", "pinned"}).default_to("per-call").doc(
      "per-call: every request the newest version; pinned: a connection keeps its version");
  s.string("log.level").one_of({"debug", "info", "warn", "error"}).default_to("info");
  s.validator([](const snapshot& c) -> std::optional<veto> {
    if (c.integer("limits.max_header_bytes") > c.integer("limits.max_request_bytes"))
      return veto{"limits.max_header_bytes", "must not exceed limits.max_request_bytes"};
    for (const auto& [prefix, module] : c.section("routes"))
      if (!prefix.starts_with('/')) return veto{"routes." + prefix, "a route prefix must start with '/'"};
    return std::nullopt;
  });
  return s;
}

httpd_settings httpd_settings::from(const snapshot& s) {
  httpd_settings out;
  out.max_connections = s.integer("limits.max_connections");
  out.max_request_bytes = s.integer("limits.max_request_bytes");
  out.max_header_bytes = s.integer("limits.max_header_bytes");
  out.request_timeout_ms = s.integer("limits.request_timeout_ms");
  out.keepalive_timeout_ms = s.integer("limits.keepalive_timeout_ms");
  for (const auto& [prefix, module] : s.section("routes")) out.routes.push_back({prefix, std::get<std::string>(module)});
  std::stable_sort(out.routes.begin(), out.routes.end(),
                   [](const route& a, const route& b) { return a.prefix.size() > b.prefix.size(); });
  out.policy = s.string("version.policy") == "pinned" ? version_policy::pinned : version_policy::per_call;
  const std::string& level = s.string("log.level");
  out.log = level == "debug" ? log_level::debug
            : level == "warn" ? log_level::warn
            : level == "error" ? log_level::error
                               : log_level::info;
  return out;
}

const httpd_settings::route* httpd_settings::route_for(std::string_view path) const noexcept {
  for (const route& r : routes) {
    if (!path.starts_with(r.prefix)) continue;
    // "/api" matches "/api" and "/api/x", not "/apix"; "/" matches everything.
    if (path.size() == r.prefix.size() || r.prefix.back() == '/' || path[r.prefix.size()] == '/') return &r;
  }
  return nullptr;
}

}  // namespace hotswap::config
