// The `http` end-to-end scenario: hotswap-httpd in this process on 127.0.0.1,
// driven by an exact-counting load generator of our own (probe_client), while
// the application module is swapped every 50 ms.
//
// Two cases, because reload designs fail differently for each: `keepalive`
// (each client thread keeps one connection) and `new-connection` (a fresh
// connection per request). Each case runs a steady phase (no swaps) and then
// a swapping phase with the same request budget, so throughput and latency
// are measured with and without swapping in the same run.
//
// Checked on every response: status 2xx, a version header, and that a
// request sent after a swap had returned is served by that version or a
// newer one. Checked per case: the server's per-version counters sum to the
// client's count; each pinned connection (route /pinned, keep-alive case)
// sees one version throughout; `slow` requests (200 ms, swapped every 50 ms
// too) complete on the version that started them and at least one spans >= 3
// swaps; the swapping phase reaches its swap count.
//
// Length: with --quick each phase runs until 40000 keep-alive (10000
// new-connection) requests and 20 swaps are done; otherwise for --seconds,
// or until requests=N and min_swaps=N if given (the reference run:
// --scenario-arg requests=500000 --scenario-arg min_swaps=100). Each phase
// is capped at max(10 s, 4 x --seconds); a budget not reached is a violation.
// Other settings (--scenario-arg): clients=N greeting threads (2),
// server_threads=N (1), swap_ms=N (50), slow_ms=N (200).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <hotswap/http/probe_client.hpp>
#include <hotswap/http/server.hpp>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "app_server.hpp"
#include "host_scenario.hpp"

namespace hotswap::stress {

namespace {

namespace fs = std::filesystem;
namespace h = hotswap::http;
using clock_type = std::chrono::steady_clock;

struct error_counts {
  std::uint64_t by_kind[5] = {};  // indexed by probe_error
  std::uint64_t total() const { return by_kind[1] + by_kind[2] + by_kind[3] + by_kind[4]; }
};

// What one phase measured, merged over the client threads.
struct phase_result {
  std::uint64_t ok = 0, non_2xx = 0;
  error_counts errors;
  std::vector<std::uint32_t> latency_us;  // greeting requests only
  double seconds = 0;
  std::uint64_t swaps = 0, swap_refusals = 0;
  std::map<std::string, std::uint64_t> by_build;
  std::uint64_t server_total = 0;
  std::uint64_t pinned_connections = 0, slow = 0, slow_spanning_3 = 0;
  std::vector<std::string> violations;
  std::mutex mutex;

  void violation(const std::string& v) {
    std::lock_guard lock(mutex);
    if (violations.size() < 20) violations.push_back(v);
  }
};

// The serving versions as the swapper last saw them return: a request sent
// after this was stored must be served by that version or a newer one.
struct swap_state {
  std::atomic<std::uint64_t> greeting{1}, slow{1};
  std::atomic<std::uint64_t> swaps{0};
  std::mutex builds_mutex;
  std::map<std::uint64_t, std::string> slow_builds;  // version -> build, for the slow check
};

class http_run {
 public:
  http_run(const host_config& cfg)
      : cfg_(cfg),
        app_("http", {"greeting-1.so", "greeting-2.so", "slow-1.so", "slow-2.so"},
             {{"/", "greeting", "greeting-1.so", {}},
              {"/pinned", "greeting", "", hotswap::call_policy::pinned},
              {"/slow", "slow", "slow-1.so", {}}},
             static_cast<unsigned>(std::stoul(cfg.args.get("server_threads", "1")))) {
    swap_ms_ = std::stol(cfg.args.get("swap_ms", "50"));
    slow_ms_ = std::stol(cfg.args.get("slow_ms", "200"));
    clients_ = std::max(1ul, std::stoul(cfg.args.get("clients", "2")));
  }

