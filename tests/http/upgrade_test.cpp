// Host upgrade (issue 21): POST /admin/upgrade starts a new hotswap-httpd that
// takes over the listeners and the idle keep-alive connections of the running
// one. Real processes and sockets: the old server is a child of the test, the
// new one its grandchild (the test is a subreaper, so it reaps it). Every
// request a client sends is answered exactly once, whichever process answers.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "daemon.hpp"

namespace hotswap::http::testing {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

// The new server of an upgrade: our grandchild, reparented to us (subreaper)
// when the old one exits. SIGTERM and reaped at the end of the test.
class successor {
 public:
  explicit successor(pid_t pid) : pid_(pid) {}
  ~successor() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 3000; ++i) {  // 30 s: its grace for requests in flight is shorter
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_ || (errno == ECHILD && ::kill(pid_, 0) != 0)) return;
      std::this_thread::sleep_for(10ms);
    }
    ::kill(pid_, SIGKILL);
  }
  successor(const successor&) = delete;
  successor& operator=(const successor&) = delete;

 private:
  pid_t pid_;
};

class http_upgrade : public ::testing::Test {
 protected:
  void SetUp() override { ::prctl(PR_SET_CHILD_SUBREAPER, 1); }

  // The daemon's settings file (daemon_args()) with the slow application at
  // /slow and a 3 s drain; `threads` workers; `more`: top-level lines.
  std::vector<std::string> args(unsigned threads = 1, const std::string& more = {}) const {
    std::vector<std::string> a = daemon_args(dir_, "timeouts.upgrade_drain_ms = 3000\n" + more +
                                                       "[[routes]]\nprefix = \"/slow\"\nmodule = \"slow\"\n"
                                                       "file = \"slow-1.so\"\n");
    if (threads != 1) {
      const fs::path file = a.back();
      std::stringstream in;
      in << std::ifstream(file).rdbuf();
      std::string text = in.str();
      const std::string one = "server.threads = 1\n";
      text.replace(text.find(one), one.size(), "server.threads = " + std::to_string(threads) + "\n");
      std::ofstream(file) << text;
    }
    return a;
  }

  probe_reply admin(std::uint16_t port, const std::string& method, const std::string& target,
                    const std::string& body = {}) {
    probe_client c(port, 60s);
    const std::string auth = "Authorization: Bearer " + dir_.token() + "\r\n";
    probe_reply r;
    EXPECT_EQ(c.exchange(method == "GET" ? probe_client::get(target, auth) : probe_client::post(target, body, auth), r),
              probe_error::none);
    return r;
  }
  probe_reply upgrade(std::uint16_t admin_port, const std::string& binary = HOTSWAP_HTTPD) {
    return admin(admin_port, "POST", "/admin/upgrade", json{{"binary", binary}}.dump());
  }

  // An executable script of ours in the scratch directory.
  std::string script(const std::string& name, const std::string& body) const {
    const fs::path p = dir_.root() / name;
    std::ofstream(p) << "#!/bin/sh\n" << body << "\n";
    fs::permissions(p, fs::perms::owner_all);
    return p.string();
  }

  // The sum of a counter family's samples in the Prometheus text.
  static double total(const std::string& metrics, const std::string& family) {
    double sum = 0;
    std::size_t at = 0;
    while ((at = metrics.find("\n" + family, at)) != std::string::npos) {
      at += 1;
      const auto end = metrics.find('\n', at);
      const std::string line = metrics.substr(at, end - at);
      const char next = line[family.size()];
      if (next == '{' || next == ' ') sum += std::stod(line.substr(line.rfind(' ') + 1));
    }
    return sum;
  }

  scratch dir_;
};

