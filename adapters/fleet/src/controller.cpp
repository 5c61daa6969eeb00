#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <hotswap/fleet/controller.hpp>
#include <stdexcept>
#include <thread>

namespace hotswap::fleet {

using steady = std::chrono::steady_clock;

namespace {
constexpr std::size_t txn_chunk = 100;  // host keys per txn, under etcd's default --max-txn-ops of 128
}  // namespace

std::vector<std::vector<std::string>> plan_waves(const std::vector<std::string>& waves, std::vector<std::string> hosts) {
  if (waves.empty()) throw std::invalid_argument("--waves: no wave given");
  std::sort(hosts.begin(), hosts.end());
  std::vector<std::vector<std::string>> plan;
  std::size_t previous = 0;
  for (const std::string& w : waves) {
    std::size_t count = 0;
    try {
      std::size_t used = 0;
      if (!w.empty() && w.back() == '%') {
        const double pct = std::stod(w.substr(0, w.size() - 1), &used);
        if (used != w.size() - 1 || pct <= 0 || pct > 100) throw std::invalid_argument("");
        count = static_cast<std::size_t>(std::ceil(pct / 100.0 * static_cast<double>(hosts.size()) - 1e-9));
      } else {
        const long n = std::stol(w, &used);
        if (used != w.size() || n <= 0) throw std::invalid_argument("");
        count = static_cast<std::size_t>(n);
      }
    } catch (const std::exception&) {
      throw std::invalid_argument("--waves: '" + w + "' is neither a host count (1) nor a percentage (25%)");
    }
    count = std::clamp(count, std::max<std::size_t>(previous, 1), hosts.size());
    if (count == previous) continue;  // a wave that adds no host
    plan.emplace_back(hosts.begin(), hosts.begin() + static_cast<std::ptrdiff_t>(count));
    previous = count;
  }
  return plan;
}

controller::controller(std::vector<etcd_endpoint> etcd, std::string service, std::chrono::milliseconds etcd_timeout,
                       std::int64_t lease_ttl_s)
    : etcd_(std::move(etcd), etcd_timeout), keys_{std::move(service)}, lease_ttl_s_(lease_ttl_s) {
  check_name("service", keys_.service);
  log = [](const std::string& line) { std::fprintf(stderr, "hotswap-fleet: %s\n", line.c_str()); };
}

std::map<std::string, host_report> controller::reports() {
  std::map<std::string, host_report> out;
  for (const key_value& kv : etcd_.get_prefix(keys_.hosts()).kvs) {
    host_report r = decode_report(kv.value, kv.key);
    out[r.host] = std::move(r);
  }
  return out;
}

controller::fleet_status controller::status() {
  fleet_status s;
  s.hosts = reports();
  const range_result rr = etcd_.get(keys_.rollout());
  if (!rr.kvs.empty()) s.rollout = decode_rollout(rr.kvs[0].value, rr.kvs[0].key);
  const range_result fr = etcd_.get(keys_.desired());
  if (!fr.kvs.empty()) s.fleet = decode_desired(fr.kvs[0].value, fr.kvs[0].key);
  return s;
}

// The controller key, under our lease: whoever holds it drives the rollout.
void controller::acquire(const std::atomic<bool>& stop) {
  bool told = false;
  while (!stop.load(std::memory_order_relaxed)) {  // a flag; no partner
    try {
      if (lease_ == 0) {
        lease_ = etcd_.lease_grant(lease_ttl_s_);
        renewed_ = steady::now();
      }
      const std::string me = "pid " + std::to_string(::getpid()) + " lease " + std::to_string(lease_);
      const txn_result t = etcd_.txn({{keys_.controller(), compare::target::create, 0}},
                                     {operation::put(keys_.controller(), me, lease_)});
      if (t.succeeded) {
        owner_revision_ = t.revision;
        log("controlling " + keys_.service + " (" + me + ")");
        return;
      }
      if (!told) log("another controller drives " + keys_.service + "; waiting for its lease to end");
      told = true;
      keep_lease();
    } catch (const etcd_error& e) {
      log(std::string("etcd: ") + e.what());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  throw std::runtime_error("stopped before taking control");
}

void controller::release() {
  if (lease_ == 0) return;
  try {
    etcd_.lease_revoke(lease_);  // removes the controller key with it
  } catch (const etcd_error&) {
  }
  lease_ = 0;
  owner_revision_ = 0;
}

bool controller::keep_lease() {
  if (lease_ == 0) return false;
  if (steady::now() - renewed_ < std::chrono::milliseconds(lease_ttl_s_ * 1000 / 3)) return true;
  if (etcd_.lease_keepalive(lease_) == 0) {
    lease_ = 0;
    owner_revision_ = 0;
    return false;
  }
  renewed_ = steady::now();
  return true;
}

rollout_record controller::rollout(const std::string& module, const std::filesystem::path& file, artifact_store& store,
                                   const rollout_options& o, const std::atomic<bool>& stop) {
  check_name("module", module);
  if (o.strategy != "swap" && o.strategy != "canary") throw std::invalid_argument("--strategy must be swap or canary");
  rollout_record r;
  r.target = {module, file.filename().string(), store.put(file), o.strategy, ""};
  acquire(stop);
  try {
    const range_result current = etcd_.get(keys_.rollout());
    std::int64_t revision = 0;
    if (!current.kvs.empty()) {
      const rollout_record old = decode_rollout(current.kvs[0].value, current.kvs[0].key);
      if (old.state == "running")
        throw std::runtime_error("rollout " + old.id + " of " + keys_.service + " is running: resume or abort it first");
      revision = current.kvs[0].mod_revision;
    }
    std::vector<std::string> live;
    for (const auto& [host, rep] : reports())
      if (rep.state != "unreachable") live.push_back(host);
    if (live.empty()) throw std::runtime_error("no live host registered for " + keys_.service);
    const range_result fleet = etcd_.get(keys_.desired());
    if (!fleet.kvs.empty()) r.previous = decode_desired(fleet.kvs[0].value, fleet.kvs[0].key);
    r.id = std::to_string(wall_ms()) + "-" + r.target.sha256.substr(0, 8);
    r.target.rollout = r.id;
    r.waves = o.waves;
    r.plan = plan_waves(o.waves, live);
    r.state = "running";
    r.started_ms = r.wave_started_ms = wall_ms();
    r.max_error_rate = o.max_error_rate;
    r.min_requests = o.min_requests;
    r.window_s = o.window_s;
    r.wave_timeout_s = o.wave_timeout_s;
    const compare unchanged = revision == 0 ? compare{keys_.rollout(), compare::target::create, 0}
                                            : compare{keys_.rollout(), compare::target::mod, revision};
    if (!etcd_.txn({unchanged, {keys_.controller(), compare::target::mod, owner_revision_}},
                   {operation::put(keys_.rollout(), encode(r))})
             .succeeded)
      throw std::runtime_error("another rollout of " + keys_.service + " started meanwhile");
    log("rollout " + r.id + ": " + r.target.file + " (" + r.target.sha256.substr(0, 12) + ") to " +
        std::to_string(live.size()) + " hosts in " + std::to_string(r.plan.size()) + " waves");
    rollout_record end = drive(stop);
    release();
    return end;
  } catch (...) {
    release();
    throw;
  }
}

rollout_record controller::resume(const std::atomic<bool>& stop) {
  acquire(stop);
  try {
    const range_result current = etcd_.get(keys_.rollout());
    if (current.kvs.empty()) throw std::runtime_error("no rollout of " + keys_.service + " to resume");
    rollout_record r = decode_rollout(current.kvs[0].value, current.kvs[0].key);
    if (r.state == "aborted" || r.state == "rolled_back") {
      r.state = "running";
      r.reason.clear();
      r.written = -1;  // write the current wave's host keys again
      r.wave_started_ms = wall_ms();
      if (!etcd_.txn({{keys_.rollout(), compare::target::mod, current.kvs[0].mod_revision},
                      {keys_.controller(), compare::target::mod, owner_revision_}},
                     {operation::put(keys_.rollout(), encode(r))})
               .succeeded)
        throw std::runtime_error("the rollout changed while resuming; try again");
      log("restarting rollout " + r.id + " at wave " + std::to_string(r.wave + 1));
    } else {
      log("resuming rollout " + r.id + " (" + r.state + ") at wave " + std::to_string(r.wave + 1));
    }
    rollout_record end = drive(stop);
    release();
    return end;
  } catch (...) {
    release();
    throw;
  }
}

rollout_record controller::abort(const std::string& reason) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    const range_result current = etcd_.get(keys_.rollout());
    if (current.kvs.empty()) throw std::runtime_error("no rollout of " + keys_.service);
    rollout_record r = decode_rollout(current.kvs[0].value, current.kvs[0].key);
    if (r.state != "running") return r;
    r.state = "aborted";
    r.reason = reason;
    r.finished_ms = wall_ms();
    // No compare on the controller key: an operator's abort overrides whoever drives.
    if (etcd_.txn({{keys_.rollout(), compare::target::mod, current.kvs[0].mod_revision}},
                  {operation::remove_prefix(keys_.desired_hosts()), operation::put(keys_.rollout(), encode(r))})
            .succeeded) {
      log("aborted rollout " + r.id + ": " + reason);
      return r;
    }
  }
  throw std::runtime_error("the rollout kept changing; abort not applied");
}

controller::verdict controller::judge(const rollout_record& r, const std::map<std::string, host_report>& hosts,
                                      std::string& why) {
  std::size_t healthy = 0, waiting = 0;
  const auto now = steady::now();
  const auto window = std::chrono::duration<double>(r.window_s);
  for (const std::string& h : r.plan[static_cast<std::size_t>(r.wave)]) {
    const auto it = hosts.find(h);
    if (it == hosts.end() || it->second.state == "unreachable") continue;  // gone: the wave proceeds without it
    const host_report& rep = it->second;
    if (rep.desired_sha256 != r.target.sha256) {
      ++waiting;  // has not seen its key yet
      continue;
    }
    if (rep.state == "failed") {
      why = h + " failed to install: " + rep.error;
      return verdict::fail;
    }
    if (rep.state != "converged" || rep.sha256 != r.target.sha256) {
      ++waiting;
      continue;
    }
    const double rate = rep.requests == 0 ? 0 : static_cast<double>(rep.errors) / static_cast<double>(rep.requests);
    if (rep.requests >= std::max<std::uint64_t>(r.min_requests, 10) && rate > r.max_error_rate) {
      why = h + " error rate " + std::to_string(rate) + " over " + std::to_string(rep.requests) + " answers exceeds " +
            std::to_string(r.max_error_rate);
      return verdict::fail;
    }
    const auto seen = first_seen_.try_emplace(r.id + "/" + h + "/" + std::to_string(rep.serving_version), now).first->second;
    if (now - seen < window || rep.requests < r.min_requests) {
      ++waiting;
      continue;
    }
    ++healthy;
  }
  if (waiting == 0 && healthy > 0) return verdict::pass;
  if (static_cast<double>(wall_ms() - r.wave_started_ms) / 1000.0 > r.wave_timeout_s) {
    why = "wave " + std::to_string(r.wave + 1) + " not healthy after " + std::to_string(r.wave_timeout_s) + " s (" +
          std::to_string(waiting) + " hosts pending, " + std::to_string(healthy) + " healthy)";
    return verdict::fail;
  }
  return verdict::pending;
}

rollout_record controller::drive(const std::atomic<bool>& stop) {
  while (!stop.load(std::memory_order_relaxed)) {  // a flag; no partner
    try {
      if (!keep_lease()) {
        log("lost the controller lease; taking control again");
        acquire(stop);
      }
      const range_result current = etcd_.get(keys_.rollout());
      if (current.kvs.empty()) throw std::runtime_error("the rollout key of " + keys_.service + " vanished");
      rollout_record r = decode_rollout(current.kvs[0].value, current.kvs[0].key);
      if (r.state != "running") {
        log("rollout " + r.id + " is " + r.state + (r.reason.empty() ? "" : ": " + r.reason));
        return r;
      }
      const std::vector<compare> ours{{keys_.rollout(), compare::target::mod, current.kvs[0].mod_revision},
                                      {keys_.controller(), compare::target::mod, owner_revision_}};
      const auto& hosts_now = r.plan[static_cast<std::size_t>(r.wave)];
      if (r.written < r.wave) {
        // etcd caps a txn's operations (--max-txn-ops, 128 by default): the host keys go in
        // chunks, each guarded like the last one, which alone moves the rollout key. An abort
        // or another controller in between fails the remaining chunks; the host keys already
        // written are what the abort or rollback deletes.
        bool all = true;
        for (std::size_t at = 0; all && at < hosts_now.size(); at += txn_chunk) {
          std::vector<operation> ops;
          for (std::size_t i = at; i < std::min(hosts_now.size(), at + txn_chunk); ++i)
            ops.push_back(operation::put(keys_.desired_host(hosts_now[i]), encode(r.target)));
          all = etcd_.txn(ours, ops).succeeded;
        }
        r.written = r.wave;
        r.wave_started_ms = wall_ms();
        if (all && etcd_.txn(ours, {operation::put(keys_.rollout(), encode(r))}).succeeded)
          log("wave " + std::to_string(r.wave + 1) + "/" + std::to_string(r.plan.size()) + ": " +
              std::to_string(hosts_now.size()) + " hosts");
        continue;
      }
      std::string why;
      const verdict v = judge(r, reports(), why);
      if (v == verdict::pending) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      std::vector<operation> ops;
      if (v == verdict::fail) {
        r.state = "rolled_back";
        r.reason = why;
        r.finished_ms = wall_ms();
        ops = {operation::remove_prefix(keys_.desired_hosts()), operation::put(keys_.rollout(), encode(r))};
      } else if (r.wave + 1 < static_cast<int>(r.plan.size())) {
        log("wave " + std::to_string(r.wave + 1) + " healthy");
        ++r.wave;
        ops = {operation::put(keys_.rollout(), encode(r))};
      } else {
        r.state = "done";
        r.finished_ms = wall_ms();
        ops = {operation::put(keys_.desired(), encode(r.target)), operation::remove_prefix(keys_.desired_hosts()),
               operation::put(keys_.rollout(), encode(r))};
      }
      if (!etcd_.txn(ours, ops).succeeded) continue;  // someone else moved it: read again
      if (r.state == "rolled_back") {
        log("rolling back: " + why);
        wait_rolled_back(r, stop);
      } else if (r.state == "done") {
        log("done in " + std::to_string(static_cast<double>(r.finished_ms - r.started_ms) / 1000.0) + " s");
      }
      if (r.state != "running") return r;
    } catch (const etcd_error& e) {
      log(std::string("etcd: ") + e.what());
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  throw std::runtime_error("stopped while driving the rollout");
}

// Waits (up to the wave timeout) until no live host serves the rolled-back release.
void controller::wait_rolled_back(const rollout_record& r, const std::atomic<bool>& stop) {
  const auto until = steady::now() + std::chrono::duration<double>(r.wave_timeout_s);
  while (!stop.load(std::memory_order_relaxed) && steady::now() < until) {  // a flag; no partner
    std::size_t still = 0;
    try {
      for (const auto& [h, rep] : reports())
        if (rep.state != "unreachable" && rep.sha256 == r.target.sha256) ++still;
    } catch (const etcd_error&) {
      ++still;
    }
    if (still == 0) {
      log("fleet back on its version " + std::to_string(static_cast<double>(wall_ms() - r.finished_ms) / 1000.0) +
          " s after the rollback");
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  log("some hosts still serve the rolled-back release");
}

}  // namespace hotswap::fleet