  host_case run_case(const std::string& name, bool keepalive) {
    const std::uint64_t budget =
        std::stoull(cfg_.args.get("requests", cfg_.quick ? (keepalive ? "40000" : "10000") : "0"));
    const std::uint64_t min_swaps = std::stoull(cfg_.args.get("min_swaps", cfg_.quick ? "20" : "0"));
    phase_result steady, swapping;
    run_phase(steady, keepalive, budget, 0);
    run_phase(swapping, keepalive, budget, std::max<std::uint64_t>(min_swaps, 1));

    host_case out;
    out.name = name;
    auto& m = out.metrics;
    const std::uint64_t requests = steady.ok + steady.non_2xx + swapping.ok + swapping.non_2xx;
    m.emplace_back("requests", static_cast<double>(requests));
    m.emplace_back("non_2xx", static_cast<double>(steady.non_2xx + swapping.non_2xx));
    for (int k = 1; k < 5; ++k)
      m.emplace_back(std::string("errors_") + h::to_string(static_cast<h::probe_error>(k)),
                     static_cast<double>(steady.errors.by_kind[k] + swapping.errors.by_kind[k]));
    const double rps_steady = static_cast<double>(steady.ok) / steady.seconds;
    const double rps_swapping = static_cast<double>(swapping.ok) / swapping.seconds;
    m.emplace_back("rps_steady", rps_steady);
    m.emplace_back("rps_swapping", rps_swapping);
    m.emplace_back("rps_ratio", rps_steady > 0 ? rps_swapping / rps_steady : 0);
    const double p99_steady = percentile(steady.latency_us, 0.99);
    const double p99_swapping = percentile(swapping.latency_us, 0.99);
    m.emplace_back("p50_us_steady", percentile(steady.latency_us, 0.50));
    m.emplace_back("p99_us_steady", p99_steady);
    m.emplace_back("p999_us_steady", percentile(steady.latency_us, 0.999));
    m.emplace_back("p50_us_swapping", percentile(swapping.latency_us, 0.50));
    m.emplace_back("p99_us_swapping", p99_swapping);
    m.emplace_back("p999_us_swapping", percentile(swapping.latency_us, 0.999));
    m.emplace_back("p99_ratio", p99_steady > 0 ? p99_swapping / p99_steady : 0);
    m.emplace_back("swaps", static_cast<double>(swapping.swaps));
    m.emplace_back("swap_refusals", static_cast<double>(swapping.swap_refusals));
    for (const auto& [build, n] : swapping.by_build) {
      std::string key = "swapping_requests_" + build;  // keys are lowercase_with_underscores
      std::replace(key.begin(), key.end(), '-', '_');
      m.emplace_back(key, static_cast<double>(n));
    }
    m.emplace_back("pinned_connections", static_cast<double>(swapping.pinned_connections));
    m.emplace_back("slow_requests", static_cast<double>(swapping.slow));
    m.emplace_back("slow_spanning_3_swaps", static_cast<double>(swapping.slow_spanning_3));

    for (phase_result* p : {&steady, &swapping}) {
      const char* phase = p == &steady ? "steady" : "swapping";
      for (const auto& v : p->violations) out.violations.push_back(std::string(phase) + ": " + v);
      if (p->non_2xx != 0) out.violations.push_back(std::string(phase) + ": " + std::to_string(p->non_2xx) + " non-2xx responses");
      if (p->errors.total() != 0)
        out.violations.push_back(std::string(phase) + ": " + std::to_string(p->errors.total()) + " socket errors");
      if (p->server_total != p->ok + p->non_2xx)
        out.violations.push_back(std::string(phase) + ": the server counted " + std::to_string(p->server_total) +
                                 " responses, the clients " + std::to_string(p->ok + p->non_2xx));
      if (budget != 0 && p->ok + p->non_2xx < budget)
        out.violations.push_back(std::string(phase) + ": only " + std::to_string(p->ok) + " of " +
                                 std::to_string(budget) + " requests within the time cap");
    }
    if (swapping.swaps < std::max<std::uint64_t>(min_swaps, 1))
      out.violations.push_back("only " + std::to_string(swapping.swaps) + " swaps (want >= " + std::to_string(min_swaps) + ")");
    if (keepalive && swapping.slow_spanning_3 == 0)
      out.violations.push_back("no slow request spanned 3 swaps");
    return out;
  }

 private:
  std::uint64_t server_total() const {
    std::uint64_t t = 0;
    for (const auto& [key, vc] : app_.server().counts()) t += vc.total();
    return t;
  }

