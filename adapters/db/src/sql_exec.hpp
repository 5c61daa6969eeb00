// Runs SQL that must succeed; SQLite's refusal becomes a db_error naming where.
#pragma once

#include <sqlite3.h>

#include <string>

#include "hotswap/db/error.hpp"

namespace hotswap::db::detail {

inline void exec_or_throw(sqlite3* db, const std::string& sql, const std::string& where) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message) == SQLITE_OK) return;
  const std::string why = message != nullptr ? message : sqlite3_errmsg(db);
  sqlite3_free(message);
  throw db_error(db_errc::sqlite, where + ": " + sql + ": " + why);
}

}  // namespace hotswap::db::detail
