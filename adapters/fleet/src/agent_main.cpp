// hotswap-fleet-agent: the sidecar beside one hotswap-httpd (see agent.hpp).
#include <csignal>
#include <CLI/CLI.hpp>
#include <cstdio>
#include <hotswap/fleet/agent.hpp>

namespace {
std::atomic<bool> stop{false};
extern "C" void on_signal(int) { stop.store(true, std::memory_order_relaxed); }  // lock-free; a flag, no partner
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hotswap-fleet-agent: keeps one hotswap-httpd on its service's desired version (etcd)"};
  hotswap::fleet::agent_config c;
  std::string etcd = "127.0.0.1:2379";
  std::string store;
  int tick_ms = 200;
  app.add_option("--etcd", etcd, "etcd members, HOST:PORT[,HOST:PORT...]")->capture_default_str();
  app.add_option("--service", c.service, "the service this host belongs to")->required();
  app.add_option("--host", c.host, "this host's name in the fleet")->required();
  app.add_option("--module", c.module, "the module the fleet manages")->required();
  app.add_option("--address", c.address, "where clients reach the host (reported)");
  app.add_option("--admin-socket", c.admin_socket, "the host's admin socket: admin.socket in hotswap-httpd's settings")
      ->required();
  app.add_option("--plugin-dir", c.plugin_dir, "the host's plugin directory: server.plugin_dir in hotswap-httpd's settings")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--store", store, "the artifact store's directory")->required();
  app.add_option("--lease-ttl", c.lease_ttl_s, "seconds before a silent agent's host leaves the fleet")
      ->capture_default_str()->check(CLI::Range(1, 3600));
  app.add_option("--tick-ms", tick_ms, "reconcile period without watch events")->capture_default_str()->check(CLI::Range(10, 60000));
  CLI11_PARSE(app, argc, argv);
  c.store = store;
  c.tick = std::chrono::milliseconds(tick_ms);
  try {
    c.etcd = hotswap::fleet::parse_endpoints(etcd);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGINT, on_signal);
    hotswap::fleet::run_agent(c, stop);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hotswap-fleet-agent: %s\n", e.what());
    return 1;
  }
  return 0;
}
