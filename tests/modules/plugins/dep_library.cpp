// libhs_dep.so: a plain shared library a test plugin depends on (DT_NEEDED),
// with a SONAME, found through the plugin's RUNPATH ($ORIGIN).
#include <cstdint>

#ifndef DEP_VALUE
#define DEP_VALUE 77
#endif

extern "C" __attribute__((visibility("default"))) std::uint64_t hs_dep_value(void) { return DEP_VALUE; }