TEST_F(http_upgrade, listeners_idle_connections_and_counters_move_to_the_new_process) {
  daemon_process old(args());
  ASSERT_TRUE(old.wait_serving()) << old.log();
  std::vector<std::unique_ptr<probe_client>> idle;
  for (int i = 0; i < 3; ++i) {
    idle.push_back(std::make_unique<probe_client>(old.port()));
    probe_reply r;
    ASSERT_EQ(idle.back()->exchange(probe_client::get("/"), r), probe_error::none);
    ASSERT_EQ(r.status, 200);
  }
  const probe_reply up = upgrade(old.admin_port());
  ASSERT_EQ(up.status, 200) << up.body << old.log();
  const json outcome = json::parse(up.body);
  successor next(outcome["pid"].get<pid_t>());
  EXPECT_EQ(outcome["connections_handed_over"], 3) << up.body;
  EXPECT_EQ(outcome["connections_closed_at_deadline"], 0) << up.body;
  ASSERT_EQ(old.terminate(), 0) << "the old process exits 0 once it has handed over\n" << old.log();

  // The old process is gone: whatever answers now is the new one, on the same connections and ports.
  for (auto& c : idle) {
    probe_reply r;
    ASSERT_EQ(c->exchange(probe_client::get("/"), r), probe_error::none);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("x-hotswap-build"), "greeting-1");
  }
  probe_client fresh(old.port());
  probe_reply r;
  ASSERT_EQ(fresh.exchange(probe_client::get("/"), r), probe_error::none);
  EXPECT_EQ(r.status, 200);
  // Counters continue: the 3 answers of the old process, the 4 of the new one.
  const std::string metrics = admin(old.admin_port(), "GET", "/metrics").body;
  EXPECT_EQ(total(metrics, "hotswap_http_requests_total"), 7) << metrics;
  EXPECT_EQ(total(metrics, "hotswap_http_upgrades_total"), 1) << metrics;
  EXPECT_EQ(total(metrics, "hotswap_http_upgrade_connections_handed_over_total"), 3) << metrics;
  // The audit line of the upgrade, carried with the rest of the audit trail.
  const std::string status = admin(old.admin_port(), "GET", "/admin/status").body;
  EXPECT_NE(status.find("took over"), std::string::npos) << status;
  EXPECT_NE(old.log().find("audit: upgrade"), std::string::npos) << old.log();
}

TEST_F(http_upgrade, module_versions_continue_from_the_old_process_numbering) {
  daemon_process old(args());
  ASSERT_TRUE(old.wait_serving()) << old.log();
  for (const char* file : {"greeting-2.so", "greeting-1.so"}) {
    const probe_reply r = admin(old.admin_port(), "POST", "/admin/swap", json{{"module", "greeting"}, {"file", file}}.dump());
    ASSERT_EQ(r.status, 200) << r.body;
  }
  probe_client client(old.port());
  probe_reply r;
  ASSERT_EQ(client.exchange(probe_client::get("/"), r), probe_error::none);
  ASSERT_EQ(r.header("x-hotswap-version"), "3");

  const probe_reply up = upgrade(old.admin_port());
  ASSERT_EQ(up.status, 200) << up.body << old.log();
  successor next(json::parse(up.body)["pid"].get<pid_t>());
  ASSERT_EQ(old.terminate(), 0) << old.log();
  // The new process serves the same bytes as a version numbered after the old one's.
  ASSERT_EQ(client.exchange(probe_client::get("/"), r), probe_error::none);
  EXPECT_EQ(r.header("x-hotswap-version"), "4");
  EXPECT_EQ(r.header("x-hotswap-build"), "greeting-1");
  const probe_reply swapped =
      admin(old.admin_port(), "POST", "/admin/swap", json{{"module", "greeting"}, {"file", "greeting-2.so"}}.dump());
  ASSERT_EQ(swapped.status, 200) << swapped.body;
  ASSERT_EQ(client.exchange(probe_client::get("/"), r), probe_error::none);
  EXPECT_EQ(r.header("x-hotswap-version"), "5");
  EXPECT_EQ(r.header("x-hotswap-build"), "greeting-2");
}

