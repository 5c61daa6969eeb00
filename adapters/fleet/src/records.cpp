#include <chrono>
#include <hotswap/fleet/records.hpp>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace hotswap::fleet {

using json = nlohmann::json;

namespace {

json to_json(const desired_state& d) {
  return {{"module", d.module}, {"file", d.file}, {"sha256", d.sha256}, {"strategy", d.strategy}, {"rollout", d.rollout}};
}

desired_state desired_from(const json& j) {
  desired_state d;
  d.module = j.at("module").get<std::string>();
  d.file = j.at("file").get<std::string>();
  d.sha256 = j.at("sha256").get<std::string>();
  d.strategy = j.value("strategy", "swap");
  d.rollout = j.value("rollout", "");
  if (d.sha256.size() != 64) throw std::runtime_error("sha256 is not 64 hex digits");
  if (d.strategy != "swap" && d.strategy != "canary") throw std::runtime_error("strategy must be swap or canary");
  return d;
}

template <class T, class F>
T decode(const std::string& value, const std::string& key, F&& from) {
  try {
    return from(json::parse(value));
  } catch (const std::exception& e) {
    throw std::runtime_error("etcd key " + key + ": " + e.what());
  }
}

}  // namespace

void check_name(const std::string& what, const std::string& name) {
  bool ok = !name.empty() && name.size() <= 64;
  for (char c : name)
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-');
  if (!ok) throw std::invalid_argument(what + " '" + name + "': expected 1 to 64 of A-Z a-z 0-9 . _ -");
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string encode(const desired_state& d) { return to_json(d).dump(); }

std::string encode(const host_report& r) {
  return json{{"host", r.host},   {"address", r.address},   {"module", r.module},
              {"serving_version", r.serving_version},     {"sha256", r.sha256},
              {"build", r.build}, {"state", r.state},       {"desired_sha256", r.desired_sha256},
              {"error", r.error}, {"requests", r.requests}, {"errors", r.errors},
              {"updated_ms", r.updated_ms}}
      .dump();
}

std::string encode(const rollout_record& r) {
  json j{{"id", r.id},
         {"target", to_json(r.target)},
         {"previous", r.previous ? to_json(*r.previous) : json()},
         {"waves", r.waves},
         {"plan", r.plan},
         {"wave", r.wave},
         {"written", r.written},
         {"state", r.state},
         {"reason", r.reason},
         {"started_ms", r.started_ms},
         {"wave_started_ms", r.wave_started_ms},
         {"finished_ms", r.finished_ms},
         {"max_error_rate", r.max_error_rate},
         {"window_s", r.window_s},
         {"wave_timeout_s", r.wave_timeout_s},
         {"min_requests", r.min_requests}};
  return j.dump();
}

desired_state decode_desired(const std::string& value, const std::string& key) {
  return decode<desired_state>(value, key, desired_from);
}

host_report decode_report(const std::string& value, const std::string& key) {
  return decode<host_report>(value, key, [](const json& j) {
    host_report r;
    r.host = j.at("host").get<std::string>();
    r.address = j.value("address", "");
    r.module = j.value("module", "");
    r.serving_version = j.value("serving_version", std::uint64_t{0});
    r.sha256 = j.value("sha256", "");
    r.build = j.value("build", "");
    r.state = j.value("state", "");
    r.desired_sha256 = j.value("desired_sha256", "");
    r.error = j.value("error", "");
    r.requests = j.value("requests", std::uint64_t{0});
    r.errors = j.value("errors", std::uint64_t{0});
    r.updated_ms = j.value("updated_ms", std::int64_t{0});
    return r;
  });
}

rollout_record decode_rollout(const std::string& value, const std::string& key) {
  return decode<rollout_record>(value, key, [](const json& j) {
    rollout_record r;
    r.id = j.at("id").get<std::string>();
    r.target = desired_from(j.at("target"));
    if (!j.at("previous").is_null()) r.previous = desired_from(j.at("previous"));
    r.waves = j.at("waves").get<std::vector<std::string>>();
    r.plan = j.at("plan").get<std::vector<std::vector<std::string>>>();
    r.wave = j.at("wave").get<int>();
    r.written = j.at("written").get<int>();
    r.state = j.at("state").get<std::string>();
    r.reason = j.value("reason", "");
    r.started_ms = j.value("started_ms", std::int64_t{0});
    r.wave_started_ms = j.value("wave_started_ms", std::int64_t{0});
    r.finished_ms = j.value("finished_ms", std::int64_t{0});
    r.max_error_rate = j.value("max_error_rate", 0.01);
    r.window_s = j.value("window_s", 2.0);
    r.wave_timeout_s = j.value("wave_timeout_s", 60.0);
    r.min_requests = j.value("min_requests", std::uint64_t{0});
    if (r.plan.empty() || r.wave < 0 || r.wave >= static_cast<int>(r.plan.size()))
      throw std::runtime_error("wave " + std::to_string(r.wave) + " outside the plan");
    return r;
  });
}

}  // namespace hotswap::fleet
