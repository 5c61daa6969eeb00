// Canaries end to end over real sockets: POST /admin/canary with test
// applications bad in known ways (5% 500s, 20 ms slower, every call 500), the
// automatic rollback, call-level fallback for GET and none for POST, the
// response headers, manual promote and abort, /admin/status and /metrics.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "fixture.hpp"

namespace hotswap::http::testing {
namespace {

using json = nlohmann::json;

class http_canary : public http_test {
 protected:
  void SetUp() override { start(); }  // the canary-* apps are among the example applications
  json canary_status() {
    const json s = json::parse(admin("GET", "/admin/status").body);
    for (const json& m : s["modules"])
      if (m["name"] == "greeting") return m["canary"];
    return {};
  }
  std::string phase() { return canary_status()["phase"].get<std::string>(); }

  // GETs, each on a fresh connection (a fresh canary key), until the canary
  // leaves `running_phase` or `limit` requests were sent. Counts what users saw.
  struct load_result {
    int requests = 0, not_ok = 0, fallbacks = 0, from_candidate = 0;
  };
  load_result load_until_decided(int limit, const std::string& method = "GET") {
    load_result out;
    while (out.requests < limit) {
      const probe_reply r = request(method == "GET" ? probe_client::get("/") : probe_client::post("/", "x"));
      ++out.requests;
      out.not_ok += r.status != 200;
      out.fallbacks += !r.header("x-hotswap-fallback").empty();
      out.from_candidate += r.header("x-hotswap-version").starts_with("canary-");
      if (out.requests % 25 == 0 && phase() != "stepping") break;
    }
    return out;
  }
};

TEST_F(http_canary, five_percent_errors_are_rolled_back_and_no_get_sees_one) {
  probe_reply r = admin("POST", "/admin/canary", R"({"module":"greeting","file":"canary-errors.so","steps":[50,100]})");
  ASSERT_EQ(r.status, 200) << r.body;
  const load_result l = load_until_decided(5000);
  EXPECT_EQ(phase(), "rolled_back") << l.requests << " requests";
  EXPECT_EQ(l.not_ok, 0);        // every candidate 500 was re-run on stable
  EXPECT_GT(l.fallbacks, 0);     // and said so
  EXPECT_GT(l.from_candidate, 0);
  const json c = canary_status();
  EXPECT_GT(c["candidate"]["fallbacks"].get<int>(), 0);
  ASSERT_FALSE(c["history"].empty());
  const std::string evidence = c["history"].back()["evidence"];
  EXPECT_NE(evidence.find("errors llr="), std::string::npos) << evidence;
  // After the rollback every request is stable's.
  r = request(probe_client::get("/"));
  EXPECT_EQ(r.header("x-hotswap-version"), "1");
  EXPECT_EQ(r.body, "hello from greeting-1\n");
  const std::string metrics = admin("GET", "/metrics").body;
  EXPECT_NE(metrics.find("hotswap_canary_fallbacks_total{module=\"greeting\"}"), std::string::npos);
  EXPECT_NE(metrics.find("hotswap_canary_weight_ratio{module=\"greeting\"} 0"), std::string::npos);
}

TEST_F(http_canary, a_failing_candidate_falls_back_for_get_and_not_for_post) {
  // All keys on the candidate. Two failures below decide nothing yet (a third would).
  probe_reply r = admin("POST", "/admin/canary",
                        R"({"module":"greeting","file":"canary-failing.so","steps":[100],"retryable":["GET"]})");
  ASSERT_EQ(r.status, 200) << r.body;
  r = request(probe_client::post("/", "x"));  // not retryable: the user sees the candidate's 500
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.header("x-hotswap-version"), "canary-1");
  EXPECT_EQ(r.header("x-hotswap-fallback"), "");
  r = request(probe_client::get("/"));  // retryable: stable answers, once
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-hotswap-version"), "1");
  EXPECT_EQ(r.header("x-hotswap-fallback"), "canary-1");
  EXPECT_EQ(r.body, "hello from greeting-1\n");
  // A candidate whose every call fails is rolled back at the first tick after its third failure
  // (3 x ln(0.021/0.001) > ln(0.99/0.0002)); the requests answered meanwhile all fell back.
  const load_result l = load_until_decided(2000);
  EXPECT_EQ(phase(), "rolled_back");
  EXPECT_EQ(l.not_ok, 0);
  const std::string evidence = canary_status()["history"].back()["evidence"];
  EXPECT_NE(evidence.find("err=1.0000"), std::string::npos) << evidence;
}

TEST_F(http_canary, a_candidate_20ms_slower_is_rolled_back_on_its_p99) {
  probe_reply r = admin("POST", "/admin/canary",
                        R"({"module":"greeting","file":"canary-slow.so","steps":[50,100],"min_stable_samples":100})");
  ASSERT_EQ(r.status, 200) << r.body;
  const load_result l = load_until_decided(3000);
  EXPECT_EQ(phase(), "rolled_back") << l.requests << " requests";
  EXPECT_EQ(l.not_ok, 0);
  const std::string reason = canary_status()["history"].back()["evidence"];
  EXPECT_NE(reason.find("p99 above"), std::string::npos) << reason;
}

TEST_F(http_canary, manual_promote_walks_the_steps_and_abort_refuses_when_idle) {
  probe_reply r = admin("POST", "/admin/canary", R"({"module":"greeting","file":"greeting-2.so","steps":[10,100]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(admin("POST", "/admin/canary", R"({"module":"greeting","file":"greeting-2.so"})").status, 409);
  r = admin("POST", "/admin/canary/promote", R"({"module":"greeting"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["weight_percent"], 100.0);
  r = request(probe_client::get("/"));
  EXPECT_EQ(r.header("x-hotswap-version"), "canary-1");
  EXPECT_EQ(r.body, "hello from greeting-2\n");
  r = admin("POST", "/admin/canary/promote", R"({"module":"greeting"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["phase"], "promoted");
  EXPECT_EQ(json::parse(r.body)["stable_version"], 2);
  r = request(probe_client::get("/"));
  EXPECT_EQ(r.header("x-hotswap-version"), "2");
  EXPECT_EQ(r.body, "hello from greeting-2\n");
  EXPECT_EQ(admin("POST", "/admin/canary/abort", R"({"module":"greeting"})").status, 409);  // none running
  EXPECT_EQ(admin("POST", "/admin/canary", R"({"module":"greeting","file":"greeting-2.so","steps":[50]})").status,
            400);  // steps must end at 100%
  EXPECT_EQ(admin("POST", "/admin/canary", R"({"module":"nope","file":"greeting-2.so"})").status, 404);
}

// The control thread's context switches over `window`: its wake-ups, as the
// kernel counts them (/proc/self/task/*/status of the thread named httpd-control).
long control_thread_switches_over(std::chrono::milliseconds window) {
  const auto count = [] {
    long total = 0;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
      std::ifstream comm(task.path() / "comm");
      std::string name;
      if (!std::getline(comm, name) || name != "httpd-control") continue;
      std::ifstream status(task.path() / "status");
      for (std::string line; std::getline(status, line);)
        if (line.find("ctxt_switches:") != std::string::npos) total += std::stol(line.substr(line.find(':') + 1));
    }
    return total;
  };
  const long before = count();
  std::this_thread::sleep_for(window);
  return count() - before;
}

TEST_F(http_canary, the_verdict_tick_wakes_the_server_only_while_a_canary_runs) {
  const auto window = std::chrono::milliseconds(500);  // 25 ticks of the default 20 ms; the drain check ticks each 1 s
  EXPECT_LE(control_thread_switches_over(window), 4) << "idle, before any canary";
  probe_reply r = admin("POST", "/admin/canary", R"({"module":"greeting","file":"greeting-2.so","steps":[10,100]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_GE(control_thread_switches_over(window), 8) << "a canary runs: its verdict is taken each tick";
  r = admin("POST", "/admin/canary/abort", R"({"module":"greeting"})");
  ASSERT_EQ(r.status, 200) << r.body;
  control_thread_switches_over(std::chrono::milliseconds(100));  // the last tick, which finds none running
  EXPECT_LE(control_thread_switches_over(window), 4) << "idle again after the abort";
  // A host that starts one through the registry, not the admin API, gets it judged too.
  modules::canary_policy p;
  p.steps_bp = {1000, 10000};
  server_->modules().start_canary("host", "greeting", dir_.plugins() / "greeting-2.so", p);
  EXPECT_GE(control_thread_switches_over(window), 8) << "a canary the host started runs: its verdict is taken each tick";
  r = admin("POST", "/admin/canary/abort", R"({"module":"greeting"})");
  ASSERT_EQ(r.status, 200) << r.body;
}

TEST_F(http_canary, a_shadow_phase_catches_another_body_on_one_percent_of_paths_before_any_user_sees_it) {
  // An app that does not declare shadow runs safe is never shadowed.
  probe_reply r = admin("POST", "/admin/canary",
                        R"({"module":"greeting","file":"canary-errors.so","steps":[100],"shadow_sample":1.0})");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(phase(), "idle");
  r = admin("POST", "/admin/canary", R"({"module":"greeting","file":"canary-different.so","steps":[5,100],
                                         "shadow_sample":1.0,"shadow_samples":1000,"max_shadow_mismatch":0})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(phase(), "shadow");
  int sent = 0;
  for (; sent < 3000; ++sent) {
    r = request(probe_client::get("/p" + std::to_string(sent)));
    ASSERT_EQ(r.header("x-hotswap-version"), "1");  // no user is answered by the candidate in the shadow phase
    ASSERT_EQ(r.body, "hello from greeting-1\n");
    if (sent % 50 == 49 && phase() != "shadow") break;
  }
  EXPECT_EQ(phase(), "rolled_back") << sent << " requests";
  const json c = canary_status();
  EXPECT_GE(c["candidate"]["shadow_compared"].get<int>(), 1000);
  EXPECT_GT(c["candidate"]["shadow_mismatched"].get<int>(), 0);
  ASSERT_FALSE(c["shadow_examples"].empty());
  EXPECT_NE(c["shadow_examples"][0].get<std::string>().find("body differs"), std::string::npos);
  EXPECT_EQ(c["candidate"]["calls"], 0);  // shadow answers are compared, never reported as served
}

}  // namespace
}  // namespace hotswap::http::testing
