// A second process on the same database: a container host of its own, one
// connection, driven line by line from stdin (tests/db/process_test.cpp).
//   db_process <database> <container.so> <shadow dir>
//   stdin:  sql <SQL>     prepared once per distinct text and kept, as applications do
//           swap <file>   swap the container with reindex
//   stdout: "ready" once attached, then one line per command:
//           "ok <first column of each row, joined by |>" or "error <message>"
#include <sqlite3.h>

#include <iostream>
#include <map>
#include <string>

#include <hotswap/db/connection.hpp>

namespace {

std::string run(sqlite3* db, std::map<std::string, sqlite3_stmt*>& prepared, const std::string& sql) {
  sqlite3_stmt*& st = prepared[sql];
  if (st == nullptr && sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
    return "error " + std::string(sqlite3_errmsg(db));
  std::string rows;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const unsigned char* t = sqlite3_column_text(st, 0);
    rows += (rows.empty() ? "" : "|") + std::string(t != nullptr ? reinterpret_cast<const char*>(t) : "NULL");
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? "ok " + rows : "error " + std::string(sqlite3_errmsg(db));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: db_process <database> <container.so> <shadow dir>\n";
    return 2;
  }
  try {
    const std::filesystem::path container = argv[2];
    hotswap::db::host_options options;
    options.container_dir = container.parent_path();
    options.shadow_dir = argv[3];
    hotswap::db::container_host host(options);
    host.load("ver", container);
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      std::cerr << argv[1] << ": " << sqlite3_errmsg(db) << '\n';
      return 1;
    }
    sqlite3_busy_timeout(db, 10000);
    std::map<std::string, sqlite3_stmt*> prepared;
    {
      hotswap::db::connection conn(host, db);
      conn.attach("ver");
      std::cout << "ready" << std::endl;
      for (std::string line; std::getline(std::cin, line);) {
        if (line.rfind("sql ", 0) == 0) {
          std::cout << run(db, prepared, line.substr(4)) << std::endl;
        } else if (line.rfind("swap ", 0) == 0) {
          try {
            const hotswap::db::swap_report r = host.swap("ver", line.substr(5), {"db_process", true});
            std::cout << "ok version " << r.version << std::endl;
          } catch (const std::exception& e) {
            std::cout << "error " << e.what() << std::endl;
          }
        } else {
          std::cout << "error unknown command: " << line << std::endl;
        }
      }
      for (auto& [sql, st] : prepared) sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "db_process: " << e.what() << '\n';
    return 1;
  }
}
