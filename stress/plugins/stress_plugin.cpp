// The plugin the `plugin` stress scenario swaps: a call mixes its argument
// with the build's version, and answers a marker if it ever runs after
// shutdown (which the host counts as a call into unloaded code).
#include "stress_api.h"

#include <atomic>

namespace {

std::atomic<bool> running{false};
constexpr std::uint64_t after_shutdown = 0xdeadc0dedeadc0deULL;

std::uint64_t call(std::uint64_t arg) {
  // Relaxed: a flag for a bug report, not a synchronisation point.
  if (!running.load(std::memory_order_relaxed)) return after_shutdown;
  return arg * 0x9e3779b97f4a7c15ULL + PLUGIN_VERSION;
}

void* startup(const hotswap_host_api&) {
  running.store(true, std::memory_order_relaxed);
  return nullptr;
}
void shutdown(void*) { running.store(false, std::memory_order_relaxed); }

const stress_api table = {&call, PLUGIN_VERSION};

}  // namespace

// Unload-safe: no thread, handler or callback outlives shutdown.
HOTSWAP_PLUGIN(stress_api, "stress-plugin", "stress", table, startup, shutdown, nullptr, nullptr,
               HOTSWAP_PLUGIN_UNLOAD_SAFE)
