// hotswap-httpd's sinks escape once each: module names, a principal and a
// plugin file name that would break a hand-written escaper are read back from
// /admin/status with nlohmann-json and from /metrics by the Prometheus text
// format's rules, as they were given (ill-formed UTF-8 as U+FFFD; the audit
// trail also turned control characters into U+FFFD).
#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "../hostile_names.hpp"
#include "fixture.hpp"

namespace hotswap::http::testing {
namespace {

using json = nlohmann::json;
using hotswap::testing::hostile_name;
using hotswap::testing::hostile_names;

/// One sample of the Prometheus text format (0.0.4): its labels, unescaped.
/// Throws on anything the format does not allow in a label value.
std::map<std::string, std::string> labels_of(std::string_view line) {
  std::map<std::string, std::string> out;
  std::size_t i = line.find('{');
  if (i == std::string_view::npos) return out;
  ++i;
  while (i < line.size() && line[i] != '}') {
    const std::size_t eq = line.find("=\"", i);
    if (eq == std::string_view::npos) throw std::runtime_error("no =\" in " + std::string(line));
    const std::string name(line.substr(i, eq - i));
    std::string value;
    for (i = eq + 2; i < line.size() && line[i] != '"'; ++i) {
      if (line[i] != '\\') {
        value += line[i];
        continue;
      }
      if (++i == line.size()) throw std::runtime_error("a backslash ends the line");
      switch (line[i]) {  // the only escapes the format has
        case '\\': value += '\\'; break;
        case '"': value += '"'; break;
        case 'n': value += '\n'; break;
        default: throw std::runtime_error(std::string("not an escape: \\") + line[i]);
      }
    }
    if (i == line.size()) throw std::runtime_error("unterminated label value");
    out[name] = value;
    ++i;
    if (i < line.size() && line[i] == ',') ++i;
  }
  return out;
}

class http_escaping : public http_test {};

TEST_F(http_escaping, status_and_metrics_read_hostile_module_names_back) {
  const std::vector<hostile_name> names = hostile_names();
  start([&](server_config& c) {
    for (std::size_t i = 0; i < names.size(); ++i)
      c.routes.push_back({"/h" + std::to_string(i), names[i].text, "greeting-1.so", {}});
  });
  for (std::size_t i = 0; i < names.size(); ++i)
    ASSERT_EQ(request(probe_client::get("/h" + std::to_string(i))).status, 200) << names[i].what;

  const probe_reply metrics = admin("GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  std::map<std::string, std::string> module_of_route;
  std::size_t lines = 0;
  for (std::size_t at = 0; at < metrics.body.size();) {
    const std::size_t end = metrics.body.find('\n', at);
    ASSERT_NE(end, std::string::npos) << "the exposition ends with a line feed";
    const std::string_view line = std::string_view(metrics.body).substr(at, end - at);
    at = end + 1;
    ++lines;
    if (!line.starts_with("hotswap_http_requests_total{")) continue;
    const auto l = labels_of(line);
    module_of_route[l.at("route")] = l.at("module");
  }
  EXPECT_GT(lines, 10U);
  for (std::size_t i = 0; i < names.size(); ++i)
    EXPECT_EQ(module_of_route["/h" + std::to_string(i)], names[i].as_utf8) << names[i].what;

  const json status = json::parse(admin("GET", "/admin/status").body);
  std::vector<std::string> module_names, added;
  for (const auto& m : status.at("modules")) module_names.push_back(m.at("name"));
  for (const auto& e : status.at("audit"))
    if (e.at("file").get<std::string>().ends_with("greeting-1.so")) added.push_back(e.at("module"));
  for (const hostile_name& n : names) {
    EXPECT_NE(std::find(module_names.begin(), module_names.end(), n.as_utf8), module_names.end()) << n.what;
    // The audit trail caps a module name at max_event_bytes / 4 (1 KiB by
    // default), between two characters, and says so with "...".
    const bool found = std::any_of(added.begin(), added.end(), [&](const std::string& a) {
      if (a == n.audited) return true;
      const std::string kept = a.ends_with("...") ? a.substr(0, a.size() - 3) : a;
      return n.audited.size() > 1024 && kept.size() >= 1021 && kept.size() <= 1024 && n.audited.starts_with(kept);
    });
    EXPECT_TRUE(found) << n.what;
  }
}

TEST_F(http_escaping, a_file_named_with_a_backslash_reads_back_from_the_audit_as_named) {
  const std::string principal = "ops\\eu \"on call\"";
  const std::string file = "a\\b \"q\" \xC3\xA9.so";
  std::filesystem::copy_file(dir_.plugins() / "greeting-2.so", dir_.plugins() / file);
  start([&](server_config& c) { c.admin_principal = principal; });
  const probe_reply r = admin("POST", "/admin/swap", json{{"module", "greeting"}, {"file", file}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const json status = json::parse(admin("GET", "/admin/status").body);
  bool seen = false;
  for (const auto& e : status.at("audit")) {
    if (e.at("kind") != "swapped" || e.at("module") != "greeting" || e.at("to_version") != 2) continue;
    seen = true;
    EXPECT_EQ(e.at("principal"), principal);
    EXPECT_EQ(std::filesystem::path(e.at("file").get<std::string>()).filename(), file);
  }
  EXPECT_TRUE(seen) << status.dump(2);
}

}  // namespace
}  // namespace hotswap::http::testing
