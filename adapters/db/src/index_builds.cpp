// The hotswap_index_builds record: written with a rebuild, read by every connection.
#include "hotswap/db/index_builds.hpp"

#include <memory>

#include "sql_exec.hpp"

namespace hotswap::db {

namespace {

using statement = std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)>;

statement prepare(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &raw, nullptr) != SQLITE_OK)
    throw db_error(db_errc::sqlite, std::string(index_builds_table) + ": " + sql + ": " + sqlite3_errmsg(db));
  return statement(raw, &sqlite3_finalize);
}

std::string text(sqlite3_stmt* st, int col) {
  const unsigned char* t = sqlite3_column_text(st, col);
  return t != nullptr ? reinterpret_cast<const char*>(t) : "";
}

}  // namespace

std::string index_build::describe() const {
  return container + " " + build + " (sha256 " + sha256.substr(0, 12) + ")";
}

void record_index_builds(sqlite3* db, const std::vector<index_build>& builds) {
  const std::string table = index_builds_table;
  detail::exec_or_throw(db,
                        "CREATE TABLE IF NOT EXISTS " + table +
                            "(index_name TEXT PRIMARY KEY, table_name TEXT NOT NULL, function TEXT NOT NULL, "
                            "container TEXT NOT NULL, build TEXT NOT NULL, sha256 TEXT NOT NULL)",
                        table);
  statement put = prepare(db, "INSERT OR REPLACE INTO " + table + " VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  for (const index_build& b : builds) {
    const std::string* fields[] = {&b.index, &b.table, &b.function, &b.container, &b.build, &b.sha256};
    for (int i = 0; i < 6; ++i) sqlite3_bind_text(put.get(), i + 1, fields[i]->c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(put.get()) != SQLITE_DONE)
      throw db_error(db_errc::sqlite, table + ": recording " + b.index + ": " + sqlite3_errmsg(db));
    sqlite3_reset(put.get());
  }
  // A data change alone would not reach statements other connections have
  // already prepared: SQLite checks the schema version when a statement
  // starts and prepares it again if it changed. Incrementing it by one is the
  // step SQLite documents for its own schema edits
  // (https://sqlite.org/lang_altertable.html, "PRAGMA schema_version=X").
  statement version = prepare(db, "PRAGMA schema_version");
  if (sqlite3_step(version.get()) != SQLITE_ROW)
    throw db_error(db_errc::sqlite, table + ": reading the schema version: " + sqlite3_errmsg(db));
  const sqlite3_int64 next = sqlite3_column_int64(version.get(), 0) + 1;
  version.reset();
  detail::exec_or_throw(db, "PRAGMA schema_version = " + std::to_string(next), table);
}

std::map<std::string, index_build> read_index_builds(sqlite3* db) {
  std::map<std::string, index_build> out;
  statement exists = prepare(db, "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1");
  sqlite3_bind_text(exists.get(), 1, index_builds_table, -1, SQLITE_STATIC);
  if (sqlite3_step(exists.get()) != SQLITE_ROW) return out;
  statement rows = prepare(db, std::string("SELECT index_name, table_name, function, container, build, sha256 FROM ") +
                                   index_builds_table);
  int rc;
  while ((rc = sqlite3_step(rows.get())) == SQLITE_ROW) {
    index_build b{text(rows.get(), 0), text(rows.get(), 1), text(rows.get(), 2),
                  text(rows.get(), 3), text(rows.get(), 4), text(rows.get(), 5)};
    out.emplace(b.index, std::move(b));
  }
  if (rc != SQLITE_DONE)
    throw db_error(db_errc::sqlite, std::string(index_builds_table) + ": reading: " + sqlite3_errmsg(db));
  return out;
}

}  // namespace hotswap::db
