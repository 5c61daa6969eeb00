// The rollout controller: carries one release of a service's module to its
// hosts in waves. Each step is an etcd txn that compares the rollout key's
// mod_revision with the one the controller read and the controller key's
// with the one it created, so two controllers can never both advance a
// rollout, and a controller that lost its lease writes nothing. Everything
// it knows lives in etcd (rollout_record): a new controller resumes where a
// dead one stopped.
//
// A wave passes when every live host of it (hosts whose lease expired are
// left out) serves the release (swap or canary promoted), its error rate on
// the release stays at or under max_error_rate, it has answered at least
// min_requests on it, and `window` has passed since it was first seen on it.
// It fails when a host reports the install failed (hash, seal, load, canary
// rolled back), when a host's error rate exceeds the bound over at least
// max(min_requests, 10) answers, or when the wave timeout passes: then every
// host key is deleted in one txn and the hosts fall back to the fleet's
// version.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <hotswap/fleet/artifact_store.hpp>
#include <hotswap/fleet/etcd_client.hpp>
#include <hotswap/fleet/records.hpp>
#include <map>
#include <string>
#include <vector>

namespace hotswap::fleet {

struct rollout_options {
  std::vector<std::string> waves{"1", "25%", "100%"};
  std::string strategy = "swap";
  double max_error_rate = 0.01;
  std::uint64_t min_requests = 0;
  double window_s = 2;
  double wave_timeout_s = 60;
};

/// Hosts per wave, cumulative, from `waves` ("1": one host, "25%": a quarter
/// rounded up, "100%": all) over the sorted `hosts`. Throws
/// std::invalid_argument naming a bad wave.
std::vector<std::vector<std::string>> plan_waves(const std::vector<std::string>& waves, std::vector<std::string> hosts);

class controller {
 public:
  controller(std::vector<etcd_endpoint> etcd, std::string service,
             std::chrono::milliseconds etcd_timeout = std::chrono::seconds(1), std::int64_t lease_ttl_s = 2);

  /// Starts a rollout of `file` (put into `store`) and drives it to its end.
  /// Throws std::runtime_error if a rollout of the service is running.
  rollout_record rollout(const std::string& module, const std::filesystem::path& file, artifact_store& store,
                         const rollout_options& options, const std::atomic<bool>& stop);
  /// Takes over a running rollout (or restarts an aborted or rolled-back one at its wave) and drives it.
  rollout_record resume(const std::atomic<bool>& stop);
  /// Stops the rollout and returns its hosts to the fleet's version.
  rollout_record abort(const std::string& reason);

  /// The rollout record (if any) and every host's report.
  struct fleet_status {
    std::optional<rollout_record> rollout;
    std::map<std::string, host_report> hosts;
    std::optional<desired_state> fleet;
  };
  fleet_status status();

  /// Progress lines (stderr by default).
  std::function<void(const std::string&)> log;

 private:
  rollout_record drive(const std::atomic<bool>& stop);
  void acquire(const std::atomic<bool>& stop);
  void release();
  bool keep_lease();
  enum class verdict { pending, pass, fail };
  verdict judge(const rollout_record& r, const std::map<std::string, host_report>& hosts, std::string& why);
  void wait_rolled_back(const rollout_record& r, const std::atomic<bool>& stop);
  std::map<std::string, host_report> reports();

  etcd_client etcd_;
  fleet_keys keys_;
  std::int64_t lease_ttl_s_;
  std::int64_t lease_ = 0;
  std::int64_t owner_revision_ = 0;  // mod_revision of our controller key
  std::chrono::steady_clock::time_point renewed_{};
  std::map<std::string, std::chrono::steady_clock::time_point> first_seen_;  // host -> first seen on the release
};

}  // namespace hotswap::fleet
