// What the rig prints and writes: a table for people, one SUMMARY line per
// run for scripts, JSON with everything (histograms included).
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "host_scenario.hpp"
#include "rig.hpp"

namespace hotswap::stress {

using json = nlohmann::ordered_json;  ///< keys in the order written

struct report_context {
  std::string command;                                  ///< the command line, quoted
  std::vector<std::pair<std::string, std::string>> meta;  ///< --meta key=value
};

/// Latencies of a histogram in ns; -1 when it holds no sample.
double quantile_ns(const histogram& h, double q);

/// How --repeat N turns N repetitions into the reported numbers.
enum class pick_rule {
  median,           ///< each number is the median over the repetitions
  least_disturbed,  ///< every number from the repetition whose callers got the most CPU
};

/// The numbers reported for one configuration (-1: not measured or not
/// applicable). Whatever the pick rule, violations are summed over all
/// repetitions and the backlog is the peak of all, so one bad repetition fails
/// the configuration.
struct run_metrics {
  run_config config;
  bool skipped = false;
  std::string skip_reason;
  unsigned repeats = 0;
  pick_rule pick = pick_rule::median;
  int picked = -1;  ///< least_disturbed: the repetition reported (0-based)
  double caller_cpu_share = 0, caller_preemptions = 0;
  double seconds = 0, calls = 0, calls_per_s = 0, swaps = 0, swaps_per_s = 0, refused = 0;
  double p50 = -1, p99 = -1, p999 = -1, p9999 = -1, max = -1, steady_p999 = -1, after_swap_p999 = -1;
  double gp_p50 = -1, gp_p99 = -1, reclaim_p99 = -1;
  /// A replaced version's own destruction (plugin: shutdown + dlclose), and
  /// the share of the run the reclaimer spent in grace periods / teardowns:
  /// where swaps are refused, the larger names the bottleneck.
  double teardown_p50 = -1, teardown_p99 = -1, grace_busy_share = -1, teardown_busy_share = -1;
  double peak_backlog = 0, grace_periods = -1, membarriers = -1, membarrier_syscalls = -1;
  std::size_t cap = 0;
  violation_counts violations{};

  std::uint64_t total_violations() const;
  /// "none" when no swap was refused, else "grace_periods" or "teardown"
  /// (the larger busy share), or "reclaim_cadence" when both were under 10%.
  const char* bottleneck() const;
  bool passed() const { return !skipped && total_violations() == 0; }
};

/// One configuration: every repetition of it, and their medians.
struct measured {
  std::vector<run_result> repetitions;
  run_metrics metrics;
};

run_metrics summarize(const std::vector<run_result>& repetitions, pick_rule pick);

/// The cases one end-to-end scenario reported.
struct host_outcome {
  std::string scenario;
  std::vector<host_case> cases;
};

void print_header(std::FILE* out, const report_context& ctx);
void print_table(std::FILE* out, const std::vector<measured>& runs);
void print_summary_lines(std::FILE* out, const std::vector<measured>& runs);
/// End-to-end scenarios: one line per case, its violations, and a SUMMARY line.
void print_host_outcomes(std::FILE* out, const std::vector<host_outcome>& outcomes);
/// Everything a run measured, as the JSON file holds it (schema 2).
json report_json(const report_context& ctx, const std::vector<measured>& runs,
                 const std::vector<host_outcome>& outcomes);
bool write_json(const std::string& path, const report_context& ctx, const std::vector<measured>& runs,
                const std::vector<host_outcome>& outcomes);

/// Machine facts for the header and the JSON.
std::string cpu_model();
std::string compiler_id();
std::string kernel_release();
std::string sanitizer_name();  ///< "thread", "address" or "none"

}  // namespace hotswap::stress
