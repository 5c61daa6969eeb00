// A plugin built with hotswap_add_plugin() by a package consumer.
#include "consumer_api.h"

static int answer() { return 42; }
static const consumer_api table = {&answer};
static void* start(const hotswap_host_api&) { return nullptr; }
static void stop(void*) noexcept {}
HOTSWAP_PLUGIN(consumer_api, "consumer", "1", table, start, stop, nullptr, nullptr)
