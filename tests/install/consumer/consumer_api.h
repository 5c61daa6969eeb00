/* The interface the consumer's plugin implements. */
#pragma once
#include <hotswap/module/plugin.h>

typedef struct consumer_api {
  int (*answer)(void);
} consumer_api;
HOTSWAP_DECLARE_INTERFACE(consumer_api, "consumer", 1)
