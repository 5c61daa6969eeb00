#include <hotswap/http/config.hpp>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <limits>

namespace hotswap::http {

const char* to_string(version_policy p) noexcept { return p == version_policy::pinned ? "pinned" : "per-request"; }

std::optional<version_policy> parse_policy(std::string_view text) noexcept {
  if (text == "pinned") return version_policy::pinned;
  if (text == "per-request" || text == "per_request") return version_policy::per_request;
  return std::nullopt;
}

namespace {

template <class Int>
Int parse_int(std::string_view key, std::string_view text, Int lo, Int hi) {
  Int v{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || v < lo || v > hi)
    throw config_error(std::string(key) + ": expected a number in [" + std::to_string(lo) + ", " +
                       std::to_string(hi) + "], got '" + std::string(text) + "'");
  return v;
}

std::chrono::milliseconds parse_ms(std::string_view key, std::string_view text) {
  return std::chrono::milliseconds(parse_int<long>(key, text, 1, 24L * 3600 * 1000));
}

// "HOST:PORT" into address and port.
void parse_endpoint(std::string_view key, std::string_view text, std::string& address, std::uint16_t& port) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    throw config_error(std::string(key) + ": expected HOST:PORT, got '" + std::string(text) + "'");
  address = std::string(text.substr(0, colon));
  port = parse_int<std::uint16_t>(key, text.substr(colon + 1), 0, 65535);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

route_config parse_route(std::string_view text) {
  route_config r;
  const auto eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0 || text.front() != '/')
    throw config_error("route: expected PREFIX=MODULE[:FILE][@POLICY] with PREFIX starting with '/', got '" +
                       std::string(text) + "'");
  r.prefix = std::string(text.substr(0, eq));
  std::string_view rest = text.substr(eq + 1);
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    r.policy = parse_policy(rest.substr(at + 1));
    if (!r.policy) throw config_error("route: unknown policy '" + std::string(rest.substr(at + 1)) + "'");
    rest = rest.substr(0, at);
  }
  const auto colon = rest.find(':');
  r.module = std::string(rest.substr(0, colon));
  if (colon != std::string_view::npos) r.file = std::string(rest.substr(colon + 1));
  if (r.module.empty()) throw config_error("route: no module in '" + std::string(text) + "'");
  return r;
}

void apply_setting(server_config& c, std::string_view key, std::string_view value) {
  const std::string v(value);
  if (key == "listen") parse_endpoint(key, value, c.address, c.port);
  else if (key == "threads") c.threads = parse_int<unsigned>(key, value, 0, 1024);
  else if (key == "plugin-dir") c.plugin_dir = v;
  else if (key == "shadow-dir") c.shadow_dir = v;
  else if (key == "route") c.routes.push_back(parse_route(value));
  else if (key == "policy") {
    const auto p = parse_policy(value);
    if (!p) throw config_error("policy: expected per-request or pinned, got '" + v + "'");
    c.policy = *p;
  } else if (key == "max-header-bytes") c.max_header_bytes = parse_int<std::size_t>(key, value, 256, 1 << 20);
  else if (key == "max-body-bytes") c.max_body_bytes = parse_int<std::size_t>(key, value, 0, std::size_t{1} << 32);
  else if (key == "max-connections") c.max_connections = parse_int<std::size_t>(key, value, 1, 1'000'000);
  else if (key == "idle-timeout-ms") c.idle_timeout = parse_ms(key, value);
  else if (key == "read-timeout-ms") c.read_timeout = parse_ms(key, value);
  else if (key == "write-timeout-ms") c.write_timeout = parse_ms(key, value);
  else if (key == "shutdown-timeout-ms") c.shutdown_timeout = parse_ms(key, value);
  else if (key == "admin-listen") parse_endpoint(key, value, c.admin_address, c.admin_port);
  else if (key == "no-admin") c.admin_enabled = false;
  else if (key == "admin-token-file") c.admin_token_file = v;
  else if (key == "admin-principal") c.admin_principal = v;
  else if (key == "admin-socket") c.admin_socket = v;
  else if (key == "admin-uid") c.admin_uids.push_back(parse_int<uid_t>(key, value, 0, std::numeric_limits<uid_t>::max() - 1));
  else if (key == "watch") c.watch_dir = v;
  else if (key == "audit-events") c.audit_events = parse_int<std::size_t>(key, value, 1, 100'000);
  else throw config_error(std::string(key) + ": unknown setting");
}

void load_config_file(server_config& c, const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw config_error(file.string() + ": cannot read the config file");
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    line.resize(std::min(line.size(), line.find('#')));
    const std::string_view s = trim(line);
    if (s.empty()) continue;
    const auto eq = s.find('=');
    try {
      if (eq == std::string_view::npos) apply_setting(c, s, {});
      else apply_setting(c, trim(s.substr(0, eq)), trim(s.substr(eq + 1)));
    } catch (const config_error& e) {
      throw config_error(file.string() + ":" + std::to_string(number) + ": " + e.what());
    }
  }
}

