#include "report.hpp"

#include <sys/utsname.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

namespace hotswap::stress {
namespace {

std::string human_ns(double ns) {
  char buf[32];
  if (ns < 0) return "-";
  if (ns < 1e3) std::snprintf(buf, sizeof buf, "%.0fns", ns);
  else if (ns < 1e6) std::snprintf(buf, sizeof buf, "%.3gus", ns / 1e3);
  else if (ns < 1e9) std::snprintf(buf, sizeof buf, "%.3gms", ns / 1e6);
  else std::snprintf(buf, sizeof buf, "%.3gs", ns / 1e9);
  return buf;
}

std::string human_count(double v) {
  char buf[32];
  if (v < 1e4) std::snprintf(buf, sizeof buf, "%.0f", v);
  else if (v < 1e6) std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else if (v < 1e9) std::snprintf(buf, sizeof buf, "%.1fM", v / 1e6);
  else std::snprintf(buf, sizeof buf, "%.2fG", v / 1e9);
  return buf;
}

double per_s(std::uint64_t n, double s) { return s > 0 ? static_cast<double>(n) / s : 0.0; }

/// The same backend and workload without swaps, if this invocation ran it.
const run_metrics* no_swap_twin(const std::vector<measured>& runs, const run_metrics& r) {
  for (const auto& x : runs) {
    const run_metrics& o = x.metrics;
    if (!o.skipped && !o.config.swapping() && o.config.backend == r.config.backend &&
        o.config.scenario == r.config.scenario && o.config.policy == r.config.policy &&
        o.config.mode == r.config.mode && o.config.readers == r.config.readers)
      return &o;
  }
  return nullptr;
}

std::string result_word(bool skipped, bool passed) { return skipped ? "skip" : passed ? "pass" : "FAIL"; }

double median(std::vector<double> v) {
  std::erase_if(v, [](double x) { return x < 0; });  // -1: not measured in that repetition
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/// A measured number as JSON, to 6 significant digits; null when not finite.
json num(double v) {
  if (!std::isfinite(v)) return nullptr;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return std::strtod(buf, nullptr);
}

json json_histogram(const histogram& h, bool with_buckets = true) {
  const bool any = h.count() != 0;
  json o = {{"count", h.count()},
            {"min_ns", num(any ? cycle_clock::to_ns(h.min()) : -1)},
            {"mean_ns", num(any ? h.mean() * cycle_clock::info().ns_per_tick : -1)}};
  const std::pair<const char*, double> qs[] = {{"p50_ns", 0.5},     {"p90_ns", 0.9},       {"p99_ns", 0.99},
                                               {"p999_ns", 0.999}, {"p9999_ns", 0.9999}, {"max_ns", 1.0}};
  for (const auto& [k, q] : qs) o[k] = num(quantile_ns(h, q));
  if (!with_buckets) return o;
  // Non-empty buckets as [upper bound in ns, count].
  json& b = o["buckets"] = json::array();
  for (std::size_t i = 0; i < buckets::count; ++i)
    if (const std::uint64_t n = h.bucket(i); n != 0) b.push_back({num(cycle_clock::to_ns(buckets::upper(i))), n});
  return o;
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

double quantile_ns(const histogram& h, double q) {
  if (h.count() == 0) return -1;
  return cycle_clock::to_ns(q >= 1.0 ? h.max() : h.quantile(q));
}

const char* run_metrics::bottleneck() const {
  if (refused <= 0) return "none";
  // Neither stage kept the reclaimer busy: the cap fills between its rounds.
  if (std::max(grace_busy_share, teardown_busy_share) < 0.1) return "reclaim_cadence";
  return teardown_busy_share > grace_busy_share ? "teardown" : "grace_periods";
}

std::uint64_t run_metrics::total_violations() const {
  std::uint64_t n = 0;
  for (auto v : violations) n += v;
  return n;
}

namespace {

run_metrics metrics_of(const run_result& r) {
  run_metrics m;
  m.config = r.config;
  m.repeats = 1;
  m.skipped = r.skipped;
  m.skip_reason = r.skip_reason;
  if (r.skipped) return m;
  const histogram all = r.latency();
  m.seconds = r.elapsed_s;
  m.calls = static_cast<double>(r.calls);
  m.calls_per_s = per_s(r.calls, r.elapsed_s);
  m.swaps = static_cast<double>(r.swaps);
  m.swaps_per_s = per_s(r.swaps, r.elapsed_s);
  m.refused = static_cast<double>(r.refused);
  m.p50 = quantile_ns(all, 0.5);
  m.p99 = quantile_ns(all, 0.99);
  m.p999 = quantile_ns(all, 0.999);
  m.p9999 = quantile_ns(all, 0.9999);
  m.max = quantile_ns(all, 1.0);
  m.steady_p999 = quantile_ns(r.steady, 0.999);
  m.after_swap_p999 = quantile_ns(r.after_swap, 0.999);
  m.gp_p50 = quantile_ns(r.grace, 0.5);
  m.gp_p99 = quantile_ns(r.grace, 0.99);
  m.reclaim_p99 = quantile_ns(r.reclaim, 0.99);
  m.teardown_p50 = quantile_ns(r.teardown, 0.5);
  m.teardown_p99 = quantile_ns(r.teardown, 0.99);
  const auto busy_share = [&](const histogram& h) {
    return cycle_clock::to_ns(h.sum()) / (std::max(r.elapsed_s, 1e-9) * 1e9);
  };
  m.grace_busy_share = r.grace.count() == 0 ? -1 : busy_share(r.grace);
  m.teardown_busy_share = r.teardown.count() == 0 ? -1 : busy_share(r.teardown);
  m.peak_backlog = static_cast<double>(r.peak_backlog);
  m.cap = r.cap;
  m.grace_periods = static_cast<double>(r.grace_periods);
  // The mechanism's own count where it keeps one, else the syscall count.
  m.membarriers = static_cast<double>(r.membarriers >= 0 ? r.membarriers : r.membarrier_syscalls);
  m.membarrier_syscalls = static_cast<double>(r.membarrier_syscalls);
  m.caller_cpu_share = r.caller_cpu_share;
  m.caller_preemptions = static_cast<double>(r.caller_preemptions);
  m.violations = r.violations;
  return m;
}

}  // namespace

run_metrics summarize(const std::vector<run_result>& reps, pick_rule pick) {
  run_metrics m;
  if (reps.empty()) return m;
  std::vector<run_metrics> each;
  for (const auto& r : reps) {
    if (r.skipped) {
      m = metrics_of(r);
      m.repeats = static_cast<unsigned>(reps.size());
      return m;
    }
    each.push_back(metrics_of(r));
  }
  if (pick == pick_rule::least_disturbed) {
    std::size_t best = 0;
    for (std::size_t i = 1; i < each.size(); ++i)
      if (each[i].caller_cpu_share > each[best].caller_cpu_share) best = i;
    m = each[best];
    m.picked = static_cast<int>(best);
  } else {
    m = each.front();
    double run_metrics::*fields[] = {
        &run_metrics::seconds,     &run_metrics::calls,         &run_metrics::calls_per_s,
        &run_metrics::swaps,       &run_metrics::swaps_per_s,   &run_metrics::refused,
        &run_metrics::p50,         &run_metrics::p99,           &run_metrics::p999,
        &run_metrics::p9999,       &run_metrics::max,           &run_metrics::steady_p999,
        &run_metrics::after_swap_p999, &run_metrics::gp_p50,    &run_metrics::gp_p99,
        &run_metrics::reclaim_p99, &run_metrics::grace_periods, &run_metrics::membarriers,
        &run_metrics::membarrier_syscalls, &run_metrics::caller_cpu_share, &run_metrics::caller_preemptions,
        &run_metrics::teardown_p50, &run_metrics::teardown_p99, &run_metrics::grace_busy_share,
        &run_metrics::teardown_busy_share};
    for (auto f : fields) {
      std::vector<double> v;
      for (const auto& e : each) v.push_back(e.*f);
      m.*f = median(std::move(v));
    }
  }
  m.pick = pick;
  m.repeats = static_cast<unsigned>(reps.size());
  // Over all repetitions: the cap must hold in every one, and any violation counts.
  m.violations = {};
  for (const auto& e : each) {
    m.peak_backlog = std::max(m.peak_backlog, e.peak_backlog);
    for (std::size_t k = 0; k < violation_kinds; ++k) m.violations[k] += e.violations[k];
  }
  return m;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  return "unknown";
}

std::string compiler_id() {
#if defined(__clang__)
  return std::string("clang++ ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("g++ ") + __VERSION__;
#else
  return "unknown";
#endif
}

std::string kernel_release() {
  utsname u{};
  if (::uname(&u) != 0) return "unknown";
  return std::string(u.sysname) + " " + u.release;
}

std::string sanitizer_name() {
#if defined(__SANITIZE_THREAD__)
  return "thread";
#elif defined(__SANITIZE_ADDRESS__)
  return "address";
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
  return "thread";
#elif __has_feature(address_sanitizer)
  return "address";
#else
  return "none";
#endif
#else
  return "none";
#endif
}

void print_header(std::FILE* out, const report_context& ctx) {
  const clock_info& c = cycle_clock::info();
  std::fprintf(out, "hotswap-stress: %s\n", ctx.command.c_str());
  std::fprintf(out, "  machine: %s, %u hardware threads, %s; %s; sanitizer %s\n", cpu_model().c_str(),
               std::thread::hardware_concurrency(), kernel_release().c_str(), compiler_id().c_str(),
               sanitizer_name().c_str());
  std::fprintf(out, "  timer:   %s; an empty start/stop pair costs %.1f ns (included in every sample); back-to-back reads %.1f ns apart\n",
               c.source.c_str(), c.overhead_ns, c.resolution_ns);
}

void print_table(std::FILE* out, const std::vector<measured>& runs) {
  if (runs.empty()) return;
  const unsigned repeats = runs.front().metrics.repeats;
  std::fprintf(out,
               "\n%-19s %-8s %-10s %-5s %8s %8s | %6s %6s %6s %7s %7s | %7s %7s %6s | %6s %6s %8s | %7s %6s %5s %5s\n",
               "backend", "policy", "mode", "swap", "swaps/s", "calls/s", "p50", "p99", "p99.9", "p99.99", "max",
               "steady", "after", "x off", "gp p50", "gp p99", "reclaim", "backlog", "membar", "viol", "");
  std::fprintf(out, "%-19s %-8s %-10s %-5s %8s %8s | %6s %6s %6s %7s %7s | %7s %7s %6s | %6s %6s %8s | %7s %6s %5s %5s\n",
               "", "", "", "", "", "", "", "", "", "", "", "p99.9", "p99.9", "p99.9", "", "", "p99", "peak/cap",
               "", "", "");
  for (const auto& x : runs) {
    const run_metrics& r = x.metrics;
    const auto& c = r.config;
    if (r.skipped) {
      std::fprintf(out, "%-19s %-8s %-10s %-5s skipped: %s\n", c.backend.c_str(), std::string(to_string(c.policy)).c_str(),
                   std::string(to_string(c.mode)).c_str(), c.swap_label().c_str(), r.skip_reason.c_str());
      continue;
    }
    std::string vs_off = "-";
    if (const run_metrics* off = no_swap_twin(runs, r); off != nullptr && off != &r && off->p999 > 0 && r.p999 >= 0) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.2f", r.p999 / off->p999);
      vs_off = buf;
    }
    char backlog[32];
    if (r.cap != 0) std::snprintf(backlog, sizeof backlog, "%.0f/%zu", r.peak_backlog, r.cap);
    else std::snprintf(backlog, sizeof backlog, "%.0f/-", r.peak_backlog);
    std::fprintf(out,
                 "%-19s %-8s %-10s %-5s %8s %8s | %6s %6s %6s %7s %7s | %7s %7s %6s | %6s %6s %8s | %7s %6s %5llu %5s\n",
                 c.backend.c_str(), std::string(to_string(c.policy)).c_str(), std::string(to_string(c.mode)).c_str(),
                 c.swap_label().c_str(), human_count(r.swaps_per_s).c_str(), human_count(r.calls_per_s).c_str(),
                 human_ns(r.p50).c_str(), human_ns(r.p99).c_str(), human_ns(r.p999).c_str(), human_ns(r.p9999).c_str(),
                 human_ns(r.max).c_str(), human_ns(r.steady_p999).c_str(), human_ns(r.after_swap_p999).c_str(),
                 vs_off.c_str(), human_ns(r.gp_p50).c_str(), human_ns(r.gp_p99).c_str(), human_ns(r.reclaim_p99).c_str(),
                 backlog, r.membarriers < 0 ? "-" : human_count(r.membarriers).c_str(),
                 static_cast<unsigned long long>(r.total_violations()), result_word(r.skipped, r.passed()).c_str());
  }
  std::fprintf(out,
               "\nLatency: per call (throughput mode: per-call mean of each timed batch). steady / after: samples "
               "outside / overlapping the window after a publish. x off: p99.9 over the same backend's no-swap p99.9. "
               "gp: one grace period; reclaim: retire to destructor; membar: membarrier() calls that fence other "
               "CPUs. '-': not applicable.%s\n",
               repeats <= 1 ? ""
               : runs.front().metrics.pick == pick_rule::median
                   ? (" Each number is the median of " + std::to_string(repeats) +
                      " interleaved repetitions (backlog: the peak of all; violations: the sum).").c_str()
                   : (" Numbers come from the least disturbed of " + std::to_string(repeats) +
                      " interleaved repetitions (the one whose callers got the most CPU; backlog: the peak of all; "
                      "violations: the sum).").c_str());
  for (const auto& x : runs) {
    const run_metrics& r = x.metrics;
    if (r.skipped || r.refused <= 0) continue;
    std::fprintf(out, "REFUSED %s/%s: %.0f swaps refused by backpressure; bottleneck: %s (grace periods %.0f%% of the run, p50 %s; teardown of a version %s%s)\n",
                 r.config.backend.c_str(), r.config.scenario.c_str(), r.refused,
                 r.bottleneck() == std::string_view("teardown")          ? "teardown (shutdown/dlclose) of replaced versions"
                 : r.bottleneck() == std::string_view("reclaim_cadence") ? "neither stage (the cap fills between reclaimer rounds: raise max_draining or lower reclaim_window)"
                                                                         : "grace periods",
                 100.0 * std::max(r.grace_busy_share, 0.0), human_ns(r.gp_p50).c_str(),
                 r.teardown_busy_share < 0 ? "not timed" : (std::to_string(std::lround(100.0 * r.teardown_busy_share)) + "% of the run, p50 ").c_str(),
                 r.teardown_busy_share < 0 ? "" : human_ns(r.teardown_p50).c_str());
  }
  for (const auto& x : runs) {
    const run_metrics& r = x.metrics;
    if (r.skipped || r.passed()) continue;
    std::fprintf(out, "FAILED %s/%s/%s/%s:", r.config.backend.c_str(), std::string(to_string(r.config.policy)).c_str(),
                 std::string(to_string(r.config.mode)).c_str(), r.config.swap_label().c_str());
    for (std::size_t k = 0; k < violation_kinds; ++k)
      if (r.violations[k] != 0)
        std::fprintf(out, " %s=%llu", std::string(violation_names[k]).c_str(),
                     static_cast<unsigned long long>(r.violations[k]));
    std::fprintf(out, "\n");
  }
}

void print_summary_lines(std::FILE* out, const std::vector<measured>& runs) {
  auto i64 = [](double v) { return static_cast<long long>(std::llround(v)); };
  for (const auto& x : runs) {
    const run_metrics& r = x.metrics;
    const auto& c = r.config;
    std::fprintf(out,
                 "SUMMARY backend=%s scenario=%s policy=%s readers=%u swappers=%u seconds=%.3f calls=%lld "
                 "calls_per_s=%.0f swaps=%lld p50_ns=%lld p99_ns=%lld p999_ns=%lld p9999_ns=%lld max_ns=%lld "
                 "after_swap_p999_ns=%lld steady_p999_ns=%lld gp_p50_ns=%lld gp_p99_ns=%lld reclaim_p99_ns=%lld "
                 "peak_backlog=%lld membarriers=%lld violations=%llu mode=%s swap_interval_us=%s swaps_per_s=%.0f "
                 "refused=%lld cap=%zu grace_periods=%lld membarrier_syscalls=%lld repeats=%u pick=%s caller_cpu_share=%.3f "
                 "caller_preemptions=%lld teardown_p50_ns=%lld teardown_p99_ns=%lld grace_busy_share=%.3f "
                 "teardown_busy_share=%.3f bottleneck=%s result=%s\n",
                 c.backend.c_str(), c.scenario.c_str(), std::string(to_string(c.policy)).c_str(), c.readers,
                 c.swapping() ? c.swappers : 0U, r.seconds, i64(r.calls), r.calls_per_s, i64(r.swaps), i64(r.p50),
                 i64(r.p99), i64(r.p999), i64(r.p9999), i64(r.max), i64(r.after_swap_p999), i64(r.steady_p999),
                 i64(r.gp_p50), i64(r.gp_p99), i64(r.reclaim_p99), i64(r.peak_backlog), i64(r.membarriers),
                 static_cast<unsigned long long>(r.total_violations()), std::string(to_string(c.mode)).c_str(),
                 !c.swapping() ? "off" : std::to_string(*c.swap_interval_us).c_str(), r.swaps_per_s, i64(r.refused),
                 r.cap, i64(r.grace_periods), i64(r.membarrier_syscalls), r.repeats,
                 r.pick == pick_rule::median ? "median" : ("rep" + std::to_string(r.picked + 1)).c_str(),
                 r.caller_cpu_share, i64(r.caller_preemptions), i64(r.teardown_p50), i64(r.teardown_p99),
                 r.grace_busy_share, r.teardown_busy_share, r.bottleneck(), result_word(r.skipped, r.passed()).c_str());
  }
}

void print_host_outcomes(std::FILE* out, const std::vector<host_outcome>& outcomes) {
  for (const auto& o : outcomes)
    for (const auto& c : o.cases) {
      std::fprintf(out, "SUMMARY scenario=%s case=%s", o.scenario.c_str(), c.name.c_str());
      if (c.summary.empty()) {
        for (const auto& [key, value] : c.metrics) std::fprintf(out, " %s=%.6g", key.c_str(), value);
        std::fprintf(out, " violations=%zu", c.violations.size());
      }
      for (const auto& [key, value] : c.summary) std::fprintf(out, " %s=%s", key.c_str(), value.c_str());
      std::fprintf(out, " result=%s\n", result_word(!c.skip_reason.empty(), c.passed()).c_str());
      if (!c.skip_reason.empty()) std::fprintf(out, "  skipped: %s\n", c.skip_reason.c_str());
      for (const auto& v : c.violations) std::fprintf(out, "  violation: %s\n", v.c_str());
    }
}

namespace {

json violations_json(const violation_counts& v) {
  json o = json::object();
  for (std::size_t k = 0; k < violation_kinds; ++k) o[violation_names[k]] = v[k];
  return o;
}

json run_json(const measured& run) {
  const run_metrics& m = run.metrics;
  const auto& cf = m.config;
  json o = {{"backend", cf.backend},
            {"scenario", cf.scenario},
            {"policy", to_string(cf.policy)},
            {"mode", to_string(cf.mode)},
            {"readers", cf.readers},
            {"swappers", cf.swapping() ? cf.swappers : 0},
            {"swap_interval_us", cf.swapping() ? json(*cf.swap_interval_us) : json(nullptr)},
            {"swap", cf.swap_label()},
            {"seconds", num(cf.seconds)},
            {"warmup_s", num(cf.warmup)},
            {"after_swap_window_ns", cf.after_swap_window_ns},
            {"batch", cf.mode == run_mode::latency ? 1U : cf.batch},
            {"session", cf.session},
            {"max_draining", cf.backend_cfg.max_draining},
            {"repeats", m.repeats},
            {"result", result_word(m.skipped, m.passed())}};
  if (m.skipped) {
    o["skip_reason"] = m.skip_reason;
    return o;
  }
  o["reported"] = {{"pick", m.pick == pick_rule::median ? "median" : "least_disturbed"},
                   {"picked_repetition", m.picked},
                   {"caller_cpu_share", num(m.caller_cpu_share)},
                   {"caller_preemptions", num(m.caller_preemptions)},
                   {"seconds", num(m.seconds)},
                   {"calls", num(m.calls)},
                   {"calls_per_s", num(m.calls_per_s)},
                   {"swaps", num(m.swaps)},
                   {"swaps_per_s", num(m.swaps_per_s)},
                   {"refused", num(m.refused)},
                   {"p50_ns", num(m.p50)},
                   {"p99_ns", num(m.p99)},
                   {"p999_ns", num(m.p999)},
                   {"p9999_ns", num(m.p9999)},
                   {"max_ns", num(m.max)},
                   {"steady_p999_ns", num(m.steady_p999)},
                   {"after_swap_p999_ns", num(m.after_swap_p999)},
                   {"gp_p50_ns", num(m.gp_p50)},
                   {"gp_p99_ns", num(m.gp_p99)},
                   {"reclaim_p99_ns", num(m.reclaim_p99)},
                   {"teardown_p50_ns", num(m.teardown_p50)},
                   {"teardown_p99_ns", num(m.teardown_p99)},
                   {"grace_busy_share", num(m.grace_busy_share)},
                   {"teardown_busy_share", num(m.teardown_busy_share)},
                   {"bottleneck", m.bottleneck()},
                   {"peak_backlog_all", num(m.peak_backlog)},
                   {"cap", m.cap},
                   {"grace_periods", num(m.grace_periods)},
                   {"membarriers", num(m.membarriers)},
                   {"membarrier_syscalls", num(m.membarrier_syscalls)},
                   {"violations_all", violations_json(m.violations)}};
  // Every repetition in full, histograms included.
  json& reps = o["repetitions"] = json::array();
  for (const run_result& r : run.repetitions) {
    json rep = {{"result", result_word(r.skipped, r.passed())}};
    if (r.skipped) {
      rep["skip_reason"] = r.skip_reason;
      reps.push_back(std::move(rep));
      continue;
    }
    rep.update(json{{"caller_cpu_share", num(r.caller_cpu_share)},
                    {"caller_preemptions", r.caller_preemptions},
                    {"elapsed_s", num(r.elapsed_s)},
                    {"calls", r.calls},
                    {"issued", r.issued},
                    {"completed", r.completed},
                    {"calls_per_s", num(per_s(r.calls, r.elapsed_s))},
                    {"swaps", r.swaps},
                    {"swaps_per_s", num(per_s(r.swaps, r.elapsed_s))},
                    {"refused", r.refused},
                    {"peak_backlog", r.peak_backlog},
                    {"cap", r.cap},
                    {"grace_periods", r.grace_periods},
                    {"membarriers", r.membarriers},
                    {"membarrier_syscalls", r.membarrier_syscalls},
                    {"violations", violations_json(r.violations)},
                    {"latency",
                     {{"all", json_histogram(r.latency(), false)},
                      {"steady", json_histogram(r.steady)},
                      {"after_swap", json_histogram(r.after_swap)}}},
                    {"publish", json_histogram(r.publish)},
                    {"grace", json_histogram(r.grace)},
                    {"reclaim", json_histogram(r.reclaim)}});
    reps.push_back(std::move(rep));
  }
  return o;
}

json host_case_json(const std::string& scenario, const host_case& c) {
  json o = {{"scenario", scenario}, {"case", c.name}, {"result", result_word(!c.skip_reason.empty(), c.passed())}};
  if (!c.skip_reason.empty()) o["skip_reason"] = c.skip_reason;
  json& metrics = o["metrics"] = json::object();
  for (const auto& [key, value] : c.metrics) metrics[key] = num(value);
  if (!c.summary.empty()) {
    json& summary = o["summary"] = json::object();
    for (const auto& [key, value] : c.summary) summary[key] = value;
  }
  o["violations"] = c.violations;
  return o;
}

}  // namespace

json report_json(const report_context& ctx, const std::vector<measured>& runs,
                 const std::vector<host_outcome>& outcomes) {
  const clock_info& c = cycle_clock::info();
  json meta = json::object();
  for (const auto& [key, value] : ctx.meta) meta[key] = value;
  json o = {{"tool", "hotswap-stress"},
            {"schema", 2},
            {"command", ctx.command},
            {"date", utc_now()},
            {"meta", std::move(meta)},
            {"machine",
             {{"cpu", cpu_model()},
              {"hardware_threads", std::thread::hardware_concurrency()},
              {"kernel", kernel_release()},
              {"compiler", compiler_id()},
              {"sanitizer", sanitizer_name()},
#ifdef NDEBUG
              {"assertions", false}}},
#else
              {"assertions", true}}},
#endif
            {"timer",
             {{"source", c.source},
              {"tsc", c.tsc},
              {"ns_per_tick", num(c.ns_per_tick)},
              {"pair_overhead_ns", num(c.overhead_ns)},
              {"resolution_ns", num(c.resolution_ns)},
              {"note",
               "latency samples include the pair overhead; throughput mode records the per-call mean of each "
               "timed batch"}}},
            {"violation_kinds", json::array()},
            {"runs", json::array()},
            {"host_scenarios", json::array()}};
  for (std::size_t k = 0; k < violation_kinds; ++k) o["violation_kinds"].push_back(violation_names[k]);
  // One entry per configuration: its settings, the reported numbers (see
  // pick_rule), then every repetition in full.
  for (const measured& run : runs) o["runs"].push_back(run_json(run));
  for (const auto& h : outcomes)
    for (const auto& c : h.cases) o["host_scenarios"].push_back(host_case_json(h.scenario, c));
  return o;
}

bool write_json(const std::string& path, const report_context& ctx, const std::vector<measured>& runs,
                const std::vector<host_outcome>& outcomes) {
  std::ofstream out(path);
  if (!out) return false;
  // One top-level key per line and one run or case per line: diffable, and
  // small (indenting every histogram bucket would multiply the lines by four).
  // Text from outside (the command, --meta, skip reasons) that is not UTF-8
  // gets U+FFFD rather than an exception.
  const auto dump = [](const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); };
  const json report = report_json(ctx, runs, outcomes);
  out << "{";
  bool first = true;
  for (const auto& [key, value] : report.items()) {
    out << (std::exchange(first, false) ? "\n" : ",\n") << dump(key) << ":";
    if (value.is_array() && !value.empty() && value.front().is_object()) {  // runs, host_scenarios
      for (std::size_t i = 0; i < value.size(); ++i) out << (i ? ",\n" : "[\n") << dump(value[i]);
      out << "\n]";
    } else {
      out << dump(value);
    }
  }
  out << "\n}\n";
  return static_cast<bool>(out);
}

}  // namespace hotswap::stress
