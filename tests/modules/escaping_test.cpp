// The audit trail escapes once: the kernel caps and replaces control
// characters, json_lines_sink escapes for JSON, and nlohmann-json reads every
// hostile name back as it was given (control characters and ill-formed UTF-8
// as U+FFFD).
#include <gtest/gtest.h>

#include <hotswap/module/audit.hpp>
#include <nlohmann/json.hpp>
#include <sstream>

#include "../hostile_names.hpp"

namespace hotswap::modules {
namespace {

using nlohmann::json;
using testing::hostile_name;
using testing::hostile_names;

/// One event through sanitized() (as the loader calls its sink) and json_lines_sink.
json through_json_sink(const module_event& e, std::size_t cap) {
  std::ostringstream out;
  json_lines_sink(out)(sanitized(e, cap));
  const std::string text = out.str();
  EXPECT_EQ(text.find('\n'), text.size() - 1) << "one line per event";
  return json::parse(text);
}

module_event event_named(const std::string& text) {
  module_event e;
  e.kind = module_event_kind::refused;
  e.principal = e.module = e.file = e.from_build = e.to_build = e.message = text;
  e.from_version = 3;
  return e;
}

TEST(escaping, json_audit_log_reads_every_hostile_name_back) {
  for (const hostile_name& n : hostile_names()) {
    const json j = through_json_sink(event_named(n.text), 1 << 16);
    for (const char* field : {"principal", "module", "file", "from_build", "to_build", "message"})
      EXPECT_EQ(j.at(field).get<std::string>(), n.audited) << n.what << ": " << field;
    EXPECT_EQ(j.at("kind"), "refused");
    EXPECT_EQ(j.at("from_version"), 3);
  }
}

TEST(escaping, a_capped_name_is_cut_between_characters) {
  // Caps of 256 + k bytes cut the long name ("a\\\"é" repeated) at every offset
  // within its 5-byte pattern, so some cuts fall inside the two-byte é.
  const std::string name = testing::long_name();
  for (std::size_t k = 0; k < 5; ++k) {
    const std::size_t cap = 256 + k;
    module_event e = event_named(name);
    const std::string file = through_json_sink(e, 4 * cap).at("file").get<std::string>();  // fields get cap / 4
    ASSERT_TRUE(file.ends_with("...")) << file;
    const std::string kept = file.substr(0, file.size() - 3);
    EXPECT_LE(kept.size(), cap);
    EXPECT_GE(kept.size(), cap - 1);
    EXPECT_EQ(kept, name.substr(0, kept.size())) << "cut at " << kept.size();
  }
}

}  // namespace
}  // namespace hotswap::modules
