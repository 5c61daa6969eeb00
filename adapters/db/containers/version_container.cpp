// The example and test container. CMake builds it several times from this one source:
//   CONTAINER_VERSION=N        what container_version() returns (and build "N.0.0")
//   CONTAINER_CHANGED_LIST     a different function list: adds extra(), drops vsum(),
//                              and tag() is no longer deterministic
//   CONTAINER_STARTUP_FAILS    every connection's startup fails
//   CONTAINER_RAISES           container_version() fails with an SQL error
//
// Functions:
//   container_version()  scalar: the version number
//   tag(x)               deterministic scalar: x * 10 + version (fit for indexes)
//   vsum(x)              aggregate: sum(x) + version * 1e9
//   audit(x)             trigger procedure: inserts (version, x) into audit_log
//   calls()              scalar: calls of calls() on this connection, kept across versions
// Each connection hook logs "conn-startup|conn-shutdown <db> <version>" through the host's log.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>

#include <hotswap/db/container_api.h>

#ifndef CONTAINER_VERSION
#define CONTAINER_VERSION 1
#endif
#define STR2(x) #x
#define STR(x) STR2(x)

namespace {

struct module_state {
  const hotswap_host_api* host;
};

struct conn_state {
  std::int64_t calls = 0;
};

void log_hook(void* ms, sqlite3* db, const char* what) {
  const hotswap_host_api* host = static_cast<module_state*>(ms)->host;
  char line[96];
  std::snprintf(line, sizeof line, "%s %p %d", what, static_cast<void*>(db), CONTAINER_VERSION);
  host->log(host->context, 0, line);
}

int version_fn(void*, sqlite3_context* ctx, int, sqlite3_value**, hotswap_plugin_error* error) {
#ifdef CONTAINER_RAISES
  static_cast<void>(ctx);
  return hotswap_plugin_fail(error, 42, "boom from version " STR(CONTAINER_VERSION));
#else
  static_cast<void>(error);
  sqlite3_result_int(ctx, CONTAINER_VERSION);
  return 0;
#endif
}

int tag_fn(void*, sqlite3_context* ctx, int, sqlite3_value** argv, hotswap_plugin_error*) {
  sqlite3_result_int64(ctx, sqlite3_value_int64(argv[0]) * 10 + CONTAINER_VERSION);
  return 0;
}

int calls_fn(void* cs, sqlite3_context* ctx, int, sqlite3_value**, hotswap_plugin_error*) {
  sqlite3_result_int64(ctx, ++static_cast<conn_state*>(cs)->calls);
  return 0;
}

#ifndef CONTAINER_CHANGED_LIST
int vsum_step(void*, sqlite3_context* ctx, int, sqlite3_value** argv, hotswap_plugin_error* error) {
  auto* sum = static_cast<std::int64_t*>(sqlite3_aggregate_context(ctx, sizeof(std::int64_t)));
  if (sum == nullptr) return hotswap_plugin_fail(error, SQLITE_NOMEM, "out of memory");
  *sum += sqlite3_value_int64(argv[0]);
  return 0;
}
int vsum_final(void*, sqlite3_context* ctx, hotswap_plugin_error*) {
  auto* sum = static_cast<std::int64_t*>(sqlite3_aggregate_context(ctx, 0));
  sqlite3_result_int64(ctx, (sum != nullptr ? *sum : 0) + std::int64_t{CONTAINER_VERSION} * 1000000000);
  return 0;
}
#else
int extra_fn(void*, sqlite3_context* ctx, int, sqlite3_value**, hotswap_plugin_error*) {
  sqlite3_result_text(ctx, "extra", -1, SQLITE_STATIC);
  return 0;
}
#endif

// A trigger procedure: its side effect is a row in audit_log, written on the same connection.
int audit_fn(void*, sqlite3_context* ctx, int, sqlite3_value** argv, hotswap_plugin_error* error) {
  sqlite3* db = sqlite3_context_db_handle(ctx);
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v2(db, "INSERT INTO audit_log(version, x) VALUES(?1, ?2)", -1, &st, nullptr);
  if (rc == SQLITE_OK) {
    sqlite3_bind_int(st, 1, CONTAINER_VERSION);
    sqlite3_bind_value(st, 2, argv[0]);
    rc = sqlite3_step(st);
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return hotswap_plugin_fail(error, rc, sqlite3_errmsg(db));
  sqlite3_result_int(ctx, CONTAINER_VERSION);
  return 0;
}

#ifdef CONTAINER_CHANGED_LIST
constexpr std::uint32_t tag_flags = 0;
#else
constexpr std::uint32_t tag_flags = HOTSWAP_DB_DETERMINISTIC;
#endif

const hotswap_db_function functions[] = {
    {"container_version", 0, HOTSWAP_DB_SCALAR, 0, &version_fn, nullptr, nullptr},
    {"tag", 1, HOTSWAP_DB_SCALAR, tag_flags, &tag_fn, nullptr, nullptr},
#ifndef CONTAINER_CHANGED_LIST
    {"vsum", 1, HOTSWAP_DB_AGGREGATE, 0, nullptr, &vsum_step, &vsum_final},
#else
    {"extra", 0, HOTSWAP_DB_SCALAR, 0, &extra_fn, nullptr, nullptr},
#endif
    {"audit", 1, HOTSWAP_DB_PROCEDURE, 0, &audit_fn, nullptr, nullptr},
    {"calls", 0, HOTSWAP_DB_SCALAR, 0, &calls_fn, nullptr, nullptr},
};

int connection_startup(void* ms, sqlite3* db, const hotswap_db_saved_state* saved, void** out,
                       hotswap_plugin_error* error) {
#ifdef CONTAINER_STARTUP_FAILS
  static_cast<void>(saved);
  static_cast<void>(out);
  log_hook(ms, db, "conn-startup-failed");
  return hotswap_plugin_fail(error, 7, "version " STR(CONTAINER_VERSION) " refuses this connection");
#else
  auto* cs = new (std::nothrow) conn_state;
  if (cs == nullptr) return hotswap_plugin_fail(error, SQLITE_NOMEM, "out of memory");
  if (saved != nullptr && saved->size == sizeof cs->calls) std::memcpy(&cs->calls, saved->data, sizeof cs->calls);
  *out = cs;
  log_hook(ms, db, "conn-startup");
  return 0;
#endif
}

void connection_shutdown(void* ms, sqlite3* db, void* cs) {
  log_hook(ms, db, "conn-shutdown");
  delete static_cast<conn_state*>(cs);
}

int connection_save(void*, sqlite3*, void* cs, const hotswap_db_buffer* out, hotswap_plugin_error* error) {
  const std::int64_t calls = static_cast<conn_state*>(cs)->calls;
  if (out->append(out->context, &calls, sizeof calls) != 0) return hotswap_plugin_fail(error, SQLITE_NOMEM, "out of memory");
  return 0;
}

const hotswap_db_container_api table = {sizeof functions / sizeof functions[0], functions, &connection_startup,
                                        &connection_shutdown, &connection_save};

module_state the_state;

void* startup(const hotswap_host_api& host) {
  the_state.host = &host;
  return &the_state;
}
void shutdown(void*) noexcept {}

}  // namespace

// Unload-safe: its SQL functions are registered per connection and removed by the host
// (connection_shutdown) before the version drains; no thread or handler outlives shutdown.
HOTSWAP_PLUGIN(hotswap_db_container_api, "version_container", STR(CONTAINER_VERSION) ".0.0", table, startup, shutdown, nullptr,
               nullptr, HOTSWAP_PLUGIN_UNLOAD_SAFE)
