// A lexical pass over TOML text before toml++ reads it: it refuses, with the
// file, line and column, what toml++ 3.3.0 mishandles (found by fuzzing and
// by issue #17), so that the parser only ever sees input it handles safely.
//
// - raw control characters (TOML allows none but tab and line ends);
// - any byte >= 0x80 outside strings and comments (bare keys are ASCII; toml++
//   reaches TOML_UNREACHABLE on a non-ASCII character where a key or value
//   should start), and right after a basic string's backslash or first after
//   a multi-line line-ending backslash;
// - a document deeper than `max_depth`: every part of a dotted key or table
//   header, every array and every inline table is one level. toml++ caps
//   nested arrays and inline tables but not dotted names, and recursed once
//   per part until the stack overflowed (a 120,000-part header crashed it).
//
// - one case is valid TOML that toml++ 3.3.0 cannot read: a non-ASCII
//   character first after a multi-line string's line-ending backslash (it
//   reaches the same TOML_UNREACHABLE). pre_lex() lists where; toml++ then
//   parses a copy in which each is written as a \UXXXXXXXX escape (same
//   value; an error later on that line is reported up to 9 columns off).
//
// A UTF-8 byte order mark at the very start is allowed (TOML 1.0 does).
// Internal to the library (toml++ never appears in a public header).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hotswap/config/error.hpp"

namespace hotswap::config::detail {

struct lexed {
  std::optional<config_error> error;   ///< the first refusal
  std::vector<std::size_t> to_escape;  ///< byte offsets of characters toml++ must see escaped
};

lexed pre_lex(std::string_view text, const std::string& file, std::uint32_t max_depth);

/// `text` with the UTF-8 character at each offset (ascending) as \UXXXXXXXX.
std::string with_escapes(std::string_view text, const std::vector<std::size_t>& at);

}  // namespace hotswap::config::detail
