// The one way this library turns text into a toml++ tree: the size limit,
// the pre-lexer (pre_lex.hpp), then toml++; a failure as a config_error.
// Internal (toml++ never appears in a public header).
#pragma once

#include "toml.hpp"

#include <optional>
#include <string>
#include <string_view>

#include "hotswap/config/error.hpp"
#include "hotswap/config/loader.hpp"

namespace hotswap::config::detail {

/// Parses `text` into `root`, or says why not.
std::optional<config_error> parse(std::string_view text, const std::string& file, const load_limits& limits,
                                  toml::table& root);

}  // namespace hotswap::config::detail
