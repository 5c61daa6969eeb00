#include <condition_variable>
#include <cstdio>
#include <hotswap/fleet/admin_client.hpp>
#include <hotswap/fleet/agent.hpp>
#include <hotswap/fleet/artifact_store.hpp>
#include <hotswap/fleet/records.hpp>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

namespace hotswap::fleet {

namespace fs = std::filesystem;
using json = nlohmann::json;
using steady = std::chrono::steady_clock;

namespace {

void log_line(const agent_config& c, const std::string& msg) {
  std::fprintf(stderr, "fleet-agent %s/%s: %s\n", c.service.c_str(), c.host.c_str(), msg.c_str());
}

/// What the host serves, from /admin/status and /metrics.
struct observed {
  std::uint64_t version = 0;
  std::string sha256, build, file;   ///< of the serving version; file: its name in the plugin dir
  std::string canary_phase;          ///< idle, shadow, stepping, promoted, rolled_back, aborted
  std::string canary_reason;
  std::uint64_t requests = 0, errors = 0;
};

std::optional<observed> observe(admin_client& admin, const std::string& module) {
  const admin_reply status = admin.get("/admin/status");
  if (status.status != 200) return std::nullopt;
  observed o;
  const json s = json::parse(status.body);
  bool found = false;
  for (const json& m : s.at("modules")) {
    if (m.at("name") != module) continue;
    found = true;
    o.version = m.at("serving_version").get<std::uint64_t>();
    for (const json& v : m.at("versions"))
      if (v.at("version").get<std::uint64_t>() == o.version) {
        o.sha256 = v.value("sha256", "");
        o.build = v.value("build", "");
        o.file = fs::path(v.value("file", "")).filename().string();
      }
    const json canary = m.value("canary", json::object());
    o.canary_phase = canary.value("phase", "idle");
    o.canary_reason = canary.value("verdict", json::object()).value("reason", "");
  }
  if (!found) throw std::runtime_error("the host has no module '" + module + "'");
  // hotswap_http_requests_total{route="/",module="M",version="V",build="B",class="5xx"} N
  const admin_reply metrics = admin.get("/metrics");
  std::istringstream lines(metrics.body);
  const std::string module_label = "module=\"" + module + "\"";
  const std::string version_label = "version=\"" + std::to_string(o.version) + "\"";
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("hotswap_http_requests_total{", 0) != 0) continue;
    if (line.find(module_label) == std::string::npos || line.find(version_label) == std::string::npos) continue;
    const std::uint64_t n = std::stoull(line.substr(line.rfind(' ') + 1));
    o.requests += n;
    if (line.find("class=\"5xx\"") != std::string::npos) o.errors += n;
  }
  return o;
}

/// A refusal that passes (409: another swap runs, old versions still drain): try again next tick.
struct busy : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class agent {
 public:
  agent(const agent_config& c, const std::atomic<bool>& stop)
      : c_(c), stop_(stop), keys_{c.service}, etcd_(c.etcd, c.etcd_timeout), admin_(c.admin_socket), store_(c.store) {
    check_name("service", c.service);
    check_name("host", c.host);
  }

