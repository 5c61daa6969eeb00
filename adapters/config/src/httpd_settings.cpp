// hotswap-httpd's settings schema.
#include "hotswap/config/httpd_settings.hpp"

#include <set>
#include <string>

namespace hotswap::config {

namespace {

// The call policy's one spelling (hotswap::call_policy::per_call); the
// server's old name for it is refused with an error naming the new one.
void call_policy_rule(schema::rule_builder r) {
  r.one_of({"per-call", "pinned"}).renamed("per-request", "per-call").renamed("per_request", "per-call");
}

}  // namespace

schema httpd_schema() {
  schema s;
  s.string("server.address").default_to("127.0.0.1").doc("application listener address (restart)");
  s.integer("server.port").range(0, 65535).default_to(std::int64_t{8080}).doc("0: any free port (restart)");
  s.integer("server.threads").range(0, 1024).default_to(std::int64_t{0}).doc("worker threads; 0: one per core (restart)");
  s.string("server.plugin_dir").required().doc("the only directory modules load from (restart)");
  s.string("server.shadow_dir").doc("private copies of loaded modules; absent: the loader's default (restart)");
  s.string("server.watch").doc("swap MODULE when DIR/MODULE-*.so or DIR/MODULE.so changes (restart)");
  s.integer("server.audit_events").range(1, 100'000).default_to(std::int64_t{64}).doc(
      "recent audit events shown by /admin/status (restart)");

  s.integer("limits.max_header_bytes").range(256, 1 << 20).default_to(std::int64_t{8192}).doc("larger headers get 431");
  s.integer("limits.max_body_bytes").range(0, 1LL << 32).default_to(std::int64_t{1} << 20).doc(
      "larger bodies get 413");
  s.integer("limits.max_connections").range(1, 1'000'000).doc(
      "more get 503 and close; absent: what the descriptor limit leaves after a reserve");

  constexpr std::int64_t day_ms = 24LL * 3600 * 1000;
  s.integer("timeouts.idle_ms").range(1, day_ms).default_to(std::int64_t{30'000}).doc(
      "keep-alive wait for the next request's first byte");
  s.integer("timeouts.read_ms").range(1, day_ms).default_to(std::int64_t{10'000}).doc(
      "first byte to whole header, and the whole body");
  s.integer("timeouts.write_ms").range(1, day_ms).default_to(std::int64_t{10'000});
  s.integer("timeouts.shutdown_ms").range(1, day_ms).default_to(std::int64_t{30'000}).doc(
      "in-flight requests get this long after SIGTERM");
  s.integer("timeouts.canary_tick_ms").range(1, day_ms).default_to(std::int64_t{20}).doc(
      "how often a running canary's verdict is taken");
  s.integer("timeouts.upgrade_drain_ms").range(1, day_ms).default_to(std::int64_t{10'000}).doc(
      "upgrade: a connection busy this long is answered with Connection: close instead of handed over");
  s.integer("timeouts.upgrade_timeout_ms").range(1, day_ms).default_to(std::int64_t{60'000}).doc(
      "upgrade: the new process's time from its start to accepting");

  call_policy_rule(s.string("version.policy").default_to("per-call").doc(
      "per-call: every request the newest version; pinned: a connection keeps the version it first used"));

  schema route;
  route.string("prefix").required().pattern("/.*").doc("a path prefix; the longest match wins");
  route.string("module").required().pattern("[A-Za-z0-9_.-]+").doc("the module serving it");
  route.string("file").doc("loads the module from plugin_dir if no route loaded it yet");
  call_policy_rule(route.string("policy").doc("this route's own policy; absent: version.policy"));
  s.table_list("routes", route);

  s.boolean("admin.enabled").default_to(true).doc("the TCP admin listener (restart)");
  s.string("admin.address").default_to("127.0.0.1").doc("(restart)");
  s.integer("admin.port").range(0, 65535).default_to(std::int64_t{8081}).doc("0: any free port (restart)");
  s.string("admin.token_file").doc("bearer token, readable by this user only; required with admin.enabled (restart)");
  s.string("admin.principal").default_to("admin").doc("the token holder's name in the audit log");
  s.string("admin.socket").doc("Unix-socket admin listener, authorised by peer uid (restart)");
  s.integer_list("admin.uids").range(0, 4'294'967'294LL).doc("uids allowed on admin.socket");

  s.validator([](const snapshot& c) -> std::optional<veto> {
    const std::size_t n = c.count("routes");
    if (n == 0) return veto{"", "at least one [[routes]] entry is required"};
    std::set<std::string> prefixes;
    for (std::size_t i = 0; i < n; ++i) {
      const std::string key = "routes[" + std::to_string(i) + "].prefix";
      if (!prefixes.insert(c.string(key)).second) return veto{key, "the prefix " + c.string(key) + " is routed twice"};
    }
    return std::nullopt;
  });
  return s;
}

}  // namespace hotswap::config
