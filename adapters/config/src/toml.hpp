// toml++ as this library includes it (every file that uses it includes this),
// with its own checks on in every build. What toml++ 3.3.0 mishandles is
// refused before it parses (pre_lex.hpp), never switched off.
//
// Upstream: a table header whose key does not start with a key character
// ("[+x]", "[&", "[[[1]]]") breaks parse_key()'s precondition
// TOML_ASSERT_ASSUME(is_bare_key_character(*cp) || is_string_delimiter(*cp)):
// an assertion failure in debug builds, undefined behaviour in release ones
// (marzer/tomlplusplus#294; fixed by marzer/tomlplusplus#301, merged after
// 3.4.0, the newest release). Our config_loader fuzz target found it first.
//
// Behind the pre-lexer, a net: toml++'s own checks (TOML_ASSERT, and
// TOML_ASSERT_ASSUME, which NDEBUG would turn into __builtin_assume: undefined
// behaviour when false) stay on in every build and throw tomlpp_check_failed
// instead of aborting. toml++ reports its parse errors by throwing too, so its
// parser unwinds the same way; load() refuses the file and the serving version
// keeps serving. Its error cannot say where toml++ was (line 1, column 1): an
// input that reaches one is a pre-lexer gap that deserves a precise message.
// A check inside one of toml++'s noexcept functions (its reader's step_back)
// still ends the process when it throws: those the pre-lexer must keep
// unreachable on its own.
#pragma once

#include <stdexcept>
#include <string>

namespace hotswap::config::detail {

/// A check inside toml++ failed on the text being parsed.
struct tomlpp_check_failed : std::logic_error {
  using std::logic_error::logic_error;
};

[[noreturn]] inline void fail_tomlpp_check(const char* check, const char* file, int line) {
  std::string where = file;
  where = where.substr(where.find_last_of('/') + 1);
  throw tomlpp_check_failed(std::string("toml++ ") + where + ":" + std::to_string(line) + " failed its check `" + check + "`");
}

}  // namespace hotswap::config::detail

#define TOML_ASSERT(expr) \
  ((expr) ? static_cast<void>(0) : ::hotswap::config::detail::fail_tomlpp_check(#expr, __FILE__, __LINE__))
#pragma push_macro("NDEBUG")
#undef NDEBUG  // toml++ drops TOML_ASSERT under NDEBUG; only its own header sees this
#include <toml++/toml.h>
#pragma pop_macro("NDEBUG")

namespace hotswap::config::detail {

/// Whether pre_lex() must refuse a table header that does not start with a
/// key character (marzer/tomlplusplus#294): every release up to 3.4.0.
inline constexpr bool tomlpp_header_key_unchecked =
    TOML_LIB_MAJOR < 3 || (TOML_LIB_MAJOR == 3 && TOML_LIB_MINOR <= 4);

}  // namespace hotswap::config::detail
