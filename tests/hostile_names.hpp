// Names that break a hand-written escaper, and what each sink must give back.
//
// A file name, principal or plugin message is bytes from outside. Every sink
// (the kernel's JSON audit log, httpd's /admin/status and /metrics, the stress
// report, the config adapter's TOML) escapes for its own format, once; the
// escaping tests write these names through each sink and read them back with
// a real parser. The expected values are written out here by hand, not
// computed by the code under test.
//
//   for (const hostile_name& n : hostile_names()) EXPECT_EQ(parse(write(n.text)), n.as_utf8);
#pragma once

#include <string>
#include <vector>

namespace hotswap::testing {

struct hostile_name {
  const char* what;
  std::string text;     ///< the bytes a sink is given
  std::string as_utf8;  ///< read back from a format that carries any UTF-8 (ill-formed parts become U+FFFD)
  std::string audited;  ///< read back from an audit sink (the kernel also turned control characters into U+FFFD)
};

/// A 4 KiB-plus name of backslashes, quotes and two-byte characters.
inline std::string long_name() {
  std::string s;
  while (s.size() < 4096) s += "a\\\"\xC3\xA9";
  return s;
}

inline std::vector<hostile_name> hostile_names() {
  return {
      {"backslash", "a\\b", "a\\b", "a\\b"},
      {"quote", "say \"hi\"", "say \"hi\"", "say \"hi\""},
      {"newline", "line\nforged\r\tend", "line\nforged\r\tend", "line\uFFFDforged\uFFFD\uFFFDend"},
      {"not_utf8", "bad\xFF\xFE end", "bad\uFFFD\uFFFD end", "bad\uFFFD\uFFFD end"},
      {"truncated_utf8", "cut\xE2\x82", "cut\uFFFD", "cut\uFFFD"},
      {"surrogate", "sur\xED\xA0\x80", "sur\uFFFD\uFFFD\uFFFD", "sur\uFFFD\uFFFD\uFFFD"},
      {"overlong", "slash\xC0\xAF", "slash\uFFFD\uFFFD", "slash\uFFFD\uFFFD"},
      {"four_kib", long_name(), long_name(), long_name()},
  };
}

}  // namespace hotswap::testing
