// toml++'s own checks, as the config adapter compiles it (adapters/config/src/
// toml.hpp): a failed one throws tomlpp_check_failed in every build, never
// aborts and never becomes an assumption. Raw toml++ on input the pre-lexer
// would have refused first.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "toml.hpp"

namespace {

using hotswap::config::detail::tomlpp_check_failed;

TEST(tomlpp_checks, a_failed_check_throws_and_names_it) {
  // A date-shaped token, a space and one digit: toml++ 3.3.0 rescans it as a
  // date-time and asserts that a value terminator cannot follow the digit.
  try {
    (void)toml::parse(std::string_view("c = [ 197;-0=-[[ 7]\n"), std::string_view("check.toml"));
    FAIL() << "toml++ accepted it";
  } catch (const tomlpp_check_failed& e) {
    EXPECT_NE(std::string(e.what()).find("parser.inl:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("is_value_terminator"), std::string::npos) << e.what();
  }
}

TEST(tomlpp_checks, valid_text_still_parses) {
  const toml::table t = toml::parse(std::string_view("c = [1979-05-27 07:32:00, 2]\n"), std::string_view("check.toml"));
  EXPECT_EQ(t["c"].as_array()->size(), 2u);
}

}  // namespace
