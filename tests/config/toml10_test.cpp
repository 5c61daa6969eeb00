// All of TOML 1.0 in the schema layer (issue #17): arrays of tables with an
// element schema, dates and times with ranges, floats, booleans, nested and
// mixed arrays, quoted keys containing '.'; each loads, is checked, survives
// write-to-disk's round trip (to_toml), and diffs key by key.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include <hotswap/config/diff.hpp>
#include <hotswap/config/loader.hpp>
#include <hotswap/config/schema_file.hpp>
#include <hotswap/config/store.hpp>

#include "test_support.hpp"

namespace {

using namespace config_test;
using namespace hotswap::config;

schema full_schema() {
  schema server;
  server.string("host").required();
  server.integer("port").range(1, 65535).default_to(std::int64_t{80});
  server.string_map("labels");
  schema s;
  s.table_list("servers", server);
  s.date_time("backup.at").between("2020-01-01T00:00:00Z", "2030-01-01T00:00:00Z");
  s.date_time("release").between("2024-01-01", "2026-12-31");
  s.date_time("daily").between("00:00:00", "06:00:00").default_to(value{datetime::parse("03:00:00")});
  s.floating("weights[]").range(0, 1);
  s.boolean("flags[]");
  s.integer("matrix[][]");
  s.string_map("sites");
  return s;
}

const std::string full_text =
    "backup.at = 2024-05-27T07:32:00.5-07:00\n"
    "release = 2025-01-02\n"
    "weights = [0.5, 1.0, 0]\n"
    "flags = [true, false]\n"
    "matrix = [[1, 2], [3]]\n"
    "[sites]\n"
    "\"example.com\" = \"on\"\n"
    "[[servers]]\n"
    "host = \"alpha\"\n"
    "labels.\"tier.zone\" = \"a\"\n"
    "[[servers]]\n"
    "host = \"beta\"\n"
    "port = 8080\n";

TEST(toml10_test, every_kind_of_value_loads_under_its_schema) {
  const schema rules = full_schema();
  const auto r = load(full_text, "full.toml", &rules);
  ASSERT_TRUE(r) << r.error.to_string();
  const snapshot& c = r.doc->values;
  EXPECT_EQ(c.count("servers"), 2u);
  EXPECT_EQ(c.string("servers[0].host"), "alpha");
  EXPECT_EQ(c.integer("servers[0].port"), 80);  // the element's default
  EXPECT_EQ(c.integer("servers[1].port"), 8080);
  EXPECT_EQ(c.section("servers[0].labels").begin()->first, "tier.zone");
  EXPECT_EQ(c.section("sites").begin()->first, "example.com");
  EXPECT_EQ(c.date_time("backup.at").text, "2024-05-27T07:32:00.5-07:00");
  EXPECT_EQ(c.date_time("backup.at").kind, datetime::form::offset_date_time);
  EXPECT_EQ(c.date_time("release").text, "2025-01-02");
  EXPECT_EQ(c.date_time("daily").text, "03:00:00");
  EXPECT_EQ(c.floating("weights[2]"), 0.0);
  EXPECT_TRUE(c.boolean("flags[0]"));
  EXPECT_EQ(c.integer("matrix[1][0]"), 3);
}

TEST(toml10_test, element_and_date_rules_refuse_with_positions) {
  const schema rules = full_schema();
  const auto refused = [&](const std::string& text) { return load(text, "f.toml", &rules).error.to_string(); };
  EXPECT_EQ(refused("[[servers]]\nport = 1\n"), "f.toml:1:1: missing required key 'servers[0].host' (string)");
  EXPECT_EQ(refused("[[servers]]\nhost = \"a\"\nhots = \"b\"\n"), "f.toml:3:1: unknown key 'servers[0].hots'");
  EXPECT_EQ(refused("[[servers]]\nhost = \"a\"\nport = 0\n"), "f.toml:3:1: 'servers[0].port': below the minimum 1");
  EXPECT_EQ(refused("release = 2023-12-31\n"),
            "f.toml:1:1: 'release': 2023-12-31 is before the earliest 2024-01-01");
  // 23:00 UTC the day before: inside the range (offset date-times compare as instants).
  EXPECT_TRUE(load("backup.at = 2030-01-01T01:00:00+02:00\n", "f.toml", &rules));
  EXPECT_EQ(refused("backup.at = 2030-01-01T01:00:00Z\n"),
            "f.toml:1:8: 'backup.at': 2030-01-01T01:00:00Z is after the latest 2030-01-01T00:00:00Z");
  EXPECT_EQ(refused("release = 2025-01-02T00:00:00\n"),
            "f.toml:1:1: 'release': must be a local date (like 2024-01-01), not a local date-time");
  EXPECT_EQ(refused("weights = [0.5, \"x\"]\n"), "f.toml:1:17: 'weights[1]' must be of type float, not string");
  EXPECT_EQ(refused("matrix = [1]\n"), "f.toml:1:11: unknown key 'matrix[0]'");
}

// datetime::parse reads its text as a TOML document: what the pre-lexer refuses
// in a file, and what trips a check inside toml++, is not a date (review of stop 31).
TEST(toml10_test, datetime_parse_refuses_what_would_trip_toml_plus_plus) {
  EXPECT_EQ(datetime::parse("1979-05-27 07:32:00").text, "1979-05-27T07:32:00");
  for (const std::string& bad : {std::string("1979-05-27T$7:32"), std::string("1979-05-27 5 "),
                                 "1" + std::string(116, '_') + "979-05-27 5"})
    EXPECT_THROW(datetime::parse(bad), std::invalid_argument) << bad;
}

// write-to-disk writes to_toml(): every kind comes back the same.
TEST(toml10_test, to_toml_round_trips_every_kind) {
  const schema rules = full_schema();
  const auto r = load(full_text, "full.toml", &rules);
  ASSERT_TRUE(r) << r.error.to_string();
  const std::string text = to_toml(r.doc->values, 3);
  const auto again = load(text, "again.toml", &rules);
  ASSERT_TRUE(again) << again.error.to_string() << "\n" << text;
  EXPECT_EQ(again.doc->values, r.doc->values) << text;
  EXPECT_EQ(again.doc->history_major, 3u);

  // Without a schema too, with mixed and nested arrays and empty tables in them.
  const std::string mixed =
      "mixed = [1, \"a\", 2.5, [true, 1979-05-27], {x = 1}]\n"
      "aot = [{}, {y = [[]]}]\n"
      "\"a.b\".\"c[0]\" = 1\n";
  const auto plain = load(mixed, "mixed.toml", nullptr);
  ASSERT_TRUE(plain) << plain.error.to_string();
  EXPECT_EQ(plain.doc->values.string("mixed[1]"), "a");
  EXPECT_EQ(plain.doc->values.date_time("mixed[3][1]").text, "1979-05-27");
  EXPECT_EQ(plain.doc->values.integer("mixed[4].x"), 1);
  EXPECT_EQ(plain.doc->values.integer("\"a.b\".\"c[0]\""), 1);
  const auto plain_again = load(to_toml(plain.doc->values, std::nullopt), "again.toml", nullptr);
  ASSERT_TRUE(plain_again) << plain_again.error.to_string();
  EXPECT_EQ(plain_again.doc->values, plain.doc->values);
}

// A running store applies an edit inside an array of tables as one key's change.
TEST(toml10_test, a_store_diffs_arrays_of_tables_key_by_key) {
  temp_dir dir;
  const fs::path main = dir / "app.toml";
  save_in_place(main, full_text);
  hotswap::domain dom;
  store cfg(dom, main, full_schema(), quiet_options());
  std::string edited = full_text;
  edited.replace(edited.find("port = 8080"), 11, "port = 8081");
  save_in_place(main, edited);
  const auto report = cfg.reload();
  ASSERT_EQ(report.result, save_report::outcome::applied) << report.error->to_string();
  ASSERT_EQ(report.changes.size(), 1u);
  EXPECT_EQ(report.changes[0].to_string(), "~ servers[1].port = 8080 -> 8081");

  ASSERT_TRUE(cfg.update(cfg.version(), {{"servers[1].host", value{std::string("gamma")}}}));
  ASSERT_EQ(cfg.write_to_disk().result, write_result::status::written);
  store restarted(dom, main, full_schema(), quiet_options());
  EXPECT_EQ(restarted.read()->string("servers[1].host"), "gamma");
  EXPECT_EQ(*restarted.read(), *cfg.read());
}

// The schema description carries date-time ranges and element keys.
TEST(toml10_test, schema_descriptions_carry_the_new_rules) {
  const schema described = parse_schema(describe_schema(full_schema()), "described.toml");
  const auto r = load(full_text, "full.toml", &described);
  ASSERT_TRUE(r) << r.error.to_string();
  EXPECT_EQ(load("release = 2023-12-31\n", "f.toml", &described).error.reason,
            "'release': 2023-12-31 is before the earliest 2024-01-01");
}

}  // namespace
