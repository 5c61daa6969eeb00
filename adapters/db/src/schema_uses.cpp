// find_schema_uses: a lexical scan of sqlite_schema for calls of given functions.
#include "hotswap/db/schema_uses.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <memory>

#include "hotswap/db/error.hpp"
#include "sql_name.hpp"

namespace hotswap::db {

std::string schema_use::describe() const {
  if (type == "index") return "index " + name + " on " + table + " uses " + function + "() in " + database;
  return "table " + table + " uses " + function + "() in a CHECK constraint, generated column or default, in " +
         database;
}

namespace {

bool identifier_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '$' ||
         static_cast<unsigned char>(c) >= 0x80;
}

}  // namespace

std::vector<std::string> called_names(std::string_view sql) {
  std::vector<std::string> out;
  const std::size_t open = sql.find('(');
  if (open == std::string_view::npos) return out;
  std::size_t i = open + 1;
  std::string last;  // the identifier just read, if nothing but blanks followed it
  while (i < sql.size()) {
    const char c = sql[i];
    if (c == '\'') {  // string literal; '' is a quote inside it
      for (++i; i < sql.size(); ++i) {
        if (sql[i] != '\'') continue;
        if (i + 1 < sql.size() && sql[i + 1] == '\'') ++i;
        else break;
      }
      ++i;
      last.clear();
    } else if (c == '"' || c == '`' || c == '[') {  // quoted identifier
      const char close = c == '[' ? ']' : c;
      std::string name;
      for (++i; i < sql.size(); ++i) {
        if (sql[i] == close && close != ']' && i + 1 < sql.size() && sql[i + 1] == close) {
          name += close;
          ++i;
        } else if (sql[i] == close) {
          break;
        } else {
          name += sql[i];
        }
      }
      ++i;
      last = name;
    } else if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      i = sql.find('\n', i);
      if (i == std::string_view::npos) break;
    } else if (c == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
      i = sql.find("*/", i + 2);
      if (i == std::string_view::npos) break;
      i += 2;
    } else if (identifier_char(c)) {
      const std::size_t start = i;
      while (i < sql.size() && identifier_char(sql[i])) ++i;
      last = std::string(sql.substr(start, i - start));
    } else if (std::isspace(static_cast<unsigned char>(c)) != 0) {
      ++i;
    } else {
      if (c == '(' && !last.empty()) out.push_back(last);
      last.clear();
      ++i;
    }
  }
  return out;
}

std::vector<schema_use> find_schema_uses(const std::string& path, const std::vector<std::string>& functions) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db(raw, &sqlite3_close);
  if (rc != SQLITE_OK) throw db_error(db_errc::sqlite, path + ": cannot open to check its schema: " + sqlite3_errstr(rc));
  sqlite3_busy_timeout(db.get(), 5000);
  return find_schema_uses(db.get(), path, functions);
}

std::vector<schema_use> find_schema_uses(sqlite3* db, const std::string& path,
                                         const std::vector<std::string>& functions) {
  sqlite3_stmt* raw_stmt = nullptr;
  if (sqlite3_prepare_v2(db,
                         "SELECT type, name, tbl_name, sql FROM sqlite_schema "
                         "WHERE type IN ('index', 'table') AND sql IS NOT NULL",
                         -1, &raw_stmt, nullptr) != SQLITE_OK)
    throw db_error(db_errc::sqlite, path + ": cannot read its schema: " + sqlite3_errmsg(db));
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(raw_stmt, &sqlite3_finalize);
  std::vector<schema_use> out;
  int step;
  while ((step = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    auto text = [&](int col) {
      const unsigned char* t = sqlite3_column_text(stmt.get(), col);
      return t != nullptr ? std::string(reinterpret_cast<const char*>(t)) : std::string();
    };
    for (const std::string& called : called_names(text(3)))
      for (const std::string& f : functions)
        if (detail::same_sql_name(called, f)) out.push_back({path, text(0), text(1), text(2), called});
  }
  if (step != SQLITE_DONE) throw db_error(db_errc::sqlite, path + ": reading its schema: " + sqlite3_errmsg(db));
  return out;
}

}  // namespace hotswap::db