const char* usage() noexcept {
  return R"(usage: hotswap-httpd [options]

An HTTP/1.1 server whose application is a hot-swappable module (app_api.h).

  --config FILE              settings as `key = value` lines (keys: the long options)
  --listen HOST:PORT         application listener (default 127.0.0.1:8080; port 0: any)
  --threads N                worker threads, one event loop each (default: one per core)
  --plugin-dir DIR           the only directory modules are loaded from (required)
  --shadow-dir DIR           where private copies of loaded modules go
  --route PREFIX=MODULE[:FILE][@POLICY]
                             serve PREFIX with MODULE, loading FILE (in --plugin-dir)
                             at start; POLICY: per-request | pinned (repeatable)
  --policy POLICY            server-wide version policy (default per-request)
  --max-header-bytes N       (default 8192; larger -> 431)
  --max-body-bytes N         (default 1048576; larger -> 413)
  --max-connections N        (default 10000; more -> 503 and close)
  --idle-timeout-ms N        keep-alive idle time (default 30000)
  --read-timeout-ms N        time to send a header, and a body (default 10000)
  --write-timeout-ms N       (default 10000)
  --shutdown-timeout-ms N    in-flight grace after SIGTERM/SIGINT (default 30000)
  --admin-listen HOST:PORT   admin listener (default 127.0.0.1:8081)
  --no-admin                 no TCP admin listener
  --admin-token-file FILE    bearer token; the file must be readable by this user only
  --admin-principal NAME     the token holder's name in the audit log (default admin)
  --admin-socket PATH        Unix-socket admin listener, authorised by peer uid
  --admin-uid UID            a uid allowed on --admin-socket (repeatable)
  --watch DIR                swap MODULE when DIR/MODULE-*.so or DIR/MODULE.so changes
  --audit-events N           recent audit events shown by /admin/status (default 64)
  -h, --help                 this text

Admin (Authorization: Bearer TOKEN):
  POST /admin/swap      {"module": "greeting", "file": "greeting-2.so", "expected_version": 1}
  POST /admin/rollback  {"module": "greeting", "version": 1}
  POST /admin/policy    {"policy": "pinned"} or {"route": "/slow", "policy": "per-request"}
  GET  /admin/status    JSON: versions, pins, drain state, recent audit events
  GET  /metrics         Prometheus text exposition
)";
}

command_line parse_command_line(int argc, const char* const* argv) {
  command_line out;
  std::vector<std::pair<std::string, std::string>> settings;
  std::optional<std::filesystem::path> file;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      out.help = true;
      return out;
    }
    if (!arg.starts_with("--")) throw config_error("unexpected argument '" + std::string(arg) + "'");
    std::string key(arg.substr(2)), value;
    if (const auto eq = key.find('='); eq != std::string::npos) {
      value = key.substr(eq + 1);
      key.resize(eq);
    } else if (key != "no-admin") {
      if (i + 1 >= argc) throw config_error("--" + key + " needs a value");
      value = argv[++i];
    }
    if (key == "config") file = value;
    else settings.emplace_back(std::move(key), std::move(value));
  }
  if (file) load_config_file(out.config, *file);
  for (const auto& [k, v] : settings) {
    try {
      apply_setting(out.config, k, v);
    } catch (const config_error& e) {
      throw config_error("--" + std::string(e.what()));
    }
  }
  return out;
}

}  // namespace hotswap::http
