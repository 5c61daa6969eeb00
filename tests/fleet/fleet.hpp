// A local fleet for the tests: a 3-member etcd cluster, N hosts (each a
// hotswap-httpd with its admin Unix socket and a hotswap-fleet-agent beside
// it), a shared artifact store, controllers run as hotswap-fleet processes,
// and an exact-counting client spread over every host that also records
// which build each host served when (the timeline results/fleet.md plots).
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "processes.hpp"

namespace hotswap::fleet::testing {

struct host_process {
  std::string name;
  fs::path dir;                      // plugins/, admin.sock, logs
  std::uint16_t port = 0;
  std::unique_ptr<child> httpd, agent;
  std::unique_ptr<relay> link;       // set when the agent reaches etcd through a relay
};

/// Counts of the client, per host and over all.
struct load_counts {
  std::uint64_t ok = 0, non_2xx = 0, socket_errors = 0;
  std::uint64_t non_2xx_from_bad = 0;    ///< answered by the build named bad (its canary budget)
  std::uint64_t errors_on_down_hosts = 0;  ///< on a host the test was killing (expected)
};

class load_client {
 public:
  /// Round-robin GET / over `ports`, keep-alive, until stopped (bounded: `max_seconds`).
  load_client(std::vector<std::uint16_t> ports, std::string bad_build, double max_seconds = 60);
  ~load_client();
  void stop();
  void set_down(std::size_t host, bool down);  ///< skip (and excuse) a host being killed
  void set_port(std::size_t host, std::uint16_t port);
  load_counts counts();
  double ms_since_start() const;
  /// Per host: (ms since start, build) at each change of the build it answered with.
  std::vector<std::vector<std::pair<double, std::string>>> timeline();

 private:
  void run(double max_seconds);
  std::mutex mutex_;  // guards everything below but the thread
  std::vector<std::uint16_t> ports_;
  std::vector<bool> down_;
  std::string bad_;
  load_counts counts_;
  std::vector<std::vector<std::pair<double, std::string>>> timeline_;
  bool stop_ = false;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::thread thread_;
};

class fleet_test : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  void start_host(std::size_t i, bool through_relay = false);  ///< the three steps below
  void start_httpd(std::size_t i);
  void wait_httpd(std::size_t i);
  void start_agent(std::size_t i, bool through_relay);
  void kill_host(std::size_t i);
  /// `hotswap-fleet ARGS...` with --etcd; returns the process.
  std::unique_ptr<child> fleet_command(std::vector<std::string> args, const std::string& log_name);
  std::unique_ptr<child> rollout(const std::string& file, double window_s = 1.0, const std::string& log_name = "rollout");
  /// The build each host reports in etcd (empty for a host without a report).
  std::map<std::string, std::string> reported_builds();
  /// The build a host answers with now (a direct request).
  std::string served_build(std::size_t i);
  /// The rollout key's state and wave (1-based), or ("", 0).
  std::pair<std::string, int> rollout_position();
  void start_load(const std::string& bad_build = "");
  void expect_clean_load(const std::string& bad_build);
  /// With HOTSWAP_FLEET_RESULTS=DIR: DIR/<scenario>.json with the client's counts and
  /// timeline, when the rollout started (ms on the timeline), how long it took, and the
  /// controller's output (its rollback time).
  void write_results(const std::string& scenario, double rollout_at_ms, double seconds, const std::string& controller_log);

  static constexpr std::size_t hosts = 8;
  fs::path dir_, store_;
  std::unique_ptr<etcd_cluster> etcd_;
  std::vector<host_process> hosts_;
  std::unique_ptr<load_client> load_;
};

}  // namespace hotswap::fleet::testing
