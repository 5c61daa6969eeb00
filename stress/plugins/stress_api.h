/* The interface of the stress rig's plugin: one call, and the version it was
   built as. A C table, shared by the host (stress/scenarios/plugin.hpp) and
   the plugin (stress_plugin.cpp). */
#ifndef HOTSWAP_STRESS_API_H
#define HOTSWAP_STRESS_API_H

#include <hotswap/module/plugin.h>
#include <stdint.h>

typedef struct stress_api {
  uint64_t (*call)(uint64_t arg);
  uint64_t build; /* PLUGIN_VERSION the .so was built with */
} stress_api;

#ifdef __cplusplus
HOTSWAP_DECLARE_INTERFACE(stress_api, "hotswap.stress", 1)
#endif

#endif
