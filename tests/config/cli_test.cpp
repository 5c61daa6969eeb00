// hotswap-config, run as an operator would: exit codes and messages, and a
// rollback applied by a running store through its normal save sequence.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include <hotswap/config/store.hpp>

#include "test_support.hpp"

namespace {

using namespace config_test;
using namespace hotswap::config;

/// hotswap-config running in the background, read line by line with a bound.
class background_cli {
 public:
  /// Reads its stdout; its log (stderr) goes to the test's stderr.
  explicit background_cli(const std::string& args) {
    pipe_ = ::popen((std::string(HOTSWAP_CONFIG_CLI) + " " + args).c_str(), "r");
  }
  ~background_cli() {
    if (pipe_ != nullptr) ::pclose(pipe_);
  }
  background_cli(const background_cli&) = delete;
  background_cli& operator=(const background_cli&) = delete;

  /// The next line, or "" if none came within the bound.
  std::string line() {
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + bounded_wait;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{::fileno(pipe_), POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char c = 0;
      if (::read(p.fd, &c, 1) != 1) return out;
      if (c == '\n') return out;
      out += c;
    }
    return out;
  }
  /// The exit code once it ended.
  int wait() {
    const int status = ::pclose(std::exchange(pipe_, nullptr));
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  FILE* pipe_ = nullptr;
};

// What a hotswap-httpd settings file needs besides the limits these tests edit.
const std::string httpd_rest = "[server]\nplugin_dir = \"/srv/plugins\"\n[[routes]]\nprefix = \"/\"\nmodule = \"app\"\n";

class cli_test : public ::testing::Test {
 protected:
  std::string path(const std::string& name) const { return (dir / name).string(); }
  temp_dir dir;
};

TEST_F(cli_test, validate_reports_position_and_exit_code) {
  save_in_place(dir / "httpd.toml", "[limits]\nmax_connections = 10\n" + httpd_rest);
  auto r = cli("validate --schema httpd " + path("httpd.toml"));
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("valid"), std::string::npos);

