// hotswap-config, run as an operator would: exit codes and messages, and a
// rollback applied by a running store through its normal save sequence.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <string>

#include <hotswap/config/store.hpp>

#include "test_support.hpp"

namespace {

using namespace config_test;
using namespace hotswap::config;

struct run_result {
  int code = -1;
  std::string output;  ///< stdout and stderr
};

run_result cli(const std::string& args) {
  run_result r;
  const std::string command = std::string(HOTSWAP_CONFIG_CLI) + " " + args + " 2>&1";
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buffer{};
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), p)) > 0) r.output.append(buffer.data(), n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class CliTest : public ::testing::Test {
 protected:
  std::string path(const std::string& name) const { return (dir / name).string(); }
  temp_dir dir;
};

TEST_F(CliTest, ValidateReportsPositionAndExitCode) {
  save_in_place(dir / "httpd.toml", "[limits]\nmax_connections = 10\n");
  auto r = cli("validate --schema httpd " + path("httpd.toml"));
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("valid"), std::string::npos);

  save_in_place(dir / "httpd.toml", "[limits]\nmax_connections = 0\n");
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

TEST_F(CliTest, SchemaFileWrittenByTheProgramValidatesTheSame) {
  const auto described = cli("schema httpd");
  ASSERT_EQ(described.code, 0);
  save_in_place(dir / "httpd.schema.toml", described.output);
  save_in_place(dir / "httpd.toml", "[log]\nlevel = \"loud\"\n");
  const auto r = cli("validate --schema-file " + path("httpd.schema.toml") + " " + path("httpd.toml"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find(":2:1: 'log.level': \"loud\" is not one of: debug, info, warn, error"), std::string::npos)
      << r.output;
  save_in_place(dir / "bad.schema.toml", "[keys.x]\ntype = \"integer\"\nmin = \"low\"\n");
  EXPECT_EQ(cli("validate --schema-file " + path("bad.schema.toml") + " " + path("httpd.toml")).code, 2);
}

TEST_F(CliTest, HistoryDiffRollbackAndErrorCopies) {
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
