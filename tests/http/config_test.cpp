// Settings: the command line, the config file, and their errors.
#include <fstream>

#include <hotswap/http/admin_request.hpp>

#include "fixture.hpp"

namespace hotswap::http::testing {
namespace {

TEST(http_config, command_line_overrides_the_config_file) {
  scratch dir;
  const fs::path file = dir.root() / "httpd.conf";
  std::ofstream(file) << "# comment\nlisten = 127.0.0.1:9000\nroute = /=greeting:greeting-1.so\nthreads = 3\n"
                         "route = /slow=slow:slow-1.so@pinned\n";
  const char* argv[] = {"hotswap-httpd", "--config", file.c_str(), "--threads", "5", "--policy=pinned"};
  const command_line cl = parse_command_line(6, argv);
  EXPECT_EQ(cl.config.port, 9000);
  EXPECT_EQ(cl.config.threads, 5u);
  EXPECT_EQ(cl.config.policy, version_policy::pinned);
  ASSERT_EQ(cl.config.routes.size(), 2u);
  EXPECT_EQ(cl.config.routes[1].module, "slow");
  EXPECT_EQ(cl.config.routes[1].policy, version_policy::pinned);
}

TEST(http_config, errors_name_the_file_line_and_option) {
  scratch dir;
  const fs::path file = dir.root() / "bad.conf";
  std::ofstream(file) << "threads = 2\nlisten = nowhere\n";
  const char* argv[] = {"hotswap-httpd", "--config", file.c_str()};
  try {
    parse_command_line(3, argv);
    FAIL() << "no error";
  } catch (const config_error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.conf:2: listen"), std::string::npos) << e.what();
  }
  const char* argv2[] = {"hotswap-httpd", "--max-body-bytes", "lots"};
  EXPECT_THROW(parse_command_line(3, argv2), config_error);
  const char* argv3[] = {"hotswap-httpd", "--help"};
  EXPECT_TRUE(parse_command_line(2, argv3).help);
}

TEST(http_admin_request, bearer_tokens_compare_whole) {
  EXPECT_TRUE(constant_time_equal("secret-token", "secret-token"));
  EXPECT_FALSE(constant_time_equal("secret-token", "secret-toke"));
  EXPECT_FALSE(constant_time_equal("", "x"));
  EXPECT_EQ(bearer_token("Bearer abc"), std::string_view("abc"));
  EXPECT_EQ(bearer_token("bearer abc"), std::string_view("abc"));
  EXPECT_FALSE(bearer_token("Basic abc"));
  EXPECT_FALSE(bearer_token("Bearer "));
}

}  // namespace
}  // namespace hotswap::http::testing
