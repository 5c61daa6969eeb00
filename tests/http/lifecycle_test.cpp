// Starting and stopping as a careless operator would (issue 25): what sits at
// the admin socket's path, the socket file after SIGTERM, a FIFO as the token
// file, and connections that arrive before startup has finished.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <sstream>

#include "daemon.hpp"

namespace hotswap::http::testing {
namespace {

using namespace std::chrono_literals;

// A Unix stream socket bound at `path`; listening if `listen`.
int unix_socket_at(const fs::path& path, bool listen) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  EXPECT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  if (listen) {
    EXPECT_EQ(::listen(fd, 4), 0);
  }
  return fd;
}

// Can a client connect to `path`?
bool unix_connectable(const fs::path& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

class http_admin_socket : public http_test {
 protected:
  void start_on_socket() {
    start([&](server_config& c) {
      c.admin_socket = sock_;
      c.admin_uids = {::geteuid()};
    });
  }
  // The config_error of a start on sock_, or "" when it started.
  std::string refusal() {
    try {
      start_on_socket();
    } catch (const config_error& e) {
      return e.what();
    }
    return {};
  }
  fs::path sock_ = dir_.root() / "admin.sock";
};

TEST_F(http_admin_socket, a_regular_file_at_the_path_is_refused_and_kept) {
  std::ofstream(sock_) << "precious\n";
  const std::string why = refusal();
  EXPECT_NE(why.find(sock_.string()), std::string::npos) << why;
  EXPECT_NE(why.find("not a socket"), std::string::npos) << why;
  std::stringstream kept;
  kept << std::ifstream(sock_).rdbuf();
  EXPECT_EQ(kept.str(), "precious\n");
}

TEST_F(http_admin_socket, a_live_socket_at_the_path_is_refused_and_keeps_listening) {
  const int live = unix_socket_at(sock_, true);
  const std::string why = refusal();
  EXPECT_NE(why.find("another process listens"), std::string::npos) << why;
  EXPECT_TRUE(unix_connectable(sock_));
  ::close(live);
}

TEST_F(http_admin_socket, a_stale_socket_at_the_path_is_replaced) {
  ::close(unix_socket_at(sock_, false));  // bound, never listened, closed: what a crash leaves
  ASSERT_TRUE(fs::is_socket(fs::symlink_status(sock_)));
  EXPECT_EQ(refusal(), "");
  EXPECT_TRUE(unix_connectable(sock_));
  TearDown();
  server_.reset();
  EXPECT_FALSE(fs::exists(fs::symlink_status(sock_)));
}

TEST(http_daemon, the_admin_socket_is_removed_at_every_clean_shutdown) {
  const scratch dir;
  const fs::path sock = dir.root() / "admin.sock";
  const std::vector<std::string> args = daemon_args(
      dir, "admin.enabled = false\nadmin.socket = \"" + sock.string() + "\"\nadmin.uids = [" + std::to_string(::geteuid()) + "]");
  for (int run = 0; run < 30; ++run) {
    SCOPED_TRACE("run " + std::to_string(run));
    daemon_process d(args);
    ASSERT_TRUE(d.wait_serving()) << d.log();
    ASSERT_TRUE(fs::is_socket(fs::symlink_status(sock)));
    ASSERT_EQ(d.terminate(), 0) << d.log();
    ASSERT_FALSE(fs::exists(fs::symlink_status(sock))) << "left behind after exit 0";
  }
}

TEST_F(http_test, a_fifo_as_the_token_file_is_refused_without_waiting_for_a_writer) {
  const fs::path fifo = dir_.root() / "token.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto started = std::async(std::launch::async, [&]() -> std::string {
    try {
      start([&](server_config& c) { c.admin_token_file = fifo; });
    } catch (const config_error& e) {
      return e.what();
    }
    return "started";
  });
  const bool answered = started.wait_for(20s) == std::future_status::ready;
  if (!answered) {  // unblock the start so the test ends: a writer comes and goes
    const int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (w >= 0) ::close(w);
  }
  ASSERT_TRUE(answered) << "the start waits on the FIFO";
  const std::string why = started.get();
  EXPECT_NE(why.find(fifo.string()), std::string::npos) << why;
  EXPECT_NE(why.find("not a regular file"), std::string::npos) << why;
}

TEST_F(http_test, the_application_port_accepts_only_once_startup_has_finished) {
  server_ = std::make_unique<server>(test_config(dir_));  // constructed: modules loaded, ports bound
  probe_client early(server_->port(), 2s);
  EXPECT_EQ(early.connect(), probe_error::connect);
  probe_client early_admin(server_->admin_port(), 2s);
  EXPECT_EQ(early_admin.connect(), probe_error::connect);
  server_->start();
  EXPECT_EQ(request(probe_client::get("/")).status, 200);
}

}  // namespace
}  // namespace hotswap::http::testing
