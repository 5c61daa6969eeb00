// /metrics and /admin/status. The Prometheus text exposition (format 0.0.4)
// is written here rather than with prometheus-cpp: the counters live per
// worker and are merged only when scraped, so the request path takes no
// prometheus-cpp family/label lookup or shared atomic per request, and the
// format is a few lines of text.
#include <hotswap/utf8.hpp>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>

#include "admin_service.hpp"
#include "server_impl.hpp"

namespace hotswap::http {

using namespace detail;

namespace {

// A label value (the text format's rules: UTF-8, with backslash, double quote
// and line feed escaped); ill-formed UTF-8 becomes U+FFFD.
std::string label(std::string_view text) {
  const std::string s = hotswap::valid_utf8(text);
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

double seconds(std::uint64_t ns) { return static_cast<double>(ns) / 1e9; }

nlohmann::json health_json(const modules::health_snapshot& h) {
  return {{"calls", h.calls()},         {"errors", h.errors},
          {"error_rate", h.error_rate()}, {"p50_ms", seconds(h.p(0.5)) * 1e3},
          {"p99_ms", seconds(h.p(0.99)) * 1e3}, {"fallbacks", h.fallbacks},
          {"shadow_compared", h.shadow_compared}, {"shadow_mismatched", h.shadow_mismatched}};
}

// A module's canary for /admin/status: state, per-version health since it
// began, the latest verdict and every decision with its evidence.
nlohmann::json canary_json(const modules::canary& c) {
  const modules::canary_status st = c.status();
  nlohmann::json out{{"phase", to_string(st.phase)},
                     {"step", st.step},
                     {"weight_percent", st.weight_bp / 100.0},
                     {"file", st.file},
                     {"candidate_version", st.phase == modules::canary_phase::idle ? std::string()
                                                                                  : "canary-" + std::to_string(st.candidate_version)},
                     {"candidate_build", st.candidate_build},
                     {"stable", health_json(st.stable)},
                     {"candidate", health_json(st.candidate)},
                     {"verdict", {{"decision", to_string(st.last.decision)}, {"reason", st.last.reason}}},
                     {"shadow_examples", st.shadow_examples}};
  out["history"] = nlohmann::json::array();
  for (const modules::canary_decision& d : c.history())
    out["history"].push_back({{"what", d.what}, {"principal", d.principal}, {"weight_percent", d.weight_bp / 100.0},
                              {"evidence", d.evidence}});
  return out;
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
  for (const auto& [k, vc] : versions) {
    const auto route = route_by_index(k.first);  // also a route a saved settings file removed since
    for (std::size_t i = 0; i < 6; ++i)
      if (vc.by_class[i] != 0)
        o << "hotswap_http_requests_total{route=\"" << label(route->prefix) << "\",module=\""
          << label(route->module) << "\",version=\"" << version_text(k.second) << "\",build=\"" << label(vc.build)
          << "\",class=\"" << class_name(i) << "\"} " << vc.by_class[i] << "\n";
  }

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

  // Canaries: the candidate's share, and each side's health since the canary began.
  o << "# HELP hotswap_canary_weight_ratio The share of keys routed to the module's canary (0: none running).\n"
       "# TYPE hotswap_canary_weight_ratio gauge\n";
  std::vector<std::pair<std::string, modules::canary_status>> canaries;
  for (const auto& name : registry->names()) {
    canaries.emplace_back(name, registry->canary(name).status());
    o << "hotswap_canary_weight_ratio{module=\"" << label(name) << "\"} " << canaries.back().second.weight_bp / 10000.0
      << "\n";
  }
  o << "# HELP hotswap_canary_calls_total Calls by side (stable, candidate) and outcome since the module's canary began.\n"
       "# TYPE hotswap_canary_calls_total counter\n";
  for (const auto& [name, st] : canaries)
    for (const auto& [side, h] : {std::pair{"stable", &st.stable}, std::pair{"candidate", &st.candidate}})
      o << "hotswap_canary_calls_total{module=\"" << label(name) << "\",side=\"" << side << "\",outcome=\"ok\"} "
        << h->ok << "\nhotswap_canary_calls_total{module=\"" << label(name) << "\",side=\"" << side
        << "\",outcome=\"error\"} " << h->errors << "\n";
  o << "# HELP hotswap_canary_p99_seconds Each side's p99 latency since the module's canary began.\n"
       "# TYPE hotswap_canary_p99_seconds gauge\n";
  for (const auto& [name, st] : canaries)
    for (const auto& [side, h] : {std::pair{"stable", &st.stable}, std::pair{"candidate", &st.candidate}})
      o << "hotswap_canary_p99_seconds{module=\"" << label(name) << "\",side=\"" << side << "\"} "
        << seconds(h->p(0.99)) << "\n";
  o << "# HELP hotswap_canary_fallbacks_total Candidate failures re-run on stable.\n"
       "# TYPE hotswap_canary_fallbacks_total counter\n";
  for (const auto& [name, st] : canaries)
    o << "hotswap_canary_fallbacks_total{module=\"" << label(name) << "\"} " << st.candidate.fallbacks << "\n";
  o << "# HELP hotswap_canary_shadow_mismatches_total Shadow runs whose answer differed from stable's.\n"
       "# TYPE hotswap_canary_shadow_mismatches_total counter\n";
  for (const auto& [name, st] : canaries)
    o << "hotswap_canary_shadow_mismatches_total{module=\"" << label(name) << "\"} " << st.candidate.shadow_mismatched
      << "\n";

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
      {"hotswap_http_connections_limit", "gauge", "max-connections in force (by default derived from RLIMIT_NOFILE).",
       static_cast<double>(max_connections.load(std::memory_order_relaxed))},  // a number; no partner
      {"hotswap_http_descriptor_limit", "gauge", "RLIMIT_NOFILE's soft limit at start.",
       static_cast<double>(descriptor_limit)},
      {"hotswap_http_accept_no_descriptors_total", "counter",
       "Accepts on any listener that failed for want of a descriptor (EMFILE, ENFILE).",
       static_cast<double>(exhaustion.failures())},
      {"hotswap_http_connections_shed_total", "counter",
       "Connections answered 503 and closed while out of descriptors (the spare descriptor).",
       static_cast<double>(exhaustion.shed_connections())},
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
      {"hotswap_module_retained", "gauge", "Replaced versions whose code stays mapped (max_retained).",
       static_cast<double>(rc.loads.retained)},
      {"hotswap_module_refused_retained", "gauge",
       "Versions refused after their code ran, code kept mapped (max_refused_retained).",
       static_cast<double>(rc.loads.refused_retained)},
      {"hotswap_module_preflights_forced_total", "counter",
       "Preflights run because the refused-retained budget was spent.", static_cast<double>(rc.loads.preflights_forced)},
      {"hotswap_module_mapped_segments", "gauge", "Loadable segments of the versions still mapped.",
       static_cast<double>(rc.loads.mapped_segments)},
      {"hotswap_admin_unauthorized_total", "counter", "Admin requests refused with 401 or 403.",
       static_cast<double>(admin ? admin->unauthorized() : 0)},
      {"hotswap_http_upgrades_total", "counter", "Takeovers by a new binary (POST /admin/upgrade) this server descends from.",
       static_cast<double>(upgrades.load(std::memory_order_relaxed))},
      {"hotswap_http_upgrades_failed_total", "counter", "Upgrades whose new process failed; the old one served on.",
       static_cast<double>(upgrades_failed.load(std::memory_order_relaxed))},
      {"hotswap_http_upgrade_connections_handed_over_total", "counter",
       "Keep-alive connections taken over from the process this one replaced.",
       static_cast<double>(adopted.load(std::memory_order_relaxed))},
      {"hotswap_http_upgrade_connections_closed_total", "counter",
       "Connections busy past the upgrade's drain deadline: answered by the old process with Connection: close.",
       static_cast<double>(closed_at_deadline.load(std::memory_order_relaxed))},
  };
  o << std::setprecision(15);  // counters print exactly (to 10^15), not as 1.23457e+06
  for (const scalar& m : scalars)
    o << "# HELP " << m.name << ' ' << m.help << "\n# TYPE " << m.name << ' ' << m.type << "\n"
      << m.name << ' ' << m.value << "\n";
  return carried.add_to(o.str());  // after an upgrade: the counters continue from the old process's
}

std::string server::impl::status_json() {
  using json = nlohmann::json;
  json out;
  out["draining"] = stopping.load(std::memory_order_relaxed);  // a flag; no partner
  {
    std::lock_guard lock(routes_mutex);
    out["restart_needed"] = pending_restart;  // settings saved since start that wait for a restart
  }
  out["routes"] = json::array();
  for (const auto& r : *routes.read())
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
    m["canary"] = canary_json(registry->canary(name));
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
                     {"retained", rc.loads.retained},
                     {"refused_retained", rc.loads.refused_retained},
                     {"preflights_forced", rc.loads.preflights_forced},
                     {"mapped_segments", rc.loads.mapped_segments},
                     {"open_connections", open_connections.load(std::memory_order_relaxed)}};  // a statistic
  // Relaxed: statistics.
  out["upgrade"] = {{"upgrades", upgrades.load(std::memory_order_relaxed)},
                    {"failed", upgrades_failed.load(std::memory_order_relaxed)},
                    {"connections_handed_over", adopted.load(std::memory_order_relaxed)},
                    {"connections_closed_at_deadline", closed_at_deadline.load(std::memory_order_relaxed)}};
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
