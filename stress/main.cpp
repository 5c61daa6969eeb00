// hotswap-stress: swap-under-load verification rig (callers x swappers).
//
//   hotswap-stress [--readers R] [--swappers W] [--seconds S] [--swap-interval US[,US...]]
//                  [--policy per-call|pinned|both] [--backend NAME[,NAME...]|all]
//                  [--scenario NAME|all] [--mode latency|throughput] [--json PATH] [--quick]
//
// Runs every (scenario, policy, backend, swap interval) combination asked for,
// one after the other in one process, then prints a table, one SUMMARY line
// per run and "N passed, M failed". Exit status 1 if any invariant was
// violated, 2 on a usage error. See stress/README.md.
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "host_scenario.hpp"
#include "registry.hpp"
#include "report.hpp"
#include "rig.hpp"

namespace hs = hotswap::stress;

namespace {

constexpr const char* usage_text = R"(usage: hotswap-stress [options]

Callers x swappers: R caller threads call through a slot in a tight loop while
W swapper threads publish new versions; every call is timed and checked.

  --readers R              caller threads (default 1)
  --swappers W             swapper threads (default 1; 0 = no swaps)
                           The defaults suit a 2-core machine: one caller, one
                           swapper and the backend's reclaimer thread already
                           need more CPUs than there are whenever all are busy.
  --seconds S              measured seconds per run (default 3; --quick: 1)
  --warmup S               unmeasured seconds before each run (default 0.3; --quick: 0.1)
  --swap-interval LIST     microseconds between publishes, per swapper; 0 = flat
                           out; off = no swaps. A comma list sweeps (default 100)
  --policy LIST            per-call | pinned | both (default per-call). pinned:
                           a caller pins a version for a session of K calls
  --session K              calls per pinned session (default 100)
  --backend LIST|all       backends to run, side by side (default all; --list)
  --scenario LIST|all      scenarios (default memory; --list). memory and plugin
                           run on every backend; end-to-end scenarios (http, db,
                           config) run their real host on the shipped kernel
  --scenario-arg K=V       a setting for the scenario (repeatable)
  --mode latency|throughput
                           latency: time every call (default); throughput: time
                           batches of --batch calls, for aggregate calls/s
  --batch N                calls per timed batch in throughput mode (default 1024)
  --after-swap-window US   how long after a publish a call counts as "after a
                           swap" (default min(100, interval/2); 100 flat out)
  --max-draining N         cap on replaced, not yet reclaimed versions
                           (slot_options::max_draining; default 16)
  --affinity split|none    split: caller i runs on CPU i, everything else (main,
                           swappers, the backend's reclaimer) on the other CPUs,
                           so writers cannot preempt callers (default none)
  --membarrier-after US    epoch-membarrier: domain_options::membarrier_after
                           (default: the kernel's, 20 us)
  --repeat N               run every configuration N times, interleaved (all
                           configurations once, then again...); violations are
                           summed over all repetitions (default 1)
  --pick median|least-disturbed
                           with --repeat: report each number's median, or every
                           number from the repetition whose callers got the
                           most CPU (least outside load; default median)
  --json PATH              write everything, histograms included, as JSON
  --meta K=V               add a key/value to the JSON's "meta" (repeatable)
  --quick                  short runs (smoke tests)
  --no-progress            no live display even on a terminal
  --list                   list backends and scenarios
  -h, --help               this text
)";

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "hotswap-stress: %s\n(see --help)\n", msg.c_str());
  std::exit(2);
}

std::vector<std::string> split(std::string_view s) {
  std::vector<std::string> out;
  while (true) {
    const auto comma = s.find(',');
    out.emplace_back(s.substr(0, comma));
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return out;
}

template <class T>
T parse_number(std::string_view opt, std::string_view s) {
  T v{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size()) usage_error(std::string(opt) + ": not a number: " + std::string(s));
  return v;
}

double parse_seconds(std::string_view opt, const std::string& s) {
  try {
    std::size_t used = 0;
    const double v = std::stod(s, &used);
    if (used != s.size() || v < 0) throw std::invalid_argument(s);
    return v;
  } catch (const std::exception&) {
    usage_error(std::string(opt) + ": not a duration in seconds: " + s);
  }
}

std::pair<std::string, std::string> parse_kv(std::string_view opt, const std::string& s) {
  const auto eq = s.find('=');
  if (eq == std::string::npos || eq == 0) usage_error(std::string(opt) + ": expected KEY=VALUE, got " + s);
  return {s.substr(0, eq), s.substr(eq + 1)};
}

std::string quote_command(int argc, char** argv) {
  std::string cmd;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (i == 0) {
      const auto slash = a.rfind('/');
      if (slash != std::string::npos) a = a.substr(slash + 1);
    }
    const bool plain = !a.empty() && a.find_first_of(" \t'\"$\\") == std::string::npos;
    if (i != 0) cmd += ' ';
    if (plain) {
      cmd += a;
    } else {
      cmd += '\'';
      cmd += a;
      cmd += '\'';
    }
  }
  return cmd;
}

