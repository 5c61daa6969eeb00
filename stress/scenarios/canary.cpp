// The `canary` end-to-end scenario: hotswap-httpd in this process on
// 127.0.0.1 under load on `greeting` while a candidate is published beside it
// as a canary (kernel/modules/canary.hpp, POST /admin/canary).
//
// Cases: each bad example application (canary-errors: 5% 500s, canary-slow:
// 20 ms slower, canary-failing: every request 500) with fallback on (the load
// is GET, retryable) and off (POST, never re-run), and the good candidate
// (greeting-2). Every request is a fresh connection, so each is a fresh
// canary key. Measured from the canary's start: the verdict, how long and how
// many requests it took, and the errors users saw. The good case repeats
// `runs` times (alternating greeting-2 and greeting-1 as candidate over the
// promoted one) and reports its false-rollback rate and time to 100%.
//
// SUMMARY line (the format): verdict=promoted|rolled_back|undecided
// rollback_ms= rollback_requests= (from the canary's start to the rollback;
// `-` without one; the good case: the median over its false rollbacks)
// user_errors= (non-200 answers) fallback=on|off false_rollback_rate= (the
// good case; `-` for a bad one). JSON metrics, besides: rolled_back,
// decision_ms, decision_requests, fallbacks (answers stable gave after a
// candidate failure); good case: runs, promote_ms_p50, promote_ms_max (time
// to 100%).
//
// Time series: with --scenario-arg series=FILE.csv, every case (the good
// case: its first run) samples the canary every 10 ms -- the candidate's
// share of calls, each version's calls, errors and cumulative error rate and
// p99 since the canary began -- into one CSV (scripts/plot_canary.gp).
//
// Violations: a bad candidate not rolled back within the cap (10 s), a user
// error with fallback on, more than 1% false rollbacks of the good candidate.
// Policy: steps 5, 25, 50, 100% (a 1% first step needs 100x the traffic to
// see 5% errors), the other settings at their defaults. --quick: 3 good runs;
// otherwise --scenario-arg runs=N (the reference: 100). clients=N (2),
// server_threads=N (1).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <hotswap/http/probe_client.hpp>
#include <hotswap/http/server.hpp>
#include <string>
#include <thread>
#include <vector>

#include "app_server.hpp"
#include "host_scenario.hpp"

namespace hotswap::stress {

namespace {

namespace h = hotswap::http;
using clock_type = std::chrono::steady_clock;

struct decision {
  bool rolled_back = false, decided = false;
  double ms = 0;
  std::uint64_t requests = 0, user_errors = 0, fallbacks = 0;
};

// One row of the time series: the canary as status() saw it `ms` after its start.
struct sample {
  double ms = 0;
  modules::canary_phase phase = modules::canary_phase::stepping;
  double candidate_share_pct = 0;  // of calls on the candidate's code: the weight; 100 once promoted
  modules::health_snapshot stable, candidate;
};

// The CSV the series go to (none without --scenario-arg series=...).
class series_file {
 public:
  explicit series_file(const std::string& path) {
    if (path.empty()) return;
    out_.open(path);
    if (!out_) throw std::runtime_error("cannot write the canary time series to " + path);
    out_ << "case,ms,phase,candidate_share_pct,stable_calls,stable_errors,candidate_calls,candidate_errors,"
            "stable_error_pct,candidate_error_pct,stable_p99_ms,candidate_p99_ms\n";
  }
  void write(const std::string& name, const std::vector<sample>& rows) {
    if (!out_) return;
    for (const sample& s : rows) {
      char line[512];
      std::snprintf(line, sizeof line, "%s,%.1f,%s,%.2f,%llu,%llu,%llu,%llu,%.3f,%.3f,%.3f,%.3f\n", name.c_str(), s.ms,
                    modules::to_string(s.phase), s.candidate_share_pct,
                    static_cast<unsigned long long>(s.stable.calls()), static_cast<unsigned long long>(s.stable.errors),
                    static_cast<unsigned long long>(s.candidate.calls()),
                    static_cast<unsigned long long>(s.candidate.errors), 100 * s.stable.error_rate(),
                    100 * s.candidate.error_rate(), static_cast<double>(s.stable.p(0.99)) / 1e6,
                    static_cast<double>(s.candidate.p(0.99)) / 1e6);
      out_ << line;
    }
    out_.flush();
  }

