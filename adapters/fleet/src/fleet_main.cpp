// hotswap-fleet: rollout, status, abort and resume of a service's release (see controller.hpp).
// Exit status: 0 done (or the command succeeded), 1 an error, 2 bad usage,
// 3 the rollout was rolled back, 4 it was aborted.
#include <csignal>
#include <CLI/CLI.hpp>
#include <cstdio>
#include <hotswap/fleet/controller.hpp>
#include <nlohmann/json.hpp>

namespace {

std::atomic<bool> stop{false};
extern "C" void on_signal(int) { stop.store(true, std::memory_order_relaxed); }  // lock-free; a flag, no partner

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t end; (end = s.find(',', start)) != std::string::npos; start = end + 1) out.push_back(s.substr(start, end - start));
  out.push_back(s.substr(start));
  return out;
}

int exit_code(const hotswap::fleet::rollout_record& r) {
  if (r.state == "done") return 0;
  if (r.state == "rolled_back") return 3;
  return r.state == "aborted" ? 4 : 1;
}

void print_status(const hotswap::fleet::controller::fleet_status& s, bool as_json) {
  using json = nlohmann::json;
  json out{{"hosts", json::array()}};
  if (s.fleet) out["fleet"] = {{"file", s.fleet->file}, {"sha256", s.fleet->sha256}};
  if (s.rollout) {
    const auto& r = *s.rollout;
    out["rollout"] = {{"id", r.id},       {"state", r.state},      {"wave", r.wave + 1},
                      {"waves", r.plan.size()}, {"file", r.target.file}, {"sha256", r.target.sha256},
                      {"reason", r.reason}, {"hosts_in_wave", r.plan[static_cast<std::size_t>(r.wave)]}};
  }
  for (const auto& [h, rep] : s.hosts)
    out["hosts"].push_back({{"host", h},         {"state", rep.state},     {"build", rep.build},
                            {"version", rep.serving_version}, {"sha256", rep.sha256}, {"desired_sha256", rep.desired_sha256},
                            {"requests", rep.requests}, {"errors", rep.errors}, {"error", rep.error}, {"address", rep.address}});
  if (as_json) {
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  if (s.fleet) std::printf("fleet version: %s (%.12s)\n", s.fleet->file.c_str(), s.fleet->sha256.c_str());
  else std::printf("fleet version: each host's start version\n");
  if (s.rollout) {
    const auto& r = *s.rollout;
    std::printf("rollout %s: %s, wave %d/%zu, %s (%.12s)%s%s\n", r.id.c_str(), r.state.c_str(), r.wave + 1, r.plan.size(),
                r.target.file.c_str(), r.target.sha256.c_str(), r.reason.empty() ? "" : ": ", r.reason.c_str());
  }
  std::printf("%-16s %-11s %-20s %7s %-12s %-12s %9s %7s\n", "HOST", "STATE", "BUILD", "VERSION", "SHA256", "DESIRED",
              "REQUESTS", "5XX");
  for (const auto& [h, rep] : s.hosts)
    std::printf("%-16s %-11s %-20s %7llu %-12.12s %-12.12s %9llu %7llu%s%s\n", h.c_str(), rep.state.c_str(), rep.build.c_str(),
                static_cast<unsigned long long>(rep.serving_version), rep.sha256.c_str(),
                rep.desired_sha256.empty() ? "-" : rep.desired_sha256.c_str(), static_cast<unsigned long long>(rep.requests),
                static_cast<unsigned long long>(rep.errors), rep.error.empty() ? "" : "  ", rep.error.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hotswap-fleet: carry a module release to a service's hosts in waves (etcd)"};
  app.require_subcommand(1);
  std::string etcd = "127.0.0.1:2379";
  int timeout_ms = 1000;
  app.add_option("--etcd", etcd, "etcd members, HOST:PORT[,HOST:PORT...]")->capture_default_str();
  app.add_option("--etcd-timeout-ms", timeout_ms, "deadline of one etcd call")->capture_default_str();
  std::int64_t lease_ttl = 2;
  app.add_option("--lease-ttl", lease_ttl, "seconds before a dead controller's successor may take over")->capture_default_str();

  std::string service, module, file, store, waves = "1,25%,100%";
  hotswap::fleet::rollout_options o;
  auto* rollout = app.add_subcommand("rollout", "start a rollout and drive it to its end");
  rollout->add_option("SERVICE", service)->required();
  rollout->add_option("MODULE", module)->required();
  rollout->add_option("FILE", file)->required()->check(CLI::ExistingFile);
  rollout->add_option("--waves", waves, "cumulative wave sizes: host counts or percentages")->capture_default_str();
  rollout->add_option("--store", store, "the artifact store's directory")->required();
  rollout->add_option("--strategy", o.strategy, "swap, or canary (each host's canary verdict gates)")->capture_default_str();
  rollout->add_option("--max-error-rate", o.max_error_rate, "5xx share allowed on the release per host")->capture_default_str();
  rollout->add_option("--min-requests", o.min_requests, "answers a host must give on the release before its wave passes")
      ->capture_default_str();
  rollout->add_option("--window", o.window_s, "seconds a host must stay healthy on the release")->capture_default_str();
  rollout->add_option("--wave-timeout", o.wave_timeout_s, "seconds before an unhealthy wave rolls the fleet back")
      ->capture_default_str();

  bool as_json = false;
  auto* status = app.add_subcommand("status", "each host's version and the rollout's position");
  status->add_option("SERVICE", service)->required();
  status->add_flag("--json", as_json, "JSON instead of a table");
  std::string reason = "aborted by an operator";
  auto* abort = app.add_subcommand("abort", "stop the rollout and return its hosts to the fleet's version");
  abort->add_option("SERVICE", service)->required();
  abort->add_option("--reason", reason)->capture_default_str();
  auto* resume = app.add_subcommand("resume", "take over a running rollout, or restart an aborted one at its wave");
  resume->add_option("SERVICE", service)->required();
  CLI11_PARSE(app, argc, argv);

  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  try {
    hotswap::fleet::controller c(hotswap::fleet::parse_endpoints(etcd), service, std::chrono::milliseconds(timeout_ms),
                                 lease_ttl);
    if (rollout->parsed()) {
      o.waves = split(waves);
      hotswap::fleet::directory_store s(store);
      return exit_code(c.rollout(module, file, s, o, stop));
    }
    if (resume->parsed()) return exit_code(c.resume(stop));
    if (abort->parsed()) {
      c.abort(reason);
      return 0;
    }
    print_status(c.status(), as_json);
    return 0;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "hotswap-fleet: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hotswap-fleet: %s\n", e.what());
    return 1;
  }
}
