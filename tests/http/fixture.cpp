#include "fixture.hpp"

#include <sys/stat.h>

#include <fstream>
#include <random>
#include <thread>

namespace hotswap::http::testing {

scratch::scratch() {
  std::random_device rd;
  root_ = fs::temp_directory_path() / ("hotswap-http-test-" + std::to_string(rd()) + std::to_string(::getpid()));
  fs::create_directories(root_ / "plugins");
  fs::permissions(root_, fs::perms::owner_all);
  fs::permissions(root_ / "plugins", fs::perms::owner_all);
  for (const auto& e : fs::directory_iterator(HOTSWAP_HTTP_APP_DIR)) {
    if (e.path().extension() != ".so") continue;
    const fs::path to = plugins() / e.path().filename();
    fs::copy_file(e.path(), to);
    fs::permissions(to, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
  }
  token_ = "test-token-" + std::to_string(rd()) + "-" + std::to_string(rd());
  std::ofstream(token_file()) << token_ << "\n";
  fs::permissions(token_file(), fs::perms::owner_read | fs::perms::owner_write);
}

scratch::~scratch() {
  std::error_code ignored;
  fs::remove_all(root_, ignored);
}

server_config test_config(const scratch& s) {
  server_config c;
  c.port = 0;
  c.admin_port = 0;
  c.threads = 2;
  c.plugin_dir = s.plugins();
  c.shadow_dir = s.root() / "shadow";
  c.admin_token_file = s.token_file();
  c.routes = {{"/", "greeting", "greeting-1.so", {}}, {"/json", "json", "json-1.so", {}}, {"/slow", "slow", "slow-1.so", {}}};
  c.idle_timeout = std::chrono::seconds(5);
  c.read_timeout = std::chrono::seconds(5);
  c.shutdown_timeout = std::chrono::seconds(10);
  c.max_header_bytes = 4096;
  c.max_body_bytes = 64 * 1024;
  return c;
}

void http_test::start(const std::function<void(server_config&)>& adjust) {
  server_config c = test_config(dir_);
  if (adjust) adjust(c);
  server_ = std::make_unique<server>(c);
  server_->start();
}

void http_test::TearDown() {
  if (server_) {
    server_->stop();
    server_->wait();
    server_.reset();
  }
}

void http_test::expect_refused(const refusal_case& c) {
  SCOPED_TRACE(c.name);
  probe_client client(server_->port());
  ASSERT_EQ(client.connect(), probe_error::none);
  ASSERT_EQ(client.send(c.bytes), probe_error::none);
  probe_reply reply;
  ASSERT_EQ(client.receive(reply), probe_error::none);
  EXPECT_EQ(reply.status, c.status) << reply.body;
  if (c.bytes.find(" HTTP/1.0\r\n") == std::string::npos) {  // HTTP/1.0 closes by default
    EXPECT_EQ(reply.header("connection"), "close");
  }
  EXPECT_EQ(reply.version(), 0u);  // the host answered; no application saw it
  EXPECT_TRUE(client.closed_by_peer());
}

probe_reply http_test::request(const std::string& raw) {
  probe_client c(server_->port());
  probe_reply r;
  EXPECT_EQ(c.exchange(raw, r), probe_error::none);
  return r;
}

probe_reply http_test::admin(const std::string& method, const std::string& target, const std::string& body,
                             const std::string* token) {
  probe_client c(server_->admin_port(), std::chrono::seconds(20));
  const std::string auth = "Authorization: Bearer " + (token ? *token : dir_.token()) + "\r\n";
  const std::string raw = method == "GET" ? probe_client::get(target, auth)
                                          : "POST " + target + " HTTP/1.1\r\nHost: x\r\n" + auth +
                                                "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  probe_reply r;
  EXPECT_EQ(c.exchange(raw, r), probe_error::none);
  return r;
}

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace hotswap::http::testing
