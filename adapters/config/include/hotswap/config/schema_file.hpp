// A schema written down as TOML, so that a tool outside the program (the
// hotswap-config CLI, a CI check) validates a file by the same rules as the
// program that serves it. The program writes its schema out with
// describe_schema() (e.g. behind a --print-config-schema flag); only the C++
// validators cannot be written down, and the file says so in a comment.
//
//   [keys."limits.max_connections"]
//   type = "integer"            # boolean integer float string string_list integer_list
//   min = 1
//   max = 65536
//   default = 1024
//   doc = "connections served at once"
//
//   [keys."log.level"]
//   type = "string"
//   one_of = ["debug", "info", "warn", "error"]
//   required = true
//
//   [maps.routes]               # routes."<name>" = <type>
//   type = "string"
//   pattern = "/.*"
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "schema.hpp"

namespace hotswap::config {

/// Parses a schema description; throws config_exception (file:line:column).
schema parse_schema(std::string_view text, const std::string& file);
schema load_schema_file(const std::filesystem::path& path);

/// The description of `rules` that parse_schema() reads back (validators are
/// listed as a comment: they exist only in the program).
std::string describe_schema(const schema& rules);

}  // namespace hotswap::config
