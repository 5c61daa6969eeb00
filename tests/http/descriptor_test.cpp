// hotswap-httpd under a low descriptor limit (issue 25): the default
// connection cap keeps it below RLIMIT_NOFILE, and when descriptors run out
// anyway (an explicit cap far over the limit) accept sheds connections with
// 503 instead of spinning, logs the episode once, and serves again as soon as
// a descriptor frees up. A child process: its descriptor table is its own.
#include <cmath>
#include <memory>

#include "../sanitizer.hpp"
#include "daemon.hpp"

namespace hotswap::http::testing {
namespace {

using namespace std::chrono_literals;
using clients = std::vector<std::unique_ptr<probe_client>>;

std::string scrape(std::uint16_t admin_port, const std::string& token) {
  probe_client c(admin_port);
  probe_reply r;
  EXPECT_EQ(c.exchange(probe_client::get("/metrics", "Authorization: Bearer " + token + "\r\n"), r), probe_error::none);
  EXPECT_EQ(r.status, 200);
  return r.body;
}

// One unlabelled sample of the Prometheus text; NaN when absent.
double sample(const std::string& metrics, const std::string& name) {
  const auto at = metrics.find("\n" + name + " ");
  return at == std::string::npos ? std::nan("") : std::stod(metrics.substr(at + name.size() + 2));
}

// `n` connections that send nothing.
clients open_idle(std::uint16_t port, std::size_t n) {
  clients idle;
  for (std::size_t i = 0; i < n; ++i) {
    idle.push_back(std::make_unique<probe_client>(port));
    EXPECT_EQ(idle.back()->connect(), probe_error::none);
  }
  return idle;
}

int fresh_status(std::uint16_t port) {
  probe_client c(port);
  probe_reply r;
  return c.exchange(probe_client::get("/"), r) == probe_error::none ? r.status : 0;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(http_daemon, the_default_connection_cap_leaves_room_below_the_descriptor_limit) {
  const scratch dir;
  daemon_process d(daemon_args(dir), 256);
  ASSERT_TRUE(d.wait_serving()) << d.log();
  std::string m = scrape(d.admin_port(), dir.token());
  EXPECT_EQ(sample(m, "hotswap_http_descriptor_limit"), 256);
  const double cap = sample(m, "hotswap_http_connections_limit");
  ASSERT_GT(cap, 0);
  ASSERT_LE(cap, 256 - 64);  // the reserve
  // More idle connections than the cap: those over it get 503, and so does
  // a fresh request, but the process never runs out of descriptors.
  clients idle = open_idle(d.port(), static_cast<std::size_t>(cap) + 20);
  EXPECT_EQ(fresh_status(d.port()), 503);
  m = scrape(d.admin_port(), dir.token());
  EXPECT_EQ(sample(m, "hotswap_http_accept_no_descriptors_total"), 0);
  EXPECT_GE(sample(m, "hotswap_http_connections_rejected_total"), 21);
  idle.clear();
  EXPECT_TRUE(eventually([&] { return fresh_status(d.port()) == 200; }));
  EXPECT_EQ(d.terminate(), 0) << d.log();
}

TEST(http_daemon, out_of_descriptors_accept_sheds_instead_of_spinning_and_recovers) {
  // UBSan's vptr check probes memory through a pipe(): in a process with no
  // descriptor left it reports every dynamic type it has not met before as
  // invalid, and dies (a suppression needs the type's name, which it cannot
  // read either).
  if (hotswap::testing::under_asan) GTEST_SKIP() << "the ASan+UBSan build's runtime needs descriptors itself";
  const scratch dir;
  const std::vector<std::string> args = daemon_args(dir, "limits.max_connections = 100000");  // no protection from the cap
  daemon_process d(args, 128);
  ASSERT_TRUE(d.wait_serving()) << d.log();
  // More idle connections than descriptors: the server holds what it can
  // and sheds the rest; the fresh request comes last and is shed too.
  clients idle = open_idle(d.port(), 200);
  EXPECT_EQ(fresh_status(d.port()), 503) << "no answer: accept is stuck on EMFILE";
  // Ten held connections close: their descriptors serve fresh requests again.
  idle.erase(idle.begin(), idle.begin() + 10);
  EXPECT_TRUE(eventually([&] { return fresh_status(d.port()) == 200; }));
  const std::string m = scrape(d.admin_port(), dir.token());
  const double failed = sample(m, "hotswap_http_accept_no_descriptors_total");
  const double shed = sample(m, "hotswap_http_connections_shed_total");
  EXPECT_GE(shed, 1);
  EXPECT_GE(failed, 1);  // each failure sheds what waits, in one go
  EXPECT_LE(failed, shed + 3) << "accept retried without shedding: it spins";
  idle.clear();
  EXPECT_EQ(d.terminate(), 0);
  EXPECT_EQ(count(d.log(), "answering new connections 503"), 1u) << d.log();  // one episode, logged once
  EXPECT_EQ(count(d.log(), "accepting again"), 1u) << d.log();
}

}  // namespace
}  // namespace hotswap::http::testing
