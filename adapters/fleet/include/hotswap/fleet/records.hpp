// What the fleet keeps in etcd, one service per prefix:
//
//   /hotswap/fleet/<service>/desired            the fleet's version (desired_state)
//   /hotswap/fleet/<service>/desired/<host>     a host's version during a rollout
//   /hotswap/fleet/<service>/hosts/<host>       what the host serves (host_report), under its lease
//   /hotswap/fleet/<service>/rollout            the rollout's position (rollout_record)
//   /hotswap/fleet/<service>/controller         which controller drives it, under its lease
//
// An agent follows its own desired key if there is one, else the fleet's, else
// keeps what its host started with. A rollout writes host keys wave by wave;
// finishing moves the fleet key and deletes the host keys, rolling back only
// deletes them: both in one txn. Values are JSON; a value that does not parse
// is reported with its key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hotswap::fleet {

struct fleet_keys {
  std::string service;
  std::string root() const { return "/hotswap/fleet/" + service + "/"; }
  std::string desired() const { return root() + "desired"; }
  std::string desired_host(const std::string& host) const { return desired() + "/" + host; }
  std::string desired_hosts() const { return desired() + "/"; }
  std::string hosts() const { return root() + "hosts/"; }
  std::string host(const std::string& name) const { return hosts() + name; }
  std::string rollout() const { return root() + "rollout"; }
  std::string controller() const { return root() + "controller"; }
};

/// Throws std::invalid_argument unless `name` is 1..64 of [A-Za-z0-9._-] (it becomes part of a key).
void check_name(const std::string& what, const std::string& name);

/// What a host should serve: `module` from the artifact `sha256` (named
/// `file` for people), installed by `strategy`: "swap" (at once) or "canary"
/// (hotswap-httpd's canary decides, then promotes or rolls back).
struct desired_state {
  std::string module, file, sha256, strategy = "swap", rollout;
  bool operator==(const desired_state&) const = default;
};

/// What an agent reports about its host.
struct host_report {
  std::string host, address;        ///< address: where the host serves (for clients)
  std::string module;               ///< the module the fleet manages
  std::uint64_t serving_version = 0;
  std::string sha256, build;        ///< of the serving version
  std::string state;                ///< idle | converged | swapping | canary | failed
  std::string desired_sha256;       ///< what it was asked to serve (empty: its start version)
  std::string error;                ///< why `failed`
  std::uint64_t requests = 0, errors = 0;  ///< answers of the serving version, and its 5xx
  std::int64_t updated_ms = 0;      ///< wall clock, for people
  bool operator==(const host_report&) const = default;
};

/// A rollout's plan and position.
struct rollout_record {
  std::string id;
  desired_state target;
  std::optional<desired_state> previous;  ///< the fleet key before (none: every host's start version)
  std::vector<std::string> waves;         ///< as given: "1", "25%", "100%"
  std::vector<std::vector<std::string>> plan;  ///< hosts per wave, cumulative
  int wave = 0;                           ///< the wave being written or judged
  int written = -1;                       ///< the last wave whose host keys are written
  std::string state;                      ///< running | done | rolled_back | aborted
  std::string reason;                     ///< why it stopped
  std::int64_t started_ms = 0, wave_started_ms = 0, finished_ms = 0;
  double max_error_rate = 0.01, window_s = 2, wave_timeout_s = 60;
  std::uint64_t min_requests = 0;
};

std::string encode(const desired_state& d);
std::string encode(const host_report& r);
std::string encode(const rollout_record& r);
/// Each throws std::runtime_error naming `key` and the cause.
desired_state decode_desired(const std::string& value, const std::string& key);
host_report decode_report(const std::string& value, const std::string& key);
rollout_record decode_rollout(const std::string& value, const std::string& key);

/// Wall-clock milliseconds since the epoch (for records people read).
std::int64_t wall_ms();

}  // namespace hotswap::fleet
