// toml++ as this library includes it (every file that uses it includes this),
// with its own checks on: TOML_ASSERT is toml++'s default (assert() in debug
// builds; in clang release builds some are assumptions). What toml++ 3.3.0
// mishandles is refused before it parses (pre_lex.hpp), never switched off.
//
// Upstream: a table header whose key does not start with a key character
// ("[+x]", "[&", "[[[1]]]") breaks parse_key()'s precondition
// TOML_ASSERT_ASSUME(is_bare_key_character(*cp) || is_string_delimiter(*cp)):
// an assertion failure in debug builds, undefined behaviour in release ones
// (marzer/tomlplusplus#294; fixed by marzer/tomlplusplus#301, merged after
// 3.4.0, the newest release). Our config_loader fuzz target found it first.
#pragma once

#include <toml++/toml.h>

namespace hotswap::config::detail {

/// Whether pre_lex() must refuse a table header that does not start with a
/// key character (marzer/tomlplusplus#294): every release up to 3.4.0.
inline constexpr bool tomlpp_header_key_unchecked =
    TOML_LIB_MAJOR < 3 || (TOML_LIB_MAJOR == 3 && TOML_LIB_MINOR <= 4);

}  // namespace hotswap::config::detail
