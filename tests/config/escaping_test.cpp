// The config adapter's writer escapes once, with toml++'s formatter: hostile
// strings written by write_to_disk() read back through toml++ as they were
// given (ill-formed UTF-8 as U+FFFD: TOML text is UTF-8), and a diff line
// stays one line.
#include <gtest/gtest.h>

#include <hotswap/config/store.hpp>

#include "../hostile_names.hpp"
#include "test_support.hpp"
#include "toml.hpp"

namespace {

using namespace config_test;
using namespace hotswap::config;
using hotswap::testing::hostile_name;
using hotswap::testing::hostile_names;

TEST(escaping, written_toml_reads_every_hostile_string_back) {
  temp_dir dir;
  hotswap::domain dom;
  const fs::path main = dir / "app.toml";
  save_in_place(main, "a = 1\n");
  store cfg(dom, main, test_schema(), quiet_options());
  const std::vector<hostile_name> names = hostile_names();
  std::vector<edit> edits;
  for (const hostile_name& n : names) edits.push_back({std::string("routes.") + n.what, value{n.text}});
  edits.push_back({"tags", value{std::vector<std::string>{names[0].text, names[2].text, names[3].text}}});
  ASSERT_TRUE(cfg.update(cfg.version(), edits));
  ASSERT_TRUE(cfg.write_to_disk());

  const toml::table file = toml::parse_file(main.string());  // throws (fails the test) on a writer's mistake
  for (const hostile_name& n : names)
    EXPECT_EQ(file["routes"][n.what].value<std::string>().value_or("<missing>"), n.as_utf8) << n.what;
  const toml::array* tags = file["tags"].as_array();
  ASSERT_NE(tags, nullptr);
  ASSERT_EQ(tags->size(), 3U);
  EXPECT_EQ((*tags)[0].value<std::string>(), names[0].as_utf8);
  EXPECT_EQ((*tags)[1].value<std::string>(), names[2].as_utf8);
  EXPECT_EQ((*tags)[2].value<std::string>(), names[3].as_utf8);
}

TEST(escaping, a_value_is_one_line_of_toml) {
  for (const hostile_name& n : hostile_names()) {
    const std::string text = to_toml_text(value{n.text});
    EXPECT_EQ(text.find('\n'), std::string::npos) << n.what << ": " << text;
    const toml::table t = toml::parse("k = " + text);
    EXPECT_EQ(t["k"].value<std::string>().value_or("<missing>"), n.as_utf8) << n.what;
  }
}

}  // namespace
