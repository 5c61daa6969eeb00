// hotswap-fleet-sim: many simulated agents in one process, against a real
// etcd, to measure what a fleet costs etcd and a controller (README: scale).
// A simulated agent does what hotswap-fleet-agent does to etcd (a lease kept
// alive, two point reads per tick, a report put when its state changes) but
// "installs" a release instantly, with no host behind it, and has no watch
// stream (it relies on its tick). Prints one SUMMARY line on SIGTERM/SIGINT
// or after --seconds.
#include <csignal>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <hotswap/fleet/etcd_client.hpp>
#include <hotswap/fleet/records.hpp>
#include <mutex>
#include <thread>
#include <vector>

namespace {

std::atomic<bool> stop{false};
extern "C" void on_signal(int) { stop.store(true, std::memory_order_relaxed); }  // lock-free; a flag, no partner

using steady = std::chrono::steady_clock;
using namespace hotswap::fleet;

struct sim_agent {
  std::string name;
  std::int64_t lease = 0;
  steady::time_point renewed{}, next{};
  std::string serving;  // the sha256 it "serves"
  std::optional<host_report> written;
};

struct totals {
  std::uint64_t calls = 0, failures = 0, puts = 0, installs = 0;
  std::vector<double> call_ms;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hotswap-fleet-sim: simulated agents against a real etcd"};
  std::string etcd = "127.0.0.1:2379", service = "sim", module = "greeting";
  int agents = 1000, workers = 16, tick_ms = 1000;
  std::int64_t ttl = 10;
  double seconds = 600;
  app.add_option("--etcd", etcd)->capture_default_str();
  app.add_option("--service", service)->capture_default_str();
  app.add_option("--module", module)->capture_default_str();
  app.add_option("--agents", agents)->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--workers", workers, "threads sharing the agents")->capture_default_str()->check(CLI::Range(1, 256));
  app.add_option("--tick-ms", tick_ms)->capture_default_str()->check(CLI::Range(10, 60000));
  app.add_option("--lease-ttl", ttl)->capture_default_str();
  app.add_option("--seconds", seconds, "stop after this long")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  const fleet_keys keys{service};
  const std::string baseline(64, '0');
  std::vector<sim_agent> all(static_cast<std::size_t>(agents));
  for (int i = 0; i < agents; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "s%05d", i);
    all[static_cast<std::size_t>(i)].name = name;
    all[static_cast<std::size_t>(i)].serving = baseline;
    all[static_cast<std::size_t>(i)].next = steady::now() + std::chrono::milliseconds(tick_ms * i / agents);  // spread
  }
  std::mutex m;
  totals sum;
  const auto endpoints = parse_endpoints(etcd);
  const auto deadline = steady::now() + std::chrono::duration<double>(seconds);
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w)
    threads.emplace_back([&, w] {
      etcd_client client(endpoints, std::chrono::seconds(2));
      totals mine;
      auto timed = [&](auto&& call) {
        const auto t0 = steady::now();
        ++mine.calls;
        call();
        mine.call_ms.push_back(std::chrono::duration<double, std::milli>(steady::now() - t0).count());
      };
      while (!stop.load(std::memory_order_relaxed) && steady::now() < deadline) {  // a flag; no partner
        bool worked = false;
        for (std::size_t i = static_cast<std::size_t>(w); i < all.size(); i += static_cast<std::size_t>(workers)) {
          sim_agent& a = all[i];
          const auto now = steady::now();
          if (now < a.next) continue;
          worked = true;
          a.next = now + std::chrono::milliseconds(tick_ms);
          try {
            if (a.lease != 0 && now - a.renewed >= std::chrono::seconds(ttl) / 3) {
              std::int64_t left = 0;
              timed([&] { left = client.lease_keepalive(a.lease); });
              if (left == 0) a.lease = 0, a.written.reset();
              else a.renewed = now;
            }
            if (a.lease == 0) {
              timed([&] { a.lease = client.lease_grant(ttl); });
              a.renewed = now;
            }
            range_result own, fleet;
            timed([&] { own = client.get(keys.desired_host(a.name)); });
            timed([&] { fleet = client.get(keys.desired()); });
            const key_value* chosen = !own.kvs.empty() ? &own.kvs[0] : (!fleet.kvs.empty() ? &fleet.kvs[0] : nullptr);
            const std::string target = chosen ? decode_desired(chosen->value, chosen->key).sha256 : baseline;
            if (a.serving != target) a.serving = target, ++mine.installs;
            host_report r;
            r.host = a.name;
            r.module = module;
            r.sha256 = a.serving;
            r.build = a.serving.substr(0, 8);
            r.serving_version = 1;
            r.state = chosen ? "converged" : "idle";
            r.desired_sha256 = chosen ? target : "";
            if (!a.written || !(*a.written == r)) {
              timed([&] { client.put(keys.host(a.name), encode(r), a.lease); });
              ++mine.puts;
              a.written = r;
            }
          } catch (const std::exception&) {
            ++mine.failures;
          }
        }
        if (!worked) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      std::lock_guard lock(m);
      sum.calls += mine.calls;
      sum.failures += mine.failures;
      sum.puts += mine.puts;
      sum.installs += mine.installs;
      sum.call_ms.insert(sum.call_ms.end(), mine.call_ms.begin(), mine.call_ms.end());
    });
  for (auto& t : threads) t.join();
  std::sort(sum.call_ms.begin(), sum.call_ms.end());
  auto pct = [&](double q) {
    return sum.call_ms.empty() ? 0.0 : sum.call_ms[static_cast<std::size_t>(q * static_cast<double>(sum.call_ms.size() - 1))];
  };
  std::printf("SUMMARY agents=%d workers=%d tick_ms=%d calls=%llu failures=%llu report_puts=%llu installs=%llu "
              "call_p50_ms=%.2f call_p99_ms=%.2f\n",
              agents, workers, tick_ms, static_cast<unsigned long long>(sum.calls),
              static_cast<unsigned long long>(sum.failures), static_cast<unsigned long long>(sum.puts),
              static_cast<unsigned long long>(sum.installs), pct(0.5), pct(0.99));
  return 0;
}
