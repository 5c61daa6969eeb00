// End-to-end scenarios: a real host (an HTTP server, a database, a
// configuration store) under load while its module or snapshot is swapped.
//
// The `memory` and `plugin` scenarios measure the kernel itself: the rig owns
// the callers and runs them through every backend. An end-to-end scenario
// owns its whole experiment instead (it starts its server on 127.0.0.1, drives
// its own load, swaps on its own schedule) and runs on the kernel as shipped,
// so it is not multiplied by seven backends. It reports one or more cases
// (say, keep-alive and new-connection traffic), each with its metrics in a
// fixed order and the invariant violations it found. hotswap-stress prints a
// SUMMARY line per case, writes them into the JSON, and counts a case with a
// violation as failed, exactly like a kernel configuration.
//
// Adding one: write stress/scenarios/NAME.cpp defining a function with the
// host_scenario_fn signature, declare it and list it in host_scenarios.cpp.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "scenario.hpp"

namespace hotswap::stress {

/// What the command line gives an end-to-end scenario.
struct host_config {
  double seconds = 3.0;       ///< --seconds: measured time per case
  bool quick = false;         ///< --quick: CI-sized (bounded to a few seconds)
  bool progress = false;      ///< a live line on a terminal is allowed
  scenario_config args;       ///< --scenario-arg key=value
};

/// One measured configuration of an end-to-end scenario.
struct host_case {
  std::string name;  ///< e.g. "keepalive", "new-connection"
  /// Printed as `key=value` in the SUMMARY line and as numbers in the JSON, in
  /// this order. Keys are lowercase_with_underscores with units in the name
  /// (requests, p99_us, swaps_per_s).
  std::vector<std::pair<std::string, double>> metrics;
  /// One line per broken invariant (e.g. "3 responses from a retired
  /// version"); empty means the case passed.
  std::vector<std::string> violations;
  /// Non-empty: the case could not run here (a missing tool), and why.
  std::string skip_reason;
  /// Non-empty: the SUMMARY line prints these fields, in this order, in place
  /// of the metrics and the violation count (a scenario whose line format its
  /// issue fixes; the metrics still go to the JSON and the table).
  std::vector<std::pair<std::string, std::string>> summary;

  bool passed() const noexcept { return skip_reason.empty() && violations.empty(); }
};

using host_scenario_fn = std::vector<host_case> (*)(const host_config&);

struct host_scenario_entry {
  const char* name;
  const char* description;
  host_scenario_fn run;
};

/// The q-quantile (0 <= q <= 1) of `samples`, nearest rank over the n - 1
/// gaps (q = 1 is the maximum); 0 when there are none. Reorders `samples`.
template <class T>
double percentile(std::vector<T>& samples, double q) {
  if (samples.empty()) return 0;
  const auto rank = static_cast<std::size_t>(q * static_cast<double>(samples.size() - 1) + 0.5);
  const auto kth = samples.begin() + static_cast<std::ptrdiff_t>(std::min(rank, samples.size() - 1));
  std::nth_element(samples.begin(), kth, samples.end());
  return static_cast<double>(*kth);
}

/// Every end-to-end scenario built into this binary (host_scenarios.cpp).
const std::vector<host_scenario_entry>& all_host_scenarios();

}  // namespace hotswap::stress
