#include <hotswap/http/config.hpp>

namespace hotswap::http {

const char* to_string(call_policy p) noexcept { return p == call_policy::pinned ? "pinned" : "per-call"; }

std::optional<call_policy> parse_call_policy(std::string_view text, std::string* error) {
  if (text == "pinned") return call_policy::pinned;
  if (text == "per-call") return call_policy::per_call;
  if (error != nullptr)
    *error = text == "per-request" || text == "per_request"
                 ? "\"" + std::string(text) + "\" was renamed: write \"per-call\""
                 : "\"" + std::string(text) + "\" is not one of: per-call, pinned";
  return std::nullopt;
}

namespace {

std::chrono::milliseconds ms(const config::snapshot& s, std::string_view key) {
  return std::chrono::milliseconds(s.integer(key));
}

std::string text_or_empty(const config::snapshot& s, std::string_view key) {
  return s.get<std::string>(key).value_or(std::string());
}

}  // namespace

server_config server_config_from(const config::snapshot& s) {
  server_config c;
  c.address = s.string("server.address");
  c.port = static_cast<std::uint16_t>(s.integer("server.port"));
  c.threads = static_cast<unsigned>(s.integer("server.threads"));
  c.plugin_dir = s.string("server.plugin_dir");
  c.shadow_dir = text_or_empty(s, "server.shadow_dir");
  c.watch_dir = text_or_empty(s, "server.watch");
  c.audit_events = static_cast<std::size_t>(s.integer("server.audit_events"));

  c.max_header_bytes = static_cast<std::size_t>(s.integer("limits.max_header_bytes"));
  c.max_body_bytes = static_cast<std::size_t>(s.integer("limits.max_body_bytes"));
  c.max_connections = static_cast<std::size_t>(s.get<std::int64_t>("limits.max_connections").value_or(0));
  c.idle_timeout = ms(s, "timeouts.idle_ms");
  c.read_timeout = ms(s, "timeouts.read_ms");
  c.write_timeout = ms(s, "timeouts.write_ms");
  c.shutdown_timeout = ms(s, "timeouts.shutdown_ms");
  c.canary_tick = ms(s, "timeouts.canary_tick_ms");
  c.upgrade_drain = ms(s, "timeouts.upgrade_drain_ms");
  c.upgrade_timeout = ms(s, "timeouts.upgrade_timeout_ms");

  c.policy = *parse_call_policy(s.string("version.policy"));
  for (std::size_t i = 0, n = s.count("routes"); i < n; ++i) {
    const std::string at = "routes[" + std::to_string(i) + "].";
    route_config r{s.string(at + "prefix"), s.string(at + "module"), text_or_empty(s, at + "file"), std::nullopt};
    if (const auto p = s.get<std::string>(at + "policy")) r.policy = parse_call_policy(*p);
    c.routes.push_back(std::move(r));
  }

  c.admin_enabled = s.boolean("admin.enabled");
  c.admin_address = s.string("admin.address");
  c.admin_port = static_cast<std::uint16_t>(s.integer("admin.port"));
  c.admin_token_file = text_or_empty(s, "admin.token_file");
  c.admin_principal = s.string("admin.principal");
  c.admin_socket = text_or_empty(s, "admin.socket");
  for (const std::int64_t uid : s.get<std::vector<std::int64_t>>("admin.uids").value_or(std::vector<std::int64_t>{}))
    c.admin_uids.push_back(static_cast<uid_t>(uid));
  return c;
}

std::vector<std::string> restart_needed(const server_config& running, const server_config& next) {
  std::vector<std::string> out;
  const auto check = [&](bool same, const char* key) {
    if (!same) out.emplace_back(key);
  };
  check(running.address == next.address, "server.address");
  check(running.port == next.port, "server.port");
  check(running.threads == next.threads, "server.threads");
  check(running.plugin_dir == next.plugin_dir, "server.plugin_dir");
  check(running.shadow_dir == next.shadow_dir, "server.shadow_dir");
  check(running.watch_dir == next.watch_dir, "server.watch");
  check(running.audit_events == next.audit_events, "server.audit_events");
  check(running.admin_enabled == next.admin_enabled, "admin.enabled");
  check(running.admin_address == next.admin_address, "admin.address");
  check(running.admin_port == next.admin_port, "admin.port");
  check(running.admin_token_file == next.admin_token_file, "admin.token_file");
  check(running.admin_socket == next.admin_socket, "admin.socket");
  return out;
}

}  // namespace hotswap::http
