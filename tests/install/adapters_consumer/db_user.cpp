// hotswap::db from a package consumer: load its own container, call it from SQL.
#include <hotswap/db/connection.hpp>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

int main() {
  namespace fs = std::filesystem;
  const fs::path container = PLUGIN_PATH;
  const fs::path shadow = fs::temp_directory_path() / ("hotswap-db-user-" + std::to_string(::getpid()));
  int seen = 0;
  {
    hotswap::db::container_host host({.container_dir = container.parent_path(), .shadow_dir = shadow});
    host.load("user", container);
    sqlite3* db = nullptr;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) return 1;
    {
      hotswap::db::connection conn(host, db);
      conn.attach("user");
      sqlite3_exec(
          db, "SELECT answer()",
          [](void* out, int, char** values, char**) {
            *static_cast<int*>(out) = std::stoi(values[0]);
            return 0;
          },
          &seen, nullptr);
    }
    sqlite3_close(db);
  }
  fs::remove_all(shadow);
  std::printf("db_user's container answers %d\n", seen);
  return seen == 42 ? 0 : 1;
}
