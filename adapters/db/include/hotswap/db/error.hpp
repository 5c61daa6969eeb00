// Why the database adapter refused something: one exception type with a code a
// program can branch on and a message naming the container, file or database.
//
//   try { host.swap("pricing", "/srv/containers/pricing.so"); }
//   catch (const hotswap::db::db_error& e) {
//     // e.code() == db_errc::used_by_schema: "pricing: refused: deterministic function
//     // price(x) is used by index prices_by_price in /srv/app.db; swap with reindex"
//   }
// Loader refusals (bad file, failed startup, policy) stay hotswap::modules::module_error.
#pragma once

#include <stdexcept>
#include <string>

namespace hotswap::db {

enum class db_errc {
  used_by_schema,      ///< a deterministic function in an index, CHECK or generated column
  bad_function_table,  ///< a container's function table is malformed
  name_conflict,       ///< two containers on one connection export the same function
  connection_startup,  ///< a container's per-connection startup failed
  sqlite,              ///< SQLite itself refused (registration, reindex)
  not_attached,        ///< no such container on this connection
};

class db_error : public std::runtime_error {
 public:
  db_error(db_errc code, const std::string& what) : std::runtime_error(what), code_(code) {}
  db_errc code() const noexcept { return code_; }

 private:
  db_errc code_;
};

}  // namespace hotswap::db
