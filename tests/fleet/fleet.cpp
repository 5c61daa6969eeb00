#include "fleet.hpp"

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <hotswap/fleet/etcd_client.hpp>
#include <hotswap/fleet/records.hpp>
#include <hotswap/http/probe_client.hpp>
#include <nlohmann/json.hpp>
#include <random>

#include "../http/settings_text.hpp"

namespace hotswap::fleet::testing {

using namespace std::chrono_literals;
using http::probe_client;
using http::probe_error;
using http::probe_reply;

load_client::load_client(std::vector<std::uint16_t> ports, std::string bad_build, double max_seconds)
    : ports_(std::move(ports)), down_(ports_.size(), false), bad_(std::move(bad_build)), timeline_(ports_.size()) {
  thread_ = std::thread([this, max_seconds] { run(max_seconds); });
}

load_client::~load_client() { stop(); }

void load_client::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void load_client::set_down(std::size_t host, bool down) {
  std::lock_guard lock(mutex_);
  down_[host] = down;
}

void load_client::set_port(std::size_t host, std::uint16_t port) {
  std::lock_guard lock(mutex_);
  ports_[host] = port;
}

load_counts load_client::counts() {
  std::lock_guard lock(mutex_);
  return counts_;
}

std::vector<std::vector<std::pair<double, std::string>>> load_client::timeline() {
  std::lock_guard lock(mutex_);
  return timeline_;
}

double load_client::ms_since_start() const {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
}

void load_client::run(double max_seconds) {
  const auto start = start_;
  std::vector<std::unique_ptr<probe_client>> clients(ports_.size());
  std::vector<std::uint16_t> connected_to(ports_.size(), 0);
  const std::string request = probe_client::get("/");
  for (std::size_t i = 0;; i = (i + 1) % ports_.size()) {
    std::uint16_t port;
    {
      std::lock_guard lock(mutex_);
      if (stop_ || std::chrono::steady_clock::now() - start > std::chrono::duration<double>(max_seconds)) return;
      if (down_[i]) {
        clients[i].reset();
        continue;
      }
      port = ports_[i];
    }
    if (!clients[i] || connected_to[i] != port) {
      clients[i] = std::make_unique<probe_client>(port, 2s);
      connected_to[i] = port;
    }
    probe_reply reply;
    const probe_error e = clients[i]->exchange(request, reply);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::lock_guard lock(mutex_);
    if (e != probe_error::none) {
      clients[i].reset();
      ++(down_[i] ? counts_.errors_on_down_hosts : counts_.socket_errors);
      continue;
    }
    const std::string build = reply.header("x-hotswap-build");
    if (reply.status / 100 == 2) {
      ++counts_.ok;
    } else {
      ++counts_.non_2xx;
      if (!bad_.empty() && build == bad_) ++counts_.non_2xx_from_bad;
    }
    auto& t = timeline_[i];
    if (t.empty() || t.back().second != build) t.emplace_back(ms, build);
  }
}

void fleet_test::SetUp() {
  if (::access(HOTSWAP_ETCD, X_OK) != 0) GTEST_SKIP() << HOTSWAP_ETCD << " is missing (scripts/setup.sh installs etcd-server)";
  std::random_device rd;
  dir_ = fs::temp_directory_path() / ("hotswap-fleet-test-" + std::to_string(rd() % 100000) + "-" + std::to_string(::getpid()));
  fs::create_directories(dir_ / "etcd");
  fs::permissions(dir_, fs::perms::owner_all);
  store_ = dir_ / "store";
  etcd_ = std::make_unique<etcd_cluster>(dir_ / "etcd");
  // etcd first: its ports are chosen here, and must be bound before the servers take ephemeral ones.
  ASSERT_TRUE(etcd_->wait_ready(30s)) << "etcd did not start; see " << dir_ / "etcd";
  hosts_.resize(hosts);
  for (std::size_t i = 0; i < hosts; ++i) start_httpd(i);  // all at once
  for (std::size_t i = 0; i < hosts; ++i) {
    wait_httpd(i);
    if (HasFatalFailure()) return;
    start_agent(i, false);
  }
  ASSERT_TRUE(eventually([&] { return reported_builds().size() == hosts; }, 30s)) << "agents did not register";
}

void fleet_test::TearDown() {
  if (load_) load_->stop();
  for (auto& h : hosts_) {
    if (h.agent) h.agent->signal(SIGTERM);
    if (h.agent) h.agent->wait(5s);
    h.agent.reset();
    h.httpd.reset();
    h.link.reset();
  }
  etcd_.reset();
  std::error_code ignored;
  if (!HasFailure()) fs::remove_all(dir_, ignored);
  else std::fprintf(stderr, "fleet test: logs kept in %s\n", dir_.c_str());
}

void fleet_test::start_host(std::size_t i, bool through_relay) {
  start_httpd(i);
  wait_httpd(i);
  start_agent(i, through_relay);
}

void fleet_test::start_httpd(std::size_t i) {
  host_process& h = hosts_[i];
  h.name = "h" + std::to_string(i);
  h.dir = dir_ / h.name;
  const fs::path plugins = h.dir / "plugins";
  if (!fs::exists(plugins)) {
    fs::create_directories(plugins);
    fs::permissions(h.dir, fs::perms::owner_all);
    fs::permissions(plugins, fs::perms::owner_all);
    fs::copy_file(fs::path(HOTSWAP_HTTP_APP_DIR) / "greeting-1.so", plugins / "greeting-1.so");
    fs::permissions(plugins / "greeting-1.so", fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                                   fs::perms::others_read);
    std::ofstream(h.dir / "admin.token") << "fleet-test-token-" << i << "\n";
    fs::permissions(h.dir / "admin.token", fs::perms::owner_read | fs::perms::owner_write);
  }
  // Port 0: the server picks its ports and names them in its log. A port chosen here and bound
  // later can be taken meanwhile by another server's ephemeral admin port (seen under ASan).
  h.port = 0;
  fs::remove(h.dir / "httpd.log");  // the "serving on" line read below must be this run's
  const fs::path settings = h.dir / "httpd.toml";
  std::ofstream(settings) << http::testing::httpd_settings_text(
      {plugins, h.dir / "shadow", h.dir / "admin.token"},
      "admin.socket = " + http::testing::toml_string((h.dir / "admin.sock").string()) +
          "\nadmin.uids = [" + std::to_string(::getuid()) + "]\n");
  h.httpd = std::make_unique<child>(std::vector<std::string>{HOTSWAP_HTTPD, "--config", settings.string()},
                                    h.dir / "httpd.log");
}

void fleet_test::wait_httpd(std::size_t i) {
  host_process& h = hosts_[i];
  ASSERT_TRUE(eventually(
      [&] {
        if (h.port == 0) {  // "hotswap-httpd: serving on 127.0.0.1:PORT, admin on port N"
          const std::string log = h.httpd->output();
          const auto at = log.find("serving on 127.0.0.1:");
          if (at == std::string::npos) return false;
          h.port = static_cast<std::uint16_t>(std::stoi(log.substr(at + 21)));
        }
        probe_client c(h.port, 1s);
        probe_reply r;
        return c.exchange(probe_client::get("/"), r) == probe_error::none && r.status == 200;
      },
      30s))
      << h.name << " did not serve: " << h.httpd->output();
}

void fleet_test::start_agent(std::size_t i, bool through_relay) {
  host_process& h = hosts_[i];
  std::string endpoints = etcd_->endpoints();
  if (through_relay) {
    h.link = std::make_unique<relay>(etcd_->client_port(1));
    endpoints = "127.0.0.1:" + std::to_string(h.link->port());
  }
  h.agent = std::make_unique<child>(
      std::vector<std::string>{HOTSWAP_FLEET_AGENT, "--etcd", endpoints, "--service", "web", "--host", h.name,
                               "--module", "greeting", "--address", "127.0.0.1:" + std::to_string(h.port),
                               "--admin-socket", (h.dir / "admin.sock").string(), "--plugin-dir",
                               (h.dir / "plugins").string(), "--store", store_.string(), "--lease-ttl", "2",
                               "--tick-ms", "100"},
      h.dir / "agent.log");
  if (load_) {
    load_->set_port(i, h.port);
    load_->set_down(i, false);
  }
}

void fleet_test::kill_host(std::size_t i) {
  if (load_) load_->set_down(i, true);
  hosts_[i].agent.reset();  // SIGKILL: no goodbye, its lease must expire
  hosts_[i].httpd.reset();
}

std::unique_ptr<child> fleet_test::fleet_command(std::vector<std::string> args, const std::string& log_name) {
  args.insert(args.begin(), {HOTSWAP_FLEET, "--etcd", etcd_->endpoints(), "--lease-ttl", "2"});
  return std::make_unique<child>(std::move(args), dir_ / (log_name + ".log"));
}

std::unique_ptr<child> fleet_test::rollout(const std::string& file, double window_s, const std::string& log_name) {
  return fleet_command({"rollout", "web", "greeting", (fs::path(HOTSWAP_HTTP_APP_DIR) / file).string(), "--store",
                        store_.string(), "--waves", "1,25%,100%", "--window", std::to_string(window_s), "--min-requests", "20",
                        "--max-error-rate", "0.01", "--wave-timeout", "20"},
                       log_name);
}

std::map<std::string, std::string> fleet_test::reported_builds() {
  std::map<std::string, std::string> out;
  try {
    etcd_client c(parse_endpoints(etcd_->endpoints()), 1s);
    const fleet_keys keys{"web"};
    for (const key_value& kv : c.get_prefix(keys.hosts()).kvs) {
      const host_report r = decode_report(kv.value, kv.key);
      if (r.state != "unreachable") out[r.host] = r.build;
    }
  } catch (const etcd_error&) {
  }
  return out;
}

std::string fleet_test::served_build(std::size_t i) {
  probe_client c(hosts_[i].port, 2s);
  probe_reply r;
  if (c.exchange(probe_client::get("/"), r) != probe_error::none) return "(down)";
  return r.header("x-hotswap-build");
}

std::pair<std::string, int> fleet_test::rollout_position() {
  try {
    etcd_client c(parse_endpoints(etcd_->endpoints()), 1s);
    const fleet_keys keys{"web"};
    const range_result r = c.get(keys.rollout());
    if (r.kvs.empty()) return {"", 0};
    const rollout_record rec = decode_rollout(r.kvs[0].value, r.kvs[0].key);
    return {rec.state, rec.wave + 1};
  } catch (const std::exception&) {
    return {"", 0};
  }
}

void fleet_test::start_load(const std::string& bad_build) {
  std::vector<std::uint16_t> ports;
  for (const auto& h : hosts_) ports.push_back(h.port);
  load_ = std::make_unique<load_client>(ports, bad_build);
}

void fleet_test::expect_clean_load(const std::string& bad_build) {
  load_->stop();
  const load_counts c = load_->counts();
  EXPECT_GT(c.ok, 100u) << "the client barely ran";
  EXPECT_EQ(c.socket_errors, 0u) << "socket errors on hosts that were up";
  EXPECT_EQ(c.non_2xx - c.non_2xx_from_bad, 0u) << "non-2xx answers outside " << (bad_build.empty() ? "(none)" : bad_build);
}

void fleet_test::write_results(const std::string& scenario, double rollout_at_ms, double seconds,
                               const std::string& controller_log) {
  const char* out = std::getenv("HOTSWAP_FLEET_RESULTS");
  if (out == nullptr || !load_) return;
  const load_counts c = load_->counts();
  nlohmann::json j{{"scenario", scenario},
                   {"rollout_at_ms", rollout_at_ms},
                   {"end_ms", load_->ms_since_start()},
                   {"seconds", seconds},
                   {"controller_log", controller_log},
                   {"hosts", hosts},
                   {"ok", c.ok},
                   {"non_2xx", c.non_2xx},
                   {"non_2xx_from_bad", c.non_2xx_from_bad},
                   {"socket_errors", c.socket_errors},
                   {"errors_on_down_hosts", c.errors_on_down_hosts},
                   {"timeline", load_->timeline()}};
  std::ofstream(fs::path(out) / (scenario + ".json")) << j.dump(1) << "\n";
}

}  // namespace hotswap::fleet::testing
