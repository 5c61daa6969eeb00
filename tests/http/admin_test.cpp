// The admin API: every answer the issue lists (200, 401, 403, 400, 404, 422,
// 409, also while a swap is still running), the stage times of a swap, the
// token file's checks, the Unix socket's uid check, /metrics, /admin/status
// and watch mode.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "fixture.hpp"

namespace hotswap::http::testing {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

TEST_F(http_test, admin_swap_and_rollback_publish_and_are_audited_with_the_principal) {
  start();
  probe_reply r = admin("POST", "/admin/swap", R"({"module":"greeting","file":"greeting-2.so"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["version"], 2);
  EXPECT_EQ(request(probe_client::get("/")).body, "hello from greeting-2\n");

  r = admin("POST", "/admin/rollback", R"({"module":"greeting","version":1})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["version"], 3);
  EXPECT_EQ(request(probe_client::get("/")).body, "hello from greeting-1\n");

  const json status = json::parse(admin("GET", "/admin/status").body);
  bool saw_admin = false;
  for (const auto& e : status["audit"]) saw_admin |= e["principal"] == "admin" && e["kind"] == "rolled_back";
  EXPECT_TRUE(saw_admin);
  EXPECT_EQ(status["counters"]["rollbacks"], 1);
}

TEST_F(http_test, admin_refuses_without_the_right_token_with_401) {
  start();
  const std::string wrong = "not-the-token";
  EXPECT_EQ(admin("GET", "/admin/status", {}, &wrong).status, 401);
  probe_client c(server_->admin_port());
  probe_reply r;
  ASSERT_EQ(c.exchange(probe_client::get("/admin/status"), r), probe_error::none);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.header("www-authenticate"), "Bearer realm=\"hotswap-admin\"");
  const std::string prefix = dir_.token().substr(0, dir_.token().size() - 1);
  EXPECT_EQ(admin("POST", "/admin/swap", R"({"module":"greeting","file":"greeting-2.so"})", &prefix).status, 401);
  EXPECT_EQ(request(probe_client::get("/")).version(), 1u);  // nothing was swapped
  EXPECT_NE(server_->metrics_text().find("hotswap_admin_unauthorized_total 3"), std::string::npos);
}

TEST_F(http_test, admin_refuses_files_outside_the_plugin_directory_with_403) {
  const fs::path outside = dir_.root() / "outside.so";
  fs::copy_file(dir_.plugins() / "greeting-2.so", outside);
  fs::create_symlink(outside, dir_.plugins() / "escape.so");
  start();
  for (const char* file : {"../outside.so", "..", "sub/greeting-2.so", "/etc/passwd", "escape.so", "a\nb.so"}) {
    SCOPED_TRACE(file);
    const json body{{"module", "greeting"}, {"file", file}};
    const probe_reply r = admin("POST", "/admin/swap", body.dump());
    EXPECT_EQ(r.status, 403) << r.body;
  }
  EXPECT_EQ(request(probe_client::get("/")).version(), 1u);
}

TEST_F(http_test, admin_answers_400_to_malformed_bodies) {
  start();
  for (const char* body : {"", "not json", "[]", R"({"module":"greeting"})", R"({"module":1,"file":"x.so"})",
                           R"({"module":"greeting","file":"greeting-2.so","expected_version":-1})"}) {
    SCOPED_TRACE(body);
    EXPECT_EQ(admin("POST", "/admin/swap", body).status, 400);
  }
  EXPECT_EQ(admin("POST", "/admin/rollback", R"({"module":"greeting","version":"1"})").status, 400);
  EXPECT_EQ(admin("POST", "/admin/policy", R"({"policy":"sometimes"})").status, 400);
}

TEST_F(http_test, admin_answers_404_to_unknown_modules_versions_routes_and_paths) {
  start();
  EXPECT_EQ(admin("POST", "/admin/swap", R"({"module":"nope","file":"greeting-2.so"})").status, 404);
  EXPECT_EQ(admin("POST", "/admin/rollback", R"({"module":"greeting","version":42})").status, 404);
  EXPECT_EQ(admin("POST", "/admin/rollback", R"({"module":"nope","version":1})").status, 404);
  EXPECT_EQ(admin("POST", "/admin/policy", R"({"route":"/nope","policy":"pinned"})").status, 404);
  EXPECT_EQ(admin("GET", "/admin/nothing").status, 404);
  EXPECT_EQ(admin("GET", "/admin/swap").status, 405);
}

TEST_F(http_test, admin_answers_422_with_the_loaders_message_and_the_old_version_serves_on) {
  {
    std::ofstream(dir_.plugins() / "junk.so") << "this is not an ELF file";
    fs::permissions(dir_.plugins() / "junk.so", fs::perms::owner_read | fs::perms::owner_write);
  }
  start();
  probe_reply r = admin("POST", "/admin/swap", R"({"module":"greeting","file":"junk.so"})");
  EXPECT_EQ(r.status, 422);
  EXPECT_NE(json::parse(r.body)["error"].get<std::string>().find("ELF"), std::string::npos) << r.body;
  // The wrong interface: json's table is the same ABI, so use a missing file and a self-test-less mismatch.
  r = admin("POST", "/admin/swap", R"({"module":"greeting","file":"missing.so"})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(request(probe_client::get("/")).body, "hello from greeting-1\n");
}

TEST_F(http_test, admin_answers_409_to_a_conflicting_swap) {
  start();
  // Two operators both saw version 1 serving; the second one's swap conflicts.
  const std::string body = R"({"module":"greeting","file":"greeting-2.so","expected_version":1})";
  EXPECT_EQ(admin("POST", "/admin/swap", body).status, 200);
  const probe_reply r = admin("POST", "/admin/swap", body);
  EXPECT_EQ(r.status, 409);
  EXPECT_NE(r.body.find("conflict"), std::string::npos);
}

// A swap whose module's startup waits for the test (tests/http/plugins/gate_app.cpp).
class gated_swap : public http_test {
 protected:
  gated_swap() : gate_(dir_.root() / "gate") {
    fs::create_directory(gate_);
    fs::copy_file(fs::path(HOTSWAP_HTTP_TEST_PLUGIN_DIR) / "gate.so", dir_.plugins() / "gate.so");
    fs::permissions(dir_.plugins() / "gate.so", fs::perms::owner_read | fs::perms::owner_write);
    ::setenv("HOTSWAP_TEST_GATE", gate_.c_str(), 1);  // before the server's threads exist
  }
  void TearDown() override {
    release();
    if (first_.joinable()) first_.join();
    http_test::TearDown();
    ::unsetenv("HOTSWAP_TEST_GATE");
  }
  void release() { std::ofstream(gate_ / "release") << "go\n"; }
  bool started() const { return fs::exists(gate_ / "started"); }

  fs::path gate_;
  std::thread first_;
};

TEST_F(gated_swap, a_second_swap_while_the_first_is_running_gets_409_and_the_worker_serves_on) {
  start([](server_config& c) { c.threads = 1; });  // one worker: a swap on it would stall every request
  probe_reply first;
  first_ = std::thread([&] { first = admin("POST", "/admin/swap", R"({"module":"greeting","file":"gate.so"})"); });
  ASSERT_TRUE(eventually([&] { return started(); }, 10s)) << "the first swap never reached the module's startup";

  // The first swap is inside startup: a second one for the same module conflicts ...
  const probe_reply second = admin("POST", "/admin/swap", R"({"module":"greeting","file":"greeting-2.so"})");
  EXPECT_EQ(second.status, 409) << second.body;
  EXPECT_NE(second.body.find("in progress"), std::string::npos) << second.body;
  EXPECT_EQ(admin("POST", "/admin/rollback", R"({"module":"greeting","version":1})").status, 409);
  // ... a swap of another module goes ahead, and the one worker answers from the serving version.
  EXPECT_EQ(admin("POST", "/admin/swap", R"({"module":"json","file":"json-2.so"})").status, 200);
  const probe_reply during = request(probe_client::get("/"));
  EXPECT_EQ(during.body, "hello from greeting-1\n");
  EXPECT_EQ(during.version(), 1u);

  release();
  first_.join();
  EXPECT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(request(probe_client::get("/")).body, "hello from gate\n");
  // The 409s changed nothing and were not queued: the next swap is version 3.
  const probe_reply third = admin("POST", "/admin/swap", R"({"module":"greeting","file":"greeting-2.so"})");
  ASSERT_EQ(third.status, 200) << third.body;
  EXPECT_EQ(json::parse(third.body)["version"], 3);
}

TEST_F(http_test, a_swap_answer_says_where_its_time_went) {
  start();
  const probe_reply r = admin("POST", "/admin/swap", R"({"module":"greeting","file":"greeting-2.so"})");
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = json::parse(r.body);
  double sum = 0;
  for (const char* stage : {"read", "check", "preflight", "shadow", "dlopen", "startup", "migrate", "self_test", "publish"}) {
    ASSERT_TRUE(j["stages_ms"].contains(stage)) << stage << " in " << r.body;
    sum += j["stages_ms"][stage].get<double>();
  }
  EXPECT_GT(j["stages_ms"]["preflight"].get<double>(), 0.0);  // greeting-2 had not been tried before
  EXPECT_EQ(j["preflight_remembered"], false);
  EXPECT_NEAR(j["took_ms"].get<double>(), sum, 0.01);
  // Back and forth: the bytes of greeting-1 passed the preflight when the server started.
  const json back = json::parse(admin("POST", "/admin/swap", R"({"module":"greeting","file":"greeting-1.so"})").body);
  EXPECT_EQ(back["preflight_remembered"], true);
  EXPECT_NE(server_->metrics_text().find("hotswap_module_preflights_remembered_total 1"), std::string::npos);
}

TEST_F(http_test, metrics_and_status_describe_versions_and_requests) {
  start();
  for (int i = 0; i < 3; ++i) request(probe_client::get("/"));
  const probe_reply m = admin("GET", "/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.header("content-type"), "text/plain; version=0.0.4");
  EXPECT_NE(m.body.find("hotswap_http_requests_total{route=\"/\",module=\"greeting\",version=\"1\",build=\"greeting-1\","
                        "class=\"2xx\"} 3"),
            std::string::npos)
      << m.body;
  EXPECT_NE(m.body.find("hotswap_http_request_duration_seconds_count 3"), std::string::npos);
  EXPECT_NE(m.body.find("hotswap_module_swaps_total 3"), std::string::npos);  // the three routes' modules

  const json s = json::parse(admin("GET", "/admin/status").body);
  EXPECT_EQ(s["draining"], false);
  EXPECT_EQ(s["modules"].size(), 3u);
  for (const auto& m2 : s["modules"]) {
    EXPECT_EQ(m2["serving_version"], 1);
    EXPECT_EQ(m2["versions"][0]["state"], "serving");
  }
}

TEST_F(http_test, a_token_file_readable_by_others_is_refused_at_start) {
  fs::permissions(dir_.token_file(), fs::perms::owner_read | fs::perms::group_read);
  EXPECT_THROW(start(), config_error);
  fs::permissions(dir_.token_file(), fs::perms::owner_read);
  fs::create_symlink(dir_.token_file(), dir_.root() / "link.token");
  EXPECT_THROW(start([&](server_config& c) { c.admin_token_file = dir_.root() / "link.token"; }), config_error);
}

// A raw HTTP exchange over the Unix admin socket.
probe_reply unix_get(const fs::path& socket_path, const std::string& target) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path.c_str());
  EXPECT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  const std::string raw = probe_client::get(target, "Connection: close\r\n");
  EXPECT_EQ(::write(fd, raw.data(), raw.size()), static_cast<ssize_t>(raw.size()));
  std::string all;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) all.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  probe_reply r;
  r.status = all.size() > 12 ? std::stoi(all.substr(9, 3)) : 0;
  r.body = all.substr(all.find("\r\n\r\n") + 4);
  return r;
}

TEST_F(http_test, the_unix_admin_socket_authorises_by_peer_uid) {
  const fs::path sock = dir_.root() / "admin.sock";
  start([&](server_config& c) {
    c.admin_socket = sock;
    c.admin_uids = {::geteuid()};
  });
  const probe_reply ok = unix_get(sock, "/admin/status");
  EXPECT_EQ(ok.status, 200);
  TearDown();
  start([&](server_config& c) {
    c.admin_socket = sock;
    c.admin_uids = {::geteuid() + 12345};
  });
  EXPECT_EQ(unix_get(sock, "/admin/status").status, 403);
}

TEST_F(http_test, watch_mode_swaps_when_a_new_build_lands) {
  start([&](server_config& c) { c.watch_dir = c.plugin_dir; });
  // Written elsewhere and renamed in: the watcher sees one complete file.
  const fs::path tmp = dir_.plugins() / ".greeting-next.tmp";
  fs::copy_file(dir_.plugins() / "greeting-2.so", tmp);
  fs::rename(tmp, dir_.plugins() / "greeting-next.so");
  EXPECT_TRUE(eventually([&] { return server_->modules().module("greeting").current_version() == 2; }));
  EXPECT_EQ(request(probe_client::get("/")).body, "hello from greeting-2\n");
  const json s = json::parse(admin("GET", "/admin/status").body);
  bool by_watch = false;
  for (const auto& e : s["audit"]) by_watch |= e["principal"] == "watch" && e["kind"] == "swapped";
  EXPECT_TRUE(by_watch);
}

}  // namespace
}  // namespace hotswap::http::testing
