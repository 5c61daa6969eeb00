// The official toml-test suite (toml-lang/toml-test, TOML 1.0.0 files; see
// toml-test/README.md) run through `hotswap-config check`: every valid file
// must be accepted and decode to its .json (compared by toml-test's own rules:
// floats by value, date-times as instants or normalised local values), every
// invalid file refused with exit code 1 and an error at a line and column.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <hotswap/config/diff.hpp>
#include <hotswap/config/loader.hpp>
#include <nlohmann/json.hpp>

#include "test_support.hpp"

namespace {

using config_test::cli;
using nlohmann::json;

const std::string suite = TOML_TEST_DIR;

std::vector<std::string> files(std::string_view kind) {
  std::ifstream list(suite + "/files-toml-1.0.0");
  std::vector<std::string> out;
  for (std::string line; std::getline(list, line);)
    if (line.starts_with(kind) && line.ends_with(".toml")) out.push_back(line);
  return out;
}

std::string shell_quote(const std::string& s) { return "'" + s + "'"; }

/// toml-test's date-time normalisation: ' ' and 't' as 'T', 'z' as 'Z', and
/// (as Go's time.Parse reads them) fractional seconds without trailing zeros.
std::string normal_datetime(std::string s) {
  for (char& c : s) {
    if (c == ' ' || c == 't') c = 'T';
    if (c == 'z') c = 'Z';
  }
  if (const auto dot = s.find('.'); dot != std::string::npos) {
    auto end = dot + 1;
    while (end < s.size() && std::isdigit(static_cast<unsigned char>(s[end]))) ++end;
    auto last = end;
    while (last > dot + 1 && s[last - 1] == '0') --last;
    s.erase(last == dot + 1 ? dot : last, end - (last == dot + 1 ? dot : last));
  }
  return s;
}

/// An offset date-time as (seconds since the epoch, fraction digits).
std::pair<long long, std::string> instant(const std::string& text) {
  const std::string s = normal_datetime(text);
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0;
  std::sscanf(s.c_str(), "%d-%d-%dT%d:%d:%d", &y, &mo, &d, &h, &mi, &se);
  std::string fraction;
  std::size_t at = 19;
  if (at < s.size() && s[at] == '.') {
    while (++at < s.size() && std::isdigit(static_cast<unsigned char>(s[at]))) fraction += s[at];
  }
  int offset = 0;
  if (at < s.size() && (s[at] == '+' || s[at] == '-')) {
    int oh = 0, om = 0;
    std::sscanf(s.c_str() + at + 1, "%d:%d", &oh, &om);
    offset = (s[at] == '-' ? -1 : 1) * (oh * 60 + om);
  }
  // Days from civil (H. Hinnant's algorithm).
  y -= mo <= 2;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const int yoe = y - era * 400;
  const int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const long long days = era * 146097LL + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
  return {days * 86400 + h * 3600 + mi * 60 + se - offset * 60LL, fraction};
}

bool is_value(const json& j) {
  return j.is_object() && j.size() == 2 && j.contains("type") && j["type"].is_string() && j.contains("value");
}

/// Empty when `have` matches `want`; otherwise what differs, at which key.
std::string compare(const json& want, const json& have, const std::string& key) {
  if (is_value(want)) {
    if (!is_value(have)) return key + ": expected a value, got " + have.dump();
    const std::string type = want["type"];
    if (have["type"] != type) return key + ": type " + have["type"].dump() + ", expected " + type;
    if (type == "array") return compare(want["value"], have["value"], key);
    std::string w = want["value"], h = have["value"];
    bool same = w == h;
    if (type == "float") {
      for (auto* s : {&w, &h})
        for (char& c : *s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (w.ends_with("nan") || h.ends_with("nan")) {
        same = w.substr(w.find_first_not_of("+-")) == h.substr(h.find_first_not_of("+-"));
      } else {
        same = std::strtod(w.c_str(), nullptr) == std::strtod(h.c_str(), nullptr);
      }
    } else if (type == "datetime") {
      same = instant(w) == instant(h);
    } else if (type == "datetime-local" || type == "date-local" || type == "time-local") {
      same = normal_datetime(w) == normal_datetime(h);
    }
    return same ? "" : key + ": " + h + ", expected " + w + " (" + type + ")";
  }
  if (want.is_object()) {
    if (!have.is_object() || is_value(have)) return key + ": expected a table, got " + have.dump();
    if (want.size() != have.size()) return key + ": " + std::to_string(have.size()) + " keys, expected " +
                                           std::to_string(want.size());
    for (auto it = want.begin(); it != want.end(); ++it) {
      if (!have.contains(it.key())) return key + ": missing key \"" + it.key() + "\"";
      if (auto why = compare(it.value(), have[it.key()], key + "." + it.key()); !why.empty()) return why;
    }
    return "";
  }
  if (want.is_array()) {
    if (!have.is_array() || have.size() != want.size()) return key + ": expected an array of " +
                                                             std::to_string(want.size()) + ", got " + have.dump();
    for (std::size_t i = 0; i < want.size(); ++i)
      if (auto why = compare(want[i], have[i], key + "[" + std::to_string(i) + "]"); !why.empty()) return why;
    return "";
  }
  return key + ": unexpected " + want.dump();
}

TEST(toml_test_suite, every_valid_file_is_accepted_and_decoded_as_expected) {
  const auto valid = files("valid/");
  ASSERT_EQ(valid.size(), 210u);
  std::size_t passed = 0;
  for (const auto& name : valid) {
    const std::string path = suite + "/" + name;
    const auto r = cli("check --json " + shell_quote(path));
    if (r.code != 0) {
      ADD_FAILURE() << name << ": refused (exit " << r.code << "): " << r.output;
      continue;
    }
    std::ifstream expected_file(path.substr(0, path.size() - 5) + ".json");
    const json expected = json::parse(expected_file);
    const json decoded = json::parse(r.output, nullptr, false);
    if (decoded.is_discarded()) {
      ADD_FAILURE() << name << ": output is not JSON: " << r.output;
      continue;
    }
    if (auto why = compare(expected, decoded, "<root>"); !why.empty()) {
      ADD_FAILURE() << name << ": " << why;
      continue;
    }
    ++passed;
  }
  std::printf("toml-test 1.0.0 valid: %zu of %zu accepted and decoded as expected\n", passed, valid.size());
}

// The flat snapshot the store, diff and history use, without a schema: every
// valid file loads, and write-to-disk's to_toml() gives back the same values.
TEST(toml_test_suite, every_valid_file_loads_flat_and_round_trips) {
  const auto valid = files("valid/");
  std::size_t passed = 0;
  for (const auto& name : valid) {
    hotswap::config::config_error error;
    const auto text = hotswap::config::read_text(suite + "/" + name, 1 << 20, error);
    ASSERT_TRUE(text) << error.to_string();
    const auto loaded = hotswap::config::load(*text, name, nullptr);
    if (!loaded) {
      ADD_FAILURE() << name << ": " << loaded.error.to_string();
      continue;
    }
    const std::string written = hotswap::config::to_toml(loaded.doc->values, std::nullopt);
    const auto again = hotswap::config::load(written, name + " (written)", nullptr);
    if (!again) {
      ADD_FAILURE() << name << ": to_toml() wrote what does not load: " << again.error.to_string() << "\n" << written;
      continue;
    }
    // NaN is the one value unequal to itself.
    const auto changes = hotswap::config::diff(loaded.doc->values, again.doc->values);
    bool only_nan = true;
    for (const auto& c : changes) {
      const double* d = c.after ? std::get_if<double>(&*c.after) : nullptr;
      only_nan = only_nan && d != nullptr && std::isnan(*d);
    }
    if (!only_nan) {
      ADD_FAILURE() << name << ": round trip changed " << changes.front().to_string() << "\n" << written;
      continue;
    }
    ++passed;
  }
  std::printf("toml-test 1.0.0 valid: %zu of %zu load as flat snapshots and round-trip\n", passed, valid.size());
}

TEST(toml_test_suite, every_invalid_file_is_refused_with_a_position) {
  const auto invalid = files("invalid/");
  ASSERT_EQ(invalid.size(), 499u);
  std::size_t passed = 0;
  for (const auto& name : invalid) {
    const std::string path = suite + "/" + name;
    const auto r = cli("check " + shell_quote(path));
    // "FILE:LINE:COLUMN: reason" with a line and a column of at least 1.
    const std::string prefix = path + ":";
    unsigned line = 0, column = 0;
    const bool positioned = r.output.starts_with(prefix) &&
                            std::sscanf(r.output.c_str() + prefix.size(), "%u:%u:", &line, &column) == 2 &&
                            line >= 1 && column >= 1;
    if (r.code != 1 || !positioned) {
      ADD_FAILURE() << name << ": exit " << r.code << ", output: " << r.output;
      continue;
    }
    ++passed;
  }
  std::printf("toml-test 1.0.0 invalid: %zu of %zu refused with a position\n", passed, invalid.size());
}

}  // namespace