 private:
  std::ofstream out_;
};

class canary_run {
 public:
  explicit canary_run(const host_config& cfg)
      : clients_(std::max(1ul, std::stoul(cfg.args.get("clients", "2")))),
        app_("canary", {"greeting-1.so", "greeting-2.so", "canary-errors.so", "canary-slow.so", "canary-failing.so"},
             {{"/", "greeting", "greeting-1.so", {}}}, static_cast<unsigned>(std::stoul(cfg.args.get("server_threads", "1")))) {}

  // Starts `file` as a canary and drives load until the verdict (or the cap).
  decision run(const std::string& file, bool get, std::vector<sample>* series = nullptr) {
    modules::canary_policy p;
    p.steps_bp = {500, 2500, 5000, 10000};
    auto& canary = app_.server().modules().canary("greeting");
    std::atomic<std::uint64_t> sent{0}, user_errors{0}, fallbacks{0};
    std::atomic<bool> stop{false};
    const auto start = clock_type::now();
    app_.server().modules().start_canary("stress", "greeting", app_.plugin_dir() / file, p);
    std::vector<std::thread> load;
    for (unsigned i = 0; i < clients_; ++i)
      load.emplace_back([&] {
        const std::string request = get ? h::probe_client::get("/") : h::probe_client::post("/", "x");
        while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a flag; the join orders the counts
          h::probe_client client(app_.server().port());
          h::probe_reply reply;
          const h::probe_error e = client.exchange(request, reply);
          sent.fetch_add(1, std::memory_order_relaxed);  // counts, read after the join
          if (e != h::probe_error::none || reply.status != 200) user_errors.fetch_add(1, std::memory_order_relaxed);
          if (!reply.header("x-hotswap-fallback").empty()) fallbacks.fetch_add(1, std::memory_order_relaxed);
        }
      });
    decision d;
    const auto cap = start + std::chrono::seconds(10);
    auto next_sample = start;
    while (clock_type::now() < cap) {
      const modules::canary_status st = canary.status();
      const modules::canary_phase phase = st.phase;
      const auto now = clock_type::now();
      if (series != nullptr && (now >= next_sample || phase != modules::canary_phase::stepping)) {
        const double share = phase == modules::canary_phase::promoted ? 100.0 : st.weight_bp / 100.0;
        series->push_back({std::chrono::duration<double, std::milli>(now - start).count(), phase, share, st.stable,
                           st.candidate});
        next_sample = now + std::chrono::milliseconds(10);
      }
      if (phase != modules::canary_phase::stepping) {
        d.decided = true;
        d.rolled_back = phase == modules::canary_phase::rolled_back;
        d.ms = std::chrono::duration<double, std::milli>(clock_type::now() - start).count();
        d.requests = sent.load(std::memory_order_relaxed);  // a count; approximate by the requests in flight
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    stop.store(true, std::memory_order_relaxed);
    for (auto& t : load) t.join();
    if (!d.decided) canary.abort("stress", "scenario cap reached");
    d.user_errors = user_errors.load(std::memory_order_relaxed);  // after the join: no partner needed
    d.fallbacks = fallbacks.load(std::memory_order_relaxed);
    return d;
  }

 private:
  unsigned clients_;
  app_server app_;
};

std::string ms_text(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", ms);
  return buf;
}

host_case bad_case(const host_config& cfg, series_file& series, const char* name, const std::string& file,
                   bool fallback) {
  host_case c;
  c.name = std::string(name) + (fallback ? "_fallback_on" : "_fallback_off");
  canary_run run(cfg);
  std::vector<sample> rows;
  const decision d = run.run(file, fallback, &rows);
  series.write(c.name, rows);
  c.metrics = {{"rolled_back", d.rolled_back ? 1 : 0},
               {"decision_ms", d.ms},
               {"decision_requests", static_cast<double>(d.requests)},
               {"user_errors", static_cast<double>(d.user_errors)},
               {"fallback", fallback ? 1 : 0},
               {"fallbacks", static_cast<double>(d.fallbacks)}};
  const bool rolled_back = d.decided && d.rolled_back;
  c.summary = {{"verdict", !d.decided ? "undecided" : d.rolled_back ? "rolled_back" : "promoted"},
               {"rollback_ms", rolled_back ? ms_text(d.ms) : "-"},
               {"rollback_requests", rolled_back ? std::to_string(d.requests) : "-"},
               {"user_errors", std::to_string(d.user_errors)},
               {"fallback", fallback ? "on" : "off"},
               {"false_rollback_rate", "-"}};
  if (!rolled_back) c.violations.push_back(file + " was not rolled back within 10 s");
  if (fallback && d.user_errors != 0)
    c.violations.push_back(std::to_string(d.user_errors) + " user-visible errors with fallback on");
  return c;
}

host_case good_case(const host_config& cfg, series_file& series) {
  host_case c;
  c.name = "good";
  const unsigned runs = static_cast<unsigned>(std::stoul(cfg.args.get("runs", cfg.quick ? "3" : "100")));
  canary_run run(cfg);
  unsigned false_rollbacks = 0, promoted = 0;
  std::uint64_t user_errors = 0;
  std::vector<double> promote_ms, rollback_ms, rollback_requests;
  for (unsigned i = 0; i < runs; ++i) {
    std::vector<sample> rows;
    const decision d = run.run(i % 2 == 0 ? "greeting-2.so" : "greeting-1.so", true,  // over the last promoted
                               i == 0 ? &rows : nullptr);
    if (i == 0) series.write(c.name, rows);
    user_errors += d.user_errors;
    if (d.decided && !d.rolled_back) {
      ++promoted;
      promote_ms.push_back(d.ms);
    } else {
      ++false_rollbacks;
      if (d.decided) {
        rollback_ms.push_back(d.ms);
        rollback_requests.push_back(static_cast<double>(d.requests));
      }
    }
  }
  const double rate = static_cast<double>(false_rollbacks) / runs;
  const double p50 = percentile(promote_ms, 0.5), max = percentile(promote_ms, 1.0);
  c.metrics = {{"runs", runs},           {"false_rollback_rate", rate}, {"promote_ms_p50", p50},
               {"promote_ms_max", max}, {"user_errors", static_cast<double>(user_errors)}, {"fallback", 1}};
  char rate_text[32];
  std::snprintf(rate_text, sizeof rate_text, "%.4g", rate);
  c.summary = {{"verdict", 2 * promoted > runs ? "promoted" : "rolled_back"},  // what most runs decided
               {"rollback_ms", rollback_ms.empty() ? "-" : ms_text(percentile(rollback_ms, 0.5))},
               {"rollback_requests",
                rollback_requests.empty() ? "-" : std::to_string(static_cast<std::uint64_t>(percentile(rollback_requests, 0.5)))},
               {"user_errors", std::to_string(user_errors)},
               {"fallback", "on"},
               {"false_rollback_rate", rate_text}};
  if (rate > 0.01)
    c.violations.push_back(std::to_string(false_rollbacks) + " of " + std::to_string(runs) +
                           " good candidates rolled back or undecided within 10 s");
  return c;
}

}  // namespace

std::vector<host_case> run_canary_scenario(const host_config& cfg) {
  std::vector<host_case> out;
  series_file series(cfg.args.get("series", ""));
  for (bool fallback : {true, false}) {
    out.push_back(bad_case(cfg, series, "errors5", "canary-errors.so", fallback));
    out.push_back(bad_case(cfg, series, "slow20ms", "canary-slow.so", fallback));
    out.push_back(bad_case(cfg, series, "failing", "canary-failing.so", fallback));
  }
  out.push_back(good_case(cfg, series));
  return out;
}

}  // namespace hotswap::stress
