// A test and example container: each build answers its own version number, and a per-session
// call counter survives version changes through session_save / session_startup.
//
// Build variants (CMakeLists.txt): CONTAINER_VERSION=n; CONTAINER_STARTUP_FAILS (startup
// returns an error), CONTAINER_STARTUP_RAISES (startup raises an ERROR), CONTAINER_CRASHES (a
// constructor aborts: the preflight must refuse it), CONTAINER_WRONG_INTERFACE (serves
// another interface).
#include <cstdlib>
#include <cstring>

#include "hotswap/pg/container_api.h"

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "utils/builtins.h"
}

#ifndef CONTAINER_VERSION
#define CONTAINER_VERSION 1
#endif
#define CONTAINER_TEXT_(x) #x
#define CONTAINER_TEXT(x) CONTAINER_TEXT_(x)

namespace {

#if !defined(CONTAINER_WRONG_INTERFACE)
// Per-session state: this copy of this version in this backend.
long long calls = 0;

Datum container_version(PG_FUNCTION_ARGS) {
  (void)fcinfo;
  PG_RETURN_INT32(CONTAINER_VERSION);
}

Datum session_calls(PG_FUNCTION_ARGS) {
  (void)fcinfo;
  PG_RETURN_INT64(++calls);
}

Datum add_one(PG_FUNCTION_ARGS) { PG_RETURN_INT32(PG_GETARG_INT32(0) + 1); }

Datum fail(PG_FUNCTION_ARGS) {
  ereport(ERROR, (errcode(MAKE_SQLSTATE('H', 'S', '0', '0', '1')),
                  errmsg("container version %d failed: %s", CONTAINER_VERSION, text_to_cstring(PG_GETARG_TEXT_PP(0)))));
  PG_RETURN_NULL();
}

int startup(const hotswap_pg_saved_state* saved, hotswap_plugin_error* error) {
#if defined(CONTAINER_STARTUP_FAILS)
  (void)saved;
  return hotswap_plugin_fail(error, 7, "this build refuses to start");
#elif defined(CONTAINER_STARTUP_RAISES)
  (void)saved;
  (void)error;
  ereport(ERROR, (errcode(ERRCODE_CONFIG_FILE_ERROR), errmsg("this build raises in session_startup")));
#else
  (void)error;
  if (saved != nullptr && saved->size == sizeof calls) std::memcpy(&calls, saved->data, sizeof calls);
#endif
  return 0;
}

int save(const hotswap_pg_buffer* out, hotswap_plugin_error* error) {
  if (out->append(out->context, &calls, sizeof calls) != 0) return hotswap_plugin_fail(error, 1, "out of memory");
  return 0;
}

void shutdown() { calls = 0; }

const hotswap_pg_function functions[] = {{"container_version", &container_version},
                                         {"session_calls", &session_calls},
                                         {"add_one", &add_one},
                                         {"fail", &fail}};
#endif

void* plugin_start(const hotswap_host_api&) { return nullptr; }
void plugin_stop(void*) noexcept {}

#if defined(CONTAINER_CRASHES)
[[gnu::constructor]] void crash_on_load() { std::abort(); }
#endif

}  // namespace

#if defined(CONTAINER_WRONG_INTERFACE)
struct other_api {
  int unused;
};
HOTSWAP_DECLARE_INTERFACE(other_api, "hotswap.pg.other", 1)
static const other_api table = {0};
HOTSWAP_PLUGIN(other_api, "version", CONTAINER_TEXT(CONTAINER_VERSION) ".0.0", table, plugin_start, plugin_stop,
               nullptr, nullptr, HOTSWAP_PLUGIN_UNLOAD_SAFE)
#else
static const hotswap_pg_container_api table = {sizeof functions / sizeof functions[0], functions, &startup, &shutdown,
                                               &save};
HOTSWAP_PLUGIN(hotswap_pg_container_api, "version", CONTAINER_TEXT(CONTAINER_VERSION) ".0.0", table, plugin_start,
               plugin_stop, nullptr, nullptr, HOTSWAP_PLUGIN_UNLOAD_SAFE)
#endif