bool built_with_tsan() { return hs::sanitizer_name() == "thread"; }

}  // namespace

int main(int argc, char** argv) {
  hs::run_config base;
  std::vector<std::string> backends = {"all"}, scenarios = {"memory"};
  std::vector<std::optional<std::uint64_t>> intervals = {100};
  std::vector<hs::call_policy> policies = {hs::call_policy::per_call};
  std::optional<double> seconds, warmup;
  std::optional<std::uint64_t> window_us;
  std::string json_path;
  hs::report_context ctx;
  ctx.command = quote_command(argc, argv);
  bool split_affinity = false;
  unsigned repeat = 1;
  hs::pick_rule pick = hs::pick_rule::median;
  bool quick = false, progress = ::isatty(STDOUT_FILENO) != 0, list = false;
  base.batch = 1024;

  for (int i = 1; i < argc; ++i) {
    const std::string_view opt = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(std::string(opt) + " needs a value");
      return argv[++i];
    };
    if (opt == "-h" || opt == "--help") {
      std::fputs(usage_text, stdout);
      return 0;
    } else if (opt == "--readers") {
      base.readers = parse_number<unsigned>(opt, value());
      if (base.readers == 0) usage_error("--readers must be at least 1");
    } else if (opt == "--swappers") {
      base.swappers = parse_number<unsigned>(opt, value());
    } else if (opt == "--seconds") {
      seconds = parse_seconds(opt, value());
    } else if (opt == "--warmup") {
      warmup = parse_seconds(opt, value());
    } else if (opt == "--swap-interval") {
      intervals.clear();
      for (const auto& s : split(value())) {
        if (s == "off" || s == "none") intervals.emplace_back(std::nullopt);
        else intervals.emplace_back(parse_number<std::uint64_t>(opt, s));
      }
    } else if (opt == "--policy") {
      policies.clear();
      for (const auto& s : split(value())) {
        if (s == "per-call") policies.push_back(hs::call_policy::per_call);
        else if (s == "pinned") policies.push_back(hs::call_policy::pinned);
        else if (s == "both") policies = {hs::call_policy::per_call, hs::call_policy::pinned};
        else usage_error("--policy: per-call, pinned or both, not " + s);
      }
    } else if (opt == "--session") {
      base.session = parse_number<unsigned>(opt, value());
      if (base.session == 0) usage_error("--session must be at least 1");
    } else if (opt == "--backend") {
      backends = split(value());
    } else if (opt == "--scenario") {
      scenarios = split(value());
    } else if (opt == "--scenario-arg") {
      base.scenario_cfg.args.push_back(parse_kv(opt, value()));
    } else if (opt == "--mode") {
      const std::string m = value();
      if (m == "latency") base.mode = hs::run_mode::latency;
      else if (m == "throughput") base.mode = hs::run_mode::throughput;
      else usage_error("--mode: latency or throughput, not " + m);
    } else if (opt == "--batch") {
      base.batch = parse_number<unsigned>(opt, value());
      if (base.batch == 0) usage_error("--batch must be at least 1");
    } else if (opt == "--after-swap-window") {
      window_us = parse_number<std::uint64_t>(opt, value());
    } else if (opt == "--max-draining") {
      base.backend_cfg.max_draining = parse_number<std::size_t>(opt, value());
      if (base.backend_cfg.max_draining == 0) usage_error("--max-draining must be at least 1");
    } else if (opt == "--affinity") {
      const std::string a = value();
      if (a == "split") split_affinity = true;
      else if (a == "none") split_affinity = false;
      else usage_error("--affinity: split or none, not " + a);
    } else if (opt == "--membarrier-after") {
      base.backend_cfg.membarrier_after_ns = static_cast<std::int64_t>(parse_number<std::uint64_t>(opt, value()) * 1000);
    } else if (opt == "--repeat") {
      repeat = parse_number<unsigned>(opt, value());
      if (repeat == 0) usage_error("--repeat must be at least 1");
    } else if (opt == "--pick") {
      const std::string p = value();
      if (p == "median") pick = hs::pick_rule::median;
      else if (p == "least-disturbed") pick = hs::pick_rule::least_disturbed;
      else usage_error("--pick: median or least-disturbed, not " + p);
    } else if (opt == "--json") {
      json_path = value();
    } else if (opt == "--meta") {
      ctx.meta.push_back(parse_kv(opt, value()));
    } else if (opt == "--quick") {
      quick = true;
    } else if (opt == "--no-progress") {
      progress = false;
    } else if (opt == "--list") {
      list = true;
    } else {
      usage_error("unknown option " + std::string(opt));
    }
  }

  const auto& registry = hs::all_backends();
  std::vector<std::string_view> scenario_names;
  for (const auto& sc : hs::all_scenarios()) scenario_names.push_back(sc.name);
  if (list) {
    std::printf("backends:\n");
    for (const auto& b : registry)
      std::printf("  %-20s %s%s\n", std::string(b.name).c_str(), std::string(b.description).c_str(),
                  b.self_test ? " [not in `all`]" : b.tsan_note.empty() ? "" : " [left out of `all` under TSan]");
    std::printf("scenarios:\n");
    for (const auto& sc : hs::all_scenarios())
      std::printf("  %-20s %s (%zu backends)\n", std::string(sc.name).c_str(), std::string(sc.description).c_str(),
                  sc.runners.size());
    std::printf("end-to-end scenarios (the shipped kernel):\n");
    for (const auto& h : hs::all_host_scenarios()) std::printf("  %-20s %s\n", h.name, h.description);
    return 0;
  }

  // Resolve names. Under ThreadSanitizer `all` leaves out backends whose
  // synchronisation happens inside an uninstrumented library (TSan would
  // report every reclaim as a race); naming one explicitly still runs it.
  std::vector<const hs::backend_info*> chosen;
  std::vector<std::string> notes;
  for (const auto& name : backends) {
    if (name == "all") {
      for (const auto& b : registry) {
        if (b.self_test) continue;
        if (built_with_tsan() && !b.tsan_note.empty()) {
          notes.push_back("note: " + std::string(b.name) + " left out under ThreadSanitizer: " +
                          std::string(b.tsan_note));
          continue;
        }
        if (std::find(chosen.begin(), chosen.end(), &b) == chosen.end()) chosen.push_back(&b);
      }
      continue;
    }
    auto it = std::find_if(registry.begin(), registry.end(), [&](const auto& b) { return b.name == name; });
    if (it == registry.end()) usage_error("unknown backend " + name + " (see --list)");
    if (std::find(chosen.begin(), chosen.end(), &*it) == chosen.end()) chosen.push_back(&*it);
  }
  std::vector<std::string> chosen_scenarios;
  std::vector<const hs::host_scenario_entry*> chosen_hosts;
  auto add_host = [&](const hs::host_scenario_entry& h) {
    if (std::find(chosen_hosts.begin(), chosen_hosts.end(), &h) == chosen_hosts.end()) chosen_hosts.push_back(&h);
  };
  for (const auto& s : scenarios) {
    const auto& hosts = hs::all_host_scenarios();
    auto host = std::find_if(hosts.begin(), hosts.end(), [&](const auto& h) { return s == h.name; });
    if (s == "all") {
      for (auto n : scenario_names) chosen_scenarios.emplace_back(n);
      for (const auto& h : hosts) add_host(h);
    } else if (host != hosts.end()) {
      add_host(*host);
    } else if (std::find(scenario_names.begin(), scenario_names.end(), s) == scenario_names.end()) {
      usage_error("unknown scenario " + s + " (see --list)");
    } else {
      chosen_scenarios.push_back(s);
    }
  }

  base.seconds = seconds.value_or(quick ? 1.0 : 3.0);
  base.warmup = warmup.value_or(quick ? 0.1 : 0.3);
  base.progress = progress;

  hs::cycle_clock::calibrate(std::chrono::milliseconds(quick ? 50 : 200));
  hs::print_header(stdout, ctx);
  if (split_affinity) {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    ::sched_getaffinity(0, sizeof allowed, &allowed);
    std::vector<int> cpus;
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
    if (cpus.size() <= base.readers) {
      std::printf("note: --affinity split needs more CPUs (%zu) than callers (%u); not applied\n", cpus.size(),
                  base.readers);
    } else {
      base.caller_cpus.assign(cpus.begin(), cpus.begin() + base.readers);
      cpu_set_t rest;
      CPU_ZERO(&rest);
      for (std::size_t k = base.readers; k < cpus.size(); ++k) CPU_SET(cpus[k], &rest);
      ::sched_setaffinity(0, sizeof rest, &rest);  // inherited by every thread started from here on
      std::printf("  affinity: callers on CPU");
      for (int c : base.caller_cpus) std::printf(" %d", c);
      std::printf("; swappers, reclaimers and main on CPU");
      for (std::size_t k = base.readers; k < cpus.size(); ++k) std::printf(" %d", cpus[k]);
      std::printf("\n");
    }
  }
  for (const auto& n : notes) std::printf("%s\n", n.c_str());
  std::fflush(stdout);

  // A configuration for every (scenario, policy, backend, interval) whose
  // scenario runs on that backend.
  struct planned {
    hs::run_config cfg;
    hs::run_result (*run)(const hs::run_config&);
  };
  std::vector<planned> configs;
  for (const auto& scenario : chosen_scenarios) {
    const auto& entry = *std::find_if(hs::all_scenarios().begin(), hs::all_scenarios().end(),
                                      [&](const auto& sc) { return sc.name == scenario; });
    for (const auto policy : policies)
      for (const auto* b : chosen) {
        auto runner = std::find_if(entry.runners.begin(), entry.runners.end(),
                                   [&](const auto& r) { return r.backend.name == b->name; });
        if (runner == entry.runners.end()) continue;
        for (const auto& interval : intervals) {
          hs::run_config cfg = base;
          cfg.scenario = scenario;
          cfg.backend = std::string(b->name);
          cfg.policy = policy;
          cfg.swap_interval_us = interval;
          if (window_us) cfg.after_swap_window_ns = *window_us * 1000;
          else if (interval && *interval != 0) cfg.after_swap_window_ns = std::min<std::uint64_t>(100, *interval / 2) * 1000;
          else cfg.after_swap_window_ns = 100'000;
          configs.push_back({cfg, runner->run});
        }
      }
  }
  // Repetitions interleave (every configuration once, then again), so a burst
  // of outside load on a shared machine hits one repetition of several
  // configurations rather than every repetition of one.
  std::vector<hs::measured> runs(configs.size());
  for (unsigned rep = 0; rep < repeat; ++rep)
    for (std::size_t k = 0; k < configs.size(); ++k) runs[k].repetitions.push_back(configs[k].run(configs[k].cfg));
  for (auto& m : runs) m.metrics = hs::summarize(m.repetitions, pick);

  // End-to-end scenarios, after the kernel's: each owns its whole experiment.
  std::vector<hs::host_outcome> outcomes;
  const hs::host_config host_cfg{base.seconds, quick, progress, base.scenario_cfg};
  for (const auto* h : chosen_hosts) {
    std::printf("running end-to-end scenario %s ...\n", h->name);
    std::fflush(stdout);
    hs::host_outcome o{h->name, {}};
    try {
      o.cases = h->run(host_cfg);
    } catch (const std::exception& e) {
      o.cases.push_back({"setup", {}, {std::string("the scenario threw: ") + e.what()}, {}});
    }
    outcomes.push_back(std::move(o));
  }

  if (!runs.empty()) hs::print_table(stdout, runs);
  std::printf("\n");
  hs::print_summary_lines(stdout, runs);
  hs::print_host_outcomes(stdout, outcomes);
  if (!json_path.empty() && !hs::write_json(json_path, ctx, runs, outcomes)) {
    std::fprintf(stderr, "hotswap-stress: cannot write %s\n", json_path.c_str());
    return 2;
  }
  // One count, stated once: every row of the table (a scenario, policy,
  // backend and swap interval) and every end-to-end case is one verification.
  std::size_t passed = 0, failed = 0, skipped = 0;
  for (const auto& x : runs) {
    if (x.metrics.skipped) ++skipped;
    else if (x.metrics.passed()) ++passed;
    else ++failed;
  }
  for (const auto& o : outcomes)
    for (const auto& c : o.cases) {
      if (!c.skip_reason.empty()) ++skipped;
      else if (c.passed()) ++passed;
      else ++failed;
    }
  std::printf("%zu passed, %zu failed, %zu skipped\n", passed, failed, skipped);
  return failed == 0 ? 0 : 1;
}
