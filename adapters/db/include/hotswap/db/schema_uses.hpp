// Where a database's schema uses a function: the check that keeps stored data true.
//
// An index on tag(x), a generated column or a CHECK constraint stores (or has
// checked) what a deterministic function returned. A new version of that
// function that returns something else leaves the index silently wrong: rows
// go missing from lookups. So before a swap the host reads each known
// database's schema (sqlite_schema) and finds calls of the container's
// deterministic functions in index and table definitions.
//
// The scan is lexical: it skips string literals and comments and reports an
// identifier followed by "(" inside the definition's parentheses. It can report
// a false positive (a column type or foreign key target spelled like the
// function), never miss a call spelled in plain or quoted identifier form.
//
//   for (const schema_use& u : find_schema_uses("/srv/app.db", {"tag", "price"}))
//     std::cout << u.describe() << '\n';   // "index tag_idx on t uses tag() in /srv/app.db"
#pragma once

#include <sqlite3.h>

#include <string>
#include <string_view>
#include <vector>

namespace hotswap::db {

struct schema_use {
  std::string database;  ///< file name
  std::string type;      ///< "index" or "table"
  std::string name;      ///< index or table name
  std::string table;     ///< table it belongs to
  std::string function;  ///< function name as the schema spells it

  std::string describe() const;
};

/// Calls of any of `functions` (case-insensitive) in the index and table
/// definitions of the database at `path`, opened read-only. Throws db_error.
std::vector<schema_use> find_schema_uses(const std::string& path, const std::vector<std::string>& functions);
/// The same through an open connection; `path` only names the database in the results.
std::vector<schema_use> find_schema_uses(sqlite3* db, const std::string& path, const std::vector<std::string>& functions);

/// The names called in one SQL definition (the text after its first "("). Exposed for tests.
std::vector<std::string> called_names(std::string_view sql);

}  // namespace hotswap::db
