// The baseline of scripts/bench_pg.sh: the same functions as the test container, as an
// ordinary PostgreSQL C library (what users write today). Built once per version; the
// benchmark copies it to a new file name per CREATE OR REPLACE FUNCTION, since PostgreSQL
// never reloads a file name it has loaded.
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>

extern "C" {
#include "postgres.h"
#include "fmgr.h"

PG_MODULE_MAGIC;
PG_FUNCTION_INFO_V1(plain_version);
PG_FUNCTION_INFO_V1(plain_add_one);
PG_FUNCTION_INFO_V1(plain_file);
}

#ifndef PLAIN_VERSION
#define PLAIN_VERSION 1
#endif

extern "C" Datum plain_version(PG_FUNCTION_ARGS) {
  (void)fcinfo;
  PG_RETURN_INT32(PLAIN_VERSION);
}

extern "C" Datum plain_add_one(PG_FUNCTION_ARGS) { PG_RETURN_INT32(PG_GETARG_INT32(0) + 1); }

// Which copy answered: N of the lib-vN.so file this code was loaded from (0 for another name).
// Asked with the address of a static, which is this copy's own: PostgreSQL loads libraries
// RTLD_GLOBAL, so &plain_file would name the first copy loaded.
static const char this_copy = 0;
extern "C" Datum plain_file(PG_FUNCTION_ARGS) {
  (void)fcinfo;
  Dl_info info{};
  const char* name = dladdr(&this_copy, &info) != 0 ? strrchr(info.dli_fname, '/') : nullptr;
  PG_RETURN_INT32(name != nullptr && strncmp(name, "/lib-v", 6) == 0 ? atoi(name + 6) : 0);
}
