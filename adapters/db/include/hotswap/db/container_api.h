/* hotswap database containers: the C ABI of a plugin that gives SQLite its functions.
 *
 * A container is an ordinary hotswap plugin (plugin.h) whose interface table is a
 * hotswap_db_container_api: a list of SQL functions (scalar functions, aggregates with
 * step/final, and the procedures that triggers call) plus per-connection hooks. The host
 * (hotswap::db::connection, connection.hpp) registers one host-owned trampoline per function
 * on each connection, once; the trampoline calls the function of the container version that
 * connection currently runs. A new version never re-registers anything unless its function
 * list differs (name, arity, kind or flags).
 *
 * Per connection, as the host drives it:
 *   connection_startup(module_state, db, saved, &conn_state)   when the connection takes this version
 *   ... the version's functions run with conn_state ...
 *   connection_save(module_state, db, conn_state, out)         optional: bytes for the next version
 *   connection_shutdown(module_state, db, conn_state)          when the connection leaves this version
 * A move happens only at a safe point (no statement running on the connection), so no
 * statement ever sees two versions. The old version's shutdown runs first, then the new
 * one's startup with what the old one saved; if that startup fails, the old version is
 * started again with the same bytes and the connection stays on it.
 *
 * Errors: a function or hook that fails returns non-zero and fills the error (plugin.h's
 * hotswap_plugin_fail); the host turns it into sqlite3_result_error on that statement. No
 * exception may cross this ABI (the host catches one anyway and reports it as an error).
 *
 * The structures use only C types and SQLite's own (sqlite3_context, sqlite3_value): a
 * function reads its arguments and sets its result with the ordinary sqlite3_value_* and
 * sqlite3_result_* calls, and a trigger procedure may run SQL on sqlite3_context_db_handle().
 */
#ifndef HOTSWAP_DB_CONTAINER_API_H
#define HOTSWAP_DB_CONTAINER_API_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include <hotswap/module/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HOTSWAP_DB_INTERFACE_NAME "hotswap.db.container"
#define HOTSWAP_DB_INTERFACE_VERSION 1u

/* What a function is. */
enum hotswap_db_function_kind {
  HOTSWAP_DB_SCALAR = 1,    /* scalar(): one value per call */
  HOTSWAP_DB_AGGREGATE = 2, /* step() per row, final() once per group */
  HOTSWAP_DB_PROCEDURE = 3  /* called by triggers for its side effects; never deterministic */
};

/* Flags, mapped onto SQLite's. */
enum hotswap_db_function_flags {
  HOTSWAP_DB_DETERMINISTIC = 1u, /* SQLITE_DETERMINISTIC: may be used in indexes, CHECK, generated columns */
  HOTSWAP_DB_DIRECTONLY = 2u,    /* SQLITE_DIRECTONLY: not from triggers, views or schema */
  HOTSWAP_DB_INNOCUOUS = 4u      /* SQLITE_INNOCUOUS: no side effects */
};

/* Every call receives the state the connection's startup built, and returns 0 or an error
 * code (then `error` says why). Results go through sqlite3_result_* on `context`. */
typedef int (*hotswap_db_scalar_fn)(void* conn_state, sqlite3_context* context, int argc, sqlite3_value** argv,
                                    hotswap_plugin_error* error);
typedef int (*hotswap_db_step_fn)(void* conn_state, sqlite3_context* context, int argc, sqlite3_value** argv,
                                  hotswap_plugin_error* error);
typedef int (*hotswap_db_final_fn)(void* conn_state, sqlite3_context* context, hotswap_plugin_error* error);

typedef struct hotswap_db_function {
  const char* name;
  int32_t arity; /* -1: any number of arguments */
  uint32_t kind; /* hotswap_db_function_kind */
  uint32_t flags; /* hotswap_db_function_flags */
  hotswap_db_scalar_fn scalar; /* SCALAR and PROCEDURE */
  hotswap_db_step_fn step;     /* AGGREGATE */
  hotswap_db_final_fn final;   /* AGGREGATE */
} hotswap_db_function;

/* Bytes one version hands the next for one connection (state migration). */
typedef struct hotswap_db_saved_state {
  const void* data;
  size_t size;
  const char* from_build; /* build_version of the version that saved them */
} hotswap_db_saved_state;

/* Where connection_save writes: append as often as needed; returns 0, or non-zero when out of memory. */
typedef struct hotswap_db_buffer {
  void* context;
  int (*append)(void* context, const void* data, size_t size);
} hotswap_db_buffer;

typedef struct hotswap_db_container_api {
  uint32_t function_count;
  const hotswap_db_function* functions;
  /* saved: NULL for a fresh connection, else what the previous version saved (maybe 0 bytes). */
  int (*connection_startup)(void* module_state, sqlite3* db, const hotswap_db_saved_state* saved, void** conn_state,
                            hotswap_plugin_error* error);
  void (*connection_shutdown)(void* module_state, sqlite3* db, void* conn_state);
  /* Optional (NULL): state worth keeping across a version change. */
  int (*connection_save)(void* module_state, sqlite3* db, void* conn_state, const hotswap_db_buffer* out,
                         hotswap_plugin_error* error);
} hotswap_db_container_api;

#ifdef __cplusplus
} /* extern "C" */

HOTSWAP_DECLARE_INTERFACE(hotswap_db_container_api, HOTSWAP_DB_INTERFACE_NAME, HOTSWAP_DB_INTERFACE_VERSION)
#endif

#endif /* HOTSWAP_DB_CONTAINER_API_H */
