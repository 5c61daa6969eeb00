// hotswapdb: a SQLite loadable extension that puts the adapter behind SQL.
//
//   sqlite> .load ./hotswapdb
//   sqlite> SELECT hotswap_load('ver', '/srv/containers/version_v1.so');   -- 1
//   sqlite> SELECT container_version();                                    -- 1
//   sqlite> SELECT hotswap_swap('ver', '/srv/containers/version_v2.so');
//   sqlite> SELECT container_version();                                    -- 2
//   sqlite> SELECT hotswap_rollback('ver', 1);  SELECT hotswap_list();
//
// One container_host per process (the shell has one database open at a time;
// every connection that loads the extension shares it). Its container
// directory is the directory of the first container loaded; later ones must
// come from there. hotswap_caching(0) before the first load turns shadow
// copies off (the original is loaded in place). Each connection gets its own
// hotswap::db::connection, destroyed when SQLite closes the connection.
//
// The library is linked with -z nodelete: SQLite dlcloses extensions when a
// connection closes, but the host (its reclaimer thread, loaded containers)
// lives for the process.
#include <sqlite3.h>

#include <cstdio>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>

#include "hotswap/db/connection.hpp"

namespace {

using namespace hotswap::db;

std::mutex host_mutex;
container_host* the_host = nullptr;  // created by the first load, never destroyed (see above)
bool shadow_copies = true;           // guarded by host_mutex

struct per_connection {
  sqlite3* db;
  std::unique_ptr<connection> conn;
  move_policy policy = move_policy::next_statement;
};

container_host& host_for(const std::string& first_file) {
  std::lock_guard lock(host_mutex);
  if (the_host == nullptr) {
    host_options o;
    o.container_dir = std::filesystem::absolute(first_file).parent_path();
    o.shadow_copies = shadow_copies;
    the_host = new container_host(std::move(o));
  }
  return *the_host;
}

container_host& existing_host() {
  std::lock_guard lock(host_mutex);
  if (the_host == nullptr) throw std::runtime_error("no container loaded yet: call hotswap_load(name, path) first");
  return *the_host;
}

connection& conn_of(per_connection& pc, container_host& host) {
  if (!pc.conn) pc.conn = std::make_unique<connection>(host, pc.db, pc.policy);
  return *pc.conn;
}

std::string text_arg(sqlite3_value* v) {
  const unsigned char* t = sqlite3_value_text(v);
  return t != nullptr ? reinterpret_cast<const char*>(t) : "";
}

template <class F>
void guarded(sqlite3_context* ctx, F&& f) {
  try {
    f(*static_cast<per_connection*>(sqlite3_user_data(ctx)));
  } catch (const std::exception& e) {
    sqlite3_result_error(ctx, e.what(), -1);
  } catch (...) {
    sqlite3_result_error(ctx, "unknown error", -1);
  }
}

std::string describe(const std::string& name, const swap_report& r) {
  std::string out = name + ": version " + std::to_string(r.version) + " serving, version " +
                    std::to_string(r.replaced) + " draining";
  for (const schema_use& u : r.reindexed) out += "; reindexed " + u.describe();
  return out + "; " + r.connections.describe();
}

void load_fn(sqlite3_context* ctx, int, sqlite3_value** argv) {
  guarded(ctx, [&](per_connection& pc) {
    const std::string name = text_arg(argv[0]), file = text_arg(argv[1]);
    container_host& host = host_for(file);
    const bool known = [&] {
      for (const auto& s : host.list())
        if (s.name == name) return true;
      return false;
    }();
    std::uint64_t v = known ? host.modules().module(name).current_version() : host.load(name, file, "sqlite3");
    conn_of(pc, host).attach(name);
    sqlite3_result_int64(ctx, static_cast<sqlite3_int64>(v));
  });
}

void swap_fn(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  guarded(ctx, [&](per_connection&) {
    const std::string name = text_arg(argv[0]);
    const swap_report r = existing_host().swap(name, text_arg(argv[1]), {"sqlite3", argc > 2 && sqlite3_value_int(argv[2]) != 0});
    const std::string out = describe(name, r);
    sqlite3_result_text(ctx, out.c_str(), -1, SQLITE_TRANSIENT);
  });
}

void rollback_fn(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  guarded(ctx, [&](per_connection&) {
    const std::string name = text_arg(argv[0]);
    const swap_report r = existing_host().rollback(name, static_cast<std::uint64_t>(sqlite3_value_int64(argv[1])),
                                                   {"sqlite3", argc > 2 && sqlite3_value_int(argv[2]) != 0});
    const std::string out = describe(name, r);
    sqlite3_result_text(ctx, out.c_str(), -1, SQLITE_TRANSIENT);
  });
}

void list_fn(sqlite3_context* ctx, int, sqlite3_value**) {
  guarded(ctx, [&](per_connection& pc) {
    std::ostringstream out;
    container_host& host = existing_host();
    for (const container_status& s : host.list()) {
      out << s.name << ": serving version " << s.serving << " (" << s.build << ") from " << s.file;
      out << " (" << host.moves(s.name, s.serving).describe() << ")";
      if (pc.conn) out << "; this connection runs version " << pc.conn->version_of(s.name);
      if (pc.conn && !pc.conn->last_error(s.name).empty()) out << " (" << pc.conn->last_error(s.name) << ")";
      out << "; versions:";
      for (const hotswap::modules::version_report& r : s.versions)
        out << ' ' << r.number << '=' << hotswap::modules::to_string(r.state);
      out << '\n';
    }
    std::string text = out.str();
    if (!text.empty()) text.pop_back();
    sqlite3_result_text(ctx, text.c_str(), -1, SQLITE_TRANSIENT);
  });
}

void policy_fn(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  guarded(ctx, [&](per_connection& pc) {
    if (argc > 0) {
      pc.policy = parse_move_policy(text_arg(argv[0]));
      if (pc.conn) pc.conn->set_policy(pc.policy);
    }
    sqlite3_result_text(ctx, to_string(pc.policy), -1, SQLITE_STATIC);
  });
}

void caching_fn(sqlite3_context* ctx, int, sqlite3_value** argv) {
  guarded(ctx, [&](per_connection&) {
    std::lock_guard lock(host_mutex);
    if (the_host != nullptr) throw std::runtime_error("hotswap_caching must be set before the first hotswap_load");
    shadow_copies = sqlite3_value_int(argv[0]) != 0;
    sqlite3_result_int(ctx, shadow_copies ? 1 : 0);
  });
}

void destroy(void* p) {
  auto* pc = static_cast<per_connection*>(p);
  if (pc->conn) pc->conn->closing();
  delete pc;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int sqlite3_hotswapdb_init(sqlite3* db, char** error,
                                                                             const sqlite3_api_routines*) {
  auto* pc = new per_connection{db, nullptr};
  struct fn {
    const char* name;
    int arity;
    void (*call)(sqlite3_context*, int, sqlite3_value**);
  };
  static const fn fns[] = {{"hotswap_load", 2, &load_fn},         {"hotswap_swap", 2, &swap_fn},
                           {"hotswap_swap", 3, &swap_fn},         {"hotswap_rollback", 2, &rollback_fn},
                           {"hotswap_rollback", 3, &rollback_fn}, {"hotswap_list", 0, &list_fn},
                           {"hotswap_policy", 0, &policy_fn},     {"hotswap_policy", 1, &policy_fn},
                           {"hotswap_caching", 1, &caching_fn}};
  bool first = true;
  for (const fn& f : fns) {
    // The first registration owns pc: SQLite destroys it when the connection closes.
    const int rc = sqlite3_create_function_v2(db, f.name, f.arity, SQLITE_UTF8 | SQLITE_DIRECTONLY, pc, f.call,
                                              nullptr, nullptr, first ? &destroy : nullptr);
    if (rc != SQLITE_OK) {
      if (first) destroy(pc);
      *error = sqlite3_mprintf("hotswapdb: cannot register %s: %s", f.name, sqlite3_errmsg(db));
      return rc;
    }
    first = false;
  }
  return SQLITE_OK;
}
