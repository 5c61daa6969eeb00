// The fleet agent: a sidecar beside one hotswap-httpd. It holds the host's
// registration under an etcd lease, follows the desired state of its
// service (its own key during a rollout, else the fleet's, else the version
// the host started with), fetches the artifact from the content-addressed
// store, checks its SHA-256 (hotswap-httpd's loader then checks the seal),
// installs it through the host's admin API on the Unix socket (a swap, or a
// canary whose verdict the host decides), and reports what the host serves
// and its error count under its host key.
//
// Why a sidecar: hotswap-httpd stays free of etcd (no new dependency, no new
// thread in the server, nothing the request path can wait on), the agent
// uses only the admin API an operator already has (the same checks, the same
// audit log), and an agent that crashes or loses etcd leaves the host
// serving exactly what it served. The cost is one more process per host.
//
// The loop is level-triggered: every tick compares desired with observed and
// acts on the difference; the watch only makes a tick come sooner. So a
// missed event, a restarted agent or a healed partition all converge the
// same way. Without etcd the agent changes nothing on its host.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <hotswap/fleet/etcd_client.hpp>
#include <string>
#include <vector>

namespace hotswap::fleet {

struct agent_config {
  std::vector<etcd_endpoint> etcd;
  std::string service, host, module;
  std::string address;                   ///< where clients reach the host (reported only)
  std::filesystem::path admin_socket;    ///< hotswap-httpd's admin.socket setting
  std::filesystem::path plugin_dir;      ///< hotswap-httpd's server.plugin_dir (artifacts are copied here)
  std::filesystem::path store;           ///< the directory_store's root
  std::int64_t lease_ttl_s = 2;          ///< how soon a dead agent's host leaves the fleet
  std::chrono::milliseconds tick{200};   ///< reconcile period without watch events
  std::chrono::milliseconds etcd_timeout{1000};
};

/// Runs the agent until `stop` becomes true; then revokes its lease (the host
/// leaves the fleet at once) and returns. Log lines go to stderr.
void run_agent(const agent_config& config, const std::atomic<bool>& stop);

}  // namespace hotswap::fleet
