// Which container build each guarded index was built with: a record kept in
// the database itself, so every process that opens the file can read it.
//
// An index on tag(x) stores what one build of tag() returned. Within one
// process a swap rebuilds it (REINDEX) on the new version; a second process
// on the same file still running the old build would then compute keys the
// index does not hold (lookups find nothing, inserts add entries that
// `PRAGMA integrity_check` reports as missing). So the rebuild also writes,
// in the same transaction, one row per index into
//
//   hotswap_index_builds(index_name PRIMARY KEY, table_name, function, container, build, sha256)
//
// and bumps the schema version, which makes every connection of every process
// prepare its statements again; a connection (connection.hpp) re-reads the
// record then and refuses, with an SQL error, to use an index recorded for a
// build (sha256 of the container file) other than the one it runs.
//
//   record_index_builds(db, {{"t_tag", "t", "tag", "ver", "2.0.0", "9f86d0..."}});  // inside BEGIN ... COMMIT
//   for (const auto& [index, b] : read_index_builds(db)) ...
#pragma once

#include <sqlite3.h>

#include <map>
#include <string>
#include <vector>

namespace hotswap::db {

struct index_build {
  std::string index;      ///< index name
  std::string table;      ///< the table it belongs to
  std::string function;   ///< the container function its expression calls
  std::string container;  ///< the container's name in the process that rebuilt it
  std::string build;      ///< the container's build_version, for people
  std::string sha256;     ///< the container file's content: what "the same build" means

  /// "ver 2.0.0 (sha256 9f86d081884c)"
  std::string describe() const;
};

/// The table's name in every database.
inline constexpr const char* index_builds_table = "hotswap_index_builds";

/// Creates the table if needed, replaces the rows of `builds` and increments
/// the schema version. Call inside the caller's write transaction on `db`, with
/// no other statement of `db` active. Throws db_error.
void record_index_builds(sqlite3* db, const std::vector<index_build>& builds);

/// Every row, by index name (empty when the table does not exist). Throws db_error.
std::map<std::string, index_build> read_index_builds(sqlite3* db);

}  // namespace hotswap::db