TEST_F(http_upgrade, requests_sent_during_the_handover_are_answered_exactly_once) {
  daemon_process old(args(2));
  ASSERT_TRUE(old.wait_serving()) << old.log();
  std::atomic<bool> upgraded{false};
  std::atomic<std::uint64_t> answered{0}, failed{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t)
    clients.emplace_back([&, t] {
      probe_client c(old.port(), 10s);
      const bool keepalive = t != 0;  // one client opens a connection per request
      // Bounded: until 200 requests after the upgrade returned, or 20,000 in all.
      for (int after = 0, n = 0; after < 200 && n < 20000; ++n) {
        if (upgraded.load()) ++after;
        probe_reply r;
        const probe_error e = c.exchange(probe_client::get("/", keepalive ? "" : "Connection: close\r\n"), r);
        if (e != probe_error::none || r.status != 200) ++failed;
        else ++answered;
        if (!keepalive || e != probe_error::none) c.close();
      }
    });
  std::this_thread::sleep_for(200ms);
  const probe_reply up = upgrade(old.admin_port());
  upgraded.store(true);
  for (auto& t : clients) t.join();
  ASSERT_EQ(up.status, 200) << up.body << old.log();
  successor next(json::parse(up.body)["pid"].get<pid_t>());
  ASSERT_EQ(old.terminate(), 0) << old.log();
  EXPECT_EQ(failed.load(), 0u);
  EXPECT_GE(json::parse(up.body)["connections_handed_over"].get<int>(), 3) << up.body;
  // Exactly once: the server's count (the old process's carried over) is the clients'.
  const std::string metrics = admin(old.admin_port(), "GET", "/metrics").body;
  EXPECT_EQ(total(metrics, "hotswap_http_requests_total"), static_cast<double>(answered.load())) << metrics;
}

TEST_F(http_upgrade, a_pipelined_pair_split_across_the_handover_is_answered_in_order) {
  daemon_process old(args());
  ASSERT_TRUE(old.wait_serving()) << old.log();
  probe_client c(old.port(), 30s);
  ASSERT_EQ(c.connect(), probe_error::none);
  // A slow request in flight, and the first half of the next one behind it.
  ASSERT_EQ(c.send(probe_client::get("/slow?ms=1500") + "GET /?second HTTP/1.1\r\nHost: x\r\n"), probe_error::none);
  auto up = std::async(std::launch::async, [&] { return upgrade(old.admin_port()); });
  probe_reply first;
  ASSERT_EQ(c.receive(first), probe_error::none);
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.header("x-hotswap-build"), "slow-1");
  const probe_reply answer = up.get();
  ASSERT_EQ(answer.status, 200) << answer.body << old.log();
  successor next(json::parse(answer.body)["pid"].get<pid_t>());
  EXPECT_EQ(json::parse(answer.body)["connections_handed_over"], 1) << answer.body;
  ASSERT_EQ(old.terminate(), 0) << old.log();
  // The second request's end reaches the new process, which has its beginning.
  ASSERT_EQ(c.send("\r\n"), probe_error::none);
  probe_reply second;
  ASSERT_EQ(c.receive(second), probe_error::none) << old.log();
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(second.header("x-hotswap-build"), "greeting-1");
}

TEST_F(http_upgrade, a_failing_new_process_leaves_the_old_one_serving_and_the_call_says_why) {
  daemon_process old(args());
  ASSERT_TRUE(old.wait_serving()) << old.log();
  probe_client kept(old.port());
  probe_reply r;
  ASSERT_EQ(kept.exchange(probe_client::get("/"), r), probe_error::none);
  auto refused = [&](const std::string& binary, const std::string& why, int status = 422) {
    SCOPED_TRACE(binary + ": " + why);
    const probe_reply up = upgrade(old.admin_port(), binary);
    EXPECT_EQ(up.status, status) << up.body;
    EXPECT_NE(up.body.find(why), std::string::npos) << up.body;
    probe_reply again;
    ASSERT_EQ(kept.exchange(probe_client::get("/"), again), probe_error::none) << "the kept connection still serves";
    EXPECT_EQ(again.status, 200);
  };
  refused(script("crash.sh", "kill -SEGV $$"), "killed by signal 11");
  refused(script("exit.sh", "exit 3"), "exited with status 3");
  refused("/nonexistent/hotswap-httpd", "cannot be read", 403);
  // Bad settings: the token file is readable by others now (the old process read it at start).
  fs::permissions(dir_.token_file(), fs::perms::group_read | fs::perms::others_read, fs::perm_options::add);
  refused(HOTSWAP_HTTPD, "readable by its owner only");
  fs::permissions(dir_.token_file(), fs::perms::owner_read | fs::perms::owner_write);
  // A refused application: the file the new process would load is not a plugin any more.
  const fs::path plugin = dir_.plugins() / "greeting-1.so";
  const fs::path saved = dir_.root() / "greeting-1.so.saved";
  fs::rename(plugin, saved);
  std::ofstream(plugin) << "not an ELF file";
  fs::permissions(plugin, fs::perms::owner_read | fs::perms::owner_write);
  refused(HOTSWAP_HTTPD, "greeting-1.so");
  fs::remove(plugin);
  fs::rename(saved, plugin);
  const std::string status = admin(old.admin_port(), "GET", "/admin/status").body;
  EXPECT_EQ(json::parse(status)["upgrade"]["failed"], 4) << status;
  // And a good binary still takes over afterwards.
  const probe_reply up = upgrade(old.admin_port());
  ASSERT_EQ(up.status, 200) << up.body;
  successor next(json::parse(up.body)["pid"].get<pid_t>());
  EXPECT_EQ(old.terminate(), 0) << old.log();
}