  save_in_place(dir / "httpd.toml", "[limits]\nmax_connections = 0\n" + httpd_rest);
  r = cli("validate --schema httpd " + path("httpd.toml"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find(path("httpd.toml") + ":2:1: 'limits.max_connections': below the minimum 1"),
            std::string::npos)
      << r.output;

  EXPECT_EQ(cli("validate --schema httpd " + path("missing.toml")).code, 3);
  EXPECT_EQ(cli("validate " + path("httpd.toml")).code, 2);  // no schema
  EXPECT_EQ(cli("frobnicate").code, 2);
  EXPECT_EQ(cli("validate --schema nope " + path("httpd.toml")).code, 2);
}

TEST_F(cli_test, schema_file_written_by_the_program_validates_the_same) {
  const auto described = cli("schema httpd");
  ASSERT_EQ(described.code, 0);
  save_in_place(dir / "httpd.schema.toml", described.output);
  save_in_place(dir / "httpd.toml", "[version]\npolicy = \"per-request\"\n" + httpd_rest);
  const auto r = cli("validate --schema-file " + path("httpd.schema.toml") + " " + path("httpd.toml"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find(":2:1: 'version.policy': \"per-request\" was renamed: write \"per-call\""), std::string::npos)
      << r.output;
  save_in_place(dir / "bad.schema.toml", "[keys.x]\ntype = \"integer\"\nmin = \"low\"\n");
  EXPECT_EQ(cli("validate --schema-file " + path("bad.schema.toml") + " " + path("httpd.toml")).code, 2);
}

// serve: the store on a file, one line per save it handles.
TEST_F(cli_test, serve_prints_every_save_it_handles) {
  const fs::path main = dir / "httpd.toml";
  save_in_place(main, "[limits]\nmax_connections = 10\n" + httpd_rest);
  background_cli served("serve --schema httpd --exit-after 3 " + main.string());
  const std::string first = served.line();
  ASSERT_EQ(first.rfind("serving " + main.string() + " as history 0.0", 0), 0u) << first;

  save_by_rename(main, "[limits]\nmax_connections = 20\n" + httpd_rest);
  EXPECT_EQ(served.line(), "applied as history 0.1 (version 2, 1 changes)");
  EXPECT_EQ(served.line(), "  ~ limits.max_connections = 10 -> 20");
  save_by_rename(main, "[limits]\nmax_connections = 0\n" + httpd_rest);
  EXPECT_EQ(served.line(), "refused " + main.string() +
                               ":2:1: 'limits.max_connections': below the minimum 1 (kept as httpd.error.1.toml); "
                               "version 2 keeps serving");
  save_by_rename(main, "[limits]\nmax_connections = 20 # same value\n" + httpd_rest);
  EXPECT_EQ(served.line(), "unchanged (version 2 keeps serving)");
  EXPECT_EQ(served.line(), "stopped");
  EXPECT_EQ(served.wait(), 0);

  save_in_place(main, "[limits]\nmax_connections = oops\n" + httpd_rest);
  EXPECT_EQ(cli("serve --schema httpd " + path("nothing-valid.toml")).code, 1);
}

// diff with two paths: no anchor file needed.
TEST_F(cli_test, diff_takes_two_paths) {
  save_in_place(dir / "a.toml", "x = 1\n[t]\ny = \"a\"\n");
  save_in_place(dir / "b.toml", "x = 2\n[t]\ny = \"a\"\n");
  auto r = cli("diff " + path("a.toml") + " " + path("b.toml"));
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.output, "~ x = 1 -> 2\n");
  EXPECT_EQ(cli("diff " + path("a.toml") + " " + path("a.toml")).code, 0);
  EXPECT_EQ(cli("diff " + path("a.toml") + " " + path("missing.toml")).code, 3);
}

TEST_F(cli_test, history_diff_rollback_and_error_copies) {
  const fs::path main = dir / "app.toml";
  save_in_place(main, "a = 1\n");
  hotswap::domain dom;
  store cfg(dom, main, test_schema(), quiet_options());
  cfg.start();
  save_by_rename(main, "a = 2\nname = \"two\"\n");
  ASSERT_TRUE(cfg.sync(bounded_wait));
  save_by_rename(main, "a = oops\n");
  ASSERT_TRUE(cfg.sync(bounded_wait));

  auto r = cli("history " + main.string());
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.output.find("0.0\t"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("0.1\t"), std::string::npos) << r.output;

  r = cli("diff " + main.string() + " 0.0 0.1");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("~ a = 1 -> 2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("+ name = \"two\""), std::string::npos) << r.output;
  EXPECT_EQ(cli("diff " + main.string() + " 0.1 0.1").code, 0);
  EXPECT_EQ(cli("diff " + main.string() + " 0.1 7.7").code, 3);

  r = cli("errors " + main.string());
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.output.find("error.1\t" + main.string() + ":1:5:"), std::string::npos) << r.output;
  r = cli("error " + main.string() + " 1");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.output.find("a = oops"), std::string::npos) << r.output;

  // Rollback while the store runs: written as the main file, applied by the
  // watcher through the save sequence as the next history version.
  const int fd = ::open(main.c_str(), O_RDONLY);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  EXPECT_EQ(cli("rollback " + main.string() + " 0.0").code, 4);  // an editor holds the lock
  ::close(fd);
  r = cli("rollback --schema-file /nonexistent " + main.string() + " 0.0");
  EXPECT_EQ(r.code, 2);
  r = cli("rollback " + main.string() + " 0.0");
  EXPECT_EQ(r.code, 0) << r.output;
  ASSERT_TRUE(cfg.sync(bounded_wait));
  EXPECT_EQ(cfg.read()->integer("a"), 1);
  EXPECT_EQ(cfg.read()->string("name"), "x");
  EXPECT_EQ(cfg.serving_history().minor, 2u);
  EXPECT_EQ(cli("diff " + main.string() + " 0.0 0.2").code, 0);
}

}  // namespace
