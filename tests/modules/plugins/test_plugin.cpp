// The test plugin. CMake builds it many times from this one source:
//   PLUGIN_VERSION=N        versions 1..4 for swaps under load
//   PLUGIN_FAULT=...        a lifecycle hook that fails (see below)
//   PLUGIN_IFACE_NAME/_VERSION   claims another interface
//   PLUGIN_ABI=N            a hand-written descriptor with another ABI version
//   PLUGIN_UNRESOLVED       calls a function nothing provides (dlopen RTLD_NOW fails)
//   PLUGIN_UNIQUE           has an inline variable: a GNU unique symbol unless -fno-gnu-unique
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "test_api.h"

#ifndef PLUGIN_VERSION
#define PLUGIN_VERSION 1
#endif
#define FAULT_NONE 0
#define FAULT_STARTUP_ERROR 1  // startup returns an error code (C hook, no exception)
#define FAULT_STARTUP_THROW 2  // startup throws (caught by the plugin-side guard)
#define FAULT_MIGRATE 3        // migrate throws
#define FAULT_SELF_TEST 4      // self_test throws
#ifndef PLUGIN_FAULT
#define PLUGIN_FAULT FAULT_NONE
#endif

#ifdef PLUGIN_UNIQUE
// A visible inline variable: GCC emits it as STB_GNU_UNIQUE unless -fno-gnu-unique.
HOTSWAP_PLUGIN_EXPORT inline std::uint64_t unique_counter = 0;
#endif

namespace {

constexpr std::uint64_t state_magic = 0x7465737473746174ULL;

struct plugin_state {
  std::uint64_t magic = state_magic;
  std::uint64_t generation = 0;
  std::mutex mutex;
  std::condition_variable cv;
  bool finish = false;
  std::thread worker;
};

std::atomic<bool> g_loaded{false};
plugin_state* g_state = nullptr;
const hotswap_host_api* g_host = nullptr;

#ifdef PLUGIN_UNRESOLVED
extern "C" std::uint64_t hotswap_test_symbol_nobody_provides(void);
#endif

bool loaded() { return g_loaded.load(std::memory_order_acquire); }  // pairs with the release stores below

std::uint64_t identify() {
  if (!loaded()) return TEST_API_DEAD;
#ifdef PLUGIN_UNRESOLVED
  return hotswap_test_symbol_nobody_provides();
#endif
#ifdef PLUGIN_UNIQUE
  ++unique_counter;
#endif
  return (std::uint64_t{PLUGIN_VERSION} << 32) | g_state->generation;
}

std::uint64_t add(std::uint64_t a, std::uint64_t b) {
  if (!loaded()) return TEST_API_DEAD;
  return a + b;
}

int hold_keepalive() { return loaded() ? g_host->keepalive_acquire(g_host->context) : 0; }
void release_keepalive() { g_host->keepalive_release(g_host->context); }

int start_work() {
  if (!loaded() || g_state->worker.joinable()) return 0;
  if (g_host->keepalive_acquire(g_host->context) == 0) return 0;
  g_state->worker = std::thread([s = g_state] {
    std::unique_lock lock(s->mutex);
    s->cv.wait(lock, [&] { return s->finish; });
    lock.unlock();
    g_host->keepalive_release(g_host->context);  // the work is done: the version may now drain
  });
  return 1;
}

void finish_work() {
  std::lock_guard lock(g_state->mutex);
  g_state->finish = true;
  g_state->cv.notify_all();
}

[[maybe_unused]] void* startup(const hotswap_host_api& host) {
#if PLUGIN_FAULT == FAULT_STARTUP_THROW
  (void)host;
  throw std::runtime_error("startup threw: configuration missing");
#else
  g_host = &host;
  g_state = new plugin_state;
  g_loaded.store(true, std::memory_order_release);  // pairs with loaded()
  host.log(host.context, 1, "started");
  return g_state;
#endif
}

[[maybe_unused]] void shutdown(void* state) noexcept {
  auto* s = static_cast<plugin_state*>(state);
  g_loaded.store(false, std::memory_order_release);  // pairs with loaded()
  {
    std::lock_guard lock(s->mutex);
    s->finish = true;
    s->cv.notify_all();
  }
  if (s->worker.joinable()) s->worker.join();  // every thread we started ends before dlclose
  delete s;
  g_state = nullptr;
}

[[maybe_unused]] void migrate(void* state, const hotswap_migration& from) {
#if PLUGIN_FAULT == FAULT_MIGRATE
  (void)state;
  (void)from;
  throw std::runtime_error("cannot read the old state: schema too old");
#else
  const auto* old = static_cast<const plugin_state*>(from.old_state);
  if (old == nullptr || old->magic != state_magic) throw std::runtime_error("old state is not ours");
  static_cast<plugin_state*>(state)->generation = old->generation + 1;
#endif
}

[[maybe_unused]] void self_test(void*) {
#if PLUGIN_FAULT == FAULT_SELF_TEST
  throw std::logic_error("self test: add(2, 2) returned 5");
#else
  if (add(2, 2) != 4) throw std::logic_error("self test: add(2, 2) != 4");
#endif
}

}  // namespace

#if defined(PLUGIN_IFACE_NAME)
struct plugin_api : test_api {};  // the same table under another identity
HOTSWAP_DECLARE_INTERFACE(plugin_api, PLUGIN_IFACE_NAME, PLUGIN_IFACE_VERSION)
static const plugin_api table = {{&identify, &add, &hold_keepalive, &release_keepalive, &start_work, &finish_work}};
#else
using plugin_api = test_api;
static const plugin_api table = {&identify, &add, &hold_keepalive, &release_keepalive, &start_work, &finish_work};
#endif

#define STR2(x) #x
#define STR(x) STR2(x)

#if PLUGIN_FAULT == FAULT_STARTUP_ERROR || defined(PLUGIN_ABI)
// Written by hand, as a C plugin would: a startup that reports an error code.
#ifndef PLUGIN_ABI
#define PLUGIN_ABI HOTSWAP_PLUGIN_ABI_VERSION
#endif
extern "C" {
static int c_startup(const hotswap_host_api*, void**, hotswap_plugin_error* error) {
  return hotswap_plugin_fail(error, 42, "database unreachable");
}
static void c_shutdown(void*) {}
HOTSWAP_PLUGIN_EXPORT const hotswap_plugin_descriptor* hotswap_plugin_entry(void) {
  static const hotswap_plugin_descriptor d = {PLUGIN_ABI,        sizeof(hotswap_plugin_descriptor),
                                              "hotswap.test",    1,
                                              "test-plugin",     "c-" STR(PLUGIN_VERSION),
                                              &table,            sizeof table,
                                              &c_startup,        &c_shutdown,
                                              nullptr,           nullptr};
  return &d;
}
}
#else
HOTSWAP_PLUGIN(plugin_api, "test-plugin", "v" STR(PLUGIN_VERSION), table, startup, shutdown, migrate, self_test)
#endif