TEST_F(http_upgrade, a_second_upgrade_while_one_runs_is_409) {
  daemon_process old(args());
  ASSERT_TRUE(old.wait_serving()) << old.log();
  // The first new process takes a second to start: time for the second call.
  const std::string slow_start = script("slow-start.sh", "sleep 1; exec " + std::string(HOTSWAP_HTTPD) + " \"$@\"");
  auto first = std::async(std::launch::async, [&] { return upgrade(old.admin_port(), slow_start); });
  std::this_thread::sleep_for(300ms);
  const probe_reply second = upgrade(old.admin_port());
  EXPECT_EQ(second.status, 409) << second.body;
  EXPECT_NE(second.body.find("an upgrade is already running"), std::string::npos) << second.body;
  const probe_reply done = first.get();
  ASSERT_EQ(done.status, 200) << done.body << old.log();
  successor next(json::parse(done.body)["pid"].get<pid_t>());
  EXPECT_EQ(old.terminate(), 0) << old.log();
}

// --takeover refuses a socket anyone else could have placed or reached, and a
// server other than the one that started it.
TEST_F(http_upgrade, the_takeover_socket_must_be_private_and_its_server_our_parent) {
  auto refusal = [&](const fs::path& sock) {
    std::vector<std::string> a = args(1, "timeouts.upgrade_timeout_ms = 5000\n");
    a.insert(a.end(), {"--takeover", sock.string()});
    daemon_process d(a);
    EXPECT_FALSE(d.wait_serving(30s));
    EXPECT_EQ(d.terminate(), 1) << "could not start";
    return d.log();
  };
  auto listening_socket = [](const fs::path& path) {
    const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    EXPECT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd, 4), 0);
    return fd;
  };
  const fs::path open_dir = dir_.root() / "open";
  fs::create_directory(open_dir);
  fs::permissions(open_dir, fs::perms::all);
  const int in_open_dir = listening_socket(open_dir / "t.sock");
  EXPECT_NE(refusal(open_dir / "t.sock").find("writable by nobody else"), std::string::npos);
  const fs::path private_dir = dir_.root() / "private";
  fs::create_directory(private_dir);
  fs::permissions(private_dir, fs::perms::owner_all);
  const int open_mode = listening_socket(private_dir / "open.sock");
  fs::permissions(private_dir / "open.sock", fs::perms::all);
  EXPECT_NE(refusal(private_dir / "open.sock").find("mode 0600"), std::string::npos);
  // A private socket, but its listener (another child of ours) did not start the server.
  const pid_t other = ::fork();
  if (other == 0) {
    listening_socket(private_dir / "t.sock");
    ::chmod((private_dir / "t.sock").c_str(), 0600);
    ::pause();
    ::_exit(0);
  }
  ASSERT_TRUE(eventually([&] { return fs::exists(private_dir / "t.sock") && (fs::status(private_dir / "t.sock").permissions() & fs::perms::group_all) == fs::perms::none; }));
  EXPECT_NE(refusal(private_dir / "t.sock").find("not this user's server that started us"), std::string::npos);
  ::kill(other, SIGKILL);
  ::waitpid(other, nullptr, 0);
  for (const int fd : {in_open_dir, open_mode}) ::close(fd);
}

}  // namespace
}  // namespace hotswap::http::testing