  void run() {
    // Two exact keys, not the desired/ prefix: with a prefix every agent would receive every
    // other host's key too, N^2 events per rollout; this way each event reaches its host (the
    // fleet key: every host, once per rollout).
    std::thread own([this] { watch_loop(keys_.desired_host(c_.host)); });
    std::thread fleet([this] { watch_loop(keys_.desired()); });
    while (!stop_.load(std::memory_order_relaxed)) {  // a flag; no partner
      try {
        tick();
      } catch (const std::exception& e) {
        log_line(c_, std::string("tick failed: ") + e.what());
      }
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, c_.tick, [this] { return woken_ || stop_.load(std::memory_order_relaxed); });
      woken_ = false;
    }
    own.join();
    fleet.join();
    if (lease_ != 0) {
      try {
        etcd_.lease_revoke(lease_);
      } catch (const etcd_error&) {
      }
    }
  }

 private:
  void watch_loop(const std::string& key) {
    while (!stop_.load(std::memory_order_relaxed)) {  // a flag; no partner
      try {
        etcd_.watch(key, false, 0, [this](const std::vector<watch_event>&, std::int64_t) { poke(); },
                    [this] { return !stop_.load(std::memory_order_relaxed); });  // a flag; no partner
      } catch (const etcd_error&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the tick keeps converging meanwhile
      }
    }
    poke();
  }

  void poke() {
    std::lock_guard lock(mutex_);
    woken_ = true;
    wake_.notify_one();
  }

  // Keeps the lease alive; false when etcd cannot be reached.
  bool hold_lease() {
    try {
      const auto now = steady::now();
      if (lease_ != 0 && now - renewed_ >= std::chrono::milliseconds(c_.lease_ttl_s * 1000 / 3)) {
        if (etcd_.lease_keepalive(lease_) == 0) {
          log_line(c_, "lease expired; registering again");
          lease_ = 0;
        } else {
          renewed_ = now;
        }
      }
      if (lease_ == 0) {
        lease_ = etcd_.lease_grant(c_.lease_ttl_s);
        renewed_ = now;
        last_written_.reset();  // the key went with the old lease
      }
      if (!connected_) log_line(c_, "etcd reachable");
      connected_ = true;
      return true;
    } catch (const etcd_error& e) {
      if (connected_) log_line(c_, std::string("etcd unreachable, the host keeps serving: ") + e.what());
      connected_ = false;
      return false;
    }
  }

  void tick() {
    std::optional<observed> o;
    host_report r;
    r.host = c_.host;
    r.address = c_.address;
    r.module = c_.module;
    try {
      o = observe(admin_, c_.module);
    } catch (const std::exception& e) {
      r.state = "unreachable";
      r.error = e.what();
    }
    if (o && !baseline_sha_) {
      baseline_sha_ = o->sha256;
      baseline_file_ = o->file;
      log_line(c_, "started on " + o->build + " (" + o->sha256.substr(0, 12) + ")");
    }
    if (!hold_lease()) return;  // partitioned: touch nothing, the host serves what it serves
    // Two point reads, not the prefix: a prefix read grows with the fleet during a rollout.
    const range_result own = etcd_.get(keys_.desired_host(c_.host));
    const range_result all = etcd_.get(keys_.desired());
    const key_value* mine = own.kvs.empty() ? nullptr : &own.kvs[0];
    const key_value* fleet = all.kvs.empty() ? nullptr : &all.kvs[0];
    const key_value* chosen = mine ? mine : fleet;
    std::optional<desired_state> want;
    if (chosen) want = decode_desired(chosen->value, chosen->key);
    if (o) converge(*o, want, chosen ? chosen->mod_revision : 0, mine != nullptr, r);
    write_report(r, mine != nullptr);
  }

  void converge(observed& o, const std::optional<desired_state>& want, std::int64_t revision, bool rollout_key,
                host_report& r) {
    r.serving_version = o.version;
    r.sha256 = o.sha256;
    r.build = o.build;
    r.requests = o.requests;
    r.errors = o.errors;
    const std::string target = want ? want->sha256 : baseline_sha_.value_or("");
    r.desired_sha256 = want ? want->sha256 : "";
    const bool canary_running = o.canary_phase == "shadow" || o.canary_phase == "stepping";
    if (canary_running && canary_for_ == target) {
      r.state = "canary";
      return;
    }
    if (canary_running) {  // a canary for something no longer wanted (a rollback): stop it
      admin_.post("/admin/canary/abort", json{{"module", c_.module}}.dump());
      log_line(c_, "aborted the canary of " + canary_for_.substr(0, 12));
      canary_for_.clear();
      r.state = "swapping";
      return;
    }
    if (!canary_for_.empty() && canary_for_ == target && o.sha256 != target &&
        (o.canary_phase == "rolled_back" || o.canary_phase == "aborted")) {
      failed_ = {target, revision, "canary " + o.canary_phase + ": " + o.canary_reason};
      canary_for_.clear();
    }
    if (o.sha256 == target || target.empty()) {
      r.state = want ? "converged" : "idle";
      return;
    }
    if (failed_.sha == target && failed_.revision == revision) {
      r.state = "failed";
      r.error = failed_.error;
      return;
    }
    try {
      install(*want_or_baseline(want, target), rollout_key, o);
      r.state = canary_for_.empty() ? "swapping" : "canary";
    } catch (const busy& e) {
      log_line(c_, e.what());
      r.state = "swapping";
    } catch (const std::exception& e) {
      failed_ = {target, revision, e.what()};
      log_line(c_, "installing " + target.substr(0, 12) + " failed: " + e.what());
      r.state = "failed";
      r.error = e.what();
    }
  }

  std::optional<desired_state> want_or_baseline(const std::optional<desired_state>& want, const std::string& target) {
    if (want) return want;
    return desired_state{c_.module, baseline_file_, target, "swap", ""};
  }

  // Puts the artifact into the plugin directory (hash checked) and asks the host to load it.
  void install(const desired_state& d, bool rollout_key, const observed& o) {
    if (d.module != c_.module)
      throw std::runtime_error("desired module '" + d.module + "' is not this agent's module '" + c_.module + "'");
    std::string file = d.file;
    if (d.sha256 != baseline_sha_) {
      file = c_.module + "-fleet-" + d.sha256.substr(0, 16) + ".so";
      const fs::path dest = c_.plugin_dir / file;
      if (!fs::exists(dest) || sha256_file(dest) != d.sha256) store_.fetch(d.sha256, dest);
    } else if (sha256_file(c_.plugin_dir / file) != d.sha256) {
      throw std::runtime_error("the start version's file " + file + " changed on disk");
    }
    // A canary only for a rollout's trial; catching up with the fleet's settled version is a swap.
    const bool canary = d.strategy == "canary" && rollout_key;
    const json body{{"module", c_.module}, {"file", file}, {"expected_version", o.version}};
    const admin_reply res = admin_.post(canary ? "/admin/canary" : "/admin/swap", body.dump());
    if (res.status == 409) throw busy("the host is busy: " + res.body);  // another swap, or draining: next tick
    if (res.status != 200) throw std::runtime_error("admin answered " + std::to_string(res.status) + ": " + res.body);
    if (canary) canary_for_ = d.sha256;
    log_line(c_, std::string(canary ? "canary of " : "swapped to ") + file + " (" + d.sha256.substr(0, 12) + ")");
  }

  // A change of state is written at once; new counts at most every 500 ms while a rollout
  // judges this host (its own key exists), else every 10 s: each put is a raft entry, and a
  // busy fleet would otherwise write twice a second per host with no rollout running.
  void write_report(host_report& r, bool judged) {
    const auto counts_every = judged ? std::chrono::milliseconds(500) : std::chrono::milliseconds(10000);
    const auto now = steady::now();
    if (last_written_) {
      host_report with_new_counts = *last_written_;
      with_new_counts.requests = r.requests;
      with_new_counts.errors = r.errors;
      const bool state_changed = with_new_counts != r;
      if (!state_changed && (*last_written_ == r || now - written_at_ < counts_every)) return;
    }
    host_report stamped = r;
    stamped.updated_ms = wall_ms();
    etcd_.put(keys_.host(c_.host), encode(stamped), lease_);
    r.updated_ms = 0;
    last_written_ = r;
    written_at_ = now;
  }

  struct failure {
    std::string sha;
    std::int64_t revision = 0;
    std::string error;
  };

  const agent_config& c_;
  const std::atomic<bool>& stop_;
  fleet_keys keys_;
  etcd_client etcd_;
  admin_client admin_;
  directory_store store_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool woken_ = false;                     // guarded by mutex_
  std::int64_t lease_ = 0;                 // the rest: the tick thread's alone
  steady::time_point renewed_{};
  bool connected_ = true;
  std::optional<std::string> baseline_sha_;
  std::string baseline_file_;
  std::string canary_for_;                 // the target whose canary this agent started
  failure failed_;                         // the last target that failed, for its desired revision
  std::optional<host_report> last_written_;
  steady::time_point written_at_{};
};

}  // namespace

void run_agent(const agent_config& config, const std::atomic<bool>& stop) { agent(config, stop).run(); }

}  // namespace hotswap::fleet