  // The client threads and, with min_swaps > 0, the swapper; until the
  // budget (and the swap count) is reached or the time cap passes.
  void run_phase(phase_result& r, bool keepalive, std::uint64_t budget, std::uint64_t min_swaps) {
    const std::uint64_t server_before = server_total();
    const auto cap = std::chrono::duration<double>(std::max(10.0, cfg_.seconds * 4));
    const auto started = clock_type::now();
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> issued{0};
    swaps_.swaps.store(0, std::memory_order_relaxed);  // a statistic reset between phases; no partner

    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < clients_; ++i)
      threads.emplace_back([&] { greeting_client(r, keepalive, budget, issued, stop); });
    if (keepalive) {
      threads.emplace_back([&] { pinned_client(r, stop); });
      threads.emplace_back([&] { slow_client(r, stop); });
    }
    std::thread swapper;
    if (min_swaps > 0) swapper = std::thread([&] { swap_loop(r, stop); });

    // Relaxed: counters polled for the end condition; the joins below order the results.
    // Without a request budget the phase runs for --seconds.
    const auto least = std::chrono::duration<double>(budget == 0 ? cfg_.seconds : 0.0);
    while (clock_type::now() - started < cap &&
           (clock_type::now() - started < least || issued.load(std::memory_order_relaxed) < budget ||
            swaps_.swaps.load(std::memory_order_relaxed) < min_swaps))
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    stop.store(true, std::memory_order_relaxed);  // a flag; the joins publish everything
    for (auto& t : threads) t.join();
    if (swapper.joinable()) swapper.join();
    r.seconds = std::chrono::duration<double>(clock_type::now() - started).count();
    r.swaps = swaps_.swaps.load(std::memory_order_relaxed);
    // Every response was counted before it was written, and every client has read its last one.
    r.server_total = server_total() - server_before;
  }

  void count_reply(phase_result& r, const h::probe_reply& reply, std::uint64_t floor, const char* what) {
    std::lock_guard lock(r.mutex);
    if (reply.status >= 200 && reply.status < 300) ++r.ok;
    else ++r.non_2xx;
    ++r.by_build[reply.header("x-hotswap-build")];
    if (reply.version() < floor && r.violations.size() < 20)
      r.violations.push_back(std::string(what) + ": version " + std::to_string(reply.version()) +
                             " served a request sent after version " + std::to_string(floor) + " was published");
  }

