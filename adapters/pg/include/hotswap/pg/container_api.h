/* hotswap PostgreSQL containers: the C ABI of a plugin that gives PostgreSQL its functions.
 *
 * A container is an ordinary hotswap plugin (plugin.h) whose interface table is a
 * hotswap_pg_container_api: a list of ordinary PostgreSQL C functions (`Datum f(PG_FUNCTION_ARGS)`,
 * called with the fcinfo PostgreSQL passes, reading arguments with PG_GETARG_* and raising errors
 * with ereport) plus per-session hooks. The SQL functions users call are declared once with
 * hotswap.define(), bound to the dispatcher symbol `hotswap_dispatch` of hotswap_pg; the dispatcher
 * calls the function of the container version this session currently runs. A swap re-creates no
 * SQL object, so plans, views and prepared statements keep working.
 *
 * One backend is one session, and each backend loads its own private copy of each version
 * (RTLD_LOCAL): a container's static variables ARE its per-session state. Per session, as the
 * dispatcher drives it (always on the backend's own thread, inside a transaction):
 *   session_startup(saved)      when the session takes this version (saved: NULL for a fresh one)
 *   ... the version's functions run ...
 *   session_save(out)           optional: bytes for the next version
 *   session_shutdown()          when the session leaves this version (also at backend exit, then
 *                               outside any transaction: it must not run SQL or raise there)
 * A session moves only at a transition point (its next transaction start by default, see
 * hotswap.transition), so no transaction sees two versions. The old version's shutdown runs
 * first, then the new one's startup with what the old one saved; if that startup fails (returns
 * non-zero or raises ERROR), the old version is started again with the same bytes and the
 * session stays on it with a WARNING naming the cause. The hooks run in an internal
 * subtransaction: they may run SQL through SPI.
 *
 * The plugin's own startup/shutdown (plugin.h's descriptor hooks) run on threads of the loader
 * with a deadline, not on the backend's thread: they must not call PostgreSQL at all. Keep them
 * empty and do per-session work in the hooks below.
 *
 * Only C types cross here, so the host's loader side compiles without PostgreSQL's headers:
 * hotswap_pg_fn is exactly PostgreSQL's PGFunction (Datum is a uintptr_t, FunctionCallInfo a
 * pointer to struct FunctionCallInfoBaseData).
 */
#ifndef HOTSWAP_PG_CONTAINER_API_H
#define HOTSWAP_PG_CONTAINER_API_H

#include <stddef.h>
#include <stdint.h>

#include <hotswap/module/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HOTSWAP_PG_INTERFACE_NAME "hotswap.pg.container"
#define HOTSWAP_PG_INTERFACE_VERSION 1u

struct FunctionCallInfoBaseData;
/* PostgreSQL's PGFunction: Datum f(FunctionCallInfo fcinfo). */
typedef uintptr_t (*hotswap_pg_fn)(struct FunctionCallInfoBaseData* fcinfo);

typedef struct hotswap_pg_function {
  const char* name; /* what hotswap.define(..., entry => name) binds to */
  hotswap_pg_fn fn;
} hotswap_pg_function;

/* Bytes one version hands the next for one session. */
typedef struct hotswap_pg_saved_state {
  const void* data;
  size_t size;
  const char* from_build; /* build_version of the version that saved them */
} hotswap_pg_saved_state;

/* Where session_save writes: append as often as needed; returns 0, or non-zero when out of memory. */
typedef struct hotswap_pg_buffer {
  void* context;
  int (*append)(void* context, const void* data, size_t size);
} hotswap_pg_buffer;

typedef struct hotswap_pg_container_api {
  uint32_t function_count;
  const hotswap_pg_function* functions;
  /* Each hook is optional (NULL). A failing hook returns non-zero and fills `error`
   * (hotswap_plugin_fail), or raises an ordinary ERROR. */
  int (*session_startup)(const hotswap_pg_saved_state* saved, hotswap_plugin_error* error);
  void (*session_shutdown)(void);
  int (*session_save)(const hotswap_pg_buffer* out, hotswap_plugin_error* error);
} hotswap_pg_container_api;

#ifdef __cplusplus
} /* extern "C" */

HOTSWAP_DECLARE_INTERFACE(hotswap_pg_container_api, HOTSWAP_PG_INTERFACE_NAME, HOTSWAP_PG_INTERFACE_VERSION)
#endif

#endif /* HOTSWAP_PG_CONTAINER_API_H */
