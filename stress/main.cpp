// hotswap-stress: swap-under-load verification rig (callers x swappers).
//
//   hotswap-stress [--readers R] [--swappers W] [--seconds S] [--swap-interval US[,US...]]
//                  [--policy per-call|pinned|both] [--backend NAME[,NAME...]|all]
//                  [--scenario NAME|all] [--mode latency|throughput] [--json PATH] [--quick]
//
// Runs every (scenario, policy, backend, swap interval) combination asked for,
// one after the other in one process, then prints a table, one SUMMARY line
// per run and "N passed, M failed". The command line is CLI11's (--help is
// generated from the options below); the exit status is one of exit_code.
// See stress/README.md.
#include <sched.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "host_scenario.hpp"
#include "registry.hpp"
#include "report.hpp"
#include "rig.hpp"

namespace hs = hotswap::stress;

namespace {

/// The exit status, as stress/README.md documents it.
enum exit_code : int {
  all_passed = 0,           ///< every verification passed (or --help, --list)
  verification_failed = 1,  ///< an invariant was violated in some run
  usage_error = 2,          ///< the command line was refused (CLI11's message on stderr)
  cannot_write_json = 3,    ///< the runs finished but --json PATH could not be written
};

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
std::optional<T> to_number(std::string_view s) {
  T v{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

/// One element of --swap-interval: microseconds, or off/none (no swaps).
std::optional<std::optional<std::uint64_t>> to_interval(std::string_view s) {
  if (s == "off" || s == "none") return std::optional<std::uint64_t>{};
  if (auto us = to_number<std::uint64_t>(s)) return std::optional<std::uint64_t>{*us};
  return std::nullopt;
}

// Validators: CLI11 reports what they return as "--option: <message>".
CLI::Validator whole_number(std::uint64_t min) {
  return CLI::Validator(
      [min](std::string& s) -> std::string {
        const auto v = to_number<std::uint64_t>(s);
        if (!v || *v < min) return "expected a whole number >= " + std::to_string(min) + ", not '" + s + "'";
        return {};
      },
      min == 0 ? "N" : "N>=" + std::to_string(min));
}

const CLI::Validator duration_seconds(
    [](std::string& s) -> std::string {
      double v = -1;
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (ec != std::errc{} || end != s.data() + s.size() || !(v >= 0)) return "not a duration in seconds: '" + s + "'";
      return {};
    },
    "S");

/// A comma list whose every element `accepts`; `what` says what an element must be.
CLI::Validator list_of(std::function<bool(std::string_view)> accepts, std::string what) {
  return CLI::Validator(
      [accepts, what](std::string& s) -> std::string {
        for (const auto& e : split(s))
          if (!accepts(e)) return "'" + e + "' is not " + what;
        return {};
      },
      "LIST");
}

const CLI::Validator key_value(
    [](std::string& s) -> std::string {
      const auto eq = s.find('=');
      if (eq == std::string::npos || eq == 0) return "expected KEY=VALUE, not '" + s + "'";
      return {};
    },
    "K=V");

std::pair<std::string, std::string> split_kv(const std::string& s) {
  const auto eq = s.find('=');
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

/// The command line as given, before names are resolved against the registry.
struct options {
  std::string backends = "all", scenarios = "memory", intervals = "100", policies = "per-call";
  std::string mode = "latency", affinity = "none", pick = "median";
  double seconds = 0, warmup = 0;
  std::uint64_t window_us = 0, membarrier_after_us = 0;
  unsigned repeat = 1;
  std::vector<std::string> scenario_args, meta;
  std::string json_path;
  bool quick = false, no_progress = false, list = false;
};

constexpr const char* exit_codes_text = R"(Exit status: 0 every verification passed (also --help, --list); 1 an invariant was
violated; 2 the command line was refused; 3 --json PATH could not be written.
See stress/README.md.)";

/// Declares every option of hotswap-stress on `app`, bound to `o` and `base`.
/// Each keeps the name and meaning it had before CLI11; a repeated option
/// takes its last value, except --scenario-arg and --meta, which add up.
void declare(CLI::App& app, options& o, hs::run_config& base) {
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.footer(exit_codes_text);
  std::vector<std::string> backend_names = {"all"}, scenario_names = {"all"};
  for (const auto& b : hs::all_backends()) backend_names.emplace_back(b.name);
  for (const auto& sc : hs::all_scenarios()) scenario_names.emplace_back(sc.name);
  for (const auto& h : hs::all_host_scenarios()) scenario_names.emplace_back(h.name);
  auto one_of = [](std::vector<std::string> names, std::string_view see = "") {
    std::string shown = "one of";
    for (const auto& n : names) shown += (n == names.front() ? " " : ", ") + n;
    return list_of([names](std::string_view e) { return std::find(names.begin(), names.end(), e) != names.end(); },
                   shown.append(see));
  };

  app.add_option("--readers", base.readers, "caller threads (default 1)")->check(whole_number(1));
  app.add_option("--swappers", base.swappers,
                 "swapper threads (default 1; 0 = no swaps). The defaults suit a 2-core machine: one caller, one "
                 "swapper and the backend's reclaimer thread already need more CPUs than there are whenever all "
                 "are busy")
      ->check(whole_number(0));
  app.add_option("--seconds", o.seconds, "measured seconds per run (default 3; --quick: 1)")->check(duration_seconds);
  app.add_option("--warmup", o.warmup, "unmeasured seconds before each run (default 0.3; --quick: 0.1)")
      ->check(duration_seconds);
  app.add_option("--swap-interval", o.intervals,
                 "microseconds between publishes, per swapper; 0 = flat out; off = no swaps. A comma list sweeps "
                 "(default 100)")
      ->check(list_of([](std::string_view e) { return to_interval(e).has_value(); },
                      "a number of microseconds, off or none"));
  app.add_option("--policy", o.policies,
                 "per-call | pinned | both (default per-call). pinned: a caller pins a version for a session of "
                 "K calls")
      ->check(one_of({"per-call", "pinned", "both"}));
  app.add_option("--session", base.session, "calls per pinned session (default 100)")->check(whole_number(1));
  app.add_option("--backend", o.backends, "backends to run, side by side, a comma list or all (default all)")
      ->check(one_of(backend_names, " (see --list)"));
  app.add_option("--scenario", o.scenarios,
                 "scenarios, a comma list or all (default memory). memory and plugin run on every backend; "
                 "end-to-end scenarios (http, db, config) run their real host on the shipped kernel")
      ->check(one_of(scenario_names, " (see --list)"));
  // KEY=VALUE, one per occurrence; every occurrence adds one.
  const auto repeatable_key_value = [](CLI::Option* opt) {
    opt->check(key_value)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)->allow_extra_args(false);
  };
  repeatable_key_value(app.add_option("--scenario-arg", o.scenario_args, "a setting for the scenario (repeatable)"));
  app.add_option("--mode", o.mode,
                 "latency: time every call (default); throughput: time batches of --batch calls, for aggregate "
                 "calls/s")
      ->check(CLI::IsMember({"latency", "throughput"}));
  app.add_option("--batch", base.batch, "calls per timed batch in throughput mode (default 1024)")
      ->check(whole_number(1));
  app.add_option("--after-swap-window", o.window_us,
                 "how long (us) after a publish a call counts as \"after a swap\" (default min(100, interval/2); "
                 "100 flat out)")
      ->check(whole_number(0));
  app.add_option("--max-draining", base.backend_cfg.max_draining,
                 "cap on replaced, not yet reclaimed versions (slot_options::max_draining; default 16)")
      ->check(whole_number(1));
  app.add_option("--affinity", o.affinity,
                 "split: caller i runs on CPU i, everything else (main, swappers, the backend's reclaimer) on the "
                 "other CPUs, so writers cannot preempt callers (default none)")
      ->check(CLI::IsMember({"split", "none"}));
  app.add_option("--membarrier-after", o.membarrier_after_us,
                 "epoch-membarrier: domain_options::membarrier_after in us (default: the kernel's, 20 us)")
      ->check(whole_number(0));
  app.add_option("--repeat", o.repeat,
                 "run every configuration N times, interleaved (all configurations once, then again...); "
                 "violations are summed over all repetitions (default 1)")
      ->check(whole_number(1));
  app.add_option("--pick", o.pick,
                 "with --repeat: report each number's median, or every number from the repetition whose callers "
                 "got the most CPU (least outside load; default median)")
      ->check(CLI::IsMember({"median", "least-disturbed"}));
  app.add_option("--json", o.json_path, "write everything, histograms included, as JSON");
  repeatable_key_value(app.add_option("--meta", o.meta, "add a key/value to the JSON's \"meta\" (repeatable)"));
  app.add_flag("--quick", o.quick, "short runs (smoke tests)");
  app.add_flag("--no-progress", o.no_progress, "no live display even on a terminal");
  app.add_flag("--list", o.list, "list backends and scenarios");
}

}  // namespace

int main(int argc, char** argv) {
  hs::run_config base;
  base.batch = 1024;
  options o;
  CLI::App app{
      "Callers x swappers: R caller threads call through a slot in a tight loop while W swapper threads publish "
      "new versions; every call is timed and checked.",
      "hotswap-stress"};
  declare(app, o, base);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);  // prints --help, or the error and a pointer to --help
    return status == 0 ? all_passed : usage_error;
  }

  hs::report_context ctx;
  ctx.command = quote_command(argc, argv);
  for (const auto& kv : o.meta) ctx.meta.push_back(split_kv(kv));
  for (const auto& kv : o.scenario_args) base.scenario_cfg.args.push_back(split_kv(kv));
  const std::vector<std::string> backends = split(o.backends), scenarios = split(o.scenarios);
  std::vector<std::optional<std::uint64_t>> intervals;
  for (const auto& s : split(o.intervals)) intervals.push_back(*to_interval(s));
  std::vector<hs::call_policy> policies;
  for (const auto& s : split(o.policies)) {
    if (s == "both") policies = {hs::call_policy::per_call, hs::call_policy::pinned};
    else policies.push_back(s == "pinned" ? hs::call_policy::pinned : hs::call_policy::per_call);
  }
  base.mode = o.mode == "throughput" ? hs::run_mode::throughput : hs::run_mode::latency;
  const bool split_affinity = o.affinity == "split";
  const hs::pick_rule pick = o.pick == "least-disturbed" ? hs::pick_rule::least_disturbed : hs::pick_rule::median;
  if (app.count("--membarrier-after"))
    base.backend_cfg.membarrier_after_ns = static_cast<std::int64_t>(o.membarrier_after_us * 1000);
  const bool window_given = app.count("--after-swap-window") > 0;
  const bool quick = o.quick, list = o.list;
  const bool progress = !o.no_progress && ::isatty(STDOUT_FILENO) != 0;
  const unsigned repeat = o.repeat;
  const std::string& json_path = o.json_path;

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
    return all_passed;
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
    if (std::find(chosen.begin(), chosen.end(), &*it) == chosen.end()) chosen.push_back(&*it);  // --backend checked it
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
    } else {
      chosen_scenarios.push_back(s);  // a kernel scenario: --scenario checked the name
    }
  }

  base.seconds = app.count("--seconds") ? o.seconds : quick ? 1.0 : 3.0;
  base.warmup = app.count("--warmup") ? o.warmup : quick ? 0.1 : 0.3;
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
          if (window_given) cfg.after_swap_window_ns = o.window_us * 1000;
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
      o.cases.push_back({"setup", {}, {std::string("the scenario threw: ") + e.what()}, {}, {}});
    }
    outcomes.push_back(std::move(o));
  }

  if (!runs.empty()) hs::print_table(stdout, runs);
  std::printf("\n");
  hs::print_summary_lines(stdout, runs);
  hs::print_host_outcomes(stdout, outcomes);
  if (!json_path.empty() && !hs::write_json(json_path, ctx, runs, outcomes)) {
    std::fprintf(stderr, "hotswap-stress: cannot write %s\n", json_path.c_str());
    return cannot_write_json;
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
  return failed == 0 ? all_passed : verification_failed;
}
