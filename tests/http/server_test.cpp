// The application side: routing, the ABI's sync and async forms, malformed
// requests, limits, pipelining, version policies and graceful shutdown.
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "fixture.hpp"

namespace hotswap::http::testing {
namespace {

using namespace std::chrono_literals;

TEST_F(http_test, every_app_answers_and_names_its_version) {
  start();
  const probe_reply g = request(probe_client::get("/"));
  EXPECT_EQ(g.status, 200);
  EXPECT_EQ(g.body, "hello from greeting-1\n");
  EXPECT_EQ(g.version(), 1u);
  EXPECT_EQ(g.header("x-hotswap-build"), "greeting-1");

  const probe_reply j = request(probe_client::post("/json", R"({"numbers":[1,2,3.5]})"));
  EXPECT_EQ(j.status, 200);
  const auto body = nlohmann::json::parse(j.body);
  EXPECT_EQ(body["sum"], 6.5);
  EXPECT_EQ(body["count"], 3);
  EXPECT_EQ(j.header("x-hotswap-build"), "json-1");

  const probe_reply bad = request(probe_client::post("/json", R"({"numbers":)"));
  EXPECT_EQ(bad.status, 400);  // the app's own answer, still stamped
  EXPECT_EQ(bad.header("x-hotswap-build"), "json-1");

  const probe_reply s = request(probe_client::get("/slow?ms=1"));
  EXPECT_EQ(s.status, 200);
  EXPECT_EQ(s.body, "slow-1 waited 1 ms\n");
}

TEST_F(http_test, malformed_requests_get_their_status_and_close_only_their_connection) {
  start();
  probe_client bystander(server_->port());
  probe_reply r;
  ASSERT_EQ(bystander.exchange(probe_client::get("/"), r), probe_error::none);

  const std::vector<refusal_case> cases = {
      {"garbage request line", "NOT HTTP AT ALL\r\n\r\n", 400},
      {"bad version", "GET / HTTP/9.x\r\nHost: x\r\n\r\n", 400},
      {"space in header name", "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400},
      {"bad content-length", "POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400},
      {"header too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(8000, 'a') + "\r\n\r\n", 431},
      {"body too large", "POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n", 413},
      {"unknown method", "BREW / HTTP/1.1\r\nHost: x\r\n\r\n", 501},
      {"unsupported transfer coding", "POST /json HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, identity\r\n\r\n", 501},
  };
  for (const auto& c : cases) expect_refused(c);
  ASSERT_EQ(bystander.exchange(probe_client::get("/"), r), probe_error::none);
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(server_->metrics_text().find("hotswap_http_refused_total{status=\"431\"} 1"), std::string::npos);
}

TEST_F(http_test, a_slow_sender_is_cut_off_by_the_read_timeout) {
  start([](server_config& c) { c.read_timeout = 200ms; });
  probe_client client(server_->port(), 3s);
  ASSERT_EQ(client.connect(), probe_error::none);
  ASSERT_EQ(client.send("GET / HTTP/1.1\r\nHost: x\r\n"), probe_error::none);  // never finishes the header
  EXPECT_TRUE(client.closed_by_peer());
}

TEST_F(http_test, an_idle_keepalive_connection_is_closed_after_the_idle_timeout) {
  start([](server_config& c) { c.idle_timeout = 200ms; });
  probe_client client(server_->port(), 3s);
  probe_reply r;
  ASSERT_EQ(client.exchange(probe_client::get("/"), r), probe_error::none);
  EXPECT_TRUE(client.closed_by_peer());
}

TEST_F(http_test, pipelined_requests_are_answered_in_order) {
  start();
  probe_client client(server_->port());
  ASSERT_EQ(client.connect(), probe_error::none);
  // The slow one first: the fast ones behind it must not overtake it.
  ASSERT_EQ(client.send(probe_client::get("/slow?ms=50") + probe_client::get("/") +
                        probe_client::post("/json", R"({"numbers":[2]})")),
            probe_error::none);
  probe_reply a, b, c;
  ASSERT_EQ(client.receive(a), probe_error::none);
  ASSERT_EQ(client.receive(b), probe_error::none);
  ASSERT_EQ(client.receive(c), probe_error::none);
  EXPECT_EQ(a.header("x-hotswap-build"), "slow-1");
  EXPECT_EQ(b.header("x-hotswap-build"), "greeting-1");
  EXPECT_EQ(c.header("x-hotswap-build"), "json-1");
}

TEST_F(http_test, connections_over_the_limit_get_503) {
  start([](server_config& c) {
    c.max_connections = 1;
    c.threads = 1;
  });
  probe_client first(server_->port());
  probe_reply r;
  ASSERT_EQ(first.exchange(probe_client::get("/"), r), probe_error::none);
  probe_client second(server_->port());
  ASSERT_EQ(second.connect(), probe_error::none);
  probe_reply busy;
  ASSERT_EQ(second.receive(busy), probe_error::none);
  EXPECT_EQ(busy.status, 503);
  first.close();
  EXPECT_TRUE(eventually([&] {
    probe_client third(server_->port());
    probe_reply x;
    return third.exchange(probe_client::get("/"), x) == probe_error::none && x.status == 200;
  }));
}

TEST_F(http_test, a_slow_request_spanning_three_swaps_completes_on_its_starting_version) {
  start();
  auto slow = std::async(std::launch::async, [&] { return request(probe_client::get("/slow?ms=800")); });
  // Started (pending on version 1) before the first swap: its keepalive is held.
  ASSERT_TRUE(eventually([&] {
    for (const auto& v : server_->modules().status("slow"))
      if (v.number == 1 && v.keepalives > 0) return true;
    return false;
  }));
  const char* files[] = {"slow-2.so", "slow-1.so", "slow-2.so"};
  for (const char* f : files) server_->modules().swap("test", "slow", dir_.plugins() / f);
  EXPECT_EQ(server_->modules().module("slow").current_version(), 4u);
  const probe_reply r = slow.get();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.version(), 1u);
  EXPECT_EQ(r.body, "slow-1 waited 800 ms\n");
  // After the swaps, a new request sees the newest version.
  EXPECT_EQ(request(probe_client::get("/slow?ms=0")).version(), 4u);
}

TEST_F(http_test, pinned_connection_keeps_its_version_and_the_policy_switches_at_run_time) {
  start();
  ASSERT_TRUE(server_->set_policy(call_policy::pinned));
  probe_client pinned(server_->port());
  probe_reply r;
  ASSERT_EQ(pinned.exchange(probe_client::get("/"), r), probe_error::none);
  EXPECT_EQ(r.version(), 1u);
  server_->modules().swap("test", "greeting", dir_.plugins() / "greeting-2.so");

  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(pinned.exchange(probe_client::get("/"), r), probe_error::none);
    EXPECT_EQ(r.version(), 1u);  // scenario 4: the connection keeps the version it started with
    EXPECT_EQ(r.body, "hello from greeting-1\n");
  }
  EXPECT_EQ(request(probe_client::get("/")).version(), 2u);  // a new connection pins the newest

  // Per route, through the admin API: back to per-call on "/".
  const probe_reply p = admin("POST", "/admin/policy", R"({"route":"/","policy":"per-call"})");
  EXPECT_EQ(p.status, 200);
  ASSERT_EQ(pinned.exchange(probe_client::get("/"), r), probe_error::none);
  EXPECT_EQ(r.version(), 2u);  // the same connection now gets the newest
  // Its pin on version 1 is gone, so version 1 drains and unloads.
  EXPECT_TRUE(server_->modules().wait_drained("greeting", 1, 10s));
}

TEST_F(http_test, per_call_policy_sees_a_completed_swap_on_the_next_request) {
  start();
  probe_client keepalive(server_->port());
  probe_reply r;
  ASSERT_EQ(keepalive.exchange(probe_client::get("/"), r), probe_error::none);
  EXPECT_EQ(r.version(), 1u);
  const auto swapped = server_->modules().swap("test", "greeting", dir_.plugins() / "greeting-2.so");
  ASSERT_EQ(keepalive.exchange(probe_client::get("/"), r), probe_error::none);
  EXPECT_EQ(r.version(), swapped.version);
  EXPECT_EQ(r.body, "hello from greeting-2\n");
  const version_counts counts = server_->counts();
  EXPECT_EQ((counts.at({"greeting", 1}).by_class[2]), 1u);
  EXPECT_EQ((counts.at({"greeting", 2}).by_class[2]), 1u);
}

TEST_F(http_test, graceful_shutdown_finishes_requests_in_flight_and_stops_accepting) {
  start();
  probe_client idle(server_->port());
  probe_reply r;
  ASSERT_EQ(idle.exchange(probe_client::get("/"), r), probe_error::none);
  auto a = std::async(std::launch::async, [&] { return request(probe_client::get("/slow?ms=400")); });
  auto b = std::async(std::launch::async, [&] { return request(probe_client::get("/slow?ms=300")); });
  ASSERT_TRUE(eventually([&] {
    for (const auto& v : server_->modules().status("slow"))
      if (v.keepalives == 2) return true;
    return false;
  }));
  server_->stop();
  EXPECT_TRUE(idle.closed_by_peer());  // idle keep-alive connections are closed at once
  const probe_reply ra = a.get(), rb = b.get();
  EXPECT_EQ(ra.status, 200);
  EXPECT_EQ(rb.status, 200);
  EXPECT_EQ(ra.header("connection"), "close");
  server_->wait();
  probe_client late(server_->port(), 1s);
  EXPECT_EQ(late.connect(), probe_error::connect);
  server_.reset();
}

}  // namespace
}  // namespace hotswap::http::testing

namespace hotswap::http::testing {
namespace {

// Expect: 100-continue (curl sends it for bodies over 1 KiB): the header alone
// gets "100 Continue", the body is sent only then, and the final answer follows.
// The client's timeout (2 s) bounds every wait; without the 100 it would time out.
probe_reply expect_continue(std::uint16_t port, const std::string& target, const std::string& body,
                            const std::string& extra_headers = {}) {
  probe_client c(port, std::chrono::seconds(2));
  const std::string head = "POST " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
                           extra_headers + "Expect: 100-continue\r\nContent-Length: " + std::to_string(body.size()) +
                           "\r\n\r\n";
  probe_reply r;
  EXPECT_EQ(c.connect(), probe_error::none);
  EXPECT_EQ(c.send(head), probe_error::none);
  EXPECT_EQ(c.receive(r), probe_error::none) << "no interim answer to Expect: 100-continue";
  EXPECT_EQ(r.status, 100);
  if (r.status != 100) return r;
  EXPECT_EQ(c.send(body), probe_error::none);
  EXPECT_EQ(c.receive(r), probe_error::none);
  return r;
}

TEST_F(http_test, expect_100_continue_is_answered_before_the_body_is_read) {
  start();
  std::string numbers = "[1";
  while (numbers.size() < 4096) numbers += ",1";  // over curl's 1 KiB, under the 64 KiB limit
  const std::string body = R"({"numbers":)" + numbers + "]}";
  const probe_reply r = expect_continue(server_->port(), "/json", body);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["count"], (numbers.size() + 1) / 2);
}

TEST_F(http_test, expect_100_continue_over_the_body_limit_gets_413_without_a_100) {
  start();
  probe_client c(server_->port(), std::chrono::seconds(2));
  ASSERT_EQ(c.connect(), probe_error::none);
  ASSERT_EQ(c.send("POST /json HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n"),
            probe_error::none);
  probe_reply r;
  ASSERT_EQ(c.receive(r), probe_error::none);
  EXPECT_EQ(r.status, 413);  // final, from the header alone: no body was asked for
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(http_test, expect_on_an_http_1_0_request_is_ignored) {
  start();
  probe_client c(server_->port(), std::chrono::seconds(2));
  const std::string body = R"({"numbers":[1,2]})";
  ASSERT_EQ(c.connect(), probe_error::none);
  ASSERT_EQ(c.send("POST /json HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: " + std::to_string(body.size()) +
                   "\r\n\r\n" + body),
            probe_error::none);
  probe_reply r;
  ASSERT_EQ(c.receive(r), probe_error::none);
  EXPECT_EQ(r.status, 200);  // RFC 9110 10.1.1: no 100 to an HTTP/1.0 client
}

TEST_F(http_test, the_admin_listener_answers_expect_100_continue_too) {
  start();
  const std::string auth = "Authorization: Bearer " + dir_.token() + "\r\n";
  const std::string body = R"({"module":"greeting","file":"greeting-2.so","pad":")" + std::string(2048, 'x') + "\"}";
  const probe_reply r = expect_continue(server_->admin_port(), "/admin/swap", body, auth);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(request(probe_client::get("/")).body, "hello from greeting-2\n");
}

}  // namespace
}  // namespace hotswap::http::testing
