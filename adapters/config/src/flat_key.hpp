// Flat keys (value.hpp): names joined by '.', a name with '.', '"', '[' or
// ']' (or an empty one) written as a TOML basic string, and array indices as
// [N]. The one place that writes and reads that spelling. Internal.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace hotswap::config::detail {

/// One name of a flat key, and the indices after it (servers[0] -> "servers", {0}).
struct key_piece {
  std::string name;
  std::vector<std::size_t> indices;
};

/// `name` as one name of a flat key: as it is, or quoted.
std::string key_name(std::string_view name);

/// The pieces of a flat key. A malformed quoted name ends at the key's end.
std::vector<key_piece> split_key(std::string_view key);

/// The key with every index written as [] (servers[3].host -> servers[].host):
/// how a schema names the elements of an array.
std::string pattern_of(std::string_view key);

/// The key without its last name (and that name's indices); "" at the top.
std::string_view parent_of(std::string_view key);

}  // namespace hotswap::config::detail
