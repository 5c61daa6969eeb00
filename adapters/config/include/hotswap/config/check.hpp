// TOML 1.0 without a schema: is this text TOML, and what does it decode to?
//
// check_toml() runs the same two gates as load() (the pre-lexer's refusals
// and limits, then toml++) and nothing else, so it accepts exactly the TOML
// the store can read before any schema rule applies. With `json` it also
// returns the document in the JSON encoding of the official toml-test suite
// (every value as {"type": ..., "value": "..."}, tables as objects, arrays as
// arrays), which is how hotswap-config check --json is measured against that
// suite (tests/config/toml_test_suite.cpp).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "error.hpp"
#include "loader.hpp"

namespace hotswap::config {

struct check_result {
  std::optional<config_error> error;  ///< why the text is not accepted
  std::string json;                   ///< the decoded document, when asked for and accepted
  explicit operator bool() const noexcept { return !error; }
};

check_result check_toml(std::string_view text, std::string file, bool json, load_limits limits = {});

}  // namespace hotswap::config
