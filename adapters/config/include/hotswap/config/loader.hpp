// From TOML text to a validated snapshot, and back.
//
// load() refuses what toml++ 3.3.0 mishandles and documents deeper than
// max_depth (a lexical pass, src/pre_lex.hpp), parses with toml++ (syntax,
// duplicate keys, invalid UTF-8), flattens tables into dotted keys and arrays
// other than plain lists into indexed ones (value.hpp), refuses keys the
// schema does not declare, converts and checks every value against its rule,
// fills defaults, checks required keys, and finally runs the schema's
// validators on the complete candidate. The first failure is returned with
// the file, line and column it concerns; nothing is half-loaded.
//
// toml++ stays inside this component's compiled library: no public header
// includes it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "error.hpp"
#include "history.hpp"
#include "schema.hpp"
#include "value.hpp"

namespace hotswap::config {

struct load_limits {
  /// Files above this are refused before parsing. A configuration is small;
  /// the cap bounds the parse time and memory an accident can cost.
  std::uint64_t max_bytes = 1 << 20;
  /// Deeper documents are refused before parsing, at the part that goes too
  /// deep: each part of a dotted key or table header, each array and each
  /// inline table is one level. toml++ 3.3 recurses per dotted part and
  /// overflowed the stack at about 100,000 parts.
  std::uint32_t max_depth = 128;
  /// The flat keys (each repeats its tables' names) may total this many
  /// bytes per byte of the file, plus the slack: memory stays linear in the
  /// file's size (a long header over many short keys is refused).
  std::size_t key_bytes_per_byte = 8;
  std::size_t key_bytes_slack = 64 << 10;
};

/// Where each key was written: key -> (line, column), 1-based.
using key_positions = std::map<std::string, std::pair<std::uint32_t, std::uint32_t>, std::less<>>;

/// A parsed file: its values and where each key was written.
struct document {
  snapshot values;
  /// The reserved history key (history_major_key), when the file has it.
  std::optional<std::uint64_t> history_major;
  key_positions positions;
};

/// Either a document or the reason there is none.
struct load_result {
  std::optional<document> doc;
  config_error error;
  explicit operator bool() const noexcept { return doc.has_value(); }
};

/// Parses and validates `text`; `file` names it in errors. Without a schema
/// (nullptr) every key is accepted with its natural type (the CLI's diff).
load_result load(std::string_view text, std::string file, const schema* rules, load_limits limits = {});

/// Reads and loads a file; unreadable or oversized files are errors too.
load_result load_file(const std::filesystem::path& path, const schema* rules, load_limits limits = {});

/// A configuration file as read_config() found it.
struct file_read {
  std::optional<std::string> text;    ///< the whole file, when it could be read within the limit
  std::string head;                   ///< over the limit: its first bytes (at most head_bytes)
  std::optional<file_access> access;  ///< its mode and owner, once it was opened
  config_error error;                 ///< why there is no text (file:1:1: reason)
};

/// The most of an over-size file that read_config() keeps (for its error copy).
inline constexpr std::size_t head_bytes = 64 << 10;

/// Reads a configuration file under the symlink policy: `path` may be a
/// symlink only to a file whose real path lies inside the real directory of
/// `path` (subdirectories included, as Kubernetes ConfigMaps lay them out); a
/// link out of it is refused without reading a byte. It must be a regular
/// file (a FIFO or a device is refused, never waited on). The checks are made
/// on the opened descriptor, so a link swapped in after them changes nothing.
file_read read_config(const std::filesystem::path& path, std::uint64_t max_bytes);

/// read_config() for callers that need only the text. nullopt and `error` set on failure.
std::optional<std::string> read_text(const std::filesystem::path& path, std::uint64_t max_bytes, config_error& error);

/// The per-key rules, defaults, required keys and validators over a flat map
/// of values (a loaded file or an API edit). Fills defaults into `values`.
/// `where` locates keys for errors (may be empty); `file` names the source.
std::optional<config_error> check_and_complete(snapshot::map& values, const schema& rules, const key_positions& where,
                                               const std::string& file);

/// TOML text for a snapshot, with the history key first when given. load()
/// of the result gives back the same snapshot.
std::string to_toml(const snapshot& values, std::optional<std::uint64_t> history_major);

}  // namespace hotswap::config
