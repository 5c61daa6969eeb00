// A plugin built with hotswap_add_plugin() by a package consumer (twice: 42, and 43 for the swap).
#include "consumer_api.h"

#ifndef ANSWER
#define ANSWER 42
#endif

static int answer() { return ANSWER; }
static const consumer_api table = {&answer};
static void* start(const hotswap_host_api&) { return nullptr; }
static void stop(void*) noexcept {}
HOTSWAP_PLUGIN(consumer_api, "consumer", "1", table, start, stop, nullptr, nullptr)