  void greeting_client(phase_result& r, bool keepalive, std::uint64_t budget, std::atomic<std::uint64_t>& issued,
                       std::atomic<bool>& stop) {
    h::probe_client client(app_.server().port());
    const std::string req = h::probe_client::get("/", keepalive ? "" : "Connection: close\r\n");
    std::vector<std::uint32_t> latencies;
    error_counts errors;
    // Relaxed: the budget counter and stop flag only bound the loop.
    while (!stop.load(std::memory_order_relaxed) &&
           (issued.fetch_add(1, std::memory_order_relaxed) < budget || budget == 0)) {
      const std::uint64_t floor = swaps_.greeting.load(std::memory_order_acquire);  // pairs with the swapper's release
      const auto t0 = clock_type::now();
      h::probe_reply reply;
      const h::probe_error e = client.exchange(req, reply);
      if (e != h::probe_error::none) {
        ++errors.by_kind[static_cast<int>(e)];
        client.close();
        continue;
      }
      latencies.push_back(static_cast<std::uint32_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - t0).count()));
      count_reply(r, reply, floor, "greeting");
      if (!keepalive) client.close();
    }
    std::lock_guard lock(r.mutex);
    r.latency_us.insert(r.latency_us.end(), latencies.begin(), latencies.end());
    for (int k = 0; k < 5; ++k) r.errors.by_kind[k] += errors.by_kind[k];
  }

  // Keep-alive connections on the pinned route, 200 requests each: one version per connection.
  void pinned_client(phase_result& r, std::atomic<bool>& stop) {
    while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a stop flag
      h::probe_client client(app_.server().port());
      std::uint64_t version = 0;
      for (int i = 0; i < 200 && !stop.load(std::memory_order_relaxed); ++i) {
        const std::uint64_t floor = i == 0 ? swaps_.greeting.load(std::memory_order_acquire) : 0;  // pairs: swapper
        h::probe_reply reply;
        const h::probe_error e = client.exchange(h::probe_client::get("/pinned"), reply);
        if (e != h::probe_error::none) {
          std::lock_guard lock(r.mutex);
          ++r.errors.by_kind[static_cast<int>(e)];
          break;
        }
        count_reply(r, reply, floor, "pinned");
        if (version == 0) version = reply.version();
        else if (reply.version() != version)
          r.violation("a pinned connection saw version " + std::to_string(reply.version()) + " after " +
                      std::to_string(version));
      }
      std::lock_guard lock(r.mutex);
      ++r.pinned_connections;
    }
  }

  // Slow requests: each must finish on the version that started it.
  void slow_client(phase_result& r, std::atomic<bool>& stop) {
    h::probe_client client(app_.server().port(), std::chrono::seconds(10));
    const std::string req = h::probe_client::get("/slow?ms=" + std::to_string(slow_ms_));
    while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a stop flag
      const std::uint64_t floor = swaps_.slow.load(std::memory_order_acquire);  // pairs with the swapper's release
      h::probe_reply reply;
      const h::probe_error e = client.exchange(req, reply);
      const std::uint64_t after = swaps_.slow.load(std::memory_order_acquire);  // pairs with the swapper's release
      if (e != h::probe_error::none) {
        std::lock_guard lock(r.mutex);
        ++r.errors.by_kind[static_cast<int>(e)];
        client.close();
        continue;
      }
      count_reply(r, reply, floor, "slow");
      const std::uint64_t v = reply.version();
      std::string build;
      {
        std::lock_guard lock(swaps_.builds_mutex);
        build = swaps_.slow_builds[v];
      }
      // The body names the build whose code completed the request; it must be
      // the version in the header, i.e. the one that started it.
      if (!build.empty() && reply.body.rfind(build + " ", 0) != 0)
        r.violation("slow request stamped version " + std::to_string(v) + " (" + build + ") answered by: " + reply.body);
      std::lock_guard lock(r.mutex);
      ++r.slow;
      if (v == floor && after >= v + 3) ++r.slow_spanning_3;
    }
  }

  void swap_loop(phase_result& r, std::atomic<bool>& stop) {
    auto& mods = app_.server().modules();
    const fs::path dir = app_.plugin_dir();
    auto next = clock_type::now();
    for (std::uint64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {  // relaxed: a stop flag
      next += std::chrono::milliseconds(swap_ms_);
      std::this_thread::sleep_until(next);
      try {
        const auto g = mods.swap("stress", "greeting", dir / (i % 2 == 0 ? "greeting-2.so" : "greeting-1.so"));
        swaps_.greeting.store(g.version, std::memory_order_release);  // pairs with the clients' acquire loads
        const auto s = mods.swap("stress", "slow", dir / (i % 2 == 0 ? "slow-2.so" : "slow-1.so"));
        {
          std::lock_guard lock(swaps_.builds_mutex);
          swaps_.slow_builds[s.version] = s.record ? s.record->identity().build_version : "";
        }
        swaps_.slow.store(s.version, std::memory_order_release);  // pairs with the clients' acquire loads
        swaps_.swaps.fetch_add(1, std::memory_order_relaxed);     // a count polled for the end condition
      } catch (const modules::module_error& e) {
        std::lock_guard lock(r.mutex);
        ++r.swap_refusals;
        if (r.violations.size() < 20) r.violations.push_back(std::string("swap refused: ") + e.what());
      }
    }
  }

  const host_config& cfg_;
  app_server app_;
  swap_state swaps_;
  long swap_ms_ = 50, slow_ms_ = 200;
  std::size_t clients_ = 2;
};

}  // namespace

std::vector<host_case> run_http_scenario(const host_config& cfg) {
  std::vector<host_case> out;
  try {
    http_run run(cfg);
    out.push_back(run.run_case("keepalive", true));
    out.push_back(run.run_case("new-connection", false));
  } catch (const std::exception& e) {
    host_case failed;
    failed.name = "setup";
    failed.violations.push_back(std::string("could not start: ") + e.what());
    out.push_back(std::move(failed));
  }
  return out;
}

}  // namespace hotswap::stress
