// /metrics and /admin/status. The Prometheus text exposition (format 0.0.4)
// is written here rather than with prometheus-cpp: the counters live per
// worker and are merged only when scraped, so the request path takes no
// prometheus-cpp family/label lookup or shared atomic per request, and the
// format is a few lines of text.
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>

#include "admin_service.hpp"
#include "server_impl.hpp"

namespace hotswap::http {

using namespace detail;

namespace {

// A label value: backslash, double quote and newline escaped.
std::string label(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

const char* class_name(std::size_t i) {
  static constexpr const char* names[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
  return names[i];
}

}  // namespace

std::string server::impl::metrics_text() const {
  std::ostringstream o;
  std::map<std::pair<std::size_t, std::uint64_t>, version_count> versions;
  std::array<std::uint64_t, latency_bounds.size() + 1> latency{};
  double latency_sum = 0;
  std::map<unsigned, std::uint64_t> refused;
  for (const auto& w : workers) {
    std::lock_guard lock(w->stats.mutex);
    for (const auto& [k, vc] : w->stats.versions) {
      auto& t = versions[k];
      t.build = vc.build;
      for (std::size_t i = 0; i < 6; ++i) t.by_class[i] += vc.by_class[i];
    }
    for (std::size_t i = 0; i < latency.size(); ++i) latency[i] += w->stats.latency[i];
    latency_sum += w->stats.latency_sum;
    for (const auto& [s, n] : w->stats.refused) refused[s] += n;
  }

  o << "# HELP hotswap_http_requests_total Responses by route, module version and status class.\n"
       "# TYPE hotswap_http_requests_total counter\n";
  for (const auto& [k, vc] : versions)
    for (std::size_t i = 0; i < 6; ++i)
      if (vc.by_class[i] != 0)
        o << "hotswap_http_requests_total{route=\"" << label(routes[k.first]->prefix) << "\",module=\""
          << label(routes[k.first]->module) << "\",version=\"" << k.second << "\",build=\"" << label(vc.build)
          << "\",class=\"" << class_name(i) << "\"} " << vc.by_class[i] << "\n";

  o << "# HELP hotswap_http_refused_total Requests the host answered itself (malformed, too large, no route, busy).\n"
       "# TYPE hotswap_http_refused_total counter\n";
  for (const auto& [s, n] : refused) o << "hotswap_http_refused_total{status=\"" << s << "\"} " << n << "\n";

  o << "# HELP hotswap_http_request_duration_seconds Time from a request read to its response handed to the socket.\n"
       "# TYPE hotswap_http_request_duration_seconds histogram\n";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < latency_bounds.size(); ++i) {
    cumulative += latency[i];
    o << "hotswap_http_request_duration_seconds_bucket{le=\"" << latency_bounds[i] << "\"} " << cumulative << "\n";
  }
  cumulative += latency.back();
  o << "hotswap_http_request_duration_seconds_bucket{le=\"+Inf\"} " << cumulative << "\n"
    << "hotswap_http_request_duration_seconds_sum " << latency_sum << "\n"
    << "hotswap_http_request_duration_seconds_count " << cumulative << "\n";

  // One unlabelled sample per metric: name, type, help, value.
  struct scalar {
    const char* name;
    const char* type;
    const char* help;
    double value;
  };
  const modules::registry_counters rc = registry->counters();
  // Relaxed loads: statistics, read as a snapshot.
  const scalar scalars[] = {
      {"hotswap_http_connections_open", "gauge", "Open application connections.",
       static_cast<double>(open_connections.load(std::memory_order_relaxed))},
      {"hotswap_http_connections_accepted_total", "counter", "Accepted application connections.",
       static_cast<double>(accepted.load(std::memory_order_relaxed))},
      {"hotswap_http_connections_rejected_total", "counter", "Connections refused over max-connections.",
       static_cast<double>(rejected.load(std::memory_order_relaxed))},
      {"hotswap_module_swaps_total", "counter", "Versions published by add or swap.", static_cast<double>(rc.swaps)},
      {"hotswap_module_rollbacks_total", "counter", "Versions published by rollback.",
       static_cast<double>(rc.rollbacks)},
      {"hotswap_module_refusals_total", "counter", "Swap, rollback and add requests that published nothing.",
       static_cast<double>(rc.refusals)},
      {"hotswap_module_unloaded_total", "counter", "Replaced versions that left the process.",
       static_cast<double>(rc.loads.unloaded)},
      {"hotswap_module_quarantined_total", "counter", "Replaced versions still mapped after dlclose.",
       static_cast<double>(rc.loads.quarantined)},
      {"hotswap_module_drain_seconds_total", "counter", "Replaced -> unloaded time, summed over versions.",
       static_cast<double>(rc.loads.drain_ns_total) / 1e9},
      {"hotswap_module_drain_seconds_max", "gauge", "The longest replaced -> unloaded time.",
       static_cast<double>(rc.loads.drain_ns_max) / 1e9},
      {"hotswap_module_preflights_total", "counter", "Candidates loaded in a preflight child process.",
       static_cast<double>(rc.loads.preflights)},
      {"hotswap_module_preflights_remembered_total", "counter",
       "Preflights skipped: the same bytes had passed before.", static_cast<double>(rc.loads.preflights_remembered)},
      {"hotswap_admin_unauthorized_total", "counter", "Admin requests refused with 401 or 403.",
       static_cast<double>(admin ? admin->unauthorized() : 0)},
  };
  o << std::setprecision(15);  // counters print exactly (to 10^15), not as 1.23457e+06
  for (const scalar& m : scalars)
    o << "# HELP " << m.name << ' ' << m.help << "\n# TYPE " << m.name << ' ' << m.type << "\n"
      << m.name << ' ' << m.value << "\n";
  return o.str();
}

std::string server::impl::status_json() {
  using json = nlohmann::json;
  json out;
  out["draining"] = stopping.load(std::memory_order_relaxed);  // a flag; no partner
  out["routes"] = json::array();
  for (const auto& r : routes)
    out["routes"].push_back({{"prefix", r->prefix},
                             {"module", r->module},
                             {"policy", to_string(r->policy.load(std::memory_order_relaxed))}});  // a flag
  out["modules"] = json::array();
  for (const auto& name : registry->names()) {
    json m{{"name", name}, {"serving_version", registry->module(name).current_version()}};
    m["versions"] = json::array();
    for (const modules::version_report& v : registry->status(name))
      m["versions"].push_back({{"version", v.number},
                               {"build", v.id.build_version},
                               {"state", to_string(v.state)},
                               {"pins", v.pins},
                               {"keepalives", v.keepalives},
                               {"sha256", v.id.sha256},
                               {"file", v.id.file},
                               {"drain_ms", std::chrono::duration<double, std::milli>(v.drain_time).count()}});
    out["modules"].push_back(std::move(m));
  }
  const modules::registry_counters rc = registry->counters();
  out["counters"] = {{"swaps", rc.swaps},
                     {"rollbacks", rc.rollbacks},
                     {"refusals", rc.refusals},
                     {"unloaded", rc.loads.unloaded},
                     {"quarantined", rc.loads.quarantined},
                     {"drain_ms_max", static_cast<double>(rc.loads.drain_ns_max) / 1e6},
                     {"preflights", rc.loads.preflights},
                     {"preflights_remembered", rc.loads.preflights_remembered},
                     {"open_connections", open_connections.load(std::memory_order_relaxed)}};  // a statistic
  out["audit"] = json::array();
  for (const modules::module_event& e : audit->recent())
    out["audit"].push_back({{"kind", to_string(e.kind)},
                            {"principal", e.principal},
                            {"module", e.module},
                            {"file", e.file},
                            {"from_version", e.from_version},
                            {"to_version", e.to_version},
                            {"message", e.message}});
  // Replace invalid UTF-8 (a file name, a plugin's message) instead of throwing.
  return out.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace hotswap::http
